//! Running instances: the record each `antimony run` keeps while its
//! sandbox lives, and the checks that make a record trustworthy.
//!
//! Each run registers itself in `$XDG_RUNTIME_DIR/antimony/instances/ID/`
//! (or `/tmp/antimony-UID/instances/ID/` without a runtime folder): a folder
//! of mode 0700 that no sandbox can reach (antimony's runtime folder is
//! among the folders masked in every sandbox), holding `info.json` and
//! `control`, the unix socket on which the supervising antimony takes
//! `enter` and `stop` requests. The record is built in a hidden folder
//! (`.ID`) and renamed into place once its socket listens, so that nobody
//! ever sees (or removes as stale) a half-made record.
//!
//! A record is trusted only if its supervisor is alive and is the record's:
//! the PID answers `pidfd_open`, its start time (from /proc/PID/stat, which
//! a recycled PID cannot match) is the recorded one, it runs the same
//! antimony binary as the caller, it belongs to the caller, and the
//! process serving the record's control socket is that PID (the kernel's
//! peer credentials say so). A record that fails the first two checks is
//! stale (its antimony died, perhaps by SIGKILL) and is removed; one that
//! fails the others is refused, never listed, entered or stopped.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::host::Host;

/// What `info.json` holds; also the `ps --json` format (one object per
/// instance, in an array). Fields are only ever added.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Info {
    /// The run's id (`ANTIMONY_INSTANCE`).
    pub instance: String,
    pub profile: String,
    /// The program's PID on the host (the record is written once it runs;
    /// 0 only if it could not be read).
    pub pid: u32,
    /// The supervising antimony's PID.
    pub antimony_pid: u32,
    /// Its start time in clock ticks since boot (/proc/PID/stat field 22).
    pub antimony_start: u64,
    /// When the instance was registered (its program had just started),
    /// Unix seconds.
    pub started_at: u64,
    pub uid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("no running instance or profile `{0}` (see `antimony ps`)")]
    NotFound(String),
    #[error("`{name}` names {count} running instances ({ids}); name one by its id")]
    Ambiguous {
        name: String,
        count: usize,
        ids: String,
    },
    #[error("instance {id}: {why}; refused")]
    Untrusted { id: String, why: String },
    #[error("{context}: {}", crate::error::io_text(.source))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// The folder all instance records live in.
pub fn registry(host: &Host) -> PathBuf {
    host.runtime_base.join("instances")
}

/// A process's start time in clock ticks since boot, or `None` if it does
/// not exist.
pub fn start_time(pid: u32) -> Option<u64> {
    crate::procfs::read_stat_field(pid, 22)
}

/// Whether process `pid` runs the same executable as this one; an error
/// when that cannot be seen (from another user namespace, for one).
fn same_binary(pid: u32) -> std::io::Result<bool> {
    let ours = std::fs::metadata("/proc/self/exe")?;
    let theirs = std::fs::metadata(format!("/proc/{pid}/exe"))?;
    Ok(ours.dev() == theirs.dev() && ours.ino() == theirs.ino())
}

/// The registration of the running supervisor; removed on drop.
#[derive(Debug)]
pub struct Registration {
    pub dir: PathBuf,
    pub info: Info,
}

impl Registration {
    /// Registers this process as the supervisor of `instance`, in a hidden
    /// folder until `publish`. The registry's folder was made and checked
    /// before the run began (`Host::runtime_folder`, by `pipeline::run`).
    pub fn create(
        host: &Host,
        instance: &str,
        profile: &str,
        pid: u32,
    ) -> std::io::Result<Registration> {
        let base = registry(host);
        let dir = base.join(format!(".{instance}"));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let me = std::process::id();
        let info = Info {
            instance: instance.to_string(),
            profile: profile.to_string(),
            pid,
            antimony_pid: me,
            // Without it the record could not be told from a stale one.
            antimony_start: start_time(me).ok_or_else(|| {
                std::io::Error::other("cannot read this process's start time in /proc/self/stat")
            })?,
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            uid: host.uid,
        };
        let r = Registration { dir, info };
        r.write()?;
        Ok(r)
    }

    pub fn control_path(&self) -> PathBuf {
        self.dir.join("control")
    }

    /// Makes the record visible under its id (once its control socket
    /// listens: a socket keeps its address across the rename).
    pub fn publish(&mut self) -> std::io::Result<()> {
        let to = self.dir.with_file_name(&self.info.instance);
        std::fs::rename(&self.dir, &to)?;
        self.dir = to;
        Ok(())
    }

