//! Run records (Sensu publishes each hook's output, status, start time and
//! duration): every run appends one JSON record, a line, to
//! `$XDG_STATE_HOME/antimony/runs/log.jsonl`, read back by `antimony log`.
//! The newest `KEEP` records are kept; older ones, and any older than
//! `MAX_AGE_DAYS`, are removed now and then when one is written.
//!
//! One file appended to, not a file per run: creating a file (and, for
//! pruning, removing one) costs a file system far more than a write to a
//! file that exists — on ext4, a file per run cost a launch 0.12 ms (median,
//! in antimony) and as much again in the file system's own work. A writer
//! holds an exclusive `flock` on the log while it appends (and prunes);
//! pruning writes the kept lines to a new file and renames it over the
//! log, so a writer that waited for the lock checks that its descriptor is
//! still the log's, and opens it again if not. A line cut short by a crash
//! is skipped when read, and dropped at the next pruning.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How many records are kept.
pub const KEEP: usize = 200;
/// Records older than this are removed.
pub const MAX_AGE_DAYS: u64 = 30;
/// How much of a hook's output a record keeps.
pub const OUTPUT_HEAD: usize = 4096;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub profile: String,
    pub instance: String,
    /// Unix time, seconds.
    pub started_at: f64,
    pub duration_ms: u64,
    pub program: String,
    pub arguments: Vec<String>,
    /// How the program ended: `exited`, `signaled`, `launch-failed`, or `interrupted`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// antimony's own exit status.
    pub status: u8,
    pub hooks: Vec<HookRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HookRecord {
    pub event: String,
    pub name: String,
    pub started_at: f64,
    pub duration_ms: u64,
    /// `ok`, `exit N`, `signal N`, `timed out`, `cancelled`, `not started`,
    /// `skipped`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The first `OUTPUT_HEAD` bytes of its stdout and stderr, as they came.
    pub output: String,
    pub output_truncated: bool,
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub fn runs_dir(state_home: &Path) -> PathBuf {
    state_home.join("antimony/runs")
}

/// The log in a runs folder.
pub fn log_file(dir: &Path) -> PathBuf {
    dir.join("log.jsonl")
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for a Unix time.
pub fn format_time(t: f64) -> String {
    let secs = t.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Appends a record, and prunes old ones about one time in sixteen.
pub fn write(dir: &Path, record: &RunRecord) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let path = log_file(dir);
    // Reading the whole log costs more than appending to it: about one run
    // in sixteen prunes (which one is random, the run's id).
    let prunes = record.instance.starts_with('0');
    for _ in 0..8 {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)?;
        // SAFETY: flock on a descriptor we own; released when it closes.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Pruned (replaced) while we waited: append to the new log.
        let meta = f.metadata()?;
        if meta.ino() != std::fs::metadata(&path)?.ino() {
            continue;
        }
        // After a record a crash cut short, on a line of our own.
        let mut last = [b'\n'];
        if meta.len() > 0 {
            use std::os::unix::fs::FileExt;
            f.read_exact_at(&mut last, meta.len() - 1)?;
        }
        if last[0] != b'\n' {
            f.write_all(b"\n")?;
        }
        // Not synced: a record lost in a crash costs less than a sync per run.
        f.write_all(&line)?;
        if prunes {
            prune(&path);
        }
        return Ok(());
    }
    Err(std::io::Error::other("the run log kept being replaced"))
}

/// What pruning reads of a record.
#[derive(Deserialize)]
struct Stamp {
    started_at: f64,
}

/// Keeps the `KEEP` records that started last, of those younger than
/// `MAX_AGE_DAYS`, in the log's order; and only whole records. The caller
/// holds the log's lock.
fn prune(path: &Path) {
    let Ok(all) = std::fs::read(path) else {
        return;
    };
    let cutoff = now() - (MAX_AGE_DAYS * 86400) as f64;
    let mut lines: Vec<(f64, &[u8])> = all
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .filter_map(|l| Some((serde_json::from_slice::<Stamp>(l).ok()?.started_at, l)))
        .filter(|(t, _)| *t >= cutoff)
        .collect();
    if lines.len() > KEEP {
        // A record is appended when its run ends: the log's order is not
        // quite the order the runs started in.
        let mut times: Vec<f64> = lines.iter().map(|(t, _)| *t).collect();
        times.sort_by(|a, b| b.total_cmp(a));
        let oldest_kept = times[KEEP - 1];
        // Records that started at that very time: as many as fit.
        let mut ties = KEEP - times.iter().filter(|&&t| t > oldest_kept).count();
        lines.retain(|(t, _)| {
            if *t > oldest_kept {
                true
            } else if *t == oldest_kept && ties > 0 {
                ties -= 1;
                true
            } else {
                false
            }
        });
    }
    let kept: Vec<&[u8]> = lines.iter().map(|(_, l)| *l).collect();
    if kept.iter().map(|l| l.len()).sum::<usize>() == all.len() {
        return;
    }
    let _ = crate::files::write_atomic(path, &kept.concat(), 0o600, false);
}

/// The newest records first, optionally of one profile only.
pub fn read(dir: &Path, profile: Option<&str>, limit: usize) -> Vec<RunRecord> {
    let all = std::fs::read(log_file(dir)).unwrap_or_default();
    all.split(|&b| b == b'\n')
        .rev()
        .filter_map(|l| serde_json::from_slice::<RunRecord>(l).ok())
        .filter(|r| profile.is_none_or(|p| r.profile == p))
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch folder, removed when dropped (a failing test included).
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("antimony-records-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn time_format() {
        assert_eq!(format_time(0.0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_795_000_000.0), "2026-11-18 11:06:40");
        assert_eq!(format_time(951_782_400.0), "2000-02-29 00:00:00");
    }

    #[test]
    fn write_read_prune() {
        let scratch = Scratch::new("w");
        let dir = scratch.0.clone();
        let mut r = record("i", now());
        for i in 0..(KEEP + 3) {
            // Ids that begin with 0: the runs that prune.
            r.instance = format!("0i{i}");
            r.started_at += 1.0;
            write(&dir, &r).unwrap();
        }
        let all = read(&dir, None, usize::MAX);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].instance, format!("0i{}", KEEP + 2));
        assert!(read(&dir, Some("other"), 10).is_empty());
    }

    fn record(instance: &str, started_at: f64) -> RunRecord {
        RunRecord {
            profile: "p".into(),
            instance: instance.into(),
            started_at,
            duration_ms: 1,
            program: "/bin/true".into(),
            arguments: vec![],
            outcome: "exited".into(),
            exit_code: Some(0),
            signal: None,
            error: None,
            status: 0,
            hooks: vec![],
        }
    }

    #[test]
    fn pruning_keeps_the_runs_that_started_last_and_whole_lines() {
        let scratch = Scratch::new("p");
        let dir = scratch.0.clone();
        std::fs::create_dir_all(&dir).unwrap();
        let base = now() - 10_000.0;
        let mut log = Vec::new();
        let aged = record("aged", now() - (MAX_AGE_DAYS as f64 + 1.0) * 86400.0);
        log.extend(serde_json::to_vec(&aged).unwrap());
        log.push(b'\n');
        // Appended in an order that is not the order they started in.
        let n = KEEP + 5;
        for i in 0..n {
            let k = (i * 7) % n;
            log.extend(serde_json::to_vec(&record(&format!("r{k}"), base + k as f64)).unwrap());
            log.push(b'\n');
        }
        // A record a crash cut short.
        log.extend(b"{\"profile\": \"p\", \"inst");
        std::fs::write(log_file(&dir), &log).unwrap();
        // Skipped when read.
        assert_eq!(read(&dir, None, usize::MAX).len(), n + 1);
        write(&dir, &record("0new", base + n as f64)).unwrap();
        let all = read(&dir, None, usize::MAX);
        assert_eq!(all.len(), KEEP);
        let mut kept: Vec<String> = all.iter().map(|r| r.instance.clone()).collect();
        kept.sort();
        let mut want: Vec<String> = (n + 1 - KEEP..n).map(|k| format!("r{k}")).collect();
        want.push("0new".into());
        want.sort();
        assert_eq!(kept, want);
        assert!(std::fs::read(log_file(&dir)).unwrap().ends_with(b"\n"));
    }

    #[test]
    fn writers_at_once_lose_nothing() {
        let scratch = Scratch::new("c");
        let dir = scratch.0.clone();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        // Every fourth one prunes (and so replaces the log).
                        let id = if i % 4 == 0 {
                            format!("0t{t}-{i}")
                        } else {
                            format!("t{t}-{i}")
                        };
                        write(&dir, &record(&id, now())).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(read(&dir, None, usize::MAX).len(), 8 * 20);
    }
}
