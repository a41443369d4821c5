//! The escape battery: the probe (`tests/probe/main.rs`) runs inside the
//! shipped `minimal` sandbox, once as root and once as the unprivileged test
//! user, and attempts each escape the issue lists. The probe prints one line
//! per attempt: `BLOCKED …` (exit 0) or `ESCAPED …` (exit 1). Each test
//! asserts the safe outcome, checks on the host that nothing happened there,
//! and, where it can, first shows with a control that the attempt would have
//! worked without the sandbox (so that a probe that cannot escape anything
//! proves nothing).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both("escape::write_host_files", write_host_files));
    t.extend(both(
        "escape::links_in_the_home_never_lead_a_mount_out",
        links_lead_nowhere,
    ));
    t.extend(both(
        "escape::antimonys_folders_stay_hidden_under_another_spelling",
        another_spelling,
    ));
    t.extend(both("escape::read_secrets", read_secrets));
    t.extend(both("escape::host_processes", host_processes));
    t.extend(both("escape::ptrace_and_process_vm", ptrace_and_process_vm));
    t.extend(both("escape::inherited_descriptor", inherited_descriptor));
    t.extend(both("escape::chroot_and_mounts", chroot_and_mounts));
    t.extend(both("escape::nested_userns_and_setns", userns_and_setns));
    t.extend(both("escape::terminal_injection", terminal_injection));
    t.extend(both("escape::keyrings", keyrings));
    t.extend(both("escape::kernel_attack_surface", kernel_attack_surface));
    t.extend(both("escape::foreign_architectures", foreign_architectures));
    t.extend(both("escape::descriptors_of_init", descriptors_of_init));
    t.extend(both(
        "escape::descriptors_and_memory_of_a_sibling",
        descriptors_and_memory_of_a_sibling,
    ));
    t.extend(both("escape::setuid_binary", setuid_binary));
    t.extend(both("escape::file_capabilities", file_capabilities));
    t.extend(both("escape::no_capabilities", no_capabilities));
    t.extend(both("escape::network", network));
    t.extend(both("escape::proc_sys_and_sys", proc_sys_and_sys));
    t.extend(both("escape::kill_9_leaves_nothing", kill_9_leaves_nothing));
    t.extend(both("escape::kill_9_during_set_up", kill_9_during_set_up));
    t.extend(both("escape::orphans_die_with_the_program", orphans_die));
    t.extend(both("escape::old_root_invisible", old_root_invisible));
    t.extend(both("escape::environment_is_the_plans", environment));
    t
}

// ---------------------------------------------------------------- helpers

/// `antimony run PROFILE --ro PROBE=/probe --forward off EXTRA… --program
/// PROGRAM -- SUB…`. The paths the probe attacks are its arguments only for
/// the test's convenience: an attack is the program's, never the caller's
/// command line, so nothing the arguments name is forwarded.
fn run_in(s: &Scratch, profile: &str, extra: &[String], program: &str, sub: &[&str]) -> Run {
    let mut args: Vec<String> = vec![
        "run".into(),
        profile.into(),
        "--ro".into(),
        format!("{}=/probe", world().probe.display()),
        "--forward".into(),
        "off".into(),
    ];
    args.extend(extra.iter().cloned());
    args.extend(["--program".into(), program.into(), "--".into()]);
    args.extend(sub.iter().map(|a| a.to_string()));
    s.antimony(args)
}

/// The probe in the minimal sandbox.
fn sandboxed(s: &Scratch, extra: &[String], sub: &[&str]) -> Run {
    run_in(s, "minimal", extra, "/probe", sub)
}

/// The probe on the host, as the scratch's user: the controls.
fn on_host(s: &Scratch, sub: &[&str]) -> Run {
    s.command(&world().probe).args(sub)
}

/// Runs the probe in the sandbox and requires `BLOCKED`.
fn expect_blocked(s: &Scratch, extra: &[String], sub: &[&str]) -> Result<String, Failed> {
    let out = sandboxed(s, extra, sub).run();
    blocked(&sub.join(" "), &out)
}

