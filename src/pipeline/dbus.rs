//! Runs xdg-dbus-proxy for a sandbox: started before the sandbox (which
//! binds its socket), stopped after. The proxy gets the write end of a
//! pipe as `--fd`: it writes one byte once it listens, and exits when the
//! pipe's other end closes — when antimony drops it, or dies.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use crate::error::Error;
use crate::host::Host;
use crate::plan::dbus::DbusPlan;

#[derive(Debug)]
pub struct Proxy {
    child: Child,
    ready: Option<OwnedFd>,
    socket: std::path::PathBuf,
}

/// How long the proxy may take to listen.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub fn start(plan: &DbusPlan, host: &Host) -> Result<Proxy, Error> {
    // The socket's folder: a private one of the user's, or none (in /tmp,
    // another user could have made it to give the sandbox their socket).
    host.runtime_folder("dbus").map_err(|e| {
        Error::io(
            format!("use {}", host.runtime_base.join("dbus").display()),
            e,
        )
    })?;
    let _ = std::fs::remove_file(&plan.socket);
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("create a pipe", e.into()))?;
    let fd = w.as_raw_fd();
    let mut cmd = Command::new(&plan.proxy);
    cmd.arg(format!("--fd={fd}"))
        .arg(&plan.address)
        .arg(&plan.socket)
        .args(&plan.args)
        .stdin(Stdio::null())
        .env_clear();
    // SAFETY: the closure runs in the forked child and makes only
    // async-signal-safe syscalls (fcntl, prctl) on integers.
    unsafe {
        cmd.pre_exec(move || {
            // The sync pipe crosses the exec; nothing else of ours does.
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("start {}", plan.proxy.display()), e))?;
    drop(w);
    let proxy = Proxy {
        child,
        ready: Some(r),
        socket: plan.socket.clone(),
    };
    // Wait for its byte (a signal meanwhile does not cut the wait short).
    let r = proxy.ready.as_ref().map(AsRawFd::as_raw_fd).unwrap_or(-1);
    let mut byte = [0u8; 1];
    let got = crate::signals::wait_readable(r, START_TIMEOUT)
        // SAFETY: reading one byte into a stack buffer.
        && unsafe { libc::read(r, byte.as_mut_ptr().cast(), 1) } == 1;
    if !got {
        return Err(Error::ProxyNotListening {
            proxy: plan.proxy.clone(),
            socket: plan.socket.clone(),
        });
    }
    Ok(proxy)
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Closing our end of the sync pipe tells it to go; make sure.
        self.ready = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}
