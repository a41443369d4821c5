//! The world the acceptance tests run in.
//!
//! - Real processes, real namespaces, real files: every test runs the built
//!   `antimony` binary.
//! - As root and as an ordinary user: when the suite runs as root it creates
//!   an unprivileged user (`antimony-test`, removed at the end if the suite
//!   created it) and `Who::User` runs antimony as that user. Binaries are
//!   copied to a world-readable folder so that user can execute them.
//! - Each test works in its own `Scratch` folder (home, XDG folders) that is
//!   removed when the test ends.
//! - A test that cannot run returns `skip(reason)`: the reason is printed,
//!   and with `ANTIMONY_TEST_REQUIRE_ALL=1` (set by CI) it is a failure.
//! - Profiles are built with [`Profile`] and [`Hook`] (at the end of this
//!   file), not written as TOML inside `format!`, unless the literal text is
//!   what a test is about (the parser, error positions, the man page).
//! - The helpers every test file may need live here (processes, signals,
//!   the probe's verdicts); what the hook and instance tests share beyond
//!   that is in `fixture.rs`.

// Not every test uses every helper.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt::{Display, Write as _};
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

pub use libtest_mimic::{Completion, Failed, Trial};

pub type TestResult = Result<Completion, Failed>;

/// The test passed.
pub fn pass() -> TestResult {
    Ok(Completion::Completed)
}

/// The test cannot run here: skipped with the reason, or a failure under
/// `ANTIMONY_TEST_REQUIRE_ALL=1`.
pub fn skip(reason: impl AsRef<str>) -> TestResult {
    let reason = reason.as_ref();
    if std::env::var("ANTIMONY_TEST_REQUIRE_ALL").as_deref() == Ok("1") {
        Err(
            format!("cannot run: {reason} (ANTIMONY_TEST_REQUIRE_ALL=1 turns skips into failures)")
                .into(),
        )
    } else {
        eprintln!("skipped: {reason}");
        Ok(Completion::ignored_with(reason))
    }
}

/// The one skip `ANTIMONY_TEST_REQUIRE_ALL=1` allows: the test of the
/// cgroup limits (exactly that test, named by `test`), on a machine whose
/// memory or cpu controller is on cgroup v1, which no test can change
/// (this VM: see README). It checks the reason itself; in any other case
/// it is an ordinary `skip` (a failure in CI) or a failure.
pub fn skip_controllers_on_cgroup_v1(test: &str) -> TestResult {
    const ALLOWED: &str = "limits::memory_and_cpu_are_bounded_through_cgroup_v2";
    let reason = "the memory and cpu controllers are on cgroup v1 here (/proc/self/cgroup), and antimony bounds memory and CPU through cgroup v2 only";
    if test != ALLOWED {
        return skip(reason);
    }
    if !controllers_on_cgroup_v1() {
        return Err(
            "skip_controllers_on_cgroup_v1: the controllers are not on cgroup v1 here".into(),
        );
    }
    eprintln!("skipped (allowed): {reason}");
    Ok(Completion::ignored_with(reason))
}

/// Whether the memory or cpu controller is on a cgroup v1 hierarchy here
/// (a line `ID:…memory…:PATH` with an ID other than 0 in /proc/self/cgroup).
pub fn controllers_on_cgroup_v1() -> bool {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let mut f = l.splitn(3, ':');
            let (id, list) = (f.next().unwrap_or("0"), f.next().unwrap_or(""));
            id != "0" && list.split(',').any(|c| c == "memory" || c == "cpu")
        })
}

/// `ensure!(cond, "message {}", x)`: fail the test with a message.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+).into());
        }
    };
}

/// `scratch!(who)`: a new [`Scratch`], or return the skip from the test.
#[macro_export]
macro_rules! scratch {
    ($who:expr) => {
        match $crate::support::Scratch::new($who) {
            Ok(s) => s,
            Err(r) => return $crate::support::skip(r),
        }
    };
}

/// A test case: a name and a body.
pub fn case(name: &str, body: fn() -> TestResult) -> Trial {
    Trial::ignorable_test(name, body)
}

/// A test case run once as root and once as the unprivileged test user.
pub fn both(name: &str, body: Body) -> Vec<Trial> {
    vec![
        Trial::ignorable_test(format!("{name}::root"), move || body(Who::Root)),
        Trial::ignorable_test(format!("{name}::user"), move || body(Who::User)),
    ]
}

