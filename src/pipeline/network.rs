//! The isolated network's pasta (see `plan::network`): checked before the
//! sandbox is cloned, started once it is (joined to its user and network
//! namespaces by descriptors: init sends the network namespace's), waited
//! for, and ended with the sandbox. The program runs only once pasta has configured the
//! namespace: the sandbox's init waits for antimony's "go".
//!
//! pasta configures the namespace, then forks to the background and its
//! first process exits: that exit is the sign that the namespace is ready
//! (0) or that pasta failed (its stderr says why). The background pasta
//! writes its PID to a file of antimony's private runtime folder; antimony
//! holds a pidfd of it, registers its process group (pasta calls setsid)
//! with the hook guardian, which kills it should antimony die, and kills
//! it when the sandbox has ended (it would otherwise live on, holding the
//! namespace).
//!
//! Cost (release build, 2 vCPUs): about 20 ms of pasta's own start (it
//! opens pools of sockets on both sides) out of the isolated launch's
//! extra time; see the README.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::host::Host;
use crate::plan::Plan;
use crate::plan::network::{DNS, Isolated};
use crate::sandbox::{self, Sandbox, protocol::Message};

/// How long pasta may take to configure the namespace.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The TUN device pasta needs (major 10, minor 200).
const TUN: &str = "/dev/net/tun";

#[derive(Debug)]
pub struct Pasta {
    pub pid: libc::pid_t,
    pidfd: OwnedFd,
}

