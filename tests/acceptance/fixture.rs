//! What the hook and instance tests share: a scratch with an `out` folder
//! where hooks and programs record what they see, the hooks that record
//! there, checks on that record and on antimony's error line, and antimony
//! run in the background.

use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::*;

/// Time limit for anything that should take well under a second.
pub const HANG: Duration = Duration::from_secs(30);

/// A scratch with an `out` folder (owned by the test's user) where hooks and
/// programs record what they see. In profiles and scripts `@OUT@` is that
/// folder, `@S@` the scratch and `@BIN@` its `bin` folder.
pub struct Fixture {
    pub s: Scratch,
    pub out: PathBuf,
}

impl Fixture {
    /// `Err` holds the skip to return when no scratch can be made.
    pub fn new(who: Who) -> Result<Fixture, TestResult> {
        let s = Scratch::new(who).map_err(skip)?;
        let out = s.mkdir("out");
        Ok(Fixture { s, out })
    }

    /// The text with `@OUT@`, `@S@` and `@BIN@` replaced.
    pub fn subst(&self, text: &str) -> String {
        text.replace("@OUT@", &s(&self.out))
            .replace("@S@", &s(&self.s.dir))
            .replace("@BIN@", &s(&self.s.path("bin")))
    }

    /// Writes the profile (its text or a [`Profile`]), substituted.
    pub fn profile(&self, name: &str, toml: &(impl std::fmt::Display + ?Sized)) {
        self.s.profile(name, &self.subst(&toml.to_string()));
    }

    /// A path in the `out` folder.
    pub fn out(&self, rel: &str) -> PathBuf {
        self.out.join(rel)
    }

    /// `antimony run NAME --rw OUT -- -c SCRIPT` (for profiles on `sh`).
    pub fn run(&self, name: &str, script: &str) -> Run {
        let out = s(&self.out);
        self.s
            .antimony(["run", name, "--rw", &out, "--", "-c", &self.subst(script)])
    }

    /// The log's lines (none when there is no log yet).
    pub fn log(&self) -> Vec<String> {
        self.lines("log")
    }

    /// A FIFO in the `out` folder, the test's user's, for waiting until a
    /// hook has ended: the hook opens it for writing first thing
    /// (`exec 3>@OUT@/NAME`), the program reads it to its end
    /// (`cat @OUT@/NAME`), which comes when the hook's process has closed
    /// it by exiting — not merely written its last line.
    pub fn fifo(&self, rel: &str) -> Result<(), String> {
        let path = self.out(rel);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|e| e.to_string())?;
        // SAFETY: mkfifo with a NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(format!(
                "mkfifo {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        std::os::unix::fs::chown(&path, Some(self.s.uid), Some(self.s.gid))
            .map_err(|e| format!("chown {}: {e}", path.display()))
    }

    /// A file's lines in the `out` folder (none when it does not exist).
    pub fn lines(&self, rel: &str) -> Vec<String> {
        self.read(rel).lines().map(str::to_string).collect()
    }

    /// A file in the `out` folder ("" when it does not exist).
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.out(rel)).unwrap_or_default()
    }

    /// A JSON file in the `out` folder.
    pub fn json(&self, rel: &str) -> Result<serde_json::Value, String> {
        let text = self.read(rel);
        serde_json::from_str(&text).map_err(|e| format!("{rel} is not JSON ({e}): {text:?}"))
    }

    /// Removes the log.
    pub fn clear(&self) {
        let _ = std::fs::remove_file(self.out("log"));
    }

    /// `$XDG_STATE_HOME/antimony/…`
    pub fn state_home(&self, rel: &str) -> PathBuf {
        self.s.path("home/.local/state/antimony").join(rel)
    }
}

/// The hooks that record in the `out` folder.
impl Hook {
    /// Appends LINE to the log: `echo LINE >> @OUT@/log`.
    pub fn logs(self, line: &str) -> Hook {
        self.content(&format!("echo {line} >> @OUT@/log"))
    }

    /// An attached pre-hook NAME that logs `NAME-start` (its PID in
    /// `NAME.pid`), runs until SIGTERM and logs `NAME-term` then.
    pub fn watcher(name: &str) -> Hook {
        Hook::pre().name(name).attach().content(&format!(
            "exec 2>/dev/null
trap 'echo {name}-term >> @OUT@/log; exit 0' TERM
echo $$ > @OUT@/{name}.pid
echo {name}-start >> @OUT@/log
while :; do sleep 0.05; done
"
        ))
    }
}

/// A shell loop that waits (at most 30 s) until CONDITION holds.
pub fn await_until(condition: &str) -> String {
    format!("n=0; until {condition}; do n=$((n+1)); [ $n -gt 600 ] && break; sleep 0.05; done")
}

