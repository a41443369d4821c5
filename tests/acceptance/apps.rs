//! The shipped profiles with the real programs, desktop and shell
//! integration (issue 6): Firefox renders a page headless and under Xvfb,
//! Chromium with its own sandbox takes a screenshot, curl reaches the host's
//! loopback only with the host's network (not the isolated one); `integrate` writes entries that pass
//! `desktop-file-validate`, shadows D-Bus activation, refuses what is not
//! its own, and `--remove` leaves nothing behind; the completion scripts
//! complete profile names in bash, zsh and fish.
//!
//! Pages are a solid colour; screenshots are decoded with ImageMagick
//! (`convert … ppm:-`) and checked pixel by pixel. Every server, display
//! and browser a test starts is stopped by its id before the test ends.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.push(case(
        "apps::shipped_profiles_and_fragments_check",
        shipped_check,
    ));
    t.extend(both("apps::sh_bash_python3_run", shells_run));
    t.extend(both("apps::an_x11_display_is_warned_about", x11_warning));
    t.extend(both(
        "apps::curl_reaches_the_host_loopback_only_with_the_hosts_network",
        curl_network,
    ));
    t.extend(both("apps::fragments_compose", fragments_compose));
    t.extend(both(
        "apps::with_gpu_gives_the_dri_devices_usable",
        gpu_devices,
    ));
    t.extend(both(
        "apps::runtime_sockets_reach_the_sandbox_and_nothing_else",
        runtime_sockets,
    ));
    t.extend(both(
        "apps::firefox_headless_screenshot_shows_the_page",
        firefox_headless,
    ));
    t.extend(both(
        "apps::firefox_under_xvfb_shows_the_page_in_its_window",
        firefox_xvfb,
    ));
    t.extend(both(
        "apps::mpv_under_xvfb_draws_through_x11_shared_memory",
        mpv_x11_shm,
    ));
    t.extend(both(
        "apps::package_config_shows_the_programs_etc_folder",
        package_config,
    ));
    t.extend(both(
        "apps::chromium_headless_screenshot_shows_the_page",
        chromium_headless,
    ));
    t.extend(both(
        "apps::integrate_firefox_validates_and_remove_leaves_nothing",
        integrate_firefox,
    ));
    t.extend(both(
        "apps::integrate_symlink_runs_the_profile_with_its_arguments",
        integrate_symlink,
    ));
    t.extend(both(
        "apps::integrate_never_touches_files_it_did_not_write",
        integrate_foreign,
    ));
    t.extend(both(
        "apps::integrate_shadows_actions_and_dbus_activation",
        integrate_dbus,
    ));
    t.extend(files::tests());
    t.extend(both(
        "apps::integrate_from_a_build_folder_says_so_and_refresh_rewrites",
        integrate_refresh,
    ));
    t.extend(launch::tests());
    t.push(case("apps::completions_bash", completions_bash));
    t.push(case("apps::completions_zsh", completions_zsh));
    t.push(case("apps::completions_fish", completions_fish));
    t
}

/// Skips the test unless every program is installed.
macro_rules! need {
    ($($prog:expr),+) => {
        for p in [$($prog),+] {
            if which(p).is_none() {
                return skip(format!("`{p}` is not installed"));
            }
        }
    };
}

// After `need!`: the links and files tests use it.
pub(crate) mod files;
mod launch;

