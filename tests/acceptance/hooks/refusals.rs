//! What hooks refuse: invalid hook settings (each error positioned at the
//! hook), a sandbox binding the whole home reaching antimony's folders
//! (profiles, drop-ins, state, records), and values run as code instead of
//! passed as data.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;

use super::wait_for_port;
use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    both_each(
        "hooks::refusals",
        &[
            ("invalid_hook_settings_are_refused", invalid_settings),
            (
                "a_whole_home_bind_cannot_reach_antimonys_folders",
                whole_home,
            ),
            ("hook_values_are_data_never_code", values_are_data),
        ],
    )
}

/// The new keys' rules, checked when the profile is loaded, each error
/// positioned at the hook. (The profiles are literal TOML: what is refused
/// is how they are written.)
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
        &Profile::on("sh").hook(Hook::pre().name("counter").stdin().content(
            r#"cat > /dev/null
echo '{"state": {"update": {"evil": false}}}'
"#,
        )),
    );
    // The attackers have no hooks: only the sandbox changes anything.
    f.profile("plain", &Profile::on("sh"));
    f.profile("home-rw", &Profile::on("sh").rw(&["~"]));
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

/// The files whose names start with `pwned` in the `out` folder: what a
/// value run as code would have made.
fn pwned(f: &Fixture) -> Result<Vec<String>, String> {
    Ok(std::fs::read_dir(&f.out)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pwned"))
        .collect())
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
    let config = format!(
        "{{ a = {}, b = {} }}",
        toml_str(&nasty[1]),
        toml_str(&nasty[2])
    );
    f.profile(
        "nasty",
        &Profile::on("sh").hooks([
            Hook::pre()
                .name(&nasty[0])
                .content(r#"printf "%s\n" "$0" "$@" >> @OUT@/args"#)
                .arguments(&nasty),
            Hook::pre().path("@BIN@/printer.sh").arguments(&nasty),
            Hook::pre().uses("echoer").config(&config),
        ]),
    );
    let mut run =
        f.s.antimony(["run", "nasty", "--rw", &s(&f.out), "--", "-c", "exit 0"]);
    run = run.args(&nasty);
    let out = run.run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let pwned_now = pwned(&f)?;
    ensure!(pwned_now.is_empty(), "values were executed: {pwned_now:?}");
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
        f.profile(&name, &wait_for_port(config));
        let out = f.run(&name, "exit 0").run();
        ensure!(out.code() == Some(125), "{config}: {}", out.show());
        error_line(&out, &["wait-for-port"])?;
    }
    let pwned_now = pwned(&f)?;
    ensure!(
        pwned_now.is_empty(),
        "config values were executed: {pwned_now:?}"
    );
    let input = f.json("echoer.json")?;
    ensure!(
        input["hook"]["config"] == serde_json::json!({"a": nasty[1], "b": nasty[2]})
            && input["arguments"]
                == Value::from([vec!["-c".to_string(), "exit 0".into()], nasty.clone()].concat()),
        "the JSON input changed the values: {input:#}"
    );
    pass()
}