fn ro(host: &Path, sandbox: &str) -> Vec<String> {
    vec!["--ro".into(), format!("{}={sandbox}", host.display())]
}

// ------------------------------------------------------------ file system

/// Writing a host file outside the binds: the root, /etc, /usr, /var, a host
/// folder that is not bound (at its host path), a read-only bind. Nothing
/// appears on the host. Control: a read-write bind is written.
fn write_host_files(who: Who) -> TestResult {
    let s = scratch!(who);
    let name = unique(&s, "escape");
    s.mkdir("outside");
    s.mkdir("robind");
    s.mkdir("rwbind");
    let mut extra = ro(&s.path("robind"), "/data");
    extra.extend(["--rw".into(), format!("{}=/rw", s.path("rwbind").display())]);

    // Host path → path in the sandbox.
    let attempts: Vec<(std::path::PathBuf, String)> = vec![
        (format!("/{name}").into(), format!("/{name}")),
        (format!("/etc/{name}").into(), format!("/etc/{name}")),
        (format!("/usr/{name}").into(), format!("/usr/{name}")),
        (format!("/var/{name}").into(), format!("/var/{name}")),
        (
            s.path("outside").join(&name),
            s.path("outside").join(&name).display().to_string(),
        ),
        (
            s.path("outside").join(&name),
            format!("/proc/1/root{}", s.path("outside").join(&name).display()),
        ),
        (s.path("robind").join(&name), format!("/data/{name}")),
    ];
    let mut failure = None;
    for (host, inside) in &attempts {
        let out = sandboxed(&s, &extra, &["write", inside]).run();
        if let Err(e) = blocked(&format!("write {inside}"), &out) {
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

    // Control: the probe's write works where the sandbox allows it.
    let out = sandboxed(&s, &extra, &["write", &format!("/rw/{name}")]).run();
    escaped("write to a read-write bind", &out)?;
    ensure!(
        s.path("rwbind").join(&name).exists(),
        "the read-write bind was not written: {}",
        out.show()
    );
    pass()
}

/// /etc/shadow, /etc/gshadow and /etc/sudoers are not there (by any path),
/// init's environment and memory are not readable, and a mode-0600 file of
/// another user (nobody) in a bound folder is not readable even by root.
/// Control: a world-readable file next to it is.
fn read_secrets(who: Who) -> TestResult {
    let s = scratch!(who);
    for path in [
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/sudoers",
        "/oldroot/etc/shadow",
        "/proc/1/root/etc/shadow",
        "/proc/1/environ",
        "/proc/1/mem",
    ] {
        expect_blocked(&s, &[], &["read", path])?;
    }
    if !world().is_root {
        return skip("needs root to create a file owned by nobody");
    }
    let secret = s.write("secret/key", "the other user's secret\n");
    chown(&secret, Some(65534), Some(65534)).map_err(|e| format!("chown: {e}"))?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod: {e}"))?;
    let public = s.write("secret/public", "anyone may read this\n");
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| format!("chmod: {e}"))?;
    let extra = ro(&s.path("secret"), "/secret");
    let l = expect_blocked(&s, &extra, &["read", "/secret/key"])?;
    ensure!(l.ends_with("EACCES"), "not refused by permissions: {l}");
    let out = sandboxed(&s, &extra, &["read", "/secret/public"]).run();
    escaped("read a world-readable file in the same bind", &out)?;
    pass()
}

// -------------------------------------------------------------- processes

/// A host process (a `sleep` of the same user) cannot be signalled, opened
/// as a pidfd or seen in /proc; /proc lists only the sandbox's processes;
/// /proc/1/root cannot be listed.
fn host_processes(who: Who) -> TestResult {
    let s = scratch!(who);
    let sleep = Reaped(s.command("sleep").arg("60").spawn());
    let pid = sleep.0.id();
    ensure!(alive(pid), "the host sleep {pid} is not running");
    // Control: the same probe on the host sees it.
    escaped(
        "signal a host process from the host",
        &on_host(&s, &["host-pid", &pid.to_string()]).run(),
    )?;
    expect_blocked(&s, &[], &["host-pid", &pid.to_string()])?;
    expect_blocked(&s, &[], &["procs"])?;
    expect_blocked(&s, &[], &["ls", "/proc/1/root"])?;
    ensure!(alive(pid), "the host sleep {pid} died");
    drop(sleep);
    pass()
}

/// PTRACE_TRACEME, attaching to a child and to init, process_vm_readv of
/// itself, a child and init, process_vm_writev: all refused by the filter.
/// Control: on the host the same calls succeed.
fn ptrace_and_process_vm(who: Who) -> TestResult {
    let s = scratch!(who);
    escaped(
        "process_vm_readv on the host",
        &on_host(&s, &["vm-read"]).run(),
    )?;
    escaped("ptrace on the host", &on_host(&s, &["ptrace"]).run())?;
    expect_blocked(&s, &[], &["ptrace"])?;
    expect_blocked(&s, &[], &["vm-read"])?;
    pass()
}

/// A host folder's descriptor leaked into antimony (no close-on-exec, at
/// 777) does not reach the program: only 0, 1 and 2 are open, and
/// `openat(777, "..")` is EBADF. Control: on the host it is open.
fn inherited_descriptor(who: Who) -> TestResult {
    let s = scratch!(who);
    let dir = std::fs::File::open(s.mkdir("outside")).map_err(|e| format!("open: {e}"))?;
    let mut control = on_host(&s, &["fds", "777"]);
    pass_fd(&mut control, dir.as_raw_fd(), 777);
    escaped("a leaked descriptor on the host", &control.run())?;
    let mut run = sandboxed(&s, &[], &["fds", "777"]);
    pass_fd(&mut run, dir.as_raw_fd(), 777);
    let l = blocked("fds 777", &run.run())?;
    ensure!(l.ends_with("EBADF"), "{l}");
    pass()
}

/// chroot and its breakout, mount(2), remounting read-only binds (the
/// `/usr` of the base and a `--ro` one) read-write, unmounting the
/// read-only `/proc/sys` and a bind, the new mount API: all refused.
fn chroot_and_mounts(who: Who) -> TestResult {
    let s = scratch!(who);
    s.mkdir("robind");
    let extra = ro(&s.path("robind"), "/data");
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
        expect_blocked(&s, &extra, sub)?;
    }
    // Still read-only after all that.
    expect_blocked(&s, &extra, &["write", "/data/x"])?;
    ensure!(
        !s.path("robind/x").exists(),
        "the read-only bind was written"
    );
    pass()
}

