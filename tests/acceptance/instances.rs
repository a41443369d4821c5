//! Running instances (issue 5): `antimony ps`, `enter`, `stop` and
//! `run --status-fd`, with real instances, as root and as an unprivileged
//! user.
//!
//! An instance is an `antimony run` left running in the background (most
//! run `sleep`, with the escape probe bound at `/probe` and the scratch's
//! `out` folder bound read-write at the same path). Hooks and programs
//! append what they see to `out/log`; the tests check the recorded order,
//! never an absolute time. Timeouts only catch hangs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both("instances::ps_lists_running_instances", ps_lists));
    t.extend(both(
        "instances::enter_has_the_instance_confinement",
        enter_confinement,
    ));
    t.extend(both(
        "instances::enter_never_passes_a_host_folder_given_as_stdin",
        enter_folder_stdin,
    ));
    t.extend(both("instances::enter_escape_files", enter_escape_files));
    t.extend(both(
        "instances::enter_escape_processes_and_kernel",
        enter_escape_kernel,
    ));
    t.extend(both(
        "instances::enter_escape_network",
        enter_escape_network,
    ));
    t.extend(both(
        "instances::enter_escape_terminal_injection",
        enter_escape_terminal,
    ));
    t.extend(both("instances::enter_escape_setuid", enter_escape_setuid));
    t.extend(both(
        "instances::enter_escape_host_processes",
        enter_escape_host_processes,
    ));
    t.extend(both(
        "instances::enter_escape_read_secrets",
        enter_escape_read_secrets,
    ));
    t.extend(both(
        "instances::enter_escape_inherited_descriptor",
        enter_escape_inherited_descriptor,
    ));
    t.extend(both(
        "instances::enter_escape_file_capabilities",
        enter_escape_file_capabilities,
    ));
    t.extend(both(
        "instances::enter_escape_proc_sys_and_sys",
        enter_escape_proc_sys,
    ));
    t.extend(both(
        "instances::enter_escape_orphans_die_with_the_instance",
        enter_escape_orphans,
    ));
    t.extend(both(
        "instances::enter_exit_status_and_stdio",
        enter_status_and_stdio,
    ));
    t.extend(both(
        "instances::enter_signals_reach_the_command",
        enter_signals,
    ));
    t.extend(both(
        "instances::enter_client_killed_hangs_up_the_command",
        enter_hangup,
    ));
    t.extend(both(
        "instances::stop_runs_stopping_hooks_term_and_post_hooks",
        stop_graceful,
    ));
    t.extend(both(
        "instances::stop_kills_after_the_grace_period",
        stop_after_grace,
    ));
    t.extend(both(
        "instances::stop_client_killed_costs_the_supervisor_nothing",
        stop_client_killed,
    ));
    t.extend(both(
        "instances::profile_names_stop_all_and_enter_none",
        by_profile,
    ));
    t.extend(both(
        "instances::stale_record_after_kill_9_is_cleaned",
        stale_record,
    ));
    t.extend(both(
        "instances::registration_is_never_taken_for_stale",
        registration_race,
    ));
    t.extend(both(
        "instances::forged_records_are_refused",
        forged_records,
    ));
    t.extend(both(
        "instances::registry_not_private_is_not_used",
        registry_not_private,
    ));
    t.extend(both(
        "instances::clients_in_another_user_namespace_are_refused",
        other_user_namespace,
    ));
    t.extend(both(
        "instances::registry_is_not_reachable_from_a_sandbox",
        registry_masked,
    ));
    t.extend(both(
        "instances::registry_bound_directly_is_not_reachable",
        registry_bound_directly,
    ));
    t.extend(both(
        "instances::fallback_registry_is_not_reachable_from_a_sandbox",
        fallback_registry_masked,
    ));
    t.extend(both(
        "instances::status_fd_reports_start_and_end",
        status_fd_lines,
    ));
    t.extend(both(
        "instances::status_fd_reports_a_kill_after_the_grace",
        status_fd_kill,
    ));
    t.extend(both(
        "instances::status_fd_failure_before_start_reports_no_exit",
        status_fd_no_start,
    ));
    t.extend(both(
        "instances::status_fd_bad_descriptor_is_an_error",
        status_fd_bad,
    ));
    t
}

// ---------------------------------------------------------------- fixture

/// The shared [`Fixture`] (its `out` folder, which instances bind
/// read-write at the same path), with what instances need on top. Its own
/// `run` takes the place of the fixture's.
struct Fx(Fixture);

impl std::ops::Deref for Fx {
    type Target = Fixture;

    fn deref(&self) -> &Fixture {
        &self.0
    }
}

impl Fx {
    fn new(who: Who) -> Result<Fx, TestResult> {
        Fixture::new(who).map(Fx)
    }

    /// The instance registry.
    fn registry(&self) -> PathBuf {
        self.s.path("runtime/antimony/instances")
    }

    /// `antimony run PROFILE --ro PROBE=/probe --rw OUT EXTRA…`
    fn run(&self, profile: &str, extra: &[&str]) -> Run {
        // The probe's targets are its arguments for the test's convenience
        // only: nothing they name is forwarded (see escape.rs `run_in`).
        let mut args: Vec<String> = vec![
            "run".into(),
            profile.into(),
            "--ro".into(),
            format!("{}=/probe", world().probe.display()),
            "--rw".into(),
            s(&self.out),
            "--forward".into(),
            "off".into(),
        ];
        args.extend(extra.iter().map(|a| self.subst(a)));
        self.s.antimony(args)
    }

    /// The usual instance: the minimal sandbox running `sleep 120`.
    fn sleeper(&self) -> Result<Instance, Failed> {
        Instance::start(
            self,
            self.run("minimal", &["--program", "/bin/sleep", "--", "120"]),
        )
    }

    /// `antimony enter TARGET -- CMD…`
    fn enter(&self, target: &str, cmd: &[&str]) -> Run {
        let mut args = vec!["enter".to_string(), target.to_string(), "--".to_string()];
        args.extend(cmd.iter().map(|a| self.subst(a)));
        self.s.antimony(args)
    }

    /// The probe through `enter`.
    fn probe(&self, inst: &Instance, sub: &[&str]) -> Output {
        let mut cmd = vec!["/probe"];
        cmd.extend_from_slice(sub);
        self.enter(&inst.id, &cmd).run()
    }

    fn ps_json(&self) -> Result<Vec<Value>, Failed> {
        let out = self.s.antimony(["ps", "--json"]).run();
        ensure!(
            out.code() == Some(0) && out.stderr.is_empty(),
            "ps --json: {}",
            out.show()
        );
        let v: Value = serde_json::from_str(&out.stdout)
            .map_err(|e| format!("ps --json is not JSON ({e}): {}", out.show()))?;
        match v {
            Value::Array(a) => Ok(a),
            _ => Err(format!("ps --json is not an array: {}", out.show()).into()),
        }
    }

    fn listed_ids(&self) -> Result<Vec<String>, Failed> {
        Ok(self
            .ps_json()?
            .iter()
            .filter_map(|v| v["instance"].as_str().map(str::to_string))
            .collect())
    }
}

/// An `antimony run` in the background, once `ps` lists it with its
/// program running. Dropping it SIGKILLs antimony (the sandbox dies with
/// it).
struct Instance {
    child: Child,
    stdout: mpsc::Receiver<Vec<u8>>,
    stderr: mpsc::Receiver<Vec<u8>>,
    /// The record, as `ps --json` shows it.
    info: Value,
    id: String,
    /// The program's PID on the host.
    pid: u32,
}

impl Instance {
    fn start(fx: &Fx, run: Run) -> Result<Instance, Failed> {
        Instance::start_child(fx, run.spawn())
    }

    fn start_child(fx: &Fx, mut child: Child) -> Result<Instance, Failed> {
        let stdout = reader(child.stdout.take().expect("piped"));
        let stderr = reader(child.stderr.take().expect("piped"));
        let antimony = child.id();
        let mut inst = Instance {
            child,
            stdout,
            stderr,
            info: Value::Null,
            id: String::new(),
            pid: 0,
        };
        let deadline = Instant::now() + HANG;
        loop {
            if let Ok(Some(status)) = inst.child.try_wait() {
                let out = inst.output(status);
                return Err(
                    format!("the instance ended before it was listed: {}", out.show()).into(),
                );
            }
            let found = fx.ps_json()?.into_iter().find(|v| {
                v["antimony_pid"].as_u64() == Some(u64::from(antimony))
                    && v["pid"].as_u64().is_some_and(|p| p != 0)
            });
            if let Some(v) = found {
                inst.id = v["instance"].as_str().unwrap_or_default().to_string();
                inst.pid = v["pid"].as_u64().unwrap_or_default() as u32;
                inst.info = v;
                return Ok(inst);
            }
            ensure!(
                Instant::now() < deadline,
                "the instance of antimony {antimony} was never listed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn antimony_pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_exit(&mut self.child, timeout)
    }

    /// antimony's output, once it has exited.
    fn output(&self, status: ExitStatus) -> Output {
        let text = |rx: &mpsc::Receiver<Vec<u8>>| {
            rx.recv_timeout(Duration::from_secs(5))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|_| "(output did not end)".into())
        };
        Output {
            status,
            stdout: text(&self.stdout),
            stderr: text(&self.stderr),
            timed_out: false,
        }
    }

    /// Waits for antimony to exit and returns its output.
    fn finish(&mut self) -> Result<Output, Failed> {
        match self.wait_exit(HANG) {
            Some(status) => Ok(self.output(status)),
            None => Err(format!("antimony of instance {} did not exit", self.id).into()),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process's start time (clock ticks since boot, /proc/PID/stat field 22).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// A field of /proc/PID/status.
fn status_field(pid: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == key).then(|| v.trim().to_string())
        })
}

/// Like `blocked`, for a run antimony may warn about.
fn blocked_warned(what: &str, out: &Output) -> Result<String, Failed> {
    let l = line(out)?;
    ensure!(
        out.code() == Some(0)
            && l.starts_with("BLOCKED ")
            && out
                .stderr
                .lines()
                .all(|w| w.starts_with("antimony: warning: ")),
        "{what}: not blocked: {}",
        out.show()
    );
    Ok(l.to_string())
}

/// The one `antimony: error:` line of a refusal (exit 125), naming `words`.
fn refused(what: &str, out: &Output, words: &[&str]) -> Result<(), Failed> {
    ensure!(
        out.code() == Some(125) && out.stderr.contains("antimony: error: "),
        "{what}: not refused: {}",
        out.show()
    );
    for w in words {
        ensure!(
            out.stderr.contains(w),
            "{what}: the error does not say `{w}`: {}",
            out.show()
        );
    }
    ensure!(!out.stderr.contains("panicked"), "{what}: {}", out.show());
    Ok(())
}

/// Live host processes in the PID namespace `ns` whose command line is
/// exactly `argv`.
fn in_namespace(ns: &Path, argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let Ok(ns) = std::fs::read_link(ns) else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| alive(pid))
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok() == Some(want.clone()))
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok() == Some(ns.clone()))
        .collect()
}

/// A pipe; both ends close-on-exec.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills a two-element array; each end is owned at once.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

