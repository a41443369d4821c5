//! The session bus through the filtering proxy: with `[dbus]`, a name
//! under `talk` answers and any other does not; a name under `own` can be
//! taken (and answers the host), no other can; a name under `see` is
//! listed but never answers, a name under no rule does not even exist;
//! the shipped `with-dbus` fragment talks to the portals and notifications
//! only; without `[dbus]` there is no bus. A real xdg-desktop-portal
//! sees a sandbox as the application `antimony.PROFILE`, whose grants in
//! the permission store are its own, shared with no host application and
//! no other profile.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both("dbus::only_allowed_names_answer", only_allowed));
    t.extend(both("dbus::own_takes_only_the_owned_names", own_names));
    t.extend(both(
        "dbus::see_lists_a_name_without_letting_it_answer",
        see_names,
    ));
    t.extend(both(
        "dbus::with_dbus_talks_to_portals_and_notifications_only",
        with_dbus_fragment,
    ));
    t.extend(both(
        "dbus::portal_sees_the_profiles_own_app_id",
        portal_app_id,
    ));
    t
}

/// A private session bus and echo services, run as the scratch's user;
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

/// Starts the bus and an echo service (`dbus-test-tool echo`, which
/// answers every call) for each name, and waits until they own them.
fn start_bus(s: &Scratch, names: &[&str]) -> Result<Bus, String> {
    start_bus_with(s, names, None)
}

