//! The smaller holes of the same class: the host's abstract unix sockets
//! with the network on, text from inside the sandbox that antimony prints,
//! hook state an inside hook could forge for a host hook, and a runtime
//! folder in /tmp that another user made first.

use std::time::Duration;

use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both(
        "hostside::misc::abstract_sockets_stay_out_of_reach_with_the_network",
        abstract_sockets,
    ));
    t.extend(both(
        "hostside::misc::text_from_inside_reaches_the_terminal_escaped",
        text_escaped,
    ));
    t.extend(both(
        "hostside::misc::inside_hook_state_is_never_a_host_hooks",
        state_apart,
    ));
    t.extend(both(
        "hostside::misc::a_runtime_folder_of_another_user_is_refused",
        runtime_folder,
    ));
    t
}

/// `antimony run PROFILE --ro PROBE=/probe EXTRA… --program /probe -- SUB…`
fn probe_in(s: &Scratch, profile: &str, extra: &[&str], sub: &[&str]) -> Run {
    s.antimony(["run", profile, "--ro"])
        .arg(format!("{}=/probe", world().probe.display()))
        .args(extra)
        .args(["--program", "/probe", "--"])
        .args(sub)
}

// ------------------------------------------------------ abstract sockets

fn accepted(l: &std::os::unix::net::UnixListener) -> usize {
    let mut n = 0;
    while l.accept().is_ok() {
        n += 1;
    }
    n
}

/// A host process listens on an abstract socket (as an X server does on
/// `@/tmp/.X11-unix/X0`). With the host's network, the sandbox shares the
/// namespace the socket lives in, and still cannot connect: not with
/// `--network=host`, not with `network = "host"`, not with a profile that names
/// other sockets without the network. The control: a profile that names
/// it, with the network, reaches it.
fn abstract_sockets(who: Who) -> TestResult {
    use std::os::linux::net::SocketAddrExt;
    let s = scratch!(who);
    let name = unique(&s, "abstract");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| e.to_string())?;
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr)
        .map_err(|e| format!("listen on @{name}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    s.profile(
        "net",
        "inherits = [\"minimal\"]\n[sandbox]\nnetwork = \"host\"\n",
    );
    s.profile(
        "named-offline",
        &format!("inherits = [\"minimal\"]\n[sandbox]\nabstract_sockets = [\"@{name}\"]\n"),
    );
    s.profile(
        "named",
        &format!(
            "inherits = [\"minimal\"]\n[sandbox]\nnetwork = \"host\"\nabstract_sockets = [\"@{name}\"]\n"
        ),
    );
    for (profile, extra) in [
        ("minimal", &["--network=host"][..]),
        ("net", &[][..]),
        ("named-offline", &[][..]),
    ] {
        let out = probe_in(&s, profile, extra, &["unix", &name]).run();
        blocked(&format!("{profile} {extra:?}: connect to @{name}"), &out)?;
        ensure!(
            accepted(&listener) == 0,
            "{profile}: a connection reached the host's socket"
        );
    }
    let out = probe_in(&s, "named", &[], &["unix", &name]).run();
    escaped("a profile that names the socket", &out)?;
    ensure!(
        wait_until(Duration::from_secs(5), || accepted(&listener) == 1),
        "the named socket's connection did not arrive"
    );
    pass()
}

// ------------------------------------------------------ text from inside

/// A program that waits for the inside hook whose PID is in `@OUT@/PIDFILE`
/// to end, then half a second for antimony to take its end in.
fn wait_for_hook(pidfile: &str) -> String {
    format!(
        "until [ -s @OUT@/{pidfile} ]; do sleep 0.02; done; \
         while kill -0 \"$(cat @OUT@/{pidfile})\" 2>/dev/null; do sleep 0.02; done; sleep 0.5"
    )
}

/// Control characters a terminal acts on, in text antimony printed.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c.is_control() && c != '\n' && c != '\t')
        .collect()
}