/// `antimony run PROFILE --status-fd 3 …` (`Fx::run`'s arguments) in the
/// background, its status lines arriving on the receiver (which ends when
/// the descriptor closes).
fn with_status_fd(f: &Fx, profile: &str, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let (r, w) = pipe();
    let mut args = vec!["--status-fd", "3"];
    args.extend_from_slice(extra);
    let mut run = f.run(profile, &args);
    pass_fd(&mut run, w.as_raw_fd(), 3);
    let child = run.spawn();
    drop(w);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(std::fs::File::from(r)).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

// --------------------------------------------------------------------- ps

/// `ps --json` lists each running instance with exactly the documented
/// keys and types, the values the instance really has; `ps` shows the same
/// in a table; an instance disappears from both when it ends.
fn ps_lists(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    ensure!(f.ps_json()?.is_empty(), "instances before any ran");
    let out = f.s.antimony(["ps"]).run();
    ensure!(
        out.code() == Some(0) && out.stdout.lines().count() == 1,
        "ps without instances: {}",
        out.show()
    );
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let before = now();
    let mut a = f.sleeper()?;
    f.profile(
        "second",
        "inherits = [\"minimal\"]\npath = \"/bin/sleep\"\narguments = [\"120\"]\n",
    );
    let b = Instance::start(&f, f.s.antimony(["run", "second"]))?;
    let after = now();

    let list = f.ps_json()?;
    ensure!(list.len() == 2, "not two instances: {list:?}");
    let keys: BTreeSet<&str> = [
        "instance",
        "profile",
        "pid",
        "antimony_pid",
        "antimony_start",
        "started_at",
        "uid",
    ]
    .into_iter()
    .collect();
    for (v, inst, profile) in [(&list[0], &a, "minimal"), (&list[1], &b, "second")] {
        let obj = v.as_object().ok_or(format!("not an object: {v}"))?;
        let got: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        ensure!(got == keys, "keys {got:?}, documented {keys:?}");
        let id = v["instance"].as_str().ok_or(format!("instance: {v}"))?;
        ensure!(
            id.len() == 16 && id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
            "instance id {id:?}"
        );
        ensure!(
            id == inst.id,
            "ps lists {id}, not {} first: {list:?}",
            inst.id
        );
        ensure!(v["profile"] == profile, "profile: {v}");
        for k in ["pid", "antimony_pid", "antimony_start", "started_at", "uid"] {
            ensure!(v[k].is_u64(), "{k} is not an unsigned integer: {v}");
        }
        ensure!(
            v["antimony_pid"].as_u64() == Some(u64::from(inst.antimony_pid())),
            "antimony_pid: {v}"
        );
        ensure!(
            v["antimony_start"].as_u64() == start_time(inst.antimony_pid()),
            "antimony_start: {v}"
        );
        ensure!(v["uid"].as_u64() == Some(u64::from(f.s.uid)), "uid: {v}");
        let started = v["started_at"].as_u64().unwrap_or_default();
        ensure!(
            before <= started && started <= after,
            "started_at {started} is not within the start ({before}..{after})"
        );
        // pid is the program's: `sleep`, a child of the sandbox's init,
        // itself a child of this antimony.
        let pid = inst.pid.to_string();
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        ensure!(comm.trim() == "sleep", "pid {pid} is {comm:?}");
        let init = status_field(&pid, "PPid").unwrap_or_default();
        ensure!(
            status_field(&init, "PPid") == Some(inst.antimony_pid().to_string()),
            "pid {pid} is not the program of antimony {}",
            inst.antimony_pid()
        );
        let nspid = status_field(&pid, "NSpid").unwrap_or_default();
        ensure!(
            nspid.split_whitespace().count() == 2,
            "pid {pid} is not in the sandbox's PID namespace: NSpid {nspid}"
        );
    }

    // Each key is documented in antimony-ps(1), under JSON OUTPUT.
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/antimony-ps.1"))
        .map_err(|e| format!("read man/antimony-ps.1: {e}"))?;
    let json_output = page
        .split(".SH \"JSON OUTPUT\"")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH ").next())
        .ok_or("no JSON OUTPUT section in man/antimony-ps.1")?;
    for key in &keys {
        let tag = format!(".B {key}");
        ensure!(
            json_output.lines().any(|l| l == tag),
            "`{key}` is not documented under JSON OUTPUT in man/antimony-ps.1"
        );
    }

    // The table: a header and one row per instance, in the same order.
    let out = f.s.antimony(["ps"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let lines: Vec<&str> = out.stdout.lines().collect();
    ensure!(lines.len() == 3, "ps: {}", out.show());
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    ensure!(
        header == ["INSTANCE", "PROFILE", "PID", "STARTED", "(UTC)", "UPTIME"],
        "header: {}",
        lines[0]
    );
    for (row, v) in lines[1..].iter().zip(&list) {
        let cols: Vec<&str> = row.split_whitespace().collect();
        ensure!(cols.len() == 6, "row: {row}");
        ensure!(
            cols[0] == v["instance"] && cols[1] == v["profile"],
            "row {row} for {v}"
        );
        ensure!(
            cols[2].parse::<u64>().ok() == v["pid"].as_u64(),
            "row {row} for {v}"
        );
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M:%S", "-d"])
            .arg(format!("@{}", v["started_at"]))
            .output()
            .map_err(|e| format!("date: {e}"))?;
        let date = String::from_utf8_lossy(&date.stdout).trim().to_string();
        ensure!(
            format!("{} {}", cols[3], cols[4]) == date,
            "row {row}: started is not {date}"
        );
        let up = cols[5];
        let secs = up.strip_suffix('s').and_then(|n| n.parse::<u64>().ok());
        ensure!(
            secs.is_some_and(|n| n <= now() - before + 1),
            "row {row}: uptime {up} (the instances are seconds old)"
        );
    }

    // The first ends (a SIGTERM to antimony): it is no longer listed.
    signal(&a.child, libc::SIGTERM);
    let out = a.finish()?;
    ensure!(out.code() == Some(143), "{}", out.show());
    let left = f.listed_ids()?;
    ensure!(left == [b.id.clone()], "after the first ended: {left:?}");
    ensure!(
        !f.registry().join(&a.id).exists(),
        "the ended instance's record is still there"
    );
    drop(b);
    pass()
}

// ------------------------------------------------------------------ enter

/// A program that, for each PID the test writes to `@OUT@/ask`, tries
/// `kill -0` on it itself and writes the outcome to `@OUT@/answer`
/// (`PID signalled`, or `PID refused: ` and the shell's message).
const SIGNALLER: &str = "while :; do \
    if [ -e @OUT@/ask ]; then \
        p=$(cat @OUT@/ask); rm -f @OUT@/ask; \
        if kill -0 \"$p\" 2>@OUT@/said; then echo \"$p signalled\"; \
        else echo \"$p refused: $(cat @OUT@/said)\"; fi >@OUT@/answer.new; \
        mv @OUT@/answer.new @OUT@/answer; \
    fi; \
    sleep 0.02; \
done";

/// Has the [`SIGNALLER`] program try to signal `pid` (a PID in the
/// sandbox's namespace) and returns its answer.
fn ask_signal(f: &Fx, pid: &str) -> Result<String, Failed> {
    let answer = f.out("answer");
    let _ = std::fs::remove_file(&answer);
    std::fs::write(f.out("ask.new"), format!("{pid}\n")).map_err(|e| format!("ask: {e}"))?;
    std::fs::rename(f.out("ask.new"), f.out("ask")).map_err(|e| format!("ask: {e}"))?;
    ensure!(
        wait_until(HANG, || answer.exists()),
        "the program never answered whether it may signal {pid}"
    );
    let text = std::fs::read_to_string(&answer).map_err(|e| format!("answer: {e}"))?;
    let _ = std::fs::remove_file(&answer);
    Ok(text.trim().to_string())
}

/// The inner PID (last NSpid field) of a host process.
fn inner_pid(pid: u32) -> Option<String> {
    status_field(&pid.to_string(), "NSpid")?
        .split_whitespace()
        .last()
        .map(str::to_string)
}

/// The entered command is in exactly the program's namespaces and root,
/// holds no capability, has NoNewPrivs and the same seccomp filters, is in
/// the same Landlock domain (the program may signal it, which it could not
/// do to a process of another domain, as the control shows), has the
/// sandbox's environment (plus ANTIMONY_NAME and ANTIMONY_INSTANCE), starts
/// in the sandbox's home, and gets no descriptor but its stdin, stdout and
/// stderr.
fn enter_confinement(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    // The program is the signaller, which the Landlock part below uses.
    let inst = Instance::start(
        &f,
        f.run("minimal", &["--program", "/bin/sh", "--", "-c", SIGNALLER]),
    )?;
    let pid = inst.pid.to_string();

    // Namespaces: every one, compared with the program's links.
    let names = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];
    let script = names
        .iter()
        .map(|n| format!("echo {n} $(readlink /proc/self/ns/{n})"))
        .collect::<Vec<_>>()
        .join("; ");
    let out = f.enter(&inst.id, &["/bin/sh", "-c", &script]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    for n in names {
        let program = std::fs::read_link(format!("/proc/{pid}/ns/{n}"))
            .map_err(|e| format!("read the program's {n} namespace: {e}"))?;
        let want = format!("{n} {}", program.display());
        ensure!(
            out.stdout.lines().any(|l| l == want),
            "the entered command's {n} namespace is not the program's ({want}): {}",
            out.show()
        );
        let host = std::fs::read_link(format!("/proc/self/ns/{n}")).map_err(|e| e.to_string())?;
        ensure!(
            n == "time" || host != program,
            "the program shares the host's {n} namespace"
        );
    }

    // The root: the same folder as the program's.
    let out = f.enter(&inst.id, &["stat", "-c", "%d:%i", "/"]).run();
    let root = std::fs::metadata(format!("/proc/{pid}/root")).map_err(|e| e.to_string())?;
    ensure!(
        out.code() == Some(0) && out.stdout.trim() == format!("{}:{}", root.dev(), root.ino()),
        "the entered command's root is not the program's ({}:{}): {}",
        root.dev(),
        root.ino(),
        out.show()
    );

    // Credentials, capabilities, no_new_privs, seccomp.
    let out = f.enter(&inst.id, &["cat", "/proc/self/status"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let inside: BTreeMap<&str, &str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k, v.trim()))
        .collect();
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        ensure!(
            inside.get(cap) == Some(&"0000000000000000"),
            "{cap} {:?}",
            inside.get(cap)
        );
    }
    ensure!(inside.get("NoNewPrivs") == Some(&"1"), "{}", out.stdout);
    ensure!(inside.get("Seccomp") == Some(&"2"), "{}", out.stdout);
    for key in ["Seccomp_filters", "Uid", "Gid", "NoNewPrivs", "CapBnd"] {
        let program = status_field(&pid, key);
        ensure!(
            inside.get(key).map(|v| v.to_string()) == program,
            "{key}: entered {:?}, program {program:?}",
            inside.get(key)
        );
    }

    // Landlock: the sandbox's domain. The program and the entered command
    // each have a domain of their own nested in it (so that neither can
    // look into the other: escape::descriptors_and_memory_of_a_sibling),
    // and the sandbox's layer scopes signals to the processes of its
    // domain and the ones nested in it: the entered command may signal the
    // program, and Landlock holds for it (the write below).
    let inner = status_field(&pid, "NSpid")
        .and_then(|v| v.split_whitespace().last().map(str::to_string))
        .ok_or("no NSpid")?;
    let out = f
        .enter(
            &inst.id,
            &[
                "/bin/sh",
                "-c",
                &format!("kill -0 {inner} && echo signalled"),
            ],
        )
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout.trim() == "signalled",
        "the entered command cannot signal the program ({inner}): {}",
        out.show()
    );
    // The decisive direction: the program signals an entered command.
    // Signal scoping lets a process signal only processes of the domain
    // that scopes (the sandbox's) or of one nested in it, so an entered
    // command that was unconfined, or confined in a domain outside the
    // sandbox's, could not be signalled.
    let target = Reaped(
        f.enter(
            &inst.id,
            &[
                "/bin/sh",
                "-c",
                "echo $$ >@OUT@/entered.new; mv @OUT@/entered.new @OUT@/entered; exec sleep 120",
            ],
        )
        .spawn(),
    );
    ensure!(
        wait_until(HANG, || pid_in(&f, "entered").is_some()),
        "the entered command never wrote its PID"
    );
    let entered = pid_in(&f, "entered").unwrap_or_default().to_string();
    let answer = ask_signal(&f, &entered)?;
    ensure!(
        answer == format!("{entered} signalled"),
        "the program cannot signal the entered command ({entered}): {answer}"
    );
    drop(target);
    // Control: the program cannot signal a process of the same user in its
    // PID namespace that is outside its domain. No such process exists in
    // an instance (init confines itself before it forks anything, and host
    // processes cannot be named from inside the PID namespace), so the test
    // puts one there: a `sleep` that nsenter starts from the host in the
    // instance's PID namespace, with the program's uid and gid (so that
    // the permission check on uids would allow the signal).
    let ids = |key: &str| {
        status_field(&pid, key)
            .and_then(|v| v.split_whitespace().next().map(str::to_string))
            .ok_or(format!("no {key} for the program"))
    };
    let (uid, gid) = (ids("Uid")?, ids("Gid")?);
    let outsider = Reaped(
        std::process::Command::new("nsenter")
            .args([
                "--target", &pid, "--pid", "--setuid", &uid, "--setgid", &gid,
            ])
            .args(["--", "sleep", "117"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("nsenter: {e}"))?,
    );
    let ns = PathBuf::from(format!("/proc/{pid}/ns/pid"));
    let found = wait_until(HANG, || in_namespace(&ns, &["sleep", "117"]).len() == 1);
    let host = in_namespace(&ns, &["sleep", "117"]);
    // (If the test fails before the kill below, the outsider, in the
    // instance's PID namespace, dies with the instance.)
    ensure!(
        found,
        "nsenter did not start a process in the instance's PID namespace: {host:?}"
    );
    let outside = inner_pid(host[0]).ok_or("no NSpid for the outsider")?;
    let answer = ask_signal(&f, &outside);
    kill_all(&host);
    drop(outsider);
    let answer = answer?;
    ensure!(
        answer.starts_with(&format!("{outside} refused: "))
            && answer.contains("Operation not permitted"),
        "the program may signal a process outside its Landlock domain ({outside}): {answer}"
    );
    let out = f.enter(&inst.id, &["/probe", "write", "/etc/x"]).run();
    blocked("write /etc/x", &out)?;

    // The environment: the program's, plus the two ANTIMONY_ variables.
    let program_env: BTreeSet<String> = std::fs::read(format!("/proc/{pid}/environ"))
        .map_err(|e| e.to_string())?
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let out = f
        .enter(&inst.id, &["/usr/bin/env"])
        .env("ANTIMONY_ENTER_SECRET", "leaked")
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let entered: BTreeSet<String> = out.stdout.lines().map(str::to_string).collect();
    let mut want = program_env.clone();
    want.insert("ANTIMONY_NAME=minimal".into());
    want.insert(format!("ANTIMONY_INSTANCE={}", inst.id));
    ensure!(
        entered == want,
        "environment: entered {entered:?}, want the program's plus ANTIMONY_NAME and \
         ANTIMONY_INSTANCE: {want:?}"
    );

    // The working folder: the sandbox's home.
    let home = program_env
        .iter()
        .find_map(|v| v.strip_prefix("HOME="))
        .ok_or("no HOME")?
        .to_string();
    let out = f.enter(&inst.id, &["/bin/pwd", "-P"]).run();
    ensure!(
        out.code() == Some(0) && out.stdout.trim() == home,
        "working folder (want {home}): {}",
        out.show()
    );

    // Descriptors: only 0, 1 and 2 (none of init's: its channel, its
    // signalfd).
    blocked("fds", &f.probe(&inst, &["fds"]))?;
    pass()
}

/// The client's stdin never enters the sandbox (issue 14): given a host
/// folder as stdin, the entered command gets a pipe that the client fills
/// (with nothing: a folder reads as no data), so it cannot create a file
/// in the folder through /proc/self/fd/0. Control: on the host the probe
/// can.
fn enter_folder_stdin(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    let outside = f.s.mkdir("outside");
    let name = unique(&f.s, "landlock");
    let target = format!("/proc/self/fd/0/{name}");
    let dir = || std::fs::File::open(&outside).map(Stdio::from);

    let control =
        f.s.command(&world().probe)
            .args(["write", &target])
            .stdin_from(dir().map_err(|e| e.to_string())?)
            .run();
    escaped("write through a folder descriptor on the host", &control)?;
    ensure!(outside.join(&name).exists(), "control: nothing written");
    std::fs::remove_file(outside.join(&name)).map_err(|e| e.to_string())?;

    let out = f
        .enter(&inst.id, &["/probe", "write", &target])
        .stdin_from(dir().map_err(|e| e.to_string())?)
        .run();
    let l = blocked(&format!("write {target}"), &out)?;
    ensure!(
        l.ends_with("ENOTDIR"),
        "the command's stdin is no pipe: {l}"
    );
    ensure!(
        !outside.join(&name).exists(),
        "the entered command wrote into the host folder"
    );
    pass()
}

/// The escape battery's file-system attempts through `enter`: host files
/// (the root, /etc, /usr, /var, a host folder, /proc/1/root, a read-only
/// bind), secrets (/etc/shadow by every path, init's environment and
/// memory), the old root, /proc/sys and /sys, chroot, mounts, and the
/// client's environment. Control: the read-write bind is written.
fn enter_escape_files(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let name = unique(&f.s, "enter");
    f.s.mkdir("outside");
    f.s.mkdir("robind");
    let inst = Instance::start(
        &f,
        f.run(
            "minimal",
            &[
                "--ro",
                &format!("{}=/data", f.s.path("robind").display()),
                "--program",
                "/bin/sleep",
                "--",
                "120",
            ],
        ),
    )?;
    let outside = f.s.path("outside").join(&name);
    let attempts: Vec<(PathBuf, String)> = vec![
        (format!("/{name}").into(), format!("/{name}")),
        (format!("/etc/{name}").into(), format!("/etc/{name}")),
        (format!("/usr/{name}").into(), format!("/usr/{name}")),
        (format!("/var/{name}").into(), format!("/var/{name}")),
        (outside.clone(), s(&outside)),
        (
            outside.clone(),
            format!("/proc/1/root{}", outside.display()),
        ),
        (f.s.path("robind").join(&name), format!("/data/{name}")),
    ];
    let mut failure = None;
    for (host, inside) in &attempts {
        if let Err(e) = blocked(
            &format!("write {inside}"),
            &f.probe(&inst, &["write", inside]),
        ) {
            failure.get_or_insert(e);
        }
        if host.exists() {
            let _ = std::fs::remove_file(host);
            failure.get_or_insert(format!("{} appeared on the host", host.display()).into());
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    for path in [
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/sudoers",
        "/oldroot/etc/shadow",
        "/proc/1/root/etc/shadow",
        "/proc/1/environ",
        "/proc/1/mem",
    ] {
        blocked(&format!("read {path}"), &f.probe(&inst, &["read", path]))?;
    }
    blocked(
        "absent",
        &f.probe(
            &inst,
            &[
                "absent",
                "/oldroot",
                "/newroot",
                "/tmp/oldroot",
                "/tmp/newroot",
            ],
        ),
    )?;
    blocked("ls /proc/1/root", &f.probe(&inst, &["ls", "/proc/1/root"]))?;
    for path in [
        "/proc/sys/kernel/hostname",
        "/proc/sys/user/max_user_namespaces",
        "/proc/sys/kernel/core_pattern",
        "/proc/sysrq-trigger",
    ] {
        blocked(
            &format!("rewrite {path}"),
            &f.probe(&inst, &["rewrite", path]),
        )?;
    }
    blocked(
        "write /sys",
        &f.probe(&inst, &["write", "/sys/antimony-escape"]),
    )?;
    let attempts: &[&[&str]] = &[
        &["chroot"],
        &["mount"],
        &["remount", "/usr"],
        &["remount", "/data"],
        &["umount", "/proc/sys"],
        &["umount", "/data"],
        &["umount", "/"],
        &["newmount"],
    ];
    for sub in attempts {
        blocked(&sub.join(" "), &f.probe(&inst, sub))?;
    }
    // The client's environment stays outside.
    let secret = "ANTIMONY_ENTER_SECRET";
    let out = f
        .enter(&inst.id, &["/probe", "env", secret])
        .env(secret, "leaked")
        .run();
    blocked("env", &out)?;
    // Control: the read-write bind.
    let rw = f.out(&name);
    escaped(
        "write to the read-write bind",
        &f.probe(&inst, &["write", &s(&rw)]),
    )?;
    ensure!(rw.exists(), "the read-write bind was not written");
    pass()
}

/// The battery's process and kernel attempts through `enter`: a host
/// process, ptrace, process_vm_*, init's descriptors, nested user
/// namespaces and setns, keyrings, the kernel attack surface, foreign
/// ABIs, capabilities.
fn enter_escape_kernel(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    let sleep = Reaped(f.s.command("sleep").arg("60").spawn());
    let host = sleep.0.id().to_string();
    blocked("host-pid", &f.probe(&inst, &["host-pid", &host]))?;
    let mut subs: Vec<&[&str]> = vec![
        &["ptrace"],
        &["vm-read"],
        &["getfd", "1"],
        &["setns"],
        &["keyctl"],
        &["denied"],
        &["caps"],
    ];
    if cfg!(target_arch = "x86_64") {
        subs.push(&["foreign-arch"]);
    }
    for sub in subs {
        blocked(&sub.join(" "), &f.probe(&inst, sub))?;
    }
    let l = blocked("userns", &f.probe(&inst, &["userns"]))?;
    ensure!(l.contains("clone3(CLONE_NEWUSER) ENOSYS"), "{l}");
    let uid = f.s.uid.to_string();
    let l = blocked("ids", &f.probe(&inst, &["ids", &uid]))?;
    ensure!(l.contains("NoNewPrivs 1"), "{l}");
    ensure!(alive(sleep.0.id()), "the host sleep died");
    pass()
}

/// A host TCP listener and abstract socket are out of reach of an entered
/// command as of the program.
fn enter_escape_network(who: Who) -> TestResult {
    use std::os::linux::net::SocketAddrExt;
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("listen: {e}"))?;
    tcp.set_nonblocking(true).map_err(|e| e.to_string())?;
    let port = tcp
        .local_addr()
        .map_err(|e| e.to_string())?
        .port()
        .to_string();
    let name = unique(&f.s, "socket");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| e.to_string())?;
    let unix =
        std::os::unix::net::UnixListener::bind_addr(&addr).map_err(|e| format!("listen: {e}"))?;
    unix.set_nonblocking(true).map_err(|e| e.to_string())?;
    blocked("tcp", &f.probe(&inst, &["tcp", &port]))?;
    blocked("unix", &f.probe(&inst, &["unix", &name]))?;
    ensure!(tcp.accept().is_err(), "a TCP connection reached the host");
    ensure!(unix.accept().is_err(), "a unix connection reached the host");
    pass()
}

/// `enter` from a terminal: the command has a terminal of the sandbox's
/// own (the client's is never passed: hostside::terminal), on which
/// TIOCSTI and TIOCLINUX are refused, even though it is the command's
/// controlling terminal; nothing is pushed into the client's terminal.
fn enter_escape_terminal(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    let (master, slave) = open_pty()?;
    for sub in ["tiocsti", "tioclinux"] {
        let stdin = Stdio::from(slave.try_clone().map_err(|e| format!("dup: {e}"))?);
        let out = f.enter(&inst.id, &["/probe", sub]).stdin_from(stdin).run();
        let l = blocked(sub, &out)?;
        ensure!(
            sub != "tiocsti" || l.contains("TIOCSCTTY ok"),
            "the probe could not take the terminal: {l}"
        );
        let injected = drain(&slave, Duration::from_millis(100));
        ensure!(
            injected.is_empty(),
            "{sub}: {:?} was injected into the terminal",
            String::from_utf8_lossy(&injected)
        );
    }
    drop(master);
    pass()
}

/// A setuid-root binary bound into the instance gains nothing when an
/// entered command runs it. Control: on the host it gains root (or, for
/// root, its capabilities).
fn enter_escape_setuid(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    if !world().is_root {
        return skip("needs root to make a setuid-root binary");
    }
    let dir = f.s.mkdir("suid");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod: {e}"))?;
    let bin = dir.join("antimony-probe");
    copy_probe(&bin, 0o4755)?;
    let uid = f.s.uid.to_string();
    let control = f.s.command(&bin).args(["ids", &uid]).run();
    if control.code() != Some(1) {
        return skip(format!(
            "a setuid-root binary gains nothing on this host: {}",
            control.show()
        ));
    }
    let inst = Instance::start(
        &f,
        f.run(
            "minimal",
            &[
                "--ro",
                &format!("{}=/suid", dir.display()),
                "--program",
                "/bin/sleep",
                "--",
                "120",
            ],
        ),
    )?;
    let out = f
        .enter(&inst.id, &["/suid/antimony-probe", "ids", &uid])
        .run();
    let l = blocked("setuid binary through enter", &out)?;
    ensure!(
        l.contains(&format!("euid {uid} ")) && l.contains("NoNewPrivs 1"),
        "{l}"
    );
    pass()
}

/// A host process (a `sleep` of the same user) and the instance's own
/// antimony cannot be signalled, opened as a pidfd or seen in /proc by an
/// entered command; /proc lists only the instance's processes; /proc/1/root
/// cannot be listed. Control: the same probe on the host sees the sleep.
fn enter_escape_host_processes(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    let sleep = Reaped(f.s.command("sleep").arg("60").spawn());
    let host = sleep.0.id();
    ensure!(alive(host), "the host sleep {host} is not running");
    escaped(
        "signal a host process from the host",
        &f.s.command(&world().probe)
            .args(["host-pid", &host.to_string()])
            .run(),
    )?;
    for pid in [host, inst.antimony_pid()] {
        let pid = pid.to_string();
        blocked(
            &format!("host-pid {pid}"),
            &f.probe(&inst, &["host-pid", &pid]),
        )?;
    }
    // /proc: the probe's `procs` wants only PID 1 and itself, as for the
    // program of `antimony run`; an entered command also sees the program,
    // so its listing must be exactly init, the program and itself.
    let program = inner_pid(inst.pid).ok_or("no NSpid for the program")?;
    let out = f.probe(&inst, &["procs"]);
    let l = line(&out)?;
    let listed = l
        .split_once("/proc holds ")
        .and_then(|(_, rest)| rest.split_once(" (self "))
        .map(|(list, me)| (list, me.trim_end_matches(')')));
    let Some((list, me)) = listed else {
        return Err(format!("procs: {}", out.show()).into());
    };
    let got: BTreeSet<&str> = list.split(' ').collect();
    let want: BTreeSet<&str> = ["1", program.as_str(), me].into_iter().collect();
    ensure!(
        got == want && want.len() == 3,
        "the entered command sees other processes than init, the program ({program}) and \
         itself: {}",
        out.show()
    );
    blocked("ls /proc/1/root", &f.probe(&inst, &["ls", "/proc/1/root"]))?;
    ensure!(alive(host), "the host sleep {host} died");
    ensure!(alive(inst.pid), "the program died");
    drop(sleep);
    pass()
}

/// /etc/shadow, /etc/gshadow and /etc/sudoers are not there (by any path),
/// init's environment and memory are not readable, and a mode-0600 file of
/// another user (nobody) in a bound folder is not readable by an entered
/// command, even as root (EACCES). Control: a world-readable file next to
/// it is.
fn enter_escape_read_secrets(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let dir = f.s.mkdir("secret");
    let public = f.s.write("secret/public", "anyone may read this\n");
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| format!("chmod: {e}"))?;
    let nobody = world().is_root;
    if nobody {
        let secret = f.s.write("secret/key", "the other user's secret\n");
        chown(&secret, Some(65534), Some(65534)).map_err(|e| format!("chown: {e}"))?;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod: {e}"))?;
    }
    let inst = Instance::start(
        &f,
        f.run(
            "minimal",
            &[
                "--ro",
                &format!("{}=/secret", dir.display()),
                "--program",
                "/bin/sleep",
                "--",
                "120",
            ],
        ),
    )?;
    for path in [
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/sudoers",
        "/oldroot/etc/shadow",
        "/proc/1/root/etc/shadow",
        "/proc/1/environ",
        "/proc/1/mem",
    ] {
        blocked(&format!("read {path}"), &f.probe(&inst, &["read", path]))?;
    }
    if !nobody {
        return skip("needs root to create a file owned by nobody");
    }
    let l = blocked(
        "read /secret/key",
        &f.probe(&inst, &["read", "/secret/key"]),
    )?;
    ensure!(l.ends_with("EACCES"), "not refused by permissions: {l}");
    escaped(
        "read a world-readable file in the same bind",
        &f.probe(&inst, &["read", "/secret/public"]),
    )?;
    pass()
}

/// A host folder's descriptor leaked into the `antimony enter` client (no
/// close-on-exec, at 777) does not reach the entered command: only 0, 1
/// and 2 are open, and `openat(777, "..")` is EBADF. Control: on the host
/// it is open.
fn enter_escape_inherited_descriptor(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    let dir = std::fs::File::open(f.s.mkdir("outside")).map_err(|e| format!("open: {e}"))?;
    let mut control = f.s.command(&world().probe).args(["fds", "777"]);
    pass_fd(&mut control, dir.as_raw_fd(), 777);
    escaped("a leaked descriptor on the host", &control.run())?;
    let mut run = f.enter(&inst.id, &["/probe", "fds", "777"]);
    pass_fd(&mut run, dir.as_raw_fd(), 777);
    let l = blocked("fds 777 through enter", &run.run())?;
    ensure!(l.ends_with("EBADF"), "{l}");
    pass()
}

/// A copy of the probe with a file capability (CAP_NET_BIND_SERVICE,
/// permitted and effective), bound into the instance: entered directly and
/// executed by an entered command, it holds no capability. Control: on the
/// host it does.
fn enter_escape_file_capabilities(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    if !world().is_root {
        return skip("needs root to give a file a capability");
    }
    let dir = f.s.mkdir("fcaps");
    let bin = match probe_with_file_capability(&dir)? {
        Ok(bin) => bin,
        Err(why) => return skip(why),
    };
    escaped(
        "a file capability on the host",
        &f.s.command(&bin).arg("caps").run(),
    )?;
    let inst = Instance::start(
        &f,
        f.run(
            "minimal",
            &[
                "--ro",
                &format!("{}=/fcaps", dir.display()),
                "--program",
                "/bin/sleep",
                "--",
                "120",
            ],
        ),
    )?;
    blocked(
        "file capability as the entered command",
        &f.enter(&inst.id, &["/fcaps/antimony-probe", "caps"]).run(),
    )?;
    blocked(
        "file capability executed by the entered command",
        &f.probe(&inst, &["exec", "/fcaps/antimony-probe", "caps"]),
    )?;
    pass()
}

/// Kernel tunables stay as they are for an entered command: /proc/sys
/// (read-only), the sandbox's own hostname, the user-namespace limit,
/// /proc/sysrq-trigger (only ever opened), and /sys (absent, and the root
/// is read-only); the host's hostname is unchanged.
fn enter_escape_proc_sys(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    for path in [
        "/proc/sys/kernel/hostname",
        "/proc/sys/user/max_user_namespaces",
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/vm/drop_caches",
        "/proc/sysrq-trigger",
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ] {
        blocked(
            &format!("rewrite {path}"),
            &f.probe(&inst, &["rewrite", path]),
        )?;
    }
    for path in ["/sys/antimony-escape", "/proc/sys/kernel/antimony-escape"] {
        blocked(&format!("write {path}"), &f.probe(&inst, &["write", path]))?;
    }
    ensure!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default() == hostname,
        "the host's hostname changed"
    );
    pass()
}