fn which(name: &str) -> Option<PathBuf> {
    ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// The colour of the test pages: not one a browser draws by itself.
const PAGE_RGB: [u8; 3] = [0x11, 0xaa, 0x55];

/// A page that is one solid colour, in the scratch's `page` folder.
fn write_page(s: &Scratch) -> PathBuf {
    s.write(
        "page/index.html",
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>antimony</title>\
         <style>html,body{margin:0;height:100%;background:#11aa55}</style></head>\
         <body></body></html>\n",
    );
    s.path("page/index.html")
}

/// How many of an image's pixels per thousand are the page's colour
/// (within a small tolerance), and its size, decoded by ImageMagick.
fn page_share(image: &Path) -> Result<(usize, usize, usize), String> {
    colour_share(image, PAGE_RGB)
}

/// How many of an image's pixels per thousand are `rgb` (within a small
/// tolerance), and its size, decoded by ImageMagick.
fn colour_share(image: &Path, rgb: [u8; 3]) -> Result<(usize, usize, usize), String> {
    let out = Command::new("convert")
        .arg(image)
        .args(["-strip", "-depth", "8", "ppm:-"])
        .output()
        .map_err(|e| format!("convert: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "convert {}: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let (w, h, pixels) = parse_ppm(&out.stdout)?;
    let matching = pixels
        .chunks_exact(3)
        .filter(|p| p.iter().zip(rgb).all(|(&a, b)| a.abs_diff(b) <= 6))
        .count();
    Ok((matching * 1000 / (w * h).max(1), w, h))
}

/// A binary PPM (P6, 8 bits): width, height, RGB bytes.
fn parse_ppm(data: &[u8]) -> Result<(usize, usize, &[u8]), String> {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while i < data.len() && data[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < data.len() && data[i] == b'#' {
            while i < data.len() && data[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while i < data.len() && !data[i].is_ascii_whitespace() {
            i += 1;
        }
        if start == i {
            return Err("truncated PPM header".into());
        }
        fields.push(String::from_utf8_lossy(&data[start..i]).into_owned());
    }
    i += 1; // the single whitespace after the maximum value
    let num = |s: &str| {
        s.parse::<usize>()
            .map_err(|_| format!("bad PPM field {s:?}"))
    };
    if fields[0] != "P6" || num(&fields[3])? != 255 {
        return Err(format!("not an 8-bit P6 PPM: {fields:?}"));
    }
    let (w, h) = (num(&fields[1])?, num(&fields[2])?);
    let pixels = data.get(i..i + w * h * 3).ok_or("truncated PPM data")?;
    Ok((w, h, pixels))
}

fn shipped_check() -> TestResult {
    let s = scratch!(Who::Root);
    let profiles = [
        "sh", "bash", "python3", "curl", "firefox", "chromium", "zathura",
    ];
    let fragments = [
        "with-display",
        "with-wayland",
        "with-x11",
        "with-audio",
        "with-gpu",
        "with-fonts",
        "with-themes",
        "with-locale",
        "with-network",
        "with-dbus",
    ];
    let out = s.antimony(["list"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    for f in fragments {
        ensure!(
            out.stdout
                .lines()
                .any(|l| l.split_whitespace().take(2).eq([f, "fragment"])),
            "{f} is not a shipped fragment:\n{}",
            out.show()
        );
        let run = s.antimony(["run", f]).run();
        ensure!(
            run.code() == Some(125) && run.stderr.contains("is a fragment"),
            "{}",
            run.show()
        );
    }
    for p in profiles {
        ensure!(
            out.stdout
                .lines()
                .any(|l| l.split_whitespace().take(2).eq([p, "profile"])),
            "{p} is not a shipped profile:\n{}",
            out.show()
        );
    }
    // Each builds a plan on this machine (its programs are installed).
    let check = s.antimony(["check"]).args(profiles).run();
    let ok: String = profiles.iter().map(|p| format!("{p}: ok\n")).collect();
    ensure!(
        check.code() == Some(0) && check.stdout == ok && check.stderr.is_empty(),
        "{}",
        check.show()
    );
    // The X11 fragment says that X11 cannot isolate input.
    let show = s.antimony(["show", "with-x11"]).run();
    ensure!(
        show.code() == Some(0) && show.stdout.contains("X11 cannot isolate input"),
        "{}",
        show.show()
    );
    pass()
}

fn shells_run(who: Who) -> TestResult {
    need!("bash", "python3");
    let s = scratch!(who);
    let out = s
        .antimony([
            "run",
            "bash",
            "--",
            "-c",
            "echo \"$BASH_VERSION\" \"$0\" \"$1\"",
            "x",
            "a b",
        ])
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stdout.ends_with(" x a b\n"), "{}", out.show());
    let out = s
        .antimony([
            "run",
            "python3",
            "--",
            "-c",
            "import os, sys, json, ssl; print(sys.argv[1], os.getuid())",
            "arg",
        ])
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stdout == format!("arg {}\n", s.uid), "{}", out.show());
    // No network in the python3 profile.
    let out = s
        .antimony([
            "run",
            "python3",
            "--",
            "-c",
            "import socket; socket.create_connection(('192.0.2.1', 9), 2)",
        ])
        .run();
    ensure!(
        out.code() == Some(1) && out.stderr.contains("OSError"),
        "python3 reached the network: {}",
        out.show()
    );
    pass()
}

/// A minimal HTTP server on the host's loopback, stopped on drop: it
/// answers every request with `body`, and keeps each request's first line.
struct HttpServer {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    fn start(body: &'static str) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let first = String::from_utf8_lossy(&req);
                if let Some(line) = first.lines().next().filter(|l| !l.is_empty()) {
                    seen.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(line.to_string());
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        HttpServer {
            port,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    /// The first lines of the requests received so far
    /// (`GET /path HTTP/1.1`).
    fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop up so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn curl_network(who: Who) -> TestResult {
    need!("curl");
    let s = scratch!(who);
    let server = HttpServer::start("served by the host\n");
    let url = format!("http://127.0.0.1:{}/hello", server.port);
    // The profile's network is isolated: the host's loopback is not the
    // sandbox's (network::isolated_reaches_the_internet_and_not_the_host
    // shows what it reaches).
    if installed("pasta") {
        let out = s
            .antimony(["run", "curl", "--", "-sS", "--max-time", "20", &url])
            .run();
        ensure!(
            out.code() == Some(7) && !out.stdout.contains("served"),
            "the isolated curl reached the host's loopback: {}",
            out.show()
        );
    }
    let out = s
        .antimony([
            "run",
            "curl",
            "--network=host",
            "--",
            "-sS",
            "--max-time",
            "20",
            &url,
        ])
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(out.stdout == "served by the host\n", "{}", out.show());
    // The profile's network on, the sandbox has the CA certificates.
    let out = s
        .antimony([
            "run",
            "curl",
            "--program",
            "/bin/sh",
            "--",
            "-c",
            "test -e /etc/ssl/certs && echo certs",
        ])
        .run();
    ensure!(out.stdout == "certs\n", "{}", out.show());
    // Without the network, the sandbox's loopback is its own: refused.
    let out = s
        .antimony([
            "run",
            "curl",
            "--no-network",
            "--",
            "-sS",
            "--max-time",
            "20",
            &url,
        ])
        .run();
    ensure!(
        out.code() == Some(7),
        "curl reached the host: {}",
        out.show()
    );
    ensure!(!out.stdout.contains("served"), "{}", out.show());
    drop(server);
    pass()
}

/// What `FRAGMENTS_PROBE` prints for each check, `KEY=VALUE` per line.
fn probe_values(out: &Output) -> std::collections::BTreeMap<String, String> {
    out.stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Fails with every key whose value is not the wanted one.
fn expect_values(what: &str, out: &Output, want: &[(&str, String)]) -> TestResult {
    let got = probe_values(out);
    let wrong: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .map(|(k, v)| format!("  {k}: wanted {v:?}, got {:?}", got.get(*k)))
        .collect();
    ensure!(
        wrong.is_empty(),
        "{what}:\n{}\n{}",
        wrong.join("\n"),
        out.show()
    );
    pass()
}

/// `cksum` of a host file, as the probe prints it inside.
fn host_cksum(path: &str) -> Result<String, Failed> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let out = Command::new("cksum")
        .stdin(file)
        .output()
        .map_err(|e| format!("cksum: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What each fragment brings, printed as `KEY=VALUE` lines: files by
/// content (or `absent`), host files by checksum, variables (or `unset`),
/// the runtime sockets by whether a connection gets through.
const FRAGMENTS_PROBE: &str = r#"
file() { if [ -f "$2" ]; then printf '%s=%s\n' "$1" "$(cat "$2")"; else echo "$1=absent"; fi; }
sum() { if [ -f "$2" ]; then echo "$1=$(cksum < "$2")"; else echo "$1=absent"; fi; }
there() { if [ -e "$2" ]; then echo "$1=present"; else echo "$1=absent"; fi; }
var() { eval "printf '%s=%s\n' $1 \"\${$1-unset}\""; }
sock() {
    if python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$2" 2>/dev/null
    then echo "$1=connected"; else echo "$1=absent"; fi
}
# with-display
var DISPLAY; file xauthority ~/.Xauthority
# with-audio
sock pipewire "$XDG_RUNTIME_DIR/pipewire-0"
sock pulse "$XDG_RUNTIME_DIR/pulse/native"
var PULSE_SERVER; file pulse_cookie ~/.config/pulse/cookie; there etc_pulse /etc/pulse/client.conf
# with-gpu
if [ -d /dev/dri ]; then echo "dri=$(ls /dev/dri | tr '\n' ' ')"; else echo dri=absent; fi
there sys_dev_char /sys/dev/char
# with-fonts (the system's fonts and /etc/fonts are in every sandbox)
if [ -d /var/cache/fontconfig ]; then echo "font_cache=$(ls /var/cache/fontconfig | wc -l)"; else echo font_cache=absent; fi
file user_font ~/.local/share/fonts/test-font.txt
file fontconfig ~/.config/fontconfig/fonts.conf
there system_font /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
there etc_fonts /etc/fonts/fonts.conf
# with-themes (the system's themes and icons are in every sandbox)
file user_theme ~/.themes/TestTheme/index.theme
file user_icons ~/.local/share/icons/TestIcons/index.theme
file gtk_settings ~/.config/gtk-3.0/settings.ini
if [ -f ~/.config/gtk-3.0/settings.ini ]; then
    if (: >> ~/.config/gtk-3.0/settings.ini) 2>/dev/null; then echo gtk_settings_writable=yes; else echo gtk_settings_writable=no; fi
fi
there system_icons /usr/share/icons/hicolor/index.theme
there system_theme /usr/share/icons/Adwaita/index.theme
var GTK_THEME; var XCURSOR_THEME; var XCURSOR_SIZE; var QT_QPA_PLATFORMTHEME
# with-locale (LANG, LANGUAGE, LC_* and TZ reach every sandbox)
var LANG; var LANGUAGE; var LC_TIME; var TZ
var GTK_IM_MODULE; var QT_IM_MODULE; var XMODIFIERS; var SDL_IM_MODULE
file user_dirs ~/.config/user-dirs.dirs
sum default_locale /etc/default/locale
sum locale_gen /etc/locale.gen
there c_utf8 /usr/lib/locale/C.utf8/LC_CTYPE
# with-network
var http_proxy; var NO_PROXY
sum resolv /etc/resolv.conf
echo "nameserver=$(grep -m1 '^nameserver' /etc/resolv.conf 2>/dev/null)"
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then echo ca_bundle=present; else echo ca_bundle=absent; fi
echo "netns=$(readlink /proc/self/ns/net)"
"#;

/// Every fragment together, against `minimal` alone: the sandbox still
/// runs, and each fragment brings what its comments say, which the bare
/// sandbox lacks (or, for what every sandbox has, has too). Stand-ins in
/// the scratch's home and runtime folder make the checks independent of
/// the host's desktop; what only the host has (/etc files no package of
/// scripts/test provides, /dev/dri) is compared with the host.
fn fragments_compose(who: Who) -> TestResult {
    use std::os::unix::net::UnixListener;
    need!("python3", "cksum");
    // /dev/dri as it is now (not while `gpu_devices` has its stand-in).
    let _dri = DRI.lock().unwrap_or_else(|e| e.into_inner());
    let s = scratch!(who);
    s.profile(
        "all-fragments",
        &Profile::inherits(&[
            "minimal",
            "with-display",
            "with-audio",
            "with-gpu",
            "with-fonts",
            "with-themes",
            "with-locale",
            "with-network",
        ])
        .path("/bin/sh"),
    );
    s.profile("no-fragments", &Profile::on("minimal").path("/bin/sh"));
    // The sound servers' sockets, in the scratch's runtime folder: a
    // connection that gets through waits in the listener's queue.
    s.mkdir("runtime/pulse");
    let listen = |rel: &str| -> Result<UnixListener, Failed> {
        let path = s.path(rel);
        let l = UnixListener::bind(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let _ = std::os::unix::fs::chown(&path, Some(s.uid), Some(s.gid));
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(l)
    };
    let pipewire = listen("runtime/pipewire-0")?;
    let pulse = listen("runtime/pulse/native")?;
    let reached = |l: &UnixListener| l.accept().is_ok();
    // The user's own files each fragment binds.
    s.write("home/.Xauthority", "cookie");
    s.write("home/.config/pulse/cookie", "pulse cookie");
    s.write("home/.local/share/fonts/test-font.txt", "my font");
    s.write("home/.config/fontconfig/fonts.conf", "<fontconfig/>");
    s.write("home/.themes/TestTheme/index.theme", "my theme");
    s.write("home/.local/share/icons/TestIcons/index.theme", "my icons");
    s.write(
        "home/.config/gtk-3.0/settings.ini",
        "gtk-theme-name=TestTheme",
    );
    s.write(
        "home/.config/user-dirs.dirs",
        "XDG_DOWNLOAD_DIR=\"$HOME/Téléchargements\"",
    );
    let uid = s.uid;
    let vars = [
        ("DISPLAY", ":42".to_string()),
        ("PULSE_SERVER", format!("unix:/run/user/{uid}/pulse/native")),
        ("GTK_THEME", "TestTheme".into()),
        ("XCURSOR_THEME", "TestIcons".into()),
        ("XCURSOR_SIZE", "32".into()),
        ("QT_QPA_PLATFORMTHEME", "gtk3".into()),
        ("LANG", "fr_FR.UTF-8".into()),
        ("LANGUAGE", "fr:en".into()),
        ("LC_TIME", "en_GB.UTF-8".into()),
        ("TZ", "Europe/Paris".into()),
        ("GTK_IM_MODULE", "ibus".into()),
        ("QT_IM_MODULE", "ibus".into()),
        ("XMODIFIERS", "@im=ibus".into()),
        ("SDL_IM_MODULE", "ibus".into()),
        ("http_proxy", "http://proxy.invalid:3128".into()),
        ("NO_PROXY", "localhost".into()),
    ];
    let run = |profile: &str| {
        let mut r = s.antimony(["run", profile, "--", "-c", FRAGMENTS_PROBE]);
        for (k, v) in &vars {
            r = r.env(k, v);
        }
        r.run()
    };
    let host_netns = std::fs::read_link("/proc/self/ns/net")
        .map_err(|e| e.to_string())?
        .display()
        .to_string();
    let var = |k: &str| vars.iter().find(|(n, _)| *n == k).unwrap().1.clone();
    // What only the host decides: compared with the host.
    let host_file = |p: &str| -> Result<String, Failed> {
        if Path::new(p).is_file() {
            host_cksum(p)
        } else {
            Ok("absent".into())
        }
    };
    let default_locale = host_file("/etc/default/locale")?;
    let locale_gen = host_file("/etc/locale.gen")?;
    // with-gpu: /dev/dri is an optional bind. On a host without it (most
    // CI machines) the run must still succeed and the sandbox has none; on
    // a host with it, the sandbox has the same devices.
    let dri = match std::fs::read_dir("/dev/dri") {
        Ok(rd) => {
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            eprintln!(
                "with-gpu: this host has /dev/dri ({names:?}): checked that the sandbox has it"
            );
            names.iter().map(|n| format!("{n} ")).collect::<String>()
        }
        Err(_) => {
            eprintln!(
                "with-gpu: this host has no /dev/dri: checked only that the optional bind is skipped and the run succeeds"
            );
            "absent".into()
        }
    };
    let sys_dev_char = if Path::new("/sys/dev/char").is_dir() {
        "present"
    } else {
        "absent"
    };
    let font_cache = std::fs::read_dir("/var/cache/fontconfig")
        .map_err(|e| format!("/var/cache/fontconfig (the fontconfig package makes it): {e}"))?
        .count()
        .to_string();
    let present = || "present".to_string();
    let absent = || "absent".to_string();
    let unset = || "unset".to_string();

    let out = run("all-fragments");
    ensure!(out.code() == Some(0), "{}", out.show());
    expect_values(
        "with every fragment",
        &out,
        &[
            // with-display
            ("DISPLAY", var("DISPLAY")),
            ("xauthority", "cookie".into()),
            // with-audio
            ("pipewire", "connected".into()),
            ("pulse", "connected".into()),
            ("PULSE_SERVER", var("PULSE_SERVER")),
            ("pulse_cookie", "pulse cookie".into()),
            ("etc_pulse", present()),
            // with-gpu
            ("dri", dri.clone()),
            ("sys_dev_char", sys_dev_char.into()),
            // with-fonts
            ("font_cache", font_cache),
            ("user_font", "my font".into()),
            ("fontconfig", "<fontconfig/>".into()),
            ("system_font", present()),
            ("etc_fonts", present()),
            // with-themes
            ("user_theme", "my theme".into()),
            ("user_icons", "my icons".into()),
            ("gtk_settings", "gtk-theme-name=TestTheme".into()),
            ("gtk_settings_writable", "no".into()),
            ("system_icons", present()),
            ("system_theme", present()),
            ("GTK_THEME", var("GTK_THEME")),
            ("XCURSOR_THEME", var("XCURSOR_THEME")),
            ("XCURSOR_SIZE", var("XCURSOR_SIZE")),
            ("QT_QPA_PLATFORMTHEME", var("QT_QPA_PLATFORMTHEME")),
            // with-locale
            ("LANG", var("LANG")),
            ("LANGUAGE", var("LANGUAGE")),
            ("LC_TIME", var("LC_TIME")),
            ("TZ", var("TZ")),
            ("GTK_IM_MODULE", var("GTK_IM_MODULE")),
            ("QT_IM_MODULE", var("QT_IM_MODULE")),
            ("XMODIFIERS", var("XMODIFIERS")),
            ("SDL_IM_MODULE", var("SDL_IM_MODULE")),
            (
                "user_dirs",
                "XDG_DOWNLOAD_DIR=\"$HOME/Téléchargements\"".into(),
            ),
            ("default_locale", default_locale),
            ("locale_gen", locale_gen),
            ("c_utf8", present()),
            // with-network
            ("http_proxy", var("http_proxy")),
            ("NO_PROXY", var("NO_PROXY")),
            // The isolated network: pasta's DNS address, a namespace of
            // its own (network.rs shows what it reaches).
            ("nameserver", "nameserver 169.254.1.1".into()),
            ("ca_bundle", present()),
        ],
    )?;
    ensure!(
        probe_values(&out).get("netns") != Some(&host_netns),
        "with-network shares the host's network namespace: {}",
        out.show()
    );
    ensure!(
        reached(&pipewire) && reached(&pulse),
        "the probe's connections did not reach the host's sound sockets"
    );

    // The control: minimal alone, the same host, the same variables.
    let out = run("no-fragments");
    ensure!(out.code() == Some(0), "{}", out.show());
    expect_values(
        "without the fragments",
        &out,
        &[
            ("DISPLAY", unset()),
            ("xauthority", absent()),
            ("pipewire", absent()),
            ("pulse", absent()),
            ("PULSE_SERVER", unset()),
            ("pulse_cookie", absent()),
            ("etc_pulse", absent()),
            ("dri", absent()),
            ("sys_dev_char", absent()),
            ("font_cache", absent()),
            ("user_font", absent()),
            ("fontconfig", absent()),
            ("system_font", present()),
            ("etc_fonts", present()),
            ("user_theme", absent()),
            ("user_icons", absent()),
            ("gtk_settings", absent()),
            ("system_icons", present()),
            ("system_theme", present()),
            ("GTK_THEME", unset()),
            ("XCURSOR_THEME", unset()),
            ("XCURSOR_SIZE", unset()),
            ("QT_QPA_PLATFORMTHEME", unset()),
            ("LANG", var("LANG")),
            ("LANGUAGE", var("LANGUAGE")),
            ("LC_TIME", var("LC_TIME")),
            ("TZ", var("TZ")),
            ("GTK_IM_MODULE", unset()),
            ("QT_IM_MODULE", unset()),
            ("XMODIFIERS", unset()),
            ("SDL_IM_MODULE", unset()),
            ("user_dirs", absent()),
            ("default_locale", absent()),
            ("locale_gen", absent()),
            ("c_utf8", present()),
            ("http_proxy", unset()),
            ("NO_PROXY", unset()),
            ("resolv", absent()),
            ("ca_bundle", absent()),
        ],
    )?;
    ensure!(
        probe_values(&out).get("netns") != Some(&host_netns),
        "the bare sandbox shares the host's network: {}",
        out.show()
    );
    ensure!(
        !reached(&pipewire) && !reached(&pulse),
        "a sandbox without with-audio reached the sound sockets"
    );
    pass()
}

fn firefox_headless(who: Who) -> TestResult {
    need!("convert");
    if which("firefox").is_none() && which("firefox-esr").is_none() {
        return skip("Firefox is not installed");
    }
    let s = scratch!(who);
    let page = write_page(&s);
    let out_dir = s.mkdir("out");
    let shot = out_dir.join("shot.png");
    let out = s
        .antimony(["run", "firefox", "--ro"])
        .arg(s.path("page"))
        .arg("--rw")
        .arg(&out_dir)
        .arg("--")
        .args(["--headless", "--screenshot"])
        .arg(&shot)
        .arg(format!("file://{}", page.display()))
        .timeout(Duration::from_secs(180))
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(shot.exists(), "no screenshot: {}", out.show());
    let (share, w, h) = page_share(&shot)?;
    ensure!(
        share > 900,
        "only {share}‰ of the {w}x{h} screenshot is the page's colour"
    );
    pass()
}

fn chromium_headless(who: Who) -> TestResult {
    need!("chromium", "convert");
    let s = scratch!(who);
    let page = write_page(&s);
    let out_dir = s.mkdir("out");
    let shot = out_dir.join("shot.png");
    let mut run = s
        .antimony(["run", "chromium", "--ro"])
        .arg(s.path("page"))
        .arg("--rw")
        .arg(&out_dir)
        .arg("--")
        .args([
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
        ]);
    // Chromium refuses to run as root with its sandbox on; as the user it
    // must start with its sandbox (nested user namespaces and chroot) or
    // not at all.
    if who == Who::Root {
        run = run.arg("--no-sandbox");
    }
    let out = run
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .timeout(Duration::from_secs(180))
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(shot.exists(), "no screenshot: {}", out.show());
    ensure!(!out.stderr.contains("No usable sandbox"), "{}", out.show());
    let (share, w, h) = page_share(&shot)?;
    ensure!(
        share > 900,
        "only {share}‰ of the {w}x{h} screenshot is the page's colour"
    );
    pass()
}

/// Xvfb on a free display, with an MIT-MAGIC-COOKIE in `xauthority`
/// (written as a FamilyWild entry, so any host name matches).
/// A screenshot of the whole screen of X display `display` into `shot`
/// (ImageMagick's `import`); whether it was taken.
pub(crate) fn screenshot(display: &str, xauthority: &Path, shot: &Path) -> bool {
    Command::new("import")
        .args(["-display", display, "-window", "root"])
        .arg(shot)
        .env("XAUTHORITY", xauthority)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success())
}

pub(crate) fn start_xvfb(xauthority: &Path, uid: u32, gid: u32) -> Result<(Started, u32), String> {
    let base = 90 + (std::process::id() % 200);
    start_xvfb_on((base..base + 100).chain(90..base), xauthority, uid, gid)
}

/// `start_xvfb` on the first free display of `numbers`.
fn start_xvfb_on(
    numbers: impl Iterator<Item = u32>,
    xauthority: &Path,
    uid: u32,
    gid: u32,
) -> Result<(Started, u32), String> {
    let cookie: Vec<u8> = {
        let mut c = vec![0u8; 16];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut c))
            .map_err(|e| format!("urandom: {e}"))?;
        c
    };
    for n in numbers {
        if Path::new(&format!("/tmp/.X{n}-lock")).exists()
            || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        {
            continue;
        }
        // One entry: family, address, display number, name, data, each
        // but the family prefixed with its length (big-endian).
        let number = n.to_string();
        let mut entry = 0xffffu16.to_be_bytes().to_vec(); // FamilyWild
        for part in [&b""[..], number.as_bytes(), b"MIT-MAGIC-COOKIE-1", &cookie] {
            entry.extend_from_slice(&(part.len() as u16).to_be_bytes());
            entry.extend_from_slice(part);
        }
        std::fs::write(xauthority, &entry).map_err(|e| format!("write Xauthority: {e}"))?;
        let _ = std::os::unix::fs::chown(xauthority, Some(uid), Some(gid));
        std::fs::set_permissions(xauthority, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        let child = Command::new("Xvfb")
            .arg(format!(":{n}"))
            // -noreset: an X server otherwise resets (and refuses
            // connections meanwhile) each time its last client leaves, as
            // the readiness probe below and every screenshot do.
            .args([
                "-noreset",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "1024x768x24",
                "-auth",
            ])
            .arg(xauthority)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("Xvfb: {e}"))?;
        let mut x = Started {
            child,
            what: "Xvfb",
        };
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        let up = wait_until(Duration::from_secs(20), || {
            listening(&socket) || matches!(x.child.try_wait(), Ok(Some(_)))
        });
        if up && listening(&socket) && matches!(x.child.try_wait(), Ok(None)) {
            return Ok((x, n));
        }
        x.stop();
    }
    Err("no free X display".into())
}

/// The X servers the tests start: a test that starts one alone (it may
/// make /tmp/.X11-unix and remove it again) holds it for writing; the
/// launch tests (apps/launch.rs), each on a display of its own, hold it for
/// reading, several at once.
pub(crate) static X_SERVER: RwLock<()> = RwLock::new(());

/// /dev/dri is the host's: one test at a time looks at it or stands in
/// for it.
static DRI: Mutex<()> = Mutex::new(());

/// A stand-in /dev/dri (a host without a GPU, as CI's), removed on drop:
/// `card0`, a character device with /dev/null's numbers, mode 0666.
struct DriStandIn;

impl DriStandIn {
    fn make() -> Result<DriStandIn, String> {
        std::fs::create_dir("/dev/dri").map_err(|e| format!("mkdir /dev/dri: {e}"))?;
        let stand_in = DriStandIn;
        // SAFETY: mknod with a NUL-terminated path and integers.
        let r = unsafe {
            libc::mknod(
                c"/dev/dri/card0".as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(1, 3),
            )
        };
        if r != 0 {
            return Err(format!(
                "mknod /dev/dri/card0: {}",
                std::io::Error::last_os_error()
            ));
        }
        std::fs::set_permissions("/dev/dri/card0", std::fs::Permissions::from_mode(0o666))
            .map_err(|e| format!("chmod /dev/dri/card0: {e}"))?;
        Ok(stand_in)
    }
}

impl Drop for DriStandIn {
    fn drop(&mut self) {
        let _ = std::fs::remove_file("/dev/dri/card0");
        let _ = std::fs::remove_dir("/dev/dri");
    }
}

/// with-gpu gives the sandbox the host's DRM devices, usable (bound with
/// device access: opened and read), where `minimal` alone has none. On a
/// host without a GPU the test stands one in (root only: mknod).
fn gpu_devices(who: Who) -> TestResult {
    let _one = DRI.lock().unwrap_or_else(|e| e.into_inner());
    let _stand_in = if Path::new("/dev/dri").exists() {
        None
    } else if world().is_root {
        Some(DriStandIn::make()?)
    } else {
        return skip("this host has no /dev/dri, and a stand-in needs root (mknod)");
    };
    let s = scratch!(who);
    let device = std::fs::read_dir("/dev/dri")
        .map_err(|e| format!("/dev/dri: {e}"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device())
        })
        .ok_or("/dev/dri holds no character device")?;
    let d = device.display();
    s.profile(
        "gpu",
        &Profile::inherits(&["minimal", "with-gpu"]).path("/bin/sh"),
    );
    s.profile("no-gpu", &Profile::on("minimal").path("/bin/sh"));
    let script = format!("test -c {d} && head -c 1 {d} > /dev/null && echo usable");
    let out = s.antimony(["run", "gpu", "--", "-c", &script]).run();
    ensure!(
        out.code() == Some(0) && out.stdout == "usable\n",
        "with-gpu: {}",
        out.show()
    );
    let out = s
        .antimony([
            "run",
            "no-gpu",
            "--",
            "-c",
            &format!("test -e {d} || echo none"),
        ])
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout == "none\n",
        "minimal alone: {}",
        out.show()
    );
    pass()
}

fn firefox_xvfb(who: Who) -> TestResult {
    need!("Xvfb", "import", "convert");
    if which("firefox").is_none() && which("firefox-esr").is_none() {
        return skip("Firefox is not installed");
    }
    let s = scratch!(who);
    let page = write_page(&s);
    // One X server at a time: Xvfb makes /tmp/.X11-unix when it is missing
    // and leaves it; the test removes it again if it made it.
    let _one = X_SERVER.write().unwrap_or_else(|e| e.into_inner());
    let socket_dir = Path::new("/tmp/.X11-unix");
    let had_socket_dir = socket_dir.exists();
    let xauthority = s.path("home/.Xauthority");
    let (mut xvfb, display) = start_xvfb(&xauthority, s.uid, s.gid)?;
    let display = format!(":{display}");
    let log = s.path("firefox.log");
    // Firefox with the shipped profile: the display comes from the
    // with-x11 fragment (the socket folder, ~/.Xauthority, DISPLAY).
    let mut run = s
        .antimony(["run", "firefox", "--ro"])
        .arg(s.path("page"))
        .arg("--")
        .arg("--kiosk")
        .arg(format!("file://{}", page.display()))
        .env("DISPLAY", &display);
    run.cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?);
    let mut firefox = Started {
        child: run
            .cmd
            .spawn()
            .map_err(|e| format!("spawn antimony: {e}"))?,
        what: "antimony run firefox",
    };
    // Screenshots of the whole screen until the page shows. Without a
    // window manager the window keeps its own size: a good part of the
    // screen, not all of it.
    let shown = until_shown(
        &Screen {
            display: &display,
            xauthority: &xauthority,
            shot: &s.path("screen.png"),
        },
        PAGE_RGB,
        300,
        Duration::from_secs(120),
        &mut || exited(&mut firefox),
    );
    firefox.stop();
    xvfb.stop();
    if !had_socket_dir {
        let _ = std::fs::remove_dir(socket_dir);
    }
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    if let Err(last) = shown {
        return Err(format!(
            "the page never showed under Xvfb: {last}\n--- firefox log\n{log_text}"
        )
        .into());
    }
    pass()
}

/// An X display the test started, and where its screenshots go.
struct Screen<'a> {
    display: &'a str,
    xauthority: &'a Path,
    shot: &'a Path,
}

/// Screenshots of the whole screen (ImageMagick's `import`) until more
/// than `share`‰ of it is `rgb`; gives up after `limit`, or as soon as
/// `gone` says why (the program ended). The error says what the last
/// screenshot showed.
fn until_shown(
    screen: &Screen,
    rgb: [u8; 3],
    share: usize,
    limit: Duration,
    gone: &mut dyn FnMut() -> Option<String>,
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no screenshot taken");
    while Instant::now() < deadline {
        if let Some(why) = gone() {
            return Err(why);
        }
        std::thread::sleep(Duration::from_millis(500));
        let ok = screenshot(screen.display, screen.xauthority, screen.shot);
        if !ok {
            last = "import failed".into();
            continue;
        }
        match colour_share(screen.shot, rgb) {
            Ok((got, ..)) if got > share => return Ok(()),
            Ok((got, w, h)) => {
                let [r, g, b] = rgb;
                last = format!("{got}‰ of the {w}x{h} screen is #{r:02x}{g:02x}{b:02x}")
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Why a started program is no longer there to show anything, if it is not.
fn exited(program: &mut Started) -> Option<String> {
    match program.child.try_wait() {
        Ok(Some(status)) => Some(format!("{} exited early: {status:?}", program.what)),
        _ => None,
    }
}

/// mpv's X11 output (`--vo=x11`) draws through MIT-SHM: System V shared
/// memory it makes and the X server attaches by id. Under a profile that
/// inherits with-x11 (the host's IPC namespace) it shows a generated
/// image, and the segment it shares with the X server is seen from the
/// host (its uid's, the image's size, attached twice). The same profile
/// with `share = []` (a private IPC namespace) shows nothing, and mpv
/// says why: the X server finds no such segment (BadShmSeg).
fn mpv_x11_shm(who: Who) -> TestResult {
    need!("Xvfb", "import", "convert", "mpv");
    let s = scratch!(who);
    let (w, h) = (640, 480);
    s.mkdir("media");
    let image = s.path("media/green.png");
    let made = Command::new("convert")
        .args(["-size", &format!("{w}x{h}"), "xc:#11aa55"])
        .arg(&image)
        .status()
        .map_err(|e| format!("convert: {e}"))?;
    ensure!(made.success(), "convert could not make the image");
    let media = s.path("media").display().to_string();
    let base = Profile::inherits(&["minimal", "with-x11"])
        .path("/usr/bin/mpv")
        .ro(&[&media]);
    s.profile("mpv-shm", &base);
    s.profile(
        "mpv-private-ipc",
        &base.set("sandbox", "share", toml_list::<&str>(&[])),
    );
    let _one = X_SERVER.write().unwrap_or_else(|e| e.into_inner());
    let socket_dir = Path::new("/tmp/.X11-unix");
    let had_socket_dir = socket_dir.exists();
    let xauthority = s.path("home/.Xauthority");
    // mpv takes a display numbered 10 or more for a remote one (as ssh
    // forwards them) and never uses shared memory there.
    let (mut xvfb, display) = start_xvfb_on(1..10, &xauthority, s.uid, s.gid)?;
    let display = format!(":{display}");
    let screen_share = || -> Result<(usize, usize, usize), String> {
        let shot = s.path("screen.png");
        let ok = screenshot(&display, &xauthority, &shot);
        if !ok {
            return Err("import failed".into());
        }
        page_share(&shot)
    };
    // The image covers 390‰ of the 1024x768 screen (no window manager:
    // the window keeps the image's size).
    let result = (|| -> TestResult {
        for (profile, shared) in [("mpv-shm", true), ("mpv-private-ipc", false)] {
            let log = s.path(&format!("{profile}.log"));
            let mut run = s
                .antimony(["run", profile, "--"])
                .args([
                    "--vo=x11",
                    "--no-config",
                    "--no-audio",
                    "--msg-level=vo=v",
                    "--image-display-duration=inf",
                ])
                .arg(&image)
                .env("DISPLAY", &display);
            // mpv writes its messages to stdout, its status line to stderr.
            let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
            let copy = file.try_clone().map_err(|e| e.to_string())?;
            run.cmd.stdin(Stdio::null()).stdout(file).stderr(copy);
            let mut mpv = Started {
                child: run.cmd.spawn().map_err(|e| format!("antimony: {e}"))?,
                what: "antimony run mpv",
            };
            let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
            let mut last = String::from("no screenshot taken");
            let mut segment = false;
            let mut shown = false;
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = mpv.child.try_wait() {
                    last = format!("antimony exited early: {status:?}");
                    break;
                }
                std::thread::sleep(Duration::from_millis(300));
                segment |= shared_with_the_x_server(s.uid, w * h * 4);
                if shared && log_text().contains("X11 error") {
                    last = "mpv reports an X11 error".into();
                    break;
                }
                if !shared && log_text().contains("BadShmSeg") {
                    // It has put its image: give the server a moment.
                    std::thread::sleep(Duration::from_secs(1));
                    last = match screen_share() {
                        Ok((share, ..)) => format!("{share}‰ of the screen is the image"),
                        Err(e) => e,
                    };
                    shown = screen_share().is_ok_and(|(share, ..)| share > 300);
                    break;
                }
                match screen_share() {
                    Ok((share, ..)) if share > 300 && segment => {
                        shown = true;
                        break;
                    }
                    Ok((share, w, h)) => {
                        last = format!("{share}‰ of the {w}x{h} screen is the image")
                    }
                    Err(e) => last = e,
                }
            }
            if !shared {
                // Stuck waiting for the server's completion events, mpv
                // does not quit on SIGTERM: the sandbox dies with antimony.
                let _ = mpv.child.kill();
            }
            mpv.stop();
            let text = log_text();
            if shared {
                ensure!(
                    shown && segment,
                    "{profile}: the image did not show through shared memory (segment seen: {segment}): {last}\n--- mpv\n{text}"
                );
                ensure!(
                    !text.contains("Not using SHM")
                        && !text.contains("Shared memory")
                        && !text.contains("X11 error"),
                    "{profile}: mpv did not use MIT-SHM:\n{text}"
                );
            } else {
                ensure!(
                    text.contains("BadShmSeg") && !shown && !segment,
                    "{profile}: mpv should have failed to share its image ({last}; segment seen: {segment}):\n{text}"
                );
            }
        }
        pass()
    })();
    xvfb.stop();
    if !had_socket_dir {
        let _ = std::fs::remove_dir(socket_dir);
    }
    result
}

/// `[files] package_config = true` binds the /etc folder of the Debian
/// package that ships the program, read-only: mpv reads its
/// `/etc/mpv/encoding-profiles.conf` with the key and cannot without it;
/// `--dry-run` says what it binds and from which package.
fn package_config(who: Who) -> TestResult {
    need!("mpv");
    let owned = Command::new("dpkg-query")
        .args(["-S", "/etc/mpv/encoding-profiles.conf"])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"mpv:"));
    if !owned {
        return skip("/etc/mpv/encoding-profiles.conf is not mpv's (apt-get install mpv)");
    }
    let s = scratch!(who);
    let base = Profile::on("minimal").path("/usr/bin/mpv");
    s.profile(
        "mpv-etc",
        &base.clone().set("files", "package_config", true),
    );
    s.profile("mpv-no-etc", &base);
    let read = "Reading config file /etc/mpv/encoding-profiles.conf";
    let out = s.antimony(["run", "mpv-etc", "--", "-v"]).run();
    ensure!(
        out.stdout.contains(read),
        "with package_config: {}",
        out.show()
    );
    let out = s.antimony(["run", "mpv-no-etc", "--", "-v"]).run();
    ensure!(
        out.stdout.contains("[cplayer]") && !out.stdout.contains(read),
        "without package_config: {}",
        out.show()
    );
    let dry = s.antimony(["run", "mpv-etc", "--dry-run"]).run();
    ensure!(
        dry.code() == Some(0)
            && dry.stdout.contains("  ro      /etc/mpv ← /etc/mpv\n")
            && dry
                .stdout
                .contains("package_config (from the package(s) mpv): /etc/mpv, read-only"),
        "{}",
        dry.show()
    );
    // Found through dpkg alone: no /etc/chromium.d is named after the
    // program or the profile, but its package ships one.
    if which("chromium").is_some() {
        s.profile(
            "web",
            &Profile::on("minimal")
                .path("/usr/bin/chromium")
                .set("files", "package_config", true),
        );
        let dry = s.antimony(["run", "web", "--dry-run"]).run();
        ensure!(
            dry.code() == Some(0)
                && dry
                    .stdout
                    .contains("  ro      /etc/chromium.d ← /etc/chromium.d\n")
                && dry.stdout.contains("(from the package(s) chromium)"),
            "{}",
            dry.show()
        );
    }
    let dry = s.antimony(["run", "mpv-no-etc", "--dry-run"]).run();
    ensure!(
        dry.code() == Some(0)
            && !dry.stdout.contains("/etc/mpv")
            && !dry.stdout.contains("package_config"),
        "{}",
        dry.show()
    );
    pass()
}

/// A System V shared memory segment of the host's IPC namespace, of this
/// uid and size, attached twice (the client and the X server).
fn shared_with_the_x_server(uid: u32, size: usize) -> bool {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    // key shmid perms size cpid lpid nattch uid …
    table.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() > 7
            && f[3] == size.to_string()
            && f[6].parse::<u32>().is_ok_and(|n| n >= 2)
            && f[7] == uid.to_string()
    })
}

/// Every path under a folder (files, folders, symlinks), relative.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn validate(path: &Path) -> TestResult {
    let out = Command::new("desktop-file-validate")
        .arg(path)
        .output()
        .map_err(|e| format!("desktop-file-validate: {e}"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success() && !text.contains("error"),
        "{} does not validate:\n{text}\n--- the file\n{}",
        path.display(),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    pass()
}

fn integrate_firefox(who: Who) -> TestResult {
    need!("desktop-file-validate");
    let system = Path::new("/usr/share/applications/firefox-esr.desktop");
    if !system.exists() {
        return skip("Debian's firefox-esr.desktop is not installed");
    }
    let s = scratch!(who);
    let before = tree(&s.home());
    let out = s.antimony(["integrate", "firefox"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let entry = s.path("home/.local/share/applications/firefox-esr.desktop");
    ensure!(entry.exists(), "{}", out.show());
    validate(&entry)?;
    let text = std::fs::read_to_string(&entry).unwrap();
    let antimony = world().antimony.display().to_string();
    let execs: Vec<&str> = text.lines().filter(|l| l.starts_with("Exec=")).collect();
    ensure!(!execs.is_empty(), "{text}");
    for e in &execs {
        ensure!(
            e.starts_with(&format!("Exec={antimony} run firefox")),
            "an Exec that does not go through antimony: {e}\n{text}"
        );
    }
    ensure!(
        execs[0] == format!("Exec={antimony} run firefox -- %u"),
        "the field code is not kept: {}",
        execs[0]
    );
    ensure!(text.contains("\nDBusActivatable=false\n"), "{text}");
    ensure!(text.contains("\nX-Antimony-Profile=firefox\n"), "{text}");
    // TryExec: one naming antimony if the system's entry has one, else
    // none (Debian's has none; integrate_dbus checks the rewrite of one).
    let system_text = std::fs::read_to_string(system).unwrap();
    let try_exec = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("TryExec="))
            .map(str::to_string)
            .collect()
    };
    let want: Vec<String> = if try_exec(&system_text).is_empty() {
        Vec::new()
    } else {
        vec![format!("TryExec={antimony}")]
    };
    ensure!(try_exec(&text) == want, "{text}");
    // Same name, so the menu shows one Firefox.
    let name = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("Name="))
            .map(str::to_string)
    };
    ensure!(name(&text) == name(&system_text), "{text}");
    let link = s.path("home/.local/bin/firefox");
    ensure!(
        std::fs::read_link(&link).ok() == Some(world().antimony.clone()),
        "{}",
        out.show()
    );
    // Integrating again is fine (the files are its own).
    let again = s.antimony(["integrate", "firefox"]).run();
    ensure!(again.code() == Some(0), "{}", again.show());
    // Chromium's entry too (%U kept), alongside.
    if Path::new("/usr/share/applications/chromium.desktop").exists() {
        let out = s.antimony(["integrate", "chromium"]).run();
        ensure!(out.code() == Some(0), "{}", out.show());
        let entry = s.path("home/.local/share/applications/chromium.desktop");
        validate(&entry)?;
        let text = std::fs::read_to_string(&entry).unwrap();
        ensure!(
            text.contains(&format!("\nExec={antimony} run chromium -- %U\n")),
            "{text}"
        );
        let out = s.antimony(["integrate", "--remove", "chromium"]).run();
        ensure!(out.code() == Some(0), "{}", out.show());
    }

    let out = s.antimony(["integrate", "--remove", "firefox"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let after = tree(&s.home());
    ensure!(
        before == after,
        "left behind: {:?}; removed: {:?}",
        after.difference(&before).collect::<Vec<_>>(),
        before.difference(&after).collect::<Vec<_>>()
    );
    pass()
}

fn integrate_symlink(who: Who) -> TestResult {
    let s = scratch!(who);
    // sh is a command scripts run: refused unless forced, nothing written.
    let out = s.antimony(["integrate", "sh"]).run();
    ensure!(
        out.code() == Some(125)
            && out.stderr.contains("a command of the system's")
            && out.stderr.contains("--force"),
        "integrate sh was not refused: {}",
        out.show()
    );
    ensure!(
        std::fs::symlink_metadata(s.path("home/.local/bin/sh")).is_err()
            && !s.path("home/.local/share/applications").exists(),
        "a refused integrate wrote files"
    );
    let out = s.antimony(["integrate", "--force", "sh"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    // sh is a command of the system's: the user is told what the link
    // takes over.
    ensure!(
        out.stderr.contains("now stands for") && out.stderr.contains("#!/usr/bin/env sh"),
        "no warning that ~/.local/bin/sh takes over `sh`: {}",
        out.show()
    );
    let link = s.path("home/.local/bin/sh");
    let host_userns = std::fs::read_link("/proc/self/ns/user").map_err(|e| e.to_string())?;
    let out = s
        .command(&link)
        .args([
            "-c",
            "printf '%s|' \"$@\"; echo; readlink /proc/self/ns/user",
            "zero",
            "a b",
            "--rw",
            "$(id)",
        ])
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let lines: Vec<&str> = out.stdout.lines().collect();
    ensure!(lines.len() == 2, "{}", out.show());
    ensure!(lines[0] == "a b|--rw|$(id)|", "{}", out.show());
    ensure!(
        Path::new(lines[1]) != host_userns && lines[1].starts_with("user:["),
        "the symlink ran the program outside the sandbox: {}",
        out.show()
    );
    // The entry the system has none for is a minimal valid one.
    let entry = s.path("home/.local/share/applications/antimony-sh.desktop");
    ensure!(entry.exists(), "no desktop entry for sh");
    if which("desktop-file-validate").is_some() {
        validate(&entry)?;
    }
    let out = s.antimony(["integrate", "--remove", "sh"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        std::fs::symlink_metadata(&link).is_err() && !entry.exists(),
        "{}",
        out.show()
    );
    pass()
}

/// Entries written by an antimony in a cargo build folder name it and say
/// so; `integrate --refresh`, run by another antimony (the installed one),
/// writes every integration again with its own path.
fn integrate_refresh(who: Who) -> TestResult {
    let s = scratch!(who);
    // A build folder: cargo's lock file beside the binary.
    let build = s.mkdir("checkout/target/release");
    let built = build.join("antimony");
    std::fs::copy(&world().antimony, &built).map_err(|e| e.to_string())?;
    s.write("checkout/target/release/.cargo-lock", "");
    let out = s.command(&built).args(["integrate", "--force", "sh"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        out.stderr.contains("antimony runs from its build folder")
            && out.stderr.contains("antimony integrate --refresh"),
        "no warning about the build folder: {}",
        out.show()
    );
    let entry = s.path("home/.local/share/applications/antimony-sh.desktop");
    let link = s.path("home/.local/bin/sh");
    let text = std::fs::read_to_string(&entry).map_err(|e| e.to_string())?;
    ensure!(
        text.contains("# Written by antimony from its build folder")
            && text.contains(&format!("Exec={} run sh", built.display())),
        "{text}"
    );
    ensure!(
        std::fs::read_link(&link).ok() == Some(built.clone()),
        "link"
    );

    let out = s.antimony(["integrate", "--refresh"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let text = std::fs::read_to_string(&entry).map_err(|e| e.to_string())?;
    ensure!(
        !text.contains("build folder")
            && text.contains(&format!("Exec={} run sh", world().antimony.display())),
        "refresh did not rewrite the entry: {text}"
    );
    ensure!(
        std::fs::read_link(&link).ok().as_deref() == Some(world().antimony.as_path()),
        "refresh did not relink {}",
        link.display()
    );
    // Nothing integrated: said, and nothing written.
    let out = s.antimony(["integrate", "--remove", "sh"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let out = s.antimony(["integrate", "--refresh"]).run();
    ensure!(
        out.code() == Some(0) && out.stdout.contains("nothing to refresh"),
        "{}",
        out.show()
    );
    ensure!(!entry.exists(), "refresh wrote an entry nobody integrated");
    pass()
}

fn integrate_foreign(who: Who) -> TestResult {
    if !Path::new("/usr/share/applications/firefox-esr.desktop").exists() {
        return skip("Debian's firefox-esr.desktop is not installed");
    }
    let s = scratch!(who);
    // The user's own entry with the same id, and a symlink of their own.
    let own = "[Desktop Entry]\nType=Application\nName=My Firefox\nExec=/usr/bin/firefox-esr %u\n";
    let entry = s.write("home/.local/share/applications/firefox-esr.desktop", own);
    let out = s.antimony(["integrate", "firefox"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    ensure!(
        out.stderr.starts_with("antimony: error: ") && out.stderr.lines().count() == 1,
        "{}",
        out.show()
    );
    ensure!(
        std::fs::read_to_string(&entry).unwrap() == own,
        "the user's entry was changed"
    );
    ensure!(
        std::fs::symlink_metadata(s.path("home/.local/bin/firefox")).is_err(),
        "a symlink was written although integrate failed"
    );
    std::fs::remove_file(&entry).unwrap();

    s.mkdir("home/.local/bin");
    let link = s.path("home/.local/bin/firefox");
    std::os::unix::fs::symlink("/usr/bin/firefox-esr", &link).unwrap();
    let out = s.antimony(["integrate", "firefox"]).run();
    ensure!(out.code() == Some(125), "{}", out.show());
    ensure!(
        std::fs::read_link(&link).unwrap() == Path::new("/usr/bin/firefox-esr"),
        "the user's symlink was changed"
    );
    ensure!(
        !entry.exists(),
        "an entry was written although integrate failed"
    );

    // --remove takes nothing that is not its own: the user's symlink and an
    // entry without antimony's mark stay.
    s.write("home/.local/share/applications/firefox-esr.desktop", own);
    s.write(
        "home/.local/share/applications/other.desktop",
        "[Desktop Entry]\nType=Application\nName=Other\nExec=/usr/bin/true\nX-Antimony-Profile=chromium\n",
    );
    let before = tree(&s.home());
    let out = s.antimony(["integrate", "--remove", "firefox"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        tree(&s.home()) == before,
        "--remove touched files: {}",
        out.show()
    );
    ensure!(
        std::fs::read_to_string(&entry).unwrap() == own,
        "the user's entry was changed"
    );

    // A link of the user's to some other program that happens to be
    // called `antimony`: not integrate's (no record names it), so neither
    // replaced nor removed.
    std::fs::remove_file(&entry).unwrap();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("/opt/elsewhere/antimony", &link).unwrap();
    let out = s.antimony(["integrate", "firefox"]).run();
    ensure!(
        out.code() == Some(125) && out.stderr.contains(".local/bin/firefox"),
        "{}",
        out.show()
    );
    ensure!(
        !entry.exists(),
        "an entry was written although integrate failed"
    );
    let out = s.antimony(["integrate", "--remove", "firefox"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        std::fs::read_link(&link).ok().as_deref() == Some(Path::new("/opt/elsewhere/antimony")),
        "--remove took the user's link to another antimony: {}",
        out.show()
    );
    pass()
}

/// A fake application in a system data folder: its entry (D-Bus
/// activatable, with an action, an `env` wrapper and quoted arguments) and
/// its D-Bus service. Activation by a real dbus-daemon goes through
/// antimony once integrated: the started program is in a user namespace
/// of its own; without the integration it is not.
fn integrate_dbus(who: Who) -> TestResult {
    need!("desktop-file-validate", "dbus-daemon", "dbus-send");
    let s = scratch!(who);
    let out_dir = s.mkdir("out");
    let sys = s.path("sys");
    s.write(
        "sys/applications/org.example.Probe.desktop",
        "[Desktop Entry]\nVersion=1.1\nType=Application\nName=Probe\nName[fr]=Sonde\n\
         Exec=env PROBE=1 /bin/sh -l %F\nTryExec=/bin/sh\nDBusActivatable=true\n\
         Actions=other;\nMimeType=text/plain;\n\n[Desktop Action other]\nName=Other\n\
         Exec=/bin/true \"two words\" \"back\\\\\\\\slash\" %U\n",
    );
    let marker = out_dir.join("userns");
    s.write(
        "sys/dbus-1/services/org.example.Probe.service",
        &format!(
            "[D-BUS Service]\nName=org.example.Probe\nExec=/bin/sh -c 'readlink /proc/self/ns/user > \"$0\"' {}\n",
            marker.display()
        ),
    );
    s.profile(
        "probe",
        &Profile::on("minimal")
            .path("/bin/sh")
            .key("id", toml_str("org.example.Probe"))
            .rw(&[out_dir.display().to_string()]),
    );
    let host_userns = std::fs::read_link("/proc/self/ns/user").map_err(|e| e.to_string())?;

    // Not integrated: activation runs the program on the host.
    let ns = activate(&s, &sys, &marker)?;
    ensure!(
        Path::new(&ns) == host_userns,
        "control: activation without integration ran in {ns}, not the host's {}",
        host_userns.display()
    );

    let out = s
        .antimony(["integrate", "probe"])
        .env("XDG_DATA_DIRS", &sys)
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let entry = s.path("home/.local/share/applications/org.example.Probe.desktop");
    validate(&entry)?;
    let text = std::fs::read_to_string(&entry).unwrap();
    let a = world().antimony.display().to_string();
    ensure!(
        text.contains(&format!("\nExec={a} run probe --env=PROBE=1 -- -l %F\n")),
        "{text}"
    );
    ensure!(
        text.contains(&format!(
            "\nExec={a} run probe --program=/bin/true -- \"two words\" \"back\\\\\\\\slash\" %U\n"
        )),
        "{text}"
    );
    ensure!(text.contains("\nDBusActivatable=false\n"), "{text}");
    // The system's entry says `TryExec=/bin/sh`. The shadow's one TryExec
    // names antimony: a desktop that tests TryExec before it shows or
    // starts the entry tests antimony, and no key the desktop reads names
    // the program, so nothing in the entry starts it outside the sandbox.
    let try_exec: Vec<&str> = text.lines().filter(|l| l.starts_with("TryExec=")).collect();
    ensure!(
        try_exec == [format!("TryExec={a}")],
        "TryExec does not name antimony: {try_exec:?}\n{text}"
    );
    ensure!(
        !text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .any(|l| l.contains("/bin/sh")),
        "the entry still names the program:\n{text}"
    );
    ensure!(text.contains("\nName[fr]=Sonde\n"), "{text}");
    let service = s.path("home/.local/share/dbus-1/services/org.example.Probe.service");
    let stext = std::fs::read_to_string(&service).map_err(|e| format!("{e}: {}", out.show()))?;
    ensure!(
        stext.contains(&format!("\nExec={a} run probe -- -c "))
            && !stext.contains("SystemdService"),
        "{stext}"
    );

    // Integrated: the bus starts it through antimony, in the sandbox.
    std::fs::remove_file(&marker).map_err(|e| e.to_string())?;
    let ns = activate(&s, &sys, &marker)?;
    ensure!(
        Path::new(&ns) != host_userns && ns.starts_with("user:["),
        "D-Bus activation bypassed the sandbox: ran in {ns}"
    );

    let out = s
        .antimony(["integrate", "--remove", "probe"])
        .env("XDG_DATA_DIRS", &sys)
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(!entry.exists() && !service.exists(), "{}", out.show());
    pass()
}

/// Starts a session bus that sees `sys` as a system data folder, asks it
/// for org.example.Probe, and returns what the started program wrote.
fn activate(s: &Scratch, sys: &Path, marker: &Path) -> Result<String, Failed> {
    let bus = s.path("bus");
    let _ = std::fs::remove_file(&bus);
    let daemon_log = s.path("dbus-daemon.log");
    let send_log = s.path("dbus-send.log");
    let log = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut daemon = s
        .command("dbus-daemon")
        .args(["--session", "--nofork", "--nopidfile"])
        .arg(format!("--address=unix:path={}", bus.display()))
        .env("XDG_DATA_DIRS", sys);
    daemon
        .cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log(&daemon_log)?);
    let mut daemon = Started {
        child: daemon
            .cmd
            .spawn()
            .map_err(|e| format!("dbus-daemon: {e}"))?,
        what: "dbus-daemon",
    };
    if !wait_until(Duration::from_secs(30), || listening(&bus)) {
        return Err("the session bus did not start".into());
    }
    let mut send = s
        .command("dbus-send")
        .arg(format!("--bus=unix:path={}", bus.display()))
        .args([
            "--print-reply",
            "--reply-timeout=90000",
            "--dest=org.example.Probe",
            "/",
            "org.freedesktop.DBus.Peer.Ping",
        ]);
    send.cmd
        .stdin(Stdio::null())
        .stdout(log(&send_log)?)
        .stderr(log(&send_log.with_extension("err"))?);
    let mut send = Started {
        child: send.cmd.spawn().map_err(|e| format!("dbus-send: {e}"))?,
        what: "dbus-send",
    };
    let written = wait_until(Duration::from_secs(90), || {
        std::fs::read_to_string(marker).is_ok_and(|t| t.ends_with('\n'))
    });
    send.stop();
    daemon.stop();
    if !written {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        return Err(format!(
            "the activated program wrote nothing\n--- dbus-send\n{}{}\n--- dbus-daemon\n{}",
            read(&send_log),
            read(&send_log.with_extension("err")),
            read(&daemon_log)
        )
        .into());
    }
    Ok(std::fs::read_to_string(marker)
        .unwrap_or_default()
        .trim()
        .to_string())
}

/// A profile of the user's own (`my-own`, to be completed among the
/// shipped ones), and antimony's completion script for `shell`.
fn completion_script(s: &Scratch, shell: &str) -> Result<Output, Failed> {
    s.profile("my-own", &Profile::on("minimal").path("/bin/true"));
    let script = s.antimony(["completions", shell]).run();
    ensure!(script.code() == Some(0), "{}", script.show());
    Ok(script)
}

/// A shell's `LINE=>COMPLETIONS` lines hold what bash and fish both
/// complete, and `more`.
fn completed(out: &Output, more: &[&str]) -> TestResult {
    ensure!(out.code() == Some(0), "{}", out.show());
    let both = [
        "antimony run fir=>firefox",
        "antimony run my-=>my-own",
        "antimony show with-x=>with-x11",
        "antimony run with-x=>",
        "antimony check sh py=>python3",
    ];
    for want in both.iter().chain(more) {
        ensure!(
            out.stdout.lines().any(|l| l == *want),
            "wanted `{want}`:\n{}",
            out.show()
        );
    }
    pass()
}

/// A PATH on which the shells find antimony.
fn path_to_antimony() -> String {
    format!(
        "{}:/usr/bin:/bin",
        world().antimony.parent().unwrap().display()
    )
}

fn completions_bash() -> TestResult {
    need!("bash");
    let s = scratch!(Who::Root);
    let script = completion_script(&s, "bash")?;
    let file = s.write("antimony.bash", &script.stdout);
    // Completes as bash does on TAB: COMP_WORDS and COMP_CWORD, then the
    // registered function.
    let driver = r#"
source "$1" || exit 1
fn=$(complete -p antimony | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
complete_line() {
    read -ra COMP_WORDS <<<"$1"
    [[ $1 == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    "$fn" antimony "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    echo "$1=>${COMPREPLY[*]}"
}
complete_line "antimony run fir"
complete_line "antimony run my-"
complete_line "antimony show with-x"
complete_line "antimony run with-x"
complete_line "antimony check sh py"
complete_line "antimony run --ro /x fir"
complete_line "antimony integr"
"#;
    let out = s
        .command("bash")
        .args(["-c", driver, "driver"])
        .arg(&file)
        .env("PATH", path_to_antimony())
        .run();
    completed(
        &out,
        &[
            "antimony run --ro /x fir=>firefox",
            "antimony integr=>integrate",
        ],
    )
}

fn completions_zsh() -> TestResult {
    need!("zsh");
    let s = scratch!(Who::Root);
    let script = completion_script(&s, "zsh")?;
    s.write("fpath/_antimony", &script.stdout);
    let result = s.write("buffers", "");
    // An interactive zsh on a pseudo-terminal (zpty): type a line and TAB,
    // then a key bound to a widget that appends the edited line to a file.
    let driver = r#"
zmodload zsh/zpty || exit 1
fpath_dir=$1 result=$2; shift 2
drain() { local out; while zpty -r -t z out 2>/dev/null; do :; done }
for line in "$@"; do
    zpty z zsh -f -i
    zpty -w z "fpath=(${(q)fpath_dir} \$fpath); autoload -U compinit; compinit -u -D; show-buffer() { print -r -- \"\$BUFFER\" >> ${(q)result} }; zle -N show-buffer; bindkey '^X' show-buffer"
    before=$(wc -l < $result)
    zpty -w -n z "$line"$'\t\x18'
    repeat 300 { drain; (( $(wc -l < $result) > before )) && break; sleep 0.1 }
    zpty -d z
done
"#;
    let out = s
        .command("zsh")
        .args(["-f", "-c", driver, "driver"])
        .arg(s.path("fpath"))
        .arg(&result)
        .args([
            "antimony run fir",
            "antimony run my-",
            "antimony show with-x",
            "antimony check sh py",
        ])
        .env("PATH", path_to_antimony())
        .timeout(Duration::from_secs(120))
        .run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let got = std::fs::read_to_string(&result).unwrap_or_default();
    let lines: Vec<&str> = got.lines().collect();
    ensure!(
        lines
            == [
                "antimony run firefox ",
                "antimony run my-own ",
                "antimony show with-x11 ",
                "antimony check sh python3 ",
            ],
        "zsh completed {lines:?}\n{}",
        out.show()
    );
    pass()
}

fn completions_fish() -> TestResult {
    need!("fish");
    let s = scratch!(Who::Root);
    let script = completion_script(&s, "fish")?;
    let file = s.write("antimony.fish", &script.stdout);
    let out = s
        .command("fish")
        .args([
            "--no-config",
            "-c",
            "source $argv[1]; or exit 1; \
             for line in 'antimony run fir' 'antimony run my-' 'antimony show with-x' 'antimony run with-x' 'antimony check sh py'; \
                 set -l joined (string join , (complete -C $line | string replace -r '\\t.*' '')); \
                 echo \"$line=>$joined\"; \
             end",
        ])
        .arg(&file)
        .env("PATH", path_to_antimony())
        .run();
    completed(&out, &[])
}

/// `$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY` in a fragment: the compositor's
/// socket (here a stand-in that greets) is reachable inside, at the same
/// place in the sandbox's own runtime folder; the rest of the host's
/// runtime folder is not.
fn runtime_sockets(who: Who) -> TestResult {
    use std::os::unix::net::UnixListener;
    let s = scratch!(who);
    let runtime = s.path("runtime");
    let socket = runtime.join("wayland-test");
    let listener = UnixListener::bind(&socket).map_err(|e| e.to_string())?;
    let _ = std::os::unix::fs::chown(&socket, Some(s.uid), Some(s.gid));
    s.write("runtime/secret", "host runtime file\n");
    let server = std::thread::spawn(move || {
        use std::io::Write;
        if let Ok((mut c, _)) = listener.accept() {
            let _ = c.write_all(b"hello from the compositor\n");
        }
    });
    s.profile("wl", &Profile::inherits(&["sh", "with-wayland"]));
    let script = "python3 -c 'import os,socket; c=socket.socket(socket.AF_UNIX); \
                  c.connect(os.path.join(os.environ[\"XDG_RUNTIME_DIR\"], os.environ[\"WAYLAND_DISPLAY\"])); \
                  print(c.recv(100).decode(), end=\"\")'; \
                  ls $XDG_RUNTIME_DIR; cat $XDG_RUNTIME_DIR/secret 2>/dev/null || echo no-secret";
    let out = s
        .antimony(["run", "wl", "--", "-c", script])
        .env("WAYLAND_DISPLAY", "wayland-test")
        .run();
    // Unblock the server thread whatever happened.
    let _ = std::os::unix::net::UnixStream::connect(&socket);
    let _ = server.join();
    ensure!(out.code() == Some(0), "{}", out.show());
    ensure!(
        out.stdout == "hello from the compositor\nwayland-test\nno-secret\n",
        "{}",
        out.show()
    );
    // Without WAYLAND_DISPLAY the optional entry is skipped.
    let out = s
        .antimony(["run", "wl", "--", "-c", "ls $XDG_RUNTIME_DIR | wc -l"])
        .run();
    ensure!(
        out.code() == Some(0) && out.stdout == "0\n",
        "{}",
        out.show()
    );
    pass()
}

/// A run whose display is X11 (the X server's socket folder bound, DISPLAY
/// set, no Wayland) says once that X11 cannot isolate input; with Wayland,
/// or without a display, it says nothing.
fn x11_warning(who: Who) -> TestResult {
    let s = scratch!(who);
    // A stand-in for the host's /tmp/.X11-unix, bound where X clients look.
    let sockets = s.mkdir("x11");
    s.profile(
        "x11",
        &Profile::on("sh")
            .ro(&[format!("{}=/tmp/.X11-unix", sockets.display())])
            .env("DISPLAY", "$DISPLAY")
            .env("WAYLAND_DISPLAY", "$WAYLAND_DISPLAY"),
    );
    let run = |env: &[(&str, &str)]| {
        let mut r = s.antimony(["run", "x11", "--", "-c", "echo ran"]);
        r.cmd.env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
        for (k, v) in env {
            r = r.env(k, v);
        }
        r.run()
    };
    let out = run(&[("DISPLAY", ":99")]);
    ensure!(
        out.code() == Some(0) && out.stdout == "ran\n",
        "{}",
        out.show()
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    ensure!(
        lines.len() == 1
            && lines[0].starts_with("antimony: warning: ")
            && lines[0].contains("X11")
            && lines[0].contains("cannot isolate input"),
        "X11 without Wayland: not one warning: {}",
        out.show()
    );
    for (what, env) in [
        (
            "with Wayland",
            &[("DISPLAY", ":99"), ("WAYLAND_DISPLAY", "wayland-9")][..],
        ),
        ("without a display", &[][..]),
    ] {
        let out = run(env);
        ensure!(
            out.code() == Some(0) && out.stderr.is_empty(),
            "{what}: {}",
            out.show()
        );
    }
    pass()
}