fn refuse(problem: impl Into<String>, fix: &str) -> Error {
    Error::Network {
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// Before the clone: pasta is installed and the TUN device is usable by
/// this user. Never a fallback to the host's network.
pub fn check(iso: &Isolated) -> Result<PathBuf, Error> {
    let pasta = iso.pasta.clone().ok_or_else(|| {
        refuse(
            format!(
                "pasta is not installed (looked for in {})",
                crate::plan::network::PASTA_PATH.replace(':', ", ")
            ),
            "install it (package passt: apt install passt, dnf install passt), or run without the network (--no-network)",
        )
    })?;
    let tun_fix = "make it usable by every user: chmod 0666 /dev/net/tun, and for good a udev rule such as KERNEL==\"tun\", MODE=\"0666\" in /etc/udev/rules.d/60-tun.rules (load the device with modprobe tun)";
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(TUN)
        .map_err(|e| {
            refuse(
                format!("{TUN} cannot be opened ({})", crate::error::io_text(&e)),
                tun_fix,
            )
        })?;
    let st = nix::sys::stat::fstat(&tun).map_err(|e| refuse(format!("{TUN}: {e}"), tun_fix))?;
    let is_char = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if !is_char || libc::major(st.st_rdev) != 10 || libc::minor(st.st_rdev) != 200 {
        return Err(refuse(format!("{TUN} is not the TUN device"), tun_fix));
    }
    Ok(pasta)
}

/// The sandbox's network namespace, which its init sends before it
/// becomes non-dumpable (antimony could not open /proc/PID/ns/net
/// after), and the user namespace that owns it (NS_GET_USERNS).
fn namespaces(sandbox: &Sandbox, plan: &Plan, host: &Host) -> Result<(OwnedFd, OwnedFd), Error> {
    let gone = || {
        refuse(
            "the sandbox ended before its network was set up",
            "see the error above",
        )
    };
    let deadline = Instant::now() + START_TIMEOUT;
    let netns = loop {
        if !readable_before(sandbox.messages_fd().as_raw_fd(), deadline) {
            return Err(gone());
        }
        match sandbox.read_message()? {
            Some((Message::Network, Some(fd))) => break fd,
            Some((Message::Failed { step, index, errno }, _)) => {
                return Err(sandbox::describe_failure(plan, host, step, index, errno).into());
            }
            Some(_) => {}
            None => return Err(gone()),
        }
    };
    // NS_GET_USERNS = _IO(0xb7, 0x1).
    // SAFETY: an ioctl on a namespace descriptor we own; no argument.
    let fd = unsafe { libc::ioctl(netns.as_raw_fd(), 0xb701) };
    if fd < 0 {
        return Err(Error::io(
            "find the sandbox's user namespace (NS_GET_USERNS)",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the ioctl just returned this new descriptor (close-on-exec).
    let userns = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((userns, netns))
}

fn inheritable(fd: &OwnedFd, on: bool) -> Result<(), Error> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let flags = if on {
        FdFlag::empty()
    } else {
        FdFlag::FD_CLOEXEC
    };
    fcntl(fd, FcntlArg::F_SETFD(flags))
        .map(drop)
        .map_err(|e| Error::io("pass a namespace to pasta", e.into()))
}

/// pasta's arguments, for the sandbox whose user and network namespaces
/// are descriptors `userns` and `netns` in pasta.
fn arguments(iso: &Isolated, host: &Host, pidfile: &Path, userns: i32, netns: i32) -> Vec<String> {
    let ports = if iso.forward_ports.is_empty() {
        "none".to_string()
    } else {
        // On the host's loopback only: not an open port on the local network.
        let list: Vec<String> = iso.forward_ports.iter().map(u16::to_string).collect();
        format!("127.0.0.1/{}", list.join(","))
    };
    [
        "--config-net",
        "--quiet",
        "--stderr",
        // As the user; root stays root (pasta's default drop to nobody
        // could not enter a user namespace root owns).
        "--runas",
        &format!("{}:{}", host.uid, host.gid),
        "--no-map-gw",
        "--tcp-ports",
        &ports,
        "--udp-ports",
        "none",
        "--tcp-ns",
        "none",
        "--udp-ns",
        "none",
        "--dns-forward",
        &DNS.to_string(),
        "--pid",
        &pidfile.to_string_lossy(),
        "--userns",
        &format!("/proc/self/fd/{userns}"),
        "--netns",
        &format!("/proc/self/fd/{netns}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// After the clone, before "go": starts pasta on the sandbox's namespaces
/// and waits until it has configured them.
pub fn start(
    pasta: &Path,
    iso: &Isolated,
    sandbox: &Sandbox,
    plan: &Plan,
    host: &Host,
) -> Result<Pasta, Error> {
    let instance = &plan.instance;
    let folder = host
        .runtime_folder("network")
        .map_err(|e| Error::io("make antimony's runtime folder for the network", e))?;
    let pidfile = folder.join(format!("{instance}.pid"));
    let _ = std::fs::remove_file(&pidfile);
    let (userns, netns) = namespaces(sandbox, plan, host)?;
    let args = arguments(iso, host, &pidfile, userns.as_raw_fd(), netns.as_raw_fd());
    // The two descriptors cross the exec at their numbers (antimony is
    // single-threaded: no other child can inherit them meanwhile).
    inheritable(&userns, true)?;
    inheritable(&netns, true)?;
    let spawned = Command::new(pasta)
        .args(&args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    drop((userns, netns));
    let mut child = spawned.map_err(|e| Error::io(format!("start {}", pasta.display()), e))?;
    let failed = |why: String| {
        refuse(
            format!("pasta ({}) failed: {why}", pasta.display()),
            "see pasta's message above; run without the network (--no-network) meanwhile",
        )
    };
    let status = wait_timeout(&mut child, START_TIMEOUT);
    let said = child.stderr.take().map(read_available).unwrap_or_default();
    let said = said
        .lines()
        .filter(|l| !l.starts_with("Failed to send") && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    match status {
        Some(s) if s.success() => {}
        Some(s) => {
            let _ = std::fs::remove_file(&pidfile);
            return Err(failed(if said.is_empty() { s.to_string() } else { said }));
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&pidfile);
            return Err(failed(format!(
                "it did not configure the network within {} s",
                START_TIMEOUT.as_secs()
            )));
        }
    }
    let pid = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<libc::pid_t>().ok());
    let _ = std::fs::remove_file(&pidfile);
    let pid = pid.ok_or_else(|| failed("it wrote no PID".into()))?;
    // SAFETY: pidfd_open with no pointer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(failed(format!(
            "its background process {pid} is gone ({})",
            nix::errno::Errno::last()
        )));
    }
    Ok(Pasta {
        pid,
        // SAFETY: pidfd_open just returned this descriptor.
        pidfd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
    })
}

/// The child's exit status, or `None` after `limit`.
fn wait_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    // SAFETY: pidfd_open with no pointer arguments; the child is unreaped.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) };
    if fd >= 0 {
        // SAFETY: pidfd_open just returned this descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        if !readable_before(fd.as_raw_fd(), Instant::now() + limit) {
            return None;
        }
    }
    child.wait().ok()
}

/// Whether `fd` becomes readable before `deadline` (a signal's
/// interruption is waited through).
fn readable_before(fd: std::os::fd::RawFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as libc::c_int) };
        if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
            continue;
        }
        return n > 0;
    }
}

/// What pasta wrote to stderr, without blocking (its background process
/// may still hold the pipe).
fn read_available(mut err: std::process::ChildStderr) -> String {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let _ = fcntl(&err, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = err.read(&mut chunk) {
        if n == 0 || buf.len() > 64 * 1024 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    String::from_utf8_lossy(&buf).into_owned()
}

impl Drop for Pasta {
    /// Kills pasta: it holds the sandbox's namespace and nothing of its
    /// own to save. Not waited for: its exit (freeing its buffers) takes
    /// some 30 ms, which would add to every isolated run; SIGKILL cannot
    /// be refused.
    fn drop(&mut self) {
        // SAFETY: pidfd_send_signal with a pidfd we own and no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
}
