//! Every shipped desktop-app profile with its real application (issue 18):
//! `antimony run PROFILE -- SAMPLE` as the ordinary test user, under Xvfb
//! (a display of its own per app, several apps at once) with a private
//! session bus, as a desktop would start it. Each app must open a window
//! and render: the sample's colour on the screen where the app shows it
//! (images, PDF, SVG, HTML), else a window named after the sample (text,
//! office documents, archives, sound) or a window of the app's with a
//! title the table names, on a screen that is not one colour. The same
//! profile with `--program /bin/sh` and the same sample then says what the
//! sandbox sees: the sample (read-only), not its sibling, nothing of the
//! home but the folders the profile grants (each read-only or writable as
//! the table says), and no network device unless the profile has the
//! network.
//!
//! The samples are made by the test: a solid-colour PNG (ImageMagick), SVG,
//! PDF and HTML, a text file, an OpenDocument text and spreadsheet (zipped
//! by Python's zipfile), a CSV, a WAV and a tar archive.
//!
//! The packages are installed by scripts/preconditions (its "desktop apps"
//! list); `apps::launch::every_shipped_app_is_launched` checks that every
//! shipped app profile is in the table below (or tested elsewhere).

use super::*;

/// A document of the app's kind, made by the test in ~/Samples (a folder
/// no profile grants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sample {
    None,
    Text,
    /// Two text files (the second beside the first, `.2.txt`).
    TextPair,
    Png,
    Svg,
    Pdf,
    Html,
    Odt,
    Ods,
    Csv,
    Wav,
    Tar,
}

impl Sample {
    fn extension(self) -> &'static str {
        match self {
            Sample::None => "",
            Sample::Text | Sample::TextPair => "txt",
            Sample::Png => "png",
            Sample::Svg => "svg",
            Sample::Pdf => "pdf",
            Sample::Html => "html",
            Sample::Odt => "odt",
            Sample::Ods => "ods",
            Sample::Csv => "csv",
            Sample::Wav => "wav",
            Sample::Tar => "tar",
        }
    }
}

/// What shows that the app opened and rendered.
#[derive(Debug, Clone, Copy)]
enum Shows {
    /// More than this share (‰) of the screen is the sample's colour.
    Colour(usize),
    /// A window whose name contains the sample's file name.
    Named,
    /// A window whose name contains this text.
    Window(&'static str),
}

/// What the profile grants of the home: a folder and whether writable.
type Grant = (&'static str, bool);

struct App {
    profile: &'static str,
    /// The Debian package (its version goes to the README's table).
    package: &'static str,
    program: &'static str,
    sample: Sample,
    /// Arguments; `{}` is the sample's path (none: the sample last).
    args: &'static [&'static str],
    shows: Shows,
    grants: &'static [Grant],
    network: bool,
    /// The profile has `arguments` (options a shell would refuse): the
    /// probe runs a profile that inherits it without them.
    has_arguments: bool,
}

const fn app(profile: &'static str, package: &'static str, sample: Sample, shows: Shows) -> App {
    App {
        profile,
        package,
        program: profile,
        sample,
        args: &[],
        shows,
        grants: &[],
        network: false,
        has_arguments: false,
    }
}

impl App {
    const fn program(mut self, p: &'static str) -> App {
        self.program = p;
        self
    }
    const fn args(mut self, a: &'static [&'static str]) -> App {
        self.args = a;
        self
    }
    const fn grants(mut self, g: &'static [Grant]) -> App {
        self.grants = g;
        self
    }
    const fn has_arguments(mut self) -> App {
        self.has_arguments = true;
        self
    }
    const fn network(mut self) -> App {
        self.network = true;
        self
    }
}

const DOCUMENTS: &[Grant] = &[("Documents", true)];
const PICTURES_RW: &[Grant] = &[("Pictures", true)];
const PICTURES_RO: &[Grant] = &[("Pictures", false)];
const DOWNLOADS: &[Grant] = &[("Downloads", true)];
const MUSIC_RO: &[Grant] = &[("Music", false)];

use Sample as S;
use Shows::*;

