//! The channel between antimony and the sandbox's init (PID 1): a
//! `SOCK_SEQPACKET` socket pair, so every message arrives whole, and
//! descriptors can travel with a request.
//!
//! Every message starts with a 16-byte header (`kind` and three words).
//! From init: `Failed` (set-up failed; init then exits), or `Started`,
//! then any number of `Spawned`/`SpawnFailed`/`Reaped` for commands run
//! inside, and finally `Exited`. To init: `Release` (first, once antimony
//! has read the program's PID: until then init reaps nothing), `Go` (to a
//! sandbox started to wait: execute the program now), `Exec` (a command to
//! start inside, with its argv, environment and working folder after the
//! header, and its stdin, stdout and stderr as descriptors) and `Signal`.
//!
//! An `Exec` may give the command a terminal (`antimony enter` from a
//! terminal): its header's second word is a mask of the standard
//! descriptors (bit 0: stdin…) that are to be the slave of a
//! pseudo-terminal, the caller's terminal settings come first in the
//! payload, and the slave travels first among the descriptors. The
//! pseudo-terminal is made on the host by `antimony enter`, which keeps
//! its master and relays it: nothing of the caller's terminal enters the
//! sandbox, and no process there can open the command's terminal by a name
//! (the host's devpts is not mounted in the sandbox).

use super::sys::{self, Errno, R};
use std::os::fd::RawFd;

/// A step of the set-up, named in error messages.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Parent = 1,
    IdMap,
    Propagation,
    BaseRoot,
    PivotBase,
    NewRoot,
    /// Opening a bind source (index: the mount).
    MountSource,
    /// Creating a mount point (index: the mount).
    MountPoint,
    /// Mounting (index: the mount).
    Mount,
    Loopback,
    RootReadOnly,
    PivotRoot,
    NoNewPrivs,
    /// Adding a Landlock rule (index: the rule).
    LandlockRule,
    LandlockRestrict,
    Capabilities,
    Seccomp,
    Fork,
    Setsid,
    Chdir,
    Exec,
    /// Making init non-dumpable.
    Dumpable,
    /// Setting up init's signalfd.
    Signals,
    /// Taking the standard descriptors antimony gave (`Prepared::stdio`).
    Stdio,
    /// Setting a resource limit (index: which, in `limits::Prepared`).
    Limits,
    /// Setting the PID namespace's `pid_max` (a root sandbox's process limit).
    PidMax,
    /// Adding a routing-policy rule of the isolated network (index: the rule).
    NetworkRule,
    /// Handing the network namespace to antimony (for pasta).
    NetworkNamespace,
}

impl Step {
    pub fn from_u32(v: u32) -> Option<Step> {
        use Step::*;
        Some(match v {
            1 => Parent,
            2 => IdMap,
            3 => Propagation,
            4 => BaseRoot,
            5 => PivotBase,
            6 => NewRoot,
            7 => MountSource,
            8 => MountPoint,
            9 => Mount,
            10 => Loopback,
            11 => RootReadOnly,
            12 => PivotRoot,
            13 => NoNewPrivs,
            14 => LandlockRule,
            15 => LandlockRestrict,
            16 => Capabilities,
            17 => Seccomp,
            18 => Fork,
            19 => Setsid,
            20 => Chdir,
            21 => Exec,
            22 => Dumpable,
            23 => Signals,
            24 => Stdio,
            25 => Limits,
            26 => PidMax,
            27 => NetworkRule,
            28 => NetworkNamespace,
            _ => return None,
        })
    }
}

/// Messages from init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// A set-up step failed; nothing of the program ran.
    Failed {
        step: Step,
        index: u32,
        errno: Errno,
    },
    /// The program was executed; its PID inside the sandbox.
    Started { pid: i32 },
    /// The program ended with this wait status; init exits next.
    Exited { status: i32 },
    /// Command `id` runs inside, as this PID (inside the sandbox).
    Spawned { id: u32, pid: i32 },
    /// Command `id` could not be started.
    SpawnFailed { id: u32, errno: Errno },
    /// Command `id` ended with this wait status.
    Reaped { id: u32, status: i32 },
    /// The sandbox's network namespace, whose descriptor comes with it
    /// (an isolated network: antimony hands it to pasta).
    Network,
    /// A recording run: the seccomp listener of the program's filter
    /// comes with this message (sent by the program's process before it
    /// executes the program, which waits on the listener from then on).
    Listener,
}

const FAILED: u32 = 1;
const STARTED: u32 = 2;
const EXITED: u32 = 3;
const SPAWNED: u32 = 4;
const SPAWN_FAILED: u32 = 5;
const REAPED: u32 = 6;
const NETWORK: u32 = 7;
const LISTENER: u32 = 8;

/// Requests to init.
pub const REQ_EXEC: u32 = 100;
pub const REQ_SIGNAL: u32 = 101;
/// antimony has read the program's PID: init may reap it (any request
/// does that; this one does nothing else).
pub const REQ_RELEASE: u32 = 102;
/// Execute the program now (when the sandbox was started to wait for it).
pub const REQ_GO: u32 = 103;

