//! A profile the sandbox can write runs the sandbox's code on the host
//! (issue 14, item 1): nothing a run's sandbox can change may be loaded by
//! a later run — the profile named by path, a profile it inherits by path,
//! a reusable hook's definition, a drop-in, a hook's program, the user's and
//! the system's configuration folders — neither by writing them nor by
//! renaming or replacing a folder (or a link) on their way.
//!
//! Each attack plants a pre-hook that creates `PWNED` in the scratch folder
//! and runs the profile again: the hook must never run. A profile kept in
//! the project the sandbox works in stays usable: antimony keeps it
//! read-only in the sandbox and pins the folders on its way.

use std::path::Path;

use crate::fixture::{Fixture, error_line, no_panic};
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both(
        "hostside::profiles::a_profile_by_path_is_not_writable",
        profile_by_path,
    ));
    t.extend(both(
        "hostside::profiles::the_persistent_home_counts_as_writable",
        persistent_home,
    ));
    t.extend(both(
        "hostside::profiles::an_inherited_fragment_is_not_writable",
        inherited_fragment,
    ));
    t.extend(both(
        "hostside::profiles::no_folder_on_the_way_can_be_renamed",
        renamed_folder,
    ));
    t.extend(both(
        "hostside::profiles::hook_definitions_dropins_and_programs",
        hooks_reached,
    ));
    t.extend(both(
        "hostside::profiles::a_nested_namespace_cannot_unpin",
        nested_namespace,
    ));
    t.extend(both(
        "hostside::profiles::kernel_renames_beside_mount_points",
        kernel_semantics,
    ));
    t.extend(both(
        "hostside::profiles::the_project_local_workflow_works",
        project_local,
    ));
    t.push(case(
        "hostside::profiles::the_system_folder_is_masked::root",
        system_folder,
    ));
    t
}

/// Shell functions the attacks share: `try LABEL CMD…` runs CMD and logs
/// `LABEL: done` or `LABEL: refused` (`try LABEL eval '…'` for a command
/// line); `$HOOK` (exported) is the planted hook.
const PRELUDE: &str = r#"
HOOK='[[hooks.pre]]
content = "touch @S@/PWNED"'
export HOOK
try() {
    label=$1; shift
    if ( "$@" ) 2>/dev/null; then r=done; else r=refused; fi
    echo "$label: $r" >> @OUT@/log
}
"#;

/// The text with `@S@`, `@OUT@` and `@P@` (the project) replaced.
fn subst(f: &Fixture, text: &str) -> String {
    f.subst(text).replace("@P@", &s(&f.s.home().join("proj")))
}

/// Runs antimony with `args`, then `-- -c SCRIPT` (with the prelude).
fn attack(f: &Fixture, args: &[&str], script: &str) -> Output {
    let script = subst(
        f,
        &format!("{PRELUDE}\n{script}\necho attack-done >> @OUT@/log\n"),
    );
    f.s.antimony(["run"])
        .args(args)
        .args(["--rw", &s(&f.out), "--", "-c", &script])
        .run()
}

/// The attack ran to its end, and every attempt was refused.
fn all_refused(f: &Fixture, out: &Output) -> Result<(), String> {
    no_panic(out)?;
    let log = f.log();
    if log.last().map(String::as_str) != Some("attack-done") {
        return Err(format!(
            "the attack did not run to its end: {log:?}\n{}",
            out.show()
        ));
    }
    let done: Vec<&String> = log.iter().filter(|l| l.ends_with(": done")).collect();
    if !done.is_empty() {
        return Err(format!(
            "the sandbox could: {done:?} (log {log:?})\n{}",
            out.show()
        ));
    }
    Ok(())
}

