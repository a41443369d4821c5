//! File forwarding and join-or-start (issue 16, items 1 and 2), with real
//! sandboxes, as root and as an unprivileged user: files the arguments name
//! are visible at their place and their siblings are not; a second run of a
//! `single_instance` profile runs inside the first (its private `/tmp`),
//! with its files forwarded there.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both(
        "forward::a_named_file_is_visible_and_its_siblings_are_not",
        file_and_uri,
    ));
    t.extend(both("forward::modes_and_relative_arguments", modes));
    t.extend(both(
        "forward::the_home_and_antimonys_folders_are_never_forwarded",
        refused,
    ));
    t.extend(both(
        "forward::a_second_run_joins_the_running_instance",
        joins,
    ));
    t.extend(both(
        "forward::two_launches_at_once_make_one_instance",
        at_once,
    ));
    t
}

/// A profile on `/bin/sh` (the test's scripts are its arguments).
fn sh() -> Profile {
    Profile::on("minimal").path("/bin/sh")
}

/// `docs/a.txt`, `docs/b.txt` and `docs/sub/c.txt` in the scratch home.
fn documents(sc: &Scratch) -> String {
    sc.write("home/docs/a.txt", "alpha\n");
    sc.write("home/docs/b.txt", "beta\n");
    sc.write("home/docs/sub/c.txt", "gamma\n");
    s(&sc.path("home/docs"))
}

/// A file given as a path and as a `file://` URI is readable at its place;
/// its sibling is not there; a folder given brings what is in it.
fn file_and_uri(who: Who) -> TestResult {
    let s = scratch!(who);
    let docs = documents(&s);
    s.profile("fw", &sh());
    let script = r#"cat "$1"; cat "${2#file://}"; cat "$3/c.txt"
if [ -e "$(dirname "$1")/b.txt" ]; then echo sibling-visible; fi"#;
    let out = s
        .antimony(["run", "fw", "--", "-c", script, "sh"])
        .arg(format!("{docs}/a.txt"))
        .arg(format!("file://{}", percent(&format!("{docs}/a.txt"))))
        .arg(format!("{docs}/sub"))
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout == "alpha\nalpha\ngamma\n",
        "forwarded files: {}",
        out.show()
    );
    // The same run without forwarding: nothing of docs is there.
    let out = s
        .antimony([
            "run",
            "fw",
            "--forward",
            "off",
            "--",
            "-c",
            "cat \"$1\"",
            "sh",
        ])
        .arg(format!("{docs}/a.txt"))
        .run();
    ensure!(
        out.code() != Some(0) && out.stdout.is_empty(),
        "--forward off still forwarded: {}",
        out.show()
    );
    // --dry-run lists what is forwarded, and only that.
    let out = s
        .antimony(["run", "fw", "--dry-run", "--", "-c", "true", "sh"])
        .arg(format!("{docs}/a.txt"))
        .arg(format!("{docs}/missing.txt"))
        .run();
    ensure!(
        out.code() == Some(0)
            && out.stdout.contains("forwarded (files the arguments name")
            && out.stdout.contains(&format!("ro      {docs}/a.txt (file"))
            && !out.stdout.contains("missing.txt ("),
        "--dry-run: {}",
        out.show()
    );
    pass()
}

/// `%20` for a space: a URI as a file manager writes it.
fn percent(path: &str) -> String {
    path.replace(' ', "%20")
}

/// Read-only by default, writable with `forward = "rw"`; a relative
/// argument from a folder the sandbox does not have becomes absolute.
fn modes(who: Who) -> TestResult {
    let s = scratch!(who);
    let docs = documents(&s);
    s.profile("fw", &sh());
    s.profile("fwrw", &sh().set("files", "forward", toml_str("rw")));
    let write = r#"echo changed > "$1" && echo wrote"#;
    let out = s
        .antimony(["run", "fw", "--", "-c", write, "sh"])
        .arg(format!("{docs}/a.txt"))
        .run();
    ensure!(
        out.code() != Some(0) && out.stderr.contains("Read-only file system"),
        "a read-only forward was written: {}",
        out.show()
    );
    let out = s
        .antimony(["run", "fwrw", "--", "-c", write, "sh"])
        .arg(format!("{docs}/a.txt"))
        .run();
    let now = std::fs::read_to_string(format!("{docs}/a.txt")).unwrap_or_default();
    ensure!(
        out.code() == Some(0) && now == "changed\n",
        "forward = \"rw\": {} (a.txt now {now:?})",
        out.show()
    );
    // From docs (which the sandbox does not have): `b.txt` becomes
    // docs/b.txt, and the program starts in the home.
    let mut run = s.antimony([
        "run",
        "fw",
        "--",
        "-c",
        r#"echo "$1"; cat "$1"; pwd"#,
        "sh",
        "b.txt",
    ]);
    run.cmd.current_dir(&docs);
    let out = run.run();
    let home = crate::support::s(&s.home());
    ensure!(
        out.code() == Some(0) && out.stdout == format!("{docs}/b.txt\nbeta\n{home}\n"),
        "relative argument: {}",
        out.show()
    );
    pass()
}

