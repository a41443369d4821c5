//! Desktop notifications: one `org.freedesktop.Notifications.Notify` call
//! on the session bus, for a user who launched antimony from a menu and
//! has no terminal to read its warnings and errors on.
//!
//! A D-Bus client just big enough for that, so that it needs no program
//! (`notify-send`, `gdbus`) a machine may lack: connect to the bus's unix
//! socket, authenticate with SASL EXTERNAL (the kernel vouches for our uid),
//! `Hello`, the call, and its reply or error. Everything within one
//! deadline: a missing, hung or slow bus or notification server costs a
//! launch at most that long, and never fails it (the caller ignores the
//! error). Marshalling follows the D-Bus specification: little-endian, each
//! value aligned to its size (structs and dict entries to 8) from the start
//! of the message.
//!
//! A leaf: it uses nothing else of antimony's.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a notification may delay antimony, all included.
pub const TIMEOUT: Duration = Duration::from_millis(300);

/// The longest body sent: a hook's message can be long, a notification
/// is read at a glance (and a D-Bus message has a size limit).
const MAX_BODY: usize = 2000;

/// The spec's urgency levels (the `urgency` hint, a byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Normal = 1,
    Critical = 2,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub app_name: String,
    /// An icon name of the freedesktop icon naming specification.
    pub icon: String,
    /// Plain text (the spec gives the summary no markup).
    pub summary: String,
    /// Plain text: escaped for the markup a server may read in a body.
    pub body: String,
    pub urgency: Urgency,
}

/// Why a notification was not sent (the caller ignores it: a desktop
/// without a notification service is no reason to fail a launch).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no session bus address")]
    NoAddress,
    #[error("the session bus: {0}")]
    Io(#[from] std::io::Error),
    #[error("the session bus refused authentication: {0}")]
    Auth(String),
    #[error("the session bus answered with error {0}")]
    Refused(String),
    #[error("a malformed message from the session bus")]
    Malformed,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// `text` escaped for a notification body: servers may read it as markup
/// (a subset of HTML), so `&`, `<` and `>` are written as entities and
/// nothing in it can style, hide or link; cut to a size read at a glance.
pub fn body_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if out.len() >= MAX_BODY {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // D-Bus strings may not hold NUL.
            '\0' => out.push_str("\\x00"),
            c => out.push(c),
        }
    }
    out
}

/// The session bus's address: `$DBUS_SESSION_BUS_ADDRESS`, else
/// `unix:path=$XDG_RUNTIME_DIR/bus` (what systemd's user bus listens on).
pub fn session_address(var: Option<&OsStr>, runtime_dir: Option<&Path>) -> Option<String> {
    match var {
        Some(a) if !a.is_empty() => Some(a.to_string_lossy().into_owned()),
        _ => runtime_dir.map(|r| format!("unix:path={}", r.join("bus").display())),
    }
}

/// Sends `n` through the bus at `address`, waiting at most `limit` for
/// the server's answer. The connection is closed when it returns.
pub fn send(address: &str, n: &Notification, limit: Duration) -> Result<(), NotifyError> {
    call(address, notify_call(n, 2), limit)
}

/// Whether a notification service answers on the bus at `address`
/// (`org.freedesktop.DBus.Peer.Ping`, which every D-Bus library answers;
/// a service the bus can start is started), within `limit`.
pub fn ping(address: &str, limit: Duration) -> Result<(), NotifyError> {
    let ping = method_call(
        2,
        "org.freedesktop.Notifications",
        "/org/freedesktop/Notifications",
        "org.freedesktop.DBus.Peer",
        "Ping",
        "",
        &[],
    );
    call(address, ping, limit)
}

