//! Pseudo-terminals, and the relay between a caller's terminal and a
//! command that must never hold it, as `ssh -t` does it.
//!
//! Whoever holds a descriptor of a terminal can read what is typed into it
//! and write to it for as long as the descriptor lives, and one whose
//! controlling terminal it is can push input into it (TIOCSTI) and open it
//! again (`/dev/tty`). So a command that runs as someone else, or where
//! something else can copy its descriptors, gets a new pseudo-terminal
//! instead: it holds the slave side, antimony holds the master side and
//! copies bytes between the master and the caller's terminal. When the
//! command has ended, antimony closes the master: the kernel hangs up the
//! slave, and whatever the command left behind can neither read nor write
//! it any more, nor reach the caller's terminal, which it never held.
//!
//! Two users: `antimony enter`, whose command runs in a sandbox (there the
//! sandbox's init opens the pseudo-terminal in the sandbox's own devpts, so
//! that it is the sandbox's, and passes the master out to the `enter`
//! client on the host, which relays); and a hook that antimony, as root,
//! runs as the user it acts for (antimony opens the pseudo-terminal on the
//! host and relays inside its event loop). A caller's descriptor that is
//! not a terminal is relayed through a pipe instead (`Relay::pump_in`,
//! `Relay::pump_out`).
//!
//! While it relays input, antimony puts the caller's terminal in raw mode
//! (all of it for `enter`, where every byte of output comes through the new
//! terminal; only its input side for a hook, whose stdout and stderr are
//! pipes antimony prints as they come), so that the new terminal's own line
//! discipline does the echo, line editing and signal keys (^C reaches the
//! command's foreground process group through it), and puts it back as it
//! was afterwards.
//!
//! `open_at` and `Settings::apply` make system calls only (no allocation):
//! the sandbox's init calls them after its fork.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty takes an integer.
    unsafe { libc::isatty(fd) == 1 }
}

/// A terminal's settings and window size: what a new pseudo-terminal
/// copies from the caller's, so that erase and interrupt keys, UTF-8 input
/// and the size are the same inside.
#[derive(Clone, Copy)]
pub struct Settings {
    pub termios: libc::termios,
    pub size: libc::winsize,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Settings({}x{})", self.size.ws_col, self.size.ws_row)
    }
}

/// The bytes `Settings::encode` makes.
pub const SETTINGS_LEN: usize =
    std::mem::size_of::<libc::winsize>() + std::mem::size_of::<libc::termios>();

impl Settings {
    /// The settings of terminal `fd`; `None` if it is none.
    pub fn of(fd: RawFd) -> Option<Settings> {
        // SAFETY: all-zero termios and winsize are valid; tcgetattr and
        // TIOCGWINSZ fill locals.
        unsafe {
            let mut termios: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut termios) != 0 {
                return None;
            }
            let mut size: libc::winsize = std::mem::zeroed();
            libc::ioctl(fd, libc::TIOCGWINSZ, &mut size);
            Some(Settings { termios, size })
        }
    }

    /// For a request to the process that opens the new terminal (the
    /// same binary: the layout is ours on both sides).
    pub fn encode(&self) -> [u8; SETTINGS_LEN] {
        let mut out = [0u8; SETTINGS_LEN];
        let w = std::mem::size_of::<libc::winsize>();
        // SAFETY: both are plain integer structs, read as the bytes they
        // are made of, within their sizes.
        unsafe {
            std::ptr::copy_nonoverlapping((&raw const self.size).cast::<u8>(), out.as_mut_ptr(), w);
            std::ptr::copy_nonoverlapping(
                (&raw const self.termios).cast::<u8>(),
                out.as_mut_ptr().add(w),
                SETTINGS_LEN - w,
            );
        }
        out
    }

    /// The settings `encode` made, from the first `SETTINGS_LEN` bytes.
    /// No allocation.
    pub fn decode(buf: &[u8]) -> Option<Settings> {
        if buf.len() < SETTINGS_LEN {
            return None;
        }
        let w = std::mem::size_of::<libc::winsize>();
        // SAFETY: any bytes are a valid termios and winsize (integers
        // only); unaligned reads from a slice long enough.
        unsafe {
            Some(Settings {
                size: std::ptr::read_unaligned(buf.as_ptr().cast::<libc::winsize>()),
                termios: std::ptr::read_unaligned(buf.as_ptr().add(w).cast::<libc::termios>()),
            })
        }
    }

    /// Applies them to terminal `fd` (a new slave). System calls only.
    pub fn apply(&self, fd: RawFd) -> Result<(), Errno> {
        // SAFETY: tcsetattr and TIOCSWINSZ read the structs we pass.
        unsafe {
            if libc::tcsetattr(fd, libc::TCSANOW, &self.termios) != 0 {
                return Err(Errno::last());
            }
            if libc::ioctl(fd, libc::TIOCSWINSZ, &self.size) != 0 {
                return Err(Errno::last());
            }
        }
        Ok(())
    }
}

