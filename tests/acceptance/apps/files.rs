//! Links and files opened in the sandboxed app, with real applications
//! (issue 16): a second `firefox URL` opens in the running Firefox (its
//! single instance, over a private session bus) and so does a file given
//! by its path, forwarded into the running sandbox; a file a desktop opens
//! through an entry written by `integrate` (`gio open`, GLib's launcher,
//! passing a `file://` URI to `%U`) reaches the sandboxed program, its
//! siblings do not; the shipped zathura profile shows a PDF from
//! ~/Documents and nothing else of that folder.

use std::ffi::OsStr;

use super::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both(
        "apps::firefox_second_url_joins",
        firefox_second_url_joins,
    ));
    t.extend(both(
        "apps::integrate_passes_a_file_through_U",
        integrate_passes_a_file,
    ));
    t.extend(both("apps::zathura_opens_a_pdf", zathura_opens_a_pdf));
    t
}

/// The colour of the page opened last: not the first page's, not one a
/// browser draws by itself.
const SECOND_RGB: [u8; 3] = [0xaa, 0x11, 0x55];

/// A page that is one solid colour.
pub(super) fn solid_page(rgb: [u8; 3]) -> String {
    let [r, g, b] = rgb;
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>antimony</title>\
         <style>html,body{{margin:0;height:100%;background:#{r:02x}{g:02x}{b:02x}}}</style></head>\
         <body></body></html>\n"
    )
}

/// A one-page PDF (A4) filled with one colour, written out by hand:
/// the catalog, the page tree, the page, its content stream, and the
/// cross-reference table with each object's byte offset.
pub(crate) fn solid_pdf(rgb: [u8; 3]) -> String {
    let [r, g, b] = rgb.map(|c| f64::from(c) / 255.0);
    let content = format!("{r:.4} {g:.4} {b:.4} rg 0 0 595 842 re f\n");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>".to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ),
    ];
    let mut pdf = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.push_str(&format!("{} 0 obj\n{o}\nendobj\n", i + 1));
    }
    let xref = pdf.len();
    pdf.push_str(&format!(
        "xref\n0 {}\n0000000000 65535 f \n",
        objects.len() + 1
    ));
    for o in offsets {
        pdf.push_str(&format!("{o:010} 00000 n \n"));
    }
    pdf.push_str(&format!(
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    ));
    pdf
}

/// Xvfb for one test (the X server lock held), stopped on drop, with
/// /tmp/.X11-unix removed again if it made it.
struct Display {
    xvfb: Started,
    had_socket_dir: bool,
    name: String,
    xauthority: PathBuf,
    shot: PathBuf,
    _one: std::sync::RwLockWriteGuard<'static, ()>,
}

impl Display {
    fn start(s: &Scratch) -> Result<Display, String> {
        let one = X_SERVER.write().unwrap_or_else(|e| e.into_inner());
        let had_socket_dir = Path::new("/tmp/.X11-unix").exists();
        let xauthority = s.path("home/.Xauthority");
        let (xvfb, n) = start_xvfb(&xauthority, s.uid, s.gid)?;
        Ok(Display {
            xvfb,
            had_socket_dir,
            name: format!(":{n}"),
            xauthority,
            shot: s.path("screen.png"),
            _one: one,
        })
    }

    fn screen(&self) -> Screen<'_> {
        Screen {
            display: &self.name,
            xauthority: &self.xauthority,
            shot: &self.shot,
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.xvfb.stop();
        if !self.had_socket_dir {
            let _ = std::fs::remove_dir("/tmp/.X11-unix");
        }
    }
}

/// `antimony run ARGS…` in the background on `display`, its stderr in
/// `log`; ended (SIGTERM: antimony stops its sandbox) when dropped.
fn start_app(mut run: Run, display: &Display, log: &Path) -> Result<Started, String> {
    run = run.env("DISPLAY", &display.name);
    run.cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).map_err(|e| e.to_string())?);
    Ok(Started {
        child: run
            .cmd
            .spawn()
            .map_err(|e| format!("spawn antimony: {e}"))?,
        what: "antimony run",
    })
}