/// Runs the profile again: its pre-hooks run on the host; none may be the
/// planted one.
fn next_run_is_clean(f: &Fixture, profile: &str, extra: &[&str]) -> Result<(), String> {
    let out =
        f.s.antimony(["run", profile])
            .args(extra)
            .args(["--", "-c", "true"])
            .run();
    let pwned = f.s.path("PWNED");
    if pwned.exists() {
        return Err(format!(
            "the next run ran the sandbox's hook on the host ({} exists): {}",
            pwned.display(),
            out.show()
        ));
    }
    if out.code() != Some(0) {
        return Err(format!("the next run failed: {}", out.show()));
    }
    Ok(())
}

/// Removes the log.
fn clear(f: &Fixture) {
    let _ = std::fs::remove_file(f.out("log"));
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The issue's attack: a profile named by path that binds its own folder
/// writable. The sandbox appends a hook to it, rewrites it, removes and
/// recreates it, moves another file over it, links over it, changes its
/// mode: each is refused (the file is a read-only mount point in the
/// sandbox), the sandbox still writes beside it, and the next run runs no
/// hook of the sandbox's.
fn profile_by_path(who: Who) -> TestResult {
    let f = fixture!(who);
    let text = "inherits = [\"minimal\"]\npath = \"/bin/sh\"\n\n[files]\nrw = [\"~/proj\"]\n";
    let profile = f.s.write("home/proj/build.toml", text);
    let p = s(&profile);
    let out = attack(
        &f,
        &[&p],
        r#"
try append eval 'printf "%s\n" "$HOOK" >> @P@/build.toml'
try rewrite eval 'printf "inherits = [\"minimal\"]\n%s\n" "$HOOK" > @P@/build.toml'
try truncate truncate -s 0 @P@/build.toml
try remove rm -f @P@/build.toml
try move-over eval 'printf "%s\n" "$HOOK" > @P@/new.toml && mv -f @P@/new.toml @P@/build.toml'
try link-over ln -f @P@/new.toml @P@/build.toml
try chmod chmod 0666 @P@/build.toml
try rename-the-bind mv @P@ @P@.old
echo beside > @P@/beside.txt && echo wrote-beside >> @OUT@/log
rm -f @P@/new.toml
"#,
    );
    ensure!(out.code() == Some(0), "{}", out.show());
    // `wrote-beside` comes before the end: drop it for the check.
    ensure!(
        f.log().iter().any(|l| l == "wrote-beside"),
        "the sandbox could not write in its project: {:?}\n{}",
        f.log(),
        out.show()
    );
    all_refused(&f, &out)?;
    ensure!(
        read(&profile) == text,
        "the profile changed: {:?}",
        read(&profile)
    );
    next_run_is_clean(&f, &p, &[])?;
    pass()
}

/// The persistent home is a writable bind like any other: a profile kept
/// in its host folder (`$XDG_DATA_HOME/antimony/NAME`) is the sandbox's to
/// write at `~`, unless kept read-only there.
fn persistent_home(who: Who) -> TestResult {
    let f = fixture!(who);
    let text = "inherits = [\"minimal\"]\npath = \"/bin/sh\"\n\n[home]\npolicy = \"Enabled\"\n";
    let profile = f.s.write("home/.local/share/antimony/kept/kept.toml", text);
    let p = s(&profile);
    let out = attack(
        &f,
        &[&p],
        r#"
try append eval 'printf "%s\n" "$HOOK" >> ~/kept.toml'
try move-over eval 'printf "%s\n" "$HOOK" > ~/new.toml && mv -f ~/new.toml ~/kept.toml'
rm -f ~/new.toml
echo home > ~/written && echo wrote-home >> @OUT@/log
"#,
    );
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        f.log().iter().any(|l| l == "wrote-home"),
        "the home is not writable: {:?}",
        f.log()
    );
    all_refused(&f, &out)?;
    ensure!(read(&profile) == text, "the profile changed");
    next_run_is_clean(&f, &p, &[])?;
    pass()
}