/// Whether `fd` is the master side of a pseudo-terminal: only a master
/// answers TIOCGPTN (its number).
pub fn is_master(fd: RawFd) -> bool {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int into a local.
    unsafe { libc::ioctl(fd, libc::TIOCGPTN, &mut n) == 0 }
}

/// Opens a new pseudo-terminal from the multiplexer `ptmx`: the master,
/// checked to be one, and its slave through TIOCGPTPEER (no lookup of the
/// slave by name, which could be raced), unlocked. Both close-on-exec,
/// neither made a controlling terminal.
fn open_at(ptmx: &CStr) -> Result<(RawFd, RawFd), Errno> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: ptmx is a C string.
    let master = unsafe { libc::open(ptmx.as_ptr(), flags) };
    if master < 0 {
        return Err(Errno::last());
    }
    let close = |e: Errno| {
        // SAFETY: closing the descriptor opened above.
        unsafe { libc::close(master) };
        Err(e)
    };
    if !is_master(master) {
        return close(Errno::ENOTTY);
    }
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int; TIOCGPTPEER takes open flags and
    // returns a new descriptor.
    let slave = unsafe {
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) != 0 {
            return close(Errno::last());
        }
        libc::ioctl(master, libc::TIOCGPTPEER, flags)
    };
    if slave < 0 {
        return close(Errno::last());
    }
    Ok((master, slave))
}

/// Opens a new pseudo-terminal on the host (`/dev/ptmx`), owned.
pub fn open_host() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (m, s) = open_at(c"/dev/ptmx")?;
    // SAFETY: open_at just opened both.
    Ok(unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) })
}

/// How much of the caller's terminal goes raw while antimony relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Input and output (cfmakeraw): everything comes through the new
    /// terminal, which processes output itself.
    Raw,
    /// Input only: no echo, no line editing, no signal keys, no flow
    /// control, bytes as typed; output is still processed (newlines become
    /// CR-LF), for what antimony prints beside the relay.
    Input,
}

/// The caller's terminal as it was before the first `RawTerminal`, and how
/// many are alive: several relays (hooks started side by side) share it,
/// and the last one puts it back.
static SAVED: Mutex<(usize, Option<(RawFd, libc::termios)>)> = Mutex::new((0, None));

/// The caller's terminal in raw mode until dropped.
#[derive(Debug)]
pub struct RawTerminal(());

