//! Hooks that run alongside the sandbox — attached pre-hooks and companion
//! sandboxes: they start before the program (trailing ones while the
//! sandbox is built), keep every CPU, and end after it: SIGTERM, then
//! SIGKILL once the grace is over (3 s by default), no grace for those
//! that end on SIGTERM.

use std::collections::BTreeSet;

use super::records_of;
use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    both_each(
        "hooks::attached",
        &[
            (
                "attached_hooks_run_alongside_then_term_then_kill",
                attached_hooks,
            ),
            (
                "attached_hooks_get_the_default_grace_of_3_seconds",
                attached_default_grace,
            ),
            (
                "two_unnamed_attached_hooks_are_two_hooks",
                two_unnamed_attached,
            ),
            (
                "attached_hooks_that_end_on_term_cost_no_grace",
                attached_no_grace,
            ),
            (
                "trailing_attached_hooks_start_before_the_program",
                trailing_attached,
            ),
            (
                "attached_hooks_and_the_program_keep_every_cpu",
                attached_cpus,
            ),
            (
                "an_attached_companion_lives_as_long_as_the_sandbox",
                companion,
            ),
        ],
    )
}

/// An attached hook that notes its SIGTERM (the time in
/// `stubborn-term.time`) and ignores it: it then notes that it is still
/// alive at every turn of its loop (`stubborn-alive.times`), until the
/// SIGKILL. SIGTERM goes to the hook's process group, so the `sleep` dies
/// with it and the trap runs at once.
fn stubborn() -> Hook {
    Hook::pre().name("stubborn").attach().content(
        r#"exec 2>/dev/null
trap 'echo "$EPOCHREALTIME" > @OUT@/stubborn-term.time; echo stubborn-term >> @OUT@/log; got=1; termed=1' TERM
echo $$ > @OUT@/stubborn.pid
echo stubborn-start >> @OUT@/log
while :; do
    if [ -n "$got" ]; then echo stubborn-alive-after-term >> @OUT@/log; got=; fi
    if [ -n "$termed" ]; then echo "$EPOCHREALTIME" >> @OUT@/stubborn-alive.times; fi
    sleep 0.05
done
"#,
    )
}

/// A post-hook that notes when it starts (`post.time`) and logs, for each
/// NAME, `post-sees-NAME-alive` or `post-sees-NAME-gone` for the process
/// in `NAME.pid`.
fn post_sees(names: &[&str]) -> Hook {
    Hook::post().name("after").content(&format!(
        r#"echo "$EPOCHREALTIME" > @OUT@/post.time
for h in {}; do
    if kill -0 "$(cat @OUT@/$h.pid)" 2>/dev/null; then
        echo "post-sees-$h-alive" >> @OUT@/log
    else
        echo "post-sees-$h-gone" >> @OUT@/log
    fi
done
"#,
        names.join(" ")
    ))
}

/// The program sees attached hooks running; when it exits, a hook that
/// traps SIGTERM ends on it, one that ignores it is alive after it and then
/// SIGKILLed after the grace (`grace = 1`: no earlier than 0.9 s after its
/// SIGTERM); only then do the post-hooks run.
fn attached_hooks(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "attached",
        &Profile::on("sh").grace(1.0).hooks([
            Hook::watcher("polite"),
            stubborn(),
            Hook::pre().name("blocking").logs("blocking"),
            post_sees(&["polite", "stubborn"]),
        ]),
    );
    let out = f
        .run(
            "attached",
            &format!(
                "{}\necho program-saw-both >> @OUT@/log",
                await_until(
                    "grep -qsx polite-start @OUT@/log && grep -qsx stubborn-start @OUT@/log"
                )
            ),
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let log = f.log();
    for (a, b) in [
        ("polite-start", "program-saw-both"),
        ("stubborn-start", "program-saw-both"),
        ("blocking", "program-saw-both"),
        ("program-saw-both", "polite-term"),
        ("program-saw-both", "stubborn-term"),
        ("stubborn-term", "stubborn-alive-after-term"),
        ("polite-term", "post-sees-polite-gone"),
        ("stubborn-alive-after-term", "post-sees-stubborn-gone"),
    ] {
        in_order(&log, &[a, b])?;
    }
    ensure!(out.stderr.is_empty(), "{}", out.show());
    for h in ["polite.pid", "stubborn.pid"] {
        let pid = pid_in(&f, h).ok_or(format!("no {h}"))?;
        ensure!(!alive(pid), "{h} {pid} is still alive");
    }
    grace_kept(&f, 1.0)
}

