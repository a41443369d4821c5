//! Hooks that go further (issue 4), item by item, with real hooks, real
//! sandboxes and real signals, as root and as an unprivileged user:
//! lifecycle events (`started`, `stopping`), hooks inside the sandbox,
//! `on` conditions, timeouts, JSON on stdin, state, run records, drop-in
//! folders, reusable hooks, companion sandboxes, and the security rules
//! (antimony's folders out of a sandbox's reach, values as data).
//!
//! As in `hooks.rs`, hooks and programs append what they see to a log in
//! the scratch's `out` folder (bound read-write into the sandbox) and the
//! tests check the recorded order, never an absolute time. Time limits only
//! catch hangs.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    // 1. Lifecycle events.
    t.extend(both(
        "hooks2::started_hooks_get_the_program_pid_and_never_block_it",
        started_hooks,
    ));
    t.extend(both(
        "hooks2::stopping_hooks_run_on_sigterm_before_the_program_gets_it",
        stopping_on_sigterm,
    ));
    t.extend(both(
        "hooks2::stopping_hooks_run_on_antimony_stop",
        stopping_on_antimony_stop,
    ));
    t.extend(both(
        "hooks2::a_stopping_hook_cut_short_by_the_programs_end_is_a_warning",
        stopping_cut_short,
    ));
    t.extend(both(
        "hooks2::a_hanging_stopping_hook_holds_a_stop_10_seconds_at_most",
        stopping_default_timeout,
    ));
    // 2. Inside the sandbox.
    t.extend(both(
        "hooks2::inside_hooks_have_exactly_the_sandboxs_confinement",
        inside_hooks,
    ));
    // 3. Exit-status conditions.
    t.extend(both(
        "hooks2::post_hooks_run_on_their_outcomes",
        on_conditions,
    ));
    // 4. Timeouts.
    t.extend(both("hooks2::a_hook_that_times_out_has_failed", timeouts));
    t.extend(both(
        "hooks2::a_timed_out_hook_that_ignores_sigterm_is_killed",
        timeout_ignoring_term,
    ));
    // 5. JSON on stdin.
    t.extend(both("hooks2::stdin_json_describes_the_run", stdin_json));
    t.extend(both(
        "hooks2::hooks_that_never_read_stdin_do_not_hang_antimony",
        stdin_never_read,
    ));
    // 6. State.
    t.extend(both("hooks2::state_is_kept_and_handed_back", state_kept));
    t.extend(both(
        "hooks2::fifty_concurrent_runs_lose_no_state_update",
        state_concurrent,
    ));
    t.extend(both(
        "hooks2::a_failing_hooks_error_message_is_reported",
        error_message,
    ));
    // 7. Run records.
    t.extend(both("hooks2::run_records_and_antimony_log", run_records));
    t.extend(both("hooks2::old_run_records_are_pruned", pruning));
    // 8. Drop-ins.
    t.extend(both(
        "hooks2::user_dropins_run_in_lexical_order_around_the_profile",
        user_dropins,
    ));
    t.push(case(
        "hooks2::system_dropins_wrap_the_users_and_cannot_be_opted_out_of",
        system_dropins,
    ));
    // 9. Reusable hooks.
    t.extend(both(
        "hooks2::reusable_wait_for_port_blocks_until_the_port_accepts",
        wait_for_port,
    ));
    t.extend(both(
        "hooks2::reusable_wait_for_port_fails_after_its_timeout",
        wait_for_port_timeout,
    ));
    t.extend(both(
        "hooks2::reusable_notify_on_failure_runs_only_on_failure",
        notify_on_failure,
    ));
    t.extend(both(
        "hooks2::reusable_encrypted_home_mounts_gocryptfs_over_the_home",
        encrypted_home,
    ));
    t.push(case(
        "hooks2::reusable_encrypted_home_names_an_unusable_dev_fuse::user",
        encrypted_home_unusable_fuse,
    ));
    t.extend(both(
        "hooks2::reusable_user_hooks_config_overrides_and_unknown_keys",
        user_reusable,
    ));
    // 10. Companions.
    t.extend(both(
        "hooks2::an_attached_companion_lives_as_long_as_the_sandbox",
        companion,
    ));
    // The profile rules of the new keys.
    t.extend(both(
        "hooks2::invalid_hook_settings_are_refused",
        invalid_settings,
    ));
    // Security.
    t.extend(both(
        "hooks2::a_whole_home_bind_cannot_reach_antimonys_folders",
        whole_home,
    ));
    t.extend(both(
        "hooks2::hook_values_are_data_never_code",
        values_are_data,
    ));
    t
}

// ------------------------------------------------------------- fixture

/// What only these tests ask of the fixture.
impl Fixture {
    /// A JSON file in the `out` folder.
    fn json(&self, rel: &str) -> Result<Value, String> {
        let text = self.read(rel);
        serde_json::from_str(&text).map_err(|e| format!("{rel} is not JSON ({e}): {text:?}"))
    }

    /// Removes the log.
    fn clear(&self) {
        let _ = std::fs::remove_file(self.out("log"));
    }

    /// `$XDG_STATE_HOME/antimony/…`
    fn state_home(&self, rel: &str) -> PathBuf {
        self.s.path("home/.local/state/antimony").join(rel)
    }
}

/// A shell loop that waits (at most 30 s) until the log has LINE.
fn await_line(line: &str) -> String {
    format!(
        "n=0; until grep -qsx '{line}' @OUT@/log; do n=$((n+1)); [ $n -gt 600 ] && break; sleep 0.05; done"
    )
}

// ------------------------------------------------------ 1. lifecycle events

/// Started hooks run one after another once the program runs, get its
/// host PID as ANTIMONY_PID, and never block it: the first one waits for
/// the program to say it is running (it would wait forever if the program
/// waited for the hook). A started hook still running when the program
/// exits gets SIGTERM; dying of it is not a failure of the run.
fn started_hooks(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "lifecycle",
        &format!(
            r#"
inherits = ["sh"]

[hooks]
grace = 1

[[hooks.started]]
name = "first"
content = '''
echo "first-start $ANTIMONY_PID" >> @OUT@/log
grep '^NSpid:' /proc/$ANTIMONY_PID/status > @OUT@/nspid
tr '\0' ' ' < /proc/$ANTIMONY_PID/cmdline > @OUT@/cmdline
{}
echo first-end >> @OUT@/log
'''

[[hooks.started]]
name = "second"
content = '''
exec 2>/dev/null
trap 'echo second-term >> @OUT@/log; trap - TERM; kill -TERM $$' TERM
echo $$ > @OUT@/second.pid
echo second-start >> @OUT@/log
while :; do sleep 0.05; done
'''

[[hooks.pre]]
content = "echo pre >> @OUT@/log"

[[hooks.post]]
content = "echo post >> @OUT@/log"
"#,
            await_line("program-running")
        ),
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

const STOPPER: &str = r#"
inherits = ["sh"]

[hooks]
grace = 2

[[hooks.started]]
content = 'echo "started $ANTIMONY_PID" >> @OUT@/log'

[[hooks.stopping]]
name = "stop-one"
content = '''
echo "stopping-one $ANTIMONY_PID" >> @OUT@/log
sleep 0.3
kill -0 "$ANTIMONY_PID" && echo program-alive-in-stopping >> @OUT@/log
echo stopping-one-end >> @OUT@/log
'''

[[hooks.stopping]]
name = "stop-two"
content = 'echo stopping-two >> @OUT@/log'

[[hooks.post]]
content = 'echo post >> @OUT@/log'
"#;

const STOPPED_PROGRAM: &str = r#"
trap 'echo program-term >> @OUT@/log; exit 22' TERM
echo program-ready >> @OUT@/log
while :; do sleep 0.05; done"#;

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
    f.profile("stopper", STOPPER);
    let mut bg = Background::start(f.run("stopper", STOPPED_PROGRAM));
    wait_for_line(&f, "program-ready")?;
    ensure!(
        wait_until(HANG, || f.log().iter().any(|l| l.starts_with("started "))),
        "the started hook did not run: {:?}",
        f.log()
    );
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
    f.profile("stopper", STOPPER);
    let mut bg = Background::start(f.run("stopper", STOPPED_PROGRAM));
    wait_for_line(&f, "program-ready")?;
    ensure!(
        wait_until(HANG, || f.log().iter().any(|l| l.starts_with("started "))),
        "the started hook did not run: {:?}",
        f.log()
    );
    let stop = f.s.antimony(["stop", "stopper"]).timeout(HANG).run();
    ensure!(stop.code() == Some(0), "antimony stop: {}", stop.show());
    let out = bg.finish()?;
    ensure!(out.code() == Some(22), "{}", out.show());
    stopped_in_order(&f)?;
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
        r#"
inherits = ["sh"]

# Runs once antimony knows the program runs (a stop signal before that
# goes to the program at once: stopping hooks are for a running program).
[[hooks.started]]
content = 'echo started >> @OUT@/log'

[[hooks.stopping]]
name = "hangs"
content = '''
echo hangs >> @OUT@/log
exec sleep 60
'''
"#,
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

/// A stopping hook still running when the program ends by itself is
/// stopped like an attached hook (the run's status stays the program's),
/// with a warning; the stopping hooks after it do not run.
fn stopping_cut_short(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "cut",
        r#"
inherits = ["sh"]

[hooks]
grace = 1

[[hooks.stopping]]
name = "slow-stop"
content = '''
echo $$ > @OUT@/slow-stop.pid
echo slow-stop >> @OUT@/log
exec sleep 30
'''

[[hooks.stopping]]
name = "never"
content = 'echo never >> @OUT@/log'
"#,
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

// ------------------------------------------------------ 2. inside hooks

const INSPECT: &str = r#"
echo "uid $(id -u) gid $(id -g)"
echo "cwd $PWD"
echo "init $(cat /proc/1/comm)"
for ns in user mnt pid net ipc uts cgroup; do echo "ns-$ns $(readlink /proc/self/ns/$ns)"; done
grep -E '^(NoNewPrivs|Seccomp|Seccomp_filters|CapInh|CapPrm|CapEff|CapBnd|CapAmb):' /proc/self/status | tr -s '\t ' ' '
"#;

/// The kernel's Landlock ABI version (0 without Landlock).
fn landlock_abi() -> i64 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    // only returns the ABI version; no memory is passed.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32,
        )
    };
    v.max(0)
}

