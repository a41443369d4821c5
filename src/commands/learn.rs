//! `antimony learn PROGRAM`: record a run, draft a profile (`learn`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::host::{Host, HostView, RealHost};
use crate::learn::bus::{self, Names};
use crate::learn::draft::{self, FRAGMENTS, Learned, WITH_DBUS_TALK};
use crate::learn::{Recording, explain};
use crate::plan::{self, Plan, RunOptions};
use crate::profile::{self, Searcher};

/// Rounds of recording at most (each may find D-Bus names to allow).
const ROUNDS: usize = 3;

pub struct Request {
    pub program: String,
    pub name: Option<String>,
    pub output: Option<PathBuf>,
    pub force: bool,
    pub seconds: Option<u64>,
    pub args: Vec<OsString>,
}

fn find(program: &str, host: &Host) -> Result<PathBuf, Error> {
    if program.contains('/') {
        let p =
            std::fs::canonicalize(program).map_err(|e| Error::io(format!("find {program}"), e))?;
        return Ok(p);
    }
    let path = host
        .var("PATH")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| plan::sandbox_path(host.uid).into());
    RealHost.find_program(program, &path).ok_or_else(|| {
        Error::io(
            format!("find {program} in PATH"),
            std::io::Error::from_raw_os_error(libc::ENOENT),
        )
    })
}

/// Plans a run of the profile `text`, written to `dir/NAME.toml`.
fn plan_text(
    dir: &Path,
    name: &str,
    text: &str,
    opts: &RunOptions,
    host: &Host,
    searcher: &Searcher,
) -> Result<Plan, Error> {
    let file = dir.join(format!("{name}.toml"));
    crate::files::write_atomic(&file, text.as_bytes(), 0o600, false)
        .map_err(|e| Error::io(format!("write {}", file.display()), e))?;
    let p = profile::resolve(searcher, &file.to_string_lossy())?;
    Ok(plan::build(
        &p,
        opts,
        host,
        &RealHost,
        &crate::instance::instance_id(),
    )?)
}

pub fn learn(req: Request, host: &Host, searcher: &Searcher) -> Result<u8, Error> {
    let program = find(&req.program, host)?;
    let name = match &req.name {
        Some(n) => n.clone(),
        None => program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if !profile::valid_name(&name) {
        return Err(Error::io(
            format!("`{name}` is not a profile name (give one with --name)"),
            std::io::Error::from_raw_os_error(libc::EINVAL),
        ));
    }
    let output = match &req.output {
        Some(o) => o.clone(),
        None => searcher.user_dir().join(format!("{name}.toml")),
    };
    let to_stdout = output == Path::new("-");
    if !to_stdout && !req.force && output.exists() {
        return Err(Error::io(
            format!("{} exists (--force replaces it)", output.display()),
            std::io::Error::from_raw_os_error(libc::EEXIST),
        ));
    }
    let work = host
        .runtime_folder("learn")
        .map_err(|e| Error::io("antimony's runtime folder", e))?
        .join(crate::instance::instance_id());
    std::fs::create_dir_all(&work)
        .map_err(|e| Error::io(format!("create {}", work.display()), e))?;
    let result = rounds_and_draft(&req, &program, &name, &work, host, searcher);
    let _ = std::fs::remove_dir_all(&work);
    let (text, rec) = result?;
    if to_stdout {
        out!("{text}");
    } else {
        if let Some(parent) = output.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
        }
        crate::files::write_atomic(&output, text.as_bytes(), 0o644, false)
            .map_err(|e| Error::io(format!("write {}", output.display()), e))?;
        eprintln!(
            "antimony: learn: {} paths recorded ({} calls); the draft is {}: check it, then `antimony run {}`",
            rec.paths.len(),
            rec.calls,
            output.display(),
            if req.output.is_none() {
                name.clone()
            } else {
                output.display().to_string()
            }
        );
    }
    Ok(0)
}

