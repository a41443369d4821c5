//! The messages on an instance's `control` socket (`SOCK_SEQPACKET`: each
//! message is one packet, whole, and descriptors travel with it).
//!
//! Every message starts with a 16-byte header of four native-endian
//! 32-bit words: its kind, then three words whose meaning the kind gives
//! (unused ones are 0). Requests (client → supervisor):
//!
//! - `ENTER` (200): run a command inside. Word 1 is a terminal mask (bit 0:
//!   stdin…: the standard descriptors that are to be a new terminal's
//!   slave); if it is not 0, the caller's terminal settings
//!   (`pty::Settings`) follow the header. Then the argument count (a
//!   word) and the NUL-terminated arguments, nothing after them. With it
//!   travel, in order, the terminal's slave if there is one (a
//!   pseudo-terminal the client made on the host for the command, whose
//!   master it keeps and relays: one in the sandbox's own devpts could be
//!   opened by any process there), then a descriptor for each standard
//!   descriptor that is not the terminal (pipes the client relays: never
//!   one of the client's own).
//! - `SIGNAL` (201): pass signal word 3 on to the entered command.
//! - `STOP` (202): stop the instance.
//!
//! Replies (supervisor → client): `SPAWNED` (4; word 3 the command's PID
//! inside the sandbox; with it, the new terminal's master if one was asked
//! for), `SPAWN_FAILED` (5; word 3 the errno), `EXITED` (6; word 3 the
//! command's wait status), and `STOPPING` (203: the stop is under way; the
//! supervisor closes the connection once the instance has ended). A
//! supervisor that refuses a client, or a request it cannot read, closes
//! the connection without a word.
//!
//! The header's layout and the numbers 4, 5 and 6 are those of the
//! sandbox channel (`sandbox::protocol`: `Spawned`, `SpawnFailed`,
//! `Reaped`), by inheritance: the replies are init's answers relayed, and
//! clients that speak these bytes exist (the raw client of the acceptance
//! tests). They are defined here, and nothing of that channel's encoding
//! is used; only the terminal request (`Terminal`) is the same value,
//! because the supervisor hands it on to init as it came.

use std::os::fd::OwnedFd;

use nix::errno::Errno;

use crate::pty::{SETTINGS_LEN, Settings};
use crate::sandbox::protocol::Terminal;

/// The header's length, and the whole length of every message but `ENTER`.
pub const HEADER_LEN: usize = 16;
/// Every reply is a header only.
pub const REPLY_LEN: usize = HEADER_LEN;
/// The largest request: as large as init's largest `Exec`, which carries
/// the entered command (and the instance's environment besides).
pub const MAX_REQUEST: usize = 128 * 1024;
/// The most arguments of an `ENTER`.
pub const MAX_ARGS: usize = 4096;

const ENTER: u32 = 200;
const SIGNAL: u32 = 201;
const STOP: u32 = 202;
const SPAWNED: u32 = 4;
const SPAWN_FAILED: u32 = 5;
const EXITED: u32 = 6;
const STOPPING: u32 = 203;

/// A request from a client.
#[derive(Debug)]
pub enum Request {
    /// Run a command inside.
    Enter {
        argv: Vec<Vec<u8>>,
        /// A new terminal for the command, if the client has one.
        terminal: Option<Terminal>,
        /// Its stdin, stdout and stderr but those the terminal is: pipes
        /// to the client.
        stdio: Vec<OwnedFd>,
    },
    /// Pass a signal on to the entered command.
    Signal(i32),
    /// Stop the instance.
    Stop,
}

/// The supervisor's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The entered command runs, as this PID inside the sandbox.
    Spawned { pid: i32 },
    /// It could not be started.
    SpawnFailed { errno: Errno },
    /// It ended with this wait status.
    Exited { status: i32 },
    /// The instance is being stopped.
    Stopping,
}