/// Without `grace` in the profile (nor in what it inherits), an attached
/// hook that ignores SIGTERM gets the documented default of 3 seconds
/// (`Default: 3.` in man/antimony-profile.5) before its SIGKILL.
fn attached_default_grace(who: Who) -> TestResult {
    const DOCUMENTED: f64 = 3.0;
    let code = antimony::profile::model::DEFAULT_GRACE.as_secs_f64();
    ensure!(
        code == DOCUMENTED,
        "DEFAULT_GRACE is {code} s, the man page says {DOCUMENTED}"
    );
    let f = fixture!(who);
    f.profile(
        "defaultgrace",
        &Profile::on("sh").hooks([stubborn(), post_sees(&["stubborn"])]),
    );
    let shown = f.s.antimony(["show", "defaultgrace"]).run();
    ensure!(
        shown.code() == Some(0) && !shown.stdout.lines().any(|l| l.starts_with("grace")),
        "the profile sets a grace after all: {}",
        shown.show()
    );
    let out = f
        .run(
            "defaultgrace",
            &format!(
                "{}\necho program >> @OUT@/log",
                await_line("stubborn-start")
            ),
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stderr.is_empty(), "{}", out.show());
    in_order(
        &f.log(),
        &[
            "stubborn-start",
            "program",
            "stubborn-term",
            "stubborn-alive-after-term",
            "post-sees-stubborn-gone",
        ],
    )?;
    let pid = pid_in(&f, "stubborn.pid").ok_or("no stubborn.pid")?;
    ensure!(!alive(pid), "the stubborn hook {pid} is still alive");
    grace_kept(&f, DOCUMENTED)
}

/// A Unix time `$EPOCHREALTIME` wrote (bash's clock, read without a fork,
/// so that the record lags the event by as little as possible).
fn time_in(f: &Fixture, rel: &str) -> Result<f64, String> {
    let text = f.read(rel);
    text.trim()
        .replace(',', ".")
        .parse()
        .map_err(|_| format!("no time in {rel}: {text:?}"))
}

/// The SIGKILL of [`stubborn`] came no earlier than `grace` seconds (less
/// 0.1 s of slack) after its SIGTERM: the post-hooks, which run only after
/// the SIGKILL, start that late, and the hook itself was still alive most
/// of that time (its last sign of life lags its death by up to one turn of
/// its loop, hence the wider slack there). Lower bounds only: a slow
/// machine makes every interval longer, never shorter.
fn grace_kept(f: &Fixture, grace: f64) -> TestResult {
    let term = time_in(f, "stubborn-term.time")?;
    let post = time_in(f, "post.time")?;
    let waited = post - term >= grace - 0.1;
    ensure!(
        waited,
        "the post-hooks ran {:.3} s after the stubborn hook's SIGTERM, \
         before its grace of {grace} s was over",
        post - term
    );
    let last_alive = f
        .lines("stubborn-alive.times")
        .iter()
        .filter_map(|l| l.replace(',', ".").parse::<f64>().ok())
        .fold(f64::NAN, f64::max);
    let lived = last_alive - term >= grace - 0.25;
    ensure!(
        lived,
        "the stubborn hook was last alive {:.3} s after its SIGTERM: \
         SIGKILLed before its grace of {grace} s was over",
        last_alive - term
    );
    pass()
}

/// Attached hooks after the last blocking one are started while the
/// sandbox is built: the program still runs only after they have started,
/// and not at all when one of them cannot be (exit 125 naming it, the other
/// attached hook ended, the post-hooks run).
fn trailing_attached(who: Who) -> TestResult {
    let f = fixture!(who);
    let missing = s(&f.s.path("bin/no-such-hook"));
    let helper = || Hook::pre().name("helper").attach();
    for (case, last, code) in [
        ("started", helper().logs("helper-start"), 0),
        ("unstartable", helper().path(&missing), 125),
    ] {
        f.clear();
        f.profile(
            case,
            &Profile::on("sh").grace(1.0).hooks([
                Hook::pre().name("first").logs("first"),
                Hook::watcher("watcher"),
                last,
                Hook::post().name("after").logs("after"),
            ]),
        );
        let out = f
            .run(
                case,
                &format!("{}\necho program >> @OUT@/log", await_line("watcher-start")),
            )
            .run();
        ensure!(out.code() == Some(code), "{case}: {}", out.show());
        let log = f.log();
        if code == 0 {
            ensure!(out.stderr.is_empty(), "{case}: {}", out.show());
            for (a, b) in [
                ("first", "watcher-start"),
                ("watcher-start", "program"),
                ("program", "watcher-term"),
                ("watcher-term", "after"),
            ] {
                in_order(&log, &[a, b]).map_err(|e| format!("{case}: {e}"))?;
            }
        } else {
            one_error_line(&out, &["pre-hook `helper`", "could not be started"])
                .map_err(|e| format!("{case}: {e}"))?;
            ensure!(
                log.first().map(String::as_str) == Some("first")
                    && log.last().map(String::as_str) == Some("after")
                    && !log.iter().any(|l| l == "program"),
                "{case}: log {log:?}"
            );
        }
        if let Some(pid) = pid_in(&f, "watcher.pid") {
            ensure!(!alive(pid), "{case}: the watcher {pid} is still alive");
        }
        let _ = std::fs::remove_file(f.out("watcher.pid"));
    }
    pass()
}

