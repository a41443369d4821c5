//! Where, as whom and with what a hook runs: on the host or inside the
//! sandbox (with exactly its confinement), as the user or the system, with
//! exactly the ANTIMONY_ variables, no descriptor of antimony's own,
//! antimony's stdout and stderr, and the run described in JSON on its
//! stdin (which it may never read).

use std::collections::{BTreeMap, BTreeSet};

use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = both_each(
        "hooks::identity_and_io",
        &[
            ("environment_is_exactly_the_antimony_variables", environment),
            ("antimony_home_exists_for_pre_hooks", antimony_home_exists),
            ("user_and_system_identity", identity),
            (
                "inside_hooks_have_exactly_the_sandboxs_confinement",
                inside_hooks,
            ),
            ("hooks_share_antimonys_stdout_and_stderr", shared_output),
            (
                "background_children_holding_the_output_do_not_hang",
                no_hang_on_output,
            ),
            ("hooks_get_no_descriptors_of_antimonys_own", descriptors),
            ("stdin_json_describes_the_run", stdin_json),
            (
                "hooks_that_never_read_stdin_do_not_hang_antimony",
                stdin_never_read,
            ),
        ],
    );
    t.push(case(
        "hooks::identity_and_io::root_on_behalf_of_a_user_drops_to_that_user",
        on_behalf_of,
    ));
    t
}

// ------------------------------------------------------------ environment

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
    let separator = || Hook::pre().path("/usr/bin/echo").arguments(&["--- "]);
    let hooks = [
        Hook::pre().path("/usr/bin/env"),
        separator(),
        Hook::pre().path("/usr/bin/env").key("env", true),
        separator(),
        Hook::pre().content(
            r#"env
echo '--- '
if [ -d "$ANTIMONY_CACHE" ]; then echo CACHE_IS_DIR=yes; fi
if ! : > "$ANTIMONY_CACHE/probe" 2>/dev/null; then echo CACHE_IS_READ_ONLY=yes; fi
"#,
        ),
        Hook::post().path("/usr/bin/echo").arguments(&["--- "]),
        Hook::post().path("/usr/bin/env"),
    ];
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
            &Profile::on("minimal")
                .path("/usr/bin/true")
                .home(policy)
                .hooks(hooks.clone()),
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
        &Profile::on("sh").home("Enabled").hook(
            Hook::pre()
                .name("prepare")
                .content(r#"echo prepared-by-hook > "$ANTIMONY_HOME/from-hook""#),
        ),
    );
    let out = f.run("prepared", "cat \"$HOME/from-hook\"").run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stdout == "prepared-by-hook\n", "{}", out.show());
    pass()
}

// ------------------------------------------------------------ identity