impl RawTerminal {
    /// Puts terminal `fd` in `mode`. Like any change of a terminal's
    /// settings from a background process group, it stops antimony
    /// (SIGTTOU) until it is in the foreground (`fg`).
    pub fn enter(fd: RawFd, mode: Mode) -> Option<RawTerminal> {
        let mut saved = SAVED.lock().unwrap_or_else(|e| e.into_inner());
        if saved.0 == 0 {
            let before = Settings::of(fd)?.termios;
            let mut t = before;
            match mode {
                // SAFETY: cfmakeraw changes a local termios.
                Mode::Raw => unsafe { libc::cfmakeraw(&mut t) },
                Mode::Input => {
                    t.c_iflag &= !(libc::IGNBRK
                        | libc::BRKINT
                        | libc::PARMRK
                        | libc::ISTRIP
                        | libc::INLCR
                        | libc::IGNCR
                        | libc::ICRNL
                        | libc::IXON);
                    t.c_lflag &=
                        !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG | libc::IEXTEN);
                    t.c_cc[libc::VMIN] = 1;
                    t.c_cc[libc::VTIME] = 0;
                }
            }
            // SAFETY: tcsetattr reads a local termios.
            if unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, &t) } != 0 {
                return None;
            }
            saved.1 = Some((fd, before));
        }
        saved.0 += 1;
        Some(RawTerminal(()))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let mut saved = SAVED.lock().unwrap_or_else(|e| e.into_inner());
        saved.0 = saved.0.saturating_sub(1);
        if saved.0 == 0 {
            if let Some((fd, t)) = saved.1.take() {
                // SAFETY: tcsetattr reads the saved termios.
                unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, &t) };
            }
        }
    }
}

/// Copies the window size of terminal `from` to terminal `to` (the
/// kernel then sends SIGWINCH to `to`'s foreground process group).
pub fn copy_size(from: RawFd, to: RawFd) {
    // SAFETY: an all-zero winsize is valid; the ioctls read and write it.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &size);
        }
    }
}

const BUF: usize = 16 * 1024;

/// What a caller's descriptor that polls writable takes without blocking:
/// a terminal says so only while fewer than 256 characters wait in its
/// buffer (the kernel's WAKEUP_CHARS), which holds thousands; a pipe, while
/// PIPE_BUF bytes fit.
fn caller_chunk(to: RawFd) -> usize {
    if is_terminal(to) { 256 } else { libc::PIPE_BUF }
}

/// Bytes from one descriptor to another, a buffer at a time.
#[derive(Debug)]
struct Pump {
    from: RawFd,
    to: RawFd,
    /// Our end that only this pump uses (a pipe's), closed when it ends:
    /// the command then sees the end of its input, or a broken pipe.
    own: Option<OwnedFd>,
    /// From the caller to the command.
    input: bool,
    /// The most one write to the caller's descriptor may be (`step`).
    chunk: usize,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Nothing more will be read.
    eof: bool,
    done: bool,
}

impl Pump {
    fn new(from: RawFd, to: RawFd, own: Option<OwnedFd>, input: bool) -> Pump {
        Pump {
            from,
            to,
            own,
            input,
            chunk: if input { BUF } else { caller_chunk(to) },
            buf: vec![0; BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            eof: false,
            done: false,
        }
    }

    fn interest(&self) -> Option<(RawFd, i16)> {
        if self.done {
            None
        } else if self.start < self.end {
            Some((self.to, libc::POLLOUT))
        } else {
            Some((self.from, libc::POLLIN))
        }
    }

    /// Reads if the buffer is empty, then writes what it holds. The
    /// caller's descriptors are blocking (they are shared with whoever
    /// gave them; their flags are not ours to change), ours are not: to
    /// the caller's, a write is made only once poll said it takes more, and
    /// of at most `chunk` bytes, which a descriptor that says so takes
    /// whole — a paused terminal (^S) then stalls this pump, not the
    /// event loop it runs in.
    fn step(&mut self) {
        let to_caller = !self.input;
        if self.start == self.end && !self.eof {
            // SAFETY: reading into our buffer, within its length.
            let n = unsafe { libc::read(self.from, self.buf.as_mut_ptr().cast(), self.buf.len()) };
            match n {
                n if n > 0 => {
                    self.start = 0;
                    self.end = n as usize;
                    if to_caller {
                        // Written when poll says the caller's takes more.
                        return;
                    }
                }
                0 => self.eof = true,
                _ => match Errno::last() {
                    Errno::EAGAIN | Errno::EINTR => {}
                    // EIO: a master whose slave is closed everywhere, a
                    // terminal hung up; anything else ends the pump too.
                    _ => self.eof = true,
                },
            }
        }
        while let Some(rest) = self
            .buf
            .get(self.start..self.end)
            .filter(|r| !r.is_empty())
        {
            let len = rest.len().min(self.chunk);
            // SAFETY: writing a slice of our buffer.
            let n = unsafe { libc::write(self.to, rest.as_ptr().cast(), len) };
            if n > 0 {
                self.start += n as usize;
                if to_caller {
                    break;
                }
                continue;
            }
            match Errno::last() {
                Errno::EINTR => {}
                Errno::EAGAIN => break,
                // Nobody reads any more: nothing more to pass on.
                _ => {
                    self.start = self.end;
                    self.eof = true;
                }
            }
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.eof {
                self.stop();
            }
        }
    }

    fn stop(&mut self) {
        self.done = true;
        self.own = None;
    }
}

fn nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor of ours.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Everything relayed for one command: its pseudo-terminal's master, its
/// pipes, the caller's terminal in raw mode.
#[derive(Debug, Default)]
pub struct Relay {
    pumps: Vec<Pump>,
    master: Option<OwnedFd>,
    /// The caller's terminal, whose size the new one follows.
    terminal: Option<RawFd>,
    /// Declared after `master`: dropped after it, the terminal is put back
    /// once nothing more comes through.
    raw: Option<RawTerminal>,
}

impl Relay {
    pub fn new() -> Relay {
        Relay::default()
    }