/// An `inside` started hook runs in the sandbox: the program's namespaces
/// (so its /proc and its root), its seccomp filters, no_new_privs, no
/// capabilities, its user, its Landlock domain; the sandbox's environment
/// plus the run's name and id; the sandbox's home as its folder. It cannot
/// write a read-only bind, nor a host folder the sandbox does not see.
///
/// The Landlock domain: with signal scoping (Landlock ABI 6 and later) a
/// confined process may signal only processes of its own domain or of
/// domains nested in it. The program's `kill -0` on the inside hook
/// succeeds, so the hook is in the program's domain (or one it is nested
/// in): an unconfined hook, or one confined by a ruleset of its own, would
/// make it fail with EPERM. The negative control proves that it would: an
/// "outsider" entered into the sandbox's user and PID namespaces (nsenter
/// from a host started hook), same user, same PID namespace, but outside
/// the Landlock domain, gets EPERM for the same `kill -0`.
fn inside_hooks(who: Who) -> TestResult {
    let f = fixture!(who);
    let ro = f.s.mkdir("ro");
    f.s.write("ro/existing", "old\n");
    let hostonly = f.s.mkdir("hostonly");
    // The outsider: in the sandbox's PID namespace (its `$$` is a PID
    // there), on the host's mounts, never confined by Landlock.
    f.s.script(
        "bin/outsider.sh",
        &f.subst(&format!(
            "#!/bin/sh\n{{\n{INSPECT}\n}} > @OUT@/outsider\necho $$ > @OUT@/outsider.tmp && mv @OUT@/outsider.tmp @OUT@/outsider.pid\necho outsider-ready >> @OUT@/log\n{}\n",
            await_line("program-killed")
        )),
    );
    f.profile(
        "insider",
        &format!(
            r#"
inherits = ["sh"]

[files]
ro = ["@S@/ro"]

[environment]
FROM_PROFILE = "yes"

[[hooks.started]]
name = "outsider"
content = '/usr/bin/nsenter --target "$ANTIMONY_PID" --user --pid --preserve-credentials -- @BIN@/outsider.sh > /dev/null 2> @OUT@/outsider.err &'

[[hooks.started]]
name = "inside"
inside = true
stdin = true
content = '''
cat > @OUT@/inside.json
{{
{INSPECT}
echo "env $ANTIMONY_NAME $ANTIMONY_INSTANCE $FROM_PROFILE"
echo "antimony-pid $ANTIMONY_PID"
echo "args $0 $1"
}} > @OUT@/inside
echo new > @S@/ro/created && echo wrote-ro-new >> @OUT@/inside
echo new > @S@/ro/existing && echo wrote-ro-existing >> @OUT@/inside
mkdir -p @S@/hostonly/dir && echo new > @S@/hostonly/file && echo hostonly-written-in-sandbox >> @OUT@/inside
echo $$ > @OUT@/inside.tmp && mv @OUT@/inside.tmp @OUT@/inside.pid
echo inside-waiting >> @OUT@/log
{await_killed}
echo inside-done >> @OUT@/log
'''
arguments = ["an argument"]

[[hooks.pre]]
content = 'echo "instance $ANTIMONY_INSTANCE" > @OUT@/instance'
"#,
            await_killed = await_line("program-killed")
        ),
    );
    // The program signals (`kill -0`) the inside hook and the outsider
    // while both wait for it, as they are seen in the sandbox.
    let out = f
        .run(
            "insider",
            &format!(
                "echo $$ > @OUT@/program.pid; {{ {INSPECT} }} > @OUT@/program; {}; {}; \
                 kill -0 \"$(cat @OUT@/inside.pid)\" 2> @OUT@/kill-inside.err && echo kill-inside-ok >> @OUT@/log; \
                 kill -0 \"$(cat @OUT@/outsider.pid)\" 2> @OUT@/kill-outsider.err || echo kill-outsider-refused >> @OUT@/log; \
                 echo program-killed >> @OUT@/log; {}; echo program-end >> @OUT@/log",
                await_line("inside-waiting"),
                await_line("outsider-ready"),
                await_line("inside-done")
            ),
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    in_order(&f.log(), &["inside-done", "program-end"])?;
    let inside = f.lines("inside");
    let program = f.lines("program");
    ensure!(
        program.iter().any(|l| l.starts_with("ns-mnt ")),
        "the program did not report: {program:?}"
    );
    // Everything the program reports, the hook reports alike (but its folder).
    for l in &program {
        if l.starts_with("cwd ") {
            continue;
        }
        ensure!(
            inside.contains(l),
            "inside, `{l}` differs: hook {inside:?}, program {program:?}"
        );
    }
    // And that is a sandbox: not the host's namespaces, init as PID 1.
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").map_err(|e| e.to_string())?;
    ensure!(
        !inside.contains(&format!("ns-mnt {}", host_mnt.display())),
        "the hook is in the host's mount namespace: {inside:?}"
    );
    for want in [
        "init antimony-init".to_string(),
        "NoNewPrivs: 1".into(),
        "Seccomp: 2".into(),
        "CapEff: 0000000000000000".into(),
        "CapPrm: 0000000000000000".into(),
        format!("uid {} gid {}", f.s.uid, f.s.gid),
        format!("cwd {}", s(&f.s.home())),
        "args inside an argument".into(),
    ] {
        ensure!(inside.contains(&want), "inside: no `{want}`: {inside:?}");
    }
    let instance = f.read("instance");
    let instance = instance.trim().trim_start_matches("instance ");
    ensure!(
        inside.contains(&format!("env insider {instance} yes")),
        "inside: not the sandbox's environment with ANTIMONY_NAME/INSTANCE: {inside:?}"
    );
    // The program's PID as the hook sees it, in its environment and input.
    let pid = f.read("program.pid").trim().to_string();
    ensure!(
        inside.contains(&format!("antimony-pid {pid}")),
        "inside: ANTIMONY_PID is not the program's PID inside ({pid}): {inside:?}"
    );
    let input = f.json("inside.json")?;
    ensure!(
        input["pid"].as_u64().map(|p| p.to_string()) == Some(pid.clone())
            && input["event"] == "started",
        "inside: the JSON input's pid is not {pid}: {input:#}"
    );
    // Nothing written where the sandbox cannot write.
    ensure!(
        !inside.iter().any(|l| l.starts_with("wrote-ro")),
        "the hook wrote a read-only bind: {inside:?}"
    );
    ensure!(
        !ro.join("created").exists(),
        "ro/created exists on the host"
    );
    ensure!(
        std::fs::read_to_string(ro.join("existing")).unwrap_or_default() == "old\n",
        "ro/existing changed"
    );
    // The host folder the sandbox does not see: the hook wrote into the
    // sandbox's private /tmp, never the host's.
    ensure!(
        std::fs::read_dir(&hostonly).map(|d| d.count()).unwrap_or(1) == 0,
        "the hook wrote into a host folder the sandbox does not see"
    );
    // The seccomp filters are compared above: the program has them.
    ensure!(
        program
            .iter()
            .any(|l| l.starts_with("Seccomp_filters: ") && l != "Seccomp_filters: 0"),
        "the program reports no seccomp filter: {program:?}"
    );
    // The same Landlock domain (see above).
    let log = f.log();
    let kill_inside = f.read("kill-inside.err");
    ensure!(
        log.iter().any(|l| l == "kill-inside-ok"),
        "the program could not signal the inside hook ({kill_inside:?}): not its Landlock domain: {log:?}"
    );
    in_order(&log, &["inside-waiting", "kill-inside-ok", "inside-done"])?;
    let abi = landlock_abi();
    if abi >= 6 {
        // The control: the outsider is the program's user in the program's
        // PID namespace, alive while the program signalled it…
        let outsider = f.lines("outsider");
        for want in ["uid ", "ns-pid ", "ns-user "] {
            let line = program.iter().find(|l| l.starts_with(want));
            ensure!(
                line.is_some_and(|l| outsider.contains(l)),
                "the outsider is not the program's `{want}` (nsenter: {:?}): outsider {outsider:?}, program {program:?}",
                f.read("outsider.err")
            );
        }
        in_order(
            &log,
            &["outsider-ready", "kill-outsider-refused", "program-killed"],
        )?;
        // …so only its Landlock domain made the kernel refuse: EPERM, not
        // ESRCH.
        let refused = f.read("kill-outsider.err");
        ensure!(
            refused.contains("Operation not permitted"),
            "the program's kill -0 on the outsider did not fail with EPERM: {refused:?}"
        );
    }
    // Without signal scoping (Landlock ABI < 6) no signal tells domains
    // apart: the other checks above are all there is.
    pass()
}

// ------------------------------------------------------ 3. on conditions

/// Post-hooks run on the outcomes their `on` names (and always without
/// one); the others are recorded as skipped.
fn on_conditions(who: Who) -> TestResult {
    let f = fixture!(who);
    let post = |name: &str, on: &str| {
        let on = if on.is_empty() {
            String::new()
        } else {
            format!("on = {on}\n")
        };
        format!("[[hooks.post]]\nname = \"{name}\"\n{on}content = 'echo {name} >> @OUT@/log'\n")
    };
    let mut text = String::from("inherits = [\"sh\"]\n");
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
        text.push_str(&post(name, on));
    }
    f.profile("conditions", &text);
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

/// Every run record in the log, in its order (oldest first).
fn all_records(f: &Fixture) -> Vec<Value> {
    std::fs::read_to_string(f.state_home("runs").join("log.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// Every run record of a profile, oldest first.
fn records_of(f: &Fixture, profile: &str) -> Vec<Value> {
    all_records(f)
        .into_iter()
        .filter(|r| r["profile"] == profile)
        .collect()
}

// ------------------------------------------------------ 4. timeouts

/// A pre-hook past its `timeout` is stopped and has failed: the launch
/// stops (125, naming it); with `can_fail` it is a warning and the program
/// runs. A started hook past its timeout likewise.
fn timeouts(who: Who) -> TestResult {
    let f = fixture!(who);
    let slow = |can_fail: bool| {
        format!(
            r#"
inherits = ["sh"]

[[hooks.pre]]
name = "slow"
timeout = 0.3
can_fail = {can_fail}
content = '''
echo slow-start >> @OUT@/log
exec sleep 30
'''

[[hooks.started]]
name = "slow-started"
timeout = 0.3
can_fail = true
content = 'exec sleep 30'

# Inside the sandbox, the same limit (init gets the signals).
[[hooks.started]]
name = "inside-slow"
inside = true
timeout = 0.3
can_fail = true
content = 'exec sleep 30'

# Started hooks run one after another: this one starts when the slow ones
# have ended.
[[hooks.started]]
name = "after-slow"
content = 'exec 3>@OUT@/after-slow.end; echo after-slow >> @OUT@/log'

[[hooks.post]]
content = 'echo post >> @OUT@/log'
"#
        )
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
        r#"
inherits = ["sh"]

[hooks]
grace = 0.5

[[hooks.pre]]
name = "stubborn"
timeout = 0.3
content = '''
trap 'echo got-term >> @OUT@/log' TERM
echo $$ > @OUT@/stubborn.pid
echo stubborn-start >> @OUT@/log
while :; do sleep 0.05; done
'''
"#,
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

// ------------------------------------------------------ 5. JSON on stdin

/// A user's reusable hook that saves its JSON input in `{file}`.
const DUMP_HOOK: &str = r#"
description = "Saves its input"
[config]
file = ""
greeting = "hello"
n = 1
[hook]
stdin = true
content = 'cat > "$1"'
arguments = ["{file}"]
"#;

/// `stdin = true`: one JSON object, then end of file, at every event: the
/// event, profile, instance, program and arguments, the program's PID once
/// started, the outcome after it, the hook's name, its config and its
/// saved state.
fn stdin_json(who: Who) -> TestResult {
    let f = fixture!(who);
    f.s.write("home/.config/antimony/hooks/dump.toml", DUMP_HOOK);
    f.profile(
        "json",
        r#"
inherits = ["sh"]
arguments = ["-c"]

[[hooks.pre]]
name = "pre-json"
stdin = true
content = '''
cat > @OUT@/pre.json
echo "$ANTIMONY_INSTANCE" > @OUT@/instance
echo '{"state": {"update": {"runs": 1, "who": "pre"}}}'
'''

[[hooks.started]]
name = "started-json"
stdin = true
content = 'cat > @OUT@/started.json; echo "$ANTIMONY_PID" > @OUT@/started.pid; echo started-done >> @OUT@/log'

[[hooks.stopping]]
name = "stopping-json"
stdin = true
content = 'cat > @OUT@/stopping.json'

[[hooks.post]]
name = "post-json"
stdin = true
content = 'cat > @OUT@/post.json'

[[hooks.post]]
use = "dump"
config = { file = "@OUT@/use.json", n = 4 }
"#,
    );
    let script = format!("{}; exit 7", await_line("started-done"));
    let out = s(&f.out);
    let run =
        f.s.antimony([
            "run",
            "json",
            "--rw",
            &out,
            "--",
            &f.subst(&script),
            "second arg",
        ])
        .run();
    ensure!(run.code() == Some(7), "{}", run.show());
    ensure!(run.stderr.is_empty(), "{}", run.show());
    ensure!(
        !run.stdout.contains("\"state\""),
        "the state reply was passed on: {}",
        run.show()
    );
    let instance = f.read("instance").trim().to_string();
    let pid: u64 = f
        .read("started.pid")
        .trim()
        .parse()
        .map_err(|_| "no started.pid")?;
    let script_arg = f.subst(&script);
    for (file, event, name) in [
        ("pre.json", "pre", "pre-json"),
        ("started.json", "started", "started-json"),
        ("post.json", "post", "post-json"),
        ("use.json", "post", "dump"),
    ] {
        let v = f.json(file)?;
        let fail = |what: &str| format!("{file}: {what}: {v:#}");
        ensure!(v["event"] == event, "{}", fail("event"));
        ensure!(v["profile"] == "json", "{}", fail("profile"));
        ensure!(v["instance"] == instance.as_str(), "{}", fail("instance"));
        ensure!(v["program"] == "/bin/sh", "{}", fail("program"));
        ensure!(
            v["arguments"] == serde_json::json!(["-c", script_arg, "second arg"]),
            "{}",
            fail("arguments")
        );
        ensure!(v["hook"]["name"] == name, "{}", fail("hook.name"));
        if event == "pre" {
            ensure!(v["pid"].is_null(), "{}", fail("pid before the start"));
        } else {
            ensure!(v["pid"] == pid, "{}", fail("pid (ANTIMONY_PID)"));
        }
        if event == "post" {
            ensure!(
                v["outcome"] == serde_json::json!({"kind": "exited", "code": 7}),
                "{}",
                fail("outcome")
            );
        } else {
            ensure!(v["outcome"].is_null(), "{}", fail("outcome before the end"));
        }
        let config = if name == "dump" {
            serde_json::json!({"file": s(&f.out("use.json")), "greeting": "hello", "n": 4})
        } else {
            serde_json::json!({})
        };
        ensure!(v["hook"]["config"] == config, "{}", fail("hook.config"));
        ensure!(
            v["hook"]["state"] == serde_json::json!({}),
            "{}",
            fail("hook.state")
        );
    }
    ensure!(
        !f.out("stopping.json").exists(),
        "a stopping hook ran without a stop"
    );

    // The second run: the pre-hook's saved state; a stop signal.
    f.clear();
    let mut bg = Background::start(f.s.antimony([
        "run",
        "json",
        "--rw",
        &out,
        "--",
        &f.subst("echo ready >> @OUT@/log; while :; do sleep 0.05; done"),
    ]));
    wait_for_line(&f, "ready")?;
    wait_for_line(&f, "started-done")?;
    bg.signal(libc::SIGTERM);
    let run = bg.finish()?;
    ensure!(run.code() == Some(128 + libc::SIGTERM), "{}", run.show());
    let pre = f.json("pre.json")?;
    ensure!(
        pre["hook"]["state"] == serde_json::json!({"runs": 1, "who": "pre"}),
        "the saved state was not handed back: {pre:#}"
    );
    let stopping = f.json("stopping.json")?;
    ensure!(
        stopping["event"] == "stopping"
            && stopping["pid"].is_u64()
            && stopping["outcome"].is_null(),
        "stopping input: {stopping:#}"
    );
    let post = f.json("post.json")?;
    ensure!(
        post["outcome"] == serde_json::json!({"kind": "signaled", "signal": libc::SIGTERM}),
        "post input after a signal: {post:#}"
    );
    // A launch that failed.
    let missing = s(&f.s.path("missing"));
    let run =
        f.s.antimony(["run", "json", "--ro", &missing, "--rw", &out, "--", "true"])
            .run();
    ensure!(run.code() == Some(125), "{}", run.show());
    let post = f.json("post.json")?;
    ensure!(
        post["outcome"]["kind"] == "launch-failed"
            && post["outcome"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("missing")),
        "post input after a failed launch: {post:#}"
    );
    pass()
}

/// Hooks that never read their stdin, with a JSON input far larger than a
/// pipe holds (a big saved state, a big config), at every event and
/// inside: antimony neither hangs nor dies (one closes its stdin at once).
fn stdin_never_read(who: Who) -> TestResult {
    let f = fixture!(who);
    let big = "x".repeat(1 << 20);
    f.s.write(
        "home/.config/antimony/hooks/bigconfig.toml",
        &format!(
            "[config]\nblob = \"{big}\"\n[hook]\nstdin = true\ncontent = 'echo bigconfig-$1 >> {}/log'\narguments = [\"done\"]\n",
            s(&f.out)
        ),
    );
    // A saved state of 1 MiB for each named hook (an inside hook's is kept
    // apart, under `inside/`).
    let state = serde_json::json!({ "blob": big }).to_string();
    for key in [
        "ignore-pre",
        "closes-stdin",
        "ignore-started",
        "inside/ignore-inside",
        "ignore-post",
    ] {
        f.s.write(
            &format!("home/.local/state/antimony/state/deaf/{key}.json"),
            &state,
        );
    }
    f.profile(
        "deaf",
        r#"
inherits = ["sh"]

[[hooks.pre]]
name = "ignore-pre"
stdin = true
content = 'sleep 0.2; echo ignore-pre >> @OUT@/log'

[[hooks.pre]]
name = "closes-stdin"
stdin = true
content = 'exec 0<&-; sleep 0.1; echo closes-stdin >> @OUT@/log'

[[hooks.pre]]
use = "bigconfig"

[[hooks.started]]
name = "ignore-started"
stdin = true
content = 'sleep 0.1; echo ignore-started >> @OUT@/log'

[[hooks.started]]
name = "ignore-inside"
inside = true
stdin = true
content = 'sleep 0.1; echo ignore-inside >> @OUT@/log'

[[hooks.post]]
name = "ignore-post"
stdin = true
content = 'sleep 0.1; echo ignore-post >> @OUT@/log'
"#,
    );
    let out = f
        .run(
            "deaf",
            &format!("{}; echo program >> @OUT@/log", await_line("ignore-inside")),
        )
        .timeout(HANG)
        .run();
    ensure!(!out.timed_out, "antimony hung: {}", out.show());
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stderr.is_empty(), "{}", out.show());
    in_order(
        &f.log(),
        &[
            "ignore-pre",
            "closes-stdin",
            "bigconfig-done",
            "ignore-started",
            "ignore-inside",
            "program",
            "ignore-post",
        ],
    )?;

    // Hooks that never read their input and never end by themselves: an
    // attached pre-hook and a started hook that would run as long as the
    // sandbox (they are ended with SIGTERM once the program has exited),
    // and a stopping hook the program's end cuts short. Each would wait
    // 600 s (or until the release file, made only once antimony has
    // exited, or the `out` folder, removed at the test's end, is gone: so
    // that a failing test leaves nothing behind): a writer that waited for
    // them to read (or to end) would hold the run that long, and the
    // time limit of `finish` catches that.
    f.clear();
    let long = |event: &str, name: &str, attach: &str| {
        format!(
            r#"
[[hooks.{event}]]
name = "{name}"
stdin = true
{attach}
content = '''
{{ n=0; while [ -d @OUT@ ] && [ ! -e @OUT@/release ] && [ $n -lt 12000 ]; do sleep 0.05; n=$((n+1)); done; }} & s=$!
trap 'kill $s 2>/dev/null; echo {name}-term >> @OUT@/log; trap - TERM; kill -TERM $$' TERM
echo "$$ $s" > @OUT@/{name}.pids
echo {name} >> @OUT@/log
wait
'''
"#
        )
    };
    let names = ["long-attached", "long-started", "long-stopping"];
    for key in names {
        f.s.write(
            &format!("home/.local/state/antimony/state/deaf-long/{key}.json"),
            &state,
        );
    }
    let mut text = String::from("inherits = [\"sh\"]\n");
    text.push_str(&long("pre", "long-attached", "attach = true"));
    text.push_str(&long("started", "long-started", ""));
    text.push_str(&long("stopping", "long-stopping", ""));
    text.push_str("\n[[hooks.post]]\ncontent = 'echo post >> @OUT@/log'\n");
    f.profile("deaf-long", &text);
    let mut bg = Background::releasing(
        f.run(
            "deaf-long",
            &format!(
                "{}; {}; echo program-running >> @OUT@/log; {}; echo program-end >> @OUT@/log",
                await_line("long-attached"),
                await_line("long-started"),
                await_line("long-stopping")
            ),
        ),
        f.out("release"),
    );
    wait_for_line(&f, "program-running")?;
    // The stopping hook starts; the program sees it and ends by itself.
    bg.signal(libc::SIGTERM);
    let out = bg.finish()?;
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        out.stderr.lines().count() == 1
            && out
                .stderr
                .starts_with("antimony: warning: stopping-hook `long-stopping`"),
        "{}",
        out.show()
    );
    let log = f.log();
    for name in names {
        in_order(&log, &["program-end", &format!("{name}-term"), "post"])?;
    }
    in_order(
        &log,
        &[
            "long-started",
            "program-running",
            "long-stopping",
            "program-end",
            "post",
        ],
    )?;
    in_order(&log, &["long-attached", "program-running"])?;
    // Nothing of them is left.
    for name in names {
        let pids: Vec<u32> = f
            .read(&format!("{name}.pids"))
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        ensure!(pids.len() == 2, "{name}: no PIDs: {pids:?}");
        ensure!(
            wait_until(HANG, || !pids.iter().any(|&p| alive(p))),
            "{name}: {pids:?} still alive"
        );
    }
    pass()
}

// ------------------------------------------------------ 6. state

/// A counter kept in the hook's state: read from the JSON input, printed
/// back as an update. The pause between the read and the reply widens the
/// window a lost update would need.
const COUNTER: &str = r#"
[[hooks.pre]]
name = "counter"
stdin = true
content = '''
input=$(cat)
printf '%s\n' "$input" > "@OUT@/input-$ANTIMONY_INSTANCE"
n=$(printf '%s' "$input" | grep -o '"counter_n":[0-9]*' | cut -d: -f2)
n=${n:-0}
sleep 0.01
echo "counter output $n"
echo "{\"state\": {\"update\": {\"counter_n\": $((n+1)), \"old\": \"x$n\"}, \"remove\": [\"old\"]}}"
'''
"#;

/// The JSON inputs the counter saved, removed as they are read.
fn take_inputs(f: &Fixture) -> Result<Vec<Value>, String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&f.out)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("input-") {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            let _ = std::fs::remove_file(entry.path());
            found.push(serde_json::from_slice(&bytes).map_err(|e| e.to_string())?);
        }
    }
    Ok(found)
}

/// State updates and removals are kept per profile and hook and handed
/// back on the next run; the reply line is not output; another profile's
/// hook of the same name has a state of its own.
fn state_kept(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile("stateful", &format!("inherits = [\"sh\"]\n{COUNTER}"));
    f.profile("other", &format!("inherits = [\"sh\"]\n{COUNTER}"));
    let mut states = Vec::new();
    for profile in ["stateful", "stateful", "other", "stateful"] {
        let out = f.run(profile, "true").run();
        ensure!(out.code() == Some(0), "{}", out.show());
        ensure!(
            out.stdout.contains("counter output") && !out.stdout.contains("\"state\""),
            "the hook's output, without its state reply, is antimony's: {}",
            out.show()
        );
        let inputs = take_inputs(&f)?;
        ensure!(inputs.len() == 1, "inputs: {inputs:?}");
        states.push((profile, inputs[0]["hook"]["state"].clone()));
    }
    // `remove` applies before `update`: after each run, `old` is this run's.
    let want = [
        ("stateful", serde_json::json!({})),
        ("stateful", serde_json::json!({"counter_n": 1, "old": "x0"})),
        ("other", serde_json::json!({})),
        ("stateful", serde_json::json!({"counter_n": 2, "old": "x1"})),
    ];
    ensure!(states == want, "states handed back: {states:?}");
    // Kept where the man page says, readable by its owner only.
    let file = f.state_home("state/stateful/counter.json");
    let saved: Value = serde_json::from_slice(
        &std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?,
    )
    .map_err(|e| e.to_string())?;
    ensure!(
        saved == serde_json::json!({"counter_n": 3, "old": "x2"}),
        "saved: {saved}"
    );
    let mode = std::fs::metadata(f.state_home("state/stateful"))
        .map_err(|e| e.to_string())?
        .mode();
    ensure!(mode & 0o077 == 0, "the state folder has mode {mode:o}");
    pass()
}

/// Fifty runs of one profile at once, each adding one to a counter in its
/// hook's state: the runs of the hook are serialized, so the count is 50.
fn state_concurrent(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "count",
        &format!("inherits = [\"minimal\"]\npath = \"/bin/true\"\n{COUNTER}"),
    );
    let runs: Vec<Child> = (0..50)
        .map(|_| f.s.antimony(["run", "count"]).spawn())
        .collect();
    let mut failures = Vec::new();
    for mut child in runs {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break Some(st);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        if status.is_none_or(|s| !s.success()) {
            failures.push(format!("{status:?}: {err}"));
        }
    }
    ensure!(failures.is_empty(), "runs failed: {failures:?}");
    let inputs = take_inputs(&f)?;
    let seen: BTreeSet<i64> = inputs
        .iter()
        .map(|v| v["hook"]["state"]["counter_n"].as_i64().unwrap_or(0))
        .collect();
    ensure!(
        seen == (0..50).collect(),
        "the runs did not each see the one before: {seen:?}"
    );
    let file = f.state_home("state/count/counter.json");
    let saved: Value = serde_json::from_slice(
        &std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?,
    )
    .map_err(|e| e.to_string())?;
    ensure!(saved["counter_n"] == 50, "updates were lost: {saved}");
    pass()
}