/// Connects, authenticates, says Hello (serial 1) and makes `message`
/// (serial 2); returns when its answer is a method return.
fn call(address: &str, message: Vec<u8>, limit: Duration) -> Result<(), NotifyError> {
    let deadline = Instant::now() + limit;
    let mut sock = connect_any(address)?;
    // SASL: a NUL byte, then lines. EXTERNAL with our uid (in decimal,
    // hex-encoded): the bus checks it against the socket's credentials.
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() }.to_string();
    let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
    write_all(
        &mut sock,
        format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes(),
        deadline,
        limit,
    )?;
    let mut buf = Vec::new();
    let line = loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            break String::from_utf8_lossy(&buf[..end]).into_owned();
        }
        if buf.len() > 512 {
            return Err(NotifyError::Malformed);
        }
        read_some(&mut sock, &mut buf, deadline, limit)?;
    };
    if !line.starts_with("OK ") {
        return Err(NotifyError::Auth(line));
    }
    // BEGIN, Hello (serial 1) and the call (serial 2) in one write: the
    // bus handles them in order.
    let mut out = b"BEGIN\r\n".to_vec();
    out.extend(hello());
    out.extend(message);
    write_all(&mut sock, &out, deadline, limit)?;
    buf.clear();
    loop {
        while let Some((len, m)) = parse(&buf)? {
            match (m.reply_serial, m.kind) {
                (Some(2), METHOD_RETURN) => return Ok(()),
                (Some(1 | 2), ERROR) => {
                    return Err(NotifyError::Refused(m.error_name.unwrap_or_default()));
                }
                _ => {}
            }
            buf.drain(..len);
        }
        if buf.len() > 1 << 20 {
            return Err(NotifyError::Malformed);
        }
        read_some(&mut sock, &mut buf, deadline, limit)?;
    }
}

/// The first address of the list (`;`-separated) that connects: only
/// `unix:path=` and `unix:abstract=` are understood, which is what session
/// buses on Linux listen on.
fn connect_any(address: &str) -> Result<UnixStream, NotifyError> {
    let mut last = NotifyError::NoAddress;
    for a in address.split(';') {
        let Some(params) = a.strip_prefix("unix:") else {
            continue;
        };
        for kv in params.split(',') {
            let (path, abstract_) = if let Some(p) = kv.strip_prefix("path=") {
                (p, false)
            } else if let Some(p) = kv.strip_prefix("abstract=") {
                (p, true)
            } else {
                continue;
            };
            let Some(name) = unescape(path) else {
                continue;
            };
            match connect(&name, abstract_) {
                Ok(s) => return Ok(s),
                Err(e) => last = NotifyError::Io(e),
            }
        }
    }
    Err(last)
}

/// An address value with its `%XX` escapes decoded.
fn unescape(v: &str) -> Option<Vec<u8>> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// A non-blocking connect: a bus whose listening queue is full (hung)
/// refuses at once (EAGAIN) instead of making us wait.
fn connect(name: &[u8], abstract_: bool) -> std::io::Result<UnixStream> {
    // SAFETY: a zeroed sockaddr_un is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let start = usize::from(abstract_);
    if name.is_empty() || start + name.len() >= addr.sun_path.len() {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in addr.sun_path[start..].iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    let len =
        std::mem::size_of::<libc::sa_family_t>() + start + name.len() + usize::from(!abstract_);
    // SAFETY: socket takes integers; the descriptor is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: addr is a valid sockaddr_un of at least `len` bytes.
    let r = unsafe {
        libc::connect(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            (&raw const addr).cast(),
            len as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let s = UnixStream::from(fd);
    // Blocking from here, each read and write bounded by the deadline.
    s.set_nonblocking(false)?;
    Ok(s)
}

fn remaining(deadline: Instant, limit: Duration) -> Result<Duration, NotifyError> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(NotifyError::Timeout(limit)),
    }
}

fn timed_out(e: std::io::Error, limit: Duration) -> NotifyError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            NotifyError::Timeout(limit)
        }
        _ => NotifyError::Io(e),
    }
}

fn write_all(
    s: &mut UnixStream,
    data: &[u8],
    deadline: Instant,
    limit: Duration,
) -> Result<(), NotifyError> {
    s.set_write_timeout(Some(remaining(deadline, limit)?))?;
    s.write_all(data).map_err(|e| timed_out(e, limit))
}

fn read_some(
    s: &mut UnixStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    limit: Duration,
) -> Result<(), NotifyError> {
    s.set_read_timeout(Some(remaining(deadline, limit)?))?;
    let mut chunk = [0u8; 4096];
    match s.read(&mut chunk) {
        Ok(0) => Err(NotifyError::Io(std::io::ErrorKind::UnexpectedEof.into())),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(timed_out(e, limit)),
    }
}

// ---- marshalling ----------------------------------------------------------

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;