/// unshare/clone with CLONE_NEWUSER: EPERM; clone3: ENOSYS; setns into
/// any namespace (its own ones, init's by pidfd): EPERM. Control: on the
/// host, a user namespace can be created.
fn userns_and_setns(who: Who) -> TestResult {
    let s = scratch!(who);
    escaped(
        "a user namespace on the host",
        &on_host(&s, &["userns"]).run(),
    )?;
    let l = expect_blocked(&s, &[], &["userns"])?;
    ensure!(l.contains("clone3(CLONE_NEWUSER) ENOSYS"), "{l}");
    expect_blocked(&s, &[], &["setns"])?;
    pass()
}

/// TIOCSTI (plain and with high bits, CVE-2019-10063) and TIOCLINUX on a
/// pseudo-terminal given as antimony's stdin: refused, and nothing waits in
/// the terminal's input afterwards. Control: input injected or typed on the
/// host is seen.
fn terminal_injection(who: Who) -> TestResult {
    let s = scratch!(who);
    let (master, slave) = open_pty()?;
    // Control: the detection sees input. As root, the probe itself injects
    // on the host (root may push into any terminal); otherwise a byte
    // typed on the master.
    if world().is_root {
        let mut cmd = std::process::Command::new(&world().probe);
        cmd.arg("tiocsti")
            .stdin(std::process::Stdio::from(
                slave.try_clone().map_err(|e| format!("dup: {e}"))?,
            ))
            .stdout(std::process::Stdio::piped());
        let out = cmd.output().map_err(|e| format!("run the probe: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            text.starts_with("ESCAPED") && out.status.code() == Some(1),
            "control: the probe could not inject on the host: {text}"
        );
    } else {
        // SAFETY: writing one byte from a constant to a descriptor we own.
        unsafe { libc::write(master.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    }
    ensure!(
        pending(&slave, Duration::from_secs(5)) && !drain(&slave, Duration::ZERO).is_empty(),
        "control: the terminal's input was not seen"
    );

    for sub in ["tiocsti", "tioclinux"] {
        let mut run = sandboxed(&s, &[], &[sub]);
        pass_fd(&mut run, slave.as_raw_fd(), 0);
        let out = run.run();
        let l = blocked(sub, &out)?;
        // The probe first made the terminal its own controlling terminal,
        // so that only the filter could refuse TIOCSTI.
        ensure!(
            sub != "tiocsti" || l.contains("TIOCSCTTY ok"),
            "the probe could not take the terminal: {l}"
        );
        let injected = drain(&slave, Duration::ZERO);
        ensure!(
            injected.is_empty(),
            "{sub}: {:?} was injected into the terminal: {}",
            String::from_utf8_lossy(&injected),
            out.show()
        );
    }
    drop(master);
    pass()
}

/// keyctl, add_key and request_key: EPERM. Control: on the host they work.
fn keyrings(who: Who) -> TestResult {
    let s = scratch!(who);
    escaped("keyrings on the host", &on_host(&s, &["keyctl"]).run())?;
    expect_blocked(&s, &[], &["keyctl"])?;
    pass()
}

/// bpf, perf_event_open, userfaultfd, io_uring_*, kexec_load,
/// init/finit/delete_module, open_by_handle_at, name_to_handle_at and
/// pivot_root: each answered EPERM by the filter before the kernel looks at
/// the (harmless) arguments.
fn kernel_attack_surface(who: Who) -> TestResult {
    let s = scratch!(who);
    escaped(
        "the same calls on the host",
        &on_host(&s, &["denied"]).run(),
    )?;
    expect_blocked(&s, &[], &["denied"])?;
    pass()
}

/// x32 syscalls answer EPERM and i386 ones (`int 0x80`) kill the caller.
/// Control: on the host they reach the kernel.
fn foreign_architectures(who: Who) -> TestResult {
    let s = scratch!(who);
    if !cfg!(target_arch = "x86_64") {
        return skip("foreign syscall ABIs are probed on x86_64 only");
    }
    escaped(
        "foreign ABIs on the host",
        &on_host(&s, &["foreign-arch"]).run(),
    )?;
    let l = expect_blocked(&s, &[], &["foreign-arch"])?;
    ensure!(l.contains("x32 getpid EPERM"), "{l}");
    pass()
}

/// The program cannot take init's descriptors (among them the pipe to
/// antimony) with pidfd_getfd: init is not dumpable. Control: on the host
/// the probe takes those of a process of the same user.
fn descriptors_of_init(who: Who) -> TestResult {
    let s = scratch!(who);
    let sleep = Reaped(s.command("sleep").arg("60").spawn());
    let pid = sleep.0.id().to_string();
    escaped(
        "pidfd_getfd on the host",
        &on_host(&s, &["getfd", &pid]).run(),
    )?;
    drop(sleep);
    expect_blocked(&s, &[], &["getfd", "1"])?;
    pass()
}

/// A sibling in the sandbox, a command `antimony enter` started there
/// (not the program's descendant): the program cannot take its
/// descriptors (pidfd_getfd: the filter; reopening /proc/PID/fd/N: each
/// process init starts has a Landlock domain of its own), read its memory
/// (/proc/PID/mem) or its environment. Controls: on the host the probe
/// does all that to a process of the same user; in the sandbox, it still
/// reads the memory, descriptors and environment of its own child.
fn descriptors_and_memory_of_a_sibling(who: Who) -> TestResult {
    let s = scratch!(who);
    let token = unique(&s, "sibling");
    // In a process group of its own, ended whole: killing the shell alone
    // would leave its `sleep` behind.
    let mut run = s.command("/bin/sh").args(["-c", "sleep 60; :", &token]);
    std::os::unix::process::CommandExt::process_group(&mut run.cmd, 0);
    let target = Reaped(run.spawn());
    escaped(
        "a sibling on the host",
        &on_host(&s, &["sibling", &token]).run(),
    )?;
    // SAFETY: signalling the process group this test started.
    unsafe { libc::kill(-(target.0.id() as libc::pid_t), libc::SIGKILL) };
    drop(target);
    escaped(
        "the probe's own child in the sandbox",
        &sandboxed(&s, &[], &["child-mem"]).run(),
    )?;

    let mut probe = crate::fixture::Background::start(sandboxed(&s, &[], &["sibling", &token]));
    let listed = wait_until(Duration::from_secs(30), || {
        s.antimony(["ps", "--json"])
            .run()
            .stdout
            .contains("\"minimal\"")
    });
    ensure!(listed, "the probe's instance was never listed");
    let sibling = Reaped(
        s.antimony([
            "enter",
            "minimal",
            "--",
            "/bin/sh",
            "-c",
            "sleep 60; :",
            &token,
        ])
        .spawn(),
    );
    let out = probe.finish()?;
    drop(sibling);
    let l = blocked("look into a sibling", &out)?;
    ensure!(
        l.contains("pidfd_getfd 0 EPERM") && l.contains("read /proc/PID/mem EACCES"),
        "{l}"
    );
    pass()
}

// -------------------------------------------------------------- privilege

/// A setuid-root copy of the probe, bound in: run as the program and
/// executed by the program, it keeps the invoking uid, NoNewPrivs 1 and no
/// capability. Control: on the host it gains root (or, for root, its
/// capabilities).
fn setuid_binary(who: Who) -> TestResult {
    let s = scratch!(who);
    if !world().is_root {
        return skip("needs root to make a setuid-root binary");
    }
    let dir = s.mkdir("suid");
    // Only the scratch's user may reach it while it exists.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod: {e}"))?;
    let bin = dir.join("antimony-probe");
    copy_probe(&bin, 0o4755)?;
    let uid = s.uid.to_string();
    let control = s.command(&bin).args(["ids", &uid]).run();
    if control.code() != Some(1) {
        return skip(format!(
            "a setuid-root binary gains nothing on this host, so the test proves nothing: {}",
            control.show()
        ));
    }
    let extra = ro(&dir, "/suid");
    let direct = run_in(
        &s,
        "minimal",
        &extra,
        "/suid/antimony-probe",
        &["ids", &uid],
    )
    .run();
    blocked("setuid binary as the program", &direct)?;
    let nested = sandboxed(&s, &extra, &["exec", "/suid/antimony-probe", "ids", &uid]).run();
    let l = blocked("setuid binary executed by the program", &nested)?;
    ensure!(
        l.contains(&format!("euid {uid} ")) && l.contains("NoNewPrivs 1"),
        "{l}"
    );
    pass()
}

/// A copy of the probe with a file capability (CAP_NET_BIND_SERVICE,
/// permitted and effective), bound in: run as the program and executed by
/// it, it holds no capability. Control: on the host it does.
fn file_capabilities(who: Who) -> TestResult {
    let s = scratch!(who);
    if !world().is_root {
        return skip("needs root to give a file a capability");
    }
    let dir = s.mkdir("fcaps");
    let bin = match probe_with_file_capability(&dir)? {
        Ok(bin) => bin,
        Err(why) => return skip(why),
    };
    let control = s.command(&bin).arg("caps").run();
    escaped("a file capability on the host", &control)?;
    let extra = ro(&dir, "/fcaps");
    blocked(
        "file capability as the program",
        &run_in(&s, "minimal", &extra, "/fcaps/antimony-probe", &["caps"]).run(),
    )?;
    blocked(
        "file capability executed by the program",
        &sandboxed(&s, &extra, &["exec", "/fcaps/antimony-probe", "caps"]).run(),
    )?;
    pass()
}

/// CapInh, CapPrm, CapEff, CapBnd and CapAmb are all zero.
fn no_capabilities(who: Who) -> TestResult {
    let s = scratch!(who);
    expect_blocked(&s, &[], &["caps"])?;
    pass()
}

// ---------------------------------------------------------------- network

/// Connections that arrived at a listener (non-blocking).
fn accepted_tcp(l: &std::net::TcpListener) -> usize {
    let mut n = 0;
    while l.accept().is_ok() {
        n += 1;
    }
    n
}

fn accepted_unix(l: &std::os::unix::net::UnixListener) -> usize {
    let mut n = 0;
    while l.accept().is_ok() {
        n += 1;
    }
    n
}

/// A TCP listener on the host's loopback and a host abstract unix socket:
/// refused without network and with the isolated one (and nothing
/// arrives); the TCP listener is reached with `--network=host` and with a
/// profile that says `network = "host"`, the abstract socket still is not
/// (Landlock's scope).
fn network(who: Who) -> TestResult {
    use std::os::linux::net::SocketAddrExt;
    let s = scratch!(who);
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("listen: {e}"))?;
    tcp.set_nonblocking(true).map_err(|e| e.to_string())?;
    let port = tcp
        .local_addr()
        .map_err(|e| e.to_string())?
        .port()
        .to_string();
    let name = unique(&s, "socket");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| e.to_string())?;
    let unix = std::os::unix::net::UnixListener::bind_addr(&addr)
        .map_err(|e| format!("listen on @{name}: {e}"))?;
    unix.set_nonblocking(true).map_err(|e| e.to_string())?;

    expect_blocked(&s, &[], &["tcp", &port])?;
    expect_blocked(&s, &[], &["unix", &name])?;
    if installed("pasta") {
        let isolated = ["--network".to_string()];
        expect_blocked(&s, &isolated, &["tcp", &port])?;
        expect_blocked(&s, &isolated, &["unix", &name])?;
    }
    ensure!(accepted_tcp(&tcp) == 0, "a TCP connection reached the host");
    ensure!(
        accepted_unix(&unix) == 0,
        "a unix connection reached the host"
    );

    s.profile(
        "escape-network",
        "inherits = [\"minimal\"]\n\n[sandbox]\nnetwork = \"host\"\n",
    );
    let runs: [(&str, Vec<String>); 2] = [
        ("minimal", vec!["--network=host".into()]),
        ("escape-network", vec![]),
    ];
    for (profile, extra) in runs {
        let out = run_in(&s, profile, &extra, "/probe", &["tcp", &port]).run();
        escaped(&format!("{profile} {extra:?}: tcp"), &out)?;
        ensure!(
            wait_until(Duration::from_secs(5), || accepted_tcp(&tcp) == 1),
            "{profile}: the TCP connection did not arrive"
        );
        // The host's abstract sockets stay out of reach unless the profile
        // names some (hostside::misc::abstract_sockets).
        let out = run_in(&s, profile, &extra, "/probe", &["unix", &name]).run();
        blocked(&format!("{profile} {extra:?}: unix"), &out)?;
        ensure!(
            accepted_unix(&unix) == 0,
            "{profile}: a unix connection reached the host"
        );
    }
    pass()
}

// ------------------------------------------------------------- /proc, /sys

/// Kernel tunables stay as they are: /proc/sys (read-only), the sandbox's
/// own hostname, the user-namespace limit, /proc/sysrq-trigger (only ever
/// opened), and /sys (absent, and the root is read-only).
fn proc_sys_and_sys(who: Who) -> TestResult {
    let s = scratch!(who);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    for path in [
        "/proc/sys/kernel/hostname",
        "/proc/sys/user/max_user_namespaces",
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/vm/drop_caches",
        "/proc/sysrq-trigger",
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ] {
        expect_blocked(&s, &[], &["rewrite", path])?;
    }
    expect_blocked(&s, &[], &["write", "/sys/antimony-escape"])?;
    expect_blocked(&s, &[], &["write", "/proc/sys/kernel/antimony-escape"])?;
    ensure!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default() == hostname,
        "the host's hostname changed"
    );
    pass()
}