/// The shipped app profiles this file launches.
const APPS: &[App] = &[
    // Browsers and mail.
    app("netsurf", "netsurf-gtk", S::Html, Colour(100))
        .program("netsurf-gtk")
        .grants(DOWNLOADS)
        .network(),
    app("thunderbird", "thunderbird", S::None, Window("Thunderbird"))
        .grants(DOWNLOADS)
        .network(),
    app("claws-mail", "claws-mail", S::None, Window("Claws Mail"))
        .grants(DOWNLOADS)
        .network(),
    // Office.
    app("libreoffice-writer", "libreoffice-writer", S::Odt, Named)
        .program("libreoffice")
        .has_arguments()
        .grants(DOCUMENTS),
    app("libreoffice-calc", "libreoffice-calc", S::Ods, Named)
        .program("libreoffice")
        .has_arguments()
        .grants(DOCUMENTS),
    app("abiword", "abiword", S::Text, Named).grants(DOCUMENTS),
    app("gnumeric", "gnumeric", S::Csv, Named).grants(DOCUMENTS),
    // Documents.
    app("evince", "evince", S::Pdf, Colour(100)),
    app("xpdf", "xpdf", S::Pdf, Colour(100)),
    // Images.
    app("eog", "eog", S::Png, Colour(100)),
    app("ristretto", "ristretto", S::Png, Colour(100)),
    app("feh", "feh", S::Png, Colour(100)),
    app("viewnior", "viewnior", S::Png, Colour(100)),
    app("nsxiv", "nsxiv", S::Png, Colour(100)),
    app("geeqie", "geeqie", S::Png, Colour(50)).grants(PICTURES_RO),
    app("gthumb", "gthumb", S::Png, Named).grants(PICTURES_RO),
    // Media.
    app("vlc", "vlc", S::Png, Colour(100)).args(&["--image-duration=-1", "{}"]),
    app("mpv", "mpv", S::Png, Colour(100)).args(&["--image-display-duration=inf", "{}"]),
    app("celluloid", "celluloid", S::Png, Colour(100))
        .args(&["--mpv-image-display-duration=inf", "{}"]),
    app("audacious", "audacious", S::Wav, Window("Audacious")).grants(MUSIC_RO),
    // Image and vector editors.
    app("gimp", "gimp", S::Png, Colour(30)).grants(PICTURES_RW),
    app("inkscape", "inkscape", S::Svg, Colour(30)).grants(PICTURES_RW),
    app("mtpaint", "mtpaint", S::Png, Colour(30)).grants(PICTURES_RW),
    // Text editors.
    app("gedit", "gedit", S::Text, Named).grants(DOCUMENTS),
    app("pluma", "pluma", S::Text, Named).grants(DOCUMENTS),
    app("geany", "geany", S::Text, Named).grants(DOCUMENTS),
    app("meld", "meld", S::TextPair, Window("Meld")),
    // Chat.
    app("pidgin", "pidgin", S::None, Window("Buddy List"))
        .grants(DOWNLOADS)
        .network(),
    app("hexchat", "hexchat", S::None, Window("HexChat"))
        .grants(DOWNLOADS)
        .network(),
    // Archivers.
    app("file-roller", "file-roller", S::Tar, Named).grants(DOWNLOADS),
    app("xarchiver", "xarchiver", S::Tar, Named).grants(DOWNLOADS),
    app("engrampa", "engrampa", S::Tar, Named).grants(DOWNLOADS),
    // Terminal helpers.
    app("xterm", "xterm", S::None, Window("antimony-xterm")).args(&["-T", "antimony-xterm"]),
    app("zenity", "zenity", S::None, Window("antimony-zenity")).args(&[
        "--info",
        "--title",
        "antimony-zenity",
        "--text",
        "antimony",
    ]),
    // Utilities.
    app(
        "gnome-calculator",
        "gnome-calculator",
        S::None,
        Window("Calculator"),
    ),
    app(
        "transmission-gtk",
        "transmission-gtk",
        S::None,
        Window("Transmission"),
    )
    .grants(DOWNLOADS)
    .network(),
    // Games.
    app("gnome-mines", "gnome-mines", S::None, Window("Mines")).program("/usr/games/gnome-mines"),
    app(
        "gnome-sudoku",
        "gnome-sudoku",
        S::None,
        Window("Select Difficulty"),
    )
    .program("/usr/games/gnome-sudoku"),
    app("aisleriot", "aisleriot", S::None, Window("Klondike")).program("/usr/games/sol"),
    app(
        "quadrapassel",
        "quadrapassel",
        S::None,
        Window("Quadrapassel"),
    )
    .program("/usr/games/quadrapassel"),
    app("iagno", "iagno", S::None, Window("Reversi")).program("/usr/games/iagno"),
    app(
        "four-in-a-row",
        "four-in-a-row",
        S::None,
        Window("Your Turn"),
    )
    .program("/usr/games/four-in-a-row"),
];

