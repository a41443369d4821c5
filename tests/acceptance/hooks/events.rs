//! When hooks run: pre, started, stopping and post hooks in their order
//! around the program, what a failing hook does to the run (a status, a
//! signal, a hook that cannot start; `can_fail` makes it a warning), the
//! post-hooks' `on` conditions, and `--dry-run`, which runs none.

use std::collections::BTreeSet;

use super::records_of;
use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    both_each(
        "hooks::events",
        &[
            (
                "pre_hooks_run_on_the_host_in_order_before_the_sandbox",
                pre_hooks_in_order,
            ),
            (
                "started_hooks_get_the_program_pid_and_never_block_it",
                started_hooks,
            ),
            (
                "stopping_hooks_run_on_sigterm_before_the_program_gets_it",
                stopping_on_sigterm,
            ),
            (
                "stopping_hooks_run_on_antimony_stop",
                stopping_on_antimony_stop,
            ),
            (
                "a_stopping_hook_cut_short_by_the_programs_end_is_a_warning",
                stopping_cut_short,
            ),
            ("failing_pre_hook_stops_the_launch", failing_pre_hook),
            ("failing_post_hook_skips_the_rest", failing_post_hook),
            ("can_fail_and_no_fail_are_warnings", can_fail),
            ("post_hooks_run_on_their_outcomes", on_conditions),
            ("dry_run_lists_hooks_in_order_and_runs_none", dry_run),
        ],
    )
}

/// A slow first hook finishes before the second starts; every pre-hook
/// finishes before the program starts; hooks run in the host's mount
/// namespace, the program in another.
fn pre_hooks_in_order(who: Who) -> TestResult {
    let f = fixture!(who);
    f.s.script("bin/second.sh", "#!/bin/sh\necho \"$1\" >> \"$2\"\n");
    f.profile(
        "order",
        &Profile::on("sh").hooks([
            Hook::pre().name("slow").content(
                r#"echo slow-start >> @OUT@/log
sleep 0.3
echo slow-end >> @OUT@/log
echo "hook-ns $(readlink /proc/self/ns/mnt)" >> @OUT@/ns
"#,
            ),
            Hook::pre()
                .name("second")
                .path("@BIN@/second.sh")
                .arguments(&["second", "@OUT@/log"]),
            Hook::pre()
                .content(r#"echo "third|$0|$1|$2" >> @OUT@/log"#)
                .arguments(&["a b", "$(id)"]),
        ]),
    );
    let out = f
        .run(
            "order",
            "echo program >> @OUT@/log; echo \"program-ns $(readlink /proc/self/ns/mnt)\" >> @OUT@/ns",
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stderr.is_empty(), "{}", out.show());
    let log = f.log();
    ensure!(
        log == [
            "slow-start",
            "slow-end",
            "second",
            "third|antimony-pre-hook|a b|$(id)",
            "program"
        ],
        "log: {log:?}"
    );
    let host_ns = std::fs::read_link("/proc/self/ns/mnt").map_err(|e| e.to_string())?;
    let ns = f.read("ns");
    let hook_ns = format!("hook-ns {}", host_ns.display());
    ensure!(
        ns.lines().any(|l| l == hook_ns),
        "the hook is not on the host: {ns}"
    );
    ensure!(
        ns.lines().any(|l| l.starts_with("program-ns mnt:")
            && !l.ends_with(&format!(" {}", host_ns.display()))),
        "the program is not in its own mount namespace: {ns}"
    );
    pass()
}

/// Started hooks run one after another once the program runs, get its
/// host PID as ANTIMONY_PID, and never block it: the first one waits for
/// the program to say it is running (it would wait forever if the program
/// waited for the hook). A started hook still running when the program
/// exits gets SIGTERM; dying of it is not a failure of the run.
fn started_hooks(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "lifecycle",
        &Profile::on("sh").grace(1.0).hooks([
            Hook::started().name("first").content(&format!(
                r#"echo "first-start $ANTIMONY_PID" >> @OUT@/log
grep '^NSpid:' /proc/$ANTIMONY_PID/status > @OUT@/nspid
tr '\0' ' ' < /proc/$ANTIMONY_PID/cmdline > @OUT@/cmdline
{}
echo first-end >> @OUT@/log
"#,
                await_line("program-running")
            )),
            Hook::started().name("second").content(
                r#"exec 2>/dev/null
trap 'echo second-term >> @OUT@/log; trap - TERM; kill -TERM $$' TERM
echo $$ > @OUT@/second.pid
echo second-start >> @OUT@/log
while :; do sleep 0.05; done
"#,
            ),
            Hook::pre().logs("pre"),
            Hook::post().logs("post"),
        ]),
    );
    let out = f
        .run(
            "lifecycle",
            &format!(
                "echo $$ > @OUT@/program.nspid; echo program-running >> @OUT@/log; {}; echo program-end >> @OUT@/log # marker-lifecycle",
                await_line("second-start")
            ),
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stderr.is_empty(), "{}", out.show());
    let log = f.log();
    let first = log
        .iter()
        .find(|l| l.starts_with("first-start "))
        .ok_or(format!("the first started hook did not run: {log:?}"))?
        .clone();
    in_order(
        &log,
        &[
            "pre",
            "program-running",
            "first-end",
            "second-start",
            "program-end",
            "second-term",
            "post",
        ],
    )?;
    in_order(&log, &["pre", &first, "first-end"])?;
    // ANTIMONY_PID is the program's host PID: its NSpid ends with the PID
    // the program has inside.
    let pid = first.trim_start_matches("first-start ");
    let inner = f.read("program.nspid");
    let nspid: Vec<String> = f
        .read("nspid")
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();
    ensure!(
        nspid.first().map(String::as_str) == Some(pid)
            && nspid.last().map(String::as_str) == Some(inner.trim())
            && nspid.len() >= 2,
        "ANTIMONY_PID {pid} is not the program (NSpid {nspid:?}, PID inside {inner:?})"
    );
    ensure!(
        f.read("cmdline").contains("marker-lifecycle"),
        "ANTIMONY_PID's command line is not the program's: {:?}",
        f.read("cmdline")
    );
    let second = pid_in(&f, "second.pid").ok_or("no second.pid")?;
    ensure!(!alive(second), "the started hook {second} is still alive");
    pass()
}