/// The same through a fragment the profile inherits by path: the profile
/// lives outside every writable folder, the fragment in the project.
fn inherited_fragment(who: Who) -> TestResult {
    let f = fixture!(who);
    let frag = "fragment = true\ninherits = [\"minimal\"]\n";
    let fragment = f.s.write("home/proj/base.toml", frag);
    let profile = f.s.write(
        "home/app/app.toml",
        "inherits = [\"../proj/base.toml\"]\npath = \"/bin/sh\"\n\n[files]\nrw = [\"~/proj\"]\n",
    );
    let p = s(&profile);
    let out = attack(
        &f,
        &[&p],
        r#"
try append eval 'printf "%s\n" "$HOOK" >> @P@/base.toml'
try remove rm -f @P@/base.toml
try move-over eval 'printf "fragment = true\n%s\n" "$HOOK" > @P@/new.toml && mv -f @P@/new.toml @P@/base.toml'
rm -f @P@/new.toml
"#,
    );
    ensure!(out.code() == Some(0), "{}", out.show());
    all_refused(&f, &out)?;
    ensure!(read(&fragment) == frag, "the fragment changed");
    // Named through a link the sandbox could replace, it is refused.
    let link = f.s.home().join("proj/linked");
    std::os::unix::fs::symlink(".", &link).map_err(|e| e.to_string())?;
    let _ = std::os::unix::fs::lchown(&link, Some(f.s.uid), Some(f.s.gid));
    let via_link = f.s.write(
        "home/app/via-link.toml",
        "inherits = [\"../proj/linked/base.toml\"]\npath = \"/bin/sh\"\n\n[files]\nrw = [\"~/proj\"]\n",
    );
    let out =
        f.s.antimony(["run", &s(&via_link), "--", "-c", "echo ran > @OUT@/ran"])
            .run();
    ensure!(out.code() != Some(0), "launched: {}", out.show());
    error_line(&out, &["proj/linked", "symbolic link", "base.toml"])?;
    next_run_is_clean(&f, &p, &[])?;
    pass()
}

/// Renaming a folder above the profile replaces it for the next run
/// (`mv sub sub.old; mkdir sub; write a new profile`): every folder between
/// the writable bind and the profile is pinned, so each such rename fails,
/// for a bind of the project and for one of the whole home.
fn renamed_folder(who: Who) -> TestResult {
    let f = fixture!(who);
    let text = "inherits = [\"minimal\"]\npath = \"/bin/sh\"\n\n[files]\nrw = [\"~/proj\"]\n";
    let deep = f.s.write("home/proj/sub/dir/build.toml", text);
    let d = s(&deep);
    let out = attack(
        &f,
        &[&d],
        r#"
new() { mkdir -p "$1" && printf 'inherits = ["minimal"]\npath = "/bin/sh"\n%s\n' "$HOOK" > "$1/build.toml"; }
try rename-dir eval 'mv @P@/sub/dir @P@/sub/dir.old && new @P@/sub/dir'
try rename-sub eval 'mv @P@/sub @P@/sub.old && new @P@/sub/dir'
try remove-sub rm -rf @P@/sub
"#,
    );
    ensure!(out.code() == Some(0), "{}", out.show());
    all_refused(&f, &out)?;
    next_run_is_clean(&f, &d, &[])?;
    // The whole home bound writable, the profile in a project in it.
    clear(&f);
    let profile = f.s.write(
        "home/proj/build.toml",
        "inherits = [\"minimal\"]\npath = \"/bin/sh\"\n",
    );
    let p = s(&profile);
    let out = attack(
        &f,
        &[&p, "--rw", "~"],
        r#"
try rename-project eval 'mv @P@ @P@.old && mkdir @P@ && printf "inherits = [\"minimal\"]\npath = \"/bin/sh\"\n%s\n" "$HOOK" > @P@/build.toml'
try write eval 'printf "%s\n" "$HOOK" >> @P@/build.toml'
"#,
    );
    ensure!(out.code() == Some(0), "{}", out.show());
    all_refused(&f, &out)?;
    ensure!(
        !f.s.home().join("proj.old").exists(),
        "the project was renamed"
    );
    next_run_is_clean(&f, &p, &[])?;
    pass()
}

