//! The supervisor's side of a running instance: the `control` socket it
//! takes `enter` and `stop` requests on (`wire`), opened once its
//! registration is made, and the replies it relays from init.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::sys::socket::{
    AddressFamily, Backlog, MsgFlags, SockFlag, SockType, UnixAddr, bind, getsockopt, listen,
    sendmsg, socket, sockopt::PeerCredentials,
};

use super::registry::Registration;
use super::wire::{self, Reply};
use crate::sandbox::protocol::Message;

pub use super::wire::Request;

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
        let fd = self.clients[i].fd.as_raw_fd();
        let mut buf = vec![0u8; wire::MAX_REQUEST];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 3]);
        let msg = nix::sys::socket::recvmsg::<()>(
            fd,
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
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
        // A request larger than any (cut to the buffer), or descriptors
        // beyond the room for three (cut by the kernel): not one.
        if n == 0
            || msg
                .flags
                .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
        {
            return None;
        }
        let request = Request::decode(&buf[..n], fds).ok()?;
        if let Request::Stop = request {
            // Said at once, so that the client can tell an accepted
            // request from a refusal (a connection closed unanswered).
            self.reply(i, Reply::Stopping);
        }
        Some(request)
    }

    /// Sends a reply to a client (it may be gone: nothing to do then).
    fn reply(&self, i: usize, reply: Reply) {
        let data = reply.encode();
        loop {
            match sendmsg::<()>(
                self.clients[i].fd.as_raw_fd(),
                &[IoSlice::new(&data)],
                &[],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(nix::errno::Errno::EINTR) => {}
                _ => return,
            }
        }
    }

    /// Relays init's answer about a client's command to it.
    pub fn send(&self, i: usize, m: Message) {
        if let Some(r) = relayed(m) {
            self.reply(i, r);
        }
    }

    pub fn client_of(&self, id: u32) -> Option<usize> {
        self.clients.iter().position(|c| c.command == Some(id))
    }
}

/// The reply a client gets for init's answer about its command; none for
/// what init says about the sandbox itself.
pub fn relayed(m: Message) -> Option<Reply> {
    match m {
        Message::Spawned { pid, .. } => Some(Reply::Spawned { pid }),
        Message::SpawnFailed { errno, .. } => Some(Reply::SpawnFailed { errno }),
        Message::Reaped { status, .. } => Some(Reply::Exited { status }),
        Message::Failed { .. }
        | Message::Started { .. }
        | Message::Exited { .. }
        | Message::Network
        | Message::Listener => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::protocol::Step;
    use nix::errno::Errno;

    #[test]
    fn init_answers_relayed() {
        let cases = [
            (
                Message::Spawned { id: 3, pid: 12 },
                Some(Reply::Spawned { pid: 12 }),
            ),
            (
                Message::SpawnFailed {
                    id: 3,
                    errno: Errno::ENOENT,
                },
                Some(Reply::SpawnFailed {
                    errno: Errno::ENOENT,
                }),
            ),
            (
                Message::Reaped { id: 3, status: 256 },
                Some(Reply::Exited { status: 256 }),
            ),
            (Message::Started { pid: 2 }, None),
            (Message::Exited { status: 0 }, None),
            (
                Message::Failed {
                    step: Step::Mount,
                    index: 1,
                    errno: Errno::EPERM,
                },
                None,
            ),
        ];
        for (m, r) in cases {
            assert_eq!(relayed(m), r, "{m:?}");
        }
    }

    #[test]
    fn same_user_namespace() {
        assert!(same_user_ns(std::process::id() as libc::pid_t));
        assert!(!same_user_ns(0));
        assert!(!same_user_ns(-1));
        assert!(!same_user_ns(i32::MAX));
    }
}