/// Two stopping hooks (the first checks that the program still runs), a
/// started hook that logs ANTIMONY_PID and a post-hook.
fn stopper() -> Profile {
    Profile::on("sh").grace(2.0).hooks([
        Hook::started().content(r#"echo "started $ANTIMONY_PID" >> @OUT@/log"#),
        Hook::stopping().name("stop-one").content(
            r#"echo "stopping-one $ANTIMONY_PID" >> @OUT@/log
sleep 0.3
kill -0 "$ANTIMONY_PID" && echo program-alive-in-stopping >> @OUT@/log
echo stopping-one-end >> @OUT@/log
"#,
        ),
        Hook::stopping().name("stop-two").logs("stopping-two"),
        Hook::post().logs("post"),
    ])
}

const STOPPED_PROGRAM: &str = r#"
trap 'echo program-term >> @OUT@/log; exit 22' TERM
echo program-ready >> @OUT@/log
while :; do sleep 0.05; done"#;

/// Starts [`stopper`] in the background, once its program and its started
/// hook run.
fn start_stopper(f: &Fixture) -> Result<Background, String> {
    f.profile("stopper", &stopper());
    let bg = Background::start(f.run("stopper", STOPPED_PROGRAM));
    wait_for_line(f, "program-ready")?;
    if !wait_until(HANG, || f.log().iter().any(|l| l.starts_with("started "))) {
        return Err(format!("the started hook did not run: {:?}", f.log()));
    }
    Ok(bg)
}

/// Checks the log of a run stopped while it ran.
fn stopped_in_order(f: &Fixture) -> Result<(), String> {
    let log = f.log();
    let started = log
        .iter()
        .find(|l| l.starts_with("started "))
        .ok_or(format!("no started hook ran: {log:?}"))?;
    let pid = started.trim_start_matches("started ");
    let stopping = format!("stopping-one {pid}");
    in_order(
        &log,
        &[
            "program-ready",
            &stopping,
            "program-alive-in-stopping",
            "stopping-one-end",
            "stopping-two",
            "program-term",
            "post",
        ],
    )
}

/// SIGTERM to antimony: the stopping hooks run, in order and with the
/// program's PID, while the program still runs; only then does the program
/// get SIGTERM; the post-hooks follow.
fn stopping_on_sigterm(who: Who) -> TestResult {
    let f = fixture!(who);
    let mut bg = start_stopper(&f)?;
    bg.signal(libc::SIGTERM);
    let out = bg.finish()?;
    ensure!(out.code() == Some(22), "{}", out.show());
    ensure!(out.stderr.is_empty(), "{}", out.show());
    stopped_in_order(&f)?;
    pass()
}

/// `antimony stop PROFILE` does the same as SIGTERM.
fn stopping_on_antimony_stop(who: Who) -> TestResult {
    let f = fixture!(who);
    let mut bg = start_stopper(&f)?;
    let stop = f.s.antimony(["stop", "stopper"]).timeout(HANG).run();
    ensure!(stop.code() == Some(0), "antimony stop: {}", stop.show());
    let out = bg.finish()?;
    ensure!(out.code() == Some(22), "{}", out.show());
    stopped_in_order(&f)?;
    pass()
}

/// A stopping hook still running when the program ends by itself is
/// stopped like an attached hook (the run's status stays the program's),
/// with a warning; the stopping hooks after it do not run.
fn stopping_cut_short(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "cut",
        &Profile::on("sh").grace(1.0).hooks([
            Hook::stopping().name("slow-stop").content(
                "echo $$ > @OUT@/slow-stop.pid
echo slow-stop >> @OUT@/log
exec sleep 30
",
            ),
            Hook::stopping().name("never").logs("never"),
        ]),
    );
    let mut bg = Background::start(f.run(
        "cut",
        &format!(
            "echo program-ready >> @OUT@/log; {}; echo program-end >> @OUT@/log; exit 5",
            await_line("slow-stop")
        ),
    ));
    wait_for_line(&f, "program-ready")?;
    bg.signal(libc::SIGTERM);
    let out = bg.finish()?;
    ensure!(out.code() == Some(5), "{}", out.show());
    ensure!(
        f.log() == ["program-ready", "slow-stop", "program-end"],
        "log: {:?}",
        f.log()
    );
    ensure!(
        out.stderr.lines().count() == 1
            && out
                .stderr
                .starts_with("antimony: warning: stopping-hook `slow-stop`"),
        "{}",
        out.show()
    );
    let pid = pid_in(&f, "slow-stop.pid").ok_or("no slow-stop.pid")?;
    ensure!(!alive(pid), "the stopping hook {pid} is still alive");
    pass()
}