/// A reusable hook's definition kept in the project (linked from the
/// user's hooks folder) is kept read-only like a profile. A drop-in that is
/// a link to a program in the project, and a hook program in the project,
/// are refused before anything runs: what a program loads beside it is
/// unknown. A program in a folder bound read-only inside the writable one
/// runs.
fn hooks_reached(who: Who) -> TestResult {
    let f = fixture!(who);
    let definition = "[hook]\ncontent = \"echo definition-ran >> @OUT@/log\"\n";
    let def =
        f.s.write("home/proj/hooks/proj-hook.toml", &f.subst(definition));
    f.s.mkdir("home/.config/antimony/hooks");
    let linked = f.s.home().join(".config/antimony/hooks/proj-hook.toml");
    std::os::unix::fs::symlink(&def, &linked).map_err(|e| e.to_string())?;
    let _ = std::os::unix::fs::lchown(&linked, Some(f.s.uid), Some(f.s.gid));
    f.profile(
        "uses",
        "inherits = [\"sh\"]\n\n[files]\nrw = [\"~/proj\"]\n\n[[hooks.pre]]\nuse = \"proj-hook\"\n",
    );
    let out = attack(
        &f,
        &["uses"],
        r#"
try rewrite eval 'printf "[hook]\ncontent = \"touch @S@/PWNED\"\n" > @P@/hooks/proj-hook.toml'
try rename-folder eval 'mv @P@/hooks @P@/hooks.old && mkdir @P@/hooks && printf "[hook]\ncontent = \"touch @S@/PWNED\"\n" > @P@/hooks/proj-hook.toml'
"#,
    );
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        f.log().first().map(String::as_str) == Some("definition-ran"),
        "the definition did not run first: {:?}",
        f.log()
    );
    all_refused(&f, &out)?;
    next_run_is_clean(&f, "uses", &[])?;

    // A hook program in the project: refused, nothing runs.
    clear(&f);
    f.s.script(
        "home/proj/hook.sh",
        "#!/bin/sh\necho hook-ran >> \"$0.log\"\n",
    );
    f.profile(
        "program",
        &subst(
            &f,
            "inherits = [\"sh\"]\n\n[files]\nrw = [\"~/proj\"]\n\n[[hooks.pre]]\npath = \"@P@/hook.sh\"\n",
        ),
    );
    let out = f.run("program", "echo program-ran >> @OUT@/log").run();
    ensure!(out.code() != Some(0), "launched: {}", out.show());
    error_line(
        &out,
        &[
            "could write",
            "proj/hook.sh",
            "rw ",
            "proj",
            "a hook never runs",
        ],
    )?;
    ensure!(f.log().is_empty(), "something ran: {:?}", f.log());
    // Bound read-only inside the writable project, it runs (its folder's
    // way pinned).
    f.s.script(
        "home/proj/tools/hook.sh",
        &f.subst("#!/bin/sh\necho tool-ran >> @OUT@/log\n"),
    );
    f.profile(
        "tool",
        &subst(
            &f,
            "inherits = [\"sh\"]\n\n[files]\nrw = [\"~\"]\nro = [\"~/proj/tools\"]\n\n[[hooks.pre]]\npath = \"@P@/tools/hook.sh\"\n",
        ),
    );
    let out = f
        .run(
            "tool",
            "mv @P@ @P@.old 2>/dev/null && echo moved >> @OUT@/log; echo program-ran >> @OUT@/log",
        )
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        f.log() == ["tool-ran", "program-ran"],
        "log {:?}: {}",
        f.log(),
        out.show()
    );

    // A user drop-in linked to a program in the project: refused.
    clear(&f);
    let tool =
        f.s.script("home/proj/dropin.sh", "#!/bin/sh\ncat >/dev/null\n");
    f.s.mkdir("home/.config/antimony/hooks.d/pre");
    let dropin = f.s.home().join(".config/antimony/hooks.d/pre/10-proj");
    std::os::unix::fs::symlink(&tool, &dropin).map_err(|e| e.to_string())?;
    let _ = std::os::unix::fs::lchown(&dropin, Some(f.s.uid), Some(f.s.gid));
    let proj = s(&f.s.home().join("proj"));
    let out =
        f.s.antimony([
            "run",
            "sh",
            "--rw",
            &proj,
            "--rw",
            &s(&f.out),
            "--",
            "-c",
            &f.subst("echo program-ran >> @OUT@/log"),
        ])
        .run();
    ensure!(out.code() != Some(0), "launched: {}", out.show());
    error_line(&out, &["proj/dropin.sh", "--rw", "a hook never runs"])?;
    ensure!(f.log().is_empty(), "something ran: {:?}", f.log());
    std::fs::remove_file(&dropin).map_err(|e| e.to_string())?;
    pass()
}

