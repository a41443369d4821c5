//! `antimony ps`, `enter` and `stop`: talking to running instances.
//!
//! An instance is reached through its record (`instance.rs`, which checks
//! that the supervising antimony is alive and is antimony) and its control
//! socket; the peer on that socket must be that same process (its
//! credentials, as the kernel reports them, name the recorded PID and our
//! uid). `enter` never joins namespaces itself: the instance's own init
//! starts the command, so it gets exactly the instance's confinement. Nor
//! does it hand the command any descriptor of its own: the command gets a
//! terminal of the sandbox's where ours is one, pipes otherwise, and
//! `enter` relays (`pty`).

use std::ffi::OsString;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, sendmsg};

use crate::error::Error;
use crate::host::Host;
use crate::instance::{self, Found, wire};
use crate::pty::{self, Relay};
use crate::sandbox::protocol::{Message, Terminal};
use crate::signals::Signals;

fn uptime(started_at: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let s = now.saturating_sub(started_at);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

pub fn ps(host: &Host, json: bool) -> Result<u8, Error> {
    if let Some(why) = instance::registry_problem(host) {
        crate::commands::warn(&format!("the instance registry is not used: {why}"));
    }
    let list = instance::list(host);
    if json {
        let infos: Vec<&instance::Info> = list.iter().map(|f| &f.info).collect();
        outln!(
            "{}",
            crate::text::to_json_pretty(&infos).unwrap_or_else(|_| "[]".into())
        );
        return Ok(0);
    }
    let width = list
        .iter()
        .map(|f| f.info.profile.len())
        .max()
        .unwrap_or(7)
        .max(7);
    outln!(
        "{:<16}  {:<width$}  {:>8}  {:<19}  UPTIME",
        "INSTANCE",
        "PROFILE",
        "PID",
        "STARTED (UTC)"
    );
    for f in &list {
        let i = &f.info;
        outln!(
            "{:<16}  {:<width$}  {:>8}  {:<19}  {}",
            i.instance,
            i.profile,
            i.pid,
            crate::hooks::records::format_time(i.started_at as f64),
            uptime(i.started_at)
        );
    }
    Ok(0)
}

/// Connects to an instance's control socket; `instance::connect` checks
/// that its antimony is the one that answers.
fn connect_to(found: &Found) -> Result<OwnedFd, Error> {
    instance::connect(found).map_err(|why| {
        Error::from(instance::InstanceError::Untrusted {
            id: found.info.instance.clone(),
            why,
        })
    })
}

/// The next message, with the descriptor that came with it (the entered
/// command's terminal); `None` at the end of the connection.
fn recv_message(fd: &OwnedFd) -> Option<(Message, Option<OwnedFd>)> {
    let mut buf = [0u8; 16];
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
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
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
        if msg.bytes != 16 {
            return None;
        }
        return Message::decode(&buf).map(|m| (m, passed));
    }
}

/// The next packet's header words; `None` at the end of the connection.
fn recv_words(fd: &OwnedFd) -> Option<(u32, u32, u32, i32)> {
    let mut buf = [0u8; 16];
    loop {
        // SAFETY: receiving into a stack buffer from our socket.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return if n > 0 {
            crate::sandbox::protocol::words(&buf)
        } else {
            None
        };
    }
}

fn send(fd: &OwnedFd, data: &[u8]) {
    // SAFETY: sending a slice we own on our socket.
    unsafe {
        libc::send(
            fd.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_NOSIGNAL,
        )
    };
}

/// How long, once the command has ended, its output is waited for while
/// nothing comes (something it left behind may hold its terminal or a
/// pipe), and at most.
const DRAIN_QUIET: Duration = Duration::from_millis(50);
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The command's stdin, stdout and stderr: a new terminal (in the sandbox)
/// for each of ours that is a terminal, a pipe for each other one; never
/// a descriptor of ours. The relay passes bytes between them and ours; the
/// descriptors to send are the pipes' other ends.
fn plumbing() -> Result<(Option<Terminal>, Relay, Vec<OwnedFd>), Error> {
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
    for i in 0..3 {
        if mask & (1 << i) != 0 {
            continue;
        }
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("create a pipe", e.into()))?;
        if i == 0 {
            relay.pump_in(0, w);
            theirs.push(r);
        } else {
            relay.pump_out(r, i as RawFd);
            theirs.push(w);
        }
    }
    Ok((terminal, relay, theirs))
}