/// A pre-hook that exits non-zero, dies of a signal, or cannot be started:
/// the sandbox never starts, the attached hook is terminated, the later
/// pre-hooks do not run, every post-hook runs, and antimony exits 125 with
/// one line naming the hook.
fn failing_pre_hook(who: Who) -> TestResult {
    let f = fixture!(who);
    let missing = s(&f.s.path("bin/no-such-hook"));
    let cases: [(&str, Hook, Vec<&str>); 4] = [
        (
            "exits",
            Hook::pre().name("gate").content("exit 3"),
            vec!["pre-hook `gate`", "exited with status 3"],
        ),
        (
            "killed",
            Hook::pre().name("gate").content("kill -KILL $$"),
            vec!["pre-hook `gate`", "SIGKILL"],
        ),
        (
            "unstartable",
            Hook::pre().path(&missing),
            vec![&missing, "could not be started"],
        ),
        (
            "unstartable-attached",
            Hook::pre().name("helper").attach().path(&missing),
            vec!["pre-hook `helper`", "could not be started"],
        ),
    ];
    for (case, failing, naming) in cases {
        f.clear();
        f.profile(
            case,
            &Profile::on("sh").grace(1.0).hooks([
                Hook::watcher("watcher"),
                Hook::pre().name("sync").content(
                    "until grep -qsx watcher-start @OUT@/log; do sleep 0.02; done; echo sync >> @OUT@/log",
                ),
                failing,
                Hook::pre().name("never").logs("never"),
                Hook::post().name("clean1").logs("clean1"),
                Hook::post().name("clean2").logs("clean2"),
            ]),
        );
        let out = f.run(case, "echo program >> @OUT@/log").run();
        ensure!(out.code() == Some(125), "{case}: {}", out.show());
        one_error_line(&out, &naming).map_err(|e| format!("{case}: {e}"))?;
        let log = f.log();
        ensure!(
            log == ["watcher-start", "sync", "watcher-term", "clean1", "clean2"],
            "{case}: log {log:?}"
        );
    }
    pass()
}