/// An entered command starts a tree (orphans, other sessions, all ignoring
/// SIGTERM and SIGHUP) and exits: the tree lives on in the instance (the
/// control), and nothing of it survives the instance's end. The same with
/// a tree whose entered command still runs when antimony of the instance
/// is killed with SIGKILL.
fn enter_escape_orphans(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    const CHILDREN: usize = 6;
    let n = CHILDREN.to_string();

    // The entered command leaves its tree behind; the instance ends (a
    // SIGTERM to antimony, as `ps_lists` does).
    let token = unique(&f.s, "orphans");
    let mut inst = f.sleeper()?;
    // The tree inherits the command's stdout and stderr, which would be
    // the client's pipes, held open until the tree ends: the probe writes
    // to files instead.
    let script = format!("exec /probe tree {token} {n} exit >@OUT@/tree 2>@OUT@/tree.err");
    let run = f.enter(&inst.id, &["/bin/sh", "-c", &script]).run();
    let out = Output {
        stdout: f.read("tree"),
        stderr: format!("{}{}", run.stderr, f.read("tree.err")),
        ..run
    };
    let started = wait_until(HANG, || with_token(&token, 0).len() >= CHILDREN);
    let before = with_token(&token, 0);
    let result = (|| -> Result<(), Failed> {
        blocked("tree exit through enter", &out)?;
        ensure!(
            started,
            "the entered command's tree is not running in the instance: {before:?}"
        );
        ensure!(inst.exited().is_none(), "the instance ended with the tree");
        signal(&inst.child, libc::SIGTERM);
        let end = inst.finish()?;
        ensure!(
            end.code() == Some(143),
            "the instance's end: {}",
            end.show()
        );
        Ok(())
    })();
    if result.is_err() {
        let _ = inst.child.kill();
        let _ = inst.child.wait();
    }
    let gone = wait_until(HANG, || with_token(&token, 0).is_empty());
    let left = with_token(&token, 0);
    kill_all(&left);
    result?;
    ensure!(
        gone,
        "the entered command's children survived the instance: {left:?} (of {before:?})"
    );

    // The entered command still runs its tree when antimony of the
    // instance gets SIGKILL.
    let token = unique(&f.s, "entered-tree");
    let mut inst = f.sleeper()?;
    let client = f.enter(&inst.id, &["/probe", "tree", &token, &n]).spawn();
    let client_pid = client.id();
    let client = Reaped(client);
    // The probe and its children (the client, whose command line holds the
    // token too, left out).
    let started = wait_until(HANG, || with_token(&token, client_pid).len() > CHILDREN);
    let before = with_token(&token, client_pid);
    let _ = inst.child.kill();
    let _ = inst.wait_exit(HANG);
    let gone = wait_until(HANG, || with_token(&token, client_pid).is_empty());
    let left = with_token(&token, client_pid);
    kill_all(&left);
    let status = client.wait_status(HANG);
    ensure!(
        started,
        "the entered tree did not start: {} of {} processes ({before:?})",
        before.len(),
        CHILDREN + 1
    );
    ensure!(
        gone,
        "processes of the entered command survived kill -9 of antimony: {left:?} (of {before:?})"
    );
    ensure!(
        status.is_some(),
        "the enter client did not end with the instance"
    );
    pass()
}