/// An inside hook fails with an error message holding escape sequences
/// (`ESC ]0;pwned BEL` retitles a terminal; U+009B is CSI), and prints
/// more on its stdout and stderr (a raw 0x9B byte too). antimony's stderr
/// and stdout, `antimony log --hooks` and `antimony log --json` show them
/// escaped, never raw.
fn text_escaped(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "evil",
        r#"
inherits = ["sh"]

[[hooks.started]]
name = "evil"
inside = true
content = '''
echo $$ > @OUT@/evil.tmp && mv @OUT@/evil.tmp @OUT@/evil.pid
printf 'out \033]0;pwned-out\007 \233[2J end\n'
printf 'err \033[2J\033]0;pwned-err\007\n' >&2
echo '{"error": {"message": "msg \u001b]0;pwned\u0007 \u009b2J \r\n end"}}'
exit 1
'''
"#,
    );
    // The program waits until the hook has ended, and antimony has had
    // time to see it fail (it then stops the sandbox): a started hook still
    // running when the program exits is stopped, its failure not reported.
    let out = f.run("evil", &wait_for_hook("evil.pid")).run();
    no_panic(&out)?;
    for (what, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let raw = raw_controls(text);
        ensure!(
            raw.is_empty(),
            "raw control characters on {what}: {raw:?}\n{}",
            out.show()
        );
    }
    for want in [
        "msg \\x1b]0;pwned\\x07 \\u{9b}2J \\r\\n end",
        "err \\x1b[2J\\x1b]0;pwned-err\\x07",
    ] {
        ensure!(
            out.stderr.contains(want),
            "stderr lacks `{want}`: {}",
            out.show()
        );
    }
    // The lone 0x9B byte too (the test reads it lossily: U+FFFD if raw).
    ensure!(
        out.stdout
            .contains("out \\x1b]0;pwned-out\\x07 \\x9b[2J end")
            && !out.stdout.contains('\u{fffd}'),
        "stdout: {}",
        out.show()
    );

    let log = f.s.antimony(["log", "--hooks", "evil"]).run();
    ensure!(log.code() == Some(0), "{}", log.show());
    ensure!(
        raw_controls(&log.stdout).is_empty() && log.stdout.contains("msg \\x1b]0;pwned\\x07"),
        "antimony log --hooks: {}",
        log.show()
    );
    let json = f.s.antimony(["log", "--json", "evil"]).run();
    ensure!(json.code() == Some(0), "{}", json.show());
    ensure!(
        raw_controls(&json.stdout).is_empty()
            && json.stdout.contains("\\u001b]0;pwned-out\\u0007")
            && json.stdout.contains("\\u009b2J"),
        "antimony log --json: {}",
        json.show()
    );
    // The record keeps the text itself: JSON readers get it back.
    let records: serde_json::Value =
        serde_json::from_str(&json.stdout).map_err(|e| format!("log --json: {e}"))?;
    let hook = &records[0]["hooks"][0];
    ensure!(
        hook["error"].as_str() == Some("msg \u{1b}]0;pwned\u{7} \u{9b}2J \r\n end"),
        "the record: {hook}"
    );
    pass()
}

// ------------------------------------------------------ hook state

/// An inside hook and a host hook share a name. The inside one (the
/// sandbox's code) writes a state; the host one, which reads its state,
/// must not get it, in this run or the next. The inside hook gets its own
/// back.
fn state_apart(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "shared-name",
        r#"
inherits = ["sh"]

[[hooks.started]]
name = "counter"
inside = true
stdin = true
content = '''
echo $$ > @OUT@/forger.tmp && mv @OUT@/forger.tmp @OUT@/forger.pid
cat > @OUT@/inside-input
echo '{"state": {"update": {"trusted": "forged by the sandbox"}}}'
'''

[[hooks.post]]
name = "counter"
stdin = true
content = 'cat > @OUT@/host-input'
"#,
    );
    // The program waits until the inside hook has ended, and antimony has
    // had time to take its update (a started hook still running when the
    // program exits is stopped, and its update dropped).
    let program = wait_for_hook("forger.pid");
    let state_dir = f.s.path("home/.local/state/antimony/state/shared-name");
    for run in 0..2 {
        let _ = std::fs::remove_file(f.out("forger.pid"));
        let out = f.run("shared-name", &program).run();
        ensure!(out.code() == Some(0), "run {run}: {}", out.show());
        // The update was taken (else this test would prove nothing).
        let kept = ["counter.json", "inside/counter.json"].iter().any(|k| {
            std::fs::read_to_string(state_dir.join(k))
                .is_ok_and(|t| t.contains("forged by the sandbox"))
        });
        ensure!(kept, "run {run}: the inside hook's update was not kept");
        let input: serde_json::Value = serde_json::from_str(&f.read("host-input"))
            .map_err(|e| format!("run {run}: the host hook's input: {e}"))?;
        ensure!(
            input["hook"]["state"] == serde_json::json!({}),
            "run {run}: the host hook got the sandbox's state: {input}"
        );
    }
    // The inside hook's own state came back to it.
    let inside: serde_json::Value = serde_json::from_str(&f.read("inside-input"))
        .map_err(|e| format!("the inside hook's input: {e}"))?;
    ensure!(
        inside["hook"]["state"]["trusted"] == "forged by the sandbox",
        "the inside hook's state was not kept: {inside}"
    );
    pass()
}