/// A failing hook's `{"error": {"message": …}}` is what antimony reports
/// (and records), and its state update is not applied.
fn error_message(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "grumpy",
        r#"
inherits = ["sh"]

[[hooks.pre]]
name = "grumpy"
stdin = true
content = '''
cat > @OUT@/input.json
echo '{"state": {"update": {"tries": 1}}}'
echo '{"error": {"message": "the disk is full"}}'
exit 3
'''
"#,
    );
    for _ in 0..2 {
        let out = f.run("grumpy", "echo program >> @OUT@/log").run();
        ensure!(out.code() == Some(125), "{}", out.show());
        error_line(&out, &["grumpy", "the disk is full"])?;
        ensure!(
            !out.stdout.contains("the disk is full"),
            "the reply was passed on as output: {}",
            out.show()
        );
    }
    ensure!(f.log().is_empty(), "the program ran");
    let input = f.json("input.json")?;
    ensure!(
        input["hook"]["state"] == serde_json::json!({}),
        "a failed hook's state update was applied: {input:#}"
    );
    let record = records_of(&f, "grumpy");
    let hook = record
        .last()
        .and_then(|r| r["hooks"].get(0).cloned())
        .unwrap_or_default();
    ensure!(
        hook["error"] == "the disk is full" && hook["exit_code"] == 3,
        "the record: {hook}"
    );
    pass()
}