/// `enter`'s exit status is the command's (128+N for signal N); stdin,
/// stdout and stderr pass through; the default command is /bin/sh; a
/// command that cannot start, or an instance that is not there, is an
/// error.
fn enter_status_and_stdio(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    let id = inst.id.as_str();
    for (script, code) in [
        ("exit 0", 0),
        ("exit 7", 7),
        ("kill -TERM $$", 143),
        ("kill -KILL $$", 137),
    ] {
        let out = f.enter(id, &["/bin/sh", "-c", script]).run();
        ensure!(
            out.code() == Some(code) && out.stderr.is_empty(),
            "`{script}`: want {code}: {}",
            out.show()
        );
    }
    let out = f.enter(id, &["cat"]).stdin("hello\nworld\n").run();
    ensure!(
        out.code() == Some(0) && out.stdout == "hello\nworld\n",
        "stdin to stdout: {}",
        out.show()
    );
    let out = f
        .enter(id, &["/bin/sh", "-c", "echo to-stderr >&2; echo to-stdout"])
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout == "to-stdout\n" && out.stderr == "to-stderr\n",
        "stdout and stderr: {}",
        out.show()
    );
    // A closed stdin becomes /dev/null.
    let mut run = f.enter(id, &["/bin/sh", "-c", "cat; echo done"]);
    // SAFETY: the closure runs in the forked child before exec and only
    // closes a descriptor.
    unsafe {
        run.cmd.pre_exec(|| {
            libc::close(0);
            Ok(())
        });
    }
    let out = run.run();
    ensure!(
        out.code() == Some(0) && out.stdout == "done\n",
        "closed stdin: {}",
        out.show()
    );
    // Named without a folder: looked up on the sandbox's PATH.
    let out = f.enter(id, &["true"]).run();
    ensure!(out.code() == Some(0), "`true`: {}", out.show());
    // The default command is a shell reading stdin.
    let out =
        f.s.antimony(["enter", id])
            .stdin("echo \"in $ANTIMONY_INSTANCE\"; exit 5\n")
            .run();
    ensure!(
        out.code() == Some(5) && out.stdout == format!("in {id}\n"),
        "the default shell: {}",
        out.show()
    );
    let out = f.enter(id, &["/nonexistent/command"]).run();
    refused(
        "a missing command",
        &out,
        &["/nonexistent/command", id, "ENOENT"],
    )?;
    ensure!(out.stderr.lines().count() == 1, "{}", out.show());
    let out = f.enter("nosuchprofile", &["true"]).run();
    refused("an unknown name", &out, &["nosuchprofile"])?;
    // The instance is unaffected by all this.
    ensure!(alive(inst.pid), "the program died");
    pass()
}

