//! Setuid, setgid and file capabilities planted through a writable bind:
//! every way a process sets a mode or a capability, on files in `DIR`.
//!
//! - `setid DIR`: chmod, fchmod, fchmodat, fchmodat2 on a file; the mode of
//!   open, openat (O_CREAT, O_TMPFILE), creat, openat2, mknod and mknodat;
//!   `security.capability` by setxattr, lsetxattr and fsetxattr. Each must
//!   be refused (openat2: ENOSYS, so that libc falls back to openat). mkdir
//!   and mkdirat with 02755 and 04755 are tried too (the kernel drops those
//!   bits of their mode itself). Nothing in DIR may end up with either bit.
//! - `setfcap-nested DIR`: in a user namespace of its own (where the
//!   process holds CAP_SETFCAP if it can map its uid), a file capability
//!   by each xattr call, and by setxattrat.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

use crate::{Blocked, Escaped, Res, close, cstr, name, sys};

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const SYS_FCHMODAT2: libc::c_long = 452;
const SYS_SETXATTRAT: libc::c_long = 463;

/// `struct open_how` (openat2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `struct xattr_args` (setxattrat).
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// A `security.capability` value granting CAP_NET_BIND_SERVICE, permitted
/// and effective: revision 2 (20 bytes) or 3 (24, with a root uid of 0).
fn capability(revision: u32) -> Vec<u8> {
    let mut words = vec![revision << 24 | 1, 1 << 10, 0, 0, 0];
    if revision == 3 {
        words.push(0);
    }
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// One attempt: its name, the errno that refuses it, and its result.
struct Attempt {
    call: String,
    want: Errno,
    result: Result<i64, Errno>,
}

fn verdict(what: &str, attempts: &[Attempt], bad: Vec<String>) -> Res {
    let mut refused = Vec::new();
    let mut escaped = bad;
    for a in attempts {
        match a.result {
            Err(e) if e == a.want => refused.push(format!("{} {}", a.call, name(e))),
            Err(e) => escaped.push(format!("{} reached the kernel ({})", a.call, name(e))),
            Ok(v) => escaped.push(format!("{} succeeded ({v})", a.call)),
        }
    }
    Ok(if escaped.is_empty() {
        Blocked(format!("{what}: {}", refused.join(", ")))
    } else {
        Escaped(format!("{what}: {}", escaped.join(", ")))
    })
}

/// Files and folders under `dir` that carry S_ISUID or S_ISGID.
fn with_set_id_bits(dir: &str) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("read {dir}: {e}"))?;
    for e in entries.flatten() {
        let path = e.path();
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: lstat with a C string and a zeroed stat buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::lstat(c.as_ptr(), &mut st) } != 0 {
            continue;
        }
        if st.st_mode & (S_ISUID | S_ISGID) != 0 {
            found.push(format!("{} has mode {:o}", path.display(), st.st_mode));
        }
    }
    Ok(found)
}

pub fn setid(dir: &str) -> Res {
    let at = |n: &str| cstr(&format!("{dir}/{n}"));
    let plain = at("plain")?;
    let dirc = cstr(dir)?;
    // SAFETY: open with a C string; the descriptor is closed below.
    let fd = unsafe {
        libc::open(
            plain.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o755,
        )
    };
    if fd < 0 {
        return Err(format!("create {dir}/plain: {}", name(Errno::last())));
    }
    let mut a: Vec<Attempt> = Vec::new();
    let mut push = |call: &str, want: Errno, result: Result<i64, Errno>| {
        a.push(Attempt {
            call: call.into(),
            want,
            result,
        });
    };
    let (suid, sgid) = (libc::c_long::from(0o4755), libc::c_long::from(0o2755));
    let (new1, new2, new3, new4) = (at("open")?, at("openat")?, at("creat")?, at("openat2")?);
    let (d1, d2, n1, n2) = (at("mkdir")?, at("mkdirat")?, at("mknod")?, at("mknodat")?);
    let cap = c"security.capability";
    let (v2, v3) = (capability(2), capability(3));
    let how = OpenHow {
        flags: (libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC) as u64,
        mode: 0o4755,
        resolve: 0,
    };
    let create = libc::c_long::from(libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC);
    let tmpfile = libc::c_long::from(libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC);
    let reg = libc::c_long::from(libc::S_IFREG);
    // SAFETY: raw syscalls with C strings of this function, a valid
    // open_how and xattr buffers of the sizes passed; every descriptor one
    // returns is closed below.
    unsafe {
        use libc::{AT_FDCWD, syscall};
        let p = plain.as_ptr();
        #[cfg(target_arch = "x86_64")]
        {
            push(
                "chmod 4755",
                Errno::EPERM,
                sys(syscall(libc::SYS_chmod, p, suid)),
            );
            push(
                "chmod 2755",
                Errno::EPERM,
                sys(syscall(libc::SYS_chmod, p, sgid)),
            );
            // The kernel reads 16 bits of the mode: higher bits hide nothing.
            push(
                "chmod 4755|1<<32",
                Errno::EPERM,
                sys(syscall(libc::SYS_chmod, p, suid | 1 << 32)),
            );
            push(
                "open O_CREAT 4755",
                Errno::EPERM,
                sys(syscall(libc::SYS_open, new1.as_ptr(), create, suid)),
            );
            push(
                "creat 4755",
                Errno::EPERM,
                sys(syscall(libc::SYS_creat, new3.as_ptr(), suid)),
            );
            // Allowed: the kernel keeps only 0o1777 of mkdir's mode.
            syscall(libc::SYS_mkdir, d1.as_ptr(), sgid);
            push(
                "mknod S_IFREG|4755",
                Errno::EPERM,
                sys(syscall(libc::SYS_mknod, n1.as_ptr(), reg | suid, 0)),
            );
        }
        push(
            "fchmod 4755",
            Errno::EPERM,
            sys(syscall(libc::SYS_fchmod, fd, suid)),
        );
        push(
            "fchmodat 2755",
            Errno::EPERM,
            sys(syscall(libc::SYS_fchmodat, AT_FDCWD, p, sgid)),
        );
        push(
            "fchmodat2 4755",
            Errno::EPERM,
            sys(syscall(SYS_FCHMODAT2, AT_FDCWD, p, suid, 0)),
        );
        push(
            "openat O_CREAT 2755",
            Errno::EPERM,
            sys(syscall(
                libc::SYS_openat,
                AT_FDCWD,
                new2.as_ptr(),
                create,
                sgid,
            )),
        );
        push(
            "openat O_TMPFILE 4755",
            Errno::EPERM,
            sys(syscall(
                libc::SYS_openat,
                AT_FDCWD,
                dirc.as_ptr(),
                tmpfile,
                suid,
            )),
        );
        push(
            "openat2 O_CREAT 4755",
            Errno::ENOSYS,
            sys(syscall(
                libc::SYS_openat2,
                AT_FDCWD,
                new4.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )),
        );
        syscall(libc::SYS_mkdirat, AT_FDCWD, d2.as_ptr(), suid);
        push(
            "mknodat S_IFREG|2755",
            Errno::EPERM,
            sys(syscall(
                libc::SYS_mknodat,
                AT_FDCWD,
                n2.as_ptr(),
                reg | sgid,
                0,
            )),
        );
        for (rev, v) in [("v2", &v2), ("v3", &v3)] {
            let (vp, vl) = (v.as_ptr(), v.len());
            push(
                &format!("setxattr security.capability {rev}"),
                Errno::EPERM,
                sys(syscall(libc::SYS_setxattr, p, cap.as_ptr(), vp, vl, 0)),
            );
            push(
                &format!("lsetxattr security.capability {rev}"),
                Errno::EPERM,
                sys(syscall(libc::SYS_lsetxattr, p, cap.as_ptr(), vp, vl, 0)),
            );
            push(
                &format!("fsetxattr security.capability {rev}"),
                Errno::EPERM,
                sys(syscall(libc::SYS_fsetxattr, fd, cap.as_ptr(), vp, vl, 0)),
            );
        }
    }
    close(i64::from(fd));
    for x in &a {
        // Descriptors of calls that succeeded (the file-creating ones).
        if x.call.starts_with("open") || x.call.starts_with("creat") {
            if let Ok(fd) = x.result {
                close(fd);
            }
        }
    }
    verdict(
        "set-id bits and file capabilities",
        &a,
        with_set_id_bits(dir)?,
    )
}