// Header field codes.
const PATH: u8 = 1;
const INTERFACE: u8 = 2;
const MEMBER: u8 = 3;
const ERROR_NAME: u8 = 4;
const REPLY_SERIAL: u8 = 5;
const DESTINATION: u8 = 6;
const SIGNATURE: u8 = 8;

/// Little-endian values, each aligned from the start of `buf` (a message,
/// or a body: a body starts at a multiple of 8).
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn align(&mut self, n: usize) {
        while self.buf.len() % n != 0 {
            self.buf.push(0);
        }
    }
    fn byte(&mut self, b: u8) {
        self.buf.push(b);
    }
    fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A string or object path: length, bytes, NUL.
    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// A signature: one-byte length, bytes, NUL.
    fn signature(&mut self, s: &str) {
        self.byte(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// An array whose elements align to `align`: its length (in bytes,
    /// from after the padding to the first element), then the elements.
    fn array(&mut self, align: usize, elements: impl FnOnce(&mut Writer)) {
        self.u32(0);
        let at = self.buf.len() - 4;
        self.align(align);
        let start = self.buf.len();
        elements(self);
        let len = (self.buf.len() - start) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// A method call: the header (fields PATH, INTERFACE, MEMBER,
/// DESTINATION and, with a body, SIGNATURE), padded to 8, and the body.
fn method_call(
    serial: u32,
    destination: &str,
    path: &str,
    interface: &str,
    member: &str,
    signature: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut w = Writer::default();
    w.byte(b'l');
    w.byte(METHOD_CALL);
    w.byte(0); // flags: a reply is wanted, auto-start allowed
    w.byte(1); // protocol version
    w.u32(body.len() as u32);
    w.u32(serial);
    w.array(8, |w| {
        let mut field = |code: u8, sig: &str, value: &str| {
            w.align(8);
            w.byte(code);
            w.signature(sig);
            if sig == "g" {
                w.signature(value);
            } else {
                w.string(value);
            }
        };
        field(PATH, "o", path);
        field(INTERFACE, "s", interface);
        field(MEMBER, "s", member);
        field(DESTINATION, "s", destination);
        if !signature.is_empty() {
            field(SIGNATURE, "g", signature);
        }
    });
    w.align(8);
    w.buf.extend_from_slice(body);
    w.buf
}

fn hello() -> Vec<u8> {
    method_call(
        1,
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "Hello",
        "",
        &[],
    )
}

/// `Notify(app_name s, replaces_id u, app_icon s, summary s, body s,
/// actions as, hints a{sv}, expire_timeout i)`.
fn notify_call(n: &Notification, serial: u32) -> Vec<u8> {
    let mut b = Writer::default();
    b.string(&n.app_name);
    b.u32(0); // replaces nothing
    b.string(&n.icon);
    b.string(&n.summary);
    b.string(&n.body);
    b.array(4, |_| {}); // no actions
    b.array(8, |w| {
        // {"urgency": <byte>}
        w.align(8);
        w.string("urgency");
        w.signature("y");
        w.byte(n.urgency as u8);
    });
    b.i32(-1); // the server's own expiry
    method_call(
        serial,
        "org.freedesktop.Notifications",
        "/org/freedesktop/Notifications",
        "org.freedesktop.Notifications",
        "Notify",
        "susssasa{sv}i",
        &b.buf,
    )
}

/// What a received message says about the calls it answers.
#[derive(Debug, PartialEq, Eq)]
struct Received {
    kind: u8,
    reply_serial: Option<u32>,
    error_name: Option<String>,
}

/// The first whole message in `buf` and its length, or None when more
/// bytes are needed.
fn parse(buf: &[u8]) -> Result<Option<(usize, Received)>, NotifyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let little = match buf[0] {
        b'l' => true,
        b'B' => false,
        _ => return Err(NotifyError::Malformed),
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let body_len = u32_at(4).ok_or(NotifyError::Malformed)? as usize;
    let fields_len = u32_at(12).ok_or(NotifyError::Malformed)? as usize;
    let header_end = 16 + fields_len;
    let total = header_end.next_multiple_of(8) + body_len;
    if fields_len > 1 << 26 || body_len > 1 << 27 {
        return Err(NotifyError::Malformed);
    }
    if buf.len() < total {
        return Ok(None);
    }
    let mut m = Received {
        kind: buf[1],
        reply_serial: None,
        error_name: None,
    };
    let bad = NotifyError::Malformed;
    let mut at = 16;
    while at < header_end {
        at = at.next_multiple_of(8);
        let code = *buf.get(at).ok_or(NotifyError::Malformed)?;
        let sig_len = *buf.get(at + 1).ok_or(NotifyError::Malformed)? as usize;
        let sig = buf
            .get(at + 2..at + 2 + sig_len)
            .ok_or(NotifyError::Malformed)?;
        at += 3 + sig_len;
        match sig {
            b"u" => {
                at = at.next_multiple_of(4);
                let v = u32_at(at).ok_or(NotifyError::Malformed)?;
                if code == REPLY_SERIAL {
                    m.reply_serial = Some(v);
                }
                at += 4;
            }
            b"s" | b"o" => {
                at = at.next_multiple_of(4);
                let len = u32_at(at).ok_or(NotifyError::Malformed)? as usize;
                let s = buf
                    .get(at + 4..at + 4 + len)
                    .ok_or(NotifyError::Malformed)?;
                if code == ERROR_NAME {
                    m.error_name = Some(String::from_utf8_lossy(s).into_owned());
                }
                at += 4 + len + 1;
            }
            b"g" => {
                let len = *buf.get(at).ok_or(NotifyError::Malformed)? as usize;
                at += 1 + len + 1;
            }
            _ => return Err(bad),
        }
    }
    if at > header_end {
        return Err(NotifyError::Malformed);
    }
    Ok(Some((total, m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Notification {
        Notification {
            app_name: "antimony".into(),
            icon: "dialog-warning".into(),
            summary: "antimony: ff".into(),
            body: "a".into(),
            urgency: Urgency::Critical,
        }
    }

    /// Hello, byte for byte as the specification lays it out.
    #[test]
    fn hello_is_marshalled_as_the_spec_says() {
        let m = hello();
        // Fixed part: endianness, type, flags, version, body length, serial.
        assert_eq!(&m[..12], b"l\x01\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00");
        let fields_len = u32::from_le_bytes(m[12..16].try_into().unwrap()) as usize;
        // PATH: code, signature "o", string at offset 20 (aligned to 4).
        assert_eq!(&m[16..20], b"\x01\x01o\x00");
        assert_eq!(&m[20..24], &21u32.to_le_bytes());
        assert_eq!(&m[24..46], b"/org/freedesktop/DBus\0");
        // The next field starts at a multiple of 8 (48).
        assert_eq!(&m[46..48], b"\0\0");
        assert_eq!(&m[48..52], b"\x02\x01s\x00");
        // No body: no signature field; the header ends padded to 8.
        assert_eq!(m.len(), (16 + fields_len).next_multiple_of(8));
        assert_eq!(m.len() % 8, 0);
        assert!(!m.windows(3).any(|w| w == b"\x08\x01g"));
    }

    #[test]
    fn notify_body_is_aligned_and_sized() {
        let n = sample();
        let m = notify_call(&n, 2);
        let body_len = u32::from_le_bytes(m[4..8].try_into().unwrap()) as usize;
        let fields_len = u32::from_le_bytes(m[12..16].try_into().unwrap()) as usize;
        let start = (16 + fields_len).next_multiple_of(8);
        assert_eq!(m.len(), start + body_len);
        let body = &m[start..];
        // "antimony": length 8, bytes, NUL (13 bytes), pad to 16 for u32 0.
        assert_eq!(&body[..4], &8u32.to_le_bytes());
        assert_eq!(&body[4..13], b"antimony\0");
        assert_eq!(&body[13..16], b"\0\0\0");
        assert_eq!(&body[16..20], &0u32.to_le_bytes());
        // icon "dialog-warning" (14): 20..24 length, 24..39.
        assert_eq!(&body[20..24], &14u32.to_le_bytes());
        // summary at 40 (aligned), "antimony: ff" (12): 40..57.
        assert_eq!(&body[40..44], &12u32.to_le_bytes());
        assert_eq!(&body[44..57], b"antimony: ff\0");
        // body at 60: "a": 60..66.
        assert_eq!(&body[60..64], &1u32.to_le_bytes());
        assert_eq!(&body[64..66], b"a\0");
        // actions: empty array at 68.
        assert_eq!(&body[66..68], b"\0\0");
        assert_eq!(&body[68..72], &0u32.to_le_bytes());
        // hints: length at 72, dict entries from 80 (aligned to 8); the
        // length counts from there: key (4+7+1) + signature (3) + byte.
        assert_eq!(&body[72..76], &16u32.to_le_bytes());
        assert_eq!(&body[76..80], b"\0\0\0\0");
        assert_eq!(&body[80..84], &7u32.to_le_bytes());
        assert_eq!(&body[84..92], b"urgency\0");
        assert_eq!(&body[92..96], b"\x01y\0\x02");
        // expire_timeout -1 at 96.
        assert_eq!(&body[96..100], &(-1i32).to_le_bytes());
        assert_eq!(body.len(), 100);
        // The header names the signature.
        let sig = b"\x08\x01g\x00\x0dsusssasa{sv}i\x00";
        assert!(m.windows(sig.len()).any(|w| w == sig));
    }

    #[test]
    fn a_reply_is_parsed_in_either_byte_order() {
        // Our own call, taken as a message, has no reply serial.
        let m = notify_call(&sample(), 7);
        let (len, r) = parse(&m).unwrap().unwrap();
        assert_eq!((len, r.kind, r.reply_serial), (m.len(), METHOD_CALL, None));
        // A partial message asks for more.
        assert!(parse(&m[..m.len() - 1]).unwrap().is_none());
        // An error, big-endian: ERROR_NAME and REPLY_SERIAL.
        let mut e = b"B\x03\x01\x01\x00\x00\x00\x00\x00\x00\x00\x09".to_vec();
        let mut f = Vec::new();
        f.extend(b"\x04\x01s\x00");
        f.extend(&5u32.to_be_bytes());
        f.extend(b"x.Err\0\0\0"); // to 16
        f.extend(b"\x05\x01u\x00");
        f.extend(&2u32.to_be_bytes());
        e.extend(&(f.len() as u32).to_be_bytes());
        e.extend(&f);
        let (len, r) = parse(&e).unwrap().unwrap();
        assert_eq!(len, e.len());
        assert_eq!(r.kind, ERROR);
        assert_eq!(r.reply_serial, Some(2));
        assert_eq!(r.error_name.as_deref(), Some("x.Err"));
        // Garbage is refused, not read past.
        assert!(parse(b"X\x02\x00\x01\0\0\0\0\0\0\0\0\0\0\0\0").is_err());
        let mut short = e.clone();
        // Fields that claim fewer bytes than the first one takes.
        short[12..16].copy_from_slice(&3u32.to_be_bytes());
        assert!(parse(&short).is_err());
    }

    #[test]
    fn bodies_are_escaped_for_markup_and_cut() {
        assert_eq!(
            body_text("<b>x</b> & <a href='u'>"),
            "&lt;b&gt;x&lt;/b&gt; &amp; &lt;a href='u'&gt;"
        );
        assert_eq!(body_text("a\0b"), "a\\x00b");
        let long = body_text(&"<".repeat(5000));
        assert!(long.len() < MAX_BODY + 8 && long.ends_with('…'));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            session_address(Some(OsStr::new("unix:path=/x")), Some(Path::new("/r"))).as_deref(),
            Some("unix:path=/x")
        );
        assert_eq!(
            session_address(Some(OsStr::new("")), Some(Path::new("/r"))).as_deref(),
            Some("unix:path=/r/bus")
        );
        assert_eq!(session_address(None, None), None);
        assert_eq!(unescape("/a%2cb%20c").unwrap(), b"/a,b c");
        assert!(unescape("/a%2").is_none());
        assert!(matches!(
            connect_any("tcp:host=localhost,port=1"),
            Err(NotifyError::NoAddress)
        ));
    }

    /// No bus: an error at once, not a wait.
    #[test]
    fn no_bus_fails_at_once() {
        let t = Instant::now();
        let r = send("unix:path=/nonexistent/bus", &sample(), TIMEOUT);
        assert!(matches!(r, Err(NotifyError::Io(_))), "{r:?}");
        assert!(t.elapsed() < Duration::from_millis(50));
    }
}