/// A signal the client gets (SIGUSR1, SIGTERM, SIGINT) reaches the
/// command, and so its exit status.
fn enter_signals(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    for (sig, name) in [
        (libc::SIGUSR1, "USR1"),
        (libc::SIGTERM, "TERM"),
        (libc::SIGINT, "INT"),
    ] {
        let script = format!(
            "trap 'echo got-{name} >> @OUT@/log; exit 3' {name}; \
             echo ready-{name} >> @OUT@/log; while :; do sleep 0.05; done"
        );
        let client = f.enter(&inst.id, &["/bin/sh", "-c", &script]).spawn();
        let ready = wait_for_line(&f, &format!("ready-{name}"));
        if ready.is_ok() {
            signal(&client, sig);
        }
        let status = Reaped(client).wait_status(HANG);
        ready?;
        ensure!(
            status.and_then(|s| s.code()) == Some(3),
            "SIG{name} to the client: {status:?}, log {:?}",
            f.log()
        );
        wait_for_line(&f, &format!("got-{name}"))?;
    }
    // Without a trap the command dies of the signal: 128+N.
    let client = f
        .enter(
            &inst.id,
            &[
                "/bin/sh",
                "-c",
                "echo ready-plain >> @OUT@/log; exec sleep 100",
            ],
        )
        .spawn();
    let ready = wait_for_line(&f, "ready-plain");
    std::thread::sleep(Duration::from_millis(50));
    if ready.is_ok() {
        signal(&client, libc::SIGTERM);
    }
    let status = Reaped(client).wait_status(HANG);
    ready?;
    ensure!(
        status.and_then(|s| s.code()) == Some(143),
        "SIGTERM to the client of `sleep`: {status:?}"
    );
    pass()
}

impl Reaped {
    /// Waits for the child (at most `limit`; then it is killed).
    fn wait_status(mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// When the client is killed (SIGKILL: it cannot pass anything on), the
/// command gets SIGHUP, and so do its children (its process group); the
/// instance goes on and can be entered again.
fn enter_hangup(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    // (Its stderr is the dead client's: the shell would die of SIGPIPE
    // telling it that its `sleep` died of SIGHUP, before the trap.)
    let script = "exec 2>/dev/null; trap 'echo got-HUP >> @OUT@/log; exit 0' HUP; \
                  echo ready >> @OUT@/log; while :; do sleep 0.05; done";
    let client = Reaped(f.enter(&inst.id, &["/bin/sh", "-c", script]).spawn());
    wait_for_line(&f, "ready")?;
    drop(client);
    wait_for_line(&f, "got-HUP")?;

    // A shell waiting for a child: both go.
    let ns = PathBuf::from(format!("/proc/{}/ns/pid", inst.pid));
    let script = f.subst("echo ready2 >> @OUT@/log; sleep 101; echo after");
    let client = Reaped(f.enter(&inst.id, &["/bin/sh", "-c", &script]).spawn());
    wait_for_line(&f, "ready2")?;
    ensure!(
        wait_until(HANG, || in_namespace(&ns, &["sleep", "101"]).len() == 1),
        "the entered command's child did not start"
    );
    drop(client);
    let gone = wait_until(HANG, || {
        in_namespace(&ns, &["sleep", "101"]).is_empty()
            && in_namespace(&ns, &["/bin/sh", "-c", &script]).is_empty()
    });
    ensure!(
        gone,
        "the entered command's child survived the hangup: {:?}",
        in_namespace(&ns, &["sleep", "101"])
    );
    ensure!(alive(inst.pid), "the program died");
    let out = f.enter(&inst.id, &["true"]).run();
    ensure!(
        out.code() == Some(0),
        "enter after a hangup: {}",
        out.show()
    );
    pass()
}

// ------------------------------------------------------------------- stop

/// A profile that logs every step of an ending: an attached pre-hook, a
/// stopping hook, a post-hook, and a program that logs its SIGTERM.
fn ending_profile(f: &Fx, name: &str, grace: u32) {
    f.profile(
        name,
        &format!(
            r#"
inherits = ["sh"]

[hooks]
grace = {grace}

[[hooks.pre]]
name = "watcher"
attach = true
content = '''
exec 2>/dev/null
trap 'echo watcher-term >> @OUT@/log; exit 0' TERM
echo watcher-start >> @OUT@/log
while :; do sleep 0.05; done
'''

[[hooks.stopping]]
name = "stopping"
content = 'echo stopping >> @OUT@/log'

[[hooks.post]]
name = "post"
content = 'echo post >> @OUT@/log'
"#
        ),
    );
}

/// Dies of SIGTERM after logging it.
const POLITE: &str = "trap 'echo program-term >> @OUT@/log; trap - TERM; kill -TERM $$' TERM; \
                      echo program-start >> @OUT@/log; while :; do sleep 0.05; done";
/// Ignores SIGTERM (and logs it).
const STUBBORN: &str = "trap 'echo program-ignores-term >> @OUT@/log' TERM; \
                        echo program-start >> @OUT@/log; while :; do sleep 0.05; done";

/// `antimony stop ID`: the stopping hook, then SIGTERM to the program,
/// then the attached hook's SIGTERM, then the post-hook; `stop` returns
/// once the instance (its antimony included) has ended, which exits with
/// the program's status (143). The record is gone.
fn stop_graceful(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    ending_profile(&f, "ending", 30);
    let mut inst = Instance::start(&f, f.run("ending", &["--", "-c", POLITE]))?;
    wait_for_line(&f, "program-start")?;
    wait_for_line(&f, "watcher-start")?;
    let began = Instant::now();
    let out = f.s.antimony(["stop", &inst.id]).run();
    let took = began.elapsed();
    ensure!(
        out.code() == Some(0) && out.stderr == format!("antimony: stopped {}\n", inst.id),
        "stop: {}",
        out.show()
    );
    // Ended when stop returned: no waiting here.
    let status = inst.exited();
    ensure!(
        status.is_some(),
        "antimony was still running when stop returned"
    );
    // The attached hook and the program start in parallel: their first
    // lines come in either order.
    in_order(&f.log(), &["watcher-start", "stopping"])?;
    in_order(
        &f.log(),
        &[
            "program-start",
            "stopping",
            "program-term",
            "watcher-term",
            "post",
        ],
    )?;
    let run = inst.finish()?;
    ensure!(run.code() == Some(143), "the stopped run: {}", run.show());
    ensure!(
        took < Duration::from_secs(20),
        "stop sat out the grace period ({took:?}) for a program that ended on SIGTERM"
    );
    ensure!(f.ps_json()?.is_empty(), "still listed");
    ensure!(!f.registry().join(&inst.id).exists(), "the record is left");
    ensure!(!alive(inst.pid), "the program survived");
    // Stopping what is gone is an error.
    let out = f.s.antimony(["stop", &inst.id]).run();
    refused("stop an ended instance", &out, &[&inst.id])?;
    pass()
}

/// A program that ignores SIGTERM is killed after the profile's grace
/// period; the post-hooks still run; the run exits 137.
fn stop_after_grace(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    ending_profile(&f, "stubborn", 1);
    let mut inst = Instance::start(&f, f.run("stubborn", &["--", "-c", STUBBORN]))?;
    wait_for_line(&f, "program-start")?;
    let began = Instant::now();
    let out = f.s.antimony(["stop", &inst.id]).run();
    let took = began.elapsed();
    ensure!(out.code() == Some(0), "stop: {}", out.show());
    ensure!(
        inst.exited().is_some(),
        "antimony ran on after stop returned"
    );
    ensure!(
        took >= Duration::from_millis(900),
        "stop returned after {took:?}, before the 1 s grace period"
    );
    in_order(
        &f.log(),
        &[
            "program-start",
            "stopping",
            "program-ignores-term",
            "watcher-term",
            "post",
        ],
    )?;
    let run = inst.finish()?;
    ensure!(run.code() == Some(137), "the killed run: {}", run.show());
    ensure!(!alive(inst.pid), "the program survived");
    pass()
}

/// CPU time (user + system, clock ticks) a process has used.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    Some(rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?)
}

/// A `stop` client killed while the instance sits out its grace period:
/// the supervisor neither spins on the dead connection nor stops less.
fn stop_client_killed(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    ending_profile(&f, "slow", 3);
    let mut inst = Instance::start(&f, f.run("slow", &["--", "-c", STUBBORN]))?;
    wait_for_line(&f, "program-start")?;
    let client = Reaped(f.s.antimony(["stop", &inst.id]).spawn());
    wait_for_line(&f, "program-ignores-term")?;
    drop(client);
    let antimony = inst.antimony_pid();
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks(antimony).ok_or("no antimony")?;
    std::thread::sleep(Duration::from_millis(1000));
    let after = cpu_ticks(antimony).ok_or("antimony ended before the grace period")?;
    let run = inst.finish()?;
    ensure!(
        after - before < 20,
        "the supervisor used {} ticks of CPU in one second of waiting",
        after - before
    );
    ensure!(run.code() == Some(137), "the run: {}", run.show());
    wait_for_line(&f, "post")?;
    pass()
}

/// With two instances of one profile, `enter PROFILE` is refused as
/// ambiguous (naming both), an id prefix enters one, and `stop PROFILE`
/// stops both.
fn by_profile(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    f.profile(
        "pair",
        "inherits = [\"minimal\"]\npath = \"/bin/sleep\"\narguments = [\"120\"]\n",
    );
    let mut one = Instance::start(&f, f.s.antimony(["run", "pair"]))?;
    let out = f
        .enter("pair", &["/bin/sh", "-c", "echo $ANTIMONY_INSTANCE"])
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout.trim() == one.id,
        "enter the profile's only instance: {}",
        out.show()
    );
    let mut two = Instance::start(&f, f.s.antimony(["run", "pair"]))?;
    let out = f.enter("pair", &["true"]).run();
    refused(
        "enter a profile with two instances",
        &out,
        &["2 running instances", &one.id, &two.id],
    )?;
    let prefix = &two.id[..12];
    let out = f
        .enter(prefix, &["/bin/sh", "-c", "echo $ANTIMONY_INSTANCE"])
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout.trim() == two.id,
        "enter by id prefix: {}",
        out.show()
    );
    let out = f.s.antimony(["stop", "pair"]).run();
    ensure!(out.code() == Some(0), "stop pair: {}", out.show());
    for inst in [&mut one, &mut two] {
        ensure!(
            out.stderr.contains(&format!("stopped {}", inst.id)),
            "{}",
            out.show()
        );
        ensure!(inst.exited().is_some(), "{} still runs", inst.id);
        let run = inst.finish()?;
        ensure!(run.code() == Some(143), "{}", run.show());
    }
    ensure!(f.ps_json()?.is_empty(), "instances left");
    pass()
}

