//! The caller's terminal never reaches a sandbox, nor a hook that runs as
//! another user (issue 14, items 2 and 3).
//!
//! - `antimony enter` from a terminal: the command gets a new terminal of
//!   the sandbox's, which antimony relays; a sandboxed program that takes
//!   the entered command's descriptors (pidfd_getfd, /proc/PID/fd/0) gets
//!   nothing of the caller's terminal, during the command or after.
//! - A hook antimony, as root, runs as the user it acts for (SUDO_UID) is
//!   in a session of its own with a terminal of its own: it cannot push
//!   input into root's terminal (TIOCSTI), now or after antimony exits,
//!   yet it reads what the user types.
//!
//! The tests play the terminal emulator: they open a pseudo-terminal, give
//! its slave to antimony (as the controlling terminal of antimony's
//! session where it matters), read what appears on its master (the
//! screen) and write to the master what the user types.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both(
        "hostside::terminal::enter_keeps_the_callers_terminal_out_of_the_sandbox",
        enter_keeps_the_terminal_out,
    ));
    t.extend(both(
        "hostside::terminal::enter_relays_a_terminal",
        enter_relays_a_terminal,
    ));
    t.push(case(
        "hostside::terminal::a_hook_run_as_the_user_cannot_type_into_roots_terminal",
        hook_cannot_type_into_roots_terminal,
    ));
    t.push(case(
        "hostside::terminal::a_hook_run_as_the_user_reads_what_the_user_types",
        hook_reads_what_the_user_types,
    ));
    t
}

// ---------------------------------------------------------------- helpers