fn firefox_installed() -> bool {
    which("firefox").is_some() || which("firefox-esr").is_some()
}

/// The running instances of `profile` that `antimony ps --json` lists:
/// their ids and programs' PIDs.
fn instances_of(s: &Scratch, profile: &str) -> Result<Vec<(String, u32)>, Failed> {
    let out = s.antimony(["ps", "--json"]).run();
    ensure!(out.code() == Some(0), "ps --json: {}", out.show());
    let list: serde_json::Value = serde_json::from_str(&out.stdout)
        .map_err(|e| format!("ps --json is not JSON ({e}): {}", out.show()))?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["profile"] == profile)
        .filter_map(|i| {
            Some((
                i["instance"].as_str()?.to_string(),
                u32::try_from(i["pid"].as_u64()?).ok()?,
            ))
        })
        .collect())
}

/// Firefox main processes on this machine whose HOME is `home` (this
/// test's: the browsers other tests run have their own): a process named
/// firefox… that is none of the helpers a main process starts (they have
/// `-contentproc` or `-forkserver` in their command line).
fn firefox_mains(home: &Path) -> Vec<u32> {
    let want = [b"HOME=".as_slice(), home.as_os_str().as_encoded_bytes()].concat();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| alive(pid))
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            comm.starts_with("firefox")
                && !cmdline
                    .split(|&b| b == 0)
                    .any(|a| a == b"-contentproc" || a == b"-forkserver")
                && environ.split(|&b| b == 0).any(|v| v == want.as_slice())
        })
        .collect()
}

/// One Firefox: `ps` lists the instance `id` and no other, and this
/// test's one Firefox main process is in that instance (its PID
/// namespace `pidns`).
fn one_firefox(s: &Scratch, id: &str, pidns: &Path, when: &str) -> TestResult {
    let listed = instances_of(s, "firefox")?;
    ensure!(
        listed.len() == 1 && listed[0].0 == id,
        "{when}: ps lists {listed:?}, not the one instance {id}"
    );
    let mains = firefox_mains(&s.home());
    let outside: Vec<u32> = mains
        .iter()
        .copied()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .ok()
                .as_deref()
                != Some(pidns)
        })
        .collect();
    ensure!(
        mains.len() == 1 && outside.is_empty(),
        "{when}: Firefox main processes {mains:?}, of which outside the instance {outside:?}:{}",
        describe(&mains)
    );
    pass()
}

