//! Resource limits (issue 17, part 3), with real sandboxes, as root and as
//! an unprivileged user: a fork loop stops at the process limit while the
//! host user still starts processes; a tmpfs is full at its size (ENOSPC)
//! and the host's shared memory stays within the budget; core dumps are
//! off; `--dry-run` lists every limit and where it comes from; memory and
//! CPU are bounded through cgroup v2 where the machine delegates its
//! controllers there (not on this VM: see `memory_and_cpu`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both("limits::a_fork_loop_stops_at_the_limit", fork_loop));
    t.extend(both(
        "limits::a_full_tmpfs_is_enospc_and_host_memory_stays_bounded",
        tmpfs,
    ));
    t.extend(both(
        "limits::core_dumps_are_off_and_rlimits_are_set",
        rlimits,
    ));
    t.extend(both("limits::dry_run_lists_every_limit", dry_run));
    t.extend(both(
        "limits::memory_and_cpu_are_bounded_through_cgroup_v2",
        memory_and_cpu,
    ));
    t
}

/// A profile on `/bin/sh` with these `[limits]` (TOML values).
fn sh_with(limits: &[(&str, &str)]) -> Profile {
    limits
        .iter()
        .fold(Profile::on("minimal").path("/bin/sh"), |p, (k, v)| {
            p.set("limits", k, v)
        })
}

/// Starts `antimony run NAME -- -c SCRIPT` with stdin and stdout piped;
/// returns it (ended by its id when dropped), its stdin, and its stdout's
/// lines as they come.
fn start(
    s: &Scratch,
    name: &str,
    script: &str,
) -> (Started, std::process::ChildStdin, mpsc::Receiver<String>) {
    let mut run = s.antimony(["run", name, "--", "-c", script]);
    run.cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = run.cmd.spawn().expect("spawn");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Started {
        child,
        what: "antimony",
    };
    (started, stdin, rx)
}

/// In the sandbox, a shell loop starts sleeping children until fork fails
/// (dash gives up at the first failure: the inner shell ends there; at
/// most 1000: the test must not become a fork bomb itself), then
/// counts the sandbox's processes with builtins only (no fork is left),
/// says so, and waits for the test. Meanwhile, on the host, the same user
/// starts a process. As root, RLIMIT_NPROC does not apply (real uid 0 is
/// exempt): the PID namespace's pid_max, 300 above the limit, stops it.
fn fork_loop(who: Who) -> TestResult {
    let s = scratch!(who);
    const LIMIT: usize = 50;
    s.profile("forks", &sh_with(&[("processes", &LIMIT.to_string())]));
    // Bounded: without a limit it ends after 1000 sleepers.
    let script = r#"sh -c 'i=0; while [ $i -lt 1000 ]; do sleep 600 & i=$((i+1)); done' 2>/dev/null
n=0; for p in /proc/[0-9]*; do n=$((n+1)); done
echo "processes $n"
read x
exit 0
"#;
    let (mut sandbox, stdin, lines) = start(&s, "forks", script);
    let Ok(line) = lines.recv_timeout(Duration::from_secs(60)) else {
        return Err("the fork loop never ended (no process limit?)".into());
    };
    let n: usize = line
        .strip_prefix("processes ")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("unexpected output: {line}"))?;
    // While the sandbox is at its limit, the same user on the host starts
    // processes as usual.
    let host = s
        .command("/bin/sh")
        .args(["-c", "/bin/true && echo host-ok"])
        .run();
    drop(stdin);
    let status = sandbox.wait(Duration::from_secs(30));
    ensure!(
        host.code() == Some(0) && host.stdout == "host-ok\n",
        "the host user could not start a process while the sandbox was at its limit: {}",
        host.show()
    );
    // As the user: init, the shell and the sleepers count (the inner shell
    // has ended); as root: the PID namespace's numbers run out.
    let (low, high) = match who {
        Who::User => (LIMIT - 3, LIMIT),
        Who::Root => (LIMIT, LIMIT + 300),
    };
    ensure!(
        (low..=high).contains(&n),
        "{n} processes in the sandbox when fork failed; expected {low} to {high}"
    );
    ensure!(
        status.is_some_and(|s| s.success()),
        "the sandbox did not end well: {status:?}"
    );
    pass()
}

/// Shmem of /proc/meminfo, in bytes.
fn host_shmem() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("Shmem:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// With a 64 MiB budget, filling every writable tmpfs (200 MiB tried in
/// each) fails with ENOSPC, and the host's shared memory grows by no more
/// than the budget (unbounded, it would be a gigabyte).
fn tmpfs(who: Who) -> TestResult {
    let s = scratch!(who);
    const MIB: u64 = 1 << 20;
    s.profile("full", &sh_with(&[("tmpfs", "\"64M\"")]));
    let script = r#"for d in /tmp /var/tmp /dev/shm "$HOME" "$XDG_RUNTIME_DIR"; do
  e=$(dd if=/dev/zero of="$d/fill" bs=1M count=200 2>&1); rc=$?
  case "$e" in *"No space left on device"*) e=ENOSPC;; *) e="other: $e";; esac
  echo "$d $rc $(wc -c < "$d/fill") $e"
