//! `antimony learn` and `run --explain` with real applications (issue 18):
//! for each app of a list of Debian programs of different kinds that have
//! no shipped profile, `learn` records a run under Xvfb and writes a draft;
//! the draft passes `antimony check`, and with it the app, run again as an
//! ordinary run, opens a window that renders (the screen changes from the
//! empty one; a sample document's colour shows where the app has one),
//! while a file of the home the draft does not grant stays out of reach.
//! Among them: LibreOffice Math, which needs /etc/libreoffice, and
//! mousepad, which owns its name on the session bus (a private
//! dbus-daemon here). The denial report names /etc/libreoffice for
//! LibreOffice run without it, which fails there.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::apps::files::solid_pdf;
use crate::apps::{X_SERVER, start_xvfb};
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both(
        "learn::drafts_run_the_apps_they_were_learned_from",
        drafts_work,
    ));
    t.extend(both(
        "learn::explain_names_etc_libreoffice_for_libreoffice",
        explain_libreoffice,
    ));
    t.extend(both(
        "learn::records_paths_and_drafts_for_a_shell_program",
        shell_program,
    ));
    t
}

/// The colour of the sample documents.
const DOC_RGB: [u8; 3] = [0x11, 0xaa, 0x55];

/// What an app is given, and what shows that it worked.
#[derive(Clone, Copy)]
enum Sample {
    /// No document: its window renders.
    None,
    /// A one-colour PDF: that colour fills this share (‰) of the screen.
    Pdf(usize),
    /// A one-colour PNG: likewise.
    Png(usize),
    /// A text file: its window renders.
    Text,
}

struct App {
    program: &'static str,
    package: &'static str,
    sample: Sample,
    /// How long `learn` records it.
    record: u64,
    /// Needs the session bus.
    bus: bool,
    /// The draft must hold this line (an /etc folder, a bus name).
    expect: Option<&'static str>,
}

const APPS: &[App] = &[
    App {
        program: "xcalc",
        package: "x11-apps",
        sample: Sample::None,
        record: 4,
        bus: false,
        expect: None,
    },
    App {
        program: "mupdf",
        package: "mupdf",
        sample: Sample::Pdf(100),
        record: 5,
        bus: false,
        expect: None,
    },
    App {
        program: "qpdfview",
        package: "qpdfview",
        sample: Sample::Pdf(50),
        record: 8,
        bus: false,
        expect: None,
    },
    App {
        program: "gv",
        package: "gv",
        sample: Sample::Pdf(50),
        record: 8,
        bus: false,
        expect: None,
    },
    App {
        program: "gpicview",
        package: "gpicview",
        sample: Sample::Png(50),
        record: 6,
        bus: false,
        expect: None,
    },
    App {
        program: "sxiv",
        package: "sxiv",
        sample: Sample::Png(50),
        record: 5,
        bus: false,
        expect: None,
    },
    App {
        program: "galculator",
        package: "galculator",
        sample: Sample::None,
        record: 6,
        bus: false,
        expect: None,
    },
    App {
        program: "gucharmap",
        package: "gucharmap",
        sample: Sample::None,
        record: 8,
        bus: false,
        expect: None,
    },
    App {
        program: "featherpad",
        package: "featherpad",
        sample: Sample::Text,
        record: 8,
        bus: false,
        expect: None,
    },
    App {
        program: "xfe",
        package: "xfe",
        sample: Sample::None,
        record: 6,
        bus: false,
        expect: Some("\"/etc/xfe\""),
    },
    App {
        program: "mousepad",
        package: "mousepad",
        sample: Sample::Text,
        record: 8,
        bus: true,
        expect: Some("org.xfce.mousepad"),
    },
    App {
        program: "lomath",
        package: "libreoffice-math",
        sample: Sample::None,
        record: 30,
        bus: false,
        expect: Some("\"/etc/libreoffice\""),
    },
];

