//! Hostile input and faults: symlink swaps between runs, values that look
//! like code, hooks that hang, crash, close their output or flood it,
//! storage that cannot be written, many launches at once, and antimony
//! killed with SIGKILL at every stage — nothing left behind.

use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both("faults::swapped_home_is_refused", swapped_home));
    t.extend(both("faults::swapped_bind_source_is_refused", swapped_bind));
    t.extend(both("faults::values_are_data_never_code", values_are_data));
    t.extend(both(
        "faults::hooks_that_hang_crash_or_close_output",
        bad_hooks,
    ));
    t.extend(both(
        "faults::a_flood_of_output_keeps_memory_bounded",
        flood,
    ));
    t.extend(both(
        "faults::unwritable_storage_is_said_once",
        unwritable_storage,
    ));
    t.extend(both(
        "faults::a_full_filesystem_is_said_once_and_loses_no_state",
        full_storage,
    ));
    t.extend(both("faults::one_hundred_launches_at_once", parallel));
    t.extend(both(
        "faults::sigkill_at_every_stage_leaves_nothing",
        sigkill,
    ));
    t.extend(both(
        "faults::the_guardian_ignores_signals_and_ends_with_antimony",
        guardian,
    ));
    t.extend(both(
        "faults::sigkill_leaves_no_encrypted_home_mounted",
        sigkill_encrypted_home,
    ));
    t.extend(both(
        "faults::a_hooks_group_number_is_held_while_the_group_lives",
        group_number_held,
    ));
    t
}

/// A persistent home swapped for a symlink to the user's ~/.ssh between
/// two runs (CVE-2024-42472's class) is refused, never followed.
fn swapped_home(who: Who) -> TestResult {
    let s = scratch!(who);
    s.write("home/.ssh/id_secret", "SECRET\n");
    s.profile("persist", &Profile::on("sh").home("Enabled"));
    let out = s
        .antimony(["run", "persist", "--", "-c", "echo first > ~/note"])
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let home = s.path("home/.local/share/antimony/persist");
    ensure!(home.join("note").exists(), "the first run did not persist");
    // The swap, as a sandbox with write access to the folder above could do.
    std::fs::remove_dir_all(&home).unwrap();
    symlink(s.path("home/.ssh"), &home).unwrap();
    let _ = std::os::unix::fs::lchown(&home, Some(s.uid), Some(s.gid));
    let out = s
        .antimony(["run", "persist", "--", "-c", "cat ~/id_secret; echo ran"])
        .run();
    ensure!(out.code() == Some(125), "{}", out.show());
    ensure!(
        out.stderr.contains("symbolic link") && !out.stdout.contains("SECRET"),
        "{}",
        out.show()
    );
    ensure!(
        !out.stdout.contains("ran"),
        "the program ran: {}",
        out.show()
    );
    pass()
}