// ------------------------------------------------- stale and forged records

/// Killing antimony with SIGKILL takes its sandbox along and leaves its
/// record; `ps`, `enter` and `stop` each find it stale and remove it.
fn stale_record(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let cases: [(&str, &[&str]); 3] = [
        ("ps", &["ps"]),
        ("enter", &["enter", "ID", "--", "true"]),
        ("stop", &["stop", "ID"]),
    ];
    for (what, args) in cases {
        let mut inst = f.sleeper()?;
        let record = f.registry().join(&inst.id);
        let _ = inst.child.kill();
        let _ = inst.child.wait();
        ensure!(
            wait_until(HANG, || !alive(inst.pid)),
            "the program survived antimony's SIGKILL"
        );
        ensure!(record.is_dir(), "{what}: no record was left to test");
        // Records being made (hidden): one whose antimony is gone is
        // stale too; one still without its info.json is left alone.
        let making_dead = ".dddddddddddddddd";
        let making_fresh = ".eeeeeeeeeeeeeeee";
        if what == "ps" {
            let mut info: Value = serde_json::from_slice(
                &std::fs::read(record.join("info.json")).map_err(|e| e.to_string())?,
            )
            .map_err(|e| e.to_string())?;
            info["instance"] = Value::from(&making_dead[1..]);
            forge(&f, making_dead, &info, f.s.uid)?;
            let fresh = f.registry().join(making_fresh);
            std::fs::create_dir(&fresh).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| e.to_string())?;
            chown(&fresh, Some(f.s.uid), None).map_err(|e| e.to_string())?;
        }
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "ID" { inst.id.as_str() } else { a })
            .collect();
        let out = f.s.antimony(&args).run();
        if what == "ps" {
            ensure!(
                out.code() == Some(0) && !out.stdout.contains(&inst.id),
                "ps lists a dead instance: {}",
                out.show()
            );
        } else {
            refused(what, &out, &[&inst.id, "stale", "removed"])?;
        }
        ensure!(!record.exists(), "{what} left the stale record");
        if what == "ps" {
            ensure!(
                !f.registry().join(making_dead).exists(),
                "ps left a stale record being made"
            );
            ensure!(
                f.registry().join(making_fresh).is_dir(),
                "ps removed a record being made"
            );
        }
    }
    pass()
}