/// Shipped app profiles launched by other tests (apps.rs, apps/files.rs).
const TESTED_ELSEWHERE: &[&str] = &["firefox", "chromium", "zathura"];

/// Shipped profiles that are no desktop app: the shells and tools, the base.
const NOT_APPS: &[&str] = &["minimal", "sh", "bash", "python3", "curl"];

pub fn tests() -> Vec<Trial> {
    let mut t = vec![case(
        "apps::launch::every_shipped_app_is_launched",
        every_app_is_launched,
    )];
    for app in APPS {
        t.push(Trial::ignorable_test(
            format!("apps::launch::{}", app.profile),
            move || launch(app),
        ));
    }
    t
}

/// The table covers every shipped app profile, and scripts/preconditions
/// installs every package it names.
fn every_app_is_launched() -> TestResult {
    let s = scratch!(Who::Root);
    let out = s.antimony(["list"]).run();
    ensure!(out.code() == Some(0), "{}", out.show());
    let shipped: BTreeSet<&str> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && f[1] == "profile" && f[2] == "shipped").then(|| f[0])
        })
        .filter(|p| !NOT_APPS.contains(p))
        .collect();
    let covered: BTreeSet<&str> = APPS
        .iter()
        .map(|a| a.profile)
        .chain(TESTED_ELSEWHERE.iter().copied())
        .collect();
    ensure!(
        shipped == covered,
        "shipped app profiles not launched: {:?}; launched but not shipped: {:?}",
        shipped.difference(&covered).collect::<Vec<_>>(),
        covered.difference(&shipped).collect::<Vec<_>>()
    );
    ensure!(shipped.len() >= 40, "only {} app profiles", shipped.len());
    let preconditions = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/preconditions"),
    )
    .map_err(|e| format!("scripts/preconditions: {e}"))?;
    let listed: BTreeSet<&str> = preconditions
        .lines()
        .filter_map(|l| l.trim().strip_prefix("packages+=(")?.strip_suffix(')'))
        .flat_map(str::split_whitespace)
        .collect();
    let missing: Vec<&str> = APPS
        .iter()
        .map(|a| a.package)
        .filter(|p| !listed.contains(p))
        .collect();
    ensure!(
        missing.is_empty(),
        "scripts/preconditions does not install {missing:?}"
    );
    pass()
}

/// The launch tests' share of the X server lock, with /tmp/.X11-unix made
/// by the first of them when missing and removed by the last.
struct Shared {
    _read: std::sync::RwLockReadGuard<'static, ()>,
}

/// How many launch tests hold the lock, and whether the first made the
/// socket folder.
static SHARED: Mutex<(usize, bool)> = Mutex::new((0, false));

/// Xvfb starts one at a time: a display number is taken once its server
/// listens, which another start must see.
static STARTING: Mutex<()> = Mutex::new(());

impl Shared {
    fn hold() -> Result<Shared, String> {
        let read = X_SERVER.read().unwrap_or_else(|e| e.into_inner());
        let mut state = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == 0 {
            let dir = Path::new("/tmp/.X11-unix");
            state.1 = false;
            if !dir.exists() {
                std::fs::create_dir(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
                // The sticky, world-writable folder X servers make.
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))
                    .map_err(|e| e.to_string())?;
                state.1 = true;
            }
        }
        state.0 += 1;
        Ok(Shared { _read: read })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut state = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        if state.0 == 0 && state.1 {
            let _ = std::fs::remove_dir("/tmp/.X11-unix");
        }
    }
}

/// The samples' colour: not one an app draws by itself.
const SAMPLE_RGB: [u8; 3] = PAGE_RGB;

/// The name every sample has, with its extension.
const SAMPLE: &str = "antimony-sample";