/// A failing post-hook: the later post-hooks are skipped, antimony exits
/// 125 naming it, even though the program succeeded.
fn failing_post_hook(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "postfail",
        &Profile::on("sh").hooks([
            Hook::post().name("first").logs("first"),
            Hook::post()
                .name("broken")
                .content("echo broken >> @OUT@/log; exit 4"),
            Hook::post().name("skipped").logs("skipped"),
        ]),
    );
    let out = f.run("postfail", "echo program >> @OUT@/log").run();
    ensure!(out.code() == Some(125), "{}", out.show());
    one_error_line(&out, &["post-hook `broken`", "exited with status 4"])?;
    let log = f.log();
    ensure!(log == ["program", "first", "broken"], "log {log:?}");
    pass()
}

/// `can_fail = true` and its alias `no_fail = true`: the failure is a
/// warning naming the hook and the pipeline goes on; the exit status is the
/// program's.
fn can_fail(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "optional",
        &Profile::on("sh").hooks([
            Hook::pre()
                .name("optional-exit")
                .can_fail()
                .content("exit 3"),
            Hook::pre()
                .name("optional-missing")
                .key("no_fail", true)
                .path("@BIN@/no-such-hook"),
            Hook::pre()
                .name("optional-killed")
                .can_fail()
                .content("kill -TERM $$"),
            Hook::pre()
                .name("optional-attached")
                .attach()
                .can_fail()
                .path("@BIN@/no-such-attached-hook"),
            Hook::pre().name("next").logs("next"),
            Hook::post()
                .name("optional-post")
                .key("no_fail", true)
                .content("exit 5"),
            Hook::post().name("post-next").logs("post-next"),
        ]),
    );
    let out = f.run("optional", "echo program >> @OUT@/log; exit 7").run();
    ensure!(out.code() == Some(7), "{}", out.show());
    ensure!(
        f.log() == ["next", "program", "post-next"],
        "log {:?}",
        f.log()
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    for (hook, what) in [
        ("optional-exit", "status 3"),
        ("optional-missing", "could not be started"),
        ("optional-killed", "SIGTERM"),
        ("optional-attached", "could not be started"),
        ("optional-post", "status 5"),
    ] {
        ensure!(
            lines.iter().any(|l| l.starts_with("antimony: warning: ")
                && l.contains(&format!("`{hook}`"))
                && l.contains(what)),
            "no warning for {hook}: {}",
            out.show()
        );
    }
    ensure!(lines.len() == 5, "{}", out.show());
    ensure!(!out.stderr.contains("antimony: error"), "{}", out.show());
    pass()
}

