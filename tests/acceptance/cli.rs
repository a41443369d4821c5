//! The command line and the profile loader: the README's command, exit
//! statuses, and bad profiles rejected with a position before anything runs.

use std::os::unix::fs::PermissionsExt;

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both("cli::readme_hello", readme_hello));
    t.extend(both("cli::exit_status_is_the_programs", exit_status));
    t.extend(both("cli::death_by_signal_is_128_plus_n", death_by_signal));
    t.push(case(
        "cli::args_after_double_dash_are_the_programs",
        args_are_data,
    ));
    t.push(case(
        "cli::usage_errors_are_launcher_failures",
        usage_errors,
    ));
    t.extend(both(
        "cli::bad_profiles_are_positioned_and_run_nothing",
        bad_profiles,
    ));
    t.push(case("cli::missing_profile_and_missing_program", missing));
    t.extend(both(
        "cli::a_program_without_a_profile_says_how_to_get_one",
        program_without_profile,
    ));
    t.extend(both(
        "cli::an_override_inherits_the_profile_it_hides",
        override_inherits_below,
    ));
    t.extend(both(
        "cli::warnings_come_before_the_program_starts",
        warnings_first,
    ));
    t.extend(both(
        "cli::a_profile_on_minimal_runs_its_own_program",
        minimal_is_a_base,
    ));
    t.extend(both(
        "cli::a_dir_the_profile_names_must_exist",
        explicit_dir,
    ));
    t
}

fn readme_hello(who: Who) -> TestResult {
    let s = scratch!(who);
    let out = s.antimony(["run", "sh", "--", "-c", "echo hello"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stdout == "hello\n", "{}", out.show());
    ensure!(out.stderr.is_empty(), "{}", out.show());
    pass()
}

fn exit_status(who: Who) -> TestResult {
    let s = scratch!(who);
    for code in [0, 1, 3, 42, 124, 200, 255] {
        let out = s
            .antimony(["run", "sh", "--", "-c", &format!("exit {code}")])
            .run();
        ensure!(out.code() == Some(code), "exit {code}: {}", out.show());
    }
    pass()
}

fn death_by_signal(who: Who) -> TestResult {
    let s = scratch!(who);
    for (sig, name) in [(9, "KILL"), (15, "TERM"), (6, "ABRT")] {
        let out = s
            .antimony(["run", "sh", "--", "-c", &format!("kill -{name} $$")])
            .run();
        ensure!(out.code() == Some(128 + sig), "SIG{name}: {}", out.show());
        ensure!(out.stderr.is_empty(), "SIG{name}: {}", out.show());
    }
    pass()
}

fn args_are_data() -> TestResult {
    let s = scratch!(Who::Root);
    let out = s
        .antimony([
            "run",
            "sh",
            "--",
            "-c",
            "printf '%s|' \"$@\"",
            "sh",
            "--rw",
            "/",
            "--profile=x",
            "--",
            "$(id)",
            "a;b",
        ])
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        out.stdout == "--rw|/|--profile=x|--|$(id)|a;b|",
        "{}",
        out.show()
    );
    pass()
}

fn usage_errors() -> TestResult {
    let s = scratch!(Who::Root);
    for args in [
        vec!["run"],
        vec!["run", "sh", "-c", "true"],
        vec!["frobnicate"],
        vec!["run", "sh", "--no-such-option"],
    ] {
        let out = s.antimony(&args).run();
        ensure!(out.code() == Some(125), "{args:?}: {}", out.show());
        ensure!(
            out.stderr.starts_with("antimony: error: "),
            "{args:?}: {}",
            out.show()
        );
        ensure!(!out.stderr.contains("panicked"), "{args:?}: {}", out.show());
    }
    let out = s.antimony(["--help"]).run();
    ensure!(
        out.code() == Some(0) && out.stdout.contains("run"),
        "{}",
        out.show()
    );
    pass()
}