/// The shipped Firefox under Xvfb with a private session bus: a second
/// `antimony run firefox -- URL` joins the running instance and hands the
/// URL to the running Firefox over the bus (the local server sees the
/// request, quickly, and one Firefox exists); a file given by its path is
/// forwarded into the running sandbox and shows in its window.
fn firefox_second_url_joins(who: Who) -> TestResult {
    need!("Xvfb", "import", "convert", "dbus-daemon");
    if !firefox_installed() {
        return skip("Firefox is not installed");
    }
    let s = scratch!(who);
    let first = write_page(&s);
    let second = s.write("home/Documents/second page.html", &solid_page(SECOND_RGB));
    s.write("home/Documents/other.txt", "not for the browser\n");
    let server = HttpServer::start("the second URL\n");
    let display = Display::start(&s)?;
    let (_bus, address) = crate::notify::start_bus(&s)?;
    let log = s.path("firefox.log");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    // The host's network: the test's HTTP server listens on the host's
    // loopback, which the shipped profile's isolated network never reaches
    // (a joining run's network options are the running instance's).
    let run = |args: &[&OsStr]| {
        s.antimony(["run", "firefox", "--network=host", "--"])
            .args(args)
            .env("DISPLAY", &display.name)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
    };

    // The first Firefox, on a local page (its file:// URI forwarded into
    // the new sandbox).
    let first_uri = format!("file://{}", first.display());
    let mut firefox = start_app(
        run(&["--kiosk".as_ref(), first_uri.as_ref()]),
        &display,
        &log,
    )?;
    until_shown(
        &display.screen(),
        PAGE_RGB,
        300,
        Duration::from_secs(120),
        &mut || exited(&mut firefox),
    )
    .map_err(|e| {
        format!(
            "the first page never showed: {e}\n--- firefox log\n{}",
            log_text()
        )
    })?;
    let listed = instances_of(&s, "firefox")?;
    ensure!(listed.len() == 1, "ps lists {listed:?}");
    let (id, pid) = listed[0].clone();
    let pidns = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .map_err(|e| format!("the instance's program {pid}: {e}"))?;
    one_firefox(&s, &id, &pidns, "the first Firefox")?;

    // The second URL: handed over, the second `firefox` is done at once.
    let url = format!("http://127.0.0.1:{}/second", server.port);
    let started = Instant::now();
    let out = run(&[url.as_ref()]).timeout(Duration::from_secs(60)).run();
    let took = started.elapsed();
    ensure!(out.code() == Some(0), "the second URL: {}", out.show());
    ensure!(
        took < Duration::from_secs(20),
        "the second URL took {took:?} to hand over: {}",
        out.show()
    );
    let asked = wait_until(Duration::from_secs(30), || {
        server
            .requests()
            .iter()
            .any(|l| l.starts_with("GET /second "))
    });
    ensure!(
        asked,
        "the running Firefox never asked for /second (the server got {:?})\n{}\n--- firefox log\n{}",
        server.requests(),
        out.show(),
        log_text()
    );
    one_firefox(&s, &id, &pidns, "after the second URL")?;

    // A file by its path: forwarded into the running sandbox, shown there.
    let out = run(&[second.as_os_str()])
        .timeout(Duration::from_secs(60))
        .run();
    ensure!(out.code() == Some(0), "the file: {}", out.show());
    until_shown(
        &display.screen(),
        SECOND_RGB,
        300,
        Duration::from_secs(60),
        &mut || exited(&mut firefox),
    )
    .map_err(|e| {
        format!(
            "the forwarded file never showed: {e}\n{}\n--- firefox log\n{}",
            out.show(),
            log_text()
        )
    })?;
    one_firefox(&s, &id, &pidns, "after the file")?;
    firefox.stop();
    pass()
}