/// Writes the sample of `kind` into ~/Samples; its path.
fn make_sample(s: &Scratch, kind: Sample) -> Result<Option<PathBuf>, String> {
    let rel = format!("home/Samples/{SAMPLE}.{}", kind.extension());
    let path = s.path(&rel);
    let [r, g, b] = SAMPLE_RGB;
    let hex = format!("#{r:02x}{g:02x}{b:02x}");
    match kind {
        Sample::None => return Ok(None),
        Sample::Text => {
            s.write(&rel, "A sample text for antimony's launch test.\n");
        }
        Sample::TextPair => {
            s.write(&rel, "A sample text for antimony's launch test.\n");
            s.write(&format!("home/Samples/{SAMPLE}.2.txt"), "A second text.\n");
        }
        Sample::Csv => {
            s.write(&rel, "name,value\nantimony,1\nsample,2\n");
        }
        Sample::Html => {
            s.write(&rel, &super::files::solid_page(SAMPLE_RGB));
        }
        Sample::Pdf => {
            s.write(&rel, &super::files::solid_pdf(SAMPLE_RGB));
        }
        Sample::Svg => {
            s.write(
                &rel,
                &format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                     <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"480\" viewBox=\"0 0 640 480\">\
                     <rect x=\"0\" y=\"0\" width=\"640\" height=\"480\" fill=\"{hex}\"/></svg>\n"
                ),
            );
        }
        Sample::Png => {
            s.mkdir("home/Samples");
            let made = Command::new("convert")
                .args(["-size", "640x480", &format!("xc:{hex}")])
                .arg(&path)
                .status()
                .map_err(|e| format!("convert: {e}"))?;
            ensure_ok(made.success(), "convert could not make the PNG")?;
        }
        Sample::Wav => {
            // One second of a 440 Hz tone, 8 kHz, 8-bit mono PCM.
            let rate = 8000u32;
            let data: Vec<u8> = (0..rate)
                .map(|i| {
                    let t = f64::from(i) / f64::from(rate);
                    (128.0 + 100.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as u8
                })
                .collect();
            let mut wav = Vec::new();
            wav.extend_from_slice(b"RIFF");
            wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
            wav.extend_from_slice(b"WAVEfmt ");
            wav.extend_from_slice(&16u32.to_le_bytes());
            wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
            wav.extend_from_slice(&1u16.to_le_bytes()); // mono
            wav.extend_from_slice(&rate.to_le_bytes());
            wav.extend_from_slice(&rate.to_le_bytes()); // bytes per second
            wav.extend_from_slice(&1u16.to_le_bytes()); // block align
            wav.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
            wav.extend_from_slice(b"data");
            wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
            wav.extend_from_slice(&data);
            s.mkdir("home/Samples");
            std::fs::write(&path, wav).map_err(|e| e.to_string())?;
        }
        Sample::Tar => {
            s.write("archive/inside.txt", "in the archive\n");
            s.mkdir("home/Samples");
            let made = Command::new("tar")
                .arg("-cf")
                .arg(&path)
                .arg("-C")
                .arg(s.path("archive"))
                .arg("inside.txt")
                .status()
                .map_err(|e| format!("tar: {e}"))?;
            ensure_ok(made.success(), "tar could not make the archive")?;
        }
        Sample::Odt | Sample::Ods => {
            // The smallest OpenDocument files LibreOffice opens: the
            // mimetype first and stored, a manifest, the content.
            let (mime, body) = if kind == Sample::Odt {
                (
                    "application/vnd.oasis.opendocument.text",
                    "<office:text><text:p>A sample document for antimony's launch test.</text:p></office:text>",
                )
            } else {
                (
                    "application/vnd.oasis.opendocument.spreadsheet",
                    "<office:spreadsheet><table:table table:name=\"Sheet1\"><table:table-row>\
                     <table:table-cell office:value-type=\"string\"><text:p>antimony</text:p></table:table-cell>\
                     </table:table-row></table:table></office:spreadsheet>",
                )
            };
            let content = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                 <office:document-content xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" \
                 xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\" \
                 xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" office:version=\"1.2\">\
                 <office:body>{body}</office:body></office:document-content>"
            );
            let manifest = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                 <manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\" manifest:version=\"1.2\">\
                 <manifest:file-entry manifest:full-path=\"/\" manifest:media-type=\"{mime}\"/>\
                 <manifest:file-entry manifest:full-path=\"content.xml\" manifest:media-type=\"text/xml\"/>\
                 </manifest:manifest>"
            );
            s.mkdir("home/Samples");
            let script = "import sys, zipfile\n\
                          with zipfile.ZipFile(sys.argv[1], 'w') as z:\n\
                          \x20   z.writestr('mimetype', sys.argv[2], zipfile.ZIP_STORED)\n\
                          \x20   z.writestr('META-INF/manifest.xml', sys.argv[3], zipfile.ZIP_DEFLATED)\n\
                          \x20   z.writestr('content.xml', sys.argv[4], zipfile.ZIP_DEFLATED)\n";
            let made = Command::new("python3")
                .args(["-c", script])
                .arg(&path)
                .args([mime, &manifest, &content])
                .status()
                .map_err(|e| format!("python3: {e}"))?;
            ensure_ok(made.success(), "python3 could not zip the document")?;
        }
    }
    let _ = std::os::unix::fs::chown(&path, Some(s.uid), Some(s.gid));
    Ok(Some(path))
}