/// A message that cannot be written or is not one.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WireError {
    #[error("{0} bytes, shorter than a header")]
    Short(usize),
    #[error("a message of kind {kind} is {len} bytes, not {HEADER_LEN}")]
    Length { kind: u32, len: usize },
    #[error("an unknown kind of message ({0})")]
    Unknown(u32),
    #[error("a terminal mask beyond stdin, stdout and stderr ({0:#x})")]
    Mask(u32),
    #[error("terminal settings cut short")]
    Settings,
    #[error("no command")]
    NoArguments,
    #[error("{0} arguments (at most {MAX_ARGS})")]
    TooManyArguments(usize),
    #[error("an argument holds a NUL byte")]
    Nul,
    #[error("an argument without its terminating NUL")]
    Unterminated,
    #[error("{0} bytes after the last argument")]
    Trailing(usize),
    #[error("{0} bytes (at most {MAX_REQUEST})")]
    TooLong(usize),
    #[error("{got} descriptors where {expected} belong")]
    Descriptors { expected: usize, got: usize },
}

fn header(kind: u32, a: u32, b: u32, c: i32) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0..4].copy_from_slice(&kind.to_ne_bytes());
    out[4..8].copy_from_slice(&a.to_ne_bytes());
    out[8..12].copy_from_slice(&b.to_ne_bytes());
    out[12..16].copy_from_slice(&c.to_ne_bytes());
    out
}

/// The word at `buf[at..at + 4]`, if there is one.
fn word(buf: &[u8], at: usize) -> Option<u32> {
    let w = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
}

/// A header's four words, and what follows it.
fn words(buf: &[u8]) -> Result<([u32; 4], &[u8]), WireError> {
    match (word(buf, 0), word(buf, 4), word(buf, 8), word(buf, 12)) {
        (Some(k), Some(a), Some(b), Some(c)) => Ok(([k, a, b, c], &buf[HEADER_LEN..])),
        _ => Err(WireError::Short(buf.len())),
    }
}

/// How many descriptors travel with an `ENTER` of terminal mask `mask`:
/// the terminal's slave first, if there is one, then one for each standard
/// descriptor that is not the terminal.
pub fn stdio_count(mask: u32) -> usize {
    crate::sandbox::protocol::passed_fds(mask)
}

impl Request {
    /// The descriptors that travel with the request.
    pub fn fds(&self) -> &[OwnedFd] {
        match self {
            Request::Enter { stdio, .. } => stdio,
            _ => &[],
        }
    }

    /// The request's bytes (its descriptors travel beside them: `fds`).
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let (argv, terminal) = match self {
            Request::Enter { argv, terminal, .. } => (argv, terminal),
            Request::Signal(sig) => return Ok(header(SIGNAL, 0, 0, *sig).to_vec()),
            Request::Stop => return Ok(header(STOP, 0, 0, 0).to_vec()),
        };
        if argv.is_empty() {
            return Err(WireError::NoArguments);
        }
        if argv.len() > MAX_ARGS {
            return Err(WireError::TooManyArguments(argv.len()));
        }
        if argv.iter().any(|a| a.contains(&0)) {
            return Err(WireError::Nul);
        }
        let mask = terminal.map_or(0, |t| t.mask & 0b111);
        let mut out = header(ENTER, mask, 0, 0).to_vec();
        if let (Some(t), true) = (terminal, mask != 0) {
            out.extend_from_slice(&t.settings.encode());
        }
        out.extend_from_slice(&(argv.len() as u32).to_ne_bytes());
        for a in argv {
            out.extend_from_slice(a);
            out.push(0);
        }
        if out.len() > MAX_REQUEST {
            return Err(WireError::TooLong(out.len()));
        }
        Ok(out)
    }

    /// Reads a request, with the descriptors that came with it (closed if
    /// the request is not one).
    pub fn decode(buf: &[u8], fds: Vec<OwnedFd>) -> Result<Request, WireError> {
        let ([kind, mask, _, arg], rest) = words(buf)?;
        let request = match kind {
            ENTER => {
                let (argv, terminal) = decode_enter(mask, rest)?;
                let expected = stdio_count(mask);
                if fds.len() != expected {
                    return Err(WireError::Descriptors {
                        expected,
                        got: fds.len(),
                    });
                }
                return Ok(Request::Enter {
                    argv,
                    terminal,
                    stdio: fds,
                });
            }
            SIGNAL => Request::Signal(arg as i32),
            STOP => Request::Stop,
            other => return Err(WireError::Unknown(other)),
        };
        if !rest.is_empty() {
            return Err(WireError::Length {
                kind,
                len: buf.len(),
            });
        }
        if !fds.is_empty() {
            return Err(WireError::Descriptors {
                expected: 0,
                got: fds.len(),
            });
        }
        Ok(request)
    }
}

