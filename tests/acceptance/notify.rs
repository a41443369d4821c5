//! Messages a menu user sees: when antimony's stderr is not a terminal, a
//! run's warnings and its launch error also reach the desktop's
//! notification service — here a real one, dunst under Xvfb, on a private
//! session bus — with markup escaped and the program's own failures left
//! out; with stderr a terminal nothing is sent; without a bus, a service or
//! with a bus that never answers, the launch works and is delayed at most
//! by the notification's time limit.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both(
        "notify::warnings_and_launch_errors_reach_the_notification_service",
        reach_the_service,
    ));
    t.extend(both(
        "notify::nothing_is_sent_when_stderr_is_a_terminal",
        terminal_sends_nothing,
    ));
    t.extend(both(
        "notify::no_bus_no_service_or_a_hung_bus_cost_the_launch_nothing",
        no_service,
    ));
    t
}

/// A bus of the scratch's user that activates nothing (no service
/// folders: a notification service installed on this machine is not
/// started behind the test's back).
const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=SOCKET</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

/// dunst's configuration: each notification's text in its history says
/// its urgency.
const DUNSTRC: &str = r#"[global]
    markup = full
[critical]
    msg_urgency = critical
    format = "CRITICAL %s\n%b"
[normal]
    msg_urgency = normal
    format = "NORMAL %s\n%b"
"#;

/// A private session bus, and on it (with `server`) dunst on its own
/// Xvfb; ended on drop.
struct Desktop {
    address: String,
    xvfb: Option<Started>,
    had_socket_dir: bool,
    bus: Started,
    dunst: Option<Started>,
}

impl Drop for Desktop {
    fn drop(&mut self) {
        if let Some(d) = &mut self.dunst {
            d.stop();
        }
        self.bus.stop();
        if let Some(x) = &mut self.xvfb {
            x.stop();
            if !self.had_socket_dir {
                let _ = std::fs::remove_dir("/tmp/.X11-unix");
            }
        }
    }
}

/// A private session bus of the scratch's user (socket `bus`, config
/// `bus.conf` in the scratch), listening; its address.
pub(crate) fn start_bus(s: &Scratch) -> Result<(Started, String), String> {
    let sock = s.path("bus");
    let config = s.write(
        "bus.conf",
        &BUS_CONFIG.replace("SOCKET", &sock.display().to_string()),
    );
    let mut daemon = Command::new("dbus-daemon");
    daemon
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--nopidfile"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    as_user(&mut daemon, s);
    let bus = Started {
        child: daemon.spawn().map_err(|e| format!("dbus-daemon: {e}"))?,
        what: "dbus-daemon",
    };
    if !wait_until(Duration::from_secs(10), || listening(&sock)) {
        return Err("the bus did not come up".into());
    }
    Ok((bus, format!("unix:path={}", sock.display())))
}

impl Desktop {
    /// Needs the X server lock held (`apps::X_SERVER`) when `server`.
    fn start(s: &Scratch, server: bool) -> Result<Desktop, String> {
        let (bus, address) = start_bus(s)?;
        let mut d = Desktop {
            address,
            xvfb: None,
            had_socket_dir: Path::new("/tmp/.X11-unix").exists(),
            bus,
            dunst: None,
        };
        if !server {
            return Ok(d);
        }
        let xauthority = s.path("home/.Xauthority");
        let (xvfb, display) = crate::apps::start_xvfb(&xauthority, s.uid, s.gid)?;
        d.xvfb = Some(xvfb);
        let rc = s.write("dunstrc", DUNSTRC);
        let mut dunst = Command::new("dunst");
        dunst
            .arg("-config")
            .arg(&rc)
            .env_clear()
            .env("HOME", s.home())
            .env("DISPLAY", format!(":{display}"))
            .env("XAUTHORITY", &xauthority)
            .env("DBUS_SESSION_BUS_ADDRESS", &d.address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(s.path("dunst.log")).map_err(|e| e.to_string())?);
        as_user(&mut dunst, s);
        d.dunst = Some(Started {
            child: dunst.spawn().map_err(|e| format!("dunst: {e}"))?,
            what: "dunst",
        });
        // Serving once it answers.
        let up = wait_until(Duration::from_secs(20), || {
            d.dunstctl(s, &["count", "history"]).is_some()
        });
        if !up {
            let log = std::fs::read_to_string(s.path("dunst.log")).unwrap_or_default();
            return Err(format!("dunst did not come up on the bus: {log}"));
        }
        Ok(d)
    }

    fn dunstctl(&self, s: &Scratch, args: &[&str]) -> Option<String> {
        let out = s
            .command("dunstctl")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .timeout(Duration::from_secs(10))
            .run();
        (out.code() == Some(0)).then_some(out.stdout)
    }