/// The terminal emulator's side of a pseudo-terminal: what appears on its
/// master, read by a thread; what the user types, written to it.
struct Screen {
    master: Arc<OwnedFd>,
    seen: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Screen {
    fn new(master: OwnedFd) -> Screen {
        let master = Arc::new(master);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, v, st) = (Arc::clone(&master), Arc::clone(&seen), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let mut p = libc::pollfd {
                    fd: m.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, a short timeout.
                if unsafe { libc::poll(&mut p, 1, 20) } <= 0 {
                    continue;
                }
                let mut buf = [0u8; 4096];
                // SAFETY: reading into a local buffer from the master.
                let n = unsafe { libc::read(m.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n > 0 {
                    v.lock().unwrap().extend_from_slice(&buf[..n as usize]);
                } else {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Screen {
            master,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// What appeared from byte `from` on.
    fn since(&self, from: usize) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()[from..]).into_owned()
    }

    fn wait_for(&self, what: &str) -> Result<(), Failed> {
        ensure!(
            wait_until(HANG, || self.text().contains(what)),
            "{what:?} never appeared on the terminal: {:?}",
            self.text()
        );
        Ok(())
    }

    /// The user types.
    fn type_in(&self, bytes: &[u8]) {
        // SAFETY: writing a slice to the master we hold.
        unsafe { libc::write(self.master.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    }

    /// The terminal's window gets a new size (the kernel tells the
    /// foreground process group of the terminal's session: SIGWINCH).
    fn resize(&self, rows: u16, cols: u16) {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a local winsize.
        unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A terminal as a shell leaves it (canonical input, echo, signal keys,
/// CR to NL on input, NL to CR-NL on output): the screen and the slave.
fn terminal() -> Result<(Screen, OwnedFd), Failed> {
    let (master, slave) = open_pty()?;
    // SAFETY: tcgetattr/tcsetattr on the slave we hold, with a local.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(slave.as_raw_fd(), &mut t);
        t.c_iflag |= libc::ICRNL | libc::IXON;
        t.c_oflag |= libc::OPOST | libc::ONLCR;
        t.c_lflag |= libc::ICANON | libc::ECHO | libc::ECHOE | libc::ISIG | libc::IEXTEN;
        libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t);
    }
    let screen = Screen::new(master);
    screen.resize(33, 111);
    Ok((screen, slave))
}

/// A terminal's settings, to compare before and after.
fn settings(fd: &OwnedFd) -> (u32, u32, u32, u32) {
    // SAFETY: tcgetattr into a local.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        libc::tcgetattr(fd.as_raw_fd(), &mut t);
        (t.c_iflag, t.c_oflag, t.c_cflag, t.c_lflag)
    }
}

/// What the terminal has waiting for its reader, taken.
fn pending_input(slave: &OwnedFd) -> Vec<u8> {
    let mut got = Vec::new();
    loop {
        let mut p = libc::pollfd {
            fd: slave.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a short timeout.
        if unsafe { libc::poll(&mut p, 1, 100) } <= 0 {
            return got;
        }
        let mut buf = [0u8; 256];
        // SAFETY: reading into a local buffer from a descriptor we own.
        let n = unsafe { libc::read(slave.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return got;
        }
        got.extend_from_slice(&buf[..n as usize]);
    }
}

/// Runs `cmd` on the terminal: its stdin, stdout and stderr, and, when
/// `session`, the controlling terminal of a session it leads (as a login
/// shell's terminal is), in whose foreground it runs.
fn on_terminal(mut cmd: Command, slave: &OwnedFd, session: bool) -> Result<Child, Failed> {
    let fd = |_| -> Result<Stdio, Failed> {
        Ok(Stdio::from(
            slave.try_clone().map_err(|e| format!("dup: {e}"))?,
        ))
    };
    cmd.stdin(fd(0)?).stdout(fd(1)?).stderr(fd(2)?);
    if session {
        // SAFETY: the closure runs in the child before exec and makes two
        // async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.spawn().map_err(|e| format!("spawn: {e}").into())
}

/// Kills and reaps a child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `antimony run minimal … --program PROGRAM -- ARGS…` in the background,
/// once `ps` lists it.
fn instance(f: &Fixture, program: &str, args: &[&str]) -> Result<Background, Failed> {
    let mut run = vec![
        "run".to_string(),
        "minimal".into(),
        "--ro".into(),
        format!("{}=/probe", world().probe.display()),
        "--rw".into(),
        s(&f.out),
        "--program".into(),
        program.into(),
        "--".into(),
    ];
    run.extend(args.iter().map(|a| a.to_string()));
    let mut bg = Background::start(f.s.antimony(run));
    let listed = wait_until(HANG, || {
        f.s.antimony(["ps", "--json"])
            .run()
            .stdout
            .contains("\"minimal\"")
    });
    if !listed {
        let out = match bg.wait_exit(Duration::ZERO) {
            Some(_) => bg.finish().map(|o| o.show()).unwrap_or_default(),
            None => String::new(),
        };
        return Err(format!("the instance was never listed: {out}").into());
    }
    Ok(bg)
}

// ------------------------------------------------------------------ enter

/// The attack: the instance's program looks for any process whose stdin
/// is a terminal and takes a copy of that descriptor (pidfd_getfd, or
/// reopening /proc/PID/fd/0), reads from it and writes to it, forever. The
/// user enters a command from their terminal; after `enter` has returned,
/// they type at their shell. Nothing of theirs was taken: what they type
/// stays for their shell to read, nothing is written to their terminal
/// after `enter` returned, and the program reports no terminal taken.
fn enter_keeps_the_terminal_out(who: Who) -> TestResult {
    let f = fixture!(who);
    let report = f.out("report");
    let _inst = instance(&f, "/probe", &["steal-terminal", &s(&report)])?;
    let (screen, slave) = terminal()?;
    let cmd =
        f.s.antimony([
            "enter",
            "minimal",
            "--",
            "/bin/sh",
            "-c",
            "echo entered; sleep 1; exit 3",
        ])
        .cmd;
    let mut client = Reaped(on_terminal(cmd, &slave, false)?);
    let status = wait_exit(&mut client.0, HANG);
    ensure!(
        status.and_then(|s| s.code()) == Some(3),
        "enter: {status:?}; the terminal showed {:?}",
        screen.text()
    );
    screen.wait_for("entered")?;
    // enter has returned: the user types at their shell.
    std::thread::sleep(Duration::from_millis(300));
    let after = screen.len();
    screen.type_in(b"sudo -v\n");
    std::thread::sleep(Duration::from_millis(700));
    let pending = pending_input(&slave);
    let report = f.read("report");
    ensure!(
        pending == b"sudo -v\n",
        "what the user typed after enter returned was taken ({:?} left): the program reports {report:?}",
        String::from_utf8_lossy(&pending)
    );
    ensure!(
        !screen.since(after).contains("STOLEN"),
        "the sandbox wrote to the terminal after enter returned: {:?}",
        screen.since(after)
    );
    ensure!(
        !report.contains("took"),
        "the sandbox took a terminal: {report}"
    );
    pass()
}

/// `enter` from a terminal works as `ssh -t` does: the command has a
/// terminal of its own (made on the host for it, its controlling terminal:
/// /dev/tty works; the sandbox's devpts has no name for it, so that no
/// other process there can open it), with the caller's window size; what the
/// user types reaches it, its output comes back, a new window size follows,
/// ^C interrupts it, its exit status is enter's, and the caller's terminal
/// is left as it was.
fn enter_relays_a_terminal(who: Who) -> TestResult {
    let f = fixture!(who);
    let _inst = instance(&f, "/bin/sleep", &["120"])?;
    let (screen, slave) = terminal()?;
    let before = settings(&slave);
    let script = "stty size; [ -t 0 ] && echo via-dev-tty > /dev/tty; read -r line; echo \"got:$line\"; \
                  read -r line; stty size; echo \"got2:$line\"; exec sleep 100";
    let cmd =
        f.s.antimony(["enter", "minimal", "--", "/bin/sh", "-c", script])
            .cmd;
    let mut client = Reaped(on_terminal(cmd, &slave, true)?);
    screen.wait_for("33 111")?;
    screen.wait_for("via-dev-tty")?;
    screen.type_in(b"hello\r");
    screen.wait_for("got:hello")?;
    // The user resizes the window: the kernel tells enter (SIGWINCH),
    // which gives the command's terminal the new size.
    screen.resize(44, 122);
    std::thread::sleep(Duration::from_millis(300));
    screen.type_in(b"again\r");
    screen.wait_for("got2:again")?;
    ensure!(
        screen.text().contains("44 122"),
        "the new size did not reach the command: {:?}",
        screen.text()
    );
    // ^C, through the command's terminal, interrupts its `sleep`.
    std::thread::sleep(Duration::from_millis(200));
    screen.type_in(b"\x03");
    let status = wait_exit(&mut client.0, HANG);
    ensure!(
        status.and_then(|s| s.code()) == Some(130),
        "^C: {status:?}; the terminal showed {:?}",
        screen.text()
    );
    ensure!(
        settings(&slave) == before,
        "the terminal's settings were not put back"
    );
    pass()
}

// ------------------------------------------------------------------ hooks

/// antimony as root on behalf of the test user (SUDO_UID, SUDO_GID), run
/// from root's shell on a terminal: the shell leads the session, whose
/// controlling terminal it is, and stays after antimony has exited (it
/// says so on the terminal, then waits).
fn on_behalf(f: &Fixture, profile: &str, slave: &OwnedFd) -> Result<Option<Child>, Failed> {
    let Some(user) = world().user.clone() else {
        return Ok(None);
    };
    let antimony = s(&world().antimony);
    let out = s(&f.out);
    let cmd =
        f.s.command("/bin/sh")
            .args([
                "-c",
                "\"$0\" \"$@\"; echo \"antimony exited $?\"; exec sleep 60",
                &antimony,
                "run",
                profile,
                "--rw",
                &out,
                "--",
                "-c",
                "true",
            ])
            .env("SUDO_UID", user.uid.to_string())
            .env("SUDO_GID", user.gid.to_string())
            .cmd;
    Ok(Some(on_terminal(cmd, slave, true)?))
}

/// A folder the test user may write, for the hooks' records.
fn hook_folder(f: &Fixture) -> Result<String, Failed> {
    let user = world().user.clone().ok_or("no unprivileged test user")?;
    let dir = f.out("hook");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    chown(&dir, Some(user.uid), Some(user.gid)).map_err(|e| e.to_string())?;
    Ok(s(&dir))
}

/// The attack: a default-identity pre-hook, run as the user antimony (as
/// root) acts for, pushes `id` into its terminal (TIOCSTI) at once, and
/// leaves a child (deaf to the SIGHUP its terminal sends when the hook
/// ends) that does it again a second later, after antimony has exited,
/// when root's shell would read it. Neither reaches root's terminal:
/// nothing waits in its input.
fn hook_cannot_type_into_roots_terminal() -> TestResult {
    if !world().is_root || world().user.is_none() {
        return skip("needs root and the unprivileged test user");
    }
    let f = fixture!(Who::Root);
    let dir = hook_folder(&f)?;
    let probe = s(&world().probe);
    f.profile(
        "inject",
        &format!(
            r#"
inherits = ["sh"]

[[hooks.pre]]
content = '''
id -u > {dir}/uid
{probe} tiocsti > {dir}/now 2>&1
exec 3<&0
trap '' HUP
( sleep 1; {probe} tiocsti <&3 > {dir}/late 2>&1 ) > /dev/null 2>&1 &
'''
"#
        ),
    );
    let (screen, slave) = terminal()?;
    let Some(child) = on_behalf(&f, "inject", &slave)? else {
        return skip("no unprivileged test user");
    };
    let _shell = Reaped(child);
    screen.wait_for("antimony exited 0")?;
    let uid = world().user.as_ref().map(|u| u.uid).unwrap_or_default();
    ensure!(
        f.read("hook/uid").trim() == uid.to_string(),
        "the hook did not run as the user: {:?}",
        f.read("hook/uid")
    );
    // The late child has had its go.
    ensure!(
        wait_until(HANG, || !f.read("hook/late").is_empty()),
        "the hook's child never tried"
    );
    let injected = pending_input(&slave);
    ensure!(
        injected.is_empty(),
        "the hook typed {:?} into root's terminal (now: {:?}; later: {:?})",
        String::from_utf8_lossy(&injected),
        f.read("hook/now"),
        f.read("hook/late")
    );
    pass()
}

/// The same hook identity, asking for a password as `encrypted-home`'s
/// gocryptfs does: it turns its terminal's echo off, prompts, and reads a
/// line. What the user types reaches it, is not echoed, and root's
/// terminal is left as it was.
fn hook_reads_what_the_user_types() -> TestResult {
    if !world().is_root || world().user.is_none() {
        return skip("needs root and the unprivileged test user");
    }
    let f = fixture!(Who::Root);
    let dir = hook_folder(&f)?;
    f.profile(
        "asks",
        &format!(
            r#"
inherits = ["sh"]

[[hooks.pre]]
content = '''
[ -t 0 ] && echo "stdin is a terminal" >> {dir}/log
stty -echo
printf 'password: ' >&2
IFS= read -r pw
stty echo
echo "$(id -u) read:$pw" >> {dir}/log
'''
"#
        ),
    );
    let (screen, slave) = terminal()?;
    let before = settings(&slave);
    let Some(child) = on_behalf(&f, "asks", &slave)? else {
        return skip("no unprivileged test user");
    };
    let _shell = Reaped(child);
    screen.wait_for("password: ")?;
    screen.type_in(b"s3cret\r");
    screen.wait_for("antimony exited 0")?;
    let uid = world().user.as_ref().map(|u| u.uid).unwrap_or_default();
    let log = f.read("hook/log");
    ensure!(
        log == format!("stdin is a terminal\n{uid} read:s3cret\n"),
        "the hook's record: {log:?}; the terminal showed {:?}",
        screen.text()
    );
    ensure!(
        !screen.text().contains("s3cret"),
        "the password was echoed: {:?}",
        screen.text()
    );
    ensure!(
        settings(&slave) == before,
        "root's terminal was not put back as it was"
    );
    pass()
}
