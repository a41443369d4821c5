//! Installs the seccomp programs compiled by `plan::seccomp`. After the
//! fork: one `seccomp(2)` call per program, no allocation. Needs
//! `no_new_privs` (set before).

use super::sys::Errno;

/// One `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: the kernel's
/// answer (a listener's descriptor with `SECCOMP_FILTER_FLAG_NEW_LISTENER`,
/// else 0).
fn set_filter(prog: &[libc::sock_filter], flags: u32) -> Result<i64, Errno> {
    let fprog = libc::sock_fprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: fprog points to a valid BPF program that outlives the call;
    // the kernel copies it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r < 0 { Err(Errno::last()) } else { Ok(r) }
}

pub fn install(programs: &[Vec<libc::sock_filter>]) -> Result<(), Errno> {
    for prog in programs {
        set_filter(prog, 0)?;
    }
    Ok(())
}

/// Installs a recording run's notifying filter and returns its listener
/// (close-on-exec, as the kernel makes it).
pub fn install_listener(prog: &[libc::sock_filter]) -> Result<i32, Errno> {
    set_filter(prog, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32).map(|fd| fd as i32)
}