pub fn enter(host: &Host, name: &str, command: Vec<OsString>) -> Result<u8, Error> {
    let found = instance::find(host, name).map_err(Error::from)?;
    let fd = connect_to(&found)?;
    let command = if command.is_empty() {
        vec![OsString::from("/bin/sh")]
    } else {
        command
    };
    let argv: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
    let (terminal, mut relay, theirs) = plumbing()?;
    let request = wire::enter_request(&argv, terminal.as_ref())
        .ok_or_else(|| Error::Other("enter: the command is too long or holds a NUL byte".into()))?;
    let signals = Signals::install().map_err(|e| Error::io("install signal handlers", e))?;
    let theirs_raw: Vec<RawFd> = theirs.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&theirs_raw)];
    let cmsg: &[ControlMessage] = if theirs_raw.is_empty() { &[] } else { &rights };
    sendmsg::<()>(
        fd.as_raw_fd(),
        &[IoSlice::new(&request)],
        cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| Error::io("send the command to the instance", e.into()))?;
    // The supervisor holds its own copies now.
    drop(theirs);
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
                send(&fd, &wire::signal_request(sig));
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
        match recv_message(&fd) {
            Some((Message::Spawned { .. }, passed)) => {
                spawned = true;
                if let Some(t) = &terminal {
                    // Only a terminal's master is relayed as one.
                    let Some(master) = passed.filter(|m| pty::is_master(m.as_raw_fd())) else {
                        return Err(Error::Other(format!(
                            "enter: instance {} gave the command no terminal",
                            found.info.instance
                        )));
                    };
                    let input = (t.mask & 1 != 0).then_some(0);
                    let output = [1, 2, 0]
                        .into_iter()
                        .find(|&i| t.mask & (1 << i) != 0)
                        .unwrap_or(0);
                    relay.attach(master, input, output, pty::Mode::Raw);
                }
            }
            Some((Message::SpawnFailed { errno, .. }, _)) => {
                let why = if errno == nix::errno::Errno::ESRCH {
                    "its program is not running (not yet, or no longer)".to_string()
                } else {
                    errno.to_string()
                };
                return Err(Error::Other(format!(
                    "enter: cannot start {} inside instance {}: {why}",
                    command[0].to_string_lossy(),
                    found.info.instance
                )));
            }
            Some((Message::Reaped { status, .. }, _)) => {
                relay.drain(DRAIN_QUIET, DRAIN_LIMIT);
                return Ok(crate::pipeline::exit_code(status));
            }
            Some(_) => {}
            None if spawned => {
                relay.drain(DRAIN_QUIET, DRAIN_LIMIT);
                return Err(Error::Other(format!(
                    "instance {} ended while the command ran",
                    found.info.instance
                )));
            }
            None => {
                return Err(Error::Other(format!(
                    "instance {} refused the command or ended",
                    found.info.instance
                )));
            }
        }
    }
}

/// Waits until the process behind `pidfd` has exited, at most `limit`.
fn wait_exit(pidfd: &OwnedFd, limit: std::time::Duration) -> bool {
    crate::signals::wait_readable(pidfd.as_raw_fd(), limit)
}

pub fn stop(host: &Host, name: &str) -> Result<u8, Error> {
    // A profile name stops all its instances; an id (or prefix) one.
    let targets: Vec<Found> = instance::matching(host, name)?;
    if targets.len() > 1 && !targets.iter().all(|f| f.info.profile == name) {
        // An id prefix that names several: not for guessing.
        return Err(instance::ambiguous(name, &targets).into());
    }
    let mut failed = false;
    let mut conns = Vec::new();
    for f in &targets {
        // Its antimony, to see it exit (the record was just verified).
        // SAFETY: pidfd_open has no pointer arguments.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, f.info.antimony_pid, 0) };
        if pidfd < 0 {
            eprintln!("antimony: {} had already ended", f.info.instance);
            continue;
        }
        // SAFETY: pidfd_open just returned this descriptor.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        match connect_to(f) {
            Ok(fd) => {
                send(&fd, &wire::stop_request());
                conns.push((f.info.instance.clone(), fd, pidfd));
            }
            Err(e) => {
                crate::commands::report(&e);
                failed = true;
            }
        }
    }
    // Each supervisor says it is stopping, and closes the connection when
    // its instance has ended (after its stopping hooks, SIGTERM, the grace
    // period, SIGKILL, the attached hooks and the post-hooks), right before
    // it exits. One that closes it unanswered refused the request.
    for (id, fd, pidfd) in conns {
        let mut accepted = false;
        while let Some((kind, ..)) = recv_words(&fd) {
            accepted |= kind == wire::STOPPING;
        }
        if !accepted {
            crate::commands::report(&format!(
                "instance {id} did not stop: its antimony refused the request"
            ));
            failed = true;
        } else if wait_exit(&pidfd, std::time::Duration::from_secs(30)) {
            eprintln!("antimony: stopped {id}");
        } else {
            crate::commands::report(&format!(
                "instance {id} closed its control socket but its antimony still runs"
            ));
            failed = true;
        }
    }
    // Each failure was reported above.
    Ok(if failed {
        crate::error::EXIT_LAUNCHER_FAILURE
    } else {
        0
    })
}
