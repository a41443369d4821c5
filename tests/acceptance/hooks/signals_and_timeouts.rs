//! Stop signals and time limits: SIGINT, SIGTERM and SIGHUP reach the
//! program and the pipeline then ends in order; a stop during a blocking
//! pre-hook cancels the launch; a hook past its `timeout` (and a stopping
//! hook past the default 10 s) is stopped, SIGKILLed if it ignores SIGTERM,
//! and has failed.

use std::time::{Duration, Instant};

use super::records_of;
use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    both_each(
        "hooks::signals_and_timeouts",
        &[
            (
                "stop_signals_reach_the_program_then_the_pipeline_ends",
                stop_signals,
            ),
            (
                "stop_signal_during_a_pre_hook_cancels_the_launch",
                signal_during_pre_hook,
            ),
            ("a_hook_that_times_out_has_failed", timeouts),
            (
                "a_timed_out_hook_that_ignores_sigterm_is_killed",
                timeout_ignoring_term,
            ),
            (
                "a_hanging_stopping_hook_holds_a_stop_10_seconds_at_most",
                stopping_default_timeout,
            ),
        ],
    )
}

/// SIGINT, SIGTERM and SIGHUP sent to antimony reach the program, which
/// traps them and exits with its own status; then the attached hook gets
/// SIGTERM and the post-hooks run, and antimony exits with the program's
/// status.
fn stop_signals(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "signals",
        &Profile::on("sh").grace(1.0).hooks([
            Hook::watcher("watcher"),
            Hook::post().name("post").logs("post"),
        ]),
    );
    for (sig, name, code) in [
        (libc::SIGINT, "INT", 21),
        (libc::SIGTERM, "TERM", 22),
        (libc::SIGHUP, "HUP", 23),
    ] {
        f.clear();
        let script = format!(
            r#"
trap 'echo program-got-INT >> @OUT@/log; exit 21' INT
trap 'echo program-got-TERM >> @OUT@/log; exit 22' TERM
trap 'echo program-got-HUP >> @OUT@/log; exit 23' HUP
{}
echo program-ready >> @OUT@/log
while :; do sleep 0.05; done"#,
            await_line("watcher-start")
        );
        let mut bg = Background::start(f.run("signals", &script));
        wait_for_line(&f, "program-ready").map_err(|e| format!("SIG{name}: {e}"))?;
        bg.signal(sig);
        let out = bg.finish().map_err(|e| format!("SIG{name}: {e}"))?;
        ensure!(out.code() == Some(code), "SIG{name}: {}", out.show());
        ensure!(out.stderr.is_empty(), "SIG{name}: {}", out.show());
        let got = format!("program-got-{name}");
        in_order(
            &f.log(),
            &[
                "watcher-start",
                "program-ready",
                &got,
                "watcher-term",
                "post",
            ],
        )
        .map_err(|e| format!("SIG{name}: {e}"))?;
    }
    pass()
}