/// With Landlock and seccomp off and nested user namespaces allowed, the
/// sandbox can hold every capability over a mount namespace of its own,
/// copied from the sandbox's: the guards are locked to their parents
/// there. It cannot unmount them (EINVAL), remount them writable, bind the
/// project without them (a bind of a tree with locked mounts beneath must
/// take them along), or write through a bind that takes them along. The
/// attempts call the system calls from Python (mount(8) refuses a caller
/// without a uid map, and mapping root needs CAP_SETFCAP).
fn nested_namespace(who: Who) -> TestResult {
    let f = fixture!(who);
    if !Path::new("/usr/bin/python3").exists() {
        return skip("no /usr/bin/python3");
    }
    let text = "inherits = [\"minimal\"]\npath = \"/bin/sh\"\n\n[files]\nrw = [\"~/proj\"]\n\n\
                [sandbox]\nlandlock = \"off\"\nseccomp = false\nnested_userns = true\n";
    let profile = f.s.write("home/proj/sub/build.toml", text);
    let p = s(&profile);
    let out = attack(
        &f,
        &[&p],
        r#"
/usr/bin/python3 - <<'PY'
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
P, HOOK = "@P@", os.environ["HOOK"] + "\n"
MS_BIND, MS_REC, MS_REMOUNT, MNT_DETACH = 4096, 16384, 32, 2

def check(r):
    if r != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

def mount(src, dst, fstype, flags):
    enc = lambda s: s.encode() if s else None
    check(libc.mount(enc(src), enc(dst), enc(fstype), flags, None))

def umount(path, flags=0):
    check(libc.umount2(path.encode(), flags))

def append(path):
    with open(path, "a") as f:
        f.write(HOOK)

def attempt(label, steps):
    # In a child: a user and mount namespace of its own, every capability.
    pid = os.fork()
    if pid == 0:
        try:
            check(libc.unshare(0x10000000 | 0x00020000))
            steps()
            os._exit(0)
        except Exception:
            os._exit(1)
    ok = os.waitpid(pid, 0)[1] == 0
    with open("@OUT@/log", "a") as log:
        log.write(label + ": " + ("done" if ok else "refused") + "\n")

def control():
    mount("tmpfs", "/var/tmp", "tmpfs", 0)
attempt("control-mount", control)
attempt("umount-file", lambda: (umount(P + "/sub/build.toml"), append(P + "/sub/build.toml")))
attempt("umount-pin", lambda: (umount(P + "/sub", MNT_DETACH), os.rename(P + "/sub", P + "/sub.old")))
attempt("remount", lambda: (mount(None, P + "/sub/build.toml", None, MS_REMOUNT | MS_BIND), append(P + "/sub/build.toml")))
attempt("bind-bare", lambda: (mount(P, "/var/tmp", None, MS_BIND), append("/var/tmp/sub/build.toml")))
attempt("bind-all", lambda: (mount(P, "/var/tmp", None, MS_BIND | MS_REC), append("/var/tmp/sub/build.toml")))
attempt("rename", lambda: os.rename(P + "/sub", P + "/sub.old"))
PY
"#,
    );
    ensure!(out.code() == Some(0), "{}", out.show());
    let mut log = f.log();
    // The control shows the namespace could mount at all.
    ensure!(
        log.first().map(String::as_str) == Some("control-mount: done"),
        "no nested namespace to mount in (the test proves nothing): {log:?}\n{}",
        out.show()
    );
    log.remove(0);
    std::fs::write(f.out("log"), log.join("\n") + "\n").map_err(|e| e.to_string())?;
    all_refused(&f, &out)?;
    ensure!(read(&profile) == text, "the profile changed");
    next_run_is_clean(&f, &p, &[])?;
    pass()
}