/// The whole screen, decoded: width, height, RGB bytes.
fn screenshot(
    display: &str,
    xauthority: &Path,
    file: &Path,
) -> Result<(usize, usize, Vec<u8>), String> {
    let out = std::process::Command::new("import")
        .args(["-display", display, "-window", "root"])
        .arg(file)
        .env("XAUTHORITY", xauthority)
        .output()
        .map_err(|e| format!("import: {e}"))?;
    if !out.status.success() {
        return Err(format!("import: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let out = std::process::Command::new("convert")
        .arg(file)
        .args(["-strip", "-depth", "8", "rgb:-"])
        .output()
        .map_err(|e| format!("convert: {e}"))?;
    let size = std::process::Command::new("identify")
        .args(["-format", "%w %h"])
        .arg(file)
        .output()
        .map_err(|e| format!("identify: {e}"))?;
    let dims = String::from_utf8_lossy(&size.stdout).to_string();
    let mut it = dims
        .split_whitespace()
        .map(|n| n.parse::<usize>().unwrap_or(0));
    let (w, h) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    if w * h * 3 != out.stdout.len() || w == 0 {
        return Err(format!(
            "a screenshot of {dims} with {} bytes",
            out.stdout.len()
        ));
    }
    Ok((w, h, out.stdout))
}

/// ‰ of the pixels that differ from `base`, and ‰ that are `rgb`.
fn compare(base: &[u8], now: &[u8], rgb: [u8; 3]) -> (usize, usize) {
    let total = (now.len() / 3).max(1);
    let changed = base
        .chunks_exact(3)
        .zip(now.chunks_exact(3))
        .filter(|(a, b)| a != b)
        .count();
    let coloured = now
        .chunks_exact(3)
        .filter(|p| p.iter().zip(rgb).all(|(&a, b)| a.abs_diff(b) <= 8))
        .count();
    (changed * 1000 / total, coloured * 1000 / total)
}

/// The sample document for `app`, in the scratch home's Documents.
fn sample(s: &Scratch, app: &App) -> Result<Option<PathBuf>, String> {
    Ok(match app.sample {
        Sample::None => None,
        Sample::Pdf(_) => Some(s.write("home/Documents/sample.pdf", &solid_pdf(DOC_RGB))),
        Sample::Text => Some(s.write("home/Documents/sample.txt", "antimony learn\n")),
        Sample::Png(_) => {
            let png = s.path("home/Documents/sample.png");
            let out = std::process::Command::new("convert")
                .args(["-size", "400x400", "xc:#11aa55"])
                .arg(&png)
                .output()
                .map_err(|e| format!("convert: {e}"))?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into());
            }
            let _ = std::os::unix::fs::chown(&png, Some(s.uid), Some(s.gid));
            Some(png)
        }
    })
}

/// `antimony ARGS` in the background with the display (and bus), its
/// stderr in `log`.
fn background(mut run: Run, env: &[(String, String)], log: &Path) -> Result<Started, String> {
    for (k, v) in env {
        run = run.env(k, v);
    }
    run.cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).map_err(|e| e.to_string())?);
    Ok(Started {
        child: run
            .cmd
            .spawn()
            .map_err(|e| format!("spawn antimony: {e}"))?,
        what: "antimony",
    })
}

/// A private session bus for the scratch's user, stopped on drop.
fn session_bus(s: &Scratch) -> Result<(Started, String), String> {
    let socket = s.path("runtime/test-bus");
    let address = format!("unix:path={}", socket.display());
    let mut run = s
        .command("dbus-daemon")
        .args(["--session", "--nofork", "--nopidfile"])
        .arg(format!("--address={address}"));
    run.cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = run.cmd.spawn().map_err(|e| format!("dbus-daemon: {e}"))?;
    let d = Started {
        child,
        what: "dbus-daemon",
    };
    if !wait_until(Duration::from_secs(10), || listening(&socket)) {
        return Err("the session bus never listened".into());
    }
    Ok((d, address))
}

fn drafts_work(who: Who) -> TestResult {
    for p in [
        "Xvfb",
        "import",
        "convert",
        "identify",
        "dbus-daemon",
        "xdg-dbus-proxy",
    ] {
        if !installed(p) {
            return skip(format!("`{p}` is not installed"));
        }
    }
    let missing: Vec<&str> = APPS
        .iter()
        .filter(|a| !installed(a.program))
        .map(|a| a.package)
        .collect();
    if !missing.is_empty() {
        return skip(format!("not installed: {}", missing.join(" ")));
    }
    let s = scratch!(who);
    let _one = X_SERVER.write().unwrap_or_else(|e| e.into_inner());
    let had_socket_dir = Path::new("/tmp/.X11-unix").exists();
    let xauthority = s.path("home/.Xauthority");
    let (mut xvfb, n) = start_xvfb(&xauthority, s.uid, s.gid)?;
    let display = format!(":{n}");
    let result = (|| -> TestResult {
        let shot = s.path("screen.png");
        let (_, _, empty) = screenshot(&display, &xauthority, &shot)?;
        let secret = s.write("home/secret.txt", "not granted\n");
        let mut failures = Vec::new();
        for app in APPS {
            if let Err(e) = one_app(&s, app, &display, &xauthority, &empty, &secret) {
                failures.push(format!("{}: {e}", app.program));
            }
        }
        ensure!(failures.is_empty(), "{}", failures.join("\n\n"));
        pass()
    })();
    xvfb.stop();
    if !had_socket_dir {
        let _ = std::fs::remove_dir("/tmp/.X11-unix");
    }
    result
}

