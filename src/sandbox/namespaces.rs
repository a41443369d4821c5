//! Set-up inside the new namespaces: the id maps of the user namespace and
//! the loopback interface of a new network namespace.

use super::sys::{self, Errno};

/// Maps the sandbox's uid and gid to the same ids outside. A process may
/// write its own maps from inside a user namespace it created, as long as
/// it maps only its own ids and has denied `setgroups` first (user_namespaces(7));
/// so no round trip with the parent is needed.
pub fn write_id_maps(uid_map: &[u8], gid_map: &[u8]) -> Result<(), Errno> {
    match sys::write_file(c"/proc/self/setgroups", b"deny") {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e),
    }
    sys::write_file(c"/proc/self/uid_map", uid_map)?;
    sys::write_file(c"/proc/self/gid_map", gid_map)
}

/// A new network namespace starts with `lo` down; bring it up so the
/// sandbox has a working loopback and nothing else.
pub fn loopback_up() -> Result<(), Errno> {
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: an all-zero ifreq is valid; the name is set below.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    ifr.ifr_name[0] = b'l' as libc::c_char;
    ifr.ifr_name[1] = b'o' as libc::c_char;
    // SAFETY: SIOCGIFFLAGS fills ifr_flags of a valid ifreq.
    let mut r = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) };
    if r == 0 {
        // SAFETY: ifru_flags is the member SIOCGIFFLAGS just filled.
        unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        // SAFETY: SIOCSIFFLAGS reads a valid ifreq.
        r = unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) };
    }
    let err = Errno::last();
    sys::close(fd);
    if r < 0 { Err(err) } else { Ok(()) }
}
