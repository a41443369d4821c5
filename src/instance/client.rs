//! The client's side of an instance's control socket: `ps` (which lists
//! only records whose socket their antimony serves), `enter` and `stop`.
//!
//! An instance is reached through its verified record (`registry`) and its
//! control socket; the peer on that socket must be the record's antimony
//! (its credentials, as the kernel reports them, name the recorded PID and
//! our uid). `enter` never joins namespaces itself: the instance's own init
//! starts the command, so it gets exactly the instance's confinement. Nor
//! does it hand the command any descriptor of its own: the command gets a
//! terminal of the sandbox's where ours is one, pipes otherwise, and
//! `enter` relays (`pty`).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, sendmsg};

use super::InstanceError;
use super::registry::{Found, start_time};
use super::wire::{self, Reply, Request, WireError};
use crate::pty::{self, Relay};
use crate::sandbox::protocol::Terminal;
use crate::signals::Signals;

/// Why a verified record's control socket is not used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConnectError {
    #[error("cannot create a socket ({0})")]
    Socket(Errno),
    #[error("its control socket has no usable address ({0})")]
    Address(Errno),
    #[error("its control socket does not answer ({0})")]
    NoAnswer(Errno),
    #[error("cannot tell who answers ({0})")]
    Credentials(Errno),
    /// Another process (or user) listens on it.
    #[error(
        "its control socket is served by PID {pid} (uid {uid}), not by its antimony (PID {expected})"
    )]
    Impostor { pid: i32, uid: u32, expected: u32 },
    /// Its antimony ended (and its PID was reused) while we connected.
    #[error("its antimony (PID {0}) has ended")]
    Ended(u32),
    #[error("cannot use its control socket ({0})")]
    Blocking(Errno),
}

/// How long `connect` retries a control socket whose queue is full.
const CONNECT_PATIENCE: Duration = Duration::from_secs(2);

/// Whether the peer the kernel names (`pid`, `uid`) is the record's
/// antimony.
pub fn check_peer(found: &Found, pid: i32, uid: u32) -> Result<(), ConnectError> {
    let expected = found.info.antimony_pid;
    if u32::try_from(pid).ok() != Some(expected) || uid != found.info.uid {
        return Err(ConnectError::Impostor { pid, uid, expected });
    }
    Ok(())
}

/// Connects to a verified record's control socket and checks that the
/// process serving it is the record's antimony (the kernel's peer
/// credentials: the PID and uid of the process that listens), still the
/// same process (its start time, again). Returns the connected socket,
/// blocking. Never waits more than a moment for a socket that does not
/// accept.
pub fn connect(found: &Found) -> Result<OwnedFd, ConnectError> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, UnixAddr, getsockopt, socket, sockopt::PeerCredentials,
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(ConnectError::Socket)?;
    let path = found.control_path();
    let addr = UnixAddr::new(path.as_os_str().as_bytes()).map_err(ConnectError::Address)?;
    let deadline = Instant::now() + CONNECT_PATIENCE;
    loop {
        match nix::sys::socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(ConnectError::NoAnswer(e)),
        }
    }
    let cred = getsockopt(&fd, PeerCredentials).map_err(ConnectError::Credentials)?;
    check_peer(found, cred.pid(), cred.uid())?;
    // The PID was checked before the connection: it is still that process.
    let pid = found.info.antimony_pid;
    if start_time(pid) != Some(found.info.antimony_start) {
        return Err(ConnectError::Ended(pid));
    }
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .map_err(ConnectError::Blocking)?;
    Ok(fd)
}

/// `connect`, its refusal named by the instance.
fn connect_to(found: &Found) -> Result<OwnedFd, InstanceError> {
    connect(found).map_err(|why| InstanceError::Unreachable {
        id: found.info.instance.clone(),
        why,
    })
}

/// Sends a request, with its descriptors (an `Enter`'s stdio).
fn send(fd: &OwnedFd, request: &Request) -> Result<(), InstanceError> {
    let data = request.encode().map_err(InstanceError::Unsendable)?;
    let passed: Vec<RawFd> = request.fds().iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&passed)];
    let cmsg: &[ControlMessage] = if passed.is_empty() { &[] } else { &rights };
    loop {
        match sendmsg::<()>(
            fd.as_raw_fd(),
            &[IoSlice::new(&data)],
            cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => {}
            Err(e) => {
                return Err(InstanceError::io(
                    "send the command to the instance",
                    e.into(),
                ));
            }
            Ok(_) => return Ok(()),
        }
    }
}

