//! Runs xdg-dbus-proxy for a sandbox, in the proxy's own sandbox (see
//! `plan::dbus` for why): started before the program's sandbox (which
//! binds its socket), stopped after. The proxy's stdout is the write end
//! of a pipe and it runs with `--fd=1`: it writes one byte once it
//! listens, and exits when the pipe's other end closes — when antimony
//! drops it, or dies (and its sandbox dies with antimony anyway).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use crate::error::Error;
use crate::host::Host;
use crate::plan::dbus::DbusPlan;
use crate::sandbox::{self, Sandbox, protocol::Message};

#[derive(Debug)]
pub struct Proxy {
    sandbox: Sandbox,
    ready: Option<OwnedFd>,
    folder: std::path::PathBuf,
}

/// How long the proxy may take to listen.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A copy of `fd` above 2 (close-on-exec), whatever antimony's own 0, 1
/// and 2 are: init moves it onto one of those.
fn high(fd: impl AsFd, what: &str) -> Result<OwnedFd, Error> {
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
        .map(|raw| {
            // SAFETY: fcntl just returned this new descriptor.
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) }
        })
        .map_err(|e| Error::io(format!("duplicate {what}"), e.into()))
}

pub fn start(plan: &DbusPlan, host: &Host) -> Result<Proxy, Error> {
    // The socket's folder: this run's, in a private folder of the user's
    // (in /tmp, another user could have made it to give the sandbox their
    // socket); its own, so that the proxy's sandbox sees no other run's.
    let use_it = |e| Error::io(format!("use {}", plan.folder.display()), e);
    host.runtime_folder("dbus").map_err(use_it)?;
    match nix::unistd::mkdir(
        &plan.folder,
        nix::sys::stat::Mode::from_bits_truncate(0o700),
    ) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(use_it(e.into())),
    }
    host.check_runtime_folder(&plan.folder).map_err(use_it)?;
    let _ = std::fs::remove_file(&plan.socket);

    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("create a pipe", e.into()))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| Error::io("open /dev/null", e))?;
    let stdio = match &plan.log {
        // A recording run's log (the proxy logs to its standard output):
        // a new file in antimony's private folder; the readiness byte
        // then goes to its standard error (`DbusPlan::log_to`).
        Some(path) => {
            let log = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
            [
                high(&null, "/dev/null")?,
                high(log, "the proxy's log")?,
                high(&w, "a pipe")?,
            ]
        }
        None => [
            high(&null, "/dev/null")?,
            high(&w, "a pipe")?,
            high(std::io::stderr(), "stderr")?,
        ],
    };
    drop(w);
    let spawned = sandbox::prepare(&plan.sandbox).and_then(|mut prepared| {
        prepared.stdio = Some(stdio);
        // Dropping `prepared` closes our copies of the proxy's stdio: only
        // the proxy and its init hold the pipe's write end.
        sandbox::spawn(&mut prepared)
    });
    let sandbox = spawned.inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&plan.folder);
    })?;
    let proxy = Proxy {
        sandbox,
        ready: Some(r),
        folder: plan.folder.clone(),
    };
    proxy.wait_ready(plan, host)?;
    Ok(proxy)
}

impl Proxy {
    /// Waits for the proxy's byte, reading what its init says meanwhile:
    /// a set-up step that failed, or the proxy's exit.
    fn wait_ready(&self, plan: &DbusPlan, host: &Host) -> Result<(), Error> {
        let not_listening = || Error::ProxyNotListening {
            proxy: plan.proxy.clone(),
            socket: plan.socket.clone(),
        };
        let r = self.ready.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let mut fds = [
                libc::pollfd {
                    fd: r,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.sandbox.messages_fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two valid pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, left.as_millis() as libc::c_int) };
            if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                continue;
            }
            if n <= 0 {
                return Err(not_listening());
            }
            if fds[0].revents != 0 {
                let mut byte = [0u8; 1];
                // SAFETY: reading one byte into a stack buffer.
                if unsafe { libc::read(r, byte.as_mut_ptr().cast(), 1) } == 1 {
                    return Ok(());
                }
                return Err(not_listening());
            }
            match self.sandbox.read_message()? {
                Some((Message::Failed { step, index, errno }, _)) => {
                    return Err(
                        sandbox::describe_failure(&plan.sandbox, host, step, index, errno).into(),
                    );
                }
                // Init holds its signals (SIGCHLD too) until a first request.
                Some((Message::Started { .. }, _)) => {
                    let _ = self.sandbox.program_host_pid();
                }
                Some(_) => {}
                None => return Err(not_listening()),
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Closing our end of the sync pipe tells it to go; the sandbox is
        // killed and reaped when dropped.
        self.ready = None;
        self.sandbox.kill();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}