/// The body of a test that runs as root and as the user.
pub type Body = fn(Who) -> TestResult;

/// [`both`] for each test of a table, named `PREFIX::NAME`.
pub fn both_each(prefix: &str, tests: &[(&str, Body)]) -> Vec<Trial> {
    tests
        .iter()
        .flat_map(|(name, body)| both(&format!("{prefix}::{name}"), *body))
        .collect()
}

/// Who runs antimony.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Root,
    User,
}

#[derive(Debug, Clone)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

pub struct World {
    /// `/tmp/antimony-tests-PID`, mode 0755.
    pub root: PathBuf,
    /// The copied `antimony` binary.
    pub antimony: PathBuf,
    /// The copied escape probe.
    pub probe: PathBuf,
    pub is_root: bool,
    /// The unprivileged user (as root: the one created for the tests).
    pub user: Option<TestUser>,
    created_user: bool,
}

static WORLD: OnceLock<World> = OnceLock::new();
const TEST_USER: &str = "antimony-test";

pub fn world() -> &'static World {
    WORLD.get().expect("support::setup ran")
}

fn lookup_user(name: &str) -> Option<TestUser> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || f[0] != name {
            return None;
        }
        Some(TestUser {
            name: name.to_string(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
        })
    })
}

/// Creates the world: the test user, the folder, the binaries.
pub fn setup() {
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let root = std::env::temp_dir().join(format!("antimony-tests-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("create the test folder");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let copy = |from: &str, name: &str| -> PathBuf {
        let to = bin.join(name);
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {from}: {e}"));
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        to
    };
    let antimony = copy(env!("CARGO_BIN_EXE_antimony"), "antimony");
    let probe = copy(env!("CARGO_BIN_EXE_antimony-probe"), "antimony-probe");
    let (user, created_user) = if is_root {
        match lookup_user(TEST_USER) {
            Some(u) => (Some(u), false),
            None => {
                let ok = Command::new("useradd")
                    .args(["--no-create-home", "--user-group", "--shell", "/bin/sh"])
                    .args(["--comment", "antimony test user", TEST_USER])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                if ok {
                    (lookup_user(TEST_USER), true)
                } else {
                    eprintln!("could not create the test user {TEST_USER} (useradd)");
                    (None, false)
                }
            }
        }
    } else {
        // Not root: the tests' ordinary user is whoever runs them.
        // SAFETY: getuid/getgid have no preconditions.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        (
            Some(TestUser {
                name: std::env::var("USER").unwrap_or_else(|_| uid.to_string()),
                uid,
                gid,
            }),
            false,
        )
    };
    let _ = WORLD.set(World {
        root,
        antimony,
        probe,
        is_root,
        user,
        created_user,
    });
}

/// Removes the world: the folder, and the test user if the suite made it.
pub fn teardown() {
    let w = world();
    let _ = std::fs::remove_dir_all(&w.root);
    if w.created_user {
        delete_test_user(w);
    }
}

/// Deletes the test user. userdel refuses while a process of the user
/// exists, zombies included: an orphan that ended waits for PID 1 to reap
/// it, which takes a minute under some PID 1s. Once only zombies are left
/// (they run nothing), the user goes all the same; a process of the user's
/// still running after 10 s is a leak, and is said.
fn delete_test_user(w: &World) {
    let Some(uid) = w.user.as_ref().map(|u| u.uid) else {
        return;
    };
    let processes = |running_only: bool| -> Vec<u32> {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                let field = |name: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::trim)
                        .unwrap_or("")
                        .to_string()
                };
                field("Uid:").split_whitespace().next() == Some(&uid.to_string())
                    && !(running_only && field("State:").starts_with('Z'))
            })
            .collect()
    };
    let gone = wait_until(Duration::from_secs(10), || processes(true).is_empty());
    if !gone {
        let left = processes(true);
        eprintln!(
            "the test user {TEST_USER} still runs processes (a test left them): {}",
            describe(&left)
        );
        return;
    }
    let force = !processes(false).is_empty();
    let mut cmd = Command::new("userdel");
    if force {
        // Only zombies are left, waiting for PID 1 to reap them.
        cmd.arg("--force");
    }
    let _ = cmd.arg(TEST_USER).status();
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A test's own folder with a home and XDG folders, owned by whoever runs
/// antimony in the test; removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
    pub who: Who,
    pub uid: u32,
    pub gid: u32,
}