fn rounds_and_draft(
    req: &Request,
    program: &Path,
    name: &str,
    work: &Path,
    host: &Host,
    searcher: &Searcher,
) -> Result<(String, Recording), Error> {
    let mut rec = Recording::default();
    let mut asked = Names::default();
    let mut granted = Names {
        talk: WITH_DBUS_TALK.iter().map(|s| s.to_string()).collect(),
        ..Names::default()
    };
    let mut forwarded = Vec::new();
    for round in 1..=ROUNDS {
        let opts = RunOptions {
            args: req.args.clone(),
            record: true,
            stop_after: req.seconds.map(Duration::from_secs),
            ..RunOptions::default()
        };
        let text = draft::recording_profile(program, &granted);
        let mut plan = plan_text(work, "recording", &text, &opts, host, searcher)?;
        plan.name = format!("learn-{name}");
        let log = work.join(format!("bus-{round}.log"));
        if let Some(d) = plan.dbus.as_mut() {
            d.log_to(log.clone());
        }
        forwarded = plan.forwards.iter().map(|f| f.source.clone()).collect();
        for w in &plan.warnings {
            super::warn(w);
        }
        let outcome = crate::pipeline::run(&plan, host, None, None, &mut |ws| {
            for w in ws {
                super::warn(&w);
            }
        });
        for w in &outcome.warnings {
            super::warn(w);
        }
        if let Some(e) = outcome.error {
            return Err(e);
        }
        rec.merge(outcome.recording.unwrap_or_default());
        let names = bus::parse(&std::fs::read_to_string(&log).unwrap_or_default());
        asked.add(&names);
        let more = names.beyond(&granted);
        if more.is_empty() {
            break;
        }
        if round < ROUNDS {
            let all: Vec<&String> = more.talk.iter().chain(&more.own).chain(&more.see).collect();
            eprintln!(
                "antimony: learn: it asked the session bus for {} which the recording did not allow: recording again with them",
                all.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        granted.add(&more);
    }
    asked.tidy();
    let quoted = program
        .to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let base = format!("path = \"{quoted}\"\ninherits = [\"minimal\"]\n");
    let opts = RunOptions::default();
    let minimal = plan_text(work, "minimal", &base, &opts, host, searcher)?;
    let mut fragments = Vec::new();
    for f in FRAGMENTS {
        let text = format!("path = \"{quoted}\"\ninherits = [\"minimal\", \"{f}\"]\n");
        fragments.push((
            *f,
            plan_text(work, "fragment", &text, &opts, host, searcher)?,
        ));
    }
    let learned = Learned {
        name,
        program,
        rec: &rec,
        bus: &asked,
        home: &host.home,
        runtime_dir: host.runtime_dir.as_deref(),
        forwarded: &forwarded,
        minimal: &minimal,
        fragments: &fragments,
    };
    let text = draft::draft(&learned);
    // The draft must pass `antimony check`.
    let dir = work.join("draft");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    plan_text(&dir, name, &text, &opts, host, searcher)?;
    Ok((text, rec))
}

/// `run --explain`'s end: the report of what the sandbox hid, said when
/// the program failed, and kept for `antimony log PROFILE --explain`.
pub fn explain(plan: &Plan, rec: &Recording, failed: bool, host: &Host) {
    let package = plan::package::find(&RealHost, &plan.program, &plan.name);
    let hidden = explain::hidden(
        plan,
        rec,
        &host.home,
        host.runtime_dir.as_deref(),
        &package.paths,
    );
    let who = plan
        .program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| plan.name.clone());
    let text = explain::report(&who, &hidden, &host.home);
    let file = explain::report_file(&host.state_home, &plan.name);
    let kept = if text.is_empty() {
        format!("{who} tried no path that exists on the host and that this profile hides\n")
    } else {
        text.clone()
    };
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = crate::files::write_atomic(&file, kept.as_bytes(), 0o600, false);
    if failed && !text.is_empty() {
        for line in text.lines() {
            super::warn(line);
        }
    }
}
