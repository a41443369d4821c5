//! The supervisor's side of a running instance: its registration (the
//! record `antimony ps`, `enter` and `stop` find), the `control` socket it
//! takes their requests on, and the `--status-fd` lines.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, getsockopt, listen, socket,
    sockopt::PeerCredentials,
};
use serde_json::json;

use crate::instance::{Registration, wire};
use crate::sandbox::protocol::{self, Message};

/// A request from a client.
#[derive(Debug)]
pub enum Request {
    Enter {
        argv: Vec<Vec<u8>>,
        /// A new terminal for the command, if the client has one.
        terminal: Option<crate::sandbox::protocol::Terminal>,
        /// Its stdin, stdout and stderr but those the terminal is: pipes
        /// to the client.
        stdio: Vec<OwnedFd>,
    },
    Signal(i32),
    Stop,
}

#[derive(Debug)]
pub struct Client {
    pub fd: OwnedFd,
    /// The command it entered, by exec id.
    pub command: Option<u32>,
}

#[derive(Debug)]
pub struct Server {
    listener: OwnedFd,
    pub clients: Vec<Client>,
    pub registration: Registration,
}

impl Server {
    /// Listens on the instance's control socket, then makes its record
    /// visible.
    pub fn start(mut registration: Registration) -> std::io::Result<Server> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        let path = registration.control_path();
        let addr = UnixAddr::new(path.as_os_str().as_bytes())?;
        bind(fd.as_raw_fd(), &addr)?;
        listen(&fd, Backlog::new(8).unwrap_or(Backlog::MAXCONN))?;
        registration.publish()?;
        Ok(Server {
            listener: fd,
            clients: Vec::new(),
            registration,
        })
    }

    pub fn listener_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Accepts waiting clients that belong to the instance's user and run
    /// in antimony's own user namespace: a process inside any sandbox (each
    /// has a user namespace of its own) is refused even if it could reach
    /// the socket.
    pub fn accept(&mut self) {
        loop {
            // SAFETY: accept4 on our listening socket, no address wanted.
            let fd = unsafe {
                libc::accept4(
                    self.listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                return;
            }
            // SAFETY: accept4 just returned this descriptor.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let ours = getsockopt(&fd, PeerCredentials)
                .map(|c| c.uid() == self.registration.info.uid && same_user_ns(c.pid()))
                .unwrap_or(false);
            if ours {
                self.clients.push(Client { fd, command: None });
            }
        }
    }

    /// Reads a client's request; `None` when it hung up (or sent nonsense,
    /// which hangs it up). A client that hung up waits for nothing any
    /// more, not even for the stop it asked for: it is to be dropped.
    pub fn read(&mut self, i: usize) -> Option<Request> {
        self.read_request(i)
    }

    fn read_request(&mut self, i: usize) -> Option<Request> {
        let fd = self.clients[i].fd.as_raw_fd();
        let mut buf = vec![0u8; protocol::MAX_REQUEST];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 3]);
        let msg = nix::sys::socket::recvmsg::<()>(
            fd,
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .ok()?;
        let n = msg.bytes;
        let mut fds: Vec<OwnedFd> = Vec::new();
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let nix::sys::socket::ControlMessageOwned::ScmRights(list) = c {
                    // SAFETY: the kernel gave us these descriptors.
                    fds.extend(list.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                }
            }
        }
        if n == 0 {
            return None;
        }
        let (kind, _, _, arg) = protocol::words(&buf[..n])?;
        match kind {
            wire::ENTER => {
                let (argv, terminal) = wire::parse_enter(&buf[..n])?;
                let mask = terminal.as_ref().map_or(0, |t| t.mask);
                if fds.len() != protocol::passed_fds(mask) {
                    return None;
                }
                Some(Request::Enter {
                    argv,
                    terminal,
                    stdio: fds,
                })
            }
            wire::SIGNAL => Some(Request::Signal(arg)),
            wire::STOP => {
                // Said at once, so that the client can tell an accepted
                // request from a refusal (a connection closed unanswered).
                let ack = wire::stopping_reply();
                // SAFETY: sending a stack buffer on a connected socket.
                unsafe { libc::send(fd, ack.as_ptr().cast(), ack.len(), libc::MSG_NOSIGNAL) };
                Some(Request::Stop)
            }
            _ => None,
        }
    }

    /// Sends a message to a client (it may be gone: nothing to do then).
    pub fn send(&self, i: usize, m: Message) {
        let data = m.encode();
        // SAFETY: sending a stack buffer on a connected socket.
        unsafe {
            libc::send(
                self.clients[i].fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL,
            )
        };
    }

    /// Sends a message with a descriptor (an entered command's terminal).
    pub fn send_with_fd(&self, i: usize, m: Message, fd: &OwnedFd) {
        let _ = m.send_with_fd(self.clients[i].fd.as_raw_fd(), fd.as_raw_fd());
    }

    pub fn client_of(&self, id: u32) -> Option<usize> {
        self.clients.iter().position(|c| c.command == Some(id))
    }
}

/// Whether process `pid` is in this process's user namespace.
fn same_user_ns(pid: libc::pid_t) -> bool {
    use std::os::unix::fs::MetadataExt;
    if pid <= 0 {
        return false;
    }
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/user"));
    let ours = std::fs::metadata("/proc/self/ns/user");
    match (theirs, ours) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// `--status-fd N`: JSON lines for scripts and supervisors.
#[derive(Debug)]
pub struct StatusFd(RawFd);

impl StatusFd {
    /// Checks the descriptor is open, and keeps it from leaking into hooks
    /// and the sandbox (close-on-exec; the sandbox's init closes it anyway).
    pub fn open(fd: RawFd) -> Result<StatusFd, String> {
        // SAFETY: fcntl with integer arguments.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if fd < 0 || flags < 0 {
            return Err(format!("--status-fd {fd}: not an open file descriptor"));
        }
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
        Ok(StatusFd(fd))
    }

    fn line(&self, v: serde_json::Value) {
        let mut text = v.to_string();
        text.push('\n');
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            // SAFETY: writing a slice we own to the descriptor we were given.
            let n = unsafe { libc::write(self.0, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            rest = &rest[n as usize..];
        }
    }

    /// The program has started: its PID and namespace ids.
    pub fn started(&self, instance: &str, pid: u32) {
        let mut ns = serde_json::Map::new();
        for name in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"] {
            if let Ok(link) = std::fs::read_link(format!("/proc/{pid}/ns/{name}")) {
                let text = link.to_string_lossy();
                if let Some(id) = text
                    .split('[')
                    .nth(1)
                    .and_then(|s| s.trim_end_matches(']').parse::<u64>().ok())
                {
                    ns.insert(name.to_string(), json!(id));
                }
            }
        }
        self.line(json!({"event": "started", "instance": instance, "pid": pid, "namespaces": ns}));
    }

    /// The program has ended.
    pub fn exited(&self, instance: &str, status: i32) {
        if libc::WIFSIGNALED(status) {
            self.line(
                json!({"event": "exited", "instance": instance, "signal": libc::WTERMSIG(status)}),
            );
        } else {
            self.line(
                json!({"event": "exited", "instance": instance, "exit-code": libc::WEXITSTATUS(status)}),
            );
        }
    }
}