    /// Every notification dunst got so far, oldest first: (app name,
    /// summary, body as sent, the text with its urgency).
    fn received(&self, s: &Scratch) -> Result<Vec<[String; 4]>, String> {
        self.dunstctl(s, &["close-all"])
            .ok_or("dunstctl close-all failed")?;
        // Closing is asynchronous: the history fills as dunst gets to it.
        let mut last = Vec::new();
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(100));
            let json = self
                .dunstctl(s, &["history"])
                .ok_or("dunstctl history failed")?;
            let v: serde_json::Value =
                serde_json::from_str(&json).map_err(|e| format!("history: {e}: {json}"))?;
            let field = |n: &serde_json::Value, k: &str| {
                n[k]["data"].as_str().unwrap_or_default().to_string()
            };
            let mut all: Vec<(i64, [String; 4])> = v["data"][0]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|n| {
                            (
                                n["id"]["data"].as_i64().unwrap_or_default(),
                                [
                                    field(n, "appname"),
                                    field(n, "summary"),
                                    field(n, "body"),
                                    field(n, "message"),
                                ],
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            // In the order dunst got them (its ids count up).
            all.sort_by_key(|(id, _)| *id);
            let all: Vec<[String; 4]> = all.into_iter().map(|(_, n)| n).collect();
            if all.len() == last.len() {
                return Ok(all);
            }
            last = all;
        }
        Ok(last)
    }
}

fn need() -> Option<String> {
    for p in ["dbus-daemon", "Xvfb", "dunst", "dunstctl"] {
        if !installed(p) {
            return Some(format!("{p} is not installed (scripts/test installs it)"));
        }
    }
    None
}

/// A profile whose run warns three times: before the program starts, a
/// plan warning (the whole runtime folder is bound) and a pre-hook that
/// may fail, failing with a message full of markup and an escape
/// sequence; after its end, a post-hook that may fail, failing.
fn warning_profile() -> Profile {
    Profile::on("sh")
        .ro(&["$XDG_RUNTIME_DIR"])
        .hook(Hook::pre().can_fail().content(
            r#"printf '%s\n' '{"error": {"message": "<b>bold</b> & <a href=\"x\">link</a> \u001b[31mred"}}'; exit 3"#,
        ))
        .hook(Hook::post().can_fail().content("exit 4"))
}

/// A launch error: the program is not there.
fn broken_profile() -> Profile {
    Profile::on("minimal").path("/nonexistent/program")
}

const RUNTIME_WARNING: &str = "a bind gives the sandbox your whole runtime folder";

fn reach_the_service(who: Who) -> TestResult {
    if let Some(r) = need() {
        return skip(r);
    }
    let s = scratch!(who);
    let _one = crate::apps::X_SERVER
        .write()
        .unwrap_or_else(|e| e.into_inner());
    let d = Desktop::start(&s, true)?;
    s.profile("warns", &warning_profile());
    s.profile("broken", &broken_profile());
    s.profile("quiet", &Profile::on("sh"));

    // The warnings arrive while the program still runs (said before it
    // started, not after its end).
    let mut child = Started {
        child: s
            .antimony(["run", "warns", "--", "-c", "sleep 5"])
            .env("DBUS_SESSION_BUS_ADDRESS", &d.address)
            .spawn(),
        what: "antimony run warns",
    };
    let early = wait_until(Duration::from_secs(4), || {
        d.dunstctl(&s, &["count", "displayed"])
            .is_some_and(|c| c.trim().parse::<u32>().unwrap_or(0) >= 2)
    });
    let running = matches!(child.child.try_wait(), Ok(None));
    ensure!(
        early && running,
        "the warnings were not shown while the program ran (shown: {early}, running: {running})"
    );
    let status = child.wait(Duration::from_secs(30));
    ensure!(
        status.is_some_and(|st| st.success()),
        "the run failed: {status:?}"
    );

    // A launch error: critical.
    let out = s
        .antimony(["run", "broken"])
        .env("DBUS_SESSION_BUS_ADDRESS", &d.address)
        .run();
    ensure!(out.code() == Some(125), "{}", out.show());
    // The program's own failure is not antimony's to report.
    let out = s
        .antimony(["run", "quiet", "--", "-c", "echo failing >&2; exit 3"])
        .env("DBUS_SESSION_BUS_ADDRESS", &d.address)
        .run();
    ensure!(out.code() == Some(3), "{}", out.show());

    let got = d.received(&s)?;
    let shown = format!("{got:#?}");
    ensure!(got.len() == 4, "expected 4 notifications: {shown}");
    for n in &got {
        ensure!(n[0] == "antimony", "app name: {shown}");
    }
    let [plan, hook, post, error] = [&got[0], &got[1], &got[2], &got[3]];
    ensure!(
        plan[1] == "antimony: warns"
            && plan[2].starts_with(RUNTIME_WARNING)
            && plan[3].starts_with("NORMAL antimony: warns\n"),
        "the plan's warning: {shown}"
    );
    // The hook's words reach the body escaped: markup as entities (a
    // server shows them as text), the escape sequence written out.
    ensure!(
        hook[1] == "antimony: warns"
            && hook[2].contains("exited with status 3")
            && hook[2].contains(
                "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;a href=\"x\"&gt;link&lt;/a&gt; \\x1b[31mred"
            )
            && !hook[2].contains('<')
            && !hook[2].contains('\u{1b}')
            && hook[3].starts_with("NORMAL "),
        "the pre-hook's warning: {shown}"
    );
    // After the program's end, what happened after it.
    ensure!(
        post[1] == "antimony: warns"
            && post[2].starts_with("post-hook")
            && post[2].contains("exited with status 4")
            && post[3].starts_with("NORMAL "),
        "the post-hook's warning: {shown}"
    );
    ensure!(
        error[1] == "antimony: broken"
            && error[2].contains("/nonexistent/program")
            && error[3].starts_with("CRITICAL antimony: broken\n"),
        "the launch error: {shown}"
    );
    pass()
}