/// An `ENTER`'s arguments and terminal, from its mask and what follows
/// its header.
fn decode_enter(mask: u32, mut rest: &[u8]) -> Result<(Vec<Vec<u8>>, Option<Terminal>), WireError> {
    if mask > 0b111 {
        return Err(WireError::Mask(mask));
    }
    let terminal = if mask != 0 {
        let settings = Settings::decode(rest).ok_or(WireError::Settings)?;
        rest = &rest[SETTINGS_LEN..];
        Some(Terminal { mask, settings })
    } else {
        None
    };
    let argc = word(rest, 0).ok_or(WireError::NoArguments)? as usize;
    if argc == 0 {
        return Err(WireError::NoArguments);
    }
    if argc > MAX_ARGS {
        return Err(WireError::TooManyArguments(argc));
    }
    rest = &rest[4..];
    let mut argv = Vec::with_capacity(argc);
    for _ in 0..argc {
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::Unterminated)?;
        argv.push(rest[..end].to_vec());
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        return Err(WireError::Trailing(rest.len()));
    }
    Ok((argv, terminal))
}

impl Reply {
    pub fn encode(self) -> [u8; REPLY_LEN] {
        match self {
            Reply::Spawned { pid } => header(SPAWNED, 0, 0, pid),
            Reply::SpawnFailed { errno } => header(SPAWN_FAILED, 0, 0, errno as i32),
            Reply::Exited { status } => header(EXITED, 0, 0, status),
            Reply::Stopping => header(STOPPING, 0, 0, 0),
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Reply, WireError> {
        let ([kind, _, _, arg], rest) = words(buf)?;
        let reply = match kind {
            SPAWNED => Reply::Spawned { pid: arg as i32 },
            SPAWN_FAILED => Reply::SpawnFailed {
                errno: Errno::from_raw(arg as i32),
            },
            EXITED => Reply::Exited { status: arg as i32 },
            STOPPING => Reply::Stopping,
            other => return Err(WireError::Unknown(other)),
        };
        if !rest.is_empty() {
            return Err(WireError::Length {
                kind,
                len: buf.len(),
            });
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Descriptors to pass (/dev/null, opened `n` times).
    fn fds(n: usize) -> Vec<OwnedFd> {
        (0..n)
            .map(|_| std::fs::File::open("/dev/null").unwrap().into())
            .collect()
    }

    fn terminal(mask: u32) -> Terminal {
        // SAFETY: all-zero termios and winsize are valid.
        let mut settings: Settings = unsafe { std::mem::zeroed() };
        settings.size.ws_row = 24;
        settings.size.ws_col = 80;
        Terminal { mask, settings }
    }

    fn enter(argv: &[&[u8]], terminal: Option<Terminal>) -> Request {
        Request::Enter {
            argv: argv.iter().map(|a| a.to_vec()).collect(),
            terminal,
            stdio: Vec::new(),
        }
    }

    #[test]
    fn enter_round_trips() {
        let argv: &[&[u8]] = &[b"/bin/sh", b"-c", b"echo \xff", b""];
        let bytes = enter(argv, None).encode().unwrap();
        match Request::decode(&bytes, fds(3)).unwrap() {
            Request::Enter {
                argv: back,
                terminal,
                stdio,
            } => {
                assert_eq!(back, argv);
                assert!(terminal.is_none());
                assert_eq!(stdio.len(), 3);
            }
            r => panic!("{r:?}"),
        }
        // With a terminal: its mask and settings come back, and its slave
        // travels first, then the other descriptors.
        for (mask, passed) in [(0b001, 3), (0b101, 2), (0b111, 1)] {
            let bytes = enter(&[b"true"], Some(terminal(mask))).encode().unwrap();
            assert_eq!(bytes.len(), HEADER_LEN + SETTINGS_LEN + 4 + 5);
            match Request::decode(&bytes, fds(passed)).unwrap() {
                Request::Enter { argv, terminal, .. } => {
                    assert_eq!(argv, [b"true"]);
                    let t = terminal.unwrap();
                    assert_eq!(t.mask, mask);
                    assert_eq!((t.settings.size.ws_row, t.settings.size.ws_col), (24, 80));
                }
                r => panic!("{r:?}"),
            }
        }
        // A terminal of no descriptor is none.
        let bytes = enter(&[b"true"], Some(terminal(0))).encode().unwrap();
        assert!(matches!(
            Request::decode(&bytes, fds(3)).unwrap(),
            Request::Enter { terminal: None, .. }
        ));
        // The bytes a raw client writes (tests/acceptance/instances.rs).
        let mut raw = header(200, 0, 0, 0).to_vec();
        raw.extend_from_slice(&2u32.to_ne_bytes());
        raw.extend_from_slice(b"/bin/sh\0-c\0");
        assert_eq!(enter(&[b"/bin/sh", b"-c"], None).encode().unwrap(), raw);
    }

    #[test]
    fn unsendable_commands() {
        assert_eq!(enter(&[], None).encode(), Err(WireError::NoArguments));
        assert_eq!(enter(&[b"a\0b"], None).encode(), Err(WireError::Nul));
        let many = vec![&b"x"[..]; MAX_ARGS + 1];
        assert_eq!(
            enter(&many, None).encode(),
            Err(WireError::TooManyArguments(MAX_ARGS + 1))
        );
        let long = vec![b'x'; MAX_REQUEST];
        assert!(matches!(
            enter(&[&long], None).encode(),
            Err(WireError::TooLong(_))
        ));
        // The longest that fits.
        let fits = vec![b'x'; MAX_REQUEST - HEADER_LEN - 4 - 1];
        assert_eq!(
            enter(&[&fits], None).encode().map(|b| b.len()),
            Ok(MAX_REQUEST)
        );
    }

    #[test]
    fn malformed_requests() {
        let good = enter(&[b"id", b"-u"], None).encode().unwrap();
        let decode = |b: &[u8], n: usize| Request::decode(b, fds(n)).map(|_| ()).unwrap_err();
        assert_eq!(decode(&[], 0), WireError::Short(0));
        assert_eq!(decode(&good[..15], 0), WireError::Short(15));
        assert_eq!(decode(&header(7, 0, 0, 0), 0), WireError::Unknown(7));
        // init's own requests are not this socket's.
        assert_eq!(decode(&header(100, 0, 0, 0), 0), WireError::Unknown(100));
        // No argument count, none, or more than may be.
        assert_eq!(decode(&good[..HEADER_LEN], 3), WireError::NoArguments);
        assert_eq!(decode(&good[..HEADER_LEN + 3], 3), WireError::NoArguments);
        let mut none = header(ENTER, 0, 0, 0).to_vec();
        none.extend_from_slice(&0u32.to_ne_bytes());
        assert_eq!(decode(&none, 3), WireError::NoArguments);
        let mut huge = header(ENTER, 0, 0, 0).to_vec();
        huge.extend_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(
            decode(&huge, 3),
            WireError::TooManyArguments(u32::MAX as usize)
        );
        // Cut short, or more after the arguments.
        assert_eq!(decode(&good[..good.len() - 1], 3), WireError::Unterminated);
        let mut more = good.clone();
        more.extend_from_slice(b"x\0");
        assert_eq!(decode(&more, 3), WireError::Trailing(2));
        // A count larger than the arguments there.
        let mut counted = good.clone();
        counted[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(decode(&counted, 3), WireError::Unterminated);
        // A mask beyond the three descriptors; settings cut short.
        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&0b1000u32.to_ne_bytes());
        assert_eq!(decode(&bad, 3), WireError::Mask(0b1000));
        let mut cut = header(ENTER, 0b001, 0, 0).to_vec();
        cut.extend_from_slice(&[0; SETTINGS_LEN - 1]);
        assert_eq!(decode(&cut, 3), WireError::Settings);
        // Descriptors: as many as the mask says, none with the others.
        assert_eq!(
            decode(&good, 2),
            WireError::Descriptors {
                expected: 3,
                got: 2
            }
        );
        let t = enter(&[b"id"], Some(terminal(0b111))).encode().unwrap();
        assert_eq!(
            decode(&t, 2),
            WireError::Descriptors {
                expected: 1,
                got: 2
            }
        );
        let stop = Request::Stop.encode().unwrap();
        assert_eq!(
            decode(&stop, 1),
            WireError::Descriptors {
                expected: 0,
                got: 1
            }
        );
        // A fixed-size request with more after it.
        let mut long = stop.clone();
        long.push(0);
        assert_eq!(
            decode(&long, 0),
            WireError::Length {
                kind: STOP,
                len: 17
            }
        );
    }

    #[test]
    fn signal_and_stop_round_trip() {
        for sig in [libc::SIGINT, libc::SIGTERM, -1, 0] {
            let bytes = Request::Signal(sig).encode().unwrap();
            assert_eq!(bytes, header(201, 0, 0, sig));
            assert!(matches!(
                Request::decode(&bytes, Vec::new()),
                Ok(Request::Signal(s)) if s == sig
            ));
        }
        // What a raw client sends.
        let bytes = Request::Stop.encode().unwrap();
        assert_eq!(bytes, header(202, 0, 0, 0));
        assert!(matches!(
            Request::decode(&bytes, Vec::new()),
            Ok(Request::Stop)
        ));
    }

    #[test]
    fn replies_round_trip() {
        for r in [
            Reply::Spawned { pid: 12 },
            Reply::SpawnFailed {
                errno: Errno::ESRCH,
            },
            Reply::Exited { status: 256 },
            Reply::Exited { status: 9 },
            Reply::Stopping,
        ] {
            assert_eq!(Reply::decode(&r.encode()), Ok(r));
        }
        // The kinds a raw client reads in the first word.
        let kind = |r: Reply| word(&r.encode(), 0).unwrap();
        assert_eq!(kind(Reply::Spawned { pid: 1 }), 4);
        assert_eq!(
            kind(Reply::SpawnFailed {
                errno: Errno::ENOENT
            }),
            5
        );
        assert_eq!(kind(Reply::Exited { status: 0 }), 6);
        assert_eq!(kind(Reply::Stopping), 203);
    }

    #[test]
    fn malformed_replies() {
        assert_eq!(Reply::decode(&[0; 15]), Err(WireError::Short(15)));
        assert_eq!(
            Reply::decode(&[0xff; 16]),
            Err(WireError::Unknown(u32::MAX))
        );
        // A request is no reply.
        assert_eq!(
            Reply::decode(&header(STOP, 0, 0, 0)),
            Err(WireError::Unknown(STOP))
        );
        let mut long = Reply::Stopping.encode().to_vec();
        long.push(1);
        assert_eq!(
            Reply::decode(&long),
            Err(WireError::Length {
                kind: STOPPING,
                len: 17
            })
        );
    }
}