// ---------------------------------------------------------- dies with it

/// `kill -9` of antimony while the sandbox runs a tree of processes (some
/// orphaned, some in sessions of their own, all ignoring SIGTERM and
/// SIGHUP): none of them survives.
fn kill_9_leaves_nothing(who: Who) -> TestResult {
    let s = scratch!(who);
    let token = unique(&s, "tree");
    const CHILDREN: usize = 6;
    let mut child = sandboxed(&s, &[], &["tree", &token, &CHILDREN.to_string()]).spawn();
    let antimony = child.id();
    // The sandbox's init (a fork of antimony, same command line), the probe,
    // and its children.
    let expected = CHILDREN + 2;
    let started = wait_until(Duration::from_secs(10), || {
        with_token(&token, antimony).len() >= expected
    });
    let before = with_token(&token, antimony);
    let _ = child.kill();
    let status = child.wait();
    if !started {
        kill_all(&with_token(&token, antimony));
        // Read only now: the sandbox's processes hold the pipe open.
        let mut out = String::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        return Err(format!(
            "the tree did not start: {} of {expected} processes ({before:?}); \
             antimony {status:?}, stdout {out:?}",
            before.len()
        )
        .into());
    }
    let gone = wait_until(Duration::from_secs(10), || {
        with_token(&token, antimony).is_empty()
    });
    let left = with_token(&token, antimony);
    kill_all(&left);
    ensure!(
        gone,
        "processes of the sandbox survived kill -9 of antimony: {left:?} (of {before:?})"
    );
    pass()
}

