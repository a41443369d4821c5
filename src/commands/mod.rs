//! The subcommands, and the one place errors become output and exit codes.

/// `println!` that does not panic when stdout is closed (`antimony list |
/// head`): output to a reader that left is simply dropped.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!`, likewise.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod doctor;
mod edit;
mod instances;
mod integrate;
mod learn;
mod list;
mod log;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, RunArgs};
use crate::error::{EXIT_LAUNCHER_FAILURE, Error};
use crate::host::{Host, RealHost};
use crate::notify::{self, Notification, Urgency};
use crate::plan::{self, RunOptions};
use crate::profile::{self, Searcher};

/// Prints an error the one time it is reported. Messages may hold text
/// antimony did not write (a hook's message, a file's name): escaped.
pub fn report(e: &dyn std::fmt::Display) {
    let text = e.to_string();
    let _ = writeln!(
        std::io::stderr(),
        "antimony: error: {}",
        crate::text::escape_lines(&text)
    );
}

pub fn warn(w: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "antimony: warning: {}",
        crate::text::escape_lines(w)
    );
}

/// What a run says to its user: on stderr, and, when stderr is not a
/// terminal (a desktop menu, a file manager: nobody reads it), also as a
/// desktop notification. The notification is sent by antimony on the host,
/// never from a sandbox, and is bounded by `notify::TIMEOUT`: without a
/// bus or a notification service it is simply not shown.
struct Notices<'a> {
    host: &'a Host,
    /// The profile as the run names it.
    profile: &'a str,
    /// A notification was not shown (no bus, no service, no answer in
    /// time): the run's others are not tried, so that a hung bus costs a
    /// launch the time limit once, not once per message.
    given_up: std::cell::Cell<bool>,
}

impl Notices<'_> {
    /// Warnings, printed each, notified together (one pop-up for a
    /// moment of the run, not a stack of them).
    fn warnings(&self, ws: &[String]) {
        for w in ws {
            warn(w);
        }
        if !ws.is_empty() {
            self.notify(&ws.join("\n"), Urgency::Normal);
        }
    }

    /// antimony's error for the run (not the program's: its exit status
    /// is its own business).
    fn error(&self, e: &Error) {
        report(e);
        self.notify(&e.to_string(), Urgency::Critical);
    }

    fn notify(&self, text: &str, urgency: Urgency) {
        use std::io::IsTerminal;
        if self.given_up.get() || std::io::stderr().is_terminal() {
            return;
        }
        let Some(address) = notify::session_address(
            self.host.var("DBUS_SESSION_BUS_ADDRESS"),
            self.host.runtime_dir.as_deref(),
        ) else {
            return;
        };
        let n = Notification {
            app_name: "antimony".into(),
            icon: match urgency {
                Urgency::Normal => "dialog-warning",
                Urgency::Critical => "dialog-error",
            }
            .into(),
            summary: format!("antimony: {}", crate::text::escape_line(self.profile)),
            // Escaped as for a terminal (the text may hold a hook's words,
            // or an inside hook's output), then for markup.
            body: notify::body_text(&crate::text::escape_lines(text)),
            urgency,
        };
        // Not shown is not a failure of the launch.
        if notify::send(&address, &n, notify::TIMEOUT).is_err() {
            self.given_up.set(true);
        }
    }
}

/// Parses the command line and runs the command.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    // Children must be waitable whatever antimony inherited.
    // SAFETY: resetting SIGCHLD to its default disposition.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let mut args: Vec<OsString> = args.into_iter().collect();
    // Started under another name (a symlink ~/.local/bin/firefox → antimony,
    // written by `antimony integrate`): run the profile of that name with
    // every argument passed on to the program.
    if let Some(name) = invoked_as(args.first()) {
        let mut run: Vec<OsString> =
            vec!["antimony".into(), "run".into(), name.into(), "--".into()];
        run.extend(args.drain(1..));
        args = run;
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    ExitCode::from(EXIT_LAUNCHER_FAILURE)
                }
                _ => {
                    let text = e.render().to_string();
                    let text = text.strip_prefix("error: ").unwrap_or(&text);
                    let _ = write!(std::io::stderr(), "antimony: error: {text}");
                    ExitCode::from(EXIT_LAUNCHER_FAILURE)
                }
            };
        }
    };
    let host = Host::from_process();
    match dispatch(cli.command, &host) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report(&e);
            ExitCode::from(EXIT_LAUNCHER_FAILURE)
        }
    }
}