/// The home itself, a folder above it and anything in antimony's own
/// folders are not forwarded, with a warning that names them.
fn refused(who: Who) -> TestResult {
    let s = scratch!(who);
    documents(&s);
    s.profile("fw", &sh());
    let home = crate::support::s(&s.home());
    let profile = crate::support::s(&s.path("home/.config/antimony/profiles/fw.toml"));
    let out = s
        .antimony([
            "run",
            "fw",
            "--",
            "-c",
            r#"ls "$1/docs" "$2" 2>&1 | head -3; true"#,
            "sh",
        ])
        .arg(&home)
        .arg(&profile)
        .arg("/etc/shadow")
        .run();
    ensure!(
        out.code() == Some(0)
            && !out.stdout.contains("a.txt")
            && !out.stdout.contains("fw.toml\n")
            && out.stderr.contains(&format!(
                "{home} is not forwarded to the sandbox: it holds your whole home"
            ))
            && out.stderr.contains("one of antimony's own folders")
            && out
                .stderr
                .contains("/etc/shadow is not forwarded to the sandbox: it is (or holds) /etc/shadow, one of the system's secrets"),
        "home and profile arguments: {}",
        out.show()
    );
    pass()
}

/// The first run of a `single_instance` profile waits; the second runs in
/// it: it sees the first's private /tmp, the file it names (forwarded into
/// the running sandbox, its argument rewritten), and its exit status is
/// the second run's. `--new-instance` starts a separate sandbox.
fn joins(who: Who) -> TestResult {
    let f = fixture!(who);
    let docs = documents(&f.s);
    f.profile("one", &sh().set("sandbox", "single_instance", "true"));
    let first = Background::start(f.run(
        "one",
        &format!(
            "echo first > /tmp/mark; echo $$ > @OUT@/first; {}",
            await_until("[ -e /tmp/stop ]") + "; sleep 0.5"
        ),
    ));
    let started = Instant::now();
    while !f.out("first").exists() {
        ensure!(started.elapsed() < HANG, "the first instance did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let second =
        f.s.antimony([
            "run",
            "one",
            "--",
            "-c",
            r#"cat /tmp/mark; echo "$1"; cat "$1"; ls "$(dirname "$1")"; exit 7"#,
            "sh",
        ])
        .arg(format!("{docs}/a.txt"))
        .run();
    let inside = second.stdout.lines().nth(1).unwrap_or_default().to_string();
    ensure!(
        second.code() == Some(7)
            && second.stdout.starts_with("first\n/run/antimony/files/")
            && inside.ends_with("-1/a.txt")
            && second.stdout.ends_with("alpha\na.txt\n"),
        "the second run: {}",
        second.show()
    );
    // One instance runs.
    let ps = f.s.antimony(["ps", "--json"]).run();
    let listed = ps.stdout.matches("\"profile\":\"one\"").count()
        + ps.stdout.matches("\"profile\": \"one\"").count();
    ensure!(listed == 1, "ps: {}", ps.show());
    // --new-instance: a sandbox of its own, without the first's /tmp.
    let other =
        f.s.antimony(["run", "one", "--new-instance", "--", "-c", "cat /tmp/mark"])
            .run();
    ensure!(
        other.code() != Some(0) && other.stdout.is_empty(),
        "--new-instance joined: {}",
        other.show()
    );
    // Nothing of the caller's crosses: a host folder as its stdin is not
    // the joined command's (it gets a pipe of antimony's relay).
    let outside = f.s.mkdir("outside");
    let folder = std::fs::File::open(&outside).map_err(|e| e.to_string())?;
    let sneaky =
        f.s.antimony([
            "run",
            "one",
            "--",
            "-c",
            "echo x > /proc/self/fd/0/pwned; readlink /proc/self/fd/0",
        ])
        .stdin_from(std::process::Stdio::from(folder))
        .run();
    ensure!(
        !outside.join("pwned").exists() && sneaky.stdout.starts_with("pipe:"),
        "the joined command reached the caller's stdin folder: {}",
        sneaky.show()
    );
    // The forwarded file stays for the instance's life; the first ends.
    let stop =
        f.s.antimony([
            "run",
            "one",
            "--",
            "-c",
            &format!("cat {inside} && touch /tmp/stop"),
        ])
        .run();
    ensure!(
        stop.code() == Some(0) && stop.stdout == "alpha\n",
        "the forwarded file later: {}",
        stop.show()
    );
    let mut first = first;
    let out = first.finish()?;
    ensure!(out.code() == Some(0), "the first run: {}", out.show());
    ensure!(!Path::new(&inside).exists(), "{inside} exists on the host");
    pass()
}

/// Two launches of a `single_instance` profile at the same moment (a
/// double click): one instance, the second run's command inside it.
fn at_once(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile("one", &sh().set("sandbox", "single_instance", "true"));
    let script = format!(
        "echo x >> /tmp/n; echo x >> @OUT@/started; {}",
        await_until("[ -e /tmp/stop ]") + "; sleep 0.5"
    );
    let mut a = Background::start(f.run("one", &script));
    let mut b = Background::start(f.run("one", &script));
    let started = Instant::now();
    while f.lines("started").len() < 2 {
        ensure!(started.elapsed() < HANG, "both did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ps = f.s.antimony(["ps"]).run();
    let listed = ps.stdout.lines().filter(|l| l.contains(" one ")).count();
    let count =
        f.s.antimony(["run", "one", "--", "-c", "wc -l < /tmp/n; touch /tmp/stop"])
            .run();
    ensure!(listed == 1, "ps: {}", ps.show());
    let (a, b) = (a.finish()?, b.finish()?);
    ensure!(
        count.code() == Some(0) && count.stdout.trim() == "2",
        "two launches at once: {} (first: {}; second: {})",
        count.show(),
        a.show(),
        b.show()
    );
    // The joined command ends with the instance, which may be first.
    let fine = |o: &Output| {
        o.code() == Some(0)
            || (o.code() == Some(125) && o.stderr.contains("ended while the command ran"))
    };
    ensure!(
        fine(&a) && fine(&b) && (a.code() == Some(0) || b.code() == Some(0)),
        "first: {}; second: {}",
        a.show(),
        b.show()
    );
    pass()
}
