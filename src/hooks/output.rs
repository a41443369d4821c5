//! A hook's stdout and stderr, read by antimony: passed on to antimony's own
//! as they come (the hook's output appears where antimony's does), the
//! first few KiB kept for the run record, and stdout lines that are
//! antimony's protocol (`{"state": …}`, `{"error": …}`) taken out and read.
//! Memory stays bounded whatever the hook prints. The output of a hook
//! inside the sandbox is text from inside: its control characters are
//! escaped on the way (`crate::text`); a host hook's is the user's own.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use super::records::OUTPUT_HEAD;
use super::state::{Reply, parse_reply};

/// The longest stdout line antimony holds back looking for a reply; longer
/// lines are output.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One of a hook's output pipes.
#[derive(Debug)]
pub struct Pipe {
    pub fd: OwnedFd,
    pub stream: Stream,
    pub open: bool,
    line: Vec<u8>,
    /// Passed on escaped (a hook inside the sandbox).
    escape: Option<crate::text::Stream>,
}

impl Pipe {
    pub fn new(fd: OwnedFd, stream: Stream) -> Pipe {
        // Non-blocking: antimony reads what there is and goes on.
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Pipe {
            fd,
            stream,
            open: true,
            line: Vec::new(),
            escape: None,
        }
    }

    /// The pipe of a hook inside the sandbox: what it prints is escaped.
    pub fn escaped(mut self) -> Pipe {
        self.escape = Some(crate::text::Stream::default());
        self
    }
}

/// What antimony keeps of a hook's output.
#[derive(Debug, Default)]
pub struct Captured {
    pub head: Vec<u8>,
    pub truncated: bool,
    pub reply: Reply,
}

impl Captured {
    fn keep(&mut self, data: &[u8]) {
        let room = OUTPUT_HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&data[..data.len().min(room)]);
        if data.len() > room {
            self.truncated = true;
        }
    }

    /// Keeps `data` (as it came) for the record and writes it out, escaped
    /// for a hook inside the sandbox.
    fn pass_on(&mut self, stream: Stream, data: &[u8], escape: Option<&mut crate::text::Stream>) {
        self.keep(data);
        match escape {
            Some(e) => {
                let mut escaped = Vec::new();
                e.feed(data, &mut escaped);
                write_out(stream, &escaped);
            }
            None => write_out(stream, data),
        }
    }

    fn line(&mut self, line: &[u8], escape: Option<&mut crate::text::Stream>) {
        match parse_reply(line) {
            Some(reply) => {
                if reply.change.is_some() {
                    self.reply.change = reply.change;
                }
                if reply.error.is_some() {
                    self.reply.error = reply.error;
                }
            }
            None => self.pass_on(Stream::Stdout, line, escape),
        }
    }

    /// Reads what the pipe has now, up to 8 reads (a hook that
    /// writes as fast as antimony reads must not keep the event loop here:
    /// poll reports the pipe again). Returns false at end of file.
    pub fn drain(&mut self, pipe: &mut Pipe) -> bool {
        self.drain_up_to(pipe, 8)
    }

    /// `drain`, with room for `max_reads` reads of 16 KiB.
    pub fn drain_up_to(&mut self, pipe: &mut Pipe, max_reads: usize) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let mut reads = 0;
        while reads < max_reads {
            // SAFETY: reading into a stack buffer from a descriptor we own.
            let n = unsafe { libc::read(pipe.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                return match e.kind() {
                    std::io::ErrorKind::Interrupted => continue,
                    std::io::ErrorKind::WouldBlock => true,
                    _ => self.close(pipe),
                };
            }
            if n == 0 {
                return self.close(pipe);
            }
            reads += 1;
            let data = &buf[..n as usize];
            match pipe.stream {
                Stream::Stderr => self.pass_on(Stream::Stderr, data, pipe.escape.as_mut()),
                Stream::Stdout => self.stdout(pipe, data),
            }
        }
        true
    }

    /// Stdout, line by line: a line that may be a reply (`{…}`) is read;
    /// the plain lines around it are passed on in one write.
    fn stdout(&mut self, pipe: &mut Pipe, data: &[u8]) {
        let mut plain = Vec::new();
        let mut rest = data;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            pipe.line.extend_from_slice(&rest[..=i]);
            let line = std::mem::take(&mut pipe.line);
            if line.trim_ascii_start().starts_with(b"{") {
                if !plain.is_empty() {
                    let plain = std::mem::take(&mut plain);
                    self.pass_on(Stream::Stdout, &plain, pipe.escape.as_mut());
                }
                self.line(&line, pipe.escape.as_mut());
            } else {
                plain.extend_from_slice(&line);
            }
            rest = &rest[i + 1..];
        }
        if !plain.is_empty() {
            self.pass_on(Stream::Stdout, &plain, pipe.escape.as_mut());
        }
        pipe.line.extend_from_slice(rest);
        if pipe.line.len() > MAX_LINE {
            let line = std::mem::take(&mut pipe.line);
            self.pass_on(Stream::Stdout, &line, pipe.escape.as_mut());
        }
    }

    fn close(&mut self, pipe: &mut Pipe) -> bool {
        if !pipe.line.is_empty() {
            let line = std::mem::take(&mut pipe.line);
            self.line(&line, pipe.escape.as_mut());
        }
        // What an escaped stream held back (half a character) is passed on
        // as it ends.
        if let Some(mut e) = pipe.escape.take() {
            let mut rest = Vec::new();
            e.finish(&mut rest);
            if !rest.is_empty() {
                write_out(pipe.stream, &rest);
            }
        }
        pipe.open = false;
        false
    }
}

/// Writes to antimony's stdout or stderr. Flushed at once: Rust's stdout is
/// line-buffered, and a partial line must not wait for antimony's exit (the
/// program's own output goes straight to the same descriptor).
fn write_out(stream: Stream, data: &[u8]) {
    let _ = match stream {
        Stream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(data).and_then(|()| out.flush())
        }
        Stream::Stderr => std::io::stderr().lock().write_all(data),
    };
}