done
echo full
read x
"#;
    let before = host_shmem();
    let (mut sandbox, stdin, lines) = start(&s, "full", script);
    let mut report = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l == "full" => break,
            Ok(l) => report.push(l),
            Err(_) => return Err(format!("the sandbox stopped early: {report:?}").into()),
        }
    }
    let during = host_shmem();
    drop(stdin);
    sandbox.wait(Duration::from_secs(30));
    // Others' tests may use shared memory meanwhile: a margin of 64 MiB,
    // still far from the gigabyte an unbounded sandbox would take.
    let grew = during.saturating_sub(before);
    ensure!(
        grew <= 128 * MIB,
        "the host's Shmem grew by {} MiB for a 64 MiB budget",
        grew / MIB
    );
    ensure!(report.len() == 5, "one line per tmpfs: {report:?}");
    for line in &report {
        let f: Vec<&str> = line.splitn(4, ' ').collect();
        let size: u64 = f.get(2).and_then(|n| n.parse().ok()).unwrap_or(u64::MAX);
        ensure!(
            f.get(1) != Some(&"0") && f.get(3) == Some(&"ENOSPC") && size <= 13 * MIB,
            "a tmpfs took more than its share or did not fail with ENOSPC: {line}"
        );
    }
    pass()
}

/// The limits in force inside, as /proc/self/limits shows them: no core
/// dumps, the process limit, open files at most the profile's.
fn rlimits(who: Who) -> TestResult {
    let s = scratch!(who);
    s.profile(
        "lim",
        &sh_with(&[("processes", "77"), ("open_files", "1000")]),
    );
    let out = s
        .antimony(["run", "lim", "--", "-c", "cat /proc/self/limits"])
        .run();
    let row = |name: &str| -> Vec<String> {
        out.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| {
                l[name.len()..]
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let core = row("Max core file size");
    let procs = row("Max processes");
    let files = row("Max open files");
    let num = |v: Option<&String>| v.and_then(|v| v.parse::<u64>().ok());
    ensure!(
        out.code() == Some(0)
            && core.first().map(String::as_str) == Some("0")
            && core.get(1).map(String::as_str) == Some("0")
            && num(procs.first()) == Some(77)
            && num(procs.get(1)) == Some(77)
            && num(files.get(1)).is_some_and(|n| n <= 1000),
        "limits inside: {}",
        out.show()
    );
    // core_dumps = true leaves the user's own core limit.
    s.profile("dumps", &sh_with(&[("core_dumps", "true")]));
    let mine = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let out = s
        .antimony(["run", "dumps", "--", "-c", "cat /proc/self/limits"])
        .run();
    let line = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("Max core file size"))
            .map(String::from)
    };
    ensure!(
        out.code() == Some(0) && line(&out.stdout) == line(&mine),
        "core_dumps = true: {}",
        out.show()
    );
    pass()
}

/// `--dry-run` names each limit, its value and where it comes from, and
/// every tmpfs's size.
fn dry_run(who: Who) -> TestResult {
    let s = scratch!(who);
    let file = s.profile(
        "dry",
        &sh_with(&[("processes", "500"), ("tmpfs", "\"1G\"")]),
    );
    let out = s.antimony(["run", "dry", "--dry-run"]).run();
    let text = &out.stdout;
    let by = format!("(set by {})", file.display());
    let processes = match who {
        Who::User => format!("processes:  500 {by}: RLIMIT_NPROC"),
        Who::Root => format!("processes:  500 {by}: as root, the PID namespace's pid_max 800"),
    };
    for want in [
        processes.as_str(),
        "open files: 65536 (default): RLIMIT_NOFILE",
        "core dumps: off (default): RLIMIT_CORE 0",
        &format!("tmpfs:      1 GiB for all together {by}"),
        "tmpfs   /tmp (mode 1777, at most ",
        "tmpfs   /dev (mode 0755, at most 1 MiB)",
    ] {
        ensure!(
            out.code() == Some(0) && text.contains(want),
            "--dry-run lacks `{want}`: {}",
            out.show()
        );
    }
    pass()
}

