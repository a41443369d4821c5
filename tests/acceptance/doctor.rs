//! `antimony doctor`: on this host, which has everything, it passes; each
//! precondition broken on purpose (user namespaces forbidden by their
//! sysctl, a helper missing, /dev/fuse unusable) is diagnosed, with the
//! command that fixes it, as root and as an ordinary user. Nothing of the
//! host is changed: the sysctl is set in a user namespace of the test's own
//! (user.max_user_namespaces is per user namespace, and limits every one
//! below), the rest is bound over in a mount namespace.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use libtest_mimic::{Failed, Trial};

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    both_each(
        "doctor",
        &[
            ("a_working_host_passes", working_host),
            (
                "no_user_namespaces_is_a_failure_with_the_sysctl_fix",
                no_userns,
            ),
            ("a_missing_helper_is_named_with_its_package", missing_helper),
            ("an_unusable_dev_fuse_is_named_with_its_fix", unusable_fuse),
        ],
    )
}

/// The line of check `id`, and the `fix:` line under it.
fn check<'a>(out: &'a str, id: &str) -> Result<(&'a str, Option<&'a str>), Failed> {
    let mut lines = out.lines();
    while let Some(l) = lines.next() {
        if l.split_whitespace().nth(1) == Some(&format!("{id}:")) {
            let fix = lines
                .take_while(|n| n.starts_with("         "))
                .find_map(|n| n.trim_start().strip_prefix("fix: "));
            return Ok((l, fix));
        }
    }
    Err(format!("no `{id}` check in:\n{out}").into())
}

fn working_host(who: Who) -> TestResult {
    let s = scratch!(who);
    let out = s.antimony(["doctor"]).run();
    ensure!(out.code() == Some(0), "doctor failed: {}", out.show());
    for id in [
        "userns",
        "seccomp",
        "landlock",
        "fuse",
        "tun",
        "xdg-dbus-proxy",
        "pasta",
    ] {
        let (line, _) = check(&out.stdout, id)?;
        ensure!(line.starts_with("ok "), "{id} is not ok: {}", out.show());
    }
    // The scratch's runtime folder is the user's, mode 0700.
    let (line, _) = check(&out.stdout, "runtime-dir")?;
    ensure!(line.starts_with("ok "), "{}", out.show());
    ensure!(
        out.stdout.ends_with("antimony run can work here\n")
            || out.stdout.contains("antimony run can work here ("),
        "{}",
        out.show()
    );
    let json = s.antimony(["doctor", "--json"]).run();
    let v: serde_json::Value = serde_json::from_str(&json.stdout)
        .map_err(|e| format!("--json is not JSON ({e}): {}", json.show()))?;
    ensure!(v["can_run"] == true, "{}", json.show());
    let userns = v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "userns"))
        .ok_or("no userns check in the JSON")?;
    ensure!(
        userns["status"] == "ok" && userns["fix"].is_null(),
        "{userns}"
    );
    pass()
}

/// `antimony doctor ARGS` (as the scratch's user) in a user namespace of
/// its own, made by root with every id mapped to itself, in which
/// user.max_user_namespaces is 0: no user namespace can be made below it.
/// Returns the exit code and what it printed.
fn doctor_without_userns(s: &Scratch, args: &[&str]) -> Result<(i32, String), Failed> {
    let c = |b: &[u8]| CString::new(b).map_err(|e| e.to_string());
    let mut argv: Vec<CString> = Vec::new();
    if s.who == Who::User {
        for a in [
            "/usr/bin/setpriv".to_string(),
            format!("--reuid={}", s.uid),
            format!("--regid={}", s.gid),
            "--init-groups".into(),
            "--".into(),
        ] {
            argv.push(c(a.as_bytes())?);
        }
    }
    argv.push(c(world().antimony.as_os_str().as_bytes())?);
    argv.push(c(b"doctor")?);
    for a in args {
        argv.push(c(a.as_bytes())?);
    }
    let mut cmd = std::process::Command::new("true");
    s.set_environment(&mut cmd);
    let mut env: Vec<CString> = Vec::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            env.push(c(&kv)?);
        }
    }
    let home = c(s.home().as_os_str().as_bytes())?;
    let argv_p: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let env_p: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let out_path = s.path("doctor.out");
    let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let (unshared_r, unshared_w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    let (mapped_r, mapped_w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    use std::os::fd::AsRawFd;
    let (out_fd, ur, uw, mr, mw) = (
        out.as_raw_fd(),
        unshared_r.as_raw_fd(),
        unshared_w.as_raw_fd(),
        mapped_r.as_raw_fd(),
        mapped_w.as_raw_fd(),
    );
    // SAFETY: the child makes only system calls on what was prepared
    // above, then execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child: descriptors and strings prepared before
        // the fork.
        unsafe {
            libc::close(ur);
            libc::close(mw);
            libc::dup2(out_fd, 1);
            libc::dup2(out_fd, 2);
            libc::chdir(home.as_ptr());
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                libc::_exit(120);
            }
            let mut b = [0u8; 1];
            libc::write(uw, b"u".as_ptr().cast(), 1);
            if libc::read(mr, b.as_mut_ptr().cast(), 1) != 1 {
                libc::_exit(121);
            }
            let fd = libc::open(
                c"/proc/sys/user/max_user_namespaces".as_ptr(),
                libc::O_WRONLY,
            );
            if fd < 0 || libc::write(fd, b"0\n".as_ptr().cast(), 2) != 2 {
                libc::_exit(122);
            }
            libc::close(fd);
            libc::execve(argv_p[0], argv_p.as_ptr(), env_p.as_ptr());
            libc::_exit(123);
        }
    }
    drop(unshared_w);
    drop(mapped_r);
    let reap = |pid| {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        status
    };
    let mut b = [0u8; 1];
    if nix::unistd::read(&unshared_r, &mut b) != Ok(1) {
        let status = reap(pid);
        return Err(
            format!("the child could not make a user namespace (wait status {status})").into(),
        );
    }
    let map = "0 0 4294967295\n";
    for f in ["uid_map", "gid_map"] {
        if let Err(e) = std::fs::write(format!("/proc/{pid}/{f}"), map) {
            drop(mapped_w);
            reap(pid);
            return Err(format!("write /proc/{pid}/{f}: {e}").into());
        }
    }
    let _ = nix::unistd::write(&mapped_w, b"m");
    drop(mapped_w);
    let status = reap(pid);
    let text = std::fs::read_to_string(&out_path).map_err(|e| e.to_string())?;
    ensure!(
        libc::WIFEXITED(status),
        "doctor did not exit (wait status {status}): {text}"
    );
    let code = libc::WEXITSTATUS(status);
    ensure!(
        !(120..=123).contains(&code),
        "the set-up failed (exit {code}): {text}"
    );
    Ok((code, text))
}

