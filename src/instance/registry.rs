//! The registry: the record each `antimony run` keeps while its sandbox
//! lives, and the checks that make a record trustworthy.
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
//! peer credentials say so: `client::connect`). A record that fails the
//! first two checks is stale (its antimony died, perhaps by SIGKILL) and is
//! removed; one that fails the others is refused, never listed, entered or
//! stopped.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::InstanceError;
use crate::host::Host;

/// A random id for a run: 16 hex digits (`ANTIMONY_INSTANCE`, the
/// record's folder name).
pub fn instance_id() -> String {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom fills the buffer it is given.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        buf = (t.as_nanos() as u64 ^ u64::from(std::process::id())).to_ne_bytes();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

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

/// What a record is, checked against the live process it names.
#[derive(Debug)]
pub enum Verdict {
    /// Its antimony runs (its control socket is still to be checked:
    /// `client::connect`).
    Live(Info),
    /// Its antimony is gone: remove it.
    Stale(Stale),
    /// Something else answers to it: leave it, refuse it.
    Forged(Forged),
}

/// Why a record is stale: what it names has ended (or it never was a
/// whole record).
#[derive(Debug, thiserror::Error)]
pub enum Stale {
    /// Its folder is gone (removed under us).
    #[error("{0}")]
    Vanished(std::io::Error),
    #[error("no readable info.json")]
    NoInfo,
    #[error("its antimony (PID {0}) is gone")]
    Gone(u32),
    /// The PID's start time is not the recorded one.
    #[error("PID {0} is now another process")]
    Recycled(u32),
}

impl Stale {
    /// Whether its `info.json` was read (its antimony got that far).
    pub fn had_info(&self) -> bool {
        matches!(self, Stale::Gone(_) | Stale::Recycled(_))
    }
}

/// Why a record is refused though something answers to it.
#[derive(Debug, thiserror::Error)]
pub enum Forged {
    /// Not a folder of mode 0700 of the user's (a symlink, another's).
    #[error("its folder is not a private folder of yours")]
    NotPrivate,
    /// Its `info.json` names another id than its folder, or another uid.
    #[error("its record names another instance or user")]
    Mismatch,
    #[error("its record names no process ({0})")]
    NoProcess(u32),
    #[error("PID {0} is not yours")]
    NotYours(u32),
    #[error("PID {0} is not running antimony")]
    NotAntimony(u32),
    /// Its executable cannot be seen (from another user namespace, for
    /// one).
    #[error("PID {pid} cannot be checked ({})", crate::error::io_text(.source))]
    Unchecked { pid: u32, source: std::io::Error },
}

/// Checks what a record says against the folder it is in (`name`, without
/// the dot of a record being made) and the user: the record's supervisor
/// PID, if the record is the user's and names one.
pub fn check_info(info: &Info, name: &str, uid: u32) -> Result<u32, Forged> {
    if info.instance != name || info.uid != uid {
        return Err(Forged::Mismatch);
    }
    match info.antimony_pid {
        0 => Err(Forged::NoProcess(0)),
        pid if pid > i32::MAX as u32 => Err(Forged::NoProcess(pid)),
        pid => Ok(pid),
    }
}

/// Checks a record against the live process it names: everything but its
/// control socket, which `client::connect` checks. A hidden folder (`.ID`,
/// a record being made) is checked against its id without the dot.
pub fn verify(dir: &Path, uid: u32) -> Verdict {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) => return Verdict::Stale(Stale::Vanished(e)),
    };
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        return Verdict::Forged(Forged::NotPrivate);
    }
    let Some(info) = std::fs::read(dir.join("info.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Info>(&b).ok())
    else {
        return Verdict::Stale(Stale::NoInfo);
    };
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = name.strip_prefix('.').unwrap_or(name);
    let pid = match check_info(&info, name, uid) {
        Ok(pid) => pid,
        Err(why) => return Verdict::Forged(why),
    };
    match start_time(pid) {
        None => return Verdict::Stale(Stale::Gone(pid)),
        Some(t) if t != info.antimony_start => return Verdict::Stale(Stale::Recycled(pid)),
        Some(_) => {}
    }
    let owner = std::fs::metadata(format!("/proc/{pid}"))
        .map(|m| m.uid())
        .ok();
    if owner != Some(uid) {
        return Verdict::Forged(Forged::NotYours(pid));
    }
    match same_binary(pid) {
        Ok(true) => Verdict::Live(info),
        Ok(false) => Verdict::Forged(Forged::NotAntimony(pid)),
        Err(source) => Verdict::Forged(Forged::Unchecked { pid, source }),
    }
}

/// How long a hidden record folder may stay without its `info.json`
/// before it counts as left behind (its antimony died while making it).
const STAGING_PATIENCE: Duration = Duration::from_secs(60);

fn older_than(dir: &Path, age: Duration) -> bool {
    std::fs::symlink_metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|e| e > age)
}