/// The profile name when antimony was started under another name.
fn invoked_as(argv0: Option<&OsString>) -> Option<String> {
    let name = std::path::Path::new(argv0?).file_name()?.to_str()?;
    (!name.starts_with("antimony") && profile::valid_name(name)).then(|| name.to_string())
}

fn dispatch(command: Command, host: &Host) -> Result<u8, Error> {
    let searcher = Searcher::new(host);
    match command {
        Command::Run(args) => {
            let profile = args.profile.clone();
            let notices = Notices {
                host,
                profile: &profile,
                given_up: Default::default(),
            };
            Ok(run(args, host, &searcher, &notices).unwrap_or_else(|e| {
                notices.error(&e);
                EXIT_LAUNCHER_FAILURE
            }))
        }
        Command::Check { profiles } => Ok(check(&profiles, host, &searcher)),
        Command::Show { profile } => {
            let p = profile::resolve(&searcher, &profile)?;
            out!("{}", profile::show::to_toml(&p));
            Ok(0)
        }
        Command::List => {
            list::list(&searcher);
            Ok(0)
        }
        Command::Edit { profile } => edit::edit(&profile, host, &searcher),
        Command::Log {
            profile,
            limit,
            hooks,
            json,
            explain,
        } => {
            if explain {
                return Ok(log::explain(host, profile.as_deref().unwrap_or_default()));
            }
            Ok(log::log(host, profile.as_deref(), limit, json, hooks))
        }
        Command::Learn {
            program,
            name,
            output,
            force,
            seconds,
            args,
        } => learn::learn(
            learn::Request {
                program,
                name,
                output,
                force,
                seconds,
                args,
            },
            host,
            &searcher,
        ),
        Command::Ps { json } => instances::ps(host, json),
        Command::Enter { instance, command } => instances::enter(host, &instance, command),
        Command::Stop { instance } => instances::stop(host, &instance),
        Command::Integrate {
            profile,
            remove,
            force,
            refresh,
        } => match (profile, refresh) {
            (Some(profile), false) => {
                integrate::integrate(&profile, remove, force, host, &searcher)
            }
            _ => integrate::refresh(host, &searcher),
        },
        Command::Completions { shell } => integrate::completions(shell),
        Command::Doctor { json } => doctor::doctor(host, json),
    }
}

/// A profile that is not found by name, for a program that is: how to get
/// one.
fn no_profile(e: profile::ProfileError, host: &Host) -> Error {
    match e {
        profile::ProfileError::NotFound {
            what: "profile",
            ref name,
            ref context,
            ..
        } if context.is_empty() => {
            let path = host
                .var("PATH")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| plan::sandbox_path(host.uid).into());
            match crate::host::HostView::find_program(&crate::host::RealHost, name, &path) {
                Some(program) => Error::NoProfileForProgram {
                    name: name.clone(),
                    program,
                    not_found: e.to_string(),
                },
                None => e.into(),
            }
        }
        e => e.into(),
    }
}

