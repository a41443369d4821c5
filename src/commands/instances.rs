//! `antimony ps`, `enter` and `stop`: talking to running instances.
//!
//! An instance is reached through its record (`instance.rs`, which checks
//! that the supervising antimony is alive and is antimony) and its control
//! socket; the peer on that socket must be that same process (its
//! credentials, as the kernel reports them, name the recorded PID and our
//! uid). `enter` never joins namespaces itself: the instance's own init
//! starts the command, so it gets exactly the instance's confinement.

use std::ffi::OsString;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};

use crate::error::Error;
use crate::host::Host;
use crate::instance::{self, Found, wire};
use crate::sandbox::protocol::Message;
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

fn recv_message(fd: &OwnedFd) -> Option<Message> {
    let mut buf = [0u8; 16];
    loop {
        // SAFETY: receiving into a stack buffer from our socket.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return (n == 16).then(|| Message::decode(&buf)).flatten();
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

pub fn enter(host: &Host, name: &str, command: Vec<OsString>) -> Result<u8, Error> {
    let found = instance::find(host, name).map_err(Error::from)?;
    let fd = connect_to(&found)?;
    let command = if command.is_empty() {
        vec![OsString::from("/bin/sh")]
    } else {
        command
    };
    let argv: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
    let request = wire::enter_request(&argv)
        .ok_or_else(|| Error::Other("enter: the command is too long or holds a NUL byte".into()))?;
    // Our own stdin, stdout and stderr become the command's (Rust's
    // runtime opened /dev/null for any that was closed at start).
    let stdio = [0, 1, 2];
    let signals = Signals::install().map_err(|e| Error::io("install signal handlers", e))?;
    sendmsg::<()>(
        fd.as_raw_fd(),
        &[IoSlice::new(&request)],
        &[ControlMessage::ScmRights(&stdio)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| Error::io("send the command to the instance", e.into()))?;
    let mut spawned = false;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals.fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        // Signals we get (a terminal's ^C) go to the command inside.
        for sig in signals.take() {
            send(&fd, &wire::signal_request(sig));
        }
        if fds[0].revents == 0 {
            continue;
        }
        match recv_message(&fd) {
            Some(Message::Spawned { .. }) => spawned = true,
            Some(Message::SpawnFailed { errno, .. }) => {
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
            Some(Message::Reaped { status, .. }) => {
                return Ok(crate::pipeline::exit_code(status));
            }
            Some(_) => {}
            None if spawned => {
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
        let pidfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd as i32) };
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