// ------------------------------------------------------ 7. run records

/// Every run writes a record: the program's outcome and each hook's event,
/// name, start, duration, status and the first 4 KiB of its output;
/// `antimony log` shows them as a table (with `--hooks`, each hook) and as
/// JSON.
fn run_records(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "recorded",
        r#"
inherits = ["sh"]

[[hooks.pre]]
name = "talker"
content = '''
echo "hello from talker"
head -c 6000 /dev/zero | tr '\0' x
echo
echo "$ANTIMONY_INSTANCE" > @OUT@/instance
'''

[[hooks.started]]
name = "st"
content = 'exec 3>@OUT@/st.end; echo st-out >&2'

[[hooks.post]]
name = "grumpy"
can_fail = true
content = 'echo grumpy-out; exit 3'
"#,
    );
    f.profile("unrelated", "inherits = [\"sh\"]\n");
    // The program ends once the started hook has (its status is then its
    // own, not the SIGTERM of the sandbox's end).
    f.fifo("st.end")?;
    let before = now();
    let out = f.run("recorded", "cat @OUT@/st.end; exit 4").run();
    let after = now();
    ensure!(out.code() == Some(4), "{}", out.show());
    let out2 = f.run("unrelated", "exit 0").run();
    ensure!(out2.code() == Some(0), "{}", out2.show());
    let instance = f.read("instance").trim().to_string();

    let runs = f.state_home("runs");
    let mode = std::fs::metadata(&runs).map_err(|e| e.to_string())?.mode();
    ensure!(mode & 0o077 == 0, "the runs folder has mode {mode:o}");
    let records = records_of(&f, "recorded");
    ensure!(records.len() == 1, "records: {records:?}");
    let r = &records[0];
    let fail = |what: &str| format!("{what}: {r:#}");
    ensure!(r["instance"] == instance.as_str(), "{}", fail("instance"));
    ensure!(
        r["outcome"] == "exited" && r["exit_code"] == 4 && r["status"] == 4,
        "{}",
        fail("outcome")
    );
    ensure!(r["program"] == "/bin/sh", "{}", fail("program"));
    let started = r["started_at"].as_f64().unwrap_or(0.0);
    ensure!(
        started >= before - 1.0 && started <= after + 1.0,
        "{}",
        fail("started_at is not the run's")
    );
    let hooks = r["hooks"].as_array().cloned().unwrap_or_default();
    let summary: Vec<(String, String, String)> = hooks
        .iter()
        .map(|h| {
            (
                h["event"].as_str().unwrap_or("").to_string(),
                h["name"].as_str().unwrap_or("").to_string(),
                h["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want = [
        ("pre", "pre-hook `talker`", "ok"),
        ("started", "started-hook `st`", "ok"),
        ("post", "post-hook `grumpy`", "exit 3"),
    ];
    ensure!(
        summary.len() == 3
            && summary
                .iter()
                .zip(want)
                .all(|(a, b)| a.0 == b.0 && a.1 == b.1 && a.2 == b.2),
        "hooks: {summary:?}"
    );
    let mut previous = started;
    for h in &hooks {
        let at = h["started_at"].as_f64().unwrap_or(0.0);
        ensure!(
            at >= previous && at <= after + 1.0 && h["duration_ms"].is_u64(),
            "a hook's start or duration: {h:#}"
        );
        previous = at;
    }
    let talker = &hooks[0];
    let output = talker["output"].as_str().unwrap_or("");
    ensure!(
        output.starts_with("hello from talker\nxxx")
            && output.len() == 4096
            && talker["output_truncated"] == true,
        "the talker's output head: {} bytes, truncated {}",
        output.len(),
        talker["output_truncated"]
    );
    ensure!(
        hooks[1]["output"] == "st-out\n" && hooks[1]["output_truncated"] == false,
        "stderr is kept: {:#}",
        hooks[1]
    );
    ensure!(
        hooks[2]["output"] == "grumpy-out\n" && hooks[2]["exit_code"] == 3,
        "{:#}",
        hooks[2]
    );

    // `antimony log`: a table, newest last.
    let log = f.s.antimony(["log"]).run();
    ensure!(log.code() == Some(0), "{}", log.show());
    let lines: Vec<&str> = log.stdout.lines().collect();
    ensure!(
        lines.len() == 3 && lines[0].starts_with("STARTED (UTC)") && lines[0].contains("PROFILE"),
        "antimony log: {}",
        log.show()
    );
    ensure!(
        lines[1].contains("recorded")
            && lines[1].contains(&instance)
            && lines[1].contains("exit 4")
            && lines[1].contains("3 (1 failed)")
            && lines[2].contains("unrelated"),
        "antimony log rows: {}",
        log.show()
    );
    let log = f.s.antimony(["log", "recorded", "--hooks"]).run();
    ensure!(log.code() == Some(0), "{}", log.show());
    ensure!(
        !log.stdout.contains("unrelated")
            && log
                .stdout
                .lines()
                .any(|l| l.contains("post") && l.contains("grumpy") && l.contains("exit 3"))
            && log
                .stdout
                .lines()
                .any(|l| l.contains("talker") && l.contains("ok")),
        "antimony log recorded --hooks: {}",
        log.show()
    );
    let log = f.s.antimony(["log", "--json", "-n", "1"]).run();
    ensure!(log.code() == Some(0), "{}", log.show());
    let v: Value = serde_json::from_str(&log.stdout).map_err(|e| format!("{e}: {}", log.show()))?;
    ensure!(
        v.as_array().is_some_and(|a| a.len() == 1) && v[0]["profile"] == "unrelated",
        "antimony log --json -n 1: {v:#}"
    );
    let log = f.s.antimony(["log", "recorded", "--json"]).run();
    let v: Value = serde_json::from_str(&log.stdout).map_err(|e| format!("{e}: {}", log.show()))?;
    ensure!(v[0] == *r, "antimony log --json is not the record: {v:#}");
    pass()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Adds a made-up run record `seconds_ago` old to the log.
fn fake_record(f: &Fixture, name: &str, seconds_ago: f64) {
    let at = now() - seconds_ago;
    let record = serde_json::json!({
        "profile": "fake", "instance": name, "started_at": at, "duration_ms": 1,
        "program": "/bin/true", "arguments": [], "outcome": "exited", "exit_code": 0,
        "status": 0, "hooks": []
    });
    let log = "home/.local/state/antimony/runs/log.jsonl";
    let before = std::fs::read_to_string(f.s.path(log)).unwrap_or_default();
    f.s.write(log, &format!("{before}{record}\n"));
}

/// The instances of the records in the log.
fn record_names(f: &Fixture) -> BTreeSet<String> {
    all_records(f)
        .iter()
        .filter_map(|r| r["instance"].as_str().map(String::from))
        .collect()
}

/// Records older than 30 days go, and so do all but the 200 that started
/// last. A run prunes about one time in sixteen (reading the whole log
/// costs more than appending a record), so the test runs until one has.
fn pruning(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile("pruned", "inherits = [\"minimal\"]\npath = \"/bin/true\"\n");
    for i in 0..3 {
        fake_record(&f, &format!("aged{i}"), 40.0 * 86400.0 + f64::from(i));
    }
    for i in 0..10 {
        fake_record(&f, &format!("recent{i:03}"), 7200.0 - f64::from(i));
    }
    let mut runs = 0;
    while record_names(&f).iter().any(|n| n.contains("aged")) {
        ensure!(runs < 200, "no run pruned the aged records in {runs} runs");
        let out = f.s.antimony(["run", "pruned"]).run();
        ensure!(out.code() == Some(0), "{}", out.show());
        runs += 1;
    }
    let names = record_names(&f);
    ensure!(
        names.len() == 10 + runs,
        "after pruning the aged: {names:?}"
    );
    for i in 10..200 {
        fake_record(&f, &format!("recent{i:03}"), 7200.0 - f64::from(i));
    }
    // 200 made up and the real ones: the oldest made-up ones go.
    let mut more = 0;
    while record_names(&f).len() > 200 || more == 0 {
        ensure!(more < 200, "no run pruned to 200 records in {more} runs");
        let out = f.s.antimony(["run", "pruned"]).run();
        ensure!(out.code() == Some(0), "{}", out.show());
        more += 1;
        if record_names(&f).len() == 200 {
            break;
        }
    }
    let names = record_names(&f);
    let real = records_of(&f, "pruned").len();
    ensure!(
        names.len() == 200 && real == runs + more,
        "after pruning to 200: {} records, {real} of them real (of {})",
        names.len(),
        runs + more
    );
    let gone: Vec<String> = (0..200)
        .map(|i| format!("recent{i:03}"))
        .filter(|r| !names.contains(r))
        .collect();
    let expected: Vec<String> = (0..real).map(|i| format!("recent{i:03}")).collect();
    ensure!(
        gone == expected,
        "the oldest made-up records should have gone: {gone:?}"
    );
    pass()
}

// ------------------------------------------------------ 8. drop-ins

/// A drop-in that logs its scope, event and name, and whether its JSON
/// input names the profile it runs for.
fn dropin(f: &Fixture, rel: &str, tag: &str) -> PathBuf {
    f.s.script(rel, &dropin_script(f, tag))
}

/// The text of [`dropin`]'s script, which logs into `f`'s `out` folder.
fn dropin_script(f: &Fixture, tag: &str) -> String {
    f.subst(&format!(
        "#!/bin/sh\ninput=$(cat)\ncase $input in *\"\\\"profile\\\":\\\"$ANTIMONY_NAME\\\"\"*) p=input-ok ;; *) p=input-bad ;; esac\necho \"{tag} $p\" >> @OUT@/log\n"
    ))
}

const OWN_HOOKS: &str = r#"
inherits = ["sh"]

[[hooks.pre]]
content = 'echo own-pre >> @OUT@/log'

[[hooks.started]]
content = 'echo own-started >> @OUT@/log'

[[hooks.post]]
content = 'echo own-post >> @OUT@/log'
"#;

/// The user's drop-ins run for every profile in lexical order, pre (and
/// started) ones before the profile's hooks, post ones after, with the
/// run's JSON on stdin. Hidden files, backups and files that are not
/// executable are not hooks; a drop-in (or folder) others may write is
/// skipped with a warning. `user_dropins = false` opts out.
fn user_dropins(who: Who) -> TestResult {
    let f = fixture!(who);
    let d = "home/.config/antimony/hooks.d";
    dropin(&f, &format!("{d}/pre/20-b"), "user-pre-20-b");
    dropin(&f, &format!("{d}/pre/10-a"), "user-pre-10-a");
    dropin(&f, &format!("{d}/pre/.hidden"), "hidden");
    dropin(&f, &format!("{d}/pre/30-backup~"), "backup");
    let noexec = dropin(&f, &format!("{d}/pre/12-noexec"), "noexec");
    std::fs::set_permissions(&noexec, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| e.to_string())?;
    let gw = dropin(&f, &format!("{d}/pre/15-group-writable"), "group-writable");
    std::fs::set_permissions(&gw, std::fs::Permissions::from_mode(0o775))
        .map_err(|e| e.to_string())?;
    dropin(&f, &format!("{d}/started/10-s"), "user-started-10-s");
    dropin(&f, &format!("{d}/post/20-b"), "user-post-20-b");
    dropin(&f, &format!("{d}/post/10-a"), "user-post-10-a");
    dropin(&f, &format!("{d}/stopping/10-open"), "open-folder");
    std::fs::set_permissions(
        f.s.path(&format!("{d}/stopping")),
        std::fs::Permissions::from_mode(0o777),
    )
    .map_err(|e| e.to_string())?;
    f.profile("dropped", OWN_HOOKS);
    f.profile(
        "opted-out",
        &format!("{OWN_HOOKS}\n[hooks]\nuser_dropins = false\n"),
    );
    let program = format!("{}; echo program >> @OUT@/log", await_line("own-started"));
    let out = f.run("dropped", &program).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let log = f.log();
    let want = [
        "user-pre-10-a input-ok",
        "user-pre-20-b input-ok",
        "own-pre",
        "user-started-10-s input-ok",
        "own-started",
        "program",
        "own-post",
        "user-post-10-a input-ok",
        "user-post-20-b input-ok",
    ];
    ensure!(log == want, "log: {log:?}");
    for (what, name) in [("file", "15-group-writable"), ("folder", "stopping")] {
        ensure!(
            out.stderr
                .lines()
                .any(|l| l.starts_with("antimony: warning:")
                    && l.contains(name)
                    && l.contains("skipped")),
            "no warning for the {what} others may write: {}",
            out.show()
        );
    }
    f.clear();
    let out = f.run("opted-out", &program).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stderr.is_empty(), "{}", out.show());
    let log = f.log();
    ensure!(
        log == ["own-pre", "own-started", "program", "own-post"],
        "user_dropins = false: {log:?}"
    );
    pass()
}

/// Removes `/etc/antimony` on drop if the test created it.
struct EtcAntimony {
    created: bool,
}

impl Drop for EtcAntimony {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_dir("/etc/antimony");
        }
    }
}