// ------------------------------------------------------ runtime folder

/// Without XDG_RUNTIME_DIR, antimony keeps its records and sockets in
/// `$TMPDIR/antimony-UID` (here TMPDIR is a sticky, world-writable folder
/// of the test's, as /tmp is, so that parallel tests never meet). Another
/// user made it first, or it is open to others, or a link: antimony
/// refuses to run, says so, and makes nothing in it. Without it, antimony
/// makes its own.
fn runtime_folder(who: Who) -> TestResult {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
    let s = scratch!(who);
    let Some(user) = world().user.clone() else {
        return skip("no unprivileged test user");
    };
    if !world().is_root {
        return skip("needs root to make a folder of another user's");
    }
    // The other user: root for the test user, the test user for root.
    let (other_uid, other_gid) = match who {
        Who::Root => (user.uid, user.gid),
        Who::User => (0, 0),
    };
    let tmp = s.path("tmp");
    std::fs::create_dir(&tmp).map_err(|e| e.to_string())?;
    chown(&tmp, Some(0), Some(0)).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
        .map_err(|e| e.to_string())?;
    let folder = tmp.join(format!("antimony-{}", s.uid));
    let run = || {
        let mut r = s
            .antimony(["run", "sh", "--", "-c", "echo the-program-ran"])
            .env("TMPDIR", &tmp);
        r.cmd.env_remove("XDG_RUNTIME_DIR");
        r.run()
    };
    let mine = s.path("mine");
    std::fs::create_dir(&mine).map_err(|e| e.to_string())?;
    chown(&mine, Some(s.uid), Some(s.gid)).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&mine, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    // What is there before the run, what the error says, how it is made.
    type Case<'a> = (&'a str, &'a str, Box<dyn Fn() -> std::io::Result<()> + 'a>);
    let cases: [Case; 3] = [
        (
            "made by another user",
            "belongs to uid",
            Box::new(|| {
                std::fs::create_dir(&folder)?;
                chown(&folder, Some(other_uid), Some(other_gid))?;
                std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777))
            }),
        ),
        (
            "open to others",
            "is open to other users (mode 0777)",
            Box::new(|| {
                std::fs::create_dir(&folder)?;
                chown(&folder, Some(s.uid), Some(s.gid))?;
                std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777))
            }),
        ),
        (
            "a link",
            "is a symbolic link",
            Box::new(|| {
                symlink(&mine, &folder)?;
                std::os::unix::fs::lchown(&folder, Some(other_uid), Some(other_gid))
            }),
        ),
    ];
    for (what, says, make) in &cases {
        make().map_err(|e| format!("{what}: {e}"))?;
        let out = run();
        ensure!(
            out.code() == Some(125) && !out.stdout.contains("the-program-ran"),
            "{what}: antimony ran: {}",
            out.show()
        );
        error_line(&out, &[&folder.display().to_string(), says])?;
        let inside: Vec<_> = std::fs::read_dir(&folder)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        ensure!(inside.is_empty(), "{what}: antimony made {inside:?} in it");
        let _ = std::fs::remove_file(&folder).or_else(|_| std::fs::remove_dir(&folder));
    }

    // Control: no such folder; antimony makes its own, private.
    let out = run();
    ensure!(
        out.code() == Some(0) && out.stdout.contains("the-program-ran"),
        "{}",
        out.show()
    );
    let private = || -> Result<(), Failed> {
        let meta = std::fs::symlink_metadata(&folder).map_err(|e| e.to_string())?;
        ensure!(
            meta.is_dir() && meta.uid() == s.uid && meta.mode() & 0o777 == 0o700,
            "the folder antimony uses: uid {}, mode {:o}",
            meta.uid(),
            meta.mode()
        );
        Ok(())
    };
    private()?;
    // The user's own folder that others may only read (nobody else can
    // have put anything there): made private, and used.
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let out = run();
    ensure!(
        out.code() == Some(0) && out.stdout.contains("the-program-ran"),
        "a folder of the user's that others may read: {}",
        out.show()
    );
    private()?;
    pass()
}