    /// Writes `info.json`, once, into the staging folder: nobody reads it
    /// before `publish` renames the folder into place.
    fn write(&self) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.dir.join("info.json"))?
            .write_all(&serde_json::to_vec(&self.info).unwrap_or_default())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A record found in the registry.
#[derive(Debug, Clone)]
pub struct Found {
    pub dir: PathBuf,
    pub info: Info,
}

impl Found {
    pub fn control_path(&self) -> PathBuf {
        self.dir.join("control")
    }
}

/// Why a record is not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Live,
    /// Its antimony is gone: remove it.
    Stale(String),
    /// Something else answers to it: leave it, refuse it.
    Forged(String),
}

/// Checks a record against the live process it names: everything but its
/// control socket, which `connect` checks. A hidden folder (`.ID`, a
/// record being made) is checked against its id without the dot.
pub fn verify(dir: &Path, uid: u32) -> (Verdict, Option<Info>) {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) => return (Verdict::Stale(e.to_string()), None),
    };
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return (
            Verdict::Forged("its folder is not a private folder of yours".into()),
            None,
        );
    }
    let info: Info = match std::fs::read(dir.join("info.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(i) => i,
        None => return (Verdict::Stale("no readable info.json".into()), None),
    };
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = name.strip_prefix('.').unwrap_or(name);
    if info.instance != name || info.uid != uid {
        return (
            Verdict::Forged("its record names another instance or user".into()),
            Some(info),
        );
    }
    let pid = info.antimony_pid;
    if pid == 0 || pid > i32::MAX as u32 {
        return (
            Verdict::Forged(format!("its record names no process ({pid})")),
            Some(info),
        );
    }
    match start_time(pid) {
        None => {
            return (
                Verdict::Stale(format!("its antimony (PID {pid}) is gone")),
                Some(info),
            );
        }
        Some(t) if t != info.antimony_start => {
            return (
                Verdict::Stale(format!("PID {pid} is now another process")),
                Some(info),
            );
        }
        Some(_) => {}
    }
    let owner = std::fs::metadata(format!("/proc/{pid}"))
        .map(|m| m.uid())
        .ok();
    if owner != Some(uid) {
        return (
            Verdict::Forged(format!("PID {pid} is not yours")),
            Some(info),
        );
    }
    match same_binary(pid) {
        Ok(true) => {}
        Ok(false) => {
            return (
                Verdict::Forged(format!("PID {pid} is not running antimony")),
                Some(info),
            );
        }
        Err(e) => {
            return (
                Verdict::Forged(format!(
                    "PID {pid} cannot be checked ({})",
                    crate::error::io_text(&e)
                )),
                Some(info),
            );
        }
    }
    (Verdict::Live, Some(info))
}

/// How long `connect` retries a control socket whose queue is full.
const CONNECT_PATIENCE: Duration = Duration::from_secs(2);

/// How long a hidden record folder may stay without its `info.json`
/// before it counts as left behind (its antimony died while making it).
const STAGING_PATIENCE: Duration = Duration::from_secs(60);

/// Connects to a verified record's control socket and checks that the
/// process serving it is the record's antimony (the kernel's peer
/// credentials: the PID and uid of the process that listens), still the
/// same process (its start time, again). Returns the connected socket,
/// blocking. Never waits more than a moment for a socket that does not
/// accept.
pub fn connect(found: &Found) -> Result<OwnedFd, String> {
    use nix::errno::Errno;
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, UnixAddr, getsockopt, socket, sockopt::PeerCredentials,
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| format!("cannot create a socket ({e})"))?;
    let path = found.control_path();
    let addr = UnixAddr::new(path.as_os_str().as_bytes())
        .map_err(|e| format!("its control socket has no usable address ({e})"))?;
    let deadline = Instant::now() + CONNECT_PATIENCE;
    loop {
        match nix::sys::socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(format!("its control socket does not answer ({e})")),
        }
    }
    let cred =
        getsockopt(&fd, PeerCredentials).map_err(|e| format!("cannot tell who answers ({e})"))?;
    let pid = found.info.antimony_pid;
    if cred.pid() as u32 != pid || cred.uid() != found.info.uid {
        return Err(format!(
            "its control socket is served by PID {} (uid {}), not by its antimony (PID {pid})",
            cred.pid(),
            cred.uid(),
        ));
    }
    // The PID was checked before the connection: it is still that process.
    if start_time(pid) != Some(found.info.antimony_start) {
        return Err(format!("its antimony (PID {pid}) has ended"));
    }
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .map_err(|e| format!("cannot use its control socket ({e})"))?;
    Ok(fd)
}