/// The next reply, with the descriptor that came with it (the entered
/// command's terminal); `Ok(None)` at the end of the connection.
fn recv(fd: &OwnedFd) -> Result<Option<(Reply, Option<OwnedFd>)>, WireError> {
    let mut buf = [0u8; wire::REPLY_LEN];
    loop {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = match nix::sys::socket::recvmsg::<()>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(Errno::EINTR) => continue,
            Err(_) => return Ok(None),
        };
        let mut passed = None;
        for c in msg.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::ScmRights(list) = c {
                for f in list {
                    // SAFETY: the kernel gave us this descriptor; any
                    // second one is closed at once.
                    let f = unsafe { OwnedFd::from_raw_fd(f) };
                    passed.get_or_insert(f);
                }
            }
        }
        if msg.bytes == 0 {
            return Ok(None);
        }
        let n = msg.bytes;
        return Reply::decode(&buf[..n]).map(|r| Some((r, passed)));
    }
}

/// How long, once the command has ended, its output is waited for while
/// nothing comes (something it left behind may hold its terminal or a
/// pipe), and at most.
const DRAIN_QUIET: Duration = Duration::from_millis(50);
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The command's stdin, stdout and stderr: a new terminal for each of ours
/// that is a terminal, a pipe for each other one; never a descriptor of
/// ours. The terminal is a pseudo-terminal made here, on the host: its
/// slave goes to the command, its master stays here (returned) and is
/// relayed; one made in the sandbox's own devpts could be opened by any
/// process there. The relay passes bytes between the pipes and ours; the
/// descriptors to send are the slave, then the pipes' other ends.
#[allow(clippy::type_complexity)]
fn plumbing() -> Result<(Option<Terminal>, Option<OwnedFd>, Relay, Vec<OwnedFd>), InstanceError> {
    let ttys = [0, 1, 2].map(pty::is_terminal);
    let terminal = ttys
        .iter()
        .position(|&t| t)
        .and_then(|first| pty::Settings::of(first as RawFd))
        .map(|settings| Terminal {
            mask: (0..3).filter(|&i| ttys[i]).fold(0, |m, i| m | 1 << i),
            settings,
        });
    let mask = terminal.as_ref().map_or(0, |t| t.mask);
    let mut relay = Relay::new();
    let mut theirs = Vec::new();
    let mut master = None;
    if let Some(t) = &terminal {
        let (m, slave) =
            pty::open_host().map_err(|e| InstanceError::io("open a pseudo-terminal", e))?;
        t.settings
            .apply(slave.as_raw_fd())
            .map_err(|e| InstanceError::io("set up the pseudo-terminal", e.into()))?;
        master = Some(m);
        theirs.push(slave);
    }
    for i in 0..3 {
        if mask & (1 << i) != 0 {
            continue;
        }
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| InstanceError::io("create a pipe", e.into()))?;
        if i == 0 {
            relay.pump_in(0, w);
            theirs.push(r);
        } else {
            relay.pump_out(r, i as RawFd);
            theirs.push(w);
        }
    }
    Ok((terminal, master, relay, theirs))
}