/// The kernel semantics the guards rely on, in a plain mount namespace: a
/// mount point cannot be renamed (EBUSY), but a folder above one can (the
/// mount goes along), which is why every folder on the way is pinned and
/// not only the file's.
fn kernel_semantics(who: Who) -> TestResult {
    let f = fixture!(who);
    let d = f.s.mkdir("k/a/b/c");
    let k = s(&f.s.path("k"));
    let out =
        f.s.command("unshare")
            .args(["-Urm", "--", "sh", "-c"])
            .arg(format!(
                "mount --bind {c} {c} || exit 3; \
             if mv {k}/a/b/c {k}/a/b/c2 2>/dev/null; then echo moved-mount-point; else echo mount-point-busy; fi; \
             if mv {k}/a/b {k}/a/b2; then echo moved-parent; fi; \
             if mv {k}/a {k}/a2; then echo moved-grandparent; fi",
                c = s(&d)
            ))
            .run();
    if out.code() == Some(3) || out.stdout.is_empty() {
        return skip(format!("no mount namespace: {}", out.show()));
    }
    ensure!(
        out.stdout == "mount-point-busy\nmoved-parent\nmoved-grandparent\n",
        "{}",
        out.show()
    );
    pass()
}

/// The project-local workflow: a profile kept in the project, run with the
/// project bound writable (`--rw .` from the project). At the top of the
/// project, the profile file alone is read-only in the sandbox; in a folder
/// of its own (`.antimony/`, with a fragment beside it), that folder is,
/// so that no run changes the project's other profiles either. The program
/// reads and writes the rest of the project freely, and `--dry-run` lists
/// what is kept read-only.
fn project_local(who: Who) -> TestResult {
    let f = fixture!(who);
    let top_text =
        "inherits = [\"sh\"]\n\n[[hooks.pre]]\ncontent = \"echo pre-hook >> @OUT@/log\"\n";
    let base_text = "fragment = true\ninherits = [\"sh\"]\n";
    let build_text = "inherits = [\"./base.toml\"]\n";
    let top = f.s.write("home/proj/antimony.toml", &f.subst(top_text));
    let base = f.s.write("home/proj/.antimony/base.toml", base_text);
    let build = f.s.write("home/proj/.antimony/build.toml", build_text);
    let proj = f.s.home().join("proj");
    let work = r#"
echo 'int main;' > main.c && mkdir -p src/new && mv main.c src/new/ && rm src/old.c && \
mv src src2 && mv src2 src && cat antimony.toml .antimony/build.toml > /dev/null && \
echo worked >> @OUT@/log
"#;
    let top_attack = r#"
if echo x >> antimony.toml 2>/dev/null; then echo wrote-profile >> @OUT@/log; fi
if mv antimony.toml a.toml 2>/dev/null; then echo moved-profile >> @OUT@/log; fi
"#;
    let folder_attack = r#"
if echo x >> .antimony/base.toml 2>/dev/null; then echo wrote-fragment >> @OUT@/log; fi
if echo x > .antimony/test.toml 2>/dev/null; then echo wrote-beside >> @OUT@/log; fi
if mv .antimony .antimony.old 2>/dev/null; then echo moved-folder >> @OUT@/log; fi
"#;
    for (profile, attack, expect) in [
        ("./antimony.toml", top_attack, &["pre-hook", "worked"][..]),
        ("./.antimony/build.toml", folder_attack, &["worked"][..]),
    ] {
        clear(&f);
        f.s.write("home/proj/src/old.c", "old\n");
        let mut run = f.s.antimony([
            "run",
            profile,
            "--rw",
            ".",
            "--rw",
            &s(&f.out),
            "--",
            "-c",
            &f.subst(&format!("{work}{attack}")),
        ]);
        run.cmd.current_dir(&proj);
        let out = run.run();
        ensure!(out.code() == Some(0), "{profile}: {}", out.show());
        ensure!(
            f.log() == expect,
            "{profile}: log {:?}, expected {expect:?}: {}",
            f.log(),
            out.show()
        );
        ensure!(
            proj.join("src/new/main.c").is_file() && !proj.join("src/old.c").exists(),
            "{profile}: the program's work is not in the project"
        );
        let _ = std::fs::remove_dir_all(proj.join("src"));
    }
    for (file, text) in [
        (&top, f.subst(top_text)),
        (&base, base_text.to_string()),
        (&build, build_text.to_string()),
    ] {
        ensure!(read(file) == text, "{} changed", file.display());
    }
    // --dry-run says what it keeps read-only.
    let mut run =
        f.s.antimony(["run", "--dry-run", "./.antimony/build.toml", "--rw", "."]);
    run.cmd.current_dir(&proj);
    let out = run.run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let folder = proj.join(".antimony");
    for (file, what) in [
        (&build, "the profile"),
        (&base, "`base`, which the profile inherits"),
    ] {
        let line = format!(
            "  {} ({what}): with its folder, {}\n",
            file.display(),
            folder.display()
        );
        ensure!(
            out.stdout.contains(&line),
            "--dry-run does not say {line:?}: {}",
            out.show()
        );
    }
    ensure!(
        out.stdout
            .contains(&format!("ro-self {}\n", folder.display())),
        "no read-only mount of the profiles' folder: {}",
        out.show()
    );
    pass()
}

