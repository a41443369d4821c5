//! The hook pipeline, rule by rule (issue 2, rules 1–7), with real hooks,
//! real sandboxes and real signals, as root and as an unprivileged user.
//!
//! Hooks and programs append what they see to a log in the scratch's `out`
//! folder (bound read-write into the sandbox); the tests check the recorded
//! order, never an absolute time. Timeouts only catch hangs and are
//! generous.

use std::collections::{BTreeMap, BTreeSet};

use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both(
        "hooks::pre_hooks_run_on_the_host_in_order_before_the_sandbox",
        pre_hooks_in_order,
    ));
    t.extend(both(
        "hooks::attached_hooks_run_alongside_then_term_then_kill",
        attached_hooks,
    ));
    t.extend(both(
        "hooks::attached_hooks_get_the_default_grace_of_3_seconds",
        attached_default_grace,
    ));
    t.extend(both(
        "hooks::two_unnamed_attached_hooks_are_two_hooks",
        two_unnamed_attached,
    ));
    t.extend(both(
        "hooks::attached_hooks_that_end_on_term_cost_no_grace",
        attached_no_grace,
    ));
    t.extend(both(
        "hooks::trailing_attached_hooks_start_before_the_program",
        trailing_attached,
    ));
    t.extend(both(
        "hooks::attached_hooks_and_the_program_keep_every_cpu",
        attached_cpus,
    ));
    t.extend(both(
        "hooks::environment_is_exactly_the_antimony_variables",
        environment,
    ));
    t.extend(both(
        "hooks::antimony_home_exists_for_pre_hooks",
        antimony_home_exists,
    ));
    t.extend(both(
        "hooks::failing_pre_hook_stops_the_launch",
        failing_pre_hook,
    ));
    t.extend(both(
        "hooks::failing_post_hook_skips_the_rest",
        failing_post_hook,
    ));
    t.extend(both("hooks::can_fail_and_no_fail_are_warnings", can_fail));
    t.extend(both("hooks::user_and_system_identity", identity));
    t.push(case(
        "hooks::root_on_behalf_of_a_user_drops_to_that_user",
        on_behalf_of,
    ));
    t.extend(both(
        "hooks::stop_signals_reach_the_program_then_the_pipeline_ends",
        stop_signals,
    ));
    t.extend(both(
        "hooks::stop_signal_during_a_pre_hook_cancels_the_launch",
        signal_during_pre_hook,
    ));
    t.extend(both(
        "hooks::hooks_share_antimonys_stdout_and_stderr",
        shared_output,
    ));
    t.extend(both(
        "hooks::background_children_holding_the_output_do_not_hang",
        no_hang_on_output,
    ));
    t.extend(both(
        "hooks::hooks_get_no_descriptors_of_antimonys_own",
        descriptors,
    ));
    t.extend(both(
        "hooks::dry_run_lists_hooks_in_order_and_runs_none",
        dry_run,
    ));
    t
}

fn index_of(log: &[String], want: &str) -> Option<usize> {
    log.iter().position(|l| l == want)
}

/// The one line antimony prints for a launcher failure.
fn one_error_line(out: &Output, naming: &[&str]) -> Result<(), String> {
    if out.stderr.lines().count() != 1 {
        return Err(format!("not one `antimony: error:` line: {}", out.show()));
    }
    error_line(out, naming)
}

// An attached hook that records its start and the SIGTERM that ends it.
const WATCHER: &str = r#"
[[hooks.pre]]
name = "watcher"
attach = true
content = '''
exec 2>/dev/null
trap 'echo watcher-term >> @OUT@/log; exit 0' TERM
echo $$ > @OUT@/watcher.pid
echo watcher-start >> @OUT@/log
while :; do sleep 0.05; done
'''
"#;