/// A stop signal while a blocking pre-hook runs is passed to the hook and
/// cancels the launch: the later pre-hooks and the sandbox never start, the
/// attached hook is terminated, the post-hooks run. A hook that dies of it
/// is a failed pre-hook (125, naming it); a hook that handles it and exits 0
/// leaves antimony to exit 128+N.
fn signal_during_pre_hook(who: Who) -> TestResult {
    let f = fixture!(who);
    // The blocking hook comes right after the watcher.
    let with = |blocking: Hook| {
        Profile::on("sh").grace(1.0).hooks([
            Hook::watcher("watcher"),
            blocking,
            Hook::pre().name("next").logs("next"),
            Hook::post().name("post").logs("post"),
        ])
    };
    f.profile(
        "dies",
        &with(Hook::pre().name("sleeper").content(
            "until grep -qsx watcher-start @OUT@/log; do sleep 0.02; done
echo $$ > @OUT@/sleeper.pid
exec /usr/bin/sleep 600
",
        )),
    );
    f.profile(
        "handles",
        &with(Hook::pre().name("handler").content(
            "exec 2>/dev/null
trap 'echo handler-got-term >> @OUT@/log; exit 0' TERM
until grep -qsx watcher-start @OUT@/log; do sleep 0.02; done
echo handler-ready >> @OUT@/log
while :; do sleep 0.05; done
",
        )),
    );

    // The hook dies of the signal: a failed pre-hook.
    let mut bg = Background::start(f.run("dies", "echo program >> @OUT@/log"));
    let ready = wait_until(HANG, || {
        pid_in(&f, "sleeper.pid").is_some_and(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n")
        })
    });
    ensure!(ready, "the sleeper never started: {:?}", f.log());
    bg.signal(libc::SIGTERM);
    let out = bg.finish().map_err(|e| format!("sleeper: {e}"))?;
    ensure!(out.code() == Some(125), "{}", out.show());
    one_error_line(&out, &["pre-hook `sleeper`", "SIGTERM"])?;
    ensure!(
        f.log() == ["watcher-start", "watcher-term", "post"],
        "log {:?}",
        f.log()
    );
    let sleeper = pid_in(&f, "sleeper.pid").unwrap_or(0);
    ensure!(!alive(sleeper), "the sleeper {sleeper} is still alive");

    // A hook that handles SIGTERM and exits 0: the launch is cancelled all
    // the same and antimony exits 128+N.
    // A hook that does not end on SIGINT (bash without a trap waits to see
    // whether its foreground command dies of it; it does not, as only bash
    // got it): killed a grace period later, a failed pre-hook.
    for (sig, name) in [(libc::SIGTERM, "TERM"), (libc::SIGINT, "INT")] {
        f.clear();
        let mut bg = Background::start(f.run("handles", "echo program >> @OUT@/log"));
        wait_for_line(&f, "handler-ready").map_err(|e| format!("SIG{name}: {e}"))?;
        bg.signal(sig);
        let out = bg.finish().map_err(|e| format!("SIG{name}: {e}"))?;
        let log = f.log();
        if sig == libc::SIGTERM {
            ensure!(out.code() == Some(128 + sig), "SIG{name}: {}", out.show());
            ensure!(out.stderr.is_empty(), "SIG{name}: {}", out.show());
            ensure!(
                log == [
                    "watcher-start",
                    "handler-ready",
                    "handler-got-term",
                    "watcher-term",
                    "post"
                ],
                "SIG{name}: log {log:?}"
            );
        } else {
            ensure!(out.code() == Some(125), "SIG{name}: {}", out.show());
            one_error_line(&out, &["pre-hook `handler`", "SIGINT"])
                .map_err(|e| format!("SIG{name}: {e}"))?;
            ensure!(
                log == ["watcher-start", "handler-ready", "watcher-term", "post"],
                "SIG{name}: log {log:?}"
            );
        }
    }
    pass()
}

/// A pre-hook past its `timeout` is stopped and has failed: the launch
/// stops (125, naming it); with `can_fail` it is a warning and the program
/// runs. A started hook past its timeout likewise.
fn timeouts(who: Who) -> TestResult {
    let f = fixture!(who);
    let slow = |can_fail: bool| {
        Profile::on("sh").hooks([
            Hook::pre()
                .name("slow")
                .timeout(0.3)
                .key("can_fail", can_fail)
                .content("echo slow-start >> @OUT@/log\nexec sleep 30\n"),
            Hook::started()
                .name("slow-started")
                .timeout(0.3)
                .can_fail()
                .content("exec sleep 30"),
            // Inside the sandbox, the same limit (init gets the signals).
            Hook::started()
                .name("inside-slow")
                .inside()
                .timeout(0.3)
                .can_fail()
                .content("exec sleep 30"),
            // Started hooks run one after another: this one starts when the
            // slow ones have ended.
            Hook::started()
                .name("after-slow")
                .content("exec 3>@OUT@/after-slow.end; echo after-slow >> @OUT@/log"),
            Hook::post().logs("post"),
        ])
    };
    f.profile("timeout-fatal", &slow(false));
    f.profile("timeout-warn", &slow(true));
    let began = Instant::now();
    let out = f.run("timeout-fatal", "echo program >> @OUT@/log").run();
    ensure!(out.code() == Some(125), "{}", out.show());
    error_line(&out, &["slow", "timed out"])?;
    ensure!(
        f.log() == ["slow-start", "post"],
        "the program ran after a timed-out pre-hook: {:?}",
        f.log()
    );
    ensure!(
        began.elapsed() < Duration::from_secs(20),
        "it waited for the hook"
    );
    f.clear();
    // The program ends once after-slow has (then its status is its own).
    f.fifo("after-slow.end")?;
    let out = f
        .run(
            "timeout-warn",
            "echo program >> @OUT@/log; cat @OUT@/after-slow.end",
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        f.log() == ["slow-start", "program", "after-slow", "post"],
        "log: {:?}",
        f.log()
    );
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("antimony: warning:") && l.contains("timed out"))
        .collect();
    ensure!(
        warnings.len() == 3
            && warnings.iter().any(|l| l.contains("`slow`"))
            && warnings.iter().any(|l| l.contains("`slow-started`"))
            && warnings.iter().any(|l| l.contains("`inside-slow`")),
        "not a warning for each timed-out hook: {}",
        out.show()
    );
    let record = records_of(&f, "timeout-warn");
    let hooks = record
        .last()
        .map(|r| r["hooks"].clone())
        .unwrap_or_default();
    let statuses: Vec<&str> = hooks
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["status"].as_str())
        .collect();
    ensure!(
        statuses == ["timed out", "timed out", "timed out", "ok", "ok"],
        "record statuses: {statuses:?}"
    );
    pass()
}