/// Each bad profile: one line, `antimony: error: FILE:LINE:COLUMN: …`
/// with the expected message, and the marker a valid pre-hook would have
/// written is not there. The control: the same hook in a valid profile
/// does write it.
fn bad_profiles(who: Who) -> TestResult {
    let s = scratch!(who);
    let marker = s.path("home/marker");
    let hook = format!(
        "[[hooks.pre]]\npath = \"/usr/bin/touch\"\narguments = [\"{}\"]\n",
        marker.display()
    );
    s.profile("valid", &format!("inherits = [\"sh\"]\n{hook}"));
    let out = s.antimony(["run", "valid", "--", "-c", "true"]).run();
    ensure!(out.code() == Some(0), "valid: {}", out.show());
    ensure!(
        marker.exists(),
        "valid: the pre-hook wrote no marker, so its absence proves nothing: {}",
        out.show()
    );
    std::fs::remove_file(&marker).map_err(|e| format!("remove the marker: {e}"))?;
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "syntax",
            format!("{hook}path = [\n"),
            "4:9",
            "unclosed array",
        ),
        (
            "unknown",
            format!("{hook}\n[sandbox]\nnetwrok = true\n"),
            "6:1",
            "unknown field `netwrok`",
        ),
        (
            "types",
            format!("{hook}\n[sandbox]\nseccomp = \"yes\"\n"),
            "6:11",
            "invalid type",
        ),
        (
            "values",
            format!("{hook}\n[sandbox]\nnetwork = \"yes\"\n"),
            "6:11",
            "expected false, \"isolated\" or \"host\"",
        ),
        (
            "nocommand",
            format!("{hook}[[hooks.pre]]\nname = \"x\"\n"),
            "4:1",
            "needs `path`",
        ),
        (
            "postattach",
            format!("{hook}[[hooks.post]]\npath = \"/bin/true\"\nattach = true\n"),
            "4:1",
            "pre-hooks only",
        ),
        (
            "missing",
            format!("inherits = [\"sh\", \"nonexistent-x\"]\n{hook}"),
            "1:19",
            "profile `nonexistent-x` not found",
        ),
        (
            "cyclea",
            format!("inherits = [\"cycleb\"]\n{hook}"),
            "cycleb.toml:1:13",
            "cycle cyclea → cycleb → cyclea",
        ),
    ];
    s.profile("cycleb", "inherits = [\"cyclea\"]\n");
    for (name, text, position, message) in &cases {
        s.profile(name, text);
        let out = s.antimony(["run", name]).run();
        ensure!(out.code() == Some(125), "{name}: {}", out.show());
        let line = out.stderr.lines().next().unwrap_or_default();
        ensure!(
            out.stderr.lines().count() == 1,
            "{name}: not one line: {}",
            out.show()
        );
        ensure!(!out.stderr.contains("panicked"), "{name}: {}", out.show());
        ensure!(
            line.starts_with("antimony: error: "),
            "{name}: {}",
            out.show()
        );
        ensure!(
            line.contains(&format!("{name}.toml")) || name.starts_with("cycle"),
            "{name}: no file: {}",
            out.show()
        );
        ensure!(
            line.contains(position),
            "{name}: not at {position}: {}",
            out.show()
        );
        // FILE:LINE:COLUMN as one piece, right before the message.
        let at = if name.starts_with("cycle") {
            format!("/{position}: ")
        } else {
            format!("/{name}.toml:{position}: ")
        };
        ensure!(line.contains(&at), "{name}: no `…{at}`: {}", out.show());
        ensure!(
            out.stderr.contains(message),
            "{name}: no `{message}`: {}",
            out.show()
        );
        ensure!(!marker.exists(), "{name}: a hook ran");
        let check = s.antimony(["check", name]).run();
        ensure!(check.code() == Some(125), "check {name}: {}", check.show());
        ensure!(
            check.stderr.lines().count() == 1 && check.stderr.starts_with(line),
            "check {name}: not the same one line as run's: {}",
            check.show()
        );
    }
    pass()
}