// An attached hook that notes its SIGTERM (the time in `stubborn-term.time`)
// and ignores it: it then notes that it is still alive at every turn of its
// loop (`stubborn-alive.times`), until the SIGKILL. SIGTERM goes to the
// hook's process group, so the `sleep` dies with it and the trap runs at once.
const STUBBORN: &str = r#"
[[hooks.pre]]
name = "stubborn"
attach = true
content = '''
exec 2>/dev/null
trap 'echo "$EPOCHREALTIME" > @OUT@/stubborn-term.time; echo stubborn-term >> @OUT@/log; got=1; termed=1' TERM
echo $$ > @OUT@/stubborn.pid
echo stubborn-start >> @OUT@/log
while :; do
    if [ -n "$got" ]; then echo stubborn-alive-after-term >> @OUT@/log; got=; fi
    if [ -n "$termed" ]; then echo "$EPOCHREALTIME" >> @OUT@/stubborn-alive.times; fi
    sleep 0.05
done
'''
"#;

// ---------------------------------------------------------------- rule 1

/// A slow first hook finishes before the second starts; every pre-hook
/// finishes before the program starts; hooks run in the host's mount
/// namespace, the program in another.
fn pre_hooks_in_order(who: Who) -> TestResult {
    let f = fixture!(who);
    f.s.script("bin/second.sh", "#!/bin/sh\necho \"$1\" >> \"$2\"\n");
    f.profile(
        "order",
        r#"
inherits = ["sh"]

[[hooks.pre]]
name = "slow"
content = '''
echo slow-start >> @OUT@/log
sleep 0.3
echo slow-end >> @OUT@/log
echo "hook-ns $(readlink /proc/self/ns/mnt)" >> @OUT@/ns
'''

[[hooks.pre]]
name = "second"
path = "@BIN@/second.sh"
arguments = ["second", "@OUT@/log"]

[[hooks.pre]]
content = 'echo "third|$0|$1|$2" >> @OUT@/log'
arguments = ["a b", "$(id)"]
"#,
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

// ---------------------------------------------------------------- rule 2

/// The program sees attached hooks running; when it exits, a hook that
/// traps SIGTERM ends on it, one that ignores it is alive after it and then
/// SIGKILLed after the grace (`grace = 1`: no earlier than 0.9 s after its
/// SIGTERM); only then do the post-hooks run.
fn attached_hooks(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "attached",
        &format!(
            r#"
inherits = ["sh"]

[hooks]
grace = 1

[[hooks.pre]]
name = "polite"
attach = true
content = '''
exec 2>/dev/null
trap 'echo polite-term >> @OUT@/log; exit 0' TERM
echo $$ > @OUT@/polite.pid
echo polite-start >> @OUT@/log
while :; do sleep 0.05; done
'''

{STUBBORN}
[[hooks.pre]]
name = "blocking"
content = "echo blocking >> @OUT@/log"

[[hooks.post]]
name = "after"
content = '''
echo "$EPOCHREALTIME" > @OUT@/post.time
for h in polite stubborn; do
    if kill -0 "$(cat @OUT@/$h.pid)" 2>/dev/null; then
        echo "post-sees-$h-alive" >> @OUT@/log
    else
        echo "post-sees-$h-gone" >> @OUT@/log
    fi
done
'''
"#
        ),
    );
    let out = f
        .run(
            "attached",
            r#"n=0
until grep -qsx polite-start @OUT@/log && grep -qsx stubborn-start @OUT@/log; do
    n=$((n+1)); [ $n -gt 600 ] && break; sleep 0.05
done
echo program-saw-both >> @OUT@/log"#,
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
        &format!(
            r#"
inherits = ["sh"]
{STUBBORN}
[[hooks.post]]
name = "after"
content = '''
echo "$EPOCHREALTIME" > @OUT@/post.time
if kill -0 "$(cat @OUT@/stubborn.pid)" 2>/dev/null; then
    echo post-sees-stubborn-alive >> @OUT@/log
else
    echo post-sees-stubborn-gone >> @OUT@/log
fi
'''
"#
        ),
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
            r#"n=0
until grep -qsx stubborn-start @OUT@/log; do
    n=$((n+1)); [ $n -gt 600 ] && break; sleep 0.05
done
echo program >> @OUT@/log"#,
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

/// The SIGKILL of [`STUBBORN`] came no earlier than `grace` seconds (less
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
    for (case, last, code) in [
        ("started", "content = 'echo helper-start >> @OUT@/log'", 0),
        ("unstartable", &*format!("path = \"{missing}\""), 125),
    ] {
        let _ = std::fs::remove_file(f.out("log"));
        f.profile(
            case,
            &format!(
                r#"
inherits = ["sh"]
[hooks]
grace = 1

[[hooks.pre]]
name = "first"
content = "echo first >> @OUT@/log"
{WATCHER}
[[hooks.pre]]
name = "helper"
attach = true
{last}

[[hooks.post]]
name = "after"
content = "echo after >> @OUT@/log"
"#
            ),
        );
        let out = f
            .run(
                case,
                r#"n=0
until grep -qsx watcher-start @OUT@/log; do
    n=$((n+1)); [ $n -gt 600 ] && break; sleep 0.05
done
echo program >> @OUT@/log"#,
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
    f.profile(
        "cpus-companion",
        "inherits = [\"sh\"]\n[files]\nrw = [\"@OUT@\"]\n",
    );
    let src = f.s.mkdir("bind-source");
    let binds: Vec<String> = (0..1500)
        .map(|i| format!("\"{}=/b/{i}\"", s(&src)))
        .collect();
    f.profile(
        "cpus",
        &format!(
            r#"
inherits = ["sh"]
[files]
ro = [{}]

[hooks]
grace = 1

[[hooks.pre]]
name = "first"
content = "true"

[[hooks.pre]]
name = "beside"
attach = true
content = '''
exec 2>/dev/null
trap 'exit 0' TERM
grep Cpus_allowed_list /proc/self/status > @OUT@/hook-start
( sleep 0.3; grep Cpus_allowed_list /proc/self/status > @OUT@/child ) &
sh -c '( sleep 0.3; grep Cpus_allowed_list /proc/self/status > @OUT@/orphan ) &'
setsid sh -c 'sleep 0.3; grep Cpus_allowed_list /proc/self/status > @OUT@/session' &
sleep 0.3
grep Cpus_allowed_list /proc/self/status > @OUT@/hook-late
while :; do sleep 0.05; done
'''

[[hooks.pre]]
name = "companion"
attach = true
profile = "cpus-companion"
arguments = ["-c", "grep Cpus_allowed_list /proc/self/status > @OUT@/companion-start; sleep 0.3; grep Cpus_allowed_list /proc/self/status > @OUT@/companion; sleep 30"]
"#,
            binds.join(", ")
        ),
    );
    let out = f
        .run(
            "cpus",
            r#"n=0
until [ -s @OUT@/child ] && [ -s @OUT@/orphan ] && [ -s @OUT@/session ] && [ -s @OUT@/hook-late ] &&
    [ -s @OUT@/companion ]; do
    n=$((n+1)); [ $n -gt 600 ] && break; sleep 0.05
done
grep Cpus_allowed_list /proc/self/status"#,
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
    let hook = r#"
[[hooks.pre]]
attach = true
content = '''
exec 2>/dev/null
trap 'echo "term $$" >> @OUT@/log; exit 0' TERM
echo "start $$" >> @OUT@/log
while :; do sleep 0.05; done
'''
"#;
    f.profile("twins", &format!("inherits = [\"sh\"]\n{hook}{hook}"));
    let out = f
        .run(
            "twins",
            r#"n=0
until [ "$(grep -sc '^start ' @OUT@/log)" -ge 2 ]; do
    n=$((n+1)); [ $n -gt 600 ] && break; sleep 0.05
done
echo program-saw-two >> @OUT@/log"#,
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let log = f.log();
    let program = index_of(&log, "program-saw-two").ok_or(format!("log: {log:?}"))?;
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
        r#"
inherits = ["sh"]

[hooks]
grace = 3600

[[hooks.pre]]
name = "parent"
attach = true
content = '''
exec 2>/dev/null
sleep 600 &
echo $! > @OUT@/child.pid
echo parent-start >> @OUT@/log
wait
'''

[[hooks.post]]
content = "echo post >> @OUT@/log"
"#,
    );
    let out = f
        .run(
            "nograce",
            r#"n=0
until grep -qsx parent-start @OUT@/log; do n=$((n+1)); [ $n -gt 600 ] && break; sleep 0.05; done
echo program >> @OUT@/log"#,
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

// ---------------------------------------------------------------- rule 3

fn env_sets(stdout: &str) -> Vec<BTreeMap<String, String>> {
    stdout
        .split("--- \n")
        .map(|block| {
            block
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// `env = false`: exactly ANTIMONY_NAME, ANTIMONY_CACHE (an existing folder,
/// read-only to an ordinary user), ANTIMONY_INSTANCE (new each run) and,
/// for the `Enabled` and `Overlay` home policies only, ANTIMONY_HOME.
/// `env = true`: antimony's whole environment plus those.
fn environment(who: Who) -> TestResult {
    let f = fixture!(who);
    let hooks = r#"
[[hooks.pre]]
path = "/usr/bin/env"

[[hooks.pre]]
path = "/usr/bin/echo"
arguments = ["--- "]

[[hooks.pre]]
path = "/usr/bin/env"
env = true

[[hooks.pre]]
path = "/usr/bin/echo"
arguments = ["--- "]

[[hooks.pre]]
content = '''
env
echo '--- '
if [ -d "$ANTIMONY_CACHE" ]; then echo CACHE_IS_DIR=yes; fi
if ! : > "$ANTIMONY_CACHE/probe" 2>/dev/null; then echo CACHE_IS_READ_ONLY=yes; fi
'''

[[hooks.post]]
path = "/usr/bin/echo"
arguments = ["--- "]

[[hooks.post]]
path = "/usr/bin/env"
"#;
    let harness_env: BTreeMap<String, String> = {
        let home = f.s.home();
        [
            ("HOME", s(&home)),
            ("USER", f.s.user_name()),
            (
                "PATH",
                "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into(),
            ),
            ("LANG", "C.UTF-8".into()),
            ("XDG_CONFIG_HOME", s(&home.join(".config"))),
            ("XDG_DATA_HOME", s(&home.join(".local/share"))),
            ("XDG_CACHE_HOME", s(&home.join(".cache"))),
            ("XDG_STATE_HOME", s(&home.join(".local/state"))),
            ("XDG_RUNTIME_DIR", s(&f.s.path("runtime"))),
            ("HOOK_TEST_VAR", "a value with spaces".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    let mut instances = BTreeSet::new();
    for (policy, has_home) in [
        ("None", false),
        ("Enabled", true),
        ("ReadOnly", false),
        ("Overlay", true),
    ] {
        let name = format!("env{}", policy.to_lowercase());
        f.profile(
            &name,
            &format!("inherits = [\"minimal\"]\n[home]\npolicy = \"{policy}\"\n{hooks}"),
        );
        let out =
            f.s.antimony(["run", &name])
                .env("HOOK_TEST_VAR", "a value with spaces")
                .run();
        ensure!(out.code() == Some(0), "{policy}: {}", out.show());
        let sets = env_sets(&out.stdout);
        ensure!(sets.len() == 5, "{policy}: {}", out.show());
        let (bare, full, script, post) = (&sets[0], &sets[1], &sets[2], &sets[4]);
        let probe = &sets[3];

        let cache = f.s.home().join(".cache/antimony/profiles").join(&name);
        let mut expected: BTreeMap<String, String> = BTreeMap::new();
        expected.insert("ANTIMONY_NAME".into(), name.clone());
        expected.insert("ANTIMONY_CACHE".into(), s(&cache));
        let instance = bare.get("ANTIMONY_INSTANCE").cloned().unwrap_or_default();
        ensure!(
            !instance.is_empty(),
            "{policy}: no ANTIMONY_INSTANCE: {bare:?}"
        );
        expected.insert("ANTIMONY_INSTANCE".into(), instance.clone());
        if has_home {
            let home = f.s.home().join(".local/share/antimony").join(&name);
            expected.insert("ANTIMONY_HOME".into(), s(&home));
        }
        ensure!(
            bare == &expected,
            "{policy}: env = false gave {bare:?}, not {expected:?}"
        );
        ensure!(
            post == &expected,
            "{policy}: the post-hook got {post:?}, not {expected:?}"
        );
        let mut script_env = script.clone();
        for bash_own in ["PWD", "SHLVL", "_"] {
            script_env.remove(bash_own);
        }
        ensure!(
            script_env == expected,
            "{policy}: a script hook got {script:?}, not {expected:?} (+ bash's PWD, SHLVL, _)"
        );
        let mut expected_full = harness_env.clone();
        expected_full.extend(expected.clone());
        ensure!(
            full == &expected_full,
            "{policy}: env = true gave {full:?}, not {expected_full:?}"
        );
        ensure!(
            cache.is_dir(),
            "{policy}: {} is not a folder",
            cache.display()
        );
        ensure!(
            probe.get("CACHE_IS_DIR").is_some(),
            "{policy}: the hook saw no cache folder: {probe:?}"
        );
        if who == Who::User {
            ensure!(
                probe.get("CACHE_IS_READ_ONLY").is_some(),
                "{policy}: the cache folder is writable to the hook"
            );
        }
        ensure!(
            instances.insert(instance.clone()),
            "{policy}: instance {instance} repeats"
        );
    }
    // The same profile twice: two instance ids.
    let again = f.s.antimony(["run", "envnone"]).run();
    ensure!(again.code() == Some(0), "{}", again.show());
    let instance = env_sets(&again.stdout)[0]
        .get("ANTIMONY_INSTANCE")
        .cloned()
        .unwrap_or_default();
    ensure!(
        !instance.is_empty() && instances.insert(instance.clone()),
        "instance {instance} repeats"
    );
    pass()
}

/// ANTIMONY_HOME names the profile's home folder, and it exists when the
/// first pre-hook of the first run starts: a hook can prepare the home the
/// program then sees as `$HOME`.
fn antimony_home_exists(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "prepared",
        r#"
inherits = ["sh"]
[home]
policy = "Enabled"

[[hooks.pre]]
name = "prepare"
content = 'echo prepared-by-hook > "$ANTIMONY_HOME/from-hook"'
"#,
    );
    let out = f.run("prepared", "cat \"$HOME/from-hook\"").run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stdout == "prepared-by-hook\n", "{}", out.show());
    pass()
}

// ---------------------------------------------------------------- rule 4

/// A pre-hook that exits non-zero, dies of a signal, or cannot be started:
/// the sandbox never starts, the attached hook is terminated, the later
/// pre-hooks do not run, every post-hook runs, and antimony exits 125 with
/// one line naming the hook.
fn failing_pre_hook(who: Who) -> TestResult {
    let f = fixture!(who);
    let missing = s(&f.s.path("bin/no-such-hook"));
    let cases: [(&str, String, Vec<&str>); 4] = [
        (
            "exits",
            "name = \"gate\"\ncontent = 'exit 3'".into(),
            vec!["pre-hook `gate`", "exited with status 3"],
        ),
        (
            "killed",
            "name = \"gate\"\ncontent = 'kill -KILL $$'".into(),
            vec!["pre-hook `gate`", "SIGKILL"],
        ),
        (
            "unstartable",
            format!("path = \"{missing}\""),
            vec![&missing, "could not be started"],
        ),
        (
            "unstartable-attached",
            format!("name = \"helper\"\nattach = true\npath = \"{missing}\""),
            vec!["pre-hook `helper`", "could not be started"],
        ),
    ];
    for (case, failing, naming) in &cases {
        let _ = std::fs::remove_file(f.out("log"));
        f.profile(
            case,
            &format!(
                r#"
inherits = ["sh"]
[hooks]
grace = 1
{WATCHER}
[[hooks.pre]]
name = "sync"
content = 'until grep -qsx watcher-start @OUT@/log; do sleep 0.02; done; echo sync >> @OUT@/log'

[[hooks.pre]]
{failing}

[[hooks.pre]]
name = "never"
content = "echo never >> @OUT@/log"

[[hooks.post]]
name = "clean1"
content = "echo clean1 >> @OUT@/log"

[[hooks.post]]
name = "clean2"
content = "echo clean2 >> @OUT@/log"
"#
            ),
        );
        let out = f.run(case, "echo program >> @OUT@/log").run();
        ensure!(out.code() == Some(125), "{case}: {}", out.show());
        one_error_line(&out, naming).map_err(|e| format!("{case}: {e}"))?;
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
        r#"
inherits = ["sh"]

[[hooks.post]]
name = "first"
content = "echo first >> @OUT@/log"

[[hooks.post]]
name = "broken"
content = "echo broken >> @OUT@/log; exit 4"

[[hooks.post]]
name = "skipped"
content = "echo skipped >> @OUT@/log"
"#,
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
        r#"
inherits = ["sh"]

[[hooks.pre]]
name = "optional-exit"
can_fail = true
content = "exit 3"

[[hooks.pre]]
name = "optional-missing"
no_fail = true
path = "@BIN@/no-such-hook"

[[hooks.pre]]
name = "optional-killed"
can_fail = true
content = "kill -TERM $$"

[[hooks.pre]]
name = "optional-attached"
attach = true
can_fail = true
path = "@BIN@/no-such-attached-hook"

[[hooks.pre]]
name = "next"
content = "echo next >> @OUT@/log"

[[hooks.post]]
name = "optional-post"
no_fail = true
content = "exit 5"

[[hooks.post]]
name = "post-next"
content = "echo post-next >> @OUT@/log"
"#,
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

// ---------------------------------------------------------------- rule 5

const IDENTITY_HOOKS: &str = r#"
inherits = ["minimal"]

[[hooks.pre]]
content = 'echo "user $(id -u) $(id -g) $(id -G)"'

[[hooks.pre]]
system = "System"
content = 'echo "system $(id -u) $(id -g)"'

[[hooks.post]]
system = "User"
content = 'echo "post-user $(id -u) $(id -g)"'
"#;

/// Without anyone to act for, both identities are antimony's own: the
/// invoking user. An ordinary user's SUDO_UID is not a way to change user.
fn identity(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile("ids", IDENTITY_HOOKS);
    let (uid, gid) = (f.s.uid, f.s.gid);
    let mut run = f.s.antimony(["run", "ids"]);
    if who == Who::User {
        run = run
            .env("SUDO_UID", "0")
            .env("SUDO_GID", "0")
            .env("PKEXEC_UID", "0");
    }
    let out = run.run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let lines: Vec<&str> = out.stdout.lines().collect();
    ensure!(
        lines
            .first()
            .is_some_and(|l| l.starts_with(&format!("user {uid} {gid} "))),
        "{}",
        out.show()
    );
    ensure!(
        lines.get(1) == Some(&format!("system {uid} {gid}").as_str()),
        "{}",
        out.show()
    );
    ensure!(
        lines.get(2) == Some(&format!("post-user {uid} {gid}").as_str()),
        "{}",
        out.show()
    );
    pass()
}

/// antimony as root with SUDO_UID/SUDO_GID or PKEXEC_UID: `User` hooks run
/// as that user with that group and no other; `System` hooks as root.
fn on_behalf_of() -> TestResult {
    let f = fixture!(Who::Root);
    let Some(user) = world().user.clone() else {
        return skip("no unprivileged test user");
    };
    if !world().is_root {
        return skip("needs root");
    }
    f.profile("ids", IDENTITY_HOOKS);
    let (uid, gid) = (user.uid.to_string(), user.gid.to_string());
    for (how, vars) in [
        (
            "sudo",
            vec![
                ("SUDO_UID", uid.as_str()),
                ("SUDO_GID", gid.as_str()),
                ("SUDO_USER", user.name.as_str()),
            ],
        ),
        ("pkexec", vec![("PKEXEC_UID", uid.as_str())]),
        // No SUDO_GID: the user's primary group.
        ("sudo-uid-only", vec![("SUDO_UID", uid.as_str())]),
    ] {
        let mut run = f.s.antimony(["run", "ids"]);
        for (k, v) in vars {
            run = run.env(k, v);
        }
        let out = run.run();
        ensure!(out.code() == Some(0), "{how}: {}", out.show());
        let lines: Vec<&str> = out.stdout.lines().collect();
        ensure!(
            lines
                == [
                    format!("user {uid} {gid} {gid}").as_str(),
                    "system 0 0",
                    format!("post-user {uid} {gid}").as_str(),
                ],
            "{how}: {}",
            out.show()
        );
    }
    pass()
}

// ---------------------------------------------------------------- rule 6

/// SIGINT, SIGTERM and SIGHUP sent to antimony reach the program, which
/// traps them and exits with its own status; then the attached hook gets
/// SIGTERM and the post-hooks run, and antimony exits with the program's
/// status.
fn stop_signals(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "signals",
        &format!(
            r#"
inherits = ["sh"]
[hooks]
grace = 1
{WATCHER}
[[hooks.post]]
name = "post"
content = "echo post >> @OUT@/log"
"#
        ),
    );
    for (sig, name, code) in [
        (libc::SIGINT, "INT", 21),
        (libc::SIGTERM, "TERM", 22),
        (libc::SIGHUP, "HUP", 23),
    ] {
        let _ = std::fs::remove_file(f.out("log"));
        let script = r#"
trap 'echo program-got-INT >> @OUT@/log; exit 21' INT
trap 'echo program-got-TERM >> @OUT@/log; exit 22' TERM
trap 'echo program-got-HUP >> @OUT@/log; exit 23' HUP
n=0
until grep -qsx watcher-start @OUT@/log; do n=$((n+1)); [ $n -gt 600 ] && break; sleep 0.05; done
echo program-ready >> @OUT@/log
while :; do sleep 0.05; done"#;
        let mut bg = Background::start(f.run("signals", script));
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
    let common = format!(
        r#"
inherits = ["sh"]
[hooks]
grace = 1
{WATCHER}
[[hooks.pre]]
name = "next"
content = "echo next >> @OUT@/log"

[[hooks.post]]
name = "post"
content = "echo post >> @OUT@/log"
"#
    );
    // The blocking hook comes right after the watcher.
    let with = |blocking: &str| {
        common.replacen(
            "\n[[hooks.pre]]\nname = \"next\"",
            &format!("\n{blocking}\n[[hooks.pre]]\nname = \"next\""),
            1,
        )
    };
    f.profile(
        "dies",
        &with(
            r#"[[hooks.pre]]
name = "sleeper"
content = '''
until grep -qsx watcher-start @OUT@/log; do sleep 0.02; done
echo $$ > @OUT@/sleeper.pid
exec /usr/bin/sleep 600
'''
"#,
        ),
    );
    f.profile(
        "handles",
        &with(
            r#"[[hooks.pre]]
name = "handler"
content = '''
exec 2>/dev/null
trap 'echo handler-got-term >> @OUT@/log; exit 0' TERM
until grep -qsx watcher-start @OUT@/log; do sleep 0.02; done
echo handler-ready >> @OUT@/log
while :; do sleep 0.05; done
'''
"#,
        ),
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
        let _ = std::fs::remove_file(f.out("log"));
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

// ---------------------------------------------------------------- rule 7

/// Blocking, attached and post-hooks write to antimony's own stdout and
/// stderr, in pipeline order around the program's output.
fn shared_output(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "output",
        r#"
inherits = ["sh"]
[hooks]
grace = 1

[[hooks.pre]]
name = "pre"
content = "echo pre-out; echo pre-err >&2"

[[hooks.pre]]
name = "attached"
attach = true
content = '''
echo attached-out; echo attached-err >&2
: > @OUT@/attached-said
exec sleep 600
'''

[[hooks.post]]
name = "post"
content = "echo post-out; echo post-err >&2"
"#,
    );
    let out = f
        .run(
            "output",
            r#"n=0
until [ -e @OUT@/attached-said ]; do n=$((n+1)); [ $n -gt 600 ] && break; sleep 0.05; done
echo program-out; echo program-err >&2"#,
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    // The attached hook runs alongside the program, and antimony relays
    // its output while the program writes straight out: between those
    // two the order is the kernel's, but both come after the pre-hook
    // and before the post-hook.
    for (stream, text) in [("out", &out.stdout), ("err", &out.stderr)] {
        let lines: Vec<&str> = text.lines().collect();
        let mut middle = lines
            .get(1..lines.len().saturating_sub(1))
            .unwrap_or(&[])
            .to_vec();
        middle.sort();
        let (attached, program) = (format!("attached-{stream}"), format!("program-{stream}"));
        ensure!(
            lines.len() == 4
                && lines[0] == format!("pre-{stream}")
                && lines[3] == format!("post-{stream}")
                && middle == [attached.as_str(), program.as_str()],
            "{}",
            out.show()
        );
    }
    pass()
}

/// Hooks that leave background children holding their output open:
/// antimony exits all the same. While it runs it passes on what they write
/// (antimony reads every hook's output, to keep the head of it in the run
/// record); what they write after it has exited is dropped. The attached
/// hook's child, which ignores SIGTERM, is killed with its hook.
fn no_hang_on_output(who: Who) -> TestResult {
    let f = fixture!(who);
    let release = f.out("release");
    f.profile(
        "lingering",
        r#"
inherits = ["sh"]
[hooks]
grace = 0.5

[[hooks.pre]]
name = "pre"
content = '''
( echo early-pre; until [ -e @OUT@/release ]; do sleep 0.05; done; echo late-pre; echo late-pre-err >&2 ) &
echo $! > @OUT@/pre.pid
'''

[[hooks.pre]]
name = "attached"
attach = true
content = '''
( trap '' TERM; until [ -e @OUT@/release ]; do sleep 0.05; done; echo late-attached ) &
echo $! > @OUT@/attached.pid
exec sleep 600
'''

[[hooks.post]]
name = "post"
content = '''
( until [ -e @OUT@/release ]; do sleep 0.05; done; echo late-post ) &
echo $! > @OUT@/post.pid
'''
"#,
    );
    let mut bg = Background::releasing(
        f.run(
            "lingering",
            "until [ -e @OUT@/attached.pid ]; do sleep 0.05; done; echo program",
        ),
        release.clone(),
    );
    let status = bg.wait_exit(HANG);
    let still_held = f.out("pre.pid").exists() && !release.exists();
    let out = bg.finish()?;
    ensure!(
        status.is_some(),
        "antimony did not exit while hooks' children held its output"
    );
    ensure!(still_held, "nothing held the output");
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        out.stdout.lines().any(|l| l == "early-pre"),
        "what a pre-hook's child wrote while antimony ran was not passed on: {}",
        out.show()
    );
    ensure!(!out.stdout.contains("late-attached"), "{}", out.show());
    for p in ["pre.pid", "attached.pid", "post.pid"] {
        let pid = pid_in(&f, p).ok_or(format!("no {p}"))?;
        ensure!(wait_until(HANG, || !alive(pid)), "{p} {pid} is still alive");
    }
    pass()
}

/// Hooks get stdin, stdout and stderr and none of antimony's own
/// descriptors (signal pipe, pidfds, the sandbox's channels), which could
/// keep a pipe open behind antimony's back.
fn descriptors(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "fds",
        r#"
inherits = ["sh"]
[hooks]
grace = 1

[[hooks.pre]]
name = "attached"
attach = true
content = 'ls /proc/self/fd > @OUT@/attached-fds; exec sleep 600'

[[hooks.pre]]
path = "/usr/bin/ls"
arguments = ["/proc/self/fd"]

[[hooks.post]]
path = "/usr/bin/ls"
arguments = ["/proc/self/fd"]
"#,
    );
    let out = f
        .run(
            "fds",
            "until [ -s @OUT@/attached-fds ]; do sleep 0.05; done; echo program",
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    // What any program started like antimony holds (stdio, `ls`'s own
    // folder, whatever the test runner inherited): a hook holds no more.
    let baseline = f.s.command("/usr/bin/ls").arg("/proc/self/fd").run();
    ensure!(baseline.code() == Some(0), "{}", baseline.show());
    let fds = baseline.stdout;
    ensure!(
        out.stdout == format!("{fds}program\n{fds}"),
        "not {fds:?}: {}",
        out.show()
    );
    ensure!(
        f.read("attached-fds") == fds,
        "attached: {} not {fds:?}",
        f.read("attached-fds")
    );
    pass()
}

// ---------------------------------------------------------------- dry run

/// `--dry-run` lists pre-hooks then post-hooks, each in profile order, and
/// runs none of them.
fn dry_run(who: Who) -> TestResult {
    let f = fixture!(who);
    let touch = |name: &str, extra: &str, event: &str| {
        format!(
            "[[hooks.{event}]]\nname = \"{name}\"\npath = \"/usr/bin/touch\"\narguments = [\"@OUT@/{name}\"]\n{extra}\n"
        )
    };
    // Written out of order: post-hooks first.
    let text = format!(
        "inherits = [\"sh\"]\n{}{}{}{}{}",
        touch("post-one", "", "post"),
        touch("pre-one", "", "pre"),
        touch("pre-two", "attach = true", "pre"),
        touch("post-two", "can_fail = true", "post"),
        touch("pre-three", "system = \"System\"", "pre"),
    );
    f.profile("planned", &text);
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