/// `ps` (and so `enter` and `stop`) running while instances register
/// never takes a record being made for a stale one: every run is
/// registered.
fn registration_race(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut listers = Vec::new();
    for _ in 0..2 {
        let stop = stop.clone();
        let mut ps = Vec::new();
        for _ in 0..400 {
            ps.push(f.s.antimony(["ps"]).cmd);
        }
        listers.push(std::thread::spawn(move || {
            for mut cmd in ps {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
            }
        }));
    }
    let mut failure = None;
    for _ in 0..20 {
        let out = f.run("minimal", &["--program", "/bin/true"]).run();
        if out.code() != Some(0) || !out.stderr.is_empty() {
            failure.get_or_insert(out.show());
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for l in listers {
        let _ = l.join();
    }
    if let Some(e) = failure {
        return Err(format!("a run next to `ps`: {e}").into());
    }
    pass()
}

/// Writes a record folder by hand: `info` as info.json, owned by `owner`.
fn forge(f: &Fx, id: &str, info: &Value, owner: u32) -> Result<PathBuf, Failed> {
    let dir = f.registry().join(id);
    std::fs::create_dir(&dir).map_err(|e| format!("mkdir: {e}"))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    let file = dir.join("info.json");
    std::fs::write(&file, info.to_string()).map_err(|e| e.to_string())?;
    chown(&dir, Some(owner), None).map_err(|e| format!("chown: {e}"))?;
    chown(&file, Some(owner), None).map_err(|e| format!("chown: {e}"))?;
    Ok(dir)
}

/// A process of the user serving a SOCK_SEQPACKET socket at a path; it
/// prints one line per connection: the bytes and ancillary bytes it got.
const SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(sys.argv[1])
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    msg, anc, _, _ = c.recvmsg(200000, socket.CMSG_SPACE(64))
    print("conn", len(msg), len(anc), flush=True)
    c.close()
"#;

struct Server {
    child: Reaped,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(f: &Fx, path: &Path) -> Result<Server, TestResult> {
        let python = Path::new("/usr/bin/python3");
        if !python.exists() {
            return Err(skip("no /usr/bin/python3 to serve a forged control socket"));
        }
        let mut child = f.s.command(python).args(["-c", SERVER]).arg(path).spawn();
        let out = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let server = Server {
            child: Reaped(child),
            lines,
        };
        match server.lines.recv_timeout(HANG) {
            Ok(l) if l == "ready" => Ok(server),
            other => Err(Err(
                format!("the forged server did not start: {other:?}").into()
            )),
        }
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// What it received so far: (bytes, ancillary bytes) per connection.
    fn received(&self) -> Vec<(usize, usize)> {
        let mut got = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            let n: Vec<usize> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            if n.len() == 2 {
                got.push((n[0], n[1]));
            }
        }
        got
    }
}

/// Hand-made records are refused, never trusted, and never listed:
/// one naming a live process of the user that is not antimony (a `sleep`,
/// or the python3 serving its control socket); one naming the real
/// antimony of a running instance but whose control socket python3
/// serves; one whose start time does not match (stale: removed); folders
/// of the wrong mode or owner, a symlink, a record under another id. The
/// impostors get no byte of a request, the real instance stays usable,
/// and `enter PROFILE` is not misled.
fn forged_records(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let real = f.sleeper()?;
    let uid = f.s.uid;
    let sleep = Reaped(f.s.command("sleep").arg("120").spawn());
    let sleep_pid = sleep.0.id();
    ensure!(
        wait_until(HANG, || start_time(sleep_pid).is_some()),
        "no sleep"
    );
    let info = |id: &str, pid: u32, start: u64| -> Value {
        serde_json::json!({
            "instance": id, "profile": "minimal", "pid": real.pid,
            "antimony_pid": pid, "antimony_start": start,
            "started_at": real.info["started_at"], "uid": uid,
        })
    };
    let antimony = real.antimony_pid();
    let antimony_start = start_time(antimony).ok_or("no antimony")?;
    let attempt = |id: &str, words: &[&str]| -> Result<(), Failed> {
        let out = f
            .enter(id, &["/bin/sh", "-c", "echo entered > @OUT@/pwned"])
            .run();
        refused(&format!("enter {id}"), &out, words)?;
        let out = f.s.antimony(["stop", id]).run();
        refused(&format!("stop {id}"), &out, words)?;
        ensure!(!f.out("pwned").exists(), "a command ran through {id}");
        Ok(())
    };

    // (a) A live `sleep` of the user, with its real start time.
    let a = "aaaaaaaaaaaaaaaa";
    let a_dir = forge(
        &f,
        a,
        &info(a, sleep_pid, start_time(sleep_pid).unwrap_or(0)),
        uid,
    )?;
    attempt(a, &[a, "is not running antimony", "refused"])?;
    ensure!(alive(sleep_pid), "the sleep was harmed");
    ensure!(a_dir.exists(), "a forged record was removed as if stale");

    // (b) The real antimony, with another start time: stale, removed.
    let b = "bbbbbbbbbbbbbbbb";
    let b_dir = forge(&f, b, &info(b, antimony, antimony_start + 1), uid)?;
    let out = f.enter(b, &["true"]).run();
    refused("enter b", &out, &[b, "stale", "removed"])?;
    ensure!(!b_dir.exists(), "the stale record is left");

    // (c) The real antimony, but python3 serves the control socket.
    let c = "cccccccccccccccc";
    let c_dir = forge(&f, c, &info(c, antimony, antimony_start), uid)?;
    let server = match Server::start(&f, &c_dir.join("control")) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let python = server.pid().to_string();
    attempt(c, &[c, "served by PID", &python, "refused"])?;

    // (d) python3 itself, serving its own record.
    let d = "dddddddddddddddd";
    let d_dir = forge(
        &f,
        d,
        &info(d, server.pid(), start_time(server.pid()).unwrap_or(0)),
        uid,
    )?;
    std::os::unix::fs::symlink(c_dir.join("control"), d_dir.join("control"))
        .map_err(|e| e.to_string())?;
    attempt(d, &[d, "is not running antimony"])?;

    // (e) A folder of another owner, (f) of mode 0755, (g) a symlink to
    // the real record, (h) the real record under another id.
    if world().is_root {
        let other = if who == Who::Root { 65534 } else { 0 };
        let e = "eeeeeeeeeeeeeeee";
        forge(&f, e, &info(e, antimony, antimony_start), other)?;
        attempt(e, &[e, "not a private folder"])?;
    }
    let g = "9999999999999999";
    let g_dir = forge(&f, g, &info(g, antimony, antimony_start), uid)?;
    std::fs::set_permissions(&g_dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    attempt(g, &[g, "not a private folder"])?;
    let h = "1111111111111111";
    std::os::unix::fs::symlink(f.registry().join(&real.id), f.registry().join(h))
        .map_err(|e| e.to_string())?;
    attempt(h, &[h, "not a private folder"])?;
    let i = "2222222222222222";
    forge(&f, i, &info(&real.id, antimony, antimony_start), uid)?;
    attempt(i, &[i, "names another instance"])?;

    // None of them is listed; the profile names the real instance only.
    let listed = f.listed_ids()?;
    ensure!(listed == [real.id.clone()], "ps lists {listed:?}");
    let out = f
        .enter("minimal", &["/bin/sh", "-c", "echo $ANTIMONY_INSTANCE"])
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout.trim() == real.id,
        "enter minimal: {}",
        out.show()
    );
    // The impostor got connections (checked and dropped) but not a byte.
    let got = server.received();
    ensure!(
        got.iter().all(|&(bytes, anc)| bytes == 0 && anc == 0),
        "the forged control socket received requests: {got:?}"
    );

    // The real record with the wrong mode is refused too, until fixed.
    let real_dir = f.registry().join(&real.id);
    std::fs::set_permissions(&real_dir, std::fs::Permissions::from_mode(0o750))
        .map_err(|e| e.to_string())?;
    let out = f.enter(&real.id, &["true"]).run();
    let listed = f.listed_ids()?;
    std::fs::set_permissions(&real_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    refused(
        "the real record, mode 0750",
        &out,
        &["not a private folder"],
    )?;
    ensure!(listed.is_empty(), "ps lists a record of mode 0750");
    let out = f.enter(&real.id, &["true"]).run();
    ensure!(out.code() == Some(0), "the real instance: {}", out.show());
    ensure!(!f.out("pwned").exists(), "a forged record ran a command");
    drop(sleep);
    pass()
}

/// A registry that is not a private folder of the user (a symlink to
/// another folder, a folder of someone else) is not used: `ps` lists
/// nothing from it and removes nothing in it (a private folder there
/// without a record would otherwise count as stale), and a run is refused
/// before anything runs (hostside::misc::a_runtime_folder_of_another_user_is_refused).
fn registry_not_private(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let antimony = f.s.mkdir("runtime/antimony");
    std::fs::set_permissions(&antimony, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| e.to_string())?;
    let elsewhere = f.s.mkdir("elsewhere");
    let precious = f.s.mkdir("elsewhere/precious");
    for d in [&elsewhere, &precious] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
    }
    std::os::unix::fs::symlink(&elsewhere, f.registry()).map_err(|e| e.to_string())?;
    let out = f.s.antimony(["ps", "--json"]).run();
    ensure!(
        out.code() == Some(0)
            && out.stdout.trim() == "[]"
            && out.stderr.contains("is a symbolic link"),
        "ps with a symlinked registry: {}",
        out.show()
    );
    ensure!(
        precious.is_dir(),
        "ps removed a folder the registry points to"
    );
    let out = f.enter("precious", &["true"]).run();
    refused("enter through a symlinked registry", &out, &["registry"])?;
    ensure!(precious.is_dir(), "enter removed a folder");
    let out = f
        .run("minimal", &["--program", "/bin/sh", "--", "-c", "exit 4"])
        .run();
    ensure!(
        out.code() == Some(125)
            && out
                .stderr
                .contains("antimony: error: antimony's runtime folder: ")
            && out.stderr.contains("is a symbolic link"),
        "a run with a symlinked registry: {}",
        out.show()
    );
    ensure!(
        std::fs::read_dir(&elsewhere)
            .map(|d| d.count())
            .unwrap_or(0)
            == 1,
        "the run registered in the folder the symlink points to"
    );
    if world().is_root {
        // A registry folder of another user.
        std::fs::remove_file(f.registry()).map_err(|e| e.to_string())?;
        let theirs = f.s.mkdir("runtime/antimony/instances");
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
        let other = if who == Who::Root { 65534 } else { 0 };
        chown(&theirs, Some(other), None).map_err(|e| e.to_string())?;
        let out = f.s.antimony(["ps"]).run();
        ensure!(
            out.code() == Some(0) && out.stderr.contains(&format!("belongs to uid {other}")),
            "ps with a registry of uid {other}: {}",
            out.show()
        );
    }
    pass()
}

/// A raw client of the control protocol: `enter PATH ARGS…` sends an
/// `ENTER` with its stdin, stdout and stderr, `stop PATH` a `STOP`; it
/// prints the kinds of the replies it got until the connection closed (or
/// the command ended).
const CLIENT: &str = r#"
import socket, struct, sys
path, kind = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(path)
replies = []
try:
    if kind == "stop":
        s.send(struct.pack("=IIIi", 202, 0, 0, 0))
    else:
        args = [a.encode() for a in sys.argv[3:]]
        msg = struct.pack("=IIIiI", 200, 0, 0, 0, len(args)) + b"".join(a + b"\0" for a in args)
        fds = struct.pack("=iii", 0, 1, 2)
        s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    while True:
        d = s.recv(16)
        if not d:
            break
        replies.append(struct.unpack("=IIIi", d)[0])
        if replies[-1] in (5, 6):
            break
except (BrokenPipeError, ConnectionResetError):
    pass
print("replies", *replies, flush=True)
"#;

/// A client in another user namespace (as every sandboxed process is)
/// that can reach the control socket is refused: by antimony's own client
/// (which may not even look at the supervisor from there), and, for a
/// client that skips those checks, by the supervisor itself, which closes
/// the connection unanswered. Nothing runs, nothing stops. Control: the
/// same raw client in antimony's user namespace is served.
fn other_user_namespace(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    let works =
        f.s.command("unshare")
            .args(["--user", "--map-current-user", "true"])
            .run();
    if works.code() != Some(0) {
        return skip(format!(
            "unshare --user --map-current-user does not work here: {}",
            works.show()
        ));
    }
    let python = "/usr/bin/python3";
    if !Path::new(python).exists() {
        return skip("no /usr/bin/python3 for a raw client");
    }
    let antimony = s(&world().antimony);
    let script = f.subst("echo entered > @OUT@/pwned");
    let unshare = ["--user", "--map-current-user"];
    let out =
        f.s.command("unshare")
            .args(unshare)
            .args([
                antimony.as_str(),
                "enter",
                &inst.id,
                "--",
                "/bin/sh",
                "-c",
                &script,
            ])
            .run();
    refused("enter from another user namespace", &out, &[&inst.id])?;
    let out =
        f.s.command("unshare")
            .args(unshare)
            .args([antimony.as_str(), "stop", &inst.id])
            .run();
    refused("stop from another user namespace", &out, &[&inst.id])?;

    let control = s(&f.registry().join(&inst.id).join("control"));
    let raw = |userns: bool, args: &[&str]| -> Output {
        let mut run = if userns {
            f.s.command("unshare").args(unshare).arg(python)
        } else {
            f.s.command(python)
        };
        run = run.args(["-c", CLIENT, &control]).args(args);
        run.run()
    };
    // Control: served in antimony's own user namespace (Spawned, Reaped).
    let out = raw(false, &["enter", "/bin/sh", "-c", &script]);
    ensure!(
        out.stdout.trim() == "replies 4 6" && f.out("pwned").exists(),
        "control: the raw client was not served: {}",
        out.show()
    );
    std::fs::remove_file(f.out("pwned")).map_err(|e| e.to_string())?;
    let out = raw(true, &["enter", "/bin/sh", "-c", &script]);
    ensure!(
        out.stdout.trim() == "replies",
        "enter from another user namespace was answered: {}",
        out.show()
    );
    let out = raw(true, &["stop"]);
    ensure!(
        out.stdout.trim() == "replies",
        "stop from another user namespace was answered: {}",
        out.show()
    );
    std::thread::sleep(Duration::from_millis(200));
    ensure!(!f.out("pwned").exists(), "the command ran");
    ensure!(alive(inst.pid), "the instance was stopped");
    let out = f.enter(&inst.id, &["true"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    pass()
}

/// The registry cannot be reached from inside a sandbox: an entered
/// command does not see the runtime folder at all, and a sandbox that
/// binds the runtime folder, or a folder above it, finds antimony's part
/// of it empty and read-only.
fn registry_masked(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    let runtime = s(&f.s.path("runtime"));
    let registry = s(&f.registry());
    ensure!(Path::new(&registry).join(&inst.id).is_dir(), "no record");
    blocked(
        "the runtime folder from inside",
        &f.probe(&inst, &["absent", &runtime]),
    )?;
    let scratch = s(&f.s.dir);
    for bind in [
        format!("--rw={runtime}"),
        format!("--rw={runtime}/antimony"),
        format!("--rw={scratch}"),
        "--ro=/tmp".to_string(),
    ] {
        let run = |sub: &[&str]| {
            let mut args = vec![bind.as_str(), "--program", "/probe", "--"];
            args.extend_from_slice(sub);
            f.run("minimal", &args).run()
        };
        let out = run(&["absent", &registry]);
        // Either antimony refuses the bind outright (the whole runtime
        // folder is not for binding), or the registry is masked.
        if out.code() == Some(125) && out.stdout.is_empty() {
            ensure!(
                out.stderr.contains("runtime folder") || out.stderr.contains("antimony"),
                "{bind}: {}",
                out.show()
            );
            continue;
        }
        blocked_warned(&format!("{bind}: the registry"), &out)?;
        blocked_warned(
            &format!("{bind}: write the registry"),
            &run(&["write", &format!("{runtime}/antimony/x")]),
        )?;
    }
    ensure!(
        Path::new(&registry).join(&inst.id).is_dir()
            && !Path::new(&runtime).join("antimony/x").exists(),
        "the registry changed"
    );
    let out = f.enter(&inst.id, &["true"]).run();
    ensure!(
        out.code() == Some(0),
        "the instance after all that: {}",
        out.show()
    );
    pass()
}

/// A bind of the registry itself, or of a record in it, is refused or
/// masked like a bind of a folder above it: a sandbox must not read the
/// records, replace one, or reach a control socket.
fn registry_bound_directly(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let inst = f.sleeper()?;
    let registry = s(&f.registry());
    let record = format!("{registry}/{}", inst.id);
    for (bind, seen) in [(&registry, &record), (&record, &record)] {
        let flag = format!("--rw={bind}");
        let out = f
            .run("minimal", &[&flag, "--program", "/probe", "--", "ls", seen])
            .run();
        if out.code() == Some(125) && out.stdout.is_empty() {
            continue;
        }
        let l = line(&out)?;
        ensure!(
            !l.contains("info.json") && !l.contains("control"),
            "{flag}: the sandbox sees the record: {}",
            out.show()
        );
    }
    let out = f.enter(&inst.id, &["true"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    pass()
}

/// Without XDG_RUNTIME_DIR the registry is $TMPDIR/antimony-UID/instances
/// (/tmp/antimony-UID/instances without TMPDIR); a sandbox that binds that
/// temporary folder does not reach it either. (The temporary folder here
/// is the scratch's `tmp`, so that the test touches nothing outside.)
fn fallback_registry_masked(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    let tmp = f.s.mkdir("tmp");
    let base = tmp.join(format!("antimony-{}", f.s.uid));
    let fallback = |mut run: Run| {
        run.cmd.env_remove("XDG_RUNTIME_DIR").env("TMPDIR", &tmp);
        run
    };
    let mut child =
        Reaped(fallback(f.run("minimal", &["--program", "/bin/sleep", "--", "120"])).spawn());
    let registry = base.join("instances");
    let listed = wait_until(HANG, || {
        std::fs::read_dir(&registry)
            .map(|d| {
                d.flatten()
                    .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
            })
            .unwrap_or(false)
    });
    ensure!(
        listed,
        "no record in {}: {:?}",
        registry.display(),
        child.0.try_wait()
    );
    let out = fallback(f.s.antimony(["ps", "--json"])).run();
    ensure!(
        out.code() == Some(0)
            && out
                .stdout
                .contains(&format!("\"antimony_pid\": {}", child.0.id())),
        "ps does not list the instance in the fallback registry: {}",
        out.show()
    );
    let tmp_bind = format!("--rw={}", tmp.display());
    let sandbox = fallback(f.run(
        "minimal",
        &[
            &tmp_bind,
            "--program",
            "/probe",
            "--",
            "absent",
            &s(&registry),
        ],
    ));
    blocked(
        "the fallback registry with its folder bound",
        &sandbox.run(),
    )?;
    let _ = child.0.kill();
    let _ = child.0.wait();
    pass()
}

// -------------------------------------------------------------- status-fd

fn parse(line: &str) -> Result<serde_json::Map<String, Value>, Failed> {
    match serde_json::from_str(line) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!("not a JSON object: {line}").into()),
    }
}

fn keys(m: &serde_json::Map<String, Value>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

/// Every line until the descriptor closes (at most HANG).
fn all_lines(rx: &mpsc::Receiver<String>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(l) = rx.recv_timeout(HANG) {
        lines.push(l);
    }
    lines
}

/// `--status-fd`: a `started` line once the program runs (its instance id
/// and host PID, and its namespaces' ids: the inodes of
/// /proc/PID/ns/*), then an `exited` line with the signal that ended it;
/// a program that exits reports its exit code. The descriptor reaches
/// neither the hooks nor the sandbox.
fn status_fd_lines(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    f.profile(
        "status",
        r#"
inherits = ["minimal"]
path = "/bin/sleep"
arguments = ["120"]

[[hooks.pre]]
content = 'if [ -e /proc/self/fd/3 ]; then echo hook-sees-fd-3 >> @OUT@/log; fi'
"#,
    );
    let (child, rx) = with_status_fd(&f, "status", &[]);
    let started = rx.recv_timeout(HANG);
    let mut inst = Instance::start_child(&f, child)?;
    let started = parse(&started.map_err(|_| "no started line".to_string())?)?;
    ensure!(
        keys(&started) == ["event", "instance", "namespaces", "pid"],
        "started: {started:?}"
    );
    ensure!(started["event"] == "started", "{started:?}");
    ensure!(started["instance"] == inst.id.as_str(), "{started:?}");
    ensure!(
        started["pid"].as_u64() == Some(u64::from(inst.pid)),
        "{started:?}, the program is {}",
        inst.pid
    );
    let ns = started["namespaces"]
        .as_object()
        .ok_or(format!("namespaces: {started:?}"))?;
    let names = ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"];
    ensure!(keys(ns) == names, "namespaces: {ns:?}");
    for n in names {
        let ino = std::fs::metadata(format!("/proc/{}/ns/{n}", inst.pid))
            .map_err(|e| e.to_string())?
            .ino();
        ensure!(
            ns[n].as_u64() == Some(ino),
            "{n}: {} is not the program's {ino}",
            ns[n]
        );
    }
    let out = f.s.antimony(["stop", &inst.id]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let rest = all_lines(&rx);
    ensure!(rest.len() == 1, "after started: {rest:?}");
    let exited = parse(&rest[0])?;
    ensure!(
        keys(&exited) == ["event", "instance", "signal"]
            && exited["event"] == "exited"
            && exited["instance"] == inst.id.as_str()
            && exited["signal"] == 15,
        "exited: {exited:?}"
    );
    inst.finish()?;
    // The format is documented in antimony-run(1), under STATUS LINES.
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/man/antimony-run.1"))
        .map_err(|e| format!("read man/antimony-run.1: {e}"))?;
    let section = page
        .split(".SH \"STATUS LINES\"")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH ").next())
        .ok_or("no STATUS LINES section in man/antimony-run.1")?;
    let mut documented = vec![
        r#"{"event":"started","instance":"#.to_string(),
        r#"{"event":"exited","instance":"#.to_string(),
        r#""exit\-code":"#.to_string(),
        r#""signal":"#.to_string(),
        r#""namespaces":{"#.to_string(),
    ];
    documented.extend(names.iter().map(|n| format!("\"{n}\":")));
    for d in &documented {
        ensure!(
            section.contains(d.as_str()),
            "{d} is not documented under STATUS LINES in man/antimony-run.1"
        );
    }
    ensure!(
        !f.log().iter().any(|l| l == "hook-sees-fd-3"),
        "the status descriptor leaked into a hook"
    );

    // A program that exits by itself: its code. The probe checks that
    // the sandbox has only 0, 1 and 2.
    let (mut child, rx) = with_status_fd(&f, "minimal", &["--program", "/probe", "--", "fds"]);
    let lines = all_lines(&rx);
    let status = child.wait().map_err(|e| e.to_string())?;
    let mut stdout = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    ensure!(
        status.code() == Some(0) && stdout.starts_with("BLOCKED "),
        "the status descriptor leaked into the sandbox: {status:?} {stdout}"
    );
    ensure!(lines.len() == 2, "lines: {lines:?}");
    let started = parse(&lines[0])?;
    let exited = parse(&lines[1])?;
    ensure!(started["event"] == "started", "{lines:?}");
    ensure!(
        keys(&exited) == ["event", "exit-code", "instance"]
            && exited["exit-code"] == 0
            && exited["instance"] == started["instance"],
        "{lines:?}"
    );
    let (mut child, rx) = with_status_fd(
        &f,
        "minimal",
        &["--program", "/bin/sh", "--", "-c", "sleep 0.1; exit 3"],
    );
    let lines = all_lines(&rx);
    let status = child.wait().map_err(|e| e.to_string())?;
    ensure!(status.code() == Some(3), "{status:?}");
    ensure!(
        lines.len() == 2 && parse(&lines[1])?["exit-code"] == 3,
        "{lines:?}"
    );
    pass()
}

/// A program killed after the grace period (`antimony stop`, SIGTERM
/// ignored) is reported as ended by SIGKILL.
fn status_fd_kill(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    ending_profile(&f, "stubborn", 1);
    let (child, rx) = with_status_fd(&f, "stubborn", &["--", "-c", STUBBORN]);
    let mut inst = Instance::start_child(&f, child)?;
    wait_for_line(&f, "program-start")?;
    let out = f.s.antimony(["stop", &inst.id]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let run = inst.finish()?;
    ensure!(run.code() == Some(137), "{}", run.show());
    let lines = all_lines(&rx);
    ensure!(lines.len() == 2, "lines: {lines:?}");
    let exited = parse(&lines[1])?;
    ensure!(
        exited["event"] == "exited" && exited["signal"] == 9,
        "{lines:?}"
    );
    pass()
}

/// A run that fails before its program starts (a bind source that does
/// not exist, a program that cannot be executed, a failing pre-hook)
/// writes no line at all: in particular no `exited`.
fn status_fd_no_start(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    f.profile(
        "failing",
        "inherits = [\"minimal\"]\n\n[[hooks.pre]]\ncontent = 'exit 1'\n",
    );
    let missing = format!("{}=/x", f.s.path("no-such-folder").display());
    let cases: [(&str, &str, &[&str]); 3] = [
        ("a missing bind source", "minimal", &["--ro", &missing]),
        (
            "a program that cannot be executed",
            "minimal",
            &["--program", "/etc/hostname"],
        ),
        ("a failing pre-hook", "failing", &[]),
    ];
    for (what, profile, extra) in cases {
        let (mut child, rx) = with_status_fd(&f, profile, extra);
        let lines = all_lines(&rx);
        let status = child.wait().map_err(|e| e.to_string())?;
        ensure!(status.code() == Some(125), "{what}: {status:?}");
        ensure!(lines.is_empty(), "{what}: status lines {lines:?}");
    }
    pass()
}

/// `--status-fd` naming a descriptor that is not open is an error before
/// anything runs.
fn status_fd_bad(who: Who) -> TestResult {
    let f = fixture!(Fx, who);
    f.profile(
        "marked",
        "inherits = [\"minimal\"]\npath = \"/usr/bin/true\"\n\n[[hooks.pre]]\ncontent = 'echo pre-hook >> @OUT@/log'\n",
    );
    let out = f.run("marked", &[]).args(["--status-fd", "57"]).run();
    refused("--status-fd 57", &out, &["--status-fd 57"])?;
    ensure!(out.stderr.lines().count() == 1, "{}", out.show());
    ensure!(f.log().is_empty(), "a hook ran: {:?}", f.log());
    let out = f.run("marked", &[]).args(["--status-fd", "x"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    // The process's own stdout is a descriptor like any other.
    let out = f
        .run("marked", &["--program", "/bin/true"])
        .args(["--status-fd", "1"])
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let events: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|l| parse(l).ok())
        .filter_map(|m| m.get("event").and_then(Value::as_str).map(str::to_string))
        .collect();
    ensure!(events == ["started", "exited"], "{}", out.show());
    pass()
}