/// A desktop entry of the system's (a stand-in for an application's, with
/// `%U` and `X-GIO-NoFuse=true`, so that GLib passes `file://` URIs, as
/// KDE's launcher does) for a program that writes what it gets and sees
/// to `result`. `integrate` shadows it; `gio open` (what a GLib desktop's
/// file manager does for a double-click: the default application of the
/// file's type, by desktop id, the user's entry first) starts it through
/// antimony: the file reaches the sandboxed program, its siblings do not.
/// Before the integration, the same launch runs the program on the host
/// and it sees them all (the control).
fn integrate_passes_a_file(who: Who) -> TestResult {
    need!("gio", "python3", "desktop-file-validate");
    let s = scratch!(who);
    let out_dir = s.mkdir("out");
    let result = out_dir.join("result");
    // Its arguments, each file's contents (the URI decoded), the folder of
    // the first, the user namespace; then `done`. No `"`, `$`, `\`, `` ` ``
    // or `%` in it: nothing to escape in an Exec value.
    let script = format!(
        "import sys, os, urllib.parse as u; o = open('{}', 'w'); \
         ps = [u.unquote(u.urlparse(a).path) for a in sys.argv[1:]]; \
         [print('arg', a, file=o) for a in sys.argv[1:]]; \
         [print('read', open(p).read().strip(), file=o) for p in ps]; \
         print('folder', sorted(os.listdir(os.path.dirname(ps[0]))), file=o); \
         print('userns', os.readlink('/proc/self/ns/user'), file=o); \
         print('done', file=o)",
        result.display()
    );
    let sys = s.path("sys");
    let system_entry = s.write(
        "sys/applications/org.example.Viewer.desktop",
        &format!(
            "[Desktop Entry]\nType=Application\nName=Viewer\nExec=python3 -c \"{script}\" %U\n\
             MimeType=text/plain;\nX-GIO-NoFuse=true\n"
        ),
    );
    validate(&system_entry)?;
    s.write(
        "home/.config/mimeapps.list",
        "[Default Applications]\ntext/plain=org.example.Viewer.desktop\n",
    );
    s.profile(
        "viewer",
        &Profile::on("minimal")
            .path("/usr/bin/python3")
            .key("id", toml_str("org.example.Viewer"))
            .rw(&[out_dir.display().to_string()]),
    );
    let note = s.write("home/Documents/my note.txt", "the note\n");
    s.write("home/Documents/other.txt", "a sibling\n");
    let uri = format!("file://{}", note.display().to_string().replace(' ', "%20"));
    let host_userns = std::fs::read_link("/proc/self/ns/user")
        .map_err(|e| e.to_string())?
        .display()
        .to_string();

    // What the program writes when a desktop opens the note.
    let open = || -> Result<Vec<String>, Failed> {
        let _ = std::fs::remove_file(&result);
        let out = s
            .command("gio")
            .arg("open")
            .arg(&note)
            .env("XDG_DATA_DIRS", &sys)
            .run();
        ensure!(out.code() == Some(0), "gio open: {}", out.show());
        let done = wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(&result).is_ok_and(|t| t.ends_with("done\n"))
        });
        // The launched antimony (or program) is gio's orphan: wait for
        // its end, so that the test leaves nothing behind.
        let token = result.display().to_string();
        let ended = wait_until(Duration::from_secs(30), || {
            with_token(&token, std::process::id()).is_empty()
        });
        ensure!(
            done && ended,
            "the program wrote {:?} (ended: {ended})\n{}",
            std::fs::read_to_string(&result).unwrap_or_default(),
            out.show()
        );
        Ok(std::fs::read_to_string(&result)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect())
    };

    // Not integrated: the program runs on the host and sees the folder.
    let lines = open()?;
    let want = |folder: &str, userns: &str| {
        vec![
            format!("arg {uri}"),
            "read the note".to_string(),
            format!("folder {folder}"),
            format!("userns {userns}"),
            "done".to_string(),
        ]
    };
    ensure!(
        lines == want("['my note.txt', 'other.txt']", &host_userns),
        "control: without the integration, the program wrote {lines:#?}"
    );

    let out = s
        .antimony(["integrate", "viewer"])
        .env("XDG_DATA_DIRS", &sys)
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let entry = s.path("home/.local/share/applications/org.example.Viewer.desktop");
    validate(&entry)?;
    let text = std::fs::read_to_string(&entry).map_err(|e| e.to_string())?;
    ensure!(
        text.lines().any(|l| l.starts_with("Exec=")
            && l.contains(" run viewer -- -c ")
            && l.ends_with(" %U")),
        "{text}"
    );

    // Integrated: in the sandbox, with the note and nothing else of its
    // folder.
    let lines = open()?;
    let userns = lines
        .iter()
        .find_map(|l| l.strip_prefix("userns "))
        .unwrap_or_default()
        .to_string();
    ensure!(
        userns != host_userns && userns.starts_with("user:["),
        "the entry ran the program outside the sandbox: {lines:#?}"
    );
    ensure!(
        lines == want("['my note.txt']", &userns),
        "through the integrated entry, the program wrote {lines:#?}"
    );
    pass()
}

