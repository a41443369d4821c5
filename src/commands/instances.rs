//! `antimony ps`, `enter` and `stop`: what they print and return. Finding,
//! checking and talking to an instance is `instance`'s (`registry`,
//! `client`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::error::Error;
use crate::host::Host;
use crate::instance::{self, Found, client};

fn uptime(started_at: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let s = now.saturating_sub(started_at);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

pub fn ps(host: &Host, json: bool) -> Result<u8, Error> {
    if let Some(e) = instance::registry_problem(host) {
        crate::commands::warn(&format!(
            "the instance registry is not used: {}",
            crate::error::io_text(&e)
        ));
    }
    let list = instance::list(host);
    if json {
        let infos: Vec<&instance::Info> = list.iter().map(|f| &f.info).collect();
        outln!(
            "{}",
            crate::text::to_json_pretty(&infos).unwrap_or_else(|_| "[]".into())
        );
        return Ok(0);
    }
    let width = list
        .iter()
        .map(|f| f.info.profile.len())
        .max()
        .unwrap_or(7)
        .max(7);
    outln!(
        "{:<16}  {:<width$}  {:>8}  {:<19}  UPTIME",
        "INSTANCE",
        "PROFILE",
        "PID",
        "STARTED (UTC)"
    );
    for f in &list {
        let i = &f.info;
        outln!(
            "{:<16}  {:<width$}  {:>8}  {:<19}  {}",
            i.instance,
            i.profile,
            i.pid,
            crate::hooks::records::format_time(i.started_at as f64),
            uptime(i.started_at)
        );
    }
    Ok(0)
}

pub fn enter(host: &Host, name: &str, command: Vec<OsString>) -> Result<u8, Error> {
    let found = instance::find(host, name)?;
    let command = if command.is_empty() {
        vec![OsString::from("/bin/sh")]
    } else {
        command
    };
    let argv: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
    let status = client::enter(&found, &argv)?;
    Ok(crate::pipeline::exit_code(status))
}

pub fn stop(host: &Host, name: &str) -> Result<u8, Error> {
    // A profile name stops all its instances; an id (or prefix) one.
    let targets: Vec<Found> = instance::matching(host, name)?;
    if targets.len() > 1 && !targets.iter().all(|f| f.info.profile == name) {
        // An id prefix that names several: not for guessing.
        return Err(instance::ambiguous(name, &targets).into());
    }
    let mut failed = false;
    // All are asked first, so that they stop together.
    let mut asked = Vec::new();
    for f in &targets {
        match client::ask_stop(f) {
            Ok(Some(s)) => asked.push(s),
            Ok(None) => eprintln!("antimony: {} had already ended", f.info.instance),
            Err(e) => {
                crate::commands::report(&e);
                failed = true;
            }
        }
    }
    for s in asked {
        let id = s.id().to_string();
        match s.wait() {
            Ok(()) => eprintln!("antimony: stopped {id}"),
            Err(e) => {
                crate::commands::report(&e);
                failed = true;
            }
        }
    }
    // Each failure was reported above.
    Ok(if failed {
        crate::error::EXIT_LAUNCHER_FAILURE
    } else {
        0
    })
}