/// A bind source (and a folder on its way) swapped for symlinks to `/`
/// and to ~/.ssh: refused; a root-owned system symlink is followed.
fn swapped_bind(who: Who) -> TestResult {
    let s = scratch!(who);
    s.write("home/.ssh/id_secret", "SECRET\n");
    s.write("home/data/proj/file", "mine\n");
    let proj = s.path("home/data/proj");
    s.profile("proj", &Profile::on("sh").ro(&["~/data/proj"]));
    let out = s
        .antimony(["run", "proj", "--", "-c", "cat ~/data/proj/file"])
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout == "mine\n",
        "{}",
        out.show()
    );
    // The source itself becomes a link to `/`.
    std::fs::remove_dir_all(&proj).unwrap();
    symlink("/", &proj).unwrap();
    let _ = std::os::unix::fs::lchown(&proj, Some(s.uid), Some(s.gid));
    let out = s
        .antimony(["run", "proj", "--", "-c", "ls ~/data/proj; echo ran"])
        .run();
    ensure!(out.code() == Some(125), "{}", out.show());
    ensure!(out.stderr.contains("symbolic link"), "{}", out.show());
    ensure!(!out.stdout.contains("ran"), "{}", out.show());
    // A folder on the way becomes a link to ~/.ssh's parent.
    std::fs::remove_file(&proj).unwrap();
    let data = s.path("home/data");
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(s.path("home/elsewhere/proj")).unwrap();
    symlink(s.path("home/.ssh"), s.path("home/elsewhere/proj/.x")).unwrap();
    symlink(s.path("home/elsewhere"), &data).unwrap();
    let _ = std::os::unix::fs::lchown(&data, Some(s.uid), Some(s.gid));
    let out = s.antimony(["run", "proj", "--", "-c", "echo ran"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    ensure!(out.stderr.contains("symbolic link"), "{}", out.show());
    // Root's own links (like /lib64 → usr/lib64 on a merged-/usr system,
    // or /etc/resolv.conf) are followed.
    if std::fs::symlink_metadata("/lib64").is_ok_and(|m| m.file_type().is_symlink()) {
        let out = s
            .antimony([
                "run",
                "sh",
                "--ro",
                "/lib64=/mnt/l",
                "--",
                "-c",
                "ls /mnt/l >/dev/null && echo ok",
            ])
            .run();
        ensure!(
            out.code() == Some(0) && out.stdout == "ok\n",
            "{}",
            out.show()
        );
    }
    pass()
}

/// Values that look like shell code reach the program and hooks as data.
fn values_are_data(who: Who) -> TestResult {
    let s = scratch!(who);
    let marker = s.path("home/pwned");
    let m = marker.display();
    s.profile(
        "inj",
        &format!(
            r#"inherits = ["sh"]
arguments = ["-c", "printf '%s|' \"$A\" \"$B\" \"$C\" \"$@\"", "sh", "$(touch {m})", "`touch {m}`"]
[environment]
A = "$(touch {m})"
B = "; touch {m};"
C = "line1\nline2 `touch {m}`"
[[hooks.pre]]
path = "/usr/bin/printf"
arguments = ["%s|", "$(touch {m})", "`touch {m}`", "; touch {m}", "x\ny"]
"#
        ),
    );
    let out = s.antimony(["run", "inj"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(!marker.exists(), "something was executed: {}", out.show());
    ensure!(
        out.stdout
            .contains(&format!("$(touch {m})|`touch {m}`|; touch {m}|x\ny|"))
            && out.stdout.contains(&format!(
                "$(touch {m})|; touch {m};|line1\nline2 `touch {m}`|$(touch {m})|`touch {m}`|"
            )),
        "{}",
        out.show()
    );
    // A NUL in a value is refused when the profile is loaded, with its place.
    s.profile(
        "nul",
        "inherits = [\"sh\"]\n[environment]\nA = \"a\\u0000b\"\n",
    );
    let out = s.antimony(["run", "nul"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    ensure!(out.stderr.contains("nul.toml:3:"), "{}", out.show());
    pass()
}

/// A pre-hook that hangs (stopped by its timeout), one that crashes, and
/// one that closes its output early: each ends clearly, antimony never wedges.
fn bad_hooks(who: Who) -> TestResult {
    let s = scratch!(who);
    s.profile(
        "hang",
        &Profile::on("sh").grace(0.5).hook(
            Hook::pre()
                .name("hangs")
                .timeout(1.0)
                .content("trap '' TERM; while :; do sleep 1; done"),
        ),
    );
    let out = s.antimony(["run", "hang", "--", "-c", "echo ran"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    ensure!(out.stderr.contains("`hangs` timed out"), "{}", out.show());
    ensure!(!out.stdout.contains("ran"), "{}", out.show());
    s.profile(
        "crash",
        &Profile::on("sh").hook(Hook::pre().name("crashes").content("kill -SEGV $$")),
    );
    let out = s.antimony(["run", "crash", "--", "-c", "echo ran"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    ensure!(
        out.stderr.contains("`crashes` was killed by SIGSEGV"),
        "{}",
        out.show()
    );
    s.profile(
        "closes",
        &Profile::on("sh").hook(
            Hook::pre()
                .name("closes")
                .content("echo before; exec >&- 2>&-; sleep 0.3"),
        ),
    );
    let out = s.antimony(["run", "closes", "--", "-c", "echo ran"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stdout == "before\nran\n", "{}", out.show());
    pass()
}

/// 100 MB of output from a hook: passed on, and antimony's memory stays small.
fn flood(who: Who) -> TestResult {
    let s = scratch!(who);
    s.profile(
        "flood",
        &Profile::on("sh").hooks([
            Hook::pre()
                .name("lines")
                .content("yes antimony | head -c 50000000"),
            Hook::pre()
                .name("one-line")
                .content(r"head -c 50000000 /dev/zero | tr '\0' x"),
        ]),
    );
    let mut run = s.antimony(["run", "flood", "--", "-c", "true"]);
    run.cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .stdin(Stdio::null());
    let child = run.cmd.spawn().map_err(|e| e.to_string())?;
    let pid = child.id() as libc::pid_t;
    std::mem::forget(child);
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child with pointers to locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    ensure!(r == pid, "wait4 failed");
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status}"
    );
    // ru_maxrss is in KiB: the largest of antimony and what it waited for
    // (the hooks themselves are small); far below the 100 MB that went through.
    ensure!(
        usage.ru_maxrss < 40 * 1024,
        "peak RSS {} KiB",
        usage.ru_maxrss
    );
    pass()
}

/// A profile whose pre-hook `counter` keeps a count in its state (read
/// from its JSON input).
fn counting(counter: Hook) -> Profile {
    Profile::on("sh").hook(counter.name("counter").stdin())
}

/// The state and record folders cannot be written: the run works, and
/// says so in one warning.
fn unwritable_storage(who: Who) -> TestResult {
    let s = scratch!(who);
    s.profile(
        "stateful",
        &counting(
            Hook::pre().content(r#"cat >/dev/null; echo "{\"state\": {\"update\": {\"n\": 1}}}""#),
        ),
    );
    // A state folder under a regular file can be written by nobody, root included.
    s.write("home/blocker", "");
    let out = s
        .antimony(["run", "stateful", "--", "-c", "echo ran; exit 7"])
        .env("XDG_STATE_HOME", s.path("home/blocker/state"))
        .run();
    ensure!(out.code() == Some(7), "{}", out.show());
    ensure!(out.stdout == "ran\n", "{}", out.show());
    let warnings = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("antimony: warning:"))
        .count();
    ensure!(warnings == 1, "not exactly one warning: {}", out.show());
    ensure!(!out.stderr.contains("antimony: error"), "{}", out.show());
    pass()
}

/// A small tmpfs mounted for a test, unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, size: &str, owner: (u32, u32)) -> Result<Tmpfs, Failed> {
        let opts = format!("size={size},mode=0700,uid={},gid={}", owner.0, owner.1);
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "antimony-test-full"])
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        ensure!(ok, "mount a tmpfs on {}", at.display());
        Ok(Tmpfs(at))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The state and record folders on a full filesystem: the run works and
/// says so in one warning; the state saved before stays whole and no
/// part-written file is left.
fn full_storage(who: Who) -> TestResult {
    let s = scratch!(who);
    if !world().is_root {
        return skip("mounting the small filesystem needs root");
    }
    // Counts its runs in its state, with 8 KiB of padding to write.
    let counter = s.script(
        "bin/counter",
        "#!/bin/bash\n\
         n=$(grep -o '\"n\": *[0-9]*' | grep -o '[0-9]*$')\n\
         pad=$(head -c 8192 /dev/zero | tr '\\0' x)\n\
         echo \"{\\\"state\\\": {\\\"update\\\": {\\\"n\\\": $((${n:-0} + 1)), \\\"pad\\\": \\\"$pad\\\"}}}\"\n",
    );
    s.profile(
        "stateful",
        &counting(Hook::pre().path(&counter.display().to_string())),
    );
    let state = s.mkdir("state");
    let _fs = Tmpfs::mount(state.clone(), "256k", (s.uid, s.gid))?;
    let run = || {
        s.antimony(["run", "stateful", "--", "-c", "echo ran; exit 7"])
            .env("XDG_STATE_HOME", &state)
            .run()
    };
    // Room: the state is saved (n = 1).
    let out = run();
    ensure!(
        out.code() == Some(7) && out.stderr.is_empty(),
        "{}",
        out.show()
    );
    let saved = || -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<_> = walk(&state.join("antimony/state"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| (p.clone(), std::fs::read(&p).unwrap_or_default()))
            .collect();
        files.sort();
        files
    };
    let before = saved();
    ensure!(
        before.len() == 1 && String::from_utf8_lossy(&before[0].1).contains("\"n\": 1"),
        "the state after the first run: {before:?}"
    );
    // Full: a file takes every block left.
    let filler = state.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 1 << 20]);
    let out = run();
    ensure!(out.code() == Some(7), "{}", out.show());
    ensure!(out.stdout == "ran\n", "{}", out.show());
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("antimony: warning:"))
        .collect();
    ensure!(
        warnings.len() == 1 && warnings[0].contains("ENOSPC"),
        "not exactly one warning naming ENOSPC: {}",
        out.show()
    );
    ensure!(!out.stderr.contains("antimony: error"), "{}", out.show());
    ensure!(
        saved() == before,
        "the saved state changed on a full disk: {:?}",
        saved()
    );
    let leftovers: Vec<String> = walk(&state)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .map(|p| p.display().to_string())
        .collect();
    ensure!(leftovers.is_empty(), "part-written files: {leftovers:?}");
    pass()
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// One hundred launches of one profile at once all succeed.
fn parallel(who: Who) -> TestResult {
    let s = scratch!(who);
    s.profile(
        "many",
        &Profile::on("sh").hook(Hook::pre().name("count").stdin().content("cat >/dev/null")),
    );
    let children: Vec<_> = (0..100)
        .map(|i| {
            s.antimony(["run", "many", "--", "-c", &format!("echo {i}")])
                .spawn()
        })
        .collect();
    let mut failed = Vec::new();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() || String::from_utf8_lossy(&out.stdout) != format!("{i}\n") {
            failed.push(format!(
                "{i}: {:?} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    ensure!(failed.is_empty(), "{}", failed.join("\n"));
    pass()
}

/// antimony killed with SIGKILL during the pre-hooks, while the sandbox
/// runs, and during the post-hooks: no process of the sandbox or of the
/// hooks (attached ones and their children included), and no mount, is
/// left on the host.
fn sigkill(who: Who) -> TestResult {
    let s = scratch!(who);
    let before = mounts();
    for stage in ["pre", "running", "post"] {
        let token = unique(&s, &format!("kill9-{stage}"));
        let flag = s.path(&format!("home/{stage}.flag"));
        let f = flag.display();
        // Every process started holds the token in its command line.
        let sleeps_at = |at: &str| {
            format!(r#"if [ "$1" = {at} ]; then (exec -a {token} sleep 600) & touch {f}; wait; fi"#)
        };
        s.profile(
            "killme",
            &Profile::on("sh").hooks([
                Hook::pre().name("attached").attach().content(&format!(
                    "(exec -a {token} sleep 600) & (exec -a {token} sleep 600)"
                )),
                Hook::pre()
                    .name("blocking")
                    .content(&sleeps_at("pre"))
                    .arguments(&[stage]),
                Hook::post()
                    .name("post")
                    .content(&sleeps_at("post"))
                    .arguments(&[stage]),
            ]),
        );
        let program = if stage == "running" {
            format!("(exec -a {token} sleep 600) & touch {f}; wait")
        } else {
            "true".to_string()
        };
        let mut run = s.antimony([
            "run",
            "killme",
            "--rw",
            &s.home().display().to_string(),
            "--program",
            "/bin/bash",
            "--",
            "-c",
            &program,
        ]);
        // What antimony says, for a failure's message.
        let said = s.path(&format!("{stage}.stderr"));
        let file = std::fs::File::create(&said).map_err(|e| e.to_string())?;
        run.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        // Its own process group, so the test's signal goes to antimony only.
        run.cmd.process_group(0);
        let mut child = run.cmd.spawn().map_err(|e| e.to_string())?;
        let reached = wait_until(Duration::from_secs(20), || {
            flag.exists() || matches!(child.try_wait(), Ok(Some(_)))
        }) && flag.exists();
        // And antimony waits again: past registering the hook that touched
        // the flag with the guardian (the gap `hooks::guardian` names is
        // microseconds wide, but a loaded machine can stall antimony in it
        // while the hook runs on).
        let settled = wait_until(Duration::from_secs(10), || asleep(child.id()));
        let busy = if settled {
            String::new()
        } else {
            let read = |f: &str| {
                std::fs::read_to_string(format!("/proc/{}/{f}", child.id())).unwrap_or_default()
            };
            format!(
                "stat {} wchan {} syscall {}",
                read("stat"),
                read("wchan"),
                read("syscall")
            )
        };
        // SAFETY: SIGKILL to our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = child.wait();
        ensure!(
            reached,
            "{stage}: the run never reached the stage; antimony said: {}",
            std::fs::read_to_string(&said).unwrap_or_default()
        );
        ensure!(settled, "{stage}: antimony never waited: {busy}");
        let gone = wait_until(Duration::from_secs(10), || with_token(&token, 0).is_empty());
        let left = with_token(&token, 0);
        let shown = describe(&left);
        // Clean up before failing.
        kill_all(&left);
        ensure!(gone, "{stage}: left behind:{shown}");
    }
    ensure!(mounts() == before, "the host's mount table changed");
    pass()
}

/// The children of `parent` named `comm`.
fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map(|(_, n)| n);
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if name == Some(comm) && ppid == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

/// The guardian (started for a run with host hooks) is not for the
/// signals a terminal or a caller sends: it outlives SIGINT, SIGTERM,
/// SIGHUP, SIGQUIT and SIGUSR1 and keeps its job (antimony then killed
/// with SIGKILL: the attached hook's group is killed). On a normal end it
/// is gone, reaped, when antimony exits.
fn guardian(who: Who) -> TestResult {
    let s = scratch!(who);
    let token = unique(&s, "guardian");
    let flag = s.path("home/running.flag");
    let go = s.path("home/go.flag");
    s.profile(
        "guarded",
        &Profile::on("sh").hook(
            Hook::pre()
                .name("attached")
                .attach()
                .content(&format!("(exec -a {token} sleep 600) & wait")),
        ),
    );
    for end in ["normal", "sigkill"] {
        let _ = std::fs::remove_file(&flag);
        let _ = std::fs::remove_file(&go);
        let program = format!(
            "touch {}; until [ -e {} ]; do sleep 0.02; done",
            flag.display(),
            go.display()
        );
        let mut run = s.antimony([
            "run",
            "guarded",
            "--rw",
            &s.home().display().to_string(),
            "--",
            "-c",
            &program,
        ]);
        run.cmd.stdout(Stdio::null()).stderr(Stdio::null());
        run.cmd.process_group(0);
        let mut child = run.cmd.spawn().map_err(|e| e.to_string())?;
        let pid = child.id();
        let reached = wait_until(Duration::from_secs(20), || flag.exists());
        let guards = children_named(pid, "antimony-guard");
        let result = (|| -> Result<(), Failed> {
            ensure!(reached, "{end}: the program never ran");
            let [g] = guards[..] else {
                return Err(format!("{end}: guardians of {pid}: {guards:?}").into());
            };
            for sig in [
                libc::SIGINT,
                libc::SIGTERM,
                libc::SIGHUP,
                libc::SIGQUIT,
                libc::SIGUSR1,
            ] {
                // SAFETY: a signal to the guardian found above.
                unsafe { libc::kill(g as libc::pid_t, sig) };
            }
            let died = wait_until(Duration::from_millis(300), || !alive(g));
            ensure!(!died, "{end}: the guardian died of a signal");
            if end == "normal" {
                std::fs::write(&go, "").map_err(|e| e.to_string())?;
                let status = child.wait().map_err(|e| e.to_string())?;
                ensure!(status.success(), "{end}: antimony: {status}");
                ensure!(
                    !std::path::Path::new(&format!("/proc/{g}")).exists(),
                    "{end}: the guardian {g} is left after antimony exited"
                );
            } else {
                // SAFETY: SIGKILL to our own child.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                let _ = child.wait();
            }
            let gone = wait_until(Duration::from_secs(10), || with_token(&token, 0).is_empty());
            ensure!(gone, "{end}: the attached hook's group survived");
            Ok(())
        })();
        // Clean up before reporting.
        // SAFETY: SIGKILL to our own child and to what the test started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        let _ = child.wait();
        kill_all(&with_token(&token, 0));
        result?;
    }
    pass()
}

/// antimony killed with SIGKILL while the shipped `encrypted-home` hook has
/// the profile's home mounted (gocryptfs, on the host): its post-hook never
/// runs, and still the home is unmounted, and no gocryptfs or watcher is
/// left, shortly after antimony's end.
fn sigkill_encrypted_home(who: Who) -> TestResult {
    let s = scratch!(who);
    if let Some(missing) = no_gocryptfs() {
        return skip(missing);
    }
    let pass_file = pass_file(&s)?;
    let cipher = s.path("cipher");
    s.profile(
        "vault",
        &encrypted_home_profile(&format!(
            "{{ cipher = {}, passfile = {} }}",
            toml_str(&cipher.display().to_string()),
            toml_str(&pass_file.display().to_string())
        )),
    );
    let home = s.path("home/.local/share/antimony/vault");
    let out = s.mkdir("out");
    let flag = out.join("running");
    let mut run = s.antimony([
        "run",
        "vault",
        "--rw",
        &out.display().to_string(),
        "--",
        "-c",
        &format!("touch {}; sleep 600", flag.display()),
    ]);
    run.cmd.stdout(Stdio::null()).stderr(Stdio::null());
    run.cmd.process_group(0);
    let mut child = run.cmd.spawn().map_err(|e| e.to_string())?;
    let reached = wait_until(Duration::from_secs(20), || flag.exists());
    let was_mounted = mounted(&home);
    // SAFETY: SIGKILL to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let _ = child.wait();
    // gocryptfs and the hook's watcher name this run's home (the other
    // variant of the test runs at the same time, with a home of its own).
    let home_text = home.display().to_string();
    let left = || {
        let mut l = with_token(&cipher.display().to_string(), 0);
        l.extend(with_token(&home_text, 0));
        l.sort_unstable();
        l.dedup();
        l
    };
    let clean = wait_until(Duration::from_secs(15), || {
        !mounted(&home) && left().is_empty()
    });
    // Clean up before reporting.
    let stragglers = left();
    kill_all(&stragglers);
    let still = mounted(&home);
    if still {
        let _ = Command::new("umount").arg("-l").arg(&home).status();
    }
    ensure!(reached, "the program never ran");
    ensure!(
        was_mounted,
        "the home was not mounted while the program ran"
    );
    ensure!(
        clean,
        "after antimony's SIGKILL: home still mounted: {still}, processes left: {stragglers:?}"
    );
    pass()
}

/// A hook that ended but left a child in its process group: antimony keeps
/// the hook's own process unreaped (a zombie, its child) while the group
/// lives, so the group's number cannot be given to another process while
/// antimony (or its guardian) may still signal the group; once the group
/// has ended, the zombie is reaped.
fn group_number_held(who: Who) -> TestResult {
    let s = scratch!(who);
    let token = unique(&s, "held");
    let out = s.mkdir("out");
    let o = out.display();
    s.profile(
        "held",
        &Profile::on("sh").hook(Hook::pre().content(&format!(
            "echo $$ > {o}/leader; (exec -a {token} sleep 600) &"
        ))),
    );
    let mut run = s.antimony([
        "run",
        "held",
        "--rw",
        &o.to_string(),
        "--",
        "-c",
        &format!("touch {o}/running; until [ -e {o}/go ]; do sleep 0.05; done"),
    ]);
    run.cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = run.cmd.spawn().map_err(|e| e.to_string())?;
    let antimony = child.id();
    let running = wait_until(Duration::from_secs(20), || out.join("running").exists());
    let leader: Option<u32> = std::fs::read_to_string(out.join("leader"))
        .ok()
        .and_then(|t| t.trim().parse().ok());
    let seen = leader.map(|l| describe(&[l])).unwrap_or_default();
    // The group's other member goes; then the program ends.
    let sleeper = with_token(&token, 0);
    kill_all(&sleeper);
    let _ = std::fs::write(out.join("go"), "");
    let status = child.wait().map_err(|e| e.to_string())?;
    ensure!(running, "the program never ran");
    let leader = leader.ok_or("the hook wrote no pid")?;
    ensure!(
        sleeper.len() == 1,
        "the hook's child: {sleeper:?}{}",
        describe(&sleeper)
    );
    ensure!(
        seen.contains(&format!(" state Z ppid {antimony} pgrp {leader}")),
        "while its group lived, the hook was not antimony's unreaped child:{seen}"
    );
    ensure!(status.success(), "antimony: {status}");
    ensure!(
        wait_until(Duration::from_secs(10), || !Path::new(&format!(
            "/proc/{leader}"
        ))
        .exists()),
        "the hook's process was never reaped"
    );
    pass()
}