/// A shell loop that waits (at most 30 s) until the log has LINE.
pub fn await_line(line: &str) -> String {
    await_until(&format!("grep -qsx '{line}' @OUT@/log"))
}

/// `fixture!(who)`: a new [`Fixture`], or return the skip from the test.
/// `fixture!(Type, who)` does the same with `Type::new`.
macro_rules! fixture {
    ($ty:path, $who:expr) => {
        match <$ty>::new($who) {
            Ok(f) => f,
            Err(r) => return r,
        }
    };
    ($who:expr) => {
        fixture!($crate::fixture::Fixture, $who)
    };
}

/// Checks that every entry is in the log, in this order.
pub fn in_order(log: &[String], expected: &[&str]) -> Result<(), String> {
    let mut last: Option<(usize, &str)> = None;
    for want in expected {
        let Some(i) = log.iter().position(|l| l == want) else {
            return Err(format!("`{want}` is not in the log: {log:?}"));
        };
        if let Some((j, prev)) = last {
            if i <= j {
                return Err(format!("`{want}` is not after `{prev}`: {log:?}"));
            }
        }
        last = Some((i, want));
    }
    Ok(())
}

/// The one line antimony prints for a launcher failure, which must name
/// all of `naming`.
pub fn one_error_line(out: &Output, naming: &[&str]) -> Result<(), String> {
    if out.stderr.lines().count() != 1 {
        return Err(format!("not one `antimony: error:` line: {}", out.show()));
    }
    error_line(out, naming)
}

/// Waits until the log has this line.
pub fn wait_for_line(f: &Fixture, line: &str) -> Result<(), String> {
    if wait_until(HANG, || f.log().iter().any(|l| l == line)) {
        Ok(())
    } else {
        Err(format!("`{line}` never appeared in the log: {:?}", f.log()))
    }
}

/// The PID written in a file of the `out` folder.
pub fn pid_in(f: &Fixture, rel: &str) -> Option<u32> {
    f.read(rel).trim().parse().ok()
}

/// Fails on a panic message in antimony's stderr.
pub fn no_panic(out: &Output) -> Result<(), String> {
    if out.stderr.contains("panicked") {
        Err(format!("a panic: {}", out.show()))
    } else {
        Ok(())
    }
}

/// The `antimony: error:` line, which must name all of `naming`.
pub fn error_line(out: &Output, naming: &[&str]) -> Result<(), String> {
    no_panic(out)?;
    let Some(line) = out
        .stderr
        .lines()
        .find(|l| l.starts_with("antimony: error: "))
    else {
        return Err(format!("no `antimony: error:` line: {}", out.show()));
    };
    for n in naming {
        if !line.contains(n) {
            return Err(format!("the error does not say `{n}`: {}", out.show()));
        }
    }
    Ok(())
}

/// antimony started in the background. Dropping it SIGKILLs it if it still
/// runs and creates its release file, if it has one, which ends whatever the
/// test's hooks left waiting for it.
pub struct Background {
    child: Child,
    stdout: mpsc::Receiver<Vec<u8>>,
    stderr: mpsc::Receiver<Vec<u8>>,
    release: Option<PathBuf>,
}

impl Background {
    /// Starts antimony.
    pub fn start(run: Run) -> Background {
        let mut child = run.spawn();
        let stdout = reader(child.stdout.take().expect("piped"));
        let stderr = reader(child.stderr.take().expect("piped"));
        Background {
            child,
            stdout,
            stderr,
            release: None,
        }
    }

    /// Starts antimony; `release` is created once it has exited.
    pub fn releasing(run: Run, release: PathBuf) -> Background {
        let mut bg = Background::start(run);
        bg.release = Some(release);
        bg
    }

    /// Sends antimony a signal.
    pub fn signal(&self, sig: libc::c_int) {
        signal(&self.child, sig);
    }

    /// Waits for antimony to exit (not for its output to end).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_exit(&mut self.child, timeout)
    }

    fn release(&mut self) {
        if let Some(r) = self.release.take() {
            let _ = std::fs::write(r, "");
        }
    }

    /// Waits for the exit, releases the hooks' children, collects the output.
    pub fn finish(&mut self) -> Result<Output, String> {
        let status = self.wait_exit(HANG);
        self.release();
        let Some(status) = status else {
            return Err("antimony did not exit".into());
        };
        let text = |rx| text_of(rx, HANG).ok_or("antimony's output did not end".to_string());
        Ok(Output {
            status,
            stdout: text(&self.stdout)?,
            stderr: text(&self.stderr)?,
            timed_out: false,
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.release();
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
