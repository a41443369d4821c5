//! Empties every capability set of the sandbox.
//!
//! The sandbox's init holds every capability in its own user namespace
//! (never in the host's) while it builds the root. Before anything of the
//! program runs, it locks `SECBIT_NOROOT` (uid 0 gains nothing at exec),
//! drops each capability from the bounding set, clears the ambient set, and
//! sets permitted, effective and inheritable to nothing.

use super::sys::{self, Errno};

/// The capability numbers this kernel knows, found before the fork.
///
/// Capabilities are numbered without gaps from 0, and `PR_CAPBSET_READ`
/// answers EINVAL past the last one, so a binary search over 0..=63 finds
/// them with six `prctl` calls (the `caps` crate asked about each of the 41
/// it knows, one call apiece). On a kernel newer than that crate, the
/// capabilities it does not know yet are included too, and dropped.
pub fn supported() -> Vec<u8> {
    let known = |cap: u8| sys::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap)).is_ok();
    if !known(0) {
        return Vec::new();
    }
    // Invariant: `lo` is known, everything above `hi` is not.
    let (mut lo, mut hi) = (0u8, 63u8);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if known(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    (0..=lo).collect()
}

const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// After the fork: drop everything. `supported` comes from `supported()`.
pub fn drop_all(supported: &[u8]) -> Result<(), Errno> {
    sys::prctl(
        libc::PR_SET_SECUREBITS,
        SECBIT_NOROOT
            | SECBIT_NOROOT_LOCKED
            | SECBIT_KEEP_CAPS_LOCKED
            | SECBIT_NO_CAP_AMBIENT_RAISE
            | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
    )?;
    for &cap in supported {
        match sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
            Ok(()) | Err(Errno::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    sys::prctl5(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
        0,
        0,
    )?;
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and data are the v3 structures capset(2) expects (two
    // data elements for 64 capabilities).
    let r = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_matches_the_probe_of_each_capability() {
        let each: Vec<u8> = (0..=63u8)
            .filter(|&c| sys::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(c)).is_ok())
            .collect();
        assert_eq!(supported(), each);
        // What the `caps` crate finds is a prefix of it.
        let mut by_crate: Vec<u8> = caps::runtime::thread_all_supported()
            .into_iter()
            .map(|c| c.index())
            .collect();
        by_crate.sort_unstable();
        assert_eq!(by_crate, each[..by_crate.len()]);
    }
}
