//! Reusable hooks (`use = "NAME"`): the shipped `wait-for-port`,
//! `notify-on-failure` and `encrypted-home`, and the user's own
//! definitions with their config defaults, overrides and placeholders; bad
//! uses are errors before anything runs.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::{records_of, wait_for_port};
use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = both_each(
        "hooks::reusable",
        &[
            (
                "wait_for_port_blocks_until_the_port_accepts",
                wait_for_port_blocks,
            ),
            (
                "wait_for_port_fails_after_its_timeout",
                wait_for_port_timeout,
            ),
            ("notify_on_failure_runs_only_on_failure", notify_on_failure),
            (
                "encrypted_home_mounts_gocryptfs_over_the_home",
                encrypted_home,
            ),
            (
                "user_hooks_config_overrides_and_unknown_keys",
                user_reusable,
            ),
        ],
    );
    t.push(case(
        "hooks::reusable::encrypted_home_names_an_unusable_dev_fuse::user",
        encrypted_home_unusable_fuse,
    ));
    t
}

/// A free TCP port on the loopback (nothing listens there once this returns).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// `use = "wait-for-port"` blocks the launch until the port accepts a
/// connection: the listener comes up a moment after antimony starts, and
/// the program runs only after it.
fn wait_for_port_blocks(who: Who) -> TestResult {
    let f = fixture!(who);
    let port = free_port()?;
    f.profile(
        "waiter",
        &wait_for_port(&format!("{{ port = {port}, timeout = 25 }}")),
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
        &wait_for_port(&format!("{{ port = {port}, timeout = 1 }}")),
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
        &Profile::on("sh").hook(
            Hook::post()
                .uses("notify-on-failure")
                .config(r#"{ title = "my title" }"#),
        ),
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

/// Where `/dev/fuse` is `0600 root` (a machine without udev), the user's
/// `encrypted-home` fails before gocryptfs runs, and antimony's error names
/// the device, its mode and the command that fixes it (not fusermount3's
/// "failed to open /dev/fuse"). The user runs antimony in a mount namespace
/// where a `0600` node with FUSE's numbers covers `/dev/fuse`.
fn encrypted_home_unusable_fuse() -> TestResult {
    if world().user.is_none() {
        return skip("no unprivileged test user");
    }
    if !world().is_root {
        return skip("needs root to cover /dev/fuse in a mount namespace");
    }
    if !installed("gocryptfs") || !installed("fusermount3") {
        return skip("gocryptfs or fusermount3 is missing (apt-get install gocryptfs fuse3)");
    }
    let root = fixture!(Who::Root);
    let us = scratch!(Who::User);
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
        &Profile::on("sh")
            .home("Enabled")
            .hook(Hook::pre().uses("encrypted-home").config(&format!(
                "{{ passfile = {} }}",
                toml_str(&s(&us.path("pass")))
            ))),
    );
    let out = antimony_with_bind(&root.s, &node, "/dev/fuse", Some(&us))
        .args(["run", "vault", "--", "-c", "echo program-ran"])
        .run();
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
    if let Some(missing) = no_gocryptfs() {
        return skip(missing);
    }
    let f = fixture!(who);
    pass_file(&f.s)?;
    let home = f.s.path("home/.local/share/antimony/vault");
    let _unmount = Unmount(home.clone());
    let default_home = f.s.path("home/.local/share/antimony/vault-default");
    let _unmount_default = Unmount(default_home.clone());
    // The cipher folder by default: antimony's own, out of any sandbox's reach.
    f.profile(
        "vault-default",
        &encrypted_home_profile(r#"{ passfile = "@S@/pass" }"#),
    );
    f.profile(
        "vault",
        &encrypted_home_profile(r#"{ cipher = "@S@/cipher", passfile = "@S@/pass" }"#).hook(
            Hook::started().content(
                r#"mountpoint -q "$ANTIMONY_HOME" && echo mounted-while-running >> @OUT@/log"#,
            ),
        ),
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
        &Profile::on("sh").hooks([
            Hook::pre().uses("greet").config(r#"{ who = "there" }"#),
            Hook::pre()
                .name("named")
                .uses("greet")
                .config(r#"{ greeting = "hi", who = "you" }"#),
            Hook::pre().uses("wait-for-port"),
            Hook::pre().content(r#"echo "instance $ANTIMONY_INSTANCE" >> @OUT@/log"#),
            Hook::post().uses("greet"),
        ]),
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
    for (name, hook, says) in [
        (
            "bad-key",
            Hook::pre().uses("greet").config(r#"{ whom = "x" }"#),
            vec!["`whom` is not a setting of hook `greet`", "greeting, who"],
        ),
        (
            "bad-shipped-key",
            Hook::post()
                .uses("notify-on-failure")
                .config(r#"{ titel = "x" }"#),
            vec!["`titel` is not a setting of hook `notify-on-failure`"],
        ),
        (
            "no-such-event",
            Hook::pre().uses("notify-on-failure"),
            vec!["hook `notify-on-failure` has nothing to run at `pre`"],
        ),
        (
            "bad-name",
            Hook::pre().uses("no-such-hook"),
            vec!["no-such-hook"],
        ),
        (
            "no-home",
            Hook::pre().uses("encrypted-home"),
            vec!["{home}", "home.policy"],
        ),
    ] {
        f.profile(
            name,
            &Profile::on("sh").hooks([Hook::pre().logs("ran"), hook]),
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