impl Scratch {
    /// A scratch for `who`, or a skip reason when that identity is not
    /// available here.
    pub fn new(who: Who) -> Result<Scratch, String> {
        let w = world();
        let (uid, gid) = match who {
            Who::Root if !w.is_root => return Err("needs root".into()),
            Who::Root => (0, 0),
            Who::User => match &w.user {
                Some(u) => (u.uid, u.gid),
                None => return Err("no unprivileged test user (useradd failed)".into()),
            },
        };
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = w.root.join(format!("t{n}"));
        let s = Scratch { dir, who, uid, gid };
        for sub in [
            "home",
            "home/.config/antimony/profiles",
            "home/.local/share",
            "home/.cache",
            "home/.local/state",
            "runtime",
        ] {
            s.mkdir(sub);
        }
        std::fs::set_permissions(s.path("runtime"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        Ok(s)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// Creates a folder (and its parents inside the scratch) owned by the
    /// scratch's user.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let full = self.path(rel);
        std::fs::create_dir_all(&full).unwrap();
        let mut p = full.as_path();
        while p.starts_with(&self.dir) {
            let _ = chown(p, Some(self.uid), Some(self.gid));
            match p.parent() {
                Some(parent) => p = parent,
                None => break,
            }
        }
        full
    }

    /// Writes a file owned by the scratch's user.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let full = self.path(rel);
        if let Some(parent) = full.parent() {
            let rel_parent = parent.strip_prefix(&self.dir).unwrap_or(parent);
            self.mkdir(&rel_parent.to_string_lossy());
        }
        std::fs::write(&full, contents).unwrap();
        let _ = chown(&full, Some(self.uid), Some(self.gid));
        full
    }

    /// Writes an executable script owned by the scratch's user.
    pub fn script(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.write(rel, contents);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Writes a profile (its text, or a [`Profile`]) into the user's
    /// profile folder.
    pub fn profile(&self, name: &str, text: &(impl Display + ?Sized)) -> PathBuf {
        self.write(
            &format!("home/.config/antimony/profiles/{name}.toml"),
            &text.to_string(),
        )
    }

    /// `antimony ARGS…` as the scratch's user, with a clean environment
    /// pointing at the scratch's home and XDG folders.
    pub fn antimony<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&world().antimony);
        cmd.args(args);
        self.environment(&mut cmd);
        Run {
            cmd,
            timeout: Duration::from_secs(60),
            stdin: Input::Null,
        }
    }

    /// Any command, run like `antimony` above.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Run {
        let mut cmd = Command::new(program);
        self.environment(&mut cmd);
        Run {
            cmd,
            timeout: Duration::from_secs(60),
            stdin: Input::Null,
        }
    }

    fn environment(&self, cmd: &mut Command) {
        self.set_environment(cmd);
        if self.who == Who::User && world().is_root {
            cmd.uid(self.uid).gid(self.gid);
        }
    }

    /// Gives a command this scratch's clean environment and its home as
    /// the working folder (not its identity: for a command root starts on
    /// the user's behalf).
    pub fn set_environment(&self, cmd: &mut Command) {
        let home = self.home();
        cmd.env_clear()
            .env("HOME", &home)
            .env("USER", self.user_name())
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("LANG", "C.UTF-8")
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_STATE_HOME", home.join(".local/state"))
            .env("XDG_RUNTIME_DIR", self.path("runtime"))
            .current_dir(&home);
    }

    pub fn user_name(&self) -> String {
        match self.who {
            Who::Root => "root".into(),
            Who::User => world()
                .user
                .as_ref()
                .map(|u| u.name.clone())
                .unwrap_or_default(),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A command about to run, with a time limit.
pub struct Run {
    pub cmd: Command,
    pub timeout: Duration,
    stdin: Input,
}

/// What a command reads: nothing, bytes antimony writes to it, or a
/// descriptor (a terminal, a file) the test hands over.
enum Input {
    Null,
    Data(Vec<u8>),
    From(Stdio),
}

#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn signal(&self) -> Option<i32> {
        self.status.signal()
    }

    /// A description for failure messages.
    pub fn show(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "status {:?} (signal {:?}){}\n--- stdout\n{}--- stderr\n{}",
            self.code(),
            self.signal(),
            if self.timed_out { " TIMED OUT" } else { "" },
            self.stdout,
            self.stderr
        );
        s
    }
}