fn terminal_sends_nothing(who: Who) -> TestResult {
    if let Some(r) = need() {
        return skip(r);
    }
    let s = scratch!(who);
    let _one = crate::apps::X_SERVER
        .write()
        .unwrap_or_else(|e| e.into_inner());
    let d = Desktop::start(&s, true)?;
    s.profile("warns", &warning_profile());
    s.profile("broken", &broken_profile());
    let (master, slave) = open_pty()?;
    let terminal = drain_in_thread(master.try_clone().map_err(|e| e.to_string())?);
    for (profile, code) in [("warns", 0), ("broken", 125)] {
        let mut run = s
            .antimony(["run", profile, "--", "-c", "true"])
            .env("DBUS_SESSION_BUS_ADDRESS", &d.address);
        run.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(slave.try_clone().map_err(|e| e.to_string())?);
        let mut child = Started {
            child: run.cmd.spawn().map_err(|e| e.to_string())?,
            what: "antimony run",
        };
        let status = child.wait(Duration::from_secs(30));
        ensure!(
            status.and_then(|st| st.code()) == Some(code),
            "{profile}: {status:?}"
        );
    }
    drop(slave);
    drop(master);
    let printed = terminal
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    let printed = String::from_utf8_lossy(&printed);
    // Said on the terminal, and only there.
    ensure!(
        printed.contains(RUNTIME_WARNING) && printed.contains("antimony: error: "),
        "not printed on the terminal: {printed}"
    );
    let got = d.received(&s)?;
    ensure!(got.is_empty(), "notified with a terminal: {got:#?}");
    pass()
}

/// Reads a pty master until the slave's last holder closes it.
fn drain_in_thread(master: std::os::fd::OwnedFd) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut f = std::fs::File::from(master);
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once no slave is open.
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(all);
    });
    rx
}

/// The warning profile's run (three moments that notify) and the broken
/// one with this bus address: they work; how long each took.
fn timed_runs(s: &Scratch, address: Option<&str>) -> Result<[Duration; 2], Failed> {
    let mut took = [Duration::ZERO; 2];
    for (i, (profile, code)) in [("warns", 0), ("broken", 125)].into_iter().enumerate() {
        let mut run = s.antimony(["run", profile, "--", "-c", "echo hi"]);
        if let Some(a) = address {
            run = run.env("DBUS_SESSION_BUS_ADDRESS", a);
        }
        let t = Instant::now();
        let out = run.run();
        took[i] = t.elapsed();
        ensure!(
            out.code() == Some(code),
            "{profile} with {address:?}: {}",
            out.show()
        );
        ensure!(
            code != 0 || out.stdout == "hi\n",
            "{profile} with {address:?}: {}",
            out.show()
        );
    }
    Ok(took)
}

fn no_service(who: Who) -> TestResult {
    if !installed("dbus-daemon") {
        return skip("dbus-daemon is not installed (scripts/test installs it)");
    }
    let s = scratch!(who);
    s.profile("warns", &warning_profile());
    s.profile("broken", &broken_profile());
    // No bus at all: no address, nothing at $XDG_RUNTIME_DIR/bus.
    let baseline = timed_runs(&s, None)?;
    let missing = timed_runs(&s, Some("unix:path=/nonexistent/bus"))?;
    // A bus without a notification service: it says so at once.
    let (bus, address) = start_bus(&s).map_err(Failed::from)?;
    let no_server = timed_runs(&s, Some(&address))?;
    drop(bus);
    // A bus that accepts the connection and never answers: each run waits
    // once, for the time limit (300 ms), then gives up on notifying.
    let hung: PathBuf = s.path("hung");
    let listener = std::os::unix::net::UnixListener::bind(&hung).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&hung, std::fs::Permissions::from_mode(0o777))
        .map_err(|e| e.to_string())?;
    let hung_time = timed_runs(&s, Some(&format!("unix:path={}", hung.display())))?;
    drop(listener);
    let times = format!(
        "(warns, broken): no bus {baseline:?}, missing socket {missing:?}, no server {no_server:?}, hung bus {hung_time:?}"
    );
    let slack = Duration::from_millis(300);
    for i in 0..2 {
        ensure!(
            missing[i] < baseline[i] + slack && no_server[i] < baseline[i] + slack,
            "a missing bus or service delayed the launch: {times}"
        );
        // It did wait for the hung bus, once per run (not once per
        // message: three for `warns`), for the time limit.
        ensure!(
            hung_time[i] >= Duration::from_millis(300)
                && hung_time[i] < baseline[i] + Duration::from_millis(300) + slack,
            "the hung bus: {times}"
        );
    }
    pass()
}