fn one_app(
    s: &Scratch,
    app: &App,
    display: &str,
    xauthority: &Path,
    empty: &[u8],
    secret: &Path,
) -> Result<(), String> {
    let mut env = vec![("DISPLAY".to_string(), display.to_string())];
    let bus = if app.bus {
        let (daemon, address) = session_bus(s)?;
        env.push(("DBUS_SESSION_BUS_ADDRESS".into(), address));
        Some(daemon)
    } else {
        None
    };
    let doc = sample(s, app)?;
    let draft = s.path(&format!("{}.toml", app.program));
    let log = s.path(&format!("{}-learn.log", app.program));
    let mut learn = s
        .antimony(["learn", app.program, "--for", &app.record.to_string(), "-o"])
        .arg(&draft)
        .timeout(Duration::from_secs(app.record * 3 + 120));
    if let Some(d) = &doc {
        learn = learn.arg("--").arg(d);
    }
    for (k, v) in &env {
        learn = learn.env(k, v);
    }
    let out = learn.run();
    if out.code() != Some(0) {
        return Err(format!("learn failed: {}", out.show()));
    }
    let text =
        std::fs::read_to_string(&draft).map_err(|e| format!("no draft: {e}\n{}", out.show()))?;
    let _ = std::fs::write(&log, &out.stderr);
    if let Some(line) = app.expect {
        if !text.contains(line) {
            return Err(format!("the draft lacks {line}:\n{text}"));
        }
    }
    // Never the home wholesale.
    if text
        .lines()
        .any(|l| l.trim_start().starts_with("\"?~\"") || l.trim_start().starts_with("\"~\""))
    {
        return Err(format!("the draft grants the home:\n{text}"));
    }
    let check = s.antimony(["check"]).arg(&draft).run();
    if check.code() != Some(0) {
        return Err(format!(
            "the draft does not pass check: {}\n{text}",
            check.show()
        ));
    }
    // The draft's sandbox keeps the rest of the home out (the path is
    // inside the script, not an argument that would be forwarded).
    let script = format!("cat '{}' 2>/dev/null || echo refused", secret.display());
    let probe = s
        .antimony(["run"])
        .arg(&draft)
        .args(["--program", "/bin/sh", "--", "-c", &script])
        .run();
    if probe.stdout != "refused\n" {
        return Err(format!(
            "a file the draft does not grant was read: {}",
            probe.show()
        ));
    }
    // The app, run again with its draft: a window that renders.
    let run_log = s.path(&format!("{}-run.log", app.program));
    let mut run = s.antimony(["run"]).arg(&draft);
    if let Some(d) = &doc {
        run = run.arg("--").arg(d);
    }
    let mut started = background(run, &env, &run_log)?;
    let shot = s.path("screen.png");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::from("no screenshot");
    let mut shown = false;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = started.child.try_wait() {
            last = format!("it exited: {status:?}");
            break;
        }
        std::thread::sleep(Duration::from_millis(700));
        let Ok((w, h, now)) = screenshot(display, xauthority, &shot) else {
            continue;
        };
        let (changed, coloured) = compare(empty, &now, DOC_RGB);
        last = format!("{w}x{h}: {changed}‰ changed, {coloured}‰ the document's colour");
        let enough = match app.sample {
            Sample::Pdf(share) | Sample::Png(share) => coloured >= share,
            Sample::None | Sample::Text => changed >= 20,
        };
        if enough {
            shown = true;
            break;
        }
    }
    started.stop();
    drop(bus);
    // Its windows gone before the next app.
    wait_until(Duration::from_secs(10), || {
        screenshot(display, xauthority, &shot)
            .map(|(_, _, now)| compare(empty, &now, DOC_RGB).0 < 5)
            .unwrap_or(false)
    });
    if !shown {
        return Err(format!(
            "it never rendered ({last})\n--- draft\n{text}\n--- run\n{}",
            std::fs::read_to_string(&run_log).unwrap_or_default()
        ));
    }
    Ok(())
}