/// The CPUs a process may run on, as /proc/PID/status lists them.
fn cpus_allowed(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
}

/// Attached hooks that start beside the sandbox's set-up, the program, and
/// what the hooks start meanwhile — a child, an orphan whose parent exited,
/// a child in a session of its own, a companion sandbox's program — all run
/// on every CPU antimony may use: nothing narrows them. (A slow set-up,
/// 1500 binds, makes sure the hooks start them while it lasts.)
fn attached_cpus(who: Who) -> TestResult {
    let f = fixture!(who);
    let own = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| cpus_allowed(&s))
        .ok_or("no Cpus_allowed_list in /proc/self/status")?;
    if !own.contains(',') && !own.contains('-') {
        return skip(format!(
            "one CPU allowed ({own}): nothing could be narrowed"
        ));
    }
    // A companion sandbox (its antimony, its init and its program, in a
    // session of its own, are all started while the set-up lasts).
    f.profile("cpus-companion", &Profile::on("sh").rw(&["@OUT@"]));
    let src = f.s.mkdir("bind-source");
    let binds: Vec<String> = (0..1500).map(|i| format!("{}=/b/{i}", s(&src))).collect();
    f.profile(
        "cpus",
        &Profile::on("sh").ro(&binds).grace(1.0).hooks([
            Hook::pre().name("first").content("true"),
            Hook::pre().name("beside").attach().content(
                r#"exec 2>/dev/null
trap 'exit 0' TERM
grep Cpus_allowed_list /proc/self/status > @OUT@/hook-start
( sleep 0.3; grep Cpus_allowed_list /proc/self/status > @OUT@/child ) &
sh -c '( sleep 0.3; grep Cpus_allowed_list /proc/self/status > @OUT@/orphan ) &'
setsid sh -c 'sleep 0.3; grep Cpus_allowed_list /proc/self/status > @OUT@/session' &
sleep 0.3
grep Cpus_allowed_list /proc/self/status > @OUT@/hook-late
while :; do sleep 0.05; done
"#,
            ),
            Hook::pre()
                .name("companion")
                .attach()
                .profile("cpus-companion")
                .arguments(&[
                    "-c",
                    "grep Cpus_allowed_list /proc/self/status > @OUT@/companion-start; sleep 0.3; grep Cpus_allowed_list /proc/self/status > @OUT@/companion; sleep 30",
                ]),
        ]),
    );
    let out = f
        .run(
            "cpus",
            &format!(
                "{}\ngrep Cpus_allowed_list /proc/self/status",
                await_until(
                    "[ -s @OUT@/child ] && [ -s @OUT@/orphan ] && [ -s @OUT@/session ] && [ -s @OUT@/hook-late ] &&
    [ -s @OUT@/companion ]"
                )
            ),
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let program = cpus_allowed(&out.stdout);
    ensure!(
        program.as_deref() == Some(&*own),
        "the program runs on {program:?}, antimony may use {own}: {}",
        out.show()
    );
    let seen = |name: &str| cpus_allowed(&f.read(name));
    for name in [
        "hook-start",
        "hook-late",
        "child",
        "orphan",
        "session",
        "companion-start",
        "companion",
    ] {
        let got = seen(name);
        ensure!(
            got.as_deref() == Some(&*own),
            "{name}: on {got:?}, not on {own}"
        );
    }
    pass()
}

