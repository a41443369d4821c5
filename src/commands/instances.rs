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

use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect, getsockopt,
    sendmsg, socket, sockopt::PeerCredentials,
};

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
    let list = instance::list(host);
    if json {
        let infos: Vec<&instance::Info> = list.iter().map(|f| &f.info).collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&infos).unwrap_or_else(|_| "[]".into())
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

/// Connects to an instance's control socket and checks who answers.
fn connect_to(found: &Found, host: &Host) -> Result<OwnedFd, Error> {
    let untrusted = |why: String| {
        Error::from(instance::InstanceError::Untrusted {
            id: found.info.instance.clone(),
            why,
        })
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::io("create a socket", e.into()))?;
    let path = found.control_path();
    let addr = UnixAddr::new(path.as_os_str().as_bytes())
        .map_err(|e| Error::io(format!("{}", path.display()), e.into()))?;
    connect(fd.as_raw_fd(), &addr)
        .map_err(|e| untrusted(format!("its control socket does not answer ({e})")))?;
    let cred = getsockopt(&fd, PeerCredentials)
        .map_err(|e| untrusted(format!("cannot tell who answers ({e})")))?;
    if cred.pid() as u32 != found.info.antimony_pid || cred.uid() != host.uid {
        return Err(untrusted(format!(
            "its control socket is served by PID {} (uid {}), not by its antimony (PID {})",
            cred.pid(),
            cred.uid(),
            found.info.antimony_pid
        )));
    }
    Ok(fd)
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
    let fd = connect_to(&found, host)?;
    let command = if command.is_empty() {
        vec![OsString::from("/bin/sh")]
    } else {
        command
    };
    let argv: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
    let request = wire::enter_request(&argv)
        .ok_or_else(|| Error::Other("enter: the command is too long or holds a NUL byte".into()))?;
    // Our own stdin, stdout and stderr become the command's.
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
            Some(Message::Spawned { .. }) => {}
            Some(Message::SpawnFailed { errno, .. }) => {
                return Err(Error::Other(format!(
                    "enter: cannot start {} inside instance {}: {errno}",
                    command[0].to_string_lossy(),
                    found.info.instance
                )));
            }
            Some(Message::Reaped { status, .. }) => {
                return Ok(crate::pipeline::exit_code(status));
            }
            Some(_) => {}
            None => {
                return Err(Error::Other(format!(
                    "instance {} ended while the command ran",
                    found.info.instance
                )));
            }
        }
    }
}

pub fn stop(host: &Host, name: &str) -> Result<u8, Error> {
    // A profile name stops all its instances; an id (or prefix) one.
    let all = instance::list(host);
    let targets: Vec<Found> = match instance::find(host, name) {
        Ok(f) => vec![f],
        Err(instance::InstanceError::Ambiguous { .. }) => {
            all.into_iter().filter(|f| f.info.profile == name).collect()
        }
        Err(e) => return Err(e.into()),
    };
    if targets.is_empty() {
        return Err(instance::InstanceError::NotFound(name.into()).into());
    }
    let mut conns = Vec::new();
    for f in &targets {
        let fd = connect_to(f, host)?;
        send(&fd, &wire::stop_request());
        conns.push((f.info.instance.clone(), fd));
    }
    // Each supervisor closes the connection when its instance has ended
    // (after its stopping hooks, SIGTERM, the grace period, SIGKILL, the
    // attached hooks and the post-hooks).
    for (id, fd) in conns {
        while recv_message(&fd).is_some() {}
        eprintln!("antimony: stopped {id}");
    }
    Ok(0)
}
