//! The session bus through the filtering proxy: with `[dbus]`, an allowed
//! name answers and any other does not; without it there is no bus.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both("dbus::only_allowed_names_answer", only_allowed));
    t
}

fn have(program: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/sbin"]
        .iter()
        .any(|d| Path::new(d).join(program).exists())
}

/// A private session bus and two echo services, run as the scratch's user;
/// killed on drop.
struct Bus {
    children: Vec<Child>,
    address: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn as_user(cmd: &mut Command, s: &Scratch) {
    if world().is_root && s.who == Who::User {
        cmd.uid(s.uid).gid(s.gid);
    }
}

fn start_bus(s: &Scratch) -> Result<Bus, String> {
    let sock = s.path("bus");
    let address = format!("unix:path={}", sock.display());
    let mut daemon = Command::new("dbus-daemon");
    daemon
        .args(["--session", "--nofork", "--nopidfile"])
        .arg(format!("--address={address}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    as_user(&mut daemon, s);
    let mut bus = Bus {
        children: vec![daemon.spawn().map_err(|e| format!("dbus-daemon: {e}"))?],
        address: address.clone(),
    };
    if !wait_until(Duration::from_secs(10), || sock.exists()) {
        return Err("the bus did not come up".into());
    }
    for name in ["org.example.Allowed", "org.example.Denied"] {
        let mut echo = Command::new("dbus-test-tool");
        echo.args(["echo", &format!("--name={name}")])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_user(&mut echo, s);
        bus.children
            .push(echo.spawn().map_err(|e| format!("dbus-test-tool: {e}"))?);
    }
    // Both names are on the bus before the test goes on.
    let listed = wait_until(Duration::from_secs(10), || {
        let out = Command::new("dbus-send")
            .args([
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.ListNames",
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .uid(s.uid)
            .gid(s.gid)
            .output();
        out.map(|o| {
            let t = String::from_utf8_lossy(&o.stdout);
            t.contains("org.example.Allowed") && t.contains("org.example.Denied")
        })
        .unwrap_or(false)
    });
    if !listed {
        return Err("the echo services did not take their names".into());
    }
    Ok(bus)
}

const CALLS: &str = "\
for n in Allowed Denied; do
  if dbus-send --session --print-reply --reply-timeout=5000 --dest=org.example.$n / org.example.Test.Ping >/dev/null 2>&1
  then echo $n=answered; else echo $n=refused; fi
done
echo address=${DBUS_SESSION_BUS_ADDRESS:-none}";

fn only_allowed(who: Who) -> TestResult {
    for p in [
        "dbus-daemon",
        "dbus-test-tool",
        "dbus-send",
        "xdg-dbus-proxy",
    ] {
        if !have(p) {
            return skip(format!("{p} is not installed (scripts/test installs it)"));
        }
    }
    let s = match Scratch::new(who) {
        Ok(s) => s,
        Err(r) => return skip(r),
    };
    let bus = start_bus(&s)?;
    s.profile(
        "bus",
        "inherits = [\"sh\"]\n[dbus]\ntalk = [\"org.example.Allowed\"]\n",
    );
    let out = s
        .antimony(["run", "bus", "--", "-c", CALLS])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        out.stdout.contains("Allowed=answered"),
        "the allowed name did not answer: {}",
        out.show()
    );
    ensure!(
        out.stdout.contains("Denied=refused"),
        "a name the profile does not allow answered: {}",
        out.show()
    );
    ensure!(
        out.stdout
            .contains(&format!("address=unix:path=/run/user/{}/bus", s.uid)),
        "{}",
        out.show()
    );
    // Without [dbus]: no bus at all, though the host has one.
    let out = s
        .antimony(["run", "sh", "--", "-c", CALLS])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        out.stdout.contains("Allowed=refused") && out.stdout.contains("address=none"),
        "a sandbox without [dbus] reached the bus: {}",
        out.show()
    );
    // The proxy is gone, and so is its socket.
    let left = std::fs::read_dir(s.path("runtime/antimony/dbus"))
        .map(|d| d.count())
        .unwrap_or(0);
    ensure!(left == 0, "the proxy's socket was left behind");
    pass()
}