    /// Relays the new terminal's `master`: the caller's terminal input
    /// `input` (if it is one) into it, its output to `output`, the
    /// caller's terminal. `mode`: how the caller's terminal goes raw
    /// while input is relayed.
    pub fn attach(&mut self, master: OwnedFd, input: Option<RawFd>, output: RawFd, mode: Mode) {
        let m = master.as_raw_fd();
        nonblocking(m);
        if let Some(fd) = input {
            self.raw = RawTerminal::enter(fd, mode);
            self.pumps.push(Pump::new(fd, m, None, true));
        }
        self.pumps.push(Pump::new(m, output, None, false));
        self.terminal = Some(input.unwrap_or(output));
        self.master = Some(master);
        self.resize();
    }

    /// Relays the caller's `from` into our pipe end `to` (closed at the
    /// end of `from`).
    pub fn pump_in(&mut self, from: RawFd, to: OwnedFd) {
        nonblocking(to.as_raw_fd());
        let raw = to.as_raw_fd();
        self.pumps.push(Pump::new(from, raw, Some(to), true));
    }

    /// Relays our pipe end `from` to the caller's `to`.
    pub fn pump_out(&mut self, from: OwnedFd, to: RawFd) {
        nonblocking(from.as_raw_fd());
        let raw = from.as_raw_fd();
        self.pumps.push(Pump::new(raw, to, Some(from), false));
    }

    /// The new terminal's master, if there is one.
    pub fn master(&self) -> Option<RawFd> {
        self.master.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// The caller's terminal has a new size: the new terminal takes it.
    pub fn resize(&self) {
        if let (Some(from), Some(to)) = (self.terminal, self.master()) {
            copy_size(from, to);
        }
    }

    /// What to poll: descriptor, events, and the index `ready` takes.
    pub fn interest(&self, out: &mut Vec<(RawFd, i16, usize)>) {
        for (i, p) in self.pumps.iter().enumerate() {
            if let Some((fd, ev)) = p.interest() {
                out.push((fd, ev, i));
            }
        }
    }

    /// Pump `i`'s descriptor is ready (or failed).
    pub fn ready(&mut self, i: usize) {
        if let Some(p) = self.pumps.get_mut(i) {
            p.step();
        }
    }

    /// No more input for the command (it has ended).
    pub fn stop_input(&mut self) {
        for p in self.pumps.iter_mut().filter(|p| p.input) {
            p.stop();
        }
    }

    /// Passes on what the command wrote before it ended: until every
    /// output has ended, or nothing came for `quiet` (something it left
    /// behind still holds its terminal or a pipe), or `limit` has passed
    /// (that something keeps writing).
    pub fn drain(&mut self, quiet: Duration, limit: Duration) {
        self.stop_input();
        let deadline = Instant::now() + limit;
        let mut fds = Vec::new();
        loop {
            fds.clear();
            self.interest(&mut fds);
            if fds.is_empty() {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let mut pfds: Vec<libc::pollfd> = fds
                .iter()
                .map(|&(fd, events, _)| libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                })
                .collect();
            let wait = quiet.min(left).as_millis() as libc::c_int;
            // SAFETY: a valid array of pollfd of the length passed.
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, wait) };
            if n == 0 {
                return;
            }
            for (p, &(_, _, i)) in pfds.iter().zip(&fds) {
                if p.revents != 0 {
                    self.ready(i);
                }
            }
        }
    }

