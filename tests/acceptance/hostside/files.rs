//! Files a sandbox plants on the host through a writable bind: no setuid or
//! setgid bit and no file capability may reach the host, however it is set
//! (chmod and its variants, the mode of a file or node being created,
//! copying with the mode kept, `security.capability`), whether antimony
//! runs as root (a setuid-root file) or as an ordinary user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both(
        "hostside::files::no_set_id_bit_or_capability_through_a_bind",
        every_call,
    ));
    t.extend(both(
        "hostside::files::copy_and_chmod_leave_no_setuid_file",
        copy_and_chmod,
    ));
    t.extend(both(
        "hostside::files::no_file_capability_from_a_nested_user_namespace",
        nested_userns,
    ));
    t
}

/// `antimony run PROFILE --ro PROBE=/probe --rw DIR --program /probe -- SUB…`
fn probe_in(s: &Scratch, profile: &str, dir: &Path, sub: &[&str]) -> Run {
    s.antimony([
        "run".to_string(),
        profile.into(),
        "--ro".into(),
        format!("{}=/probe", world().probe.display()),
        "--rw".into(),
        s_(dir),
        "--program".into(),
        "/probe".into(),
        "--".into(),
    ])
    .args(sub)
}

fn s_(p: &Path) -> String {
    p.display().to_string()
}

/// What under `dir` (recursively) carries S_ISUID, S_ISGID or a
/// `security.capability` attribute, seen from the host.
fn planted(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path.clone());
            }
            if meta.mode() & 0o6000 != 0 {
                found.push(format!("{} has mode {:o}", path.display(), meta.mode()));
            }
            if has_capability(&path) {
                found.push(format!("{} has a file capability", path.display()));
            }
        }
    }
    found
}

fn has_capability(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: lgetxattr with a C string, asking only for the size (NULL, 0).
    let r = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    r >= 0
}

/// Every call that sets a mode or a capability, by the probe: on the host
/// they work (the control), in the sandbox each is refused and the host's
/// files carry nothing.
fn every_call(who: Who) -> TestResult {
    let s = scratch!(who);
    let control = s.mkdir("control");
    let out = s
        .command(&world().probe)
        .args(["setid", &s_(&control)])
        .run();
    escaped("set-id bits on the host (the control)", &out)?;
    ensure!(
        !planted(&control).is_empty(),
        "the control planted nothing: {}",
        out.show()
    );

    let share = s.mkdir("share");
    let out = probe_in(&s, "minimal", &share, &["setid", &s_(&share)]).run();
    let bad = planted(&share);
    ensure!(
        bad.is_empty(),
        "planted on the host: {bad:?}\n{}",
        out.show()
    );
    blocked("set-id bits and file capabilities through a bind", &out)?;
    pass()
}

/// The reproduction: a copy of a system program made setuid with
/// chmod, and a copy of a setuid program with its mode kept (`cp -p`). The
/// copies are made; the bits are refused. Ordinary modes still work.
fn copy_and_chmod(who: Who) -> TestResult {
    let s = scratch!(who);
    let share = s.mkdir("share");
    let d = s_(&share);
    // A setuid program of the host, for `cp -p` (any will do).
    let setuid_src = ["passwd", "chfn", "gpasswd", "newgrp", "su", "mount"]
        .iter()
        .map(|n| Path::new("/usr/bin").join(n))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.mode() & 0o4000 != 0));
    let mut script = format!(
        "cp /bin/sh {d}/py && chmod 4755 {d}/py; echo chmod4755=$?; \
         chmod 2755 {d}/py; echo chmod2755=$?; chmod u+s,g+s {d}/py; echo chmodus=$?; \
         mkdir {d}/dir; chmod 2775 {d}/dir; echo chmoddir=$?; "
    );
    if let Some(src) = &setuid_src {
        script.push_str(&format!(
            "cp -p {} {d}/kept 2>/dev/null; echo cpp=$?; ",
            src.display()
        ));
    }
    let out = s
        .antimony(["run", "sh", "--rw", &d, "--", "-c", &script])
        .run();
    let bad = planted(&share);
    ensure!(
        bad.is_empty(),
        "planted on the host: {bad:?}\n{}",
        out.show()
    );
    for refused in ["chmod4755", "chmod2755", "chmodus", "chmoddir"] {
        ensure!(
            out.stdout.contains(&format!("{refused}=1")),
            "{refused} was not refused: {}",
            out.show()
        );
    }
    ensure!(
        share.join("py").is_file(),
        "the copy was not made: {}",
        out.show()
    );
    // cp -p keeps the bits only where it could keep the owner too (root);
    // either way the copy is made, without them.
    if setuid_src.is_some() {
        ensure!(
            share.join("kept").is_file() && (who == Who::User || out.stdout.contains("cpp=1")),
            "cp -p of a setuid program: {}",
            out.show()
        );
    }

    // Control: ordinary modes, files, folders and nodes still work.
    let script = format!(
        "echo x > {d}/f && chmod 755 {d}/f && chmod 640 {d}/f && mkdir -m 750 {d}/d2 && \
         chmod 1777 {d}/d2 && mkfifo {d}/fifo && cp -p /bin/sh {d}/sh2 && echo ok"
    );
    let out = s
        .antimony(["run", "sh", "--rw", &d, "--", "-c", &script])
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout.trim() == "ok",
        "ordinary modes: {}",
        out.show()
    );
    let mode = |n: &str| {
        std::fs::symlink_metadata(share.join(n))
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0)
    };
    ensure!(
        mode("f") == 0o640 && mode("d2") == 0o1777 && mode("sh2") == 0o755,
        "modes on the host: f {:o}, d2 {:o}, sh2 {:o}",
        mode("f"),
        mode("d2"),
        mode("sh2")
    );
    pass()
}

/// In a user namespace of its own the sandbox holds CAP_SETFCAP, and the
/// kernel would write a file capability for the namespace's root. With
/// Landlock off (Landlock also keeps the sandbox from writing the new
/// namespace's id maps: this tests the seccomp filter alone), the user maps
/// its uid and is refused; root cannot map uid 0 (that needs CAP_SETFCAP
/// in the sandbox's namespace) and is refused by the kernel.
fn nested_userns(who: Who) -> TestResult {
    let s = scratch!(who);
    s.profile(
        "nested",
        "inherits = [\"minimal\"]\n[sandbox]\nnested_userns = true\nlandlock = \"off\"\n",
    );
    let share = s.mkdir("share");
    let out = probe_in(&s, "nested", &share, &["setfcap-nested", &s_(&share)]).run();
    let bad = planted(&share);
    ensure!(
        bad.is_empty(),
        "planted on the host: {bad:?}\n{}",
        out.show()
    );
    let l = blocked("file capabilities in a nested user namespace", &out)?;
    if who == Who::User {
        ensure!(l.contains("(uid mapped)"), "the uid was not mapped: {l}");
    }
    pass()
}
