//! Run records (Sensu publishes each hook's output, status, start time and
//! duration): every run writes one JSON record under
//! `$XDG_STATE_HOME/antimony/runs/`, read back by `antimony log`. The
//! newest `KEEP` records are kept; older ones, and any older than
//! `MAX_AGE_DAYS`, are removed when a new one is written.

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

/// Writes a record and prunes old ones.
pub fn write(dir: &Path, record: &RunRecord) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // Names sort by time: milliseconds since the epoch, zero-padded.
    let name = format!(
        "{:015}-{}.json",
        (record.started_at * 1000.0) as u64,
        record.instance
    );
    // Not synced: a record lost in a crash costs less than a sync per run.
    crate::files::write_atomic(
        &dir.join(&name),
        &serde_json::to_vec_pretty(record).unwrap_or_default(),
        0o600,
        false,
    )?;
    // Listing the folder costs more than the record: about one run in
    // sixteen prunes (which one is random, the run's id).
    if record.instance.starts_with('0') {
        prune(dir);
    }
    Ok(())
}

fn record_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_str()?.to_string();
                    (name.ends_with(".json") && !name.starts_with('.')).then(|| (name, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn prune(dir: &Path) {
    let files = record_files(dir);
    let cutoff_ms = ((now() - (MAX_AGE_DAYS * 86400) as f64) * 1000.0).max(0.0) as u64;
    let excess = files.len().saturating_sub(KEEP);
    for (i, (name, path)) in files.iter().enumerate() {
        let time: u64 = name
            .split('-')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        if i < excess || time < cutoff_ms {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The newest records first, optionally of one profile only.
pub fn read(dir: &Path, profile: Option<&str>, limit: usize) -> Vec<RunRecord> {
    record_files(dir)
        .into_iter()
        .rev()
        .filter_map(|(_, p)| serde_json::from_slice::<RunRecord>(&std::fs::read(p).ok()?).ok())
        .filter(|r| profile.is_none_or(|p| r.profile == p))
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(format_time(0.0), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_795_000_000.0), "2026-11-18 11:06:40");
        assert_eq!(format_time(951_782_400.0), "2000-02-29 00:00:00");
    }

    #[test]
    fn write_read_prune() {
        let dir = std::env::temp_dir().join(format!("antimony-records-{}", std::process::id()));
        let mut r = RunRecord {
            profile: "p".into(),
            instance: "i".into(),
            started_at: now(),
            duration_ms: 1,
            program: "/bin/true".into(),
            arguments: vec![],
            outcome: "exited".into(),
            exit_code: Some(0),
            signal: None,
            error: None,
            status: 0,
            hooks: vec![],
        };
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