    /// Whether anything is still relayed.
    pub fn active(&self) -> bool {
        self.pumps.iter().any(|p| !p.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
    }

    #[test]
    fn settings_round_trip() {
        let (m, s) = open_host().unwrap();
        let mut set = Settings::of(s.as_raw_fd()).unwrap();
        set.size.ws_row = 33;
        set.size.ws_col = 111;
        set.termios.c_lflag &= !libc::ECHO;
        let back = Settings::decode(&set.encode()).unwrap();
        assert_eq!(back.size.ws_row, 33);
        assert_eq!(back.size.ws_col, 111);
        back.apply(s.as_raw_fd()).unwrap();
        let now = Settings::of(s.as_raw_fd()).unwrap();
        assert_eq!((now.size.ws_row, now.size.ws_col), (33, 111));
        assert_eq!(now.termios.c_lflag & libc::ECHO, 0);
        assert!(is_master(m.as_raw_fd()));
        assert!(!is_master(s.as_raw_fd()));
        assert!(Settings::decode(&[0; 3]).is_none());
    }

    #[test]
    fn pumps_pass_bytes_and_the_end() {
        // caller → (pump in) → command's pipe; command → (pump out) → caller.
        let (caller_r, caller_w) = pipe();
        let (cmd_in_r, cmd_in_w) = pipe();
        let (cmd_out_r, cmd_out_w) = pipe();
        let (back_r, back_w) = pipe();
        let mut relay = Relay::new();
        relay.pump_in(caller_r.as_raw_fd(), cmd_in_w);
        relay.pump_out(cmd_out_r, back_w.as_raw_fd());
        nix::unistd::write(&caller_w, b"typed").unwrap();
        drop(caller_w);
        nix::unistd::write(&cmd_out_w, b"printed").unwrap();
        drop(cmd_out_w);
        for _ in 0..10 {
            let mut fds = Vec::new();
            relay.interest(&mut fds);
            for (_, _, i) in fds {
                relay.ready(i);
            }
        }
        assert!(!relay.active());
        let mut buf = [0u8; 16];
        let n = nix::unistd::read(&cmd_in_r, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"typed");
        // The command's stdin has ended (the pump closed our end).
        assert_eq!(nix::unistd::read(&cmd_in_r, &mut buf).unwrap(), 0);
        let n = nix::unistd::read(&back_r, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"printed");
        drop(caller_r);
    }

    #[test]
    fn a_terminal_is_relayed_and_hung_up() {
        let (master, slave) = open_host().unwrap();
        let (out_r, out_w) = pipe();
        let mut relay = Relay::new();
        // No input: only the terminal's output is relayed.
        relay.attach(master, None, out_w.as_raw_fd(), Mode::Raw);
        nix::unistd::write(&slave, b"hello\n").unwrap();
        drop(slave);
        relay.drain(Duration::from_millis(500), Duration::from_secs(5));
        drop(out_w);
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            let n = nix::unistd::read(&out_r, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        // The terminal's own output processing: a newline is CR-LF.
        assert_eq!(got, b"hello\r\n");
    }
}