/// Where every later run looks profiles, hooks and drop-ins up by name,
/// `/etc/antimony`, is masked in a sandbox that binds `/etc` writable
/// (root's: an ordinary user cannot write there anyway). So that nothing
/// can reach the host's `/etc`, antimony runs in a mount namespace of its
/// own where `/etc` is an overlay whose writes go to the scratch folder.
fn system_folder() -> TestResult {
    let f = fixture!(Who::Root);
    let layers = f.s.mkdir("etc-layers");
    let script = f.subst(
        r#"
mkdir -p /etc/antimony/profiles 2>/dev/null
if echo 'path = "/bin/sh"' > /etc/antimony/profiles/planted.toml 2>/dev/null; then echo planted >> @OUT@/log; fi
if mkdir -p /etc/antimony/hooks.d/pre 2>/dev/null; then echo dropin-folder >> @OUT@/log; fi
if mv /etc/antimony /etc/antimony.old 2>/dev/null; then echo moved >> @OUT@/log; fi
echo attack-done >> @OUT@/log
"#,
    );
    // The overlay's upper layer on a tmpfs of the namespace's own: it
    // vanishes with it, whatever the sandbox wrote.
    let out =
        f.s.command("unshare")
            .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(
                "mount -t tmpfs tmpfs \"$0\" && mkdir \"$0/u\" \"$0/w\" \
                 && mount -t overlay overlay -o lowerdir=/etc,upperdir=\"$0/u\",workdir=\"$0/w\" /etc \
                 && mkdir -p /etc/antimony || exit 3; exec \"$@\"",
            )
            .arg(&layers)
            .arg(&world().antimony)
            .args(["run", "sh", "--rw", "/etc", "--rw", &s(&f.out), "--", "-c"])
            .arg(&script)
            .run();
    if out.code() == Some(3) {
        return skip(format!("no overlay over /etc: {}", out.show()));
    }
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        f.log() == ["attack-done"],
        "the sandbox changed /etc/antimony: {:?}",
        f.log()
    );
    ensure!(
        !Path::new("/etc/antimony/profiles/planted.toml").exists(),
        "the host's /etc/antimony has the planted profile"
    );
    pass()
}