fn ensure_ok(cond: bool, what: &str) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what.to_string()) }
}

/// The app's arguments with the sample in.
fn arguments(app: &App, sample: Option<&Path>) -> Vec<String> {
    let sample = sample.map(|p| p.display().to_string());
    let mut args: Vec<String> = app
        .args
        .iter()
        .map(|a| match (&sample, *a) {
            (Some(p), "{}") => p.clone(),
            _ => (*a).to_string(),
        })
        .collect();
    if let Some(p) = sample.filter(|_| !app.args.contains(&"{}")) {
        if app.sample == Sample::TextPair {
            args.push(p.replace(".txt", ".2.txt"));
        }
        args.push(p);
    }
    args
}

/// The folders of the home the probe looks at.
const FOLDERS: &[&str] = &["Documents", "Pictures", "Downloads", "Music", "Videos"];

/// What the sandbox sees, by the profile with `--program /bin/sh` and the
/// same arguments: the sample and its sibling, a secret file and an SSH
/// key of the home, a file in each folder of the home, the network.
fn probe(s: &Scratch, app: &App, sample: Option<&Path>) -> TestResult {
    let home = s.home();
    s.write("home/Samples/other.txt", "a sibling\n");
    s.write("home/secret.txt", "a secret\n");
    s.write("home/.ssh/id_ed25519", "a key\n");
    for f in FOLDERS {
        s.write(&format!("home/{f}/probe.txt"), "probe\n");
    }
    // The paths are in the script, never arguments (arguments that name
    // files are forwarded).
    let h = home.display();
    let mut script = String::from(
        "r() { if [ -e \"$1\" ]; then if (: >> \"$1\") 2>/dev/null; then echo rw; else echo ro; fi; else echo none; fi; }\n",
    );
    if sample.is_some() {
        // The sample is the last argument.
        script.push_str("for a; do last=$a; done\necho \"sample $(r \"$last\")\"\n");
    }
    script.push_str(&format!(
        "echo \"sibling $(r {h}/Samples/other.txt)\"\necho \"secret $(r {h}/secret.txt)\"\necho \"ssh $(r {h}/.ssh/id_ed25519)\"\n"
    ));
    for f in FOLDERS {
        script.push_str(&format!("echo \"{f} $(r {h}/{f}/probe.txt)\"\n"));
    }
    script.push_str("echo \"interfaces $(grep -c : /proc/net/dev)\"\n");
    let mut want = String::new();
    if sample.is_some() {
        want.push_str("sample ro\n");
    }
    want.push_str("sibling none\nsecret none\nssh none\n");
    for f in FOLDERS {
        let grant = match app.grants.iter().find(|(g, _)| g == f) {
            Some((_, true)) => "rw",
            Some((_, false)) => "ro",
            None => "none",
        };
        want.push_str(&format!("{f} {grant}\n"));
    }
    let profile = if app.has_arguments {
        s.profile(
            "probe",
            &Profile::on(app.profile).key("arguments", toml_list::<&str>(&[])),
        );
        "probe"
    } else {
        app.profile
    };
    let out = s
        .antimony(["run", profile, "--program", "/bin/sh", "--", "-c"])
        .arg(&script)
        .arg("sh")
        .args(arguments(app, sample))
        .run();
    ensure!(out.code() == Some(0), "the probe: {}", out.show());
    let (seen, interfaces) = out
        .stdout
        .rsplit_once("interfaces ")
        .ok_or_else(|| format!("the probe: {}", out.show()))?;
    ensure!(
        seen == want,
        "the sandbox sees other than the profile grants:\n--- want\n{want}--- got\n{}",
        out.stdout
    );
    let interfaces: usize = interfaces.trim().parse().map_err(|_| out.show())?;
    // Its own network namespace has a loopback alone; the host's has more.
    ensure!(
        (interfaces > 1) == app.network,
        "{interfaces} network interfaces in the sandbox, network {}",
        app.network
    );
    pass()
}