fn older_than(dir: &Path, age: Duration) -> bool {
    std::fs::symlink_metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|e| e > age)
}

/// What is wrong with the registry, if it exists but is not a private
/// folder of the user (it is then not used at all).
pub fn registry_problem(host: &Host) -> Option<String> {
    let base = registry(host);
    match host.check_runtime_folder(&base) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some(crate::error::io_text(&e)),
        _ => None,
    }
}

/// Every live instance whose control socket its antimony serves; stale
/// records are removed on the way, forged ones left alone and not listed.
pub fn list(host: &Host) -> Vec<Found> {
    let base = registry(host);
    if host.check_runtime_folder(&base).is_err() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(&base) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        // A hidden folder is a record being made.
        let making = e.file_name().as_bytes().starts_with(b".");
        match verify(&dir, host.uid) {
            (Verdict::Live, Some(info)) if !making => {
                let found = Found { dir, info };
                if connect(&found).is_ok() {
                    out.push(found);
                }
            }
            // One being made is stale only once its antimony is gone (or it
            // has waited for its info.json far too long).
            (Verdict::Stale(_), info)
                if !making || info.is_some() || older_than(&dir, STAGING_PATIENCE) =>
            {
                let _ = std::fs::remove_dir_all(&dir);
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| {
        (a.info.started_at, a.info.antimony_start, &a.info.instance).cmp(&(
            b.info.started_at,
            b.info.antimony_start,
            &b.info.instance,
        ))
    });
    out
}

/// The live instances `name` names: its id, the ids it begins, or the
/// instances of the profile of that name (looked over once). The caller
/// still `connect`s to each, which checks its control socket.
pub fn matching(host: &Host, name: &str) -> Result<Vec<Found>, InstanceError> {
    if name.is_empty() {
        return Err(InstanceError::NotFound(name.into()));
    }
    let base = registry(host);
    if let Err(e) = host.check_runtime_folder(&base) {
        return Err(match e.kind() {
            std::io::ErrorKind::NotFound => InstanceError::NotFound(name.into()),
            _ => InstanceError::Io {
                context: "the instance registry".into(),
                source: e,
            },
        });
    }
    // An exact id is checked directly, so a forged record is refused by
    // name rather than silently skipped.
    let exact = base.join(name);
    if name.chars().all(|c| c.is_ascii_hexdigit()) && std::fs::symlink_metadata(&exact).is_ok() {
        return match verify(&exact, host.uid) {
            (Verdict::Live, Some(info)) => Ok(vec![Found { dir: exact, info }]),
            (Verdict::Stale(why), _) => {
                let _ = std::fs::remove_dir_all(&exact);
                Err(InstanceError::Untrusted {
                    id: name.into(),
                    why: format!("stale record ({why}), removed"),
                })
            }
            (Verdict::Forged(why), _) => Err(InstanceError::Untrusted {
                id: name.into(),
                why,
            }),
            (Verdict::Live, None) => Err(InstanceError::Untrusted {
                id: name.into(),
                why: "no record".into(),
            }),
        };
    }
    let all: Vec<Found> = list(host)
        .into_iter()
        .filter(|f| f.info.profile == name || f.info.instance.starts_with(name))
        .collect();
    if all.is_empty() {
        return Err(InstanceError::NotFound(name.into()));
    }
    Ok(all)
}

/// The one instance `name` names (see `matching`).
pub fn find(host: &Host, name: &str) -> Result<Found, InstanceError> {
    let mut all = matching(host, name)?;
    if all.len() == 1 {
        return Ok(all.remove(0));
    }
    Err(ambiguous(name, &all))
}

/// `name` names several instances.
pub fn ambiguous(name: &str, all: &[Found]) -> InstanceError {
    InstanceError::Ambiguous {
        name: name.into(),
        count: all.len(),
        ids: all
            .iter()
            .map(|f| f.info.instance.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The protocol on an instance's `control` socket (`SOCK_SEQPACKET`).
/// Requests start with the same 16-byte header as the sandbox channel
/// (`sandbox::protocol`); replies are that channel's messages (`Spawned`,
/// `SpawnFailed`, `Reaped`) for the entered command. A `Stop` is answered
/// with `STOPPING` at once, then by the supervisor closing the connection
/// and exiting once the instance has ended. A supervisor that refuses a
/// client closes the connection without a word.
pub mod wire {
    use crate::pty::{SETTINGS_LEN, Settings};
    use crate::sandbox::protocol::{Terminal, header, words};

    /// Run a command inside: the header's second word a terminal mask (as
    /// in the sandbox channel's `Exec`), then the terminal settings if it
    /// is not 0, the argument count and NUL-terminated arguments; with it,
    /// a descriptor for each of the command's stdin, stdout and stderr
    /// that is not the new terminal (pipes the client relays: never one
    /// of the client's own). `Spawned` carries the terminal's master.
    pub const ENTER: u32 = 200;
    /// Pass a signal on to the entered command.
    pub const SIGNAL: u32 = 201;
    /// Stop the instance.
    pub const STOP: u32 = 202;
    /// The supervisor's answer to `STOP`: the instance is being stopped.
    pub const STOPPING: u32 = 203;

    pub fn enter_request(argv: &[&[u8]], terminal: Option<&Terminal>) -> Option<Vec<u8>> {
        if argv.is_empty() || argv.iter().any(|a| a.contains(&0)) {
            return None;
        }
        let mask = terminal.map_or(0, |t| t.mask & 0b111);
        let mut out = header(ENTER, mask, 0, 0).to_vec();
        if let (Some(t), true) = (terminal, mask != 0) {
            out.extend_from_slice(&t.settings.encode());
        }
        out.extend_from_slice(&(argv.len() as u32).to_ne_bytes());
        for a in argv {
            out.extend_from_slice(a);
            out.push(0);
        }
        (out.len() <= crate::sandbox::protocol::MAX_REQUEST).then_some(out)
    }

    /// The arguments and the terminal asked for of an `ENTER` request.
    pub fn parse_enter(buf: &[u8]) -> Option<(Vec<Vec<u8>>, Option<Terminal>)> {
        let (kind, mask, ..) = words(buf)?;
        if kind != ENTER || mask > 0b111 {
            return None;
        }
        let mut rest = &buf[16..];
        let terminal = if mask != 0 {
            let settings = Settings::decode(rest)?;
            rest = &rest[SETTINGS_LEN..];
            Some(Terminal { mask, settings })
        } else {
            None
        };
        if rest.len() < 4 {
            return None;
        }
        let argc = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let parts: Vec<Vec<u8>> = rest[4..]
            .split(|&b| b == 0)
            .take(argc)
            .map(<[u8]>::to_vec)
            .collect();
        (argc > 0 && parts.len() == argc && argc <= crate::sandbox::protocol::MAX_STRINGS)
            .then_some((parts, terminal))
    }

    pub fn signal_request(sig: i32) -> [u8; 16] {
        header(SIGNAL, 0, 0, sig)
    }

    pub fn stop_request() -> [u8; 16] {
        header(STOP, 0, 0, 0)
    }

    pub fn stopping_reply() -> [u8; 16] {
        header(STOPPING, 0, 0, 0)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn enter_round_trip() {
            let r = super::enter_request(&[b"/bin/sh", b"-c", b"id"], None).unwrap();
            let (argv, terminal) = super::parse_enter(&r).unwrap();
            assert_eq!(
                argv,
                vec![b"/bin/sh".to_vec(), b"-c".to_vec(), b"id".to_vec()]
            );
            assert!(terminal.is_none());
            assert!(super::enter_request(&[], None).is_none());
            // With a terminal: its mask and settings come back.
            // SAFETY: all-zero termios and winsize are valid.
            let mut settings: crate::pty::Settings = unsafe { std::mem::zeroed() };
            settings.size.ws_row = 24;
            let t = super::Terminal {
                mask: 0b101,
                settings,
            };
            let r = super::enter_request(&[b"true"], Some(&t)).unwrap();
            let (argv, terminal) = super::parse_enter(&r).unwrap();
            assert_eq!(argv, vec![b"true".to_vec()]);
            let terminal = terminal.unwrap();
            assert_eq!(terminal.mask, 0b101);
            assert_eq!(terminal.settings.size.ws_row, 24);
        }
    }
}