/// The shipped zathura profile: `antimony run zathura -- ~/Documents/doc.pdf`
/// forwards that file alone, read-only (the plan says so; a shell run
/// with the same profile and arguments reads it and sees no sibling), and
/// zathura shows the PDF's colour under Xvfb; so it does, in its sandbox,
/// once integrated, when GLib opens the PDF with its default application.
fn zathura_opens_a_pdf(who: Who) -> TestResult {
    need!("zathura", "Xvfb", "import", "convert", "gio");
    let s = scratch!(who);
    let pdf = s.write("home/Documents/doc.pdf", &solid_pdf(PAGE_RGB));
    s.write("home/Documents/other.txt", "not for the viewer\n");

    let dry = s
        .antimony(["run", "zathura", "--dry-run", "--"])
        .arg(&pdf)
        .run();
    ensure!(dry.code() == Some(0), "{}", dry.show());
    let forwarded: Vec<&str> = dry
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("forwarded"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    ensure!(
        forwarded.len() == 1
            && forwarded[0].split_whitespace().next() == Some("ro")
            && forwarded[0].contains(&format!(" {} ", pdf.display())),
        "not the PDF alone, read-only: {forwarded:?}\n{}",
        dry.show()
    );

    let probe = r#"head -c 5 "$1"; echo; ls -A "${1%/*}"; if (: >> "$1") 2>/dev/null; then echo writable; else echo read-only; fi"#;
    let out = s
        .antimony([
            "run",
            "zathura",
            "--program",
            "/bin/sh",
            "--",
            "-c",
            probe,
            "sh",
        ])
        .arg(&pdf)
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout == "%PDF-\ndoc.pdf\nread-only\n",
        "the sandbox does not see the PDF alone, read-only: {}",
        out.show()
    );

    let display = Display::start(&s)?;
    let log = s.path("zathura.log");
    let mut zathura = start_app(
        s.antimony(["run", "zathura", "--"]).arg(&pdf),
        &display,
        &log,
    )?;
    // zathura's window is about a third of the screen, the page within it.
    let shown = until_shown(
        &display.screen(),
        PAGE_RGB,
        150,
        Duration::from_secs(60),
        &mut || exited(&mut zathura),
    );
    zathura.stop();
    let log_text = |log: &Path| std::fs::read_to_string(log).unwrap_or_default();
    shown.map_err(|e| {
        format!(
            "the PDF never showed: {e}\n--- zathura log\n{}",
            log_text(&log)
        )
    })?;

    // Integrated, as a file manager opens the PDF: GLib's default
    // application for PDFs (`gio open`), by desktop id, integrate's entry
    // first; `%U` gets the file's path. It shows, in a sandbox.
    let out = s.antimony(["integrate", "zathura"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    s.write(
        "home/.config/mimeapps.list",
        "[Default Applications]\napplication/pdf=org.pwmt.zathura.desktop\n",
    );
    let host_userns = std::fs::read_link("/proc/self/ns/user").map_err(|e| e.to_string())?;
    let log = s.path("gio.log");
    let mut gio = s.command("gio").arg("open").arg(&pdf);
    let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    gio.cmd
        .env("DISPLAY", &display.name)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file);
    let status = gio.cmd.status().map_err(|e| format!("gio: {e}"))?;
    // What gio started, its orphan by now: antimony and zathura, whose
    // command lines name the PDF.
    let token = pdf.display().to_string();
    let launched = || with_token(&token, std::process::id());
    let shown = if status.success() {
        until_shown(
            &display.screen(),
            PAGE_RGB,
            150,
            Duration::from_secs(60),
            &mut || {
                launched()
                    .is_empty()
                    .then(|| "the launched zathura ended".to_string())
            },
        )
    } else {
        Err(format!("gio open: {status:?}"))
    };
    let outside: Vec<u32> = launched()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "zathura")
                && std::fs::read_link(format!("/proc/{pid}/ns/user"))
                    .ok()
                    .as_ref()
                    == Some(&host_userns)
        })
        .collect();
    let outside_shown = describe(&outside);
    // Ended as a window manager would close it: SIGTERM (antimony stops
    // its sandbox).
    for pid in launched() {
        // SAFETY: kill with integer arguments.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
    let ended = wait_until(Duration::from_secs(30), || launched().is_empty());
    let left = launched();
    kill_all(&left);
    ensure!(
        outside.is_empty(),
        "the integrated entry ran zathura outside the sandbox:{outside_shown}"
    );
    ensure!(
        ended,
        "what gio started outlived SIGTERM:{}",
        describe(&left)
    );
    shown.map_err(|e| {
        format!(
            "the PDF opened by gio never showed: {e}\n--- gio and antimony\n{}",
            log_text(&log)
        )
    })?;
    pass()
}