impl Run {
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Run {
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(mut self, a: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(a);
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Run {
        self.cmd.env(k, v);
        self
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Run {
        self.stdin = Input::Data(data.into());
        self
    }

    /// Stdin from this descriptor (a terminal, a file…).
    pub fn stdin_from(mut self, stdin: Stdio) -> Run {
        self.stdin = Input::From(stdin);
        self
    }

    pub fn timeout(mut self, t: Duration) -> Run {
        self.timeout = t;
        self
    }

    /// Starts the command without waiting (stdout/stderr piped).
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.cmd.spawn().expect("spawn")
    }

    /// Runs to completion (killed with SIGKILL at the time limit); the
    /// output is what arrived by then (a process that keeps the pipes open
    /// after the command's exit does not hang the test).
    pub fn run(mut self) -> Output {
        let (stdin, data) = match std::mem::replace(&mut self.stdin, Input::Null) {
            Input::Null => (Stdio::null(), None),
            Input::Data(d) => (Stdio::piped(), Some(d)),
            Input::From(s) => (s, None),
        };
        self.cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("spawn");
        // The Command's copy of a handed-over stdin closes here.
        self.cmd.stdin(Stdio::null());
        if let Some(data) = data {
            let mut stdin = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(&data);
            });
        }
        let out = reader(child.stdout.take().unwrap());
        let err = reader(child.stderr.take().unwrap());
        let deadline = Instant::now() + self.timeout;
        let mut timed_out = false;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                let _ = child.kill();
                break child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let text = |rx| text_of(&rx, Duration::from_secs(10)).unwrap_or_default();
        Output {
            status,
            stdout: text(out),
            stderr: text(err),
            timed_out,
        }
    }
}

/// Whether a process with this PID exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether a process sleeps (state S: blocked in a wait, not running or
/// runnable).
pub fn asleep(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.trim_start().starts_with('S')))
        .unwrap_or(false)
}

/// Whether a server accepts connections on the Unix socket `path` (its
/// file appears at bind(), before the server listens: a client that
/// connects in between is refused).
pub fn listening(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// Waits until `f` holds or the time is up.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The path of a file relative to the scratch's home as a string.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A pseudo-terminal pair, both ends close-on-exec; the slave in raw mode.
pub fn open_pty() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), Failed> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: posix_openpt/grantpt/unlockpt/ptsname_r/open with a local
    // buffer; each descriptor is owned right after it is created.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if m < 0 {
            return Err(format!("posix_openpt: {}", std::io::Error::last_os_error()).into());
        }
        let master = OwnedFd::from_raw_fd(m);
        let mut name = [0 as libc::c_char; 128];
        if libc::grantpt(m) != 0
            || libc::unlockpt(m) != 0
            || libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0
        {
            return Err(format!("pty: {}", std::io::Error::last_os_error()).into());
        }
        let sl = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if sl < 0 {
            return Err(format!("open the pty: {}", std::io::Error::last_os_error()).into());
        }
        let slave = OwnedFd::from_raw_fd(sl);
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(sl, &mut t) != 0 {
            return Err(format!("tcgetattr: {}", std::io::Error::last_os_error()).into());
        }
        libc::cfmakeraw(&mut t);
        if libc::tcsetattr(sl, libc::TCSANOW, &t) != 0 {
            return Err(format!("tcsetattr: {}", std::io::Error::last_os_error()).into());
        }
        Ok((master, slave))
    }
}

// ---- the escape probe's verdicts (tests/probe)

/// The probe's one line, if it printed exactly one.
pub fn line(out: &Output) -> Result<&str, Failed> {
    let mut lines = out.stdout.lines();
    match (lines.next(), lines.next()) {
        (Some(l), None) => Ok(l),
        _ => Err(format!("the probe did not print exactly one line: {}", out.show()).into()),
    }
}