/// Hooks that print the identity they run as.
fn identity_hooks() -> Profile {
    Profile::on("minimal").path("/usr/bin/true").hooks([
        Hook::pre().content(r#"echo "user $(id -u) $(id -g) $(id -G)""#),
        Hook::pre()
            .system("System")
            .content(r#"echo "system $(id -u) $(id -g)""#),
        Hook::post()
            .system("User")
            .content(r#"echo "post-user $(id -u) $(id -g)""#),
    ])
}

/// Without anyone to act for, both identities are antimony's own: the
/// invoking user. An ordinary user's SUDO_UID is not a way to change user.
fn identity(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile("ids", &identity_hooks());
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
    f.profile("ids", &identity_hooks());
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

// ------------------------------------------------------------ inside

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
        &Profile::on("sh")
            .ro(&["@S@/ro"])
            .env("FROM_PROFILE", "yes")
            .hooks([
                Hook::started().name("outsider").content(
                    r#"/usr/bin/nsenter --target "$ANTIMONY_PID" --user --pid --preserve-credentials -- @BIN@/outsider.sh > /dev/null 2> @OUT@/outsider.err &"#,
                ),
                Hook::started()
                    .name("inside")
                    .inside()
                    .stdin()
                    .content(&format!(
                        r#"cat > @OUT@/inside.json
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
"#,
                        await_killed = await_line("program-killed")
                    ))
                    .arguments(&["an argument"]),
                Hook::pre().content(r#"echo "instance $ANTIMONY_INSTANCE" > @OUT@/instance"#),
            ]),
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

// ------------------------------------------------------------ output

/// Blocking, attached and post-hooks write to antimony's own stdout and
/// stderr, in pipeline order around the program's output.
fn shared_output(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "output",
        &Profile::on("sh").grace(1.0).hooks([
            Hook::pre()
                .name("pre")
                .content("echo pre-out; echo pre-err >&2"),
            Hook::pre().name("attached").attach().content(
                "echo attached-out; echo attached-err >&2
: > @OUT@/attached-said
exec sleep 600
",
            ),
            Hook::post()
                .name("post")
                .content("echo post-out; echo post-err >&2"),
        ]),
    );
    let out = f
        .run(
            "output",
            &format!(
                "{}\necho program-out; echo program-err >&2",
                await_until("[ -e @OUT@/attached-said ]")
            ),
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
        &Profile::on("sh").grace(0.5).hooks([
            Hook::pre().name("pre").content(
                "( echo early-pre; until [ -e @OUT@/release ]; do sleep 0.05; done; echo late-pre; echo late-pre-err >&2 ) &
echo $! > @OUT@/pre.pid
",
            ),
            Hook::pre().name("attached").attach().content(
                "( trap '' TERM; until [ -e @OUT@/release ]; do sleep 0.05; done; echo late-attached ) &
echo $! > @OUT@/attached.pid
exec sleep 600
",
            ),
            Hook::post().name("post").content(
                "( until [ -e @OUT@/release ]; do sleep 0.05; done; echo late-post ) &
echo $! > @OUT@/post.pid
",
            ),
        ]),
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
        &Profile::on("sh").grace(1.0).hooks([
            Hook::pre()
                .name("attached")
                .attach()
                .content("ls /proc/self/fd > @OUT@/attached-fds; exec sleep 600"),
            Hook::pre()
                .path("/usr/bin/ls")
                .arguments(&["/proc/self/fd"]),
            Hook::post()
                .path("/usr/bin/ls")
                .arguments(&["/proc/self/fd"]),
        ]),
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

// ------------------------------------------------------------ JSON on stdin

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
        &Profile::on("sh").key("arguments", toml_list(&["-c"])).hooks([
            Hook::pre().name("pre-json").stdin().content(
                r#"cat > @OUT@/pre.json
echo "$ANTIMONY_INSTANCE" > @OUT@/instance
echo '{"state": {"update": {"runs": 1, "who": "pre"}}}'
"#,
            ),
            Hook::started().name("started-json").stdin().content(
                r#"cat > @OUT@/started.json; echo "$ANTIMONY_PID" > @OUT@/started.pid; echo started-done >> @OUT@/log"#,
            ),
            Hook::stopping()
                .name("stopping-json")
                .stdin()
                .content("cat > @OUT@/stopping.json"),
            Hook::post()
                .name("post-json")
                .stdin()
                .content("cat > @OUT@/post.json"),
            Hook::post()
                .uses("dump")
                .config(r#"{ file = "@OUT@/use.json", n = 4 }"#),
        ]),
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
        &Profile::on("sh").hooks([
            Hook::pre()
                .name("ignore-pre")
                .stdin()
                .content("sleep 0.2; echo ignore-pre >> @OUT@/log"),
            Hook::pre()
                .name("closes-stdin")
                .stdin()
                .content("exec 0<&-; sleep 0.1; echo closes-stdin >> @OUT@/log"),
            Hook::pre().uses("bigconfig"),
            Hook::started()
                .name("ignore-started")
                .stdin()
                .content("sleep 0.1; echo ignore-started >> @OUT@/log"),
            Hook::started()
                .name("ignore-inside")
                .inside()
                .stdin()
                .content("sleep 0.1; echo ignore-inside >> @OUT@/log"),
            Hook::post()
                .name("ignore-post")
                .stdin()
                .content("sleep 0.1; echo ignore-post >> @OUT@/log"),
        ]),
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
    let long = |hook: Hook, name: &str| {
        hook.name(name).stdin().content(&format!(
            r#"{{ n=0; while [ -d @OUT@ ] && [ ! -e @OUT@/release ] && [ $n -lt 12000 ]; do sleep 0.05; n=$((n+1)); done; }} & s=$!
trap 'kill $s 2>/dev/null; echo {name}-term >> @OUT@/log; trap - TERM; kill -TERM $$' TERM
echo "$$ $s" > @OUT@/{name}.pids
echo {name} >> @OUT@/log
wait
"#
        ))
    };
    let names = ["long-attached", "long-started", "long-stopping"];
    for key in names {
        f.s.write(
            &format!("home/.local/state/antimony/state/deaf-long/{key}.json"),
            &state,
        );
    }
    f.profile(
        "deaf-long",
        &Profile::on("sh").hooks([
            long(Hook::pre().attach(), "long-attached"),
            long(Hook::started(), "long-started"),
            long(Hook::stopping(), "long-stopping"),
            Hook::post().logs("post"),
        ]),
    );
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