/// Where cgroup v2 has the memory and cpu controllers: a cgroup delegated
/// to whoever runs antimony (made here by root, as systemd does for a user
/// with Delegate=yes), antimony started in a leaf of it; the sandbox's
/// cgroup gets memory.max and cpu.max, a program that takes more than the
/// memory is killed, and the cgroup is removed at the end. On this VM the
/// controllers are on cgroup v1: the one skip CI allows
/// (`skip_controllers_on_cgroup_v1`).
fn memory_and_cpu(who: Who) -> TestResult {
    if controllers_on_cgroup_v1() {
        return skip_controllers_on_cgroup_v1(
            "limits::memory_and_cpu_are_bounded_through_cgroup_v2",
        );
    }
    let s = scratch!(who);
    if !world().is_root {
        return skip("delegating a cgroup for the test needs root");
    }
    let delegated = Delegated::new(&s).map_err(|e| format!("cannot delegate a cgroup: {e}"))?;
    s.profile("cg", &sh_with(&[("memory", "\"64M\""), ("cpu", "\"50%\"")]));
    let script = "echo ready; sleep 1; head -c 200M /dev/zero | tail > /dev/null && echo survived";
    let mut cmd = std::process::Command::new(&world().antimony);
    cmd.args(["run", "cg", "--", "-c", script]);
    s.set_environment(&mut cmd);
    delegated.start_in(&mut cmd, s.uid, s.gid);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let child = cmd.spawn().map_err(|e| e.to_string())?;
    let mut sandbox = Started {
        child,
        what: "antimony",
    };
    let found = wait_until(Duration::from_secs(20), || {
        delegated.sandbox_cgroups().iter().any(|d| {
            std::fs::read_to_string(d.join("memory.max")).is_ok_and(|m| m.trim() == "67108864")
                && std::fs::read_to_string(d.join("cpu.max"))
                    .is_ok_and(|c| c.trim() == "50000 100000")
        })
    });
    let status = sandbox.wait(Duration::from_secs(60));
    let mut out = String::new();
    let mut err = String::new();
    {
        use std::io::Read;
        if let Some(mut o) = sandbox.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = sandbox.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
    }
    ensure!(
        found,
        "no cgroup with memory.max 64M and cpu.max 50% for the sandbox (status {status:?}): {out}{err}"
    );
    ensure!(
        out.contains("ready") && !out.contains("survived"),
        "the program that took 200 MiB was not stopped at 64 MiB (status {status:?}): {out}{err}"
    );
    ensure!(
        wait_until(Duration::from_secs(5), || delegated
            .sandbox_cgroups()
            .is_empty()),
        "the sandbox's cgroup is left behind"
    );
    pass()
}

/// A cgroup v2 folder delegated to the scratch's user, with a leaf for
/// antimony; removed when dropped.
struct Delegated {
    dir: std::path::PathBuf,
    leaf: std::ffi::CString,
}

impl Delegated {
    fn new(s: &Scratch) -> Result<Delegated, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        let path = own
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or("no cgroup v2")?;
        let mount = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .find(|m| Path::new(m).join("cgroup.controllers").exists())
            .ok_or("no cgroup v2 mount")?;
        // A sibling of the test's own cgroup (a child of the root cgroup
        // when the test runs there), under a parent that hands memory and
        // cpu down (enabled there if need be).
        let own_dir = Path::new(mount).join(path.trim().trim_start_matches('/'));
        let parent = match own_dir.parent() {
            Some(p) if own_dir != Path::new(mount) => p.to_path_buf(),
            _ => own_dir.clone(),
        };
        let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory +cpu");
        let dir = parent.join(unique(s, "cgroup"));
        std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
        let d = Delegated {
            leaf: std::ffi::CString::new(
                dir.join("leaf/cgroup.procs").as_os_str().as_encoded_bytes(),
            )
            .map_err(|e| e.to_string())?,
            dir,
        };
        std::fs::write(d.dir.join("cgroup.subtree_control"), "+memory +cpu")
            .map_err(|e| format!("enable memory and cpu: {e}"))?;
        std::fs::create_dir(d.dir.join("leaf")).map_err(|e| e.to_string())?;
        for p in [
            d.dir.clone(),
            d.dir.join("cgroup.procs"),
            d.dir.join("cgroup.subtree_control"),
            d.dir.join("leaf"),
            d.dir.join("leaf/cgroup.procs"),
        ] {
            std::os::unix::fs::chown(&p, Some(s.uid), Some(s.gid)).map_err(|e| e.to_string())?;
        }
        Ok(d)
    }

    /// The command starts in the leaf, then takes the identity `uid`,
    /// `gid` (moving needs root: the cgroup it leaves is not the user's).
    /// System calls only before the exec: the test runner has threads.
    fn start_in(&self, cmd: &mut std::process::Command, uid: u32, gid: u32) {
        use std::os::unix::process::CommandExt;
        let leaf = self.leaf.clone();
        // SAFETY: open, write, close, setgroups, setgid and setuid only,
        // on memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(leaf.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let r = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if r < 0
                    || libc::setgroups(0, std::ptr::null()) < 0
                    || libc::setgid(gid) < 0
                    || libc::setuid(uid) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// The cgroups antimony made here for its sandboxes.
    fn sandbox_cgroups(&self) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&self.dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("antimony-"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        for d in self.sandbox_cgroups() {
            let _ = std::fs::remove_dir(d);
        }
        let _ = std::fs::remove_dir(self.dir.join("leaf"));
        let _ = std::fs::remove_dir(&self.dir);
    }
}