/// Writes one of the id maps of this process's user namespace.
fn write_map(file: &str, text: &str) -> Result<(), Errno> {
    std::fs::write(file, text).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
}

pub fn setfcap_nested(dir: &str) -> Res {
    let file = cstr(&format!("{dir}/nested"))?;
    std::fs::write(format!("{dir}/nested"), b"").map_err(|e| format!("create: {e}"))?;
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    // SAFETY: unshare with a flag; the probe is single-threaded.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWUSER): {} (is nested_userns on?)",
            name(Errno::last())
        ));
    }
    // Root of the new namespace is this uid: it holds every capability
    // there, CAP_SETFCAP included, over files of that uid. Mapping uid 0
    // of the parent needs CAP_SETFCAP there (Linux 5.12): root's sandbox
    // cannot, and then no file of any uid is its own in the namespace.
    let _ = write_map("/proc/self/setgroups", "deny");
    let mapped = write_map("/proc/self/uid_map", &format!("0 {uid} 1"))
        .and_then(|()| write_map("/proc/self/gid_map", &format!("0 {gid} 1")));
    let (v2, v3) = (capability(2), capability(3));
    let cap = c"security.capability";
    let mut a: Vec<Attempt> = Vec::new();
    // SAFETY: raw syscalls with C strings of this function, an xattr_args
    // and buffers of the sizes passed; the descriptor is closed below.
    unsafe {
        use libc::syscall;
        let fd = libc::open(file.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        let p = file.as_ptr();
        for (rev, v) in [("v2", &v2), ("v3", &v3)] {
            let (vp, vl) = (v.as_ptr(), v.len());
            for (call, r) in [
                (
                    "setxattr",
                    syscall(libc::SYS_setxattr, p, cap.as_ptr(), vp, vl, 0),
                ),
                (
                    "lsetxattr",
                    syscall(libc::SYS_lsetxattr, p, cap.as_ptr(), vp, vl, 0),
                ),
                (
                    "fsetxattr",
                    syscall(libc::SYS_fsetxattr, fd, cap.as_ptr(), vp, vl, 0),
                ),
            ] {
                a.push(Attempt {
                    call: format!("{call} {rev}"),
                    want: Errno::EPERM,
                    result: sys(r),
                });
            }
            let args = XattrArgs {
                value: vp as u64,
                size: vl as u32,
                flags: 0,
            };
            a.push(Attempt {
                call: format!("setxattrat {rev}"),
                want: Errno::ENOSYS,
                result: sys(syscall(
                    SYS_SETXATTRAT,
                    libc::AT_FDCWD,
                    p,
                    0,
                    cap.as_ptr(),
                    &args as *const XattrArgs,
                    std::mem::size_of::<XattrArgs>(),
                )),
            });
        }
        libc::close(fd);
    }
    let how = match mapped {
        Ok(()) => "uid mapped".to_string(),
        Err(e) => format!("uid not mapped: {}", name(e)),
    };
    verdict(
        &format!("file capabilities in a nested user namespace ({how})"),
        &a,
        Vec::new(),
    )
}