/// Runs `argv` inside the instance, relaying our stdin, stdout and stderr
/// (or our terminal) to it, and passing signals we get on to it; returns
/// its wait status once it has ended.
pub fn enter(found: &Found, argv: &[&[u8]]) -> Result<i32, InstanceError> {
    let id = || found.info.instance.clone();
    let fd = connect_to(found)?;
    let (terminal, mut master, mut relay, theirs) = plumbing()?;
    let request = Request::Enter {
        argv: argv.iter().map(|a| a.to_vec()).collect(),
        terminal,
        stdio: theirs,
    };
    let signals =
        Signals::install().map_err(|e| InstanceError::io("install signal handlers", e))?;
    send(&fd, &request)?;
    // The supervisor holds its own copies of the pipes' ends now: ours
    // closed, the relay sees their end when the command's are closed.
    drop(request);
    let mut spawned = false;
    let mut interest = Vec::new();
    let mut fds = Vec::new();
    loop {
        interest.clear();
        relay.interest(&mut interest);
        fds.clear();
        fds.push(libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        fds.push(libc::pollfd {
            fd: signals.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        fds.extend(interest.iter().map(|&(fd, events, _)| libc::pollfd {
            fd,
            events,
            revents: 0,
        }));
        // SAFETY: a valid array of pollfd of the length passed.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        // Signals we get (a `kill`; with a terminal of ours, its keys reach
        // the command through the new one) go to the command inside; a new
        // window size goes to its terminal, whose kernel says SIGWINCH.
        for sig in signals.take() {
            if sig == libc::SIGWINCH && relay.master().is_some() {
                relay.resize();
            } else {
                // Gone with the connection, if it is: said below.
                let _ = send(&fd, &Request::Signal(sig));
            }
        }
        for (p, &(_, _, i)) in fds[2..].iter().zip(&interest) {
            if p.revents != 0 {
                relay.ready(i);
            }
        }
        if fds[0].revents == 0 {
            continue;
        }
        match recv(&fd).ok().flatten() {
            Some((Reply::Spawned { .. }, _)) => {
                spawned = true;
                if let Some(t) = &terminal {
                    let Some(master) = master.take() else {
                        return Err(InstanceError::NoTerminal { id: id() });
                    };
                    let input = (t.mask & 1 != 0).then_some(0);
                    let output = [1, 2, 0]
                        .into_iter()
                        .find(|&i| t.mask & (1 << i) != 0)
                        .unwrap_or(0);
                    relay.attach(master, input, output, pty::Mode::Raw);
                }
            }
            Some((Reply::SpawnFailed { errno }, _)) => {
                return Err(InstanceError::SpawnFailed {
                    id: id(),
                    command: String::from_utf8_lossy(argv.first().copied().unwrap_or_default())
                        .into_owned(),
                    errno,
                });
            }
            Some((Reply::Exited { status }, _)) => {
                relay.drain(DRAIN_QUIET, DRAIN_LIMIT);
                return Ok(status);
            }
            Some((Reply::Stopping, _)) => {}
            None if spawned => {
                relay.drain(DRAIN_QUIET, DRAIN_LIMIT);
                return Err(InstanceError::EndedDuringCommand { id: id() });
            }
            None => return Err(InstanceError::CommandRefused { id: id() }),
        }
    }
}

/// How long `stop` waits for an antimony that has closed its control
/// socket to exit.
const EXIT_PATIENCE: Duration = Duration::from_secs(30);

/// A stop asked for: the connection, and the antimony to see exit.
#[derive(Debug)]
pub struct Stopping {
    id: String,
    fd: OwnedFd,
    pidfd: OwnedFd,
}

/// Asks the instance's antimony to stop it; `None` if that antimony had
/// already ended. The answer is for `Stopping::wait`: asking each of
/// several instances first lets them stop together.
pub fn ask_stop(found: &Found) -> Result<Option<Stopping>, InstanceError> {
    // Its antimony, to see it exit (the record was just verified).
    // SAFETY: pidfd_open has no pointer arguments.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, found.info.antimony_pid, 0) };
    if pidfd < 0 {
        return Ok(None);
    }
    // SAFETY: pidfd_open just returned this descriptor.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let fd = connect_to(found)?;
    // A refusal (a connection closed unanswered) is seen by `wait`.
    let _ = send(&fd, &Request::Stop);
    Ok(Some(Stopping {
        id: found.info.instance.clone(),
        fd,
        pidfd,
    }))
}

impl Stopping {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits until the instance has ended. Its supervisor says it is
    /// stopping, and closes the connection when its instance has ended
    /// (after its stopping hooks, SIGTERM, the grace period, SIGKILL, the
    /// attached hooks and the post-hooks), right before it exits. One that
    /// closes it unanswered refused the request.
    pub fn wait(self) -> Result<(), InstanceError> {
        let mut accepted = false;
        loop {
            match recv(&self.fd) {
                Ok(None) => break,
                Ok(Some((reply, _))) => accepted |= reply == Reply::Stopping,
                // Not for us to understand; the connection goes on.
                Err(_) => {}
            }
        }
        if !accepted {
            Err(InstanceError::StopRefused { id: self.id })
        } else if crate::signals::wait_readable(self.pidfd.as_raw_fd(), EXIT_PATIENCE) {
            Ok(())
        } else {
            Err(InstanceError::StillRuns { id: self.id })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::Info;

    #[test]
    fn the_peer_must_be_the_records_antimony() {
        let found = Found {
            dir: "/nonexistent/0001".into(),
            info: Info {
                instance: "0001".into(),
                profile: "minimal".into(),
                pid: 12,
                antimony_pid: 10,
                antimony_start: 5,
                started_at: 0,
                uid: 1000,
            },
        };
        assert_eq!(check_peer(&found, 10, 1000), Ok(()));
        // The program, not its antimony; someone else; a PID that is none.
        for (pid, uid) in [(12, 1000), (10, 0), (-10, 1000), (0, 1000)] {
            assert_eq!(
                check_peer(&found, pid, uid),
                Err(ConnectError::Impostor {
                    pid,
                    uid,
                    expected: 10
                })
            );
        }
        // No such socket: it does not answer (nothing is retried).
        assert_eq!(
            connect(&found).unwrap_err(),
            ConnectError::NoAnswer(Errno::ENOENT)
        );
    }
}
