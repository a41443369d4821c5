//! `--status-fd N`: the running instance announced to a script or
//! supervisor, as JSON lines: `started` (its program's PID and namespace
//! ids) and `exited` (its exit code or signal).

use std::os::fd::RawFd;

use serde_json::json;

use super::InstanceError;

/// `--status-fd N`: JSON lines for scripts and supervisors.
#[derive(Debug)]
pub struct StatusFd(RawFd);

impl StatusFd {
    /// Checks the descriptor is open, and keeps it from leaking into hooks
    /// and the sandbox (close-on-exec; the sandbox's init closes it anyway).
    pub fn open(fd: RawFd) -> Result<StatusFd, InstanceError> {
        // SAFETY: fcntl with integer arguments.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if fd < 0 || flags < 0 {
            return Err(InstanceError::StatusFd(fd));
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
        let mut ns = Vec::new();
        for name in NAMESPACES {
            if let Ok(link) = std::fs::read_link(format!("/proc/{pid}/ns/{name}")) {
                if let Some(id) = namespace_id(&link.to_string_lossy()) {
                    ns.push((name, id));
                }
            }
        }
        self.line(started_line(instance, pid, &ns));
    }

    /// The program has ended.
    pub fn exited(&self, instance: &str, status: i32) {
        self.line(exited_line(instance, status));
    }
}

/// The namespaces whose ids a `started` line gives.
const NAMESPACES: [&str; 7] = ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"];

/// The id in a namespace link's text (`net:[4026531840]`).
fn namespace_id(link: &str) -> Option<u64> {
    link.split('[')
        .nth(1)
        .and_then(|s| s.trim_end_matches(']').parse::<u64>().ok())
}

fn started_line(instance: &str, pid: u32, ns: &[(&str, u64)]) -> serde_json::Value {
    let ns: serde_json::Map<String, serde_json::Value> = ns
        .iter()
        .map(|&(n, id)| (n.to_string(), json!(id)))
        .collect();
    json!({"event": "started", "instance": instance, "pid": pid, "namespaces": ns})
}

fn exited_line(instance: &str, status: i32) -> serde_json::Value {
    if libc::WIFSIGNALED(status) {
        json!({"event": "exited", "instance": instance, "signal": libc::WTERMSIG(status)})
    } else {
        json!({"event": "exited", "instance": instance, "exit-code": libc::WEXITSTATUS(status)})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn lines() {
        assert_eq!(namespace_id("net:[4026531840]"), Some(4026531840));
        assert_eq!(namespace_id("net:4026531840"), None);
        assert_eq!(namespace_id("net:[x]"), None);
        assert_eq!(
            started_line("ab", 7, &[("net", 5), ("pid", 6)]).to_string(),
            r#"{"event":"started","instance":"ab","namespaces":{"net":5,"pid":6},"pid":7}"#
        );
        assert_eq!(
            exited_line("ab", 3 << 8).to_string(),
            r#"{"event":"exited","exit-code":3,"instance":"ab"}"#
        );
        assert_eq!(
            exited_line("ab", libc::SIGKILL).to_string(),
            r#"{"event":"exited","instance":"ab","signal":9}"#
        );
    }

    #[test]
    fn open_and_write() {
        assert!(matches!(
            StatusFd::open(-1),
            Err(InstanceError::StatusFd(-1))
        ));
        // A descriptor number nothing holds (beyond any open one).
        let free = 1 << 20;
        assert_eq!(
            StatusFd::open(free).unwrap_err().to_string(),
            format!("--status-fd {free}: not an open file descriptor")
        );
        let (r, w) = nix::unistd::pipe().unwrap();
        let s = StatusFd::open(w.as_raw_fd()).unwrap();
        // SAFETY: fcntl with integer arguments.
        let flags = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        s.exited("ab", 0);
        drop(w);
        let mut text = String::new();
        std::fs::File::from(r).read_to_string(&mut text).unwrap();
        assert_eq!(
            text,
            "{\"event\":\"exited\",\"exit-code\":0,\"instance\":\"ab\"}\n"
        );
    }
}