/// What is wrong with the registry, if it exists but is not a private
/// folder of the user (it is then not used at all).
pub fn registry_problem(host: &Host) -> Option<std::io::Error> {
    let base = registry(host);
    match host.check_runtime_folder(&base) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Some(e),
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
            Verdict::Live(info) if !making => {
                let found = Found { dir, info };
                if super::client::connect(&found).is_ok() {
                    out.push(found);
                }
            }
            // One being made is stale only once its antimony is gone (or it
            // has waited for its info.json far too long).
            Verdict::Stale(why)
                if !making || why.had_info() || older_than(&dir, STAGING_PATIENCE) =>
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
/// still `client::connect`s to each, which checks its control socket.
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
            Verdict::Live(info) => Ok(vec![Found { dir: exact, info }]),
            Verdict::Stale(why) => {
                let _ = std::fs::remove_dir_all(&exact);
                Err(InstanceError::StaleRecord {
                    id: name.into(),
                    why,
                })
            }
            Verdict::Forged(why) => Err(InstanceError::Untrusted {
                id: name.into(),
                why,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A private scratch folder, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir = std::env::temp_dir()
                .join(format!("antimony-registry-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
            Scratch(dir)
        }

        /// A record folder `name` with `info.json` holding `text`.
        fn record(&self, name: &str, text: Option<&str>) -> PathBuf {
            let dir = self.0.join(name);
            std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
            if let Some(text) = text {
                std::fs::write(dir.join("info.json"), text).unwrap();
            }
            dir
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn uid() -> u32 {
        nix::unistd::getuid().as_raw()
    }

    fn info(id: &str, pid: u32, start: u64) -> Info {
        Info {
            instance: id.into(),
            profile: "minimal".into(),
            pid: 0,
            antimony_pid: pid,
            antimony_start: start,
            started_at: 0,
            uid: uid(),
        }
    }

    fn json(i: &Info) -> String {
        serde_json::to_string(i).unwrap()
    }

    #[test]
    fn ids() {
        let a = instance_id();
        let b = instance_id();
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn what_a_record_says() {
        let me = uid();
        let i = info("00aa", 42, 1);
        assert!(matches!(check_info(&i, "00aa", me), Ok(42)));
        assert!(matches!(check_info(&i, "00ab", me), Err(Forged::Mismatch)));
        assert!(matches!(
            check_info(&i, "00aa", me.wrapping_add(1)),
            Err(Forged::Mismatch)
        ));
        assert!(matches!(
            check_info(&info("00aa", 0, 1), "00aa", me),
            Err(Forged::NoProcess(0))
        ));
        // Not a PID at all (kill(-1) territory once cast).
        assert!(matches!(
            check_info(&info("00aa", u32::MAX, 1), "00aa", me),
            Err(Forged::NoProcess(u32::MAX))
        ));
    }

    #[test]
    fn garbled_and_forged_records() {
        let s = Scratch::new("verify");
        let me = uid();
        // Gone from under us.
        let v = verify(&s.0.join("0001"), me);
        assert!(
            matches!(&v, Verdict::Stale(w @ Stale::Vanished(_)) if !w.had_info()),
            "{v:?}"
        );
        // Not a private folder: a file, a symlink to a good folder, mode 0750.
        std::fs::write(s.0.join("0002"), "{}").unwrap();
        let good = s.record("0003", Some(&json(&info("0003", 1, 1))));
        std::os::unix::fs::symlink(&good, s.0.join("0004")).unwrap();
        let open = s.record("0005", None);
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o750)).unwrap();
        for name in ["0002", "0004", "0005"] {
            let v = verify(&s.0.join(name), me);
            assert!(
                matches!(v, Verdict::Forged(Forged::NotPrivate)),
                "{name}: {v:?}"
            );
        }
        // Another user's folder (only root can make one).
        if me == 0 {
            let theirs = s.record("0006", Some(&json(&info("0006", 1, 1))));
            nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            let v = verify(&theirs, me);
            assert!(matches!(v, Verdict::Forged(Forged::NotPrivate)), "{v:?}");
        }
        // No info.json, garbage, JSON of another shape, an unknown field
        // only: a record that never was whole is stale.
        let garbled = [
            None,
            Some("\u{0}\u{1}not json"),
            Some("{\"instance\": \"0007\"}"),
            Some("[1, 2, 3]"),
            Some(""),
        ];
        for (n, text) in garbled.into_iter().enumerate() {
            let name = format!("001{n}");
            let dir = s.record(&name, text);
            let v = verify(&dir, me);
            assert!(
                matches!(&v, Verdict::Stale(w @ Stale::NoInfo) if !w.had_info()),
                "{text:?}: {v:?}"
            );
        }
        // A record copied from another instance's folder, or naming
        // another user.
        let dir = s.record("0020", Some(&json(&info("0021", 1, 1))));
        assert!(matches!(
            verify(&dir, me),
            Verdict::Forged(Forged::Mismatch)
        ));
        let mut theirs = info("0022", 1, 1);
        theirs.uid = me.wrapping_add(1);
        let dir = s.record("0022", Some(&json(&theirs)));
        assert!(matches!(
            verify(&dir, me),
            Verdict::Forged(Forged::Mismatch)
        ));
        // A hidden folder (a record being made) is checked against its id
        // without the dot; with the dot in the record, it is forged.
        let dir = s.record(".0023", Some(&json(&info(".0023", 1, 1))));
        assert!(matches!(
            verify(&dir, me),
            Verdict::Forged(Forged::Mismatch)
        ));
        // PIDs that are none.
        for pid in [0, u32::MAX] {
            let dir = s.record(
                &format!("003{pid}"),
                Some(&json(&info(&format!("003{pid}"), pid, 1))),
            );
            let v = verify(&dir, me);
            assert!(
                matches!(v, Verdict::Forged(Forged::NoProcess(p)) if p == pid),
                "{v:?}"
            );
        }
    }

    #[test]
    fn stale_and_live_records() {
        let s = Scratch::new("live");
        let me = uid();
        // No process has PID i32::MAX (pid_max is at most 2^22): stale,
        // and known to have been a whole record.
        let pid = i32::MAX as u32;
        let dir = s.record("0001", Some(&json(&info("0001", pid, 1))));
        let v = verify(&dir, me);
        assert!(
            matches!(&v, Verdict::Stale(w @ Stale::Gone(p)) if *p == pid && w.had_info()),
            "{v:?}"
        );
        // This process, with another start time: a recycled PID.
        let pid = std::process::id();
        let start = start_time(pid).unwrap();
        let dir = s.record("0002", Some(&json(&info("0002", pid, start + 1))));
        let v = verify(&dir, me);
        assert!(
            matches!(&v, Verdict::Stale(w @ Stale::Recycled(p)) if *p == pid && w.had_info()),
            "{v:?}"
        );
        // This process, as it is: the same binary as the caller, the
        // caller's, alive. Also while being made (hidden).
        for name in ["0003", ".0004"] {
            let id = name.trim_start_matches('.');
            let i = info(id, pid, start);
            let dir = s.record(name, Some(&json(&i)));
            match verify(&dir, me) {
                Verdict::Live(got) => assert_eq!(got, i),
                v => panic!("{name}: {v:?}"),
            }
        }
    }

    #[test]
    fn several_named() {
        let found = |id: &str| Found {
            dir: PathBuf::from("/nonexistent").join(id),
            info: info(id, 1, 1),
        };
        let e = ambiguous("ab", &[found("ab01"), found("ab02")]);
        assert_eq!(
            e.to_string(),
            "`ab` names 2 running instances (ab01, ab02); name one by its id"
        );
    }
}
