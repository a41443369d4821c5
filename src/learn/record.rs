//! The recorder: antimony's side of a recording sandbox.
//!
//! Why seccomp user notification (`SECCOMP_RET_USER_NOTIF`): it needs no
//! privilege (the program's own process installs the filter, under
//! `no_new_privs`, and hands antimony the listener), it sees every path
//! the program names whether the call then succeeds or not (a missing
//! `/etc/libreoffice` is a failed `openat`, which Landlock's audit would
//! not report and fanotify cannot see: it reports opened files only, and
//! needs `CAP_SYS_ADMIN`), and it leaves the sandbox as it is: ptrace is
//! refused by the default seccomp filter and would make antimony the
//! tracer of every process of the sandbox, stopping each on every system
//! call, and Landlock's audit goes to the kernel's audit log, which an
//! ordinary user cannot read. The cost is a round trip to antimony per
//! listed call, paid only by a run that asks to be recorded.
//!
//! Each notification names the calling thread (as a PID of antimony's PID
//! namespace) and the call's arguments; the path is read from the
//! thread's memory with `process_vm_readv` (antimony may: the program is
//! its descendant, of its user, in a user namespace it owns), and a
//! relative one is joined to the folder its descriptor or the working
//! folder names (`/proc/PID/fd/N`, `/proc/PID/cwd`, read as the
//! sandbox's mount namespace names them: a recording sandbox shows host
//! paths at their own places). The answer is always "go on"
//! (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`): the program does exactly what it
//! would have done. Between the read and the kernel's execution of the
//! call, another thread of the program could change the path in memory
//! (time of check to time of use); for a record that only informs a
//! profile, and changes no answer, that does not matter.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::plan::seccomp::{Access, RecordPlan};

/// How the program used a path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Use {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    /// A unix socket it connected to.
    pub connect: bool,
}

/// What a recorded run named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    /// Absolute paths, as the sandbox named them.
    pub paths: BTreeMap<PathBuf, Use>,
    /// Abstract unix sockets it connected to (`@name`).
    pub abstract_sockets: Vec<String>,
    /// It connected an internet socket (IPv4, IPv6).
    pub inet: bool,
    /// Notifications read.
    pub calls: u64,
}

/// The most distinct paths, and abstract socket names, a recording keeps:
/// far more than a program opens (the apps learned here name a few
/// thousand), and a bound on what a program that names new paths in a
/// loop can make antimony hold in memory.
const MAX_PATHS: usize = 65_536;
const MAX_SOCKETS: usize = 1_024;

impl Recording {
    /// The record of `path`; `None` for a new one past `MAX_PATHS`.
    fn entry(&mut self, path: PathBuf) -> Option<&mut Use> {
        if self.paths.len() >= MAX_PATHS && !self.paths.contains_key(&path) {
            return None;
        }
        Some(self.paths.entry(path).or_default())
    }

    /// Adds another round's record.
    pub fn merge(&mut self, other: Recording) {
        for (p, u) in other.paths {
            let mine = self.paths.entry(p).or_default();
            mine.read |= u.read;
            mine.write |= u.write;
            mine.exec |= u.exec;
            mine.connect |= u.connect;
        }
        self.abstract_sockets.extend(other.abstract_sockets);
        self.abstract_sockets.sort();
        self.abstract_sockets.dedup();
        self.inet |= other.inet;
        self.calls += other.calls;
    }
}

/// The recorder's thread, serving the listener until every process of
/// the sandbox is gone.
#[derive(Debug)]
pub struct Recorder {
    thread: std::thread::JoinHandle<Recording>,
    /// Closed to tell the thread to stop (it also stops by itself once
    /// no process uses the filter any more).
    stop: Option<OwnedFd>,
}

impl Recorder {
    /// Starts serving `listener`. antimony has already forked its
    /// sandbox: a thread from now on is no obstacle to that.
    pub fn start(listener: OwnedFd) -> std::io::Result<Recorder> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || serve(&listener, &r))?;
        Ok(Recorder {
            thread,
            stop: Some(w),
        })
    }

    /// What was recorded, once the program is gone.
    pub fn finish(mut self) -> Recording {
        self.stop = None;
        self.thread.join().unwrap_or_default()
    }
}

fn serve(listener: &OwnedFd, stop: &OwnedFd) -> Recording {
    let mut rec = Recording::default();
    loop {
        let mut fds = [
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                continue;
            }
            break;
        }
        if fds[1].revents != 0 {
            break;
        }
        if fds[0].revents & libc::POLLIN == 0 {
            // POLLHUP: no process uses the filter any more.
            break;
        }
        // SAFETY: an all-zero seccomp_notif is what NOTIF_RECV expects.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl fills the struct we pass.
        let r = unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut req as *mut libc::seccomp_notif,
            )
        };
        if r < 0 {
            // ENOENT: the caller died before we read it; EINTR.
            continue;
        }
        rec.calls += 1;
        note(&mut rec, &req);
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        };
        // SAFETY: the ioctl reads the struct we pass. A failure (the
        // caller is gone) needs nothing.
        unsafe {
            libc::ioctl(
                listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp as *mut libc::seccomp_notif_resp,
            )
        };
    }
    rec.abstract_sockets.sort();
    rec.abstract_sockets.dedup();
    rec
}