fn run(args: RunArgs, host: &Host, searcher: &Searcher, notices: &Notices) -> Result<u8, Error> {
    let profile = profile::resolve(searcher, &args.profile).map_err(|e| no_profile(e, host))?;
    let opts = RunOptions {
        network: args.network().map(|n| match n {
            None => profile::NetworkMode::Off,
            Some(crate::cli::Network::Isolated) => profile::NetworkMode::Isolated,
            Some(crate::cli::Network::Host) => profile::NetworkMode::Host,
        }),
        ro: args.ro,
        rw: args.rw,
        env: args.env,
        program: args.program,
        args: args.args,
        forward: args.forward.map(|f| match f {
            crate::cli::Forward::Ro => profile::ForwardMode::Ro,
            crate::cli::Forward::Rw => profile::ForwardMode::Rw,
            crate::cli::Forward::Off => profile::ForwardMode::Off,
        }),
        record: args.explain,
        stop_after: None,
    };
    let instance = crate::instance::instance_id();
    let plan = plan::build(&profile, &opts, host, &RealHost, &instance)?;
    if args.dry_run {
        out!("{plan}");
        return Ok(0);
    }
    // Held until this run's instance is registered: a launch at the same
    // moment joins it instead of starting a second one.
    let mut start_lock = None;
    if plan.single_instance && !args.new_instance {
        start_lock = crate::instance::join::start_lock(host, &plan.name);
        if let Some(found) = crate::instance::join::running(host, &plan.name) {
            drop(start_lock);
            notices.warnings(&plan.forward_warnings);
            return join(&plan, &found);
        }
    }
    // What the plan warns of is said before anything runs: once the program
    // has its window, nobody reads a terminal (and from a menu there is none).
    let said: Vec<String> = plan
        .warnings
        .iter()
        .chain(&plan.forward_warnings)
        .cloned()
        .collect();
    notices.warnings(&said);
    // The pre-hooks' warnings, before the sandbox starts; the rest (hooks
    // after it, the run's record) once it is over.
    let outcome = crate::pipeline::run(&plan, host, args.status_fd, start_lock, &mut |ws| {
        notices.warnings(&ws)
    });
    notices.warnings(&outcome.warnings);
    if let Some(rec) = &outcome.recording {
        learn::explain(&plan, rec, outcome.code != 0, host);
    }
    if let Some(e) = outcome.error {
        return Err(e);
    }
    Ok(outcome.code)
}

/// Runs the plan's command in the running instance `found` of its
/// `single_instance` profile, its files forwarded there first; returns the
/// command's exit status.
fn join(plan: &plan::Plan, found: &crate::instance::Found) -> Result<u8, Error> {
    use crate::instance::{InstanceError, join};
    use std::os::unix::ffi::OsStrExt;
    let refuse = |f: &plan::Forward, why| InstanceError::NotForwardable {
        id: found.info.instance.clone(),
        file: f.path.display().to_string(),
        why,
    };
    // What a sandbox's start would have added for a forward (masks over
    // antimony's folders inside it, loaded files kept read-only) cannot be
    // added to a running one: such a forward is refused.
    for f in &plan.forwards {
        if f.folder
            && plan.mounts.iter().any(|m| {
                matches!(m.op, plan::Op::Mask | plan::Op::Pin) && m.dest.starts_with(&f.path)
            })
        {
            return Err(refuse(
                f,
                "it holds one of antimony's own folders, which only a new sandbox can have masked",
            )
            .into());
        }
        if f.mode == profile::BindMode::Rw
            && plan.guarded.iter().any(|g| g.dest.starts_with(&f.path))
        {
            return Err(refuse(
                f,
                "it holds a file that antimony loads, which only a new sandbox can keep read-only",
            )
            .into());
        }
    }
    let files: Vec<join::File> = plan
        .forwards
        .iter()
        .map(|f| join::File {
            source: f.source.clone(),
            is_dir: f.folder,
            writable: f.mode == profile::BindMode::Rw,
        })
        .collect();
    let area = std::path::Path::new(plan::FORWARD_AREA);
    let inside = join::forward(found, &plan.instance, area, &files)?;
    let mut argv = plan.argv.clone();
    for (f, p) in plan.forwards.iter().zip(inside) {
        argv[f.arg] = if f.uri {
            plan::forward::file_uri(&p)
        } else {
            p.into_os_string()
        };
    }
    let argv: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
    let status = crate::instance::client::enter(found, &argv)?;
    Ok(crate::pipeline::exit_code(status))
}

fn check(names: &[String], host: &Host, searcher: &Searcher) -> u8 {
    let mut failed = false;
    for name in names {
        let result = profile::resolve(searcher, name)
            .map_err(Error::from)
            .and_then(|p| {
                if !p.fragment {
                    let opts = RunOptions::default();
                    plan::build(&p, &opts, host, &RealHost, plan::CHECK_INSTANCE)?;
                }
                Ok(p)
            });
        match result {
            Ok(p) => outln!("{name}: ok{}", if p.fragment { " (fragment)" } else { "" }),
            Err(e) => {
                report(&e);
                failed = true;
            }
        }
    }
    if failed { EXIT_LAUNCHER_FAILURE } else { 0 }
}