/// System drop-ins (`/etc/antimony/hooks.d/`) wrap the user's: system
/// pre-hooks first, system post-hooks last; `user_dropins = false` does not
/// turn them off; one not owned by root is skipped with a warning. The
/// same holds for antimony run by an ordinary user, the one who would want
/// to opt out (with the system's started and stopping drop-ins too).
///
/// So that no other test (running at the same time) sees them, the system
/// folder is this test's own: antimony runs in a mount namespace of its
/// own where the scratch's folder is bound over `/etc/antimony` (created
/// empty for the test if it did not exist, and removed afterwards); as the
/// user, `setpriv` drops to that user in that namespace.
fn system_dropins() -> TestResult {
    let f = fixture!(Who::Root);
    let Some(user) = world().user.clone() else {
        return skip("no unprivileged test user");
    };
    let etc = f.s.mkdir("etc-antimony");
    let d = "etc-antimony/hooks.d";
    dropin(&f, &format!("{d}/pre/60-b"), "system-pre-60-b");
    dropin(&f, &format!("{d}/pre/50-a"), "system-pre-50-a");
    dropin(&f, &format!("{d}/post/60-b"), "system-post-60-b");
    dropin(&f, &format!("{d}/post/50-a"), "system-post-50-a");
    let foreign = dropin(&f, &format!("{d}/pre/55-not-roots"), "not-roots");
    std::os::unix::fs::chown(&foreign, Some(user.uid), Some(user.gid))
        .map_err(|e| e.to_string())?;
    let u = "home/.config/antimony/hooks.d";
    dropin(&f, &format!("{u}/pre/10-a"), "user-pre-10-a");
    dropin(&f, &format!("{u}/post/10-a"), "user-post-10-a");
    f.profile("sysdrop", OWN_HOOKS);
    f.profile(
        "sysdrop-out",
        &format!("{OWN_HOOKS}\n[hooks]\nuser_dropins = false\n"),
    );
    let guard = EtcAntimony {
        created: !Path::new("/etc/antimony").exists(),
    };
    if guard.created {
        std::fs::create_dir("/etc/antimony").map_err(|e| format!("mkdir /etc/antimony: {e}"))?;
    }
    let run = |profile: &str| {
        f.s.command("unshare")
            .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg("mount --bind \"$0\" /etc/antimony && exec \"$@\"")
            .arg(&etc)
            .arg(&world().antimony)
            .args(["run", profile, "--rw", &s(&f.out), "--", "-c"])
            .arg(f.subst(&format!(
                "{}; echo program >> @OUT@/log",
                await_line("own-started")
            )))
            .run()
    };
    let out = run("sysdrop");
    ensure!(out.code() == Some(0), "{}", out.show());
    let log = f.log();
    let want = [
        "system-pre-50-a input-ok",
        "system-pre-60-b input-ok",
        "user-pre-10-a input-ok",
        "own-pre",
        "own-started",
        "program",
        "own-post",
        "user-post-10-a input-ok",
        "system-post-50-a input-ok",
        "system-post-60-b input-ok",
    ];
    ensure!(log == want, "log: {log:?}");
    ensure!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("antimony: warning:") && l.contains("55-not-roots")),
        "no warning for the drop-in root does not own: {}",
        out.show()
    );
    f.clear();
    let out = run("sysdrop-out");
    ensure!(out.code() == Some(0), "{}", out.show());
    let log = f.log();
    let want = [
        "system-pre-50-a input-ok",
        "system-pre-60-b input-ok",
        "own-pre",
        "own-started",
        "program",
        "own-post",
        "system-post-50-a input-ok",
        "system-post-60-b input-ok",
    ];
    ensure!(log == want, "user_dropins = false: {log:?}");

    // A reusable hook of the system's (/etc/antimony/hooks/), found like
    // a profile after the user's folder.
    f.s.write(
        "etc-antimony/hooks/sysdef.toml",
        &f.subst(
            "description = \"the system's\"\n[pre]\ncontent = 'echo sysdef-ran >> @OUT@/log'\n",
        ),
    );
    f.profile(
        "sysuse",
        "inherits = [\"sh\"]\n[[hooks.pre]]\nuse = \"sysdef\"\n",
    );
    f.clear();
    let out =
        f.s.command("unshare")
            .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg("mount --bind \"$0\" /etc/antimony && exec \"$@\"")
            .arg(&etc)
            .arg(&world().antimony)
            .args(["run", "sysuse", "--rw", &s(&f.out), "--", "-c", "true"])
            .run();
    ensure!(
        out.code() == Some(0) && f.log().iter().any(|l| l == "sysdef-ran"),
        "the system's reusable hook did not run: {:?} {}",
        f.log(),
        out.show()
    );

    // As the ordinary user: a home of the user's own, the same log (its
    // folder now the user's), the system's drop-ins as they are plus a
    // started and a stopping one. The run is stopped (SIGTERM) so that the
    // stopping hooks run.
    let us = match Scratch::new(Who::User) {
        Ok(us) => us,
        Err(e) => return skip(e),
    };
    std::os::unix::fs::chown(&f.out, Some(user.uid), Some(user.gid)).map_err(|e| e.to_string())?;
    dropin(&f, &format!("{d}/started/50-s"), "system-started-50-s");
    dropin(&f, &format!("{d}/stopping/50-s"), "system-stopping-50-s");
    for (event, tag) in [
        ("pre", "user-pre-10-a"),
        ("stopping", "user-stopping-10-a"),
        ("post", "user-post-10-a"),
    ] {
        us.script(
            &format!("home/.config/antimony/hooks.d/{event}/10-a"),
            &dropin_script(&f, tag),
        );
    }
    let stopping =
        format!("{OWN_HOOKS}\n[[hooks.stopping]]\ncontent = 'echo own-stopping >> @OUT@/log'\n");
    us.profile("sysdrop", &f.subst(&stopping));
    us.profile(
        "sysdrop-out",
        &f.subst(&format!("{stopping}\n[hooks]\nuser_dropins = false\n")),
    );
    let run_as_user = |profile: &str| -> Result<Output, String> {
        let home = us.home();
        let mut run = f
            .s
            .command("unshare")
            .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(format!(
                "mount --bind \"$0\" /etc/antimony && exec setpriv --reuid={} --regid={} --init-groups -- \"$@\"",
                user.uid, user.gid
            ))
            .arg(&etc)
            .arg(&world().antimony)
            .args(["run", profile, "--rw", &s(&f.out), "--", "-c"])
            .arg(f.subst(&format!(
                "{}; echo program >> @OUT@/log; while :; do sleep 0.05; done",
                await_line("own-started")
            )))
            .env("HOME", &home)
            .env("USER", &user.name)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_STATE_HOME", home.join(".local/state"))
            .env("XDG_RUNTIME_DIR", us.path("runtime"));
        run.cmd.current_dir(&home);
        // unshare, sh and setpriv exec one another: the child is antimony.
        let mut bg = Background::start(run);
        wait_for_line(&f, "program")?;
        bg.signal(libc::SIGTERM);
        bg.finish()
    };
    for (profile, user_dropins) in [("sysdrop", true), ("sysdrop-out", false)] {
        f.clear();
        let out = run_as_user(profile)?;
        ensure!(
            out.code() == Some(128 + libc::SIGTERM),
            "as the user, {profile}: {}",
            out.show()
        );
        ensure!(
            out.stderr
                .lines()
                .any(|l| l.starts_with("antimony: warning:") && l.contains("55-not-roots")),
            "as the user, {profile}: no warning for the drop-in root does not own: {}",
            out.show()
        );
        let mut want = vec![
            "system-pre-50-a input-ok",
            "system-pre-60-b input-ok",
            "user-pre-10-a input-ok",
            "own-pre",
            "system-started-50-s input-ok",
            "own-started",
            "program",
            "own-stopping",
            "user-stopping-10-a input-ok",
            "system-stopping-50-s input-ok",
            "own-post",
            "user-post-10-a input-ok",
            "system-post-50-a input-ok",
            "system-post-60-b input-ok",
        ];
        if !user_dropins {
            want.retain(|l| !l.starts_with("user-"));
        }
        let log = f.log();
        ensure!(log == want, "as the user, {profile}: log: {log:?}");
    }
    // It was the user's antimony: its run records are the user's.
    let runs = us.path("home/.local/state/antimony/runs");
    let owner = std::fs::metadata(&runs).map(|m| m.uid());
    ensure!(
        owner.as_ref().ok() == Some(&user.uid),
        "the user's run records {}: owner {owner:?}, not {}",
        runs.display(),
        user.uid
    );
    drop(guard);
    pass()
}