fn no_userns(who: Who) -> TestResult {
    if !world().is_root {
        return skip("needs root to map every id in a user namespace of the test's own");
    }
    let s = scratch!(who);
    let (code, out) = doctor_without_userns(&s, &[])?;
    ensure!(code == 1, "doctor exited {code}, not 1:\n{out}");
    let fix = Some("sudo sysctl -w user.max_user_namespaces=15000");
    let (line, f) = check(&out, "userns-sysctls")?;
    ensure!(
        line.starts_with("failure ") && line.contains("user.max_user_namespaces = 0") && f == fix,
        "{out}"
    );
    let (line, f) = check(&out, "userns")?;
    ensure!(
        line.starts_with("failure ")
            && line.contains("unshare(CLONE_NEWUSER | CLONE_NEWNS) failed")
            && line.contains("(ENOSPC)")
            && f == fix,
        "{out}"
    );
    ensure!(
        out.ends_with("antimony run cannot work here: 2 failures\n"),
        "{out}"
    );
    let (code, json) = doctor_without_userns(&s, &["--json"])?;
    let v: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| format!("not JSON ({e}): {json}"))?;
    ensure!(code == 1 && v["can_run"] == false, "{json}");
    pass()
}

fn missing_helper(who: Who) -> TestResult {
    if !world().is_root {
        return skip("needs root to hide a program in a mount namespace");
    }
    if !installed("xdg-dbus-proxy") {
        return skip("xdg-dbus-proxy is not installed (apt-get install xdg-dbus-proxy)");
    }
    let root = scratch!(Who::Root);
    let us = scratch!(who);
    // Not executable: PATH's lookup passes it by, as if it were not there.
    let stand_in = root.write("not-a-program", "");
    let user = (who == Who::User).then_some(&us);
    let out = antimony_with_bind(&root, &stand_in, "/usr/bin/xdg-dbus-proxy", user)
        .arg("doctor")
        .run();
    ensure!(
        out.code() == Some(0),
        "a missing helper is no failure: {}",
        out.show()
    );
    let (line, fix) = check(&out.stdout, "xdg-dbus-proxy")?;
    ensure!(
        line == "warning  xdg-dbus-proxy: xdg-dbus-proxy not found on PATH"
            && fix == Some("sudo apt install xdg-dbus-proxy"),
        "{}",
        out.show()
    );
    ensure!(
        out.stdout.contains("affects: profiles with [dbus]"),
        "{}",
        out.show()
    );
    pass()
}

fn unusable_fuse(who: Who) -> TestResult {
    if !world().is_root {
        return skip("needs root to cover /dev/fuse in a mount namespace");
    }
    let root = scratch!(Who::Root);
    let us = scratch!(who);
    let user = (who == Who::User).then_some(&us);
    let (stand_in, want_line, want_fix) = if who == Who::User {
        // /dev/fuse's own node, but 0600 root's: what a host without
        // udev's rule has.
        let node = root.path("fuse");
        let c = CString::new(node.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: mknod with a NUL-terminated path; 10:229 is /dev/fuse.
        if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(10, 229)) } != 0 {
            return Err(format!("mknod: {}", std::io::Error::last_os_error()).into());
        }
        (
            node,
            "warning  fuse: /dev/fuse cannot be opened: Permission denied (EACCES)",
            "sudo chmod 0666 /dev/fuse",
        )
    } else {
        // Root opens any node: no device at all (no fuse module) instead.
        (
            root.write("no-device", ""),
            "warning  fuse: /dev/fuse is not a character device",
            "sudo modprobe fuse",
        )
    };
    let out = antimony_with_bind(&root, &stand_in, "/dev/fuse", user)
        .arg("doctor")
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let (line, fix) = check(&out.stdout, "fuse")?;
    ensure!(line == want_line && fix == Some(want_fix), "{}", out.show());
    ensure!(
        out.stdout.contains("affects: the encrypted-home hook"),
        "{}",
        out.show()
    );
    pass()
}