/// LibreOffice in a sandbox without /etc/libreoffice fails; `run
/// --explain` names the folder, with `package_config` as the other way,
/// and `antimony log PROFILE --explain` shows the report again.
fn explain_libreoffice(who: Who) -> TestResult {
    for p in ["Xvfb", "libreoffice"] {
        if !installed(p) {
            return skip(format!("`{p}` is not installed"));
        }
    }
    let s = scratch!(who);
    let profile = s.profile(
        "office",
        "path = \"/usr/bin/libreoffice\"\ninherits = [\"minimal\", \"with-display\", \"with-fonts\", \"with-themes\", \"with-locale\"]\n",
    );
    let _one = X_SERVER.write().unwrap_or_else(|e| e.into_inner());
    let had_socket_dir = Path::new("/tmp/.X11-unix").exists();
    let xauthority = s.path("home/.Xauthority");
    let (mut xvfb, n) = start_xvfb(&xauthority, s.uid, s.gid)?;
    let out = s
        .antimony([
            "run",
            "--explain",
            "office",
            "--",
            "--writer",
            "--norestore",
        ])
        .env("DISPLAY", format!(":{n}"))
        .timeout(Duration::from_secs(180))
        .run();
    xvfb.stop();
    if !had_socket_dir {
        let _ = std::fs::remove_dir("/tmp/.X11-unix");
    }
    let _ = profile;
    // It fails there (LibreOffice's "Unspecified Application Error").
    ensure!(
        out.code() != Some(0) && out.code() != Some(125),
        "{}",
        out.show()
    );
    let said = "tried /etc/libreoffice";
    ensure!(
        out.stderr.lines().any(|l| l.contains(said)
            && l.contains("which this profile does not grant")
            && l.contains("add `ro = [\"/etc/libreoffice\"]`")
            && l.contains("package_config = true")),
        "{}",
        out.show()
    );
    let log = s.antimony(["log", "office", "--explain"]).run();
    ensure!(
        log.code() == Some(0) && log.stdout.contains(said),
        "{}",
        log.show()
    );
    pass()
}

/// Without a display: `learn` records a shell program's reads (a file in
/// an /etc folder the minimal sandbox lacks) and writes (in its home),
/// and the draft grants that folder and a private home; `--dry-run` of a
/// run with `--explain` shows the recording filter, one without does not.
fn shell_program(who: Who) -> TestResult {
    let s = scratch!(who);
    let script = s.script(
        "bin/reader",
        "#!/bin/sh\ncat /etc/debconf.conf >/dev/null\nmkdir -p \"$HOME/.config/reader\" && echo x > \"$HOME/.config/reader/state\"\n\
         # A hostile program names a file so that its draft, a profile a\n\
         # later run loads, would gain a host hook.\n\
         echo x > \"$HOME/a\n[[hooks.pre]]\ncontent = 'id'\n#\"\n",
    );
    let draft = s.path("reader.toml");
    let out = s.antimony(["learn", "-o"]).arg(&draft).arg(&script).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let text = std::fs::read_to_string(&draft).map_err(|e| e.to_string())?;
    ensure!(text.contains("\"/etc/debconf.conf\""), "{text}");
    ensure!(text.contains("policy = \"Enabled\""), "{text}");
    ensure!(
        !text.contains("with-network") && !text.contains("[dbus]"),
        "{text}"
    );
    let check = s.antimony(["check"]).arg(&draft).run();
    ensure!(check.code() == Some(0), "{}", check.show());
    // The file name it wrote stays inside a comment: no hook in the draft.
    let show = s.antimony(["show"]).arg(&draft).run();
    ensure!(
        show.code() == Some(0)
            && !show.stdout.contains("hooks")
            && text.contains("\\u000A[[hooks.pre]]"),
        "{text}\n{}",
        show.show()
    );
    // An existing draft is kept without --force.
    let again = s.antimony(["learn", "-o"]).arg(&draft).arg(&script).run();
    ensure!(
        again.code() == Some(125) && again.stderr.contains("--force"),
        "{}",
        again.show()
    );
    let dry = s.antimony(["run", "sh", "--explain", "--dry-run"]).run();
    ensure!(
        dry.stdout.contains("recording (seccomp user notification"),
        "{}",
        dry.show()
    );
    let dry = s.antimony(["run", "sh", "--dry-run"]).run();
    ensure!(!dry.stdout.contains("recording"), "{}", dry.show());
    pass()
}