// ------------------------------------------------------ 9. reusable hooks

/// A free TCP port on the loopback (nothing listens there once this returns).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// `use = "wait-for-port"` blocks the launch until the port accepts a
/// connection: the listener comes up a moment after antimony starts, and
/// the program runs only after it.
fn wait_for_port(who: Who) -> TestResult {
    let f = fixture!(who);
    let port = free_port()?;
    f.profile(
        "waiter",
        &format!(
            "inherits = [\"sh\"]\n\n[[hooks.pre]]\nuse = \"wait-for-port\"\nconfig = {{ port = {port}, timeout = 25 }}\n"
        ),
    );
    // The log belongs to the test's user, who runs the program.
    let log = f.s.write("out/log", "");
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let listener = std::thread::spawn(move || -> Result<(), String> {
        use std::io::Write;
        std::thread::sleep(Duration::from_millis(300));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut l| l.write_all(b"listening\n"))
            .map_err(|e| e.to_string())?;
        let l = std::net::TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| format!("listen on {port}: {e}"))?;
        let _ = stop_rx.recv_timeout(HANG);
        drop(l);
        Ok(())
    });
    let out = f.run("waiter", "echo program >> @OUT@/log").run();
    let _ = stop_tx.send(());
    listener
        .join()
        .map_err(|_| "the listener panicked".to_string())??;
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stderr.is_empty(), "{}", out.show());
    ensure!(
        f.log() == ["listening", "program"],
        "the program did not wait for the port: {:?}",
        f.log()
    );
    pass()
}

/// With nothing listening, `wait-for-port` fails after its `timeout`
/// (config), saying so; the launch stops.
fn wait_for_port_timeout(who: Who) -> TestResult {
    let f = fixture!(who);
    let port = free_port()?;
    f.profile(
        "waiter",
        &format!(
            "inherits = [\"sh\"]\n\n[[hooks.pre]]\nuse = \"wait-for-port\"\nconfig = {{ port = {port}, timeout = 1 }}\n"
        ),
    );
    let out = f.run("waiter", "echo program >> @OUT@/log").run();
    ensure!(out.code() == Some(125), "{}", out.show());
    error_line(
        &out,
        &[
            "wait-for-port",
            &format!("127.0.0.1:{port} accepted no connection within 1s"),
        ],
    )?;
    ensure!(f.log().is_empty(), "the program ran");
    pass()
}

/// `notify-on-failure` says nothing when the program exits 0 (it does not
/// even run), and tells standard error, with its `title`, how the program
/// failed otherwise (here without a desktop session).
fn notify_on_failure(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "notifier",
        "inherits = [\"sh\"]\n\n[[hooks.post]]\nuse = \"notify-on-failure\"\nconfig = { title = \"my title\" }\n",
    );
    let missing = s(&f.s.path("missing"));
    let cases: [(&str, &[&str], i32, &str); 4] = [
        ("exit 0", &[], 0, ""),
        (
            "exit 3",
            &[],
            3,
            "my title: notifier exited with status 3\n",
        ),
        (
            "kill -KILL $$",
            &[],
            137,
            "my title: notifier was killed by signal 9\n",
        ),
        (
            "exit 0",
            &["--ro", &missing],
            125,
            "my title: notifier could not be started\n",
        ),
    ];
    for (script, extra, code, said) in cases {
        let out =
            f.s.antimony(["run", "notifier"])
                .args(extra)
                .args(["--", "-c", script])
                .run();
        ensure!(out.code() == Some(code), "`{script}`: {}", out.show());
        let told: String = out
            .stderr
            .lines()
            .filter(|l| !l.starts_with("antimony: "))
            .map(|l| format!("{l}\n"))
            .collect();
        ensure!(told == said, "`{script}`: {}", out.show());
    }
    let records = records_of(&f, "notifier");
    ensure!(
        records.first().map(|r| r["hooks"][0]["status"].clone()) == Some(Value::from("skipped")),
        "the first run's hook was not skipped: {records:?}"
    );
    pass()
}

/// Whether `path` is a mount point on the host.
/// Where `/dev/fuse` is `0600 root` (a machine without udev), the user's
/// `encrypted-home` fails before gocryptfs runs, and antimony's error names
/// the device, its mode and the command that fixes it (not fusermount3's
/// "failed to open /dev/fuse"). The user runs antimony in a mount namespace
/// where a `0600` node with FUSE's numbers covers `/dev/fuse`.
fn encrypted_home_unusable_fuse() -> TestResult {
    let Some(user) = world().user.clone() else {
        return skip("no unprivileged test user");
    };
    if !world().is_root {
        return skip("needs root to cover /dev/fuse in a mount namespace");
    }
    if !installed("gocryptfs") || !installed("fusermount3") {
        return skip("gocryptfs or fusermount3 is missing (apt-get install gocryptfs fuse3)");
    }
    let root = fixture!(Who::Root);
    let us = match Scratch::new(Who::User) {
        Ok(s) => s,
        Err(e) => return skip(e),
    };
    let node = root.s.path("fuse");
    let c =
        std::ffi::CString::new(node.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: mknod with a NUL-terminated path; 10:229 is /dev/fuse's number.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(10, 229)) } != 0 {
        return Err(format!("mknod: {}", std::io::Error::last_os_error()).into());
    }
    us.write("pass", "correct horse battery staple\n");
    us.profile(
        "vault",
        &format!(
            "inherits = [\"sh\"]\n[home]\npolicy = \"Enabled\"\n\
             [[hooks.pre]]\nuse = \"encrypted-home\"\nconfig = {{ passfile = \"{}\" }}\n",
            s(&us.path("pass"))
        ),
    );
    let home = us.home();
    let mut run = root
        .s
        .command("unshare")
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(format!(
            "mount --bind \"$0\" /dev/fuse && exec setpriv --reuid={} --regid={} --init-groups -- \"$@\"",
            user.uid, user.gid
        ))
        .arg(&node)
        .arg(&world().antimony)
        .args(["run", "vault", "--", "-c", "echo program-ran"])
        .env("HOME", &home)
        .env("USER", &user.name)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env("XDG_RUNTIME_DIR", us.path("runtime"));
    run.cmd.current_dir(&home);
    let out = run.run();
    ensure!(
        out.code() == Some(125) && !out.stdout.contains("program-ran"),
        "the launch went on: {}",
        out.show()
    );
    error_line(
        &out,
        &[
            "encrypted-home",
            "/dev/fuse",
            "crw-------",
            "chmod 0666 /dev/fuse",
        ],
    )?;
    ensure!(
        !out.stderr.contains("fusermount3"),
        "gocryptfs ran anyway: {}",
        out.show()
    );
    pass()
}