/// A hook that ignores SIGTERM at its timeout gets SIGKILL after the grace.
fn timeout_ignoring_term(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "stubborn",
        &Profile::on("sh")
            .grace(0.5)
            .hook(Hook::pre().name("stubborn").timeout(0.3).content(
                "trap 'echo got-term >> @OUT@/log' TERM
echo $$ > @OUT@/stubborn.pid
echo stubborn-start >> @OUT@/log
while :; do sleep 0.05; done
",
            )),
    );
    let out = f.run("stubborn", "echo program >> @OUT@/log").run();
    ensure!(out.code() == Some(125), "{}", out.show());
    error_line(&out, &["stubborn", "timed out"])?;
    ensure!(
        f.log() == ["stubborn-start", "got-term"],
        "not SIGTERM first, or the program ran: {:?}",
        f.log()
    );
    let pid = pid_in(&f, "stubborn.pid").ok_or("no stubborn.pid")?;
    ensure!(!alive(pid), "the hook {pid} survived");
    let records = records_of(&f, "stubborn");
    let hook = records
        .last()
        .and_then(|r| r["hooks"].get(0).cloned())
        .unwrap_or_default();
    ensure!(
        hook["status"] == "timed out" && hook["signal"] == libc::SIGKILL,
        "the record does not say it timed out and was killed: {hook}"
    );
    pass()
}

/// A stopping hook without a timeout of its own that never ends is
/// stopped after 10 s (the documented default): the program then gets its
/// SIGTERM; the hook has failed (without can_fail: status 125, one error
/// naming it).
fn stopping_default_timeout(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "hangs",
        &Profile::on("sh").hooks([
            // Runs once antimony knows the program runs (a stop signal
            // before that goes to the program at once: stopping hooks are
            // for a running program).
            Hook::started().logs("started"),
            Hook::stopping()
                .name("hangs")
                .content("echo hangs >> @OUT@/log\nexec sleep 60\n"),
        ]),
    );
    let mut bg = Background::start(f.run(
        "hangs",
        "trap 'echo got-term >> @OUT@/log; exit 7' TERM; echo program-ready >> @OUT@/log; while :; do sleep 0.1; done",
    ));
    wait_for_line(&f, "program-ready")?;
    wait_for_line(&f, "started")?;
    let asked = Instant::now();
    bg.signal(libc::SIGTERM);
    let out = bg.finish()?;
    let took = asked.elapsed();
    ensure!(out.code() == Some(125), "{}", out.show());
    error_line(&out, &["stopping-hook `hangs`", "timed out"])?;
    ensure!(
        f.log()
            .iter()
            .filter(|l| *l != "started")
            .collect::<Vec<_>>()
            == ["program-ready", "hangs", "got-term"],
        "log: {:?}",
        f.log()
    );
    ensure!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(40),
        "the stop took {took:?}, not the default 10 s"
    );
    pass()
}