/// `kill -9` of antimony at once and after 1–9 ms, while it is still
/// building the sandbox: nothing survives either.
fn kill_9_during_set_up(who: Who) -> TestResult {
    let s = scratch!(who);
    let token = unique(&s, "early");
    for delay in 0..10 {
        let mut child = sandboxed(&s, &[], &["tree", &token, "3"]).spawn();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
    }
    let gone = wait_until(Duration::from_secs(10), || with_token(&token, 0).is_empty());
    let left = with_token(&token, 0);
    kill_all(&left);
    ensure!(
        gone,
        "processes survived antimony killed during set-up: {left:?}"
    );
    pass()
}

/// The program starts a tree (orphans, other sessions) and exits: antimony
/// reports its status and nothing of the tree survives.
fn orphans_die(who: Who) -> TestResult {
    let s = scratch!(who);
    let token = unique(&s, "orphans");
    let out = sandboxed(&s, &[], &["tree", &token, "6", "exit"]).run();
    let gone = wait_until(Duration::from_secs(10), || with_token(&token, 0).is_empty());
    let left = with_token(&token, 0);
    kill_all(&left);
    blocked("tree exit", &out)?;
    ensure!(gone, "the program's children survived it: {left:?}");
    pass()
}

// ------------------------------------------------------------------ misc