/// `encrypted-home` mounts a gocryptfs folder over the profile's persistent
/// home before the sandbox starts and unmounts it afterwards: what the
/// program writes in its home lands encrypted in the cipher folder, and
/// comes back on the next run.
fn encrypted_home(who: Who) -> TestResult {
    if !installed("gocryptfs") || !installed("fusermount3") || !Path::new("/dev/fuse").exists() {
        return skip(
            "gocryptfs, fusermount3 or /dev/fuse is missing (apt-get install gocryptfs fuse3)",
        );
    }
    let f = fixture!(who);
    let pass_file = f.s.write("pass", "correct horse battery staple\n");
    std::fs::set_permissions(&pass_file, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let home = f.s.path("home/.local/share/antimony/vault");
    let _unmount = Unmount(home.clone());
    let default_home = f.s.path("home/.local/share/antimony/vault-default");
    let _unmount_default = Unmount(default_home.clone());
    // The cipher folder by default: antimony's own, out of any sandbox's reach.
    f.profile(
        "vault-default",
        r#"
inherits = ["sh"]

[home]
policy = "Enabled"

[[hooks.pre]]
use = "encrypted-home"
config = { passfile = "@S@/pass" }

[[hooks.post]]
use = "encrypted-home"
"#,
    );
    f.profile(
        "vault",
        r#"
inherits = ["sh"]

[home]
policy = "Enabled"

[[hooks.pre]]
use = "encrypted-home"
config = { cipher = "@S@/cipher", passfile = "@S@/pass" }

[[hooks.started]]
content = 'mountpoint -q "$ANTIMONY_HOME" && echo mounted-while-running >> @OUT@/log'

[[hooks.post]]
use = "encrypted-home"
"#,
    );
    let secret = "secret-words-1234";
    let out = f
        .run(
            "vault",
            &format!(
                "echo {secret} > ~/note; {}; echo program >> @OUT@/log",
                await_line("mounted-while-running")
            ),
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        f.log() == ["mounted-while-running", "program"],
        "log: {:?}\n{}",
        f.log(),
        out.show()
    );
    ensure!(!mounted(&home), "the home is still mounted after the run");
    let plain: Vec<String> = std::fs::read_dir(&home)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        plain.is_empty(),
        "plain files in the home folder: {plain:?}"
    );
    // The cipher folder: gocryptfs's files, the note among them, encrypted.
    let cipher = f.s.path("cipher");
    let files: Vec<PathBuf> = std::fs::read_dir(&cipher)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    ensure!(
        files.iter().any(|p| p.ends_with("gocryptfs.conf")) && files.len() >= 3,
        "the cipher folder: {files:?}"
    );
    for p in &files {
        let bytes = std::fs::read(p).unwrap_or_default();
        ensure!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
                && !p.to_string_lossy().contains("note"),
            "{} is not encrypted",
            p.display()
        );
    }
    // The next run finds the note again.
    f.clear();
    let out = f.run("vault", "cat ~/note >> @OUT@/log").run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        f.log().contains(&secret.to_string()),
        "the second run did not read the note: {:?}",
        f.log()
    );
    ensure!(
        !mounted(&home),
        "the home is still mounted after the second run"
    );

    let out = f
        .run("vault-default", &format!("echo {secret} > ~/note"))
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        !mounted(&default_home),
        "the default vault is still mounted"
    );
    let cipher =
        f.s.path("home/.local/share/antimony/.encrypted/vault-default");
    ensure!(
        cipher.join("gocryptfs.conf").exists()
            && std::fs::read_dir(&default_home)
                .map(|d| d.count())
                .unwrap_or(1)
                == 0,
        "the default cipher folder {} was not used",
        cipher.display()
    );
    pass()
}

/// A user's reusable hook (`$XDG_CONFIG_HOME/antimony/hooks/NAME.toml`):
/// per-event commands, config defaults and overrides, `{profile}` and
/// `{instance}`; named after its definition unless the profile names it.
/// A user's definition shadows a shipped one. Config keys the definition
/// does not have, unknown hooks and `{home}` without a persistent home are
/// errors before anything runs.
fn user_reusable(who: Who) -> TestResult {
    let f = fixture!(who);
    f.s.write(
        "home/.config/antimony/hooks/greet.toml",
        &f.subst(
            r#"
description = "Greets"
[config]
greeting = "hello"
who = "world"
[pre]
content = 'echo "pre $0|$1|$2|$3|$4" >> @OUT@/log'
arguments = ["{greeting}", "{who}", "{profile}", "{instance}"]
[post]
path = "/bin/sh"
arguments = ["-c", 'echo "post $1" >> @OUT@/log', "sh", "{greeting} {who}"]
"#,
        ),
    );
    // Shadows the shipped hook of the same name.
    f.s.write(
        "home/.config/antimony/hooks/wait-for-port.toml",
        &f.subst("[hook]\ncontent = 'echo users-wait-for-port >> @OUT@/log'\n"),
    );
    f.profile(
        "greeted",
        r#"
inherits = ["sh"]

[[hooks.pre]]
use = "greet"
config = { who = "there" }

[[hooks.pre]]
name = "named"
use = "greet"
config = { greeting = "hi", who = "you" }

[[hooks.pre]]
use = "wait-for-port"

[[hooks.pre]]
content = 'echo "instance $ANTIMONY_INSTANCE" >> @OUT@/log'

[[hooks.post]]
use = "greet"
"#,
    );
    let out = f.run("greeted", "echo program >> @OUT@/log").run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stderr.is_empty(), "{}", out.show());
    let log = f.log();
    let instance = log
        .iter()
        .find_map(|l| l.strip_prefix("instance "))
        .ok_or(format!("log: {log:?}"))?
        .to_string();
    let want = [
        format!("pre greet|hello|there|greeted|{instance}"),
        format!("pre named|hi|you|greeted|{instance}"),
        "users-wait-for-port".into(),
        format!("instance {instance}"),
        "program".into(),
        "post hello world".into(),
    ];
    ensure!(log == want, "log: {log:?}");
    let records = records_of(&f, "greeted");
    let names: Vec<&str> = records
        .last()
        .and_then(|r| r["hooks"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|h| h["name"].as_str())
        .collect();
    ensure!(
        names.first() == Some(&"pre-hook `greet`") && names.get(1) == Some(&"pre-hook `named`"),
        "record names: {names:?}"
    );

    // Errors, before anything runs.
    f.clear();
    for (name, event, hook, says) in [
        (
            "bad-key",
            "pre",
            "use = \"greet\"\nconfig = { whom = \"x\" }",
            vec!["`whom` is not a setting of hook `greet`", "greeting, who"],
        ),
        (
            "bad-shipped-key",
            "post",
            "use = \"notify-on-failure\"\nconfig = { titel = \"x\" }",
            vec!["`titel` is not a setting of hook `notify-on-failure`"],
        ),
        (
            "no-such-event",
            "pre",
            "use = \"notify-on-failure\"",
            vec!["hook `notify-on-failure` has nothing to run at `pre`"],
        ),
        (
            "bad-name",
            "pre",
            "use = \"no-such-hook\"",
            vec!["no-such-hook"],
        ),
        (
            "no-home",
            "pre",
            "use = \"encrypted-home\"",
            vec!["{home}", "home.policy"],
        ),
    ] {
        f.profile(
            name,
            &format!(
                "inherits = [\"sh\"]\n\n[[hooks.pre]]\ncontent = 'echo ran >> @OUT@/log'\n\n[[hooks.{event}]]\n{hook}\n"
            ),
        );
        for cmd in ["check", "run"] {
            let out = f.s.antimony([cmd, name]).run();
            ensure!(out.code() == Some(125), "{cmd} {name}: {}", out.show());
            let mut naming = says.clone();
            if cmd == "run" {
                naming.push(name);
            }
            error_line(&out, &naming).map_err(|e| format!("{cmd} {name}: {e}"))?;
        }
        ensure!(f.log().is_empty(), "{name}: a hook ran");
    }
    pass()
}

// ------------------------------------------------------ 10. companions