fn missing() -> TestResult {
    let s = scratch!(Who::Root);
    let out = s.antimony(["run", "no-such-profile"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    ensure!(
        out.stderr.contains("profile `no-such-profile` not found"),
        "{}",
        out.show()
    );
    s.profile("ghost", "path = \"no-such-program-anywhere\"\n");
    let out = s.antimony(["run", "ghost"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    ensure!(out.stderr.contains("not found"), "{}", out.show());
    // A bare name is never looked up in the current folder.
    s.write("home/cwdprofile.toml", "path = \"/bin/true\"\n");
    let out = s.antimony(["run", "cwdprofile"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    let out = s.antimony(["run", "./cwdprofile.toml"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    pass()
}

/// `antimony run cat` (a program, no profile) says how to get a profile;
/// `antimony run /usr/bin/cat` says a program is not a profile (not where
/// its bytes stop being TOML); `antimony edit cat` starts from a template
/// that runs cat in the strict base and names the desktop fragments, and
/// that profile works.
fn program_without_profile(who: Who) -> TestResult {
    let s = scratch!(who);
    let out = s.antimony(["run", "cat"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    crate::fixture::error_line(
        &out,
        &[
            "profile `cat` not found",
            "/usr/bin/cat",
            "antimony edit cat",
        ],
    )?;
    let out = s.antimony(["run", "/usr/bin/cat"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    crate::fixture::error_line(
        &out,
        &[
            "/usr/bin/cat is a program, not a profile",
            "antimony run minimal --program /usr/bin/cat",
        ],
    )?;
    let out = s.antimony(["edit", "cat"]).env("EDITOR", "true").run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let saved = std::fs::read_to_string(s.path("home/.config/antimony/profiles/cat.toml"))
        .map_err(|e| e.to_string())?;
    for want in [
        "inherits = [\"minimal\"]",
        "path = \"/usr/bin/cat\"",
        "with-display",
        "with-audio",
    ] {
        ensure!(saved.contains(want), "the template lacks {want}:\n{saved}");
    }
    s.write("home/hello", "hello from the host\n");
    let out = s
        .antimony(["run", "cat", "--ro", "~/hello", "--", "hello"])
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout == "hello from the host\n",
        "the template's profile: {}",
        out.show()
    );
    pass()
}

/// A user's `app.toml` with `inherits = ["app"]` inherits the system's
/// `app` (the layer below), not itself: no cycle, both layers apply, and a
/// later change to the system's profile reaches the override. The same
/// with the shipped `sh` under the user's `sh`. `antimony edit sh` writes
/// such an override, not a copy. The system folder is a scratch folder
/// bound over /etc/antimony in a mount namespace of the run's own.
fn override_inherits_below(who: Who) -> TestResult {
    if !world().is_root {
        return skip("needs root to bind a system profile folder");
    }
    let root = scratch!(Who::Root);
    let us = scratch!(who);
    let etc = root.mkdir("etc-antimony");
    let system = root.write(
        "etc-antimony/profiles/app.toml",
        "inherits = [\"sh\"]\n[environment]\nFROM_SYSTEM = \"one\"\n",
    );
    for p in [&etc, &etc.join("profiles")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    us.profile(
        "app",
        "inherits = [\"app\"]\n[environment]\nFROM_USER = \"mine\"\n",
    );
    let _etc = EtcAntimony::hold()?;
    let run = || {
        antimony_with_bind(&root, &etc, "/etc/antimony", Some(&us))
            .args(["run", "app", "--", "-c", "echo \"$FROM_SYSTEM $FROM_USER\""])
            .run()
    };
    let out = run();
    ensure!(
        out.code() == Some(0) && out.stdout == "one mine\n",
        "the override: {}",
        out.show()
    );
    // `show` says which file set each value.
    let out = antimony_with_bind(&root, &etc, "/etc/antimony", Some(&us))
        .args(["show", "app"])
        .run();
    let user_file = s(&us.path("home/.config/antimony/profiles/app.toml"));
    ensure!(
        out.code() == Some(0)
            && out
                .stdout
                .lines()
                .any(|l| l.starts_with("FROM_USER = ") && l.ends_with(&user_file))
            && out.stdout.lines().any(|l| {
                l.starts_with("FROM_SYSTEM = ") && l.ends_with("/etc/antimony/profiles/app.toml")
            }),
        "show does not say which file set each value: {}",
        out.show()
    );
    // A fix to the system's profile reaches the user's override.
    std::fs::write(
        &system,
        "inherits = [\"sh\"]\n[environment]\nFROM_SYSTEM = \"two\"\n",
    )
    .map_err(|e| e.to_string())?;
    let out = run();
    ensure!(
        out.code() == Some(0) && out.stdout == "two mine\n",
        "after the system's profile changed: {}",
        out.show()
    );
    // The shipped layer, and what `edit` writes for it.
    let out = us.antimony(["edit", "sh"]).env("EDITOR", "true").run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let saved = std::fs::read_to_string(us.path("home/.config/antimony/profiles/sh.toml"))
        .map_err(|e| e.to_string())?;
    let active: Vec<&str> = saved
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    ensure!(
        active == ["inherits = [\"sh\"]"],
        "edit sh wrote more than an override: {saved}"
    );
    us.profile(
        "sh",
        &format!("{saved}\n[environment]\nFROM_USER = \"mine\"\n"),
    );
    let out = us
        .antimony(["run", "sh", "--", "-c", "echo \"$0 $FROM_USER\""])
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout == "/bin/sh mine\n",
        "the override of the shipped sh: {}",
        out.show()
    );
    // An override of a base is the base: `minimal` still runs its program,
    // and a profile on it still does not inherit that program.
    let out = us.antimony(["edit", "minimal"]).env("EDITOR", "true").run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let out = us.antimony(["run", "minimal"]).run();
    ensure!(out.code() == Some(0), "minimal, overridden: {}", out.show());
    us.profile("on-minimal-nothing-named-so", "inherits = [\"minimal\"]\n");
    let out = us.antimony(["run", "on-minimal-nothing-named-so"]).run();
    ensure!(
        out.code() == Some(125) && out.stderr.contains("not found"),
        "a profile on the overridden minimal: {}",
        out.show()
    );
    pass()
}

/// The plan's warnings are said before the program starts (launched from a
/// menu, a program that has its window is where the user looks; what comes
/// after it exits is read by nobody): here, a bind of the whole runtime
/// folder, warned of before the program's first line on the same stream.
fn warnings_first(who: Who) -> TestResult {
    let sc = scratch!(who);
    let runtime = s(&sc.path("runtime"));
    let out = sc
        .antimony([
            "run",
            "sh",
            "--ro",
            &runtime,
            "--",
            "-c",
            "echo the-program-ran >&2",
        ])
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let warning = out
        .stderr
        .find("antimony: warning: a bind gives the sandbox your whole runtime folder");
    let program = out.stderr.find("the-program-ran");
    ensure!(
        matches!((warning, program), (Some(w), Some(p)) if w < p),
        "the warning is not said before the program runs: {}",
        out.show()
    );
    pass()
}

/// `minimal` is a base: a profile that inherits it and sets no `path` runs
/// the program named after itself, or says there is none — never
/// `minimal`'s `/usr/bin/true` in silence. `minimal` itself still runs it.
fn minimal_is_a_base(who: Who) -> TestResult {
    let sc = scratch!(who);
    sc.profile("cat", "inherits = [\"minimal\"]\n");
    sc.write("home/note", "a note\n");
    let out = sc
        .antimony(["run", "cat", "--ro", "~/note", "--", "note"])
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout == "a note\n",
        "cat on minimal: {}",
        out.show()
    );
    sc.profile("no-such-program-here", "inherits = [\"minimal\"]\n");
    let out = sc.antimony(["run", "no-such-program-here"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    crate::fixture::error_line(&out, &["program `no-such-program-here` not found"])?;
    let out = sc.antimony(["run", "minimal"]).run();
    ensure!(out.code() == Some(0), "minimal alone: {}", out.show());
    pass()
}

/// `dir` is where the program starts; a missing one is an error, not a
/// silent start elsewhere.
fn explicit_dir(who: Who) -> TestResult {
    let s = scratch!(who);
    s.profile("there", "inherits = [\"sh\"]\ndir = \"/usr/share\"\n");
    let out = s.antimony(["run", "there", "--", "-c", "pwd"]).run();
    ensure!(
        out.code() == Some(0) && out.stdout == "/usr/share\n",
        "{}",
        out.show()
    );
    s.profile(
        "nowhere",
        "inherits = [\"sh\"]\ndir = \"/no/such/folder\"\n",
    );
    let out = s.antimony(["run", "nowhere", "--", "-c", "echo ran"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    ensure!(
        out.stderr
            == "antimony: error: change to /no/such/folder: ENOENT: No such file or directory\n",
        "{}",
        out.show()
    );
    ensure!(out.stdout.is_empty(), "{}", out.show());
    pass()
}