/// The largest `Exec` request: header and payload.
pub const MAX_REQUEST: usize = 128 * 1024;
/// The most arguments plus environment entries of one `Exec`.
pub const MAX_STRINGS: usize = 4096;

pub fn header(kind: u32, a: u32, b: u32, c: i32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&kind.to_ne_bytes());
    out[4..8].copy_from_slice(&a.to_ne_bytes());
    out[8..12].copy_from_slice(&b.to_ne_bytes());
    out[12..16].copy_from_slice(&c.to_ne_bytes());
    out
}

/// The header's four words.
pub fn words(buf: &[u8]) -> Option<(u32, u32, u32, i32)> {
    let (head, _) = buf.split_first_chunk::<16>()?;
    let mut w = head
        .chunks_exact(4)
        .filter_map(|c| c.first_chunk::<4>().map(|b| u32::from_ne_bytes(*b)));
    Some((w.next()?, w.next()?, w.next()?, w.next()? as i32))
}

impl Message {
    pub fn encode(self) -> [u8; 16] {
        match self {
            Message::Failed { step, index, errno } => {
                header(FAILED, step as u32, index, errno as i32)
            }
            Message::Started { pid } => header(STARTED, 0, 0, pid),
            Message::Exited { status } => header(EXITED, 0, 0, status),
            Message::Spawned { id, pid } => header(SPAWNED, id, 0, pid),
            Message::SpawnFailed { id, errno } => header(SPAWN_FAILED, id, 0, errno as i32),
            Message::Reaped { id, status } => header(REAPED, id, 0, status),
            Message::Network => header(NETWORK, 0, 0, 0),
            Message::Listener => header(LISTENER, 0, 0, 0),
        }
    }

    pub fn decode(buf: &[u8]) -> Option<Message> {
        let (kind, a, b, c) = words(buf)?;
        match kind {
            FAILED => Some(Message::Failed {
                step: Step::from_u32(a)?,
                index: b,
                errno: Errno::from_raw(c),
            }),
            STARTED => Some(Message::Started { pid: c }),
            EXITED => Some(Message::Exited { status: c }),
            SPAWNED => Some(Message::Spawned { id: a, pid: c }),
            SPAWN_FAILED => Some(Message::SpawnFailed {
                id: a,
                errno: Errno::from_raw(c),
            }),
            REAPED => Some(Message::Reaped { id: a, status: c }),
            NETWORK => Some(Message::Network),
            LISTENER => Some(Message::Listener),
            _ => None,
        }
    }

    /// Sends the message (child side: no allocation).
    pub fn send(self, fd: RawFd) -> R<()> {
        sys::write_all(fd, &self.encode())
    }

    /// Sends the message with a descriptor (SCM_RIGHTS; child side: the
    /// control buffer is on the stack).
    pub fn send_with_fd(self, chan: RawFd, fd: RawFd) -> R<()> {
        let mut data = self.encode();
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // Room for one cmsghdr and one int, aligned as cmsghdr needs.
        let mut control = [0u64; 4];
        // SAFETY: an all-zero msghdr is valid; the pointers set below
        // outlive the sendmsg call; CMSG_* compute within `control`,
        // which is large enough for CMSG_SPACE(sizeof(int)) (24 bytes).
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if cmsg.is_null() {
                return Err(sys::Errno::EINVAL);
            }
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
            loop {
                if libc::sendmsg(chan, &msg, libc::MSG_NOSIGNAL) >= 0 {
                    return Ok(());
                }
                let e = sys::Errno::last();
                if e != sys::Errno::EINTR {
                    return Err(e);
                }
            }
        }
    }
}

/// How many descriptors travel with an `Exec` whose terminal mask is
/// `mask`: the terminal's slave first, if there is one, then one for each
/// standard descriptor that is not the terminal.
pub fn passed_fds(mask: u32) -> usize {
    let terminal = usize::from(mask & 0b111 != 0);
    terminal + 3 - (mask & 0b111).count_ones() as usize
}

/// A request for a new terminal: which standard descriptors are its slave
/// (bit 0: stdin…), and the caller's terminal settings it copies.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    pub mask: u32,
    pub settings: crate::pty::Settings,
}

/// Builds an `Exec` request (antimony's side): the header, then the
/// terminal settings if a terminal is asked for, the argument and
/// environment counts, then NUL-terminated arguments, environment entries
/// and the working folder.
pub fn exec_request(
    id: u32,
    argv: &[&[u8]],
    env: &[&[u8]],
    cwd: &[u8],
    terminal: Option<&Terminal>,
) -> Option<Vec<u8>> {
    if argv.is_empty()
        || argv.len() + env.len() > MAX_STRINGS
        || argv.iter().chain(env).chain([&cwd]).any(|s| s.contains(&0))
    {
        return None;
    }
    let mut out = Vec::new();
    let mask = terminal.map_or(0, |t| t.mask & 0b111);
    out.extend_from_slice(&header(REQ_EXEC, id, mask, 0));
    if let (Some(t), true) = (terminal, mask != 0) {
        out.extend_from_slice(&t.settings.encode());
    }
    out.extend_from_slice(&(argv.len() as u32).to_ne_bytes());
    out.extend_from_slice(&(env.len() as u32).to_ne_bytes());
    for s in argv.iter().chain(env) {
        out.extend_from_slice(s);
        out.push(0);
    }
    out.extend_from_slice(cwd);
    out.push(0);
    (out.len() <= MAX_REQUEST).then_some(out)
}