/// `profile = "NAME"`, attached: antimony runs that profile as a sandbox of
/// its own (its own namespaces, its own run record) before this one starts;
/// it ends with this sandbox (before the post-hooks), and nothing of it is
/// left.
fn companion(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "buddy",
        r#"
inherits = ["sh"]

[files]
rw = ["@OUT@"]

[[hooks.started]]
content = 'echo "$ANTIMONY_PID" > @OUT@/buddy-program.pid; echo "$PPID" > @OUT@/buddy-antimony.pid; echo buddy-started >> @OUT@/log'
"#,
    );
    f.profile(
        "main",
        r#"
inherits = ["sh"]

[hooks]
grace = 3

[[hooks.pre]]
name = "buddy"
profile = "buddy"
attach = true
arguments = ["-c", "trap 'echo buddy-term >> @OUT@/log; exit 0' TERM; echo \"buddy-ns $(readlink /proc/self/ns/mnt)\" >> @OUT@/ns; echo buddy-start >> @OUT@/log; while :; do sleep 0.05; done", "$(id)"]

[[hooks.post]]
content = '''
for p in buddy-program buddy-antimony; do
    if kill -0 "$(cat @OUT@/$p.pid)" 2>/dev/null; then echo "post-sees-$p-alive" >> @OUT@/log
    else echo "post-sees-$p-gone" >> @OUT@/log; fi
done
'''
"#,
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

// ------------------------------------------------------ profile rules

/// The new keys' rules, checked when the profile is loaded, each error
/// positioned at the hook.
fn invalid_settings(who: Who) -> TestResult {
    let f = fixture!(who);
    let cases: &[(&str, &str, &str)] = &[
        (
            "pre",
            "content = 'true'\ninside = true",
            "`inside` is for started hooks only",
        ),
        (
            "started",
            "content = 'true'\nattach = true",
            "`attach` is for pre-hooks only",
        ),
        (
            "stopping",
            "content = 'true'\nattach = true",
            "`attach` is for pre-hooks only",
        ),
        (
            "pre",
            "content = 'true'\non = [\"ok\"]",
            "`on` is for post-hooks only",
        ),
        (
            "post",
            "content = 'true'\non = [\"fine\"]",
            "`fine` is not an outcome",
        ),
        (
            "post",
            "content = 'true'\non = [256]",
            "256 is not an exit status",
        ),
        (
            "post",
            "content = 'true'\non = [-1]",
            "-1 is not an exit status",
        ),
        ("pre", "content = 'true'\ntimeout = 0", "`timeout` must be"),
        (
            "pre",
            "content = 'true'\ntimeout = -2.5",
            "`timeout` must be",
        ),
        (
            "pre",
            "content = 'true'\nconfig = { a = 1 }",
            "`config` goes with `use`",
        ),
        (
            "pre",
            "content = 'true'\nuse = \"greet\"",
            "say what the hook runs once",
        ),
        (
            "pre",
            "profile = \"sh\"\nuse = \"greet\"",
            "say what the hook runs once",
        ),
        ("pre", "profile = \"sh\"\nstdin = true", "a companion"),
        ("started", "profile = \"sh\"\ninside = true", "a companion"),
        (
            "started",
            "content = 'true'\ninside = true\nsystem = \"System\"",
            "do not apply inside",
        ),
        (
            "started",
            "content = 'true'\ninside = true\nenv = true",
            "do not apply inside",
        ),
        (
            "pre",
            "use = \"wait-for-port\"\narguments = [\"x\"]",
            "`arguments` belong to",
        ),
        ("pre", "use = \"../etc/x\"", "is not a hook name"),
        ("pre", "profile = \"../x\"", "is not a profile name"),
        ("pre", "name = \"x\"", "a hook needs"),
        (
            "pre",
            "content = 'true'\ntimout = 3",
            "unknown field `timout`",
        ),
        ("post", "content = 'true'\nstdin = \"yes\"", "invalid type"),
    ];
    for (i, (event, body, says)) in cases.iter().enumerate() {
        let name = format!("bad{i}");
        f.profile(
            &name,
            &format!("inherits = [\"sh\"]\n\n[[hooks.{event}]]\n{body}\n"),
        );
        let out = f.s.antimony(["check", &name]).run();
        ensure!(out.code() == Some(125), "{event}: {body}: {}", out.show());
        error_line(&out, &[says, &format!("{name}.toml:")])
            .map_err(|e| format!("{event}: {body}: {e}"))?;
    }
    f.profile(
        "bad-dropins",
        "inherits = [\"sh\"]\n[hooks]\nuser_dropins = \"no\"\n",
    );
    let out = f.s.antimony(["check", "bad-dropins"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    error_line(&out, &["invalid type"])?;
    pass()
}

// ------------------------------------------------------ security

/// Everything under a folder, with the inode of each entry and the
/// contents of each file.
fn snapshot(root: &Path) -> Vec<(String, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let rel = p.strip_prefix(root).map(s).unwrap_or_default();
        let contents = if meta.is_file() {
            std::fs::read(&p).unwrap_or_default()
        } else {
            Vec::new()
        };
        out.push((rel, meta.ino(), contents));
        if meta.is_dir() {
            if let Ok(d) = std::fs::read_dir(&p) {
                stack.extend(d.flatten().map(|e| e.path()));
            }
        }
    }
    out.sort();
    out
}

/// What a sandbox with the whole home tries: look into antimony's folders,
/// write a profile, a drop-in, hook state; replace a folder on the way to
/// them (rename or remove it, then recreate the path).
const ATTACK: &str = r#"
for d in ~/.config/antimony ~/.local/share/antimony ~/.local/state/antimony ~/.cache/antimony @S@/runtime/antimony; do
    [ -d "$d" ] && echo "sees $d: $(ls -A "$d" | tr '\n' ' ')" >> @OUT@/log
done
plant() {
    mkdir -p ~/.config/antimony/profiles ~/.config/antimony/hooks.d/pre ~/.local/state/antimony/state/target ~/.local/share/antimony/other 2>/dev/null
    echo 'path = "/bin/false"' > ~/.config/antimony/profiles/target.toml 2>/dev/null
    printf '#!/bin/sh\ntouch @OUT@/pwned\n' > ~/.config/antimony/hooks.d/pre/evil 2>/dev/null
    chmod 755 ~/.config/antimony/hooks.d/pre/evil 2>/dev/null
    echo '{"evil": true}' > ~/.local/state/antimony/state/target/counter.json 2>/dev/null
    echo evil > ~/.local/share/antimony/other/.bashrc 2>/dev/null
    for r in ~/.local/state/antimony/runs/*; do echo evil > "$r"; done 2>/dev/null
    mkdir -p ~/.local/state/antimony/runs 2>/dev/null
    echo '{}' > ~/.local/state/antimony/runs/999999999999999-planted.json 2>/dev/null
}
plant
for d in ~/.config ~/.local ~/.local/share ~/.local/state ~/.cache ~/.config/antimony ~/.local/state/antimony; do
    mv "$d" "$d-moved" 2>/dev/null && echo "moved $d" >> @OUT@/log && plant
    rm -rf "$d" 2>/dev/null
    [ -e "$d" ] || { echo "removed $d" >> @OUT@/log; plant; }
done
echo attack-done >> @OUT@/log
"#;

/// A sandbox that binds the whole home (`--rw ~`, `[files] rw = ["~"]`, a
/// folder above the home) sees antimony's folders empty and cannot change
/// them, not even by replacing a folder on the way to them: the next run
/// trusts the same profile, state and hooks as before.
fn whole_home(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "target",
        r#"
inherits = ["sh"]

[[hooks.pre]]
name = "counter"
stdin = true
content = '''
cat > /dev/null
echo '{"state": {"update": {"evil": false}}}'
'''
"#,
    );
    // The attackers have no hooks: only the sandbox changes anything.
    f.profile("plain", "inherits = [\"sh\"]\n");
    f.profile("home-rw", "inherits = [\"sh\"]\n\n[files]\nrw = [\"~\"]\n");
    f.s.write("home/.local/share/antimony/other/.bashrc", "good\n");
    f.s.mkdir("home/.cache/antimony");
    f.s.mkdir("runtime/antimony");
    let out = f.run("target", "exit 0").run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let home = f.s.home();
    let runtime = f.s.path("runtime");
    let variants: [(&str, Vec<String>); 3] = [
        (
            "plain",
            vec!["--rw".into(), "~".into(), "--rw".into(), s(&runtime)],
        ),
        ("home-rw", vec![]),
        ("plain", vec!["--rw".into(), s(&f.s.dir)]),
    ];
    let is_record = |p: &String| p.starts_with(".local/state/antimony/runs/");
    for (profile, extra) in variants {
        // What antimony trusts (runs/ gets this run's record).
        let before: Vec<_> = snapshot(&home)
            .into_iter()
            .filter(|(p, ..)| !p.starts_with(".local/state/antimony/runs/"))
            .collect();
        // The run records so far: antimony adds this run's, the sandbox
        // changes none.
        let records: Vec<_> = snapshot(&home)
            .into_iter()
            .filter(|(p, ..)| is_record(p))
            .collect();
        ensure!(
            !records.is_empty(),
            "{profile} {extra:?}: no run record before the run"
        );
        f.clear();
        let out =
            f.s.antimony(["run", profile])
                .args(&extra)
                .args(["--rw", &s(&f.out), "--", "-c", &f.subst(ATTACK)])
                .run();
        ensure!(out.code() == Some(0), "{profile} {extra:?}: {}", out.show());
        let log = f.log();
        ensure!(
            log.last().map(String::as_str) == Some("attack-done"),
            "{profile} {extra:?}: the attack did not run: {log:?}"
        );
        let seen: Vec<&String> = log
            .iter()
            .filter(|l| l.starts_with("sees ") && !l.ends_with(": "))
            .collect();
        ensure!(
            seen.is_empty(),
            "{profile} {extra:?}: the sandbox sees into antimony's folders: {seen:?}"
        );
        let after: Vec<_> = snapshot(&home)
            .into_iter()
            .filter(|(p, ..)| !p.starts_with(".local/state/antimony/runs/"))
            .collect();
        if before != after {
            let b: BTreeSet<_> = before.iter().map(|(p, i, _)| (p.clone(), *i)).collect();
            let a: BTreeSet<_> = after.iter().map(|(p, i, _)| (p.clone(), *i)).collect();
            let changed: Vec<_> = after
                .iter()
                .filter(|x| !before.contains(x))
                .map(|(p, ..)| p.clone())
                .take(8)
                .collect();
            return Err(format!(
                "{profile} {extra:?}: the sandbox changed the home (log {log:?}): gone {:?}, new {:?}, changed {changed:?} (at most 8 of each)",
                b.difference(&a).take(8).collect::<Vec<_>>(),
                a.difference(&b).take(8).collect::<Vec<_>>()
            )
            .into());
        }
        let records_after: Vec<_> = snapshot(&home)
            .into_iter()
            .filter(|(p, ..)| is_record(p))
            .collect();
        // The log is the same file, with this run's record added at its end.
        let changed: Vec<&String> = records
            .iter()
            .filter(|(p, ino, content)| {
                !records_after
                    .iter()
                    .any(|(q, i, c)| q == p && i == ino && c.starts_with(content))
            })
            .map(|(p, ..)| p)
            .collect();
        ensure!(
            changed.is_empty(),
            "{profile} {extra:?}: the sandbox changed or removed run records (log {log:?}): {changed:?}"
        );
        let planted: Vec<&String> = records_after
            .iter()
            .map(|(p, ..)| p)
            .filter(|p| p.contains("planted"))
            .collect();
        ensure!(
            planted.is_empty(),
            "{profile} {extra:?}: the sandbox planted a run record: {planted:?}"
        );
        // The next run trusts what it trusted before.
        let out = f.run("target", "echo target-ran >> @OUT@/log").run();
        ensure!(out.code() == Some(0), "{profile} {extra:?}: {}", out.show());
        ensure!(
            !f.out("pwned").exists(),
            "{profile} {extra:?}: a planted hook ran"
        );
    }
    pass()
}

/// Values reach hooks as argv, the environment and JSON, never as shell
/// text: `$(…)`, backticks, `;`, quotes and newlines in arguments, in a
/// hook's name, in config values (placeholders and JSON) and in the
/// program's arguments are passed on as they are, and run nothing.
fn values_are_data(who: Who) -> TestResult {
    let f = fixture!(who);
    let nasty = [
        "$(touch @OUT@/pwned-dollar)",
        "`touch @OUT@/pwned-backtick`",
        "; touch @OUT@/pwned-semicolon",
        "' \"; touch @OUT@/pwned-quote #",
        "a\nb && touch @OUT@/pwned-newline",
    ];
    let nasty: Vec<String> = nasty.iter().map(|n| f.subst(n)).collect();
    let toml_list = |v: &[String]| -> String {
        let items: Vec<String> = v
            .iter()
            .map(|n| toml::Value::from(n.as_str()).to_string())
            .collect();
        format!("[{}]", items.join(", "))
    };
    f.s.write(
        "home/.config/antimony/hooks/echoer.toml",
        &f.subst(
            r#"
[config]
a = ""
b = ""
[hook]
stdin = true
content = 'printf "%s\n" "$0" "$1" "$2" >> @OUT@/args; cat > @OUT@/echoer.json'
arguments = ["{a}", "x{b}y"]
"#,
        ),
    );
    f.s.script(
        "bin/printer.sh",
        &f.subst("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> @OUT@/args; done\n"),
    );
    let name = toml::Value::from(nasty[0].as_str()).to_string();
    let config = format!(
        "{{ a = {}, b = {} }}",
        toml::Value::from(nasty[1].as_str()),
        toml::Value::from(nasty[2].as_str())
    );
    f.profile(
        "nasty",
        &format!(
            r#"
inherits = ["sh"]

[[hooks.pre]]
name = {name}
content = 'printf "%s\n" "$0" "$@" >> @OUT@/args'
arguments = {args}

[[hooks.pre]]
path = "@BIN@/printer.sh"
arguments = {args}

[[hooks.pre]]
use = "echoer"
config = {config}
"#,
            args = toml_list(&nasty)
        ),
    );
    let mut run =
        f.s.antimony(["run", "nasty", "--rw", &s(&f.out), "--", "-c", "exit 0"]);
    run = run.args(&nasty);
    let out = run.run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let pwned: Vec<String> = std::fs::read_dir(&f.out)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pwned"))
        .collect();
    ensure!(pwned.is_empty(), "values were executed: {pwned:?}");
    let args = f.read("args");
    let mut want = String::new();
    for v in std::iter::once(&nasty[0]).chain(&nasty).chain(&nasty) {
        want.push_str(v);
        want.push('\n');
    }
    want.push_str(&format!("echoer\n{}\nx{}y\n", nasty[1], nasty[2]));
    ensure!(
        args == want,
        "arguments changed on the way:\n{args}\nexpected:\n{want}"
    );
    // The shipped hooks check their numbers before bash computes with them
    // (`$((…))` would run the `$(…)` in an array subscript).
    for (i, config) in [
        "{ port = \"1;touch @OUT@/pwned-port\", timeout = 1 }",
        "{ port = 1, timeout = \"x[$(touch @OUT@/pwned-arith)]\" }",
        "{ host = \"$(touch @OUT@/pwned-host)\", port = 1, timeout = 0.2 }",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("nasty-port{i}");
        f.profile(
            &name,
            &format!(
                "inherits = [\"sh\"]\n[[hooks.pre]]\nuse = \"wait-for-port\"\nconfig = {config}\n"
            ),
        );
        let out = f.run(&name, "exit 0").run();
        ensure!(out.code() == Some(125), "{config}: {}", out.show());
        error_line(&out, &["wait-for-port"])?;
    }
    let pwned: Vec<String> = std::fs::read_dir(&f.out)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pwned"))
        .collect();
    ensure!(pwned.is_empty(), "config values were executed: {pwned:?}");
    let input = f.json("echoer.json")?;
    ensure!(
        input["hook"]["config"] == serde_json::json!({"a": nasty[1], "b": nasty[2]})
            && input["arguments"]
                == Value::from([vec!["-c".to_string(), "exit 0".into()], nasty.clone()].concat()),
        "the JSON input changed the values: {input:#}"
    );
    pass()
}