/// The attempt was refused: exit 0, `BLOCKED …`, nothing on stderr.
pub fn blocked(what: &str, out: &Output) -> Result<String, Failed> {
    let l = line(out)?;
    ensure!(
        out.code() == Some(0) && l.starts_with("BLOCKED ") && out.stderr.is_empty(),
        "{what}: not blocked: {}",
        out.show()
    );
    Ok(l.to_string())
}

/// The attempt succeeded (the controls): exit 1, `ESCAPED …`.
pub fn escaped(what: &str, out: &Output) -> Result<String, Failed> {
    let l = line(out)?;
    ensure!(
        out.code() == Some(1) && l.starts_with("ESCAPED "),
        "{what}: expected to succeed: {}",
        out.show()
    );
    Ok(l.to_string())
}

/// What a [`reader`] read, once the pipe has ended (within `timeout`).
pub fn text_of(rx: &mpsc::Receiver<Vec<u8>>, timeout: Duration) -> Option<String> {
    rx.recv_timeout(timeout)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Reads a pipe to its end in a thread.
pub fn reader(mut r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Copies the probe to `to`, owned by root with `mode`, and waits until it
/// can be executed: while the copy was open for writing, children that
/// other tests forked at that moment held it too, until their exec, and an
/// exec of the copy meanwhile fails with ETXTBSY.
pub fn copy_probe(to: &Path, mode: u32) -> Result<(), Failed> {
    std::fs::copy(&world().probe, to).map_err(|e| format!("copy: {e}"))?;
    chown(to, Some(0), Some(0)).map_err(|e| format!("chown: {e}"))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod: {e}"))?;
    let ready = wait_until(Duration::from_secs(10), || {
        let r = std::process::Command::new(to)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        !matches!(r, Err(e) if e.raw_os_error() == Some(libc::ETXTBSY))
    });
    ensure!(ready, "{} stayed busy", to.display());
    Ok(())
}

/// A root-owned copy of the probe in `dir` (made private to root) with a
/// file capability: CAP_NET_BIND_SERVICE, permitted and effective. `Ok(Err)`
/// says why this machine cannot set one (a skip).
pub fn probe_with_file_capability(dir: &Path) -> Result<Result<PathBuf, String>, Failed> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod: {e}"))?;
    let bin = dir.join("antimony-probe");
    copy_probe(&bin, 0o755)?;
    // struct vfs_cap_data, revision 2, effective: permitted (low 32 bits)
    // CAP_NET_BIND_SERVICE (10), nothing inheritable, no high bits.
    const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
    const VFS_CAP_FLAGS_EFFECTIVE: u32 = 1;
    let mut xattr = Vec::new();
    for word in [
        VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE,
        1 << 10,
        0,
        0,
        0,
    ] {
        xattr.extend_from_slice(&word.to_le_bytes());
    }
    let path =
        std::ffi::CString::new(bin.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: setxattr with valid C strings and a buffer of the length passed.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"security.capability".as_ptr(),
            xattr.as_ptr().cast(),
            xattr.len(),
            0,
        )
    };
    if r != 0 {
        return Ok(Err(format!(
            "cannot set a file capability here: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(Ok(bin))
}

/// A token for the processes one test starts (in their command lines),
/// unique to its scratch: the root and the user variant of a test run at
/// the same time, and must never see (or kill) each other's.
pub fn unique(s: &Scratch, what: &str) -> String {
    let t = s.dir.file_name().unwrap_or_default().to_string_lossy();
    format!("antimony-{what}-{}-{t}", std::process::id())
}

/// Live host processes whose command line holds `token`, or whose name is
/// its last 15 bytes (the probe's `tree`); `except` left out.
pub fn with_token(token: &str, except: u32) -> Vec<u32> {
    let comm = &token[token.len().saturating_sub(15)..];
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != except && alive(pid))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            name.trim_end() == comm || cmdline.windows(token.len()).any(|w| w == token.as_bytes())
        })
        .collect()
}

/// Processes as a failure message shows them: pid, parent, group and
/// command line.
pub fn describe(pids: &[u32]) -> String {
    let mut out = String::new();
    for &pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // pid (comm) state ppid pgrp …
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, r)| r.split_whitespace().collect())
            .unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        out.push_str(&format!(
            "\n  {pid} state {} ppid {} pgrp {}: {}",
            f.first().unwrap_or(&"?"),
            f.get(1).unwrap_or(&"?"),
            f.get(2).unwrap_or(&"?"),
            cmdline.trim_end()
        ));
    }
    out
}