pub fn signal_request(id: u32, sig: i32) -> [u8; 16] {
    header(REQ_SIGNAL, id, 0, sig)
}

pub fn go_request() -> [u8; 16] {
    header(REQ_GO, 0, 0, 0)
}

pub fn release_request() -> [u8; 16] {
    header(REQ_RELEASE, 0, 0, 0)
}

/// Splits an `Exec` payload in place (init's side, no allocation): fills
/// `ptrs` with the argument pointers, a NULL, the environment pointers and
/// a NULL. Returns (argument count, environment count, working folder).
pub fn parse_exec<'a>(
    payload: &'a [u8],
    ptrs: &mut [*const libc::c_char],
) -> Option<(usize, usize, &'a [u8])> {
    let (counts, mut rest) = payload.split_first_chunk::<8>()?;
    let (argc, envc) = counts.split_first_chunk::<4>()?;
    let argc = u32::from_ne_bytes(*argc) as usize;
    let envc = u32::from_ne_bytes(*envc.first_chunk::<4>()?) as usize;
    if argc == 0 || argc + envc + 2 > ptrs.len() {
        return None;
    }
    let mut slots = ptrs.iter_mut();
    for i in 0..argc + envc {
        if i == argc {
            *slots.next()? = std::ptr::null();
        }
        let end = rest.iter().position(|&b| b == 0)?;
        *slots.next()? = rest.as_ptr().cast();
        rest = rest.get(end + 1..)?;
    }
    if envc == 0 {
        *slots.next()? = std::ptr::null();
    }
    *slots.next()? = std::ptr::null();
    let end = rest.iter().position(|&b| b == 0)?;
    Some((argc, envc, rest.get(..=end)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for m in [
            Message::Failed {
                step: Step::Mount,
                index: 7,
                errno: Errno::ENOENT,
            },
            Message::Started { pid: 2 },
            Message::Exited { status: 9 },
            Message::Spawned { id: 3, pid: 12 },
            Message::SpawnFailed {
                id: 3,
                errno: Errno::ENOENT,
            },
            Message::Reaped { id: 3, status: 256 },
            Message::Listener,
        ] {
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
        assert_eq!(Message::decode(&[0xff; 16]), None);
    }

    #[test]
    fn exec_requests() {
        let req = exec_request(5, &[b"/bin/sh", b"-c"], &[b"A=1"], b"/home", None).unwrap();
        let (kind, id, _, _) = words(&req).unwrap();
        assert_eq!((kind, id), (REQ_EXEC, 5));
        let mut ptrs = [std::ptr::null(); 8];
        let (argc, envc, cwd) = parse_exec(&req[16..], &mut ptrs).unwrap();
        assert_eq!((argc, envc), (2, 1));
        assert_eq!(cwd, b"/home\0");
        // SAFETY: the pointers point into `req`, at NUL-terminated strings.
        let s = |p: *const libc::c_char| unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes().to_vec();
        assert_eq!(s(ptrs[0]), b"/bin/sh");
        assert_eq!(s(ptrs[1]), b"-c");
        assert!(ptrs[2].is_null());
        assert_eq!(s(ptrs[3]), b"A=1");
        assert!(ptrs[4].is_null());
        assert!(exec_request(1, &[b"a\0b"], &[], b"/", None).is_none());
        assert!(exec_request(1, &[], &[], b"/", None).is_none());
        assert_eq!(passed_fds(0), 3);
        // The terminal's slave, and stdout's pipe.
        assert_eq!(passed_fds(0b101), 2);
        assert_eq!(passed_fds(0b111), 1);
        // A terminal: its mask in the header, its settings first.
        // SAFETY: all-zero termios and winsize are valid.
        let mut settings: crate::pty::Settings = unsafe { std::mem::zeroed() };
        settings.size.ws_col = 80;
        let t = Terminal {
            mask: 0b011,
            settings,
        };
        let req = exec_request(6, &[b"sh"], &[], b"/", Some(&t)).unwrap();
        let (kind, id, mask, _) = words(&req).unwrap();
        assert_eq!((kind, id, mask), (REQ_EXEC, 6, 0b011));
        let back = crate::pty::Settings::decode(&req[16..]).unwrap();
        assert_eq!(back.size.ws_col, 80);
        let (argc, envc, cwd) =
            parse_exec(&req[16 + crate::pty::SETTINGS_LEN..], &mut ptrs).unwrap();
        assert_eq!((argc, envc, cwd), (1, 0, &b"/\0"[..]));
    }
}