/// The host's old root and the build folders are gone: no /oldroot,
/// /newroot, /tmp/oldroot, /tmp/newroot.
fn old_root_invisible(who: Who) -> TestResult {
    let s = scratch!(who);
    expect_blocked(
        &s,
        &[],
        &[
            "absent",
            "/oldroot",
            "/newroot",
            "/tmp/oldroot",
            "/tmp/newroot",
        ],
    )?;
    pass()
}

/// Only what the plan lists is in the environment: a secret variable set
/// in antimony's environment does not leak.
fn environment(who: Who) -> TestResult {
    let s = scratch!(who);
    let secret = "ANTIMONY_ESCAPE_SECRET";
    let plan = sandboxed(&s, &["--dry-run".into()], &["env", secret])
        .env(secret, "leaked")
        .run();
    ensure!(plan.code() == Some(0), "{}", plan.show());
    let listed: Vec<String> = plan
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("environment"))
        .skip(1)
        .map_while(|l| l.strip_prefix("  "))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .collect();
    ensure!(
        !listed.is_empty(),
        "no environment in the plan: {}",
        plan.show()
    );
    ensure!(
        !listed.iter().any(|k| k == secret),
        "the plan passes {secret} on: {}",
        plan.show()
    );
    let out = sandboxed(&s, &[], &["env", secret])
        .env(secret, "leaked")
        .run();
    let l = blocked("env", &out)?;
    let names = l
        .rsplit_once("(names: ")
        .map(|(_, n)| n.trim_end_matches(')'))
        .unwrap_or_default();
    for n in names.split(',').filter(|n| !n.is_empty()) {
        ensure!(
            listed.iter().any(|k| k == n),
            "{n} is in the environment but not in the plan ({listed:?}): {l}"
        );
    }
    pass()
}