/// A host process that is killed and reaped when dropped.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a program is installed in the system's folders.
pub fn installed(program: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .any(|d| Path::new(d).join(program).exists())
}

/// The host's mount table (this process's view).
pub fn mounts() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}

/// Whether `path` is a mount point on the host (read from the mount table:
/// a dead FUSE mount cannot be stat'ed).
pub fn mounted(path: &Path) -> bool {
    let want = s(path);
    mounts()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Unmounts a FUSE mount left behind by a failed test.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        for _ in 0..3 {
            if !mounted(&self.0) {
                return;
            }
            let _ = Command::new("fusermount3").arg("-u").arg(&self.0).status();
            if mounted(&self.0) {
                let _ = Command::new("umount").arg("-l").arg(&self.0).status();
            }
        }
    }
}

/// Puts `fd` at `at` in the child before it executes (without
/// close-on-exec), the way a caller leaks a descriptor into antimony.
pub fn pass_fd(run: &mut Run, fd: std::os::fd::RawFd, at: std::os::fd::RawFd) {
    // SAFETY: the closure runs in the forked child before exec and calls
    // only dup2 and fcntl, which are async-signal-safe.
    unsafe {
        run.cmd.pre_exec(move || {
            let r = if fd == at {
                libc::fcntl(at, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, at)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Whether `fd` has something to read within `wait`.
pub fn pending(fd: &std::os::fd::OwnedFd, wait: Duration) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) > 0 }
}

/// Reads (and discards) what a terminal has waiting, each read waiting up
/// to `wait` for more.
pub fn drain(fd: &std::os::fd::OwnedFd, wait: Duration) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let mut got = Vec::new();
    while pending(fd, wait) {
        let mut buf = [0u8; 256];
        // SAFETY: reading into a local buffer from a descriptor we own.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        got.extend_from_slice(&buf[..n as usize]);
    }
    got
}

/// `antimony`, started by root (`root`'s scratch) in a mount namespace of
/// its own in which `source` is bound over `target`: as root, or, with
/// `user`, dropped by setpriv to that scratch's user, with its environment
/// and home. unshare, sh and setpriv exec one another: the child is
/// antimony. The caller adds antimony's arguments.
pub fn antimony_with_bind(
    root: &Scratch,
    source: &Path,
    target: &str,
    user: Option<&Scratch>,
) -> Run {
    let then = match user {
        None => "exec \"$@\"".to_string(),
        Some(us) => format!(
            "exec setpriv --reuid={} --regid={} --init-groups -- \"$@\"",
            us.uid, us.gid
        ),
    };
    let mut run = root
        .command("unshare")
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg(format!("mount --bind \"$0\" {target} && {then}"))
        .arg(source)
        .arg(&world().antimony);
    if let Some(us) = user {
        us.set_environment(&mut run.cmd);
    }
    run
}

/// `/etc/antimony` as a mount point for the tests that bind a system
/// folder over it in a mount namespace of their own: made if the host has
/// none, and removed again when the last test holding it is done (tests
/// run at the same time share it).
pub struct EtcAntimony;

static ETC_ANTIMONY: std::sync::Mutex<(usize, bool)> = std::sync::Mutex::new((0, false));

impl EtcAntimony {
    pub fn hold() -> Result<EtcAntimony, String> {
        let mut held = ETC_ANTIMONY.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 == 0 && !Path::new("/etc/antimony").exists() {
            std::fs::create_dir("/etc/antimony")
                .map_err(|e| format!("mkdir /etc/antimony: {e}"))?;
            held.1 = true;
        }
        held.0 += 1;
        Ok(EtcAntimony)
    }
}

impl Drop for EtcAntimony {
    fn drop(&mut self) {
        let mut held = ETC_ANTIMONY.lock().unwrap_or_else(|e| e.into_inner());
        held.0 -= 1;
        if held.0 == 0 && std::mem::take(&mut held.1) {
            let _ = std::fs::remove_dir("/etc/antimony");
        }
    }
}

/// SIGKILLs host processes (what a failed test would leave behind).
pub fn kill_all(pids: &[u32]) {
    for &pid in pids {
        // SAFETY: kill with integer arguments.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
}

/// Sends a signal to a child this test started and has not reaped.
pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill with integer arguments, for a child not yet reaped (its
    // PID cannot have been reused).
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

/// Waits for a child to exit, at most `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A process this test started (a server, a display, a sandbox), ended by
/// its id when dropped: SIGTERM (which antimony turns into stopping its
/// sandbox), then SIGKILL if it lingers 30 seconds; reaped.
pub struct Started {
    pub child: Child,
    pub what: &'static str,
}

impl Started {
    /// Waits for the end (the time limit only bounds a hung process) and
    /// returns its status.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_exit(&mut self.child, limit)
    }

    /// Ends it now (see above).
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        signal(&self.child, libc::SIGTERM);
        if self.wait(Duration::from_secs(30)).is_none() {
            eprintln!("{} did not end on SIGTERM; killing it", self.what);
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why gocryptfs cannot mount a home here, if it cannot.
pub fn no_gocryptfs() -> Option<&'static str> {
    let missing = !installed("gocryptfs") || !installed("fusermount3");
    (missing || !Path::new("/dev/fuse").exists()).then_some(
        "gocryptfs, fusermount3 or /dev/fuse is missing (apt-get install gocryptfs fuse3)",
    )
}

/// A profile on `sh` whose persistent home the shipped `encrypted-home`
/// hook mounts before the sandbox starts (with `config`, an inline table)
/// and unmounts after it.
pub fn encrypted_home_profile(config: &str) -> Profile {
    Profile::on("sh").home("Enabled").hooks([
        Hook::pre().uses("encrypted-home").config(config),
        Hook::post().uses("encrypted-home"),
    ])
}

/// gocryptfs's password file in the scratch (`pass`), readable by its
/// owner only.
pub fn pass_file(s: &Scratch) -> Result<PathBuf, Failed> {
    let pass = s.write("pass", "correct horse battery staple\n");
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    Ok(pass)
}

// ---- profiles

/// A profile's text built from parts, for the tests whose point is what
/// the profile does, not how its TOML is written (tests of the parser, of
/// error positions and of the man page's examples keep their literal TOML):
///
/// ```text
/// Profile::on("sh").grace(1.0).hook(Hook::pre().name("x").content("…"))
/// ```
///
/// Its `Display` is the TOML: the top-level keys, the tables (`[files]`,
/// `[hooks]`…), then the hooks, each in the order given. Values are
/// written as TOML strings, so a script needs no quoting.
#[derive(Clone, Debug, Default)]
pub struct Profile {
    top: Vec<String>,
    tables: Vec<(String, Vec<String>)>,
    hooks: Vec<Hook>,
}

/// A TOML string holding exactly `text`.
pub fn toml_str(text: &str) -> String {
    toml::Value::from(text).to_string()
}

/// A TOML array of strings.
pub fn toml_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<String> = items.iter().map(|i| toml_str(i.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

impl Profile {
    /// `inherits = [PARENT]`.
    pub fn on(parent: &str) -> Profile {
        Profile::inherits(&[parent])
    }

    /// `inherits = [PARENTS…]`.
    pub fn inherits(parents: &[&str]) -> Profile {
        Profile::default().key("inherits", toml_list(parents))
    }

    /// A top-level key; `value` is TOML (see [`toml_str`], [`toml_list`]).
    pub fn key(mut self, key: &str, value: impl Display) -> Profile {
        self.top.push(format!("{key} = {value}"));
        self
    }

    /// `path = "PROGRAM"`.
    pub fn path(self, program: &str) -> Profile {
        self.key("path", toml_str(program))
    }

    /// `KEY = VALUE` in `[TABLE]`; `value` is TOML.
    pub fn set(mut self, table: &str, key: &str, value: impl Display) -> Profile {
        let line = format!("{key} = {value}");
        match self.tables.iter_mut().find(|(t, _)| t == table) {
            Some((_, lines)) => lines.push(line),
            None => self.tables.push((table.to_string(), vec![line])),
        }
        self
    }

    /// `[files] rw = [PATHS…]`.
    pub fn rw<S: AsRef<str>>(self, paths: &[S]) -> Profile {
        self.set("files", "rw", toml_list(paths))
    }

    /// `[files] ro = [PATHS…]`.
    pub fn ro<S: AsRef<str>>(self, paths: &[S]) -> Profile {
        self.set("files", "ro", toml_list(paths))
    }

    /// `[home] policy = "POLICY"`.
    pub fn home(self, policy: &str) -> Profile {
        self.set("home", "policy", toml_str(policy))
    }

    /// `[environment] NAME = "VALUE"`.
    pub fn env(self, name: &str, value: &str) -> Profile {
        self.set("environment", name, toml_str(value))
    }

    /// `[hooks] grace = SECONDS`.
    pub fn grace(self, seconds: f64) -> Profile {
        self.set("hooks", "grace", seconds)
    }

    /// A hook, after those given before.
    pub fn hook(mut self, hook: Hook) -> Profile {
        self.hooks.push(hook);
        self
    }

    /// Hooks, after those given before.
    pub fn hooks(mut self, hooks: impl IntoIterator<Item = Hook>) -> Profile {
        self.hooks.extend(hooks);
        self
    }
}

impl Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.top {
            writeln!(f, "{line}")?;
        }
        for (table, lines) in &self.tables {
            writeln!(f, "\n[{table}]")?;
            for line in lines {
                writeln!(f, "{line}")?;
            }
        }
        for hook in &self.hooks {
            write!(f, "\n{hook}")?;
        }
        Ok(())
    }
}

/// One `[[hooks.EVENT]]` of a [`Profile`].
#[derive(Clone, Debug)]
pub struct Hook {
    event: &'static str,
    keys: Vec<String>,
}

impl Hook {
    pub fn pre() -> Hook {
        Hook::at("pre")
    }

    pub fn started() -> Hook {
        Hook::at("started")
    }

    pub fn stopping() -> Hook {
        Hook::at("stopping")
    }

    pub fn post() -> Hook {
        Hook::at("post")
    }

    fn at(event: &'static str) -> Hook {
        Hook {
            event,
            keys: Vec::new(),
        }
    }

    /// Any key; `value` is TOML (`config`, `on`: inline tables, arrays).
    pub fn key(mut self, key: &str, value: impl Display) -> Hook {
        self.keys.push(format!("{key} = {value}"));
        self
    }

    pub fn name(self, name: &str) -> Hook {
        self.key("name", toml_str(name))
    }

    /// The script bash runs (`content`).
    pub fn content(self, script: &str) -> Hook {
        self.key("content", toml_str(script))
    }

    pub fn path(self, program: &str) -> Hook {
        self.key("path", toml_str(program))
    }

    pub fn arguments<S: AsRef<str>>(self, args: &[S]) -> Hook {
        self.key("arguments", toml_list(args))
    }

    /// `attach = true`.
    pub fn attach(self) -> Hook {
        self.key("attach", true)
    }

    /// `can_fail = true`.
    pub fn can_fail(self) -> Hook {
        self.key("can_fail", true)
    }

    /// `stdin = true`.
    pub fn stdin(self) -> Hook {
        self.key("stdin", true)
    }

    /// `inside = true`.
    pub fn inside(self) -> Hook {
        self.key("inside", true)
    }

    /// `system = "System"` or `"User"`: the identity a host hook runs as.
    pub fn system(self, identity: &str) -> Hook {
        self.key("system", toml_str(identity))
    }

    /// `timeout = SECONDS`.
    pub fn timeout(self, seconds: f64) -> Hook {
        self.key("timeout", seconds)
    }

    /// `use = "NAME"`: a reusable hook.
    pub fn uses(self, name: &str) -> Hook {
        self.key("use", toml_str(name))
    }

    /// `config = { … }` (an inline table, as TOML).
    pub fn config(self, table: &str) -> Hook {
        self.key("config", table)
    }

    /// `profile = "NAME"`: a companion sandbox.
    pub fn profile(self, name: &str) -> Hook {
        self.key("profile", toml_str(name))
    }
}

impl Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "[[hooks.{}]]", self.event)?;
        for key in &self.keys {
            writeln!(f, "{key}")?;
        }
        Ok(())
    }
}

/// Runs `cmd` as the scratch's user (when the suite runs as root and the
/// test is the ordinary user's half).
pub fn as_user(cmd: &mut Command, s: &Scratch) {
    use std::os::unix::process::CommandExt;
    if world().is_root && s.who == Who::User {
        cmd.uid(s.uid).gid(s.gid);
    }
}