/// `start_bus` with a configuration file of the daemon's instead of the
/// standard session one.
fn start_bus_with(s: &Scratch, names: &[&str], config: Option<&Path>) -> Result<Bus, String> {
    let sock = s.path("bus");
    let address = format!("unix:path={}", sock.display());
    let mut daemon = Command::new("dbus-daemon");
    match config {
        Some(c) => daemon.arg(format!("--config-file={}", c.display())),
        None => daemon.arg("--session"),
    };
    daemon
        .args(["--nofork", "--nopidfile"])
        .arg(format!("--address={address}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    as_user(&mut daemon, s);
    let mut bus = Bus {
        children: vec![daemon.spawn().map_err(|e| format!("dbus-daemon: {e}"))?],
        address: address.clone(),
    };
    // Listening, not only bound: an echo service refused would give up.
    if !wait_until(Duration::from_secs(10), || listening(&sock)) {
        return Err("the bus did not come up".into());
    }
    for name in names {
        let mut echo = Command::new("dbus-test-tool");
        echo.args(["echo", &format!("--name={name}")])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_user(&mut echo, s);
        bus.children
            .push(echo.spawn().map_err(|e| format!("dbus-test-tool: {e}"))?);
    }
    // Every name is on the bus before the test goes on.
    let listed = wait_until(Duration::from_secs(10), || {
        let t = host_send(s, &address, &["org.freedesktop.DBus.ListNames"]);
        names.iter().all(|n| t.contains(&format!("string \"{n}\"")))
    });
    if !listed {
        return Err("the echo services did not take their names".into());
    }
    Ok(bus)
}

/// A profile on `sh` whose `[dbus]` RULE (`talk`, `own`, `see`) lists
/// NAMES.
fn bus_profile(rule: &str, names: &[&str]) -> Profile {
    Profile::on("sh").set("dbus", rule, toml_list(names))
}

const CALLS: &str = "\
for n in Allowed Denied; do
  if dbus-send --session --print-reply --reply-timeout=5000 --dest=org.example.$n / org.example.Test.Ping >/dev/null 2>&1
  then echo $n=answered; else echo $n=refused; fi
done
echo address=${DBUS_SESSION_BUS_ADDRESS:-none}";

/// The scratch for a test, or why it cannot run: a missing program
/// (scripts/test installs them all) or identity.
fn setup(who: Who) -> Result<Scratch, String> {
    for p in [
        "dbus-daemon",
        "dbus-test-tool",
        "dbus-send",
        "xdg-dbus-proxy",
    ] {
        if !installed(p) {
            return Err(format!("{p} is not installed (scripts/test installs it)"));
        }
    }
    Scratch::new(who)
}

macro_rules! setup {
    ($who:expr) => {
        match setup($who) {
            Ok(s) => s,
            Err(r) => return skip(r),
        }
    };
}

fn only_allowed(who: Who) -> TestResult {
    let s = setup!(who);
    let bus = start_bus(&s, &["org.example.Allowed", "org.example.Denied"])?;
    s.profile("bus", &bus_profile("talk", &["org.example.Allowed"]));
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
    no_proxy_left(&s)
}

/// `dbus-send --print-reply` on the host, outside any sandbox, as the
/// scratch's user: its output if the call was answered.
fn host_call(s: &Scratch, address: &str, dest: &str, path: &str, call: &[&str]) -> Option<String> {
    let out = Command::new("dbus-send")
        .args(["--session", "--print-reply", "--reply-timeout=30000"])
        .arg(format!("--dest={dest}"))
        .arg(path)
        .args(call)
        .env("DBUS_SESSION_BUS_ADDRESS", address)
        .uid(s.uid)
        .gid(s.gid)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A call to the bus itself, on the host; empty if it failed.
fn host_send(s: &Scratch, address: &str, call: &[&str]) -> String {
    host_call(
        s,
        address,
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        call,
    )
    .unwrap_or_default()
}

/// Whether a name has an owner on the host's bus (not through a proxy).
fn host_has_owner(s: &Scratch, address: &str, name: &str) -> bool {
    host_send(
        s,
        address,
        &[
            "org.freedesktop.DBus.NameHasOwner",
            &format!("string:{name}"),
        ],
    )
    .contains("boolean true")
}

/// The proxy is gone after the run, and so is its socket.
fn no_proxy_left(s: &Scratch) -> TestResult {
    let left = std::fs::read_dir(s.path("runtime/antimony/dbus"))
        .map(|d| d.count())
        .unwrap_or(0);
    ensure!(left == 0, "the proxy's socket was left behind");
    pass()
}

/// Shell functions for the sandbox's side, all through its bus:
/// `req NAME` asks for a name (RequestName, not queued) and prints
/// `NAME=owned`, `NAME=queued-or-exists` or `NAME=refused`; `call NAME`
/// calls a method on it and prints `NAME=answered` or the error's name;
/// `has NAME` prints `NAME.has_owner=true|false` (NameHasOwner); `listed`
/// prints `listed=NAME` for each org.example and org.freedesktop name but
/// the bus's own that ListNames returns.
const BUS_FUNCTIONS: &str = r#"
bus() { dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus."$@"; }
req() {
    if r=$(bus RequestName string:"$1" uint32:4 2>&1); then
        case $r in *"uint32 1"*) echo "$1=owned";; *) echo "$1=queued-or-exists";; esac
    else echo "$1=refused"; fi
}
call() {
    if err=$(dbus-send --session --print-reply --reply-timeout=30000 --dest="$1" / org.example.Test.Ping 2>&1 >/dev/null)
    then echo "$1=answered"; else echo "$1=${err%%:*}"; fi
}
has() { bus NameHasOwner string:"$1" | sed -n "s/^ *boolean /$1.has_owner=/p"; }
listed() {
    bus ListNames | sed -n 's/^ *string "\(org\.\(example\|freedesktop\)\..*\)"$/listed=\1/p' |
        grep -vx 'listed=org.freedesktop.DBus' | sort
}
"#;

/// `own = ["org.example.Mine"]`: the sandbox takes that name on the host's
/// bus (and answers the host's calls to it), and no other: asking for
/// another is refused. `talk` to the name is not enough to take it.
fn own_names(who: Who) -> TestResult {
    let s = setup!(who);
    let bus = start_bus(&s, &[])?;
    s.profile("owner", &bus_profile("own", &["org.example.Mine"]));
    s.profile("talker", &bus_profile("talk", &["org.example.Mine"]));

    // Talking to a name does not let the sandbox own it.
    let out = s
        .antimony([
            "run",
            "talker",
            "--",
            "-c",
            &format!("{BUS_FUNCTIONS}req org.example.Mine"),
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout == "org.example.Mine=refused\n",
        "a profile that may only talk to org.example.Mine took it: {}",
        out.show()
    );

    // With own: another name is refused; the owned one is taken by an echo
    // service in the sandbox, which serves until the test closes its stdin.
    let script = format!(
        "{BUS_FUNCTIONS}req org.example.Other\n\
         dbus-test-tool echo --name=org.example.Mine & echo=$!\n\
         echo serving\n\
         read line\n\
         kill $echo; wait $echo\n\
         echo done\n"
    );
    let mut run = s
        .antimony(["run", "owner", "--", "-c", &script])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address);
    run.cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut sandbox = Started {
        child: run.cmd.spawn().map_err(|e| format!("antimony: {e}"))?,
        what: "antimony run owner",
    };
    let stdin = sandbox.child.stdin.take();
    let stdout = reader(sandbox.child.stdout.take().unwrap());
    let stderr = reader(sandbox.child.stderr.take().unwrap());
    // Seen from the host's bus, outside the sandbox.
    let owned = wait_until(Duration::from_secs(60), || {
        host_has_owner(&s, &bus.address, "org.example.Mine")
    });
    let answered = owned
        && host_call(
            &s,
            &bus.address,
            "org.example.Mine",
            "/",
            &["org.example.Test.Ping"],
        )
        .is_some();
    let other = host_has_owner(&s, &bus.address, "org.example.Other");
    drop(stdin);
    let status = sandbox.wait(Duration::from_secs(60));
    drop(sandbox);
    let text = |rx| text_of(&rx, Duration::from_secs(10)).unwrap_or_default();
    let (stdout, stderr) = (text(stdout), text(stderr));
    let show = format!("status {status:?}\n--- stdout\n{stdout}--- stderr\n{stderr}");
    ensure!(
        owned,
        "the sandbox never owned org.example.Mine on the bus:\n{show}"
    );
    ensure!(
        answered,
        "the sandbox's org.example.Mine did not answer the host:\n{show}"
    );
    ensure!(!other, "the sandbox owns org.example.Other:\n{show}");
    ensure!(
        status.is_some_and(|s| s.success())
            && stdout == "org.example.Other=refused\nserving\ndone\n",
        "{show}"
    );
    no_proxy_left(&s)
}

/// `see = ["org.example.Seen"]`: the name is listed and has an owner, but
/// a call to it is refused; org.example.Hidden, under no rule, is not
/// listed, has no owner and does not exist as far as the sandbox can
/// tell, though both are on the host's bus and answer there (the
/// control: a profile that may talk to both).
fn see_names(who: Who) -> TestResult {
    let s = setup!(who);
    let bus = start_bus(&s, &["org.example.Seen", "org.example.Hidden"])?;
    s.profile("seer", &bus_profile("see", &["org.example.Seen"]));
    s.profile(
        "talker",
        &bus_profile("talk", &["org.example.Seen", "org.example.Hidden"]),
    );
    let script = format!(
        "{BUS_FUNCTIONS}listed\n\
         for n in org.example.Seen org.example.Hidden; do has $n; call $n; done\n"
    );
    let run = |profile: &str| {
        s.antimony(["run", profile, "--", "-c", &script])
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .run()
    };
    let out = run("talker");
    ensure!(
        out.code() == Some(0)
            && out.stdout
                == "listed=org.example.Hidden\nlisted=org.example.Seen\n\
                    org.example.Seen.has_owner=true\norg.example.Seen=answered\n\
                    org.example.Hidden.has_owner=true\norg.example.Hidden=answered\n",
        "control: the services do not answer a profile that may talk to them: {}",
        out.show()
    );
    let out = run("seer");
    ensure!(
        out.code() == Some(0)
            && out.stdout
                == "listed=org.example.Seen\n\
                    org.example.Seen.has_owner=true\n\
                    org.example.Seen=Error org.freedesktop.DBus.Error.AccessDenied\n\
                    org.example.Hidden.has_owner=false\n\
                    org.example.Hidden=Error org.freedesktop.DBus.Error.ServiceUnknown\n",
        "see: wanted Seen listed but not callable, Hidden invisible: {}",
        out.show()
    );
    no_proxy_left(&s)
}

/// The shipped with-dbus fragment: the portal and the notification
/// service answer; anything else on the bus (here a stand-in for the
/// secret service and another name) is invisible; no name can be owned.
fn with_dbus_fragment(who: Who) -> TestResult {
    let s = setup!(who);
    let names = [
        "org.freedesktop.portal.Desktop",
        "org.freedesktop.Notifications",
        "org.freedesktop.secrets",
        "org.example.Other",
    ];
    let bus = start_bus(&s, &names)?;
    s.profile("desktop-app", &Profile::inherits(&["sh", "with-dbus"]));
    let mut script = format!("{BUS_FUNCTIONS}listed\n");
    for n in names {
        script.push_str(&format!("call {n}\n"));
    }
    script.push_str("req org.example.Mine\n");
    let out = s
        .antimony(["run", "desktop-app", "--", "-c", &script])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .run();
    ensure!(
        out.code() == Some(0)
            && out.stdout
                == "listed=org.freedesktop.Notifications\n\
                    listed=org.freedesktop.portal.Desktop\n\
                    org.freedesktop.portal.Desktop=answered\n\
                    org.freedesktop.Notifications=answered\n\
                    org.freedesktop.secrets=Error org.freedesktop.DBus.Error.ServiceUnknown\n\
                    org.example.Other=Error org.freedesktop.DBus.Error.ServiceUnknown\n\
                    org.example.Mine=refused\n",
        "with-dbus: wanted the portal and notifications only: {}",
        out.show()
    );
    no_proxy_left(&s)
}

/// A session bus with no activatable services at all: the portal would
/// otherwise start the document portal, a FUSE mount. (The daemon wants a
/// `<listen>`, though `--address` replaces it.)
const BARE_BUS: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

const PORTAL: &str = "/usr/libexec/xdg-desktop-portal";
const PERMISSION_STORE: &str = "/usr/libexec/xdg-permission-store";

/// A GameMode portal call (QueryStatus), which the portal first decides
/// by the caller's entry in the permission store (table and id
/// `gamemode`: an app whose entry says `no` is refused, naming its id);
/// prints the error, or `answered`.
const GAMEMODE_CALL: &str = "if err=$(gdbus call --session --timeout 30 \
    -d org.freedesktop.portal.Desktop -o /org/freedesktop/portal/desktop \
    -m org.freedesktop.portal.GameMode.QueryStatus 1 2>&1); then echo answered; else echo \"$err\"; fi";

/// The permission store's `gamemode` entry for `app`: `no`, or removed.
fn set_gamemode(s: &Scratch, address: &str, app: &str, deny: bool) -> TestResult {
    let call = if deny {
        format!(
            "gdbus call --session -d org.freedesktop.impl.portal.PermissionStore \
             -o /org/freedesktop/impl/portal/PermissionStore \
             -m org.freedesktop.impl.portal.PermissionStore.SetPermission gamemode true gamemode '{app}' \"['no']\""
        )
    } else {
        format!(
            "gdbus call --session -d org.freedesktop.impl.portal.PermissionStore \
             -o /org/freedesktop/impl/portal/PermissionStore \
             -m org.freedesktop.impl.portal.PermissionStore.DeletePermission gamemode gamemode '{app}'"
        )
    };
    let out = host_sh(s, address, &call);
    ensure!(
        out.status.success(),
        "permission store: {call}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pass()
}

/// A shell command on the host, outside any sandbox, as the scratch's user.
fn host_sh(s: &Scratch, address: &str, script: &str) -> std::process::Output {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", script]);
    s.set_environment(&mut cmd);
    cmd.env("DBUS_SESSION_BUS_ADDRESS", address)
        .uid(s.uid)
        .gid(s.gid)
        .output()
        .expect("sh")
}

/// xdg-desktop-portal tells sandboxed callers apart by the process of
/// their connection: for a sandbox, the D-Bus proxy, which runs in a
/// sandbox of its own whose root names the profile's application id. With
/// a real portal and permission store on a private bus, the store's
/// GameMode entry `no` for `antimony.portal-app` refuses that profile's
/// call (the portal's error names the id it saw), while the same call
/// from another profile and from the host is not refused; an entry for
/// host applications (id "") refuses the host and no sandbox.
fn portal_app_id(who: Who) -> TestResult {
    for p in [PORTAL, PERMISSION_STORE, "/usr/bin/gdbus"] {
        if !Path::new(p).exists() {
            return skip(format!(
                "{p} is not installed (scripts/test installs xdg-desktop-portal and libglib2.0-bin)"
            ));
        }
    }
    let s = setup!(who);
    let config = s.path("bus.conf");
    std::fs::write(&config, BARE_BUS).map_err(|e| e.to_string())?;
    let mut bus = start_bus_with(&s, &[], Some(&config))?;
    for program in [PERMISSION_STORE, PORTAL] {
        let mut service = Command::new(program);
        s.set_environment(&mut service);
        service
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .env("XDG_CURRENT_DESKTOP", "antimony-test")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_user(&mut service, &s);
        bus.children
            .push(service.spawn().map_err(|e| format!("{program}: {e}"))?);
    }
    let up = wait_until(Duration::from_secs(20), || {
        [
            "org.freedesktop.portal.Desktop",
            "org.freedesktop.impl.portal.PermissionStore",
        ]
        .iter()
        .all(|n| host_has_owner(&s, &bus.address, n))
    });
    ensure!(up, "the portal and the permission store did not come up");
    let talk = &["org.freedesktop.portal.Desktop"];
    s.profile("portal-app", &bus_profile("talk", talk));
    s.profile("other-app", &bus_profile("talk", talk));
    let in_sandbox = |profile: &str| {
        let out = s
            .antimony(["run", profile, "--", "-c", GAMEMODE_CALL])
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .run();
        (out.code() == Some(0), out.stdout.clone(), out.show())
    };
    let on_host =
        || String::from_utf8_lossy(&host_sh(&s, &bus.address, GAMEMODE_CALL).stdout).into_owned();
    let refused = |text: &str, id: &str| {
        text.contains(&format!(
            "org.freedesktop.portal.Error.NotAllowed: GameMode is not allowed for {id}\n"
        ))
    };

    set_gamemode(&s, &bus.address, "antimony.portal-app", true)?;
    let (ok, text, show) = in_sandbox("portal-app");
    ensure!(
        ok && refused(&text, "antimony.portal-app"),
        "the portal did not decide the sandbox's call by antimony.portal-app's entry: {show}"
    );
    let (ok, text, show) = in_sandbox("other-app");
    ensure!(
        ok && !text.contains("NotAllowed") && !text.is_empty(),
        "another profile's sandbox got antimony.portal-app's entry: {show}"
    );
    let host = on_host();
    ensure!(
        !host.contains("NotAllowed") && !host.is_empty(),
        "a host application got antimony.portal-app's entry: {host}"
    );
    // Host applications' entry: the host is refused, sandboxes are not.
    set_gamemode(&s, &bus.address, "antimony.portal-app", false)?;
    set_gamemode(&s, &bus.address, "", true)?;
    let host = on_host();
    ensure!(
        refused(&host, ""),
        "control: the host's entry does not refuse the host: {host}"
    );
    for profile in ["portal-app", "other-app"] {
        let (ok, text, show) = in_sandbox(profile);
        ensure!(
            ok && !text.contains("NotAllowed") && !text.is_empty(),
            "a sandbox got the host applications' entry: {show}"
        );
    }
    drop(bus);
    no_proxy_left(&s)
}
