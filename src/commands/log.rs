//! `antimony log`: recent runs from the run records.

use crate::hooks::records::{self, RunRecord};
use crate::host::Host;
use crate::text::escape_line;

fn result(r: &RunRecord) -> String {
    match (r.outcome.as_str(), r.exit_code, r.signal) {
        ("exited", Some(c), _) => format!("exit {c}"),
        ("signaled", _, Some(s)) => format!("signal {s}"),
        ("launch-failed", ..) => "launch failed".into(),
        ("interrupted", ..) => "interrupted".into(),
        (other, ..) => escape_line(other).into_owned(),
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.3}s", ms as f64 / 1000.0)
}

pub fn log(host: &Host, profile: Option<&str>, limit: usize, json: bool, hooks: bool) -> u8 {
    let dir = records::runs_dir(&host.state_home);
    let mut list = records::read(&dir, profile, limit);
    if json {
        list.reverse();
        // Hook output and messages from inside a sandbox: inert JSON.
        outln!(
            "{}",
            crate::text::to_json_pretty(&list).unwrap_or_else(|_| "[]".into())
        );
        return 0;
    }
    list.reverse();
    let width = list
        .iter()
        .map(|r| escape_line(&r.profile).len())
        .max()
        .unwrap_or(7)
        .max(7);
    outln!(
        "{:<19}  {:<width$}  {:<16}  {:>9}  {:<13}  HOOKS",
        "STARTED (UTC)",
        "PROFILE",
        "INSTANCE",
        "DURATION",
        "RESULT"
    );
    for r in &list {
        let failed = r
            .hooks
            .iter()
            .filter(|h| h.status != "ok" && h.status != "skipped")
            .count();
        let hooks_col = if failed > 0 {
            format!("{} ({failed} failed)", r.hooks.len())
        } else {
            r.hooks.len().to_string()
        };
        outln!(
            "{:<19}  {:<width$}  {:<16}  {:>9}  {:<13}  {}",
            records::format_time(r.started_at),
            escape_line(&r.profile),
            escape_line(&r.instance),
            seconds(r.duration_ms),
            result(r),
            hooks_col
        );
        if hooks {
            for h in &r.hooks {
                outln!(
                    "    {:<8}  {:<32}  {:>9}  {}{}",
                    escape_line(&h.event),
                    escape_line(&h.name),
                    seconds(h.duration_ms),
                    escape_line(&h.status),
                    h.error
                        .as_ref()
                        .map(|e| format!(": {}", escape_line(e)))
                        .unwrap_or_default()
                );
            }
        }
    }
    0
}

/// `antimony log PROFILE --explain`: the last denial report of PROFILE.
pub fn explain(host: &Host, profile: &str) -> u8 {
    let file = crate::learn::explain::report_file(&host.state_home, profile);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            out!("{}", crate::text::escape_lines(&text));
            0
        }
        Err(_) => {
            crate::commands::report(&format!(
                "no denial report for {}: run it with `antimony run --explain {}`",
                escape_line(profile),
                escape_line(profile)
            ));
            crate::error::EXIT_LAUNCHER_FAILURE
        }
    }
}
