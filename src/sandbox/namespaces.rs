//! Set-up inside the new namespaces: the id maps of the user namespace,
//! the loopback interface of a new network namespace, and the rules that
//! keep an isolated sandbox off the local network (`plan::network`).

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

/// `RTM_NEWRULE` and the `fib_rule_hdr` fields and attributes it takes
/// (linux/rtnetlink.h, linux/fib_rules.h).
const RTM_NEWRULE: u16 = 32;
const FR_ACT_TO_TBL: u8 = 1;
const FR_ACT_PROHIBIT: u8 = 8;
const FRA_DST: u16 = 1;
const FRA_PRIORITY: u16 = 6;
const FRA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u8 = 254;

fn attr(msg: &mut Vec<u8>, kind: u16, data: &[u8]) {
    msg.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(data);
    while msg.len() % 4 != 0 {
        msg.push(0);
    }
}

/// Before the fork: one `RTM_NEWRULE` request per rule (`ip rule add
/// prohibit to PREFIX priority N`, or `lookup main` for an exception),
/// each asking for an acknowledgement.
pub fn rule_messages(rules: &[crate::plan::network::Rule]) -> Vec<Vec<u8>> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (family, addr): (u8, Vec<u8>) = match r.addr {
                std::net::IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
                std::net::IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
            };
            // struct fib_rule_hdr, then the attributes.
            let (action, table) = if r.allow {
                (FR_ACT_TO_TBL, RT_TABLE_MAIN)
            } else {
                (FR_ACT_PROHIBIT, 0)
            };
            let mut body = vec![family, r.prefix, 0, 0, table, 0, 0, action, 0, 0, 0, 0];
            attr(&mut body, FRA_DST, &addr);
            attr(&mut body, FRA_PRIORITY, &r.priority().to_ne_bytes());
            if r.allow {
                attr(&mut body, FRA_TABLE, &u32::from(RT_TABLE_MAIN).to_ne_bytes());
            }
            // struct nlmsghdr: length, type, flags, sequence, port id.
            let flags =
                libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL;
            let mut m = Vec::with_capacity(16 + body.len());
            m.extend_from_slice(&(16 + body.len() as u32).to_ne_bytes());
            m.extend_from_slice(&RTM_NEWRULE.to_ne_bytes());
            m.extend_from_slice(&(flags as u16).to_ne_bytes());
            m.extend_from_slice(&(i as u32 + 1).to_ne_bytes());
            m.extend_from_slice(&0u32.to_ne_bytes());
            m.extend_from_slice(&body);
            m
        })
        .collect()
}

/// After the fork, in the sandbox's network namespace (with
/// CAP_NET_ADMIN over it, before capabilities are dropped): sends each
/// request and reads its acknowledgement. The index of the rule that
/// failed comes back with the error.
pub fn add_rules(messages: &[Vec<u8>]) -> Result<(), (u32, Errno)> {
    if messages.is_empty() {
        return Ok(());
    }
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err((0, Errno::last()));
    }
    let result = send_all(fd, messages);
    sys::close(fd);
    result
}

fn send_all(fd: libc::c_int, messages: &[Vec<u8>]) -> Result<(), (u32, Errno)> {
    for (i, m) in messages.iter().enumerate() {
        let i = i as u32;
        // SAFETY: sending a prepared buffer on our own socket; the kernel
        // is the default destination of a netlink socket.
        let n = unsafe { libc::send(fd, m.as_ptr().cast(), m.len(), 0) };
        if n < 0 {
            return Err((i, Errno::last()));
        }
        // The acknowledgement: an NLMSG_ERROR whose error is 0, or the
        // negated errno (then followed by our request, cut short).
        let mut buf = [0u8; 512];
        let n = loop {
            // SAFETY: receiving into a stack buffer.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 && Errno::last() == Errno::EINTR {
                continue;
            }
            break n;
        };
        if n < 0 {
            return Err((i, Errno::last()));
        }
        let word = |at: usize| -> Option<[u8; 4]> { buf.get(at..at + 4)?.try_into().ok() };
        let kind = buf
            .get(4..6)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(u16::from_ne_bytes);
        match (kind, word(16).map(i32::from_ne_bytes)) {
            (Some(t), Some(0)) if t == libc::NLMSG_ERROR as u16 => {}
            (Some(t), Some(e)) if t == libc::NLMSG_ERROR as u16 => {
                return Err((i, Errno::from_raw(-e)));
            }
            _ => return Err((i, Errno::EPROTO)),
        }
    }
    Ok(())
}