/// The X windows of `display`: (name, width, height), as `xwininfo -root
/// -tree` lists them.
fn windows(display: &str, xauthority: &Path) -> Vec<(String, u32, u32)> {
    let Ok(out) = Command::new("xwininfo")
        .args(["-root", "-tree", "-display", display])
        .env("XAUTHORITY", xauthority)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // 0x400007 "name": ("res" "Class")  800x600+0+0  +0+0
            let l = l.trim();
            let rest = l.strip_prefix("0x")?;
            let (_, rest) = rest.split_once(' ')?;
            let name = rest
                .strip_prefix('"')
                .and_then(|r| r.split_once("\": ").map(|(n, _)| n));
            let geometry = rest.split_whitespace().rev().nth(1)?;
            let (w, rest) = geometry.split_once('x')?;
            let h = rest.split(['+', '-']).next()?;
            Some((
                name.unwrap_or("").to_string(),
                w.parse().ok()?,
                h.parse().ok()?,
            ))
        })
        .collect()
}

/// The share (‰) of the screenshot's most common colour.
fn dominant_share(image: &Path) -> Result<usize, String> {
    let out = Command::new("convert")
        .arg(image)
        .args(["-strip", "-depth", "8", "ppm:-"])
        .output()
        .map_err(|e| format!("convert: {e}"))?;
    let (w, h, pixels) = parse_ppm(&out.stdout)?;
    let mut counts: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    for p in pixels.chunks_exact(3) {
        *counts.entry(p).or_default() += 1;
    }
    let top = counts.values().copied().max().unwrap_or(0);
    Ok(top * 1000 / (w * h).max(1))
}

fn launch(app: &App) -> TestResult {
    need!("Xvfb", "import", "convert", "xwininfo", "dbus-daemon");
    if which(app.program).is_none() {
        return skip(format!(
            "`{}` is not installed (apt-get install {}; scripts/preconditions installs it)",
            app.program, app.package
        ));
    }
    let s = scratch!(Who::User);
    let sample = make_sample(&s, app.sample)?;
    probe(&s, app, sample.as_deref())?;

    let _shared = Shared::hold()?;
    let xauthority = s.path("home/.Xauthority");
    let (mut xvfb, n) = {
        let _one = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        start_xvfb(&xauthority, s.uid, s.gid)?
    };
    let display = format!(":{n}");
    let result = (|| -> TestResult {
        let (mut bus, address) = crate::notify::start_bus(&s)?;
        let log = s.path("app.log");
        let mut run = s
            .antimony(["run", app.profile, "--"])
            .args(arguments(app, sample.as_deref()))
            .env("DISPLAY", &display)
            .env("DBUS_SESSION_BUS_ADDRESS", &address);
        let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let copy = file.try_clone().map_err(|e| e.to_string())?;
        run.cmd.stdin(Stdio::null()).stdout(file).stderr(copy);
        let mut started = Started {
            child: run.cmd.spawn().map_err(|e| format!("antimony: {e}"))?,
            what: "antimony run",
        };
        let shot = s.path("screen.png");
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last = String::from("no screenshot taken");
        let mut shown = false;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = started.child.try_wait() {
                last = format!("antimony exited early: {status:?}");
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            let ok = screenshot(&display, &xauthority, &shot);
            if !ok {
                last = "import failed".into();
                continue;
            }
            let dominant = dominant_share(&shot)?;
            let wins = windows(&display, &xauthority);
            let named = |text: &str| {
                wins.iter()
                    .any(|(name, w, h)| name.contains(text) && *w >= 100 && *h >= 50)
            };
            let (ok, what) = match app.shows {
                Colour(share) => {
                    let (got, ..) = colour_share(&shot, SAMPLE_RGB)?;
                    (
                        got > share,
                        format!("{got}‰ of the screen is the sample's colour"),
                    )
                }
                Named => (named(SAMPLE), format!("no window named {SAMPLE}…")),
                Window(text) => (named(text), format!("no window named …{text}…")),
            };
            // Not blank: no colour covers (nearly) the whole screen.
            shown = ok && dominant < 990;
            last = format!(
                "{what}; the most common colour covers {dominant}‰; windows: {:?}",
                wins.iter()
                    .filter(|(n, ..)| !n.is_empty())
                    .collect::<Vec<_>>()
            );
            if shown {
                break;
            }
        }
        started.stop();
        bus.stop();
        // ANTIMONY_TEST_SHOTS=FOLDER keeps each app's last screenshot.
        if let Some(dir) = std::env::var_os("ANTIMONY_TEST_SHOTS") {
            let _ = std::fs::copy(&shot, Path::new(&dir).join(format!("{}.png", app.profile)));
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        ensure!(
            shown,
            "{}: {last}\n--- antimony run {} (its output)\n{text}",
            app.profile,
            app.profile
        );
        pass()
    })();
    xvfb.stop();
    result
}