/// Two attached hooks with the same (empty) name and the same script are
/// two hooks: both run at once, both get SIGTERM.
fn two_unnamed_attached(who: Who) -> TestResult {
    let f = fixture!(who);
    let hook = Hook::pre().attach().content(
        r#"exec 2>/dev/null
trap 'echo "term $$" >> @OUT@/log; exit 0' TERM
echo "start $$" >> @OUT@/log
while :; do sleep 0.05; done
"#,
    );
    f.profile("twins", &Profile::on("sh").hooks([hook.clone(), hook]));
    let out = f
        .run(
            "twins",
            &format!(
                "{}\necho program-saw-two >> @OUT@/log",
                await_until(r#"[ "$(grep -sc '^start ' @OUT@/log)" -ge 2 ]"#)
            ),
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let log = f.log();
    let program = log
        .iter()
        .position(|l| l == "program-saw-two")
        .ok_or(format!("log: {log:?}"))?;
    let pids = |prefix: &str, before: bool| -> BTreeSet<String> {
        log.iter()
            .enumerate()
            .filter(|(i, _)| (*i < program) == before)
            .filter_map(|(_, l)| l.strip_prefix(prefix).map(str::to_string))
            .collect()
    };
    let started = pids("start ", true);
    let termed = pids("term ", false);
    ensure!(
        started.len() == 2,
        "two hooks did not run together: {log:?}"
    );
    ensure!(
        termed == started,
        "not both got SIGTERM after the program: {log:?}"
    );
    for pid in &started {
        ensure!(
            !alive(pid.parse().unwrap_or(0)),
            "hook {pid} is still alive"
        );
    }
    pass()
}

/// Attached hooks whose whole process group ends on SIGTERM are done: the
/// pipeline does not sit out the grace period (here far longer than the
/// time limit) even when their orphaned children are left to an init that
/// does not reap them, as in many containers.
fn attached_no_grace(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "nograce",
        &Profile::on("sh").grace(3600.0).hooks([
            Hook::pre().name("parent").attach().content(
                "exec 2>/dev/null
sleep 600 &
echo $! > @OUT@/child.pid
echo parent-start >> @OUT@/log
wait
",
            ),
            Hook::post().logs("post"),
        ]),
    );
    let out = f
        .run(
            "nograce",
            &format!("{}\necho program >> @OUT@/log", await_line("parent-start")),
        )
        .timeout(HANG)
        .run();
    ensure!(
        !out.timed_out,
        "antimony waited out the grace: {}",
        out.show()
    );
    ensure!(out.code() == Some(0), "{}", out.show());
    in_order(&f.log(), &["parent-start", "program", "post"])?;
    let child = pid_in(&f, "child.pid").ok_or("no child.pid")?;
    ensure!(!alive(child), "the hook's child {child} is still alive");
    pass()
}

/// `profile = "NAME"`, attached: antimony runs that profile as a sandbox of
/// its own (its own namespaces, its own run record) before this one starts;
/// it ends with this sandbox (before the post-hooks), and nothing of it is
/// left.
fn companion(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "buddy",
        &Profile::on("sh").rw(&["@OUT@"]).hook(Hook::started().content(
            r#"echo "$ANTIMONY_PID" > @OUT@/buddy-program.pid; echo "$PPID" > @OUT@/buddy-antimony.pid; echo buddy-started >> @OUT@/log"#,
        )),
    );
    f.profile(
        "main",
        &Profile::on("sh").grace(3.0).hooks([
            Hook::pre()
                .name("buddy")
                .profile("buddy")
                .attach()
                .arguments(&[
                    "-c",
                    r#"trap 'echo buddy-term >> @OUT@/log; exit 0' TERM; echo "buddy-ns $(readlink /proc/self/ns/mnt)" >> @OUT@/ns; echo buddy-start >> @OUT@/log; while :; do sleep 0.05; done"#,
                    "$(id)",
                ]),
            post_sees(&["buddy-program", "buddy-antimony"]),
        ]),
    );
    let out = f
        .run(
            "main",
            &format!(
                "{}; {}; echo \"main-ns $(readlink /proc/self/ns/mnt)\" >> @OUT@/ns; echo main-end >> @OUT@/log",
                await_line("buddy-start"),
                await_line("buddy-started")
            ),
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stderr.is_empty(), "{}", out.show());
    in_order(
        &f.log(),
        &[
            "buddy-start",
            "main-end",
            "buddy-term",
            "post-sees-buddy-program-gone",
            "post-sees-buddy-antimony-gone",
        ],
    )?;
    let ns = f.lines("ns");
    let host = format!(
        "{}",
        std::fs::read_link("/proc/self/ns/mnt")
            .map_err(|e| e.to_string())?
            .display()
    );
    let buddy = ns.iter().find_map(|l| l.strip_prefix("buddy-ns "));
    let main = ns.iter().find_map(|l| l.strip_prefix("main-ns "));
    ensure!(
        buddy.is_some() && main.is_some() && buddy != main && buddy != Some(host.as_str()),
        "the companion is not a sandbox of its own: {ns:?} (host {host})"
    );
    for p in ["buddy-program.pid", "buddy-antimony.pid"] {
        let pid = pid_in(&f, p).ok_or(format!("no {p}"))?;
        ensure!(!alive(pid), "{p} {pid} is still alive");
    }
    let records = records_of(&f, "buddy");
    ensure!(
        records.len() == 1
            && records[0]["outcome"] == "exited"
            && records[0]["arguments"][2] == "$(id)",
        "the companion's run record: {records:?}"
    );
    pass()
}