/// Records what one call names.
fn note(rec: &mut Recording, req: &libc::seccomp_notif) {
    let Some(call) = RecordPlan::recorded(i64::from(req.data.nr)) else {
        return;
    };
    let pid = req.pid as libc::pid_t;
    let arg = |i: u8| req.data.args.get(usize::from(i)).copied().unwrap_or(0);
    if call.access == Access::Connect {
        connect(rec, pid, arg(1), arg(2));
        return;
    }
    let Some(raw) = read_string(pid, arg(call.path)) else {
        return;
    };
    if raw.is_empty() {
        // AT_EMPTY_PATH: the descriptor's file, recorded when opened.
        return;
    }
    let raw = PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
    let path = if raw.is_absolute() {
        raw
    } else {
        let base = match call.dirfd.map(|i| arg(i) as i32) {
            Some(fd) if fd != libc::AT_FDCWD => {
                std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()
            }
            _ => std::fs::read_link(format!("/proc/{pid}/cwd")).ok(),
        };
        match base {
            Some(b) if b.is_absolute() => b.join(raw),
            _ => return,
        }
    };
    let Some(u) = rec.entry(normalize(&path)) else {
        return;
    };
    match call.access {
        Access::Read => u.read = true,
        Access::Write => u.write = true,
        Access::Exec => u.exec = true,
        Access::OpenFlags(i) => {
            let flags = arg(i) as i32;
            let writes = flags & libc::O_ACCMODE != libc::O_RDONLY
                || flags & (libc::O_CREAT | libc::O_TRUNC) != 0;
            if writes {
                u.write = true;
            } else {
                u.read = true;
            }
        }
        Access::Connect => u.connect = true,
    }
}

/// A `connect`: a unix socket's path (or abstract name), or an internet
/// address.
fn connect(rec: &mut Recording, pid: libc::pid_t, addr: u64, len: u64) {
    let len = (len as usize).min(std::mem::size_of::<libc::sockaddr_un>());
    let mut buf = vec![0u8; len];
    if len < 2 || read_memory(pid, addr, &mut buf) != len {
        return;
    }
    let family = u16::from_ne_bytes([buf[0], buf[1]]);
    match i32::from(family) {
        libc::AF_UNIX => {
            let name = &buf[2..];
            if let Some(rest) = name.strip_prefix(&[0]) {
                // Abstract: the name is every byte of the length given.
                let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                let name = format!("@{}", String::from_utf8_lossy(&rest[..end]));
                if !rec.abstract_sockets.contains(&name) && rec.abstract_sockets.len() < MAX_SOCKETS
                {
                    rec.abstract_sockets.push(name);
                }
            } else {
                let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                let path = PathBuf::from(std::ffi::OsStr::from_bytes(&name[..end]));
                if path.is_absolute() {
                    if let Some(u) = rec.entry(normalize(&path)) {
                        u.connect = true;
                    }
                }
            }
        }
        libc::AF_INET | libc::AF_INET6 => rec.inet = true,
        _ => {}
    }
}

/// `.` dropped and `..` taken back, as written (the links on the way are
/// the host's, at the same places).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Reads up to `buf.len()` bytes of another process's memory; returns how
/// many it read (a read stops at the first unmapped page).
fn read_memory(pid: libc::pid_t, addr: u64, buf: &mut [u8]) -> usize {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: the local iovec covers `buf`; the remote one is only read
    // by the kernel, in the other process, which checks it.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    n.max(0) as usize
}

/// A NUL-terminated string in another process's memory, read a page at
/// a time (never across an unmapped page). At most PATH_MAX bytes.
fn read_string(pid: libc::pid_t, addr: u64) -> Option<Vec<u8>> {
    const PAGE: u64 = 4096;
    if addr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < libc::PATH_MAX as usize {
        let chunk = (PAGE - at % PAGE) as usize;
        let mut buf = vec![0u8; chunk];
        let n = read_memory(pid, at, &mut buf);
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Some(out);
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_holds_a_bounded_number_of_paths() {
        let mut rec = Recording::default();
        for i in 0..MAX_PATHS + 10 {
            if let Some(u) = rec.entry(PathBuf::from(format!("/p/{i}"))) {
                u.read = true;
            }
        }
        assert_eq!(rec.paths.len(), MAX_PATHS);
        // One already recorded is still updated.
        rec.entry(PathBuf::from("/p/0")).unwrap().write = true;
        assert!(rec.paths[Path::new("/p/0")].write);
        assert!(rec.entry(PathBuf::from("/p/new")).is_none());
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
    }

    #[test]
    fn reads_own_memory() {
        let s = c"/etc/hostname";
        let got = read_string(std::process::id() as i32, s.as_ptr() as u64);
        assert_eq!(got.as_deref(), Some(&b"/etc/hostname"[..]));
    }
}