/// Post-hooks run on the outcomes their `on` names (and always without
/// one); the others are recorded as skipped.
fn on_conditions(who: Who) -> TestResult {
    let f = fixture!(who);
    let mut profile = Profile::on("sh");
    for (name, on) in [
        ("always", ""),
        ("ok", "[\"ok\"]"),
        ("non-zero", "[\"non-zero\"]"),
        ("signal", "[\"signal\"]"),
        ("launch-failed", "[\"launch-failed\"]"),
        ("code-0", "[0]"),
        ("codes-1-2-3", "[1, 2, 3]"),
        ("code-137", "[137]"),
        ("ok-or-137", "[\"ok\", 137]"),
    ] {
        let mut hook = Hook::post().name(name);
        if !on.is_empty() {
            hook = hook.key("on", on);
        }
        profile = profile.hook(hook.logs(name));
    }
    f.profile("conditions", &profile);
    let missing = f.s.path("no-such-folder");
    let cases: [(&str, Vec<String>, i32, &[&str]); 4] = [
        (
            "exit 0",
            vec![],
            0,
            &["always", "ok", "code-0", "ok-or-137"],
        ),
        ("exit 3", vec![], 3, &["always", "non-zero", "codes-1-2-3"]),
        (
            "kill -KILL $$",
            vec![],
            137,
            &["always", "signal", "code-137", "ok-or-137"],
        ),
        // A bind whose source is missing fails the launch after the pre-hooks.
        (
            "exit 0",
            vec!["--ro".into(), s(&missing)],
            125,
            &["always", "launch-failed"],
        ),
    ];
    for (script, extra, code, expected) in cases {
        f.clear();
        let mut args: Vec<String> = vec!["run".into(), "conditions".into()];
        args.extend(extra.iter().cloned());
        args.extend(["--rw".into(), s(&f.out), "--".into(), "-c".into()]);
        args.push(script.into());
        let out = f.s.antimony(&args).run();
        ensure!(
            out.code() == Some(code),
            "`{script}` {extra:?}: {}",
            out.show()
        );
        no_panic(&out)?;
        let log = f.log();
        ensure!(
            log == expected,
            "`{script}` {extra:?}: ran {log:?}, expected {expected:?}"
        );
    }
    // The skipped ones are in the run record.
    let runs = records_of(&f, "conditions");
    let last = runs.last().ok_or("no run record")?;
    let skipped: BTreeSet<String> = last["hooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["status"] == "skipped")
        .filter_map(|h| h["name"].as_str().map(str::to_string))
        .collect();
    ensure!(
        skipped.len() == 7 && skipped.iter().any(|n| n.contains("`ok`")),
        "the record does not list the skipped post-hooks: {skipped:?}"
    );
    pass()
}

/// `--dry-run` lists pre-hooks then post-hooks, each in profile order, and
/// runs none of them.
fn dry_run(who: Who) -> TestResult {
    let f = fixture!(who);
    let touch = |hook: Hook, name: &str| {
        hook.name(name)
            .path("/usr/bin/touch")
            .arguments(&[format!("@OUT@/{name}")])
    };
    // Written out of order: post-hooks first.
    f.profile(
        "planned",
        &Profile::on("sh").hooks([
            touch(Hook::post(), "post-one"),
            touch(Hook::pre(), "pre-one"),
            touch(Hook::pre(), "pre-two").attach(),
            touch(Hook::post(), "post-two").can_fail(),
            touch(Hook::pre(), "pre-three").system("System"),
        ]),
    );
    let out =
        f.s.antimony([
            "run",
            "planned",
            "--dry-run",
            "--rw",
            &s(&f.out),
            "--",
            "-c",
            &f.subst("echo program >> @OUT@/log"),
        ])
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let order = ["pre-one", "pre-two", "pre-three", "post-one", "post-two"];
    let mut last = 0;
    for name in order {
        let Some(at) = out.stdout.find(&format!("`{name}`")) else {
            return Err(format!("{name} is not listed: {}", out.show()).into());
        };
        ensure!(at > last, "{name} is out of order: {}", out.show());
        last = at;
    }
    for name in order {
        ensure!(!f.out(name).exists(), "{name} ran");
    }
    ensure!(f.log().is_empty(), "the program ran");
    pass()
}