/// A sandbox can leave symbolic links in its persistent home between runs.
/// A link where the next launch mounts something beneath (here `~/.config`,
/// under which the profile binds a file and a folder) that points at the
/// host's root as the set-up sees it (`/oldroot/…`, absolutely or by
/// `..`) must not make antimony create a folder or a file on the host: the
/// host folder it names stays empty, whatever the run's outcome.
fn links_lead_nowhere(who: Who) -> TestResult {
    let s = scratch!(who);
    let target = s.mkdir("host-target");
    let source = s.mkdir("bind-source");
    s.write("bind-source/file", "x\n");
    s.profile(
        "linky",
        &format!(
            "inherits = [\"sh\"]\n[home]\npolicy = \"Enabled\"\n[files]\n\
             ro = [\"{src}=~/.config/made/folder\", \"{src}/file=~/.config/made/file\"]\n",
            src = source.display()
        ),
    );
    let home = s.mkdir("home/.local/share/antimony/linky");
    let depth = home.components().count();
    for link in [
        format!("/oldroot{}", target.display()),
        format!("{}oldroot{}", "../".repeat(depth + 2), target.display()),
    ] {
        let config = home.join(".config");
        let _ = std::fs::remove_file(&config);
        std::os::unix::fs::symlink(&link, &config).map_err(|e| e.to_string())?;
        if who == Who::User {
            let (uid, gid) = (s.uid, s.gid);
            std::os::unix::fs::lchown(&config, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let out = s.antimony(["run", "linky", "--", "-c", "true"]).run();
        let left: Vec<_> = std::fs::read_dir(&target)
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.path())
            .collect();
        ensure!(
            left.is_empty(),
            "through ~/.config -> {link}, the run made {left:?} on the host: {}",
            out.show()
        );
        ensure!(
            std::fs::read_link(&config).ok() == Some(link.clone().into()),
            "the link was replaced"
        );
    }
    pass()
}

/// The home known to antimony by one spelling (through a link, as
/// `/home` → `var/home` is on some systems) and bound writable by another
/// (its real path): antimony's folders in it stay masked, so the sandbox
/// cannot plant a profile or a hook its next launch would trust.
fn another_spelling(who: Who) -> TestResult {
    let s = scratch!(who);
    if !world().is_root {
        return skip("making a link in /run needs root");
    }
    s.mkdir("home/.config/antimony/profiles");
    let alias = PathBuf::from(format!(
        "/run/antimony-test-alias-{}-{}",
        std::process::id(),
        s.dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&alias);
    std::os::unix::fs::symlink(s.home(), &alias).map_err(|e| e.to_string())?;
    let planted = s.path("home/.config/antimony/planted.toml");
    let real = s.home().display().to_string();
    let out = s
        .antimony([
            "run",
            "sh",
            "--rw",
            &real,
            "--",
            "-c",
            &format!("echo 'path = \"/bin/sh\"' > {real}/.config/antimony/planted.toml"),
        ])
        .env("HOME", &alias)
        .env("XDG_CONFIG_HOME", alias.join(".config"))
        .env("XDG_DATA_HOME", alias.join(".local/share"))
        .env("XDG_CACHE_HOME", alias.join(".cache"))
        .env("XDG_STATE_HOME", alias.join(".local/state"))
        .run();
    let _ = std::fs::remove_file(&alias);
    ensure!(
        !planted.exists(),
        "the sandbox wrote {} (antimony's folders known as {}): {}",
        planted.display(),
        alias.display(),
        out.show()
    );
    ensure!(
        out.code() != Some(0) && out.stderr.contains("Read-only file system"),
        "the write was not refused by the mask: {}",
        out.show()
    );
    pass()
}
