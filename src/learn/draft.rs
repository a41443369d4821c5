//! The recording sandbox, and the draft profile drawn from its record.
//!
//! The recording sandbox is a profile antimony writes: `minimal` with
//! every shipped fragment (the display, sound, the GPU, fonts, themes,
//! locale, the network, the bus through the proxy) and the host's `/etc`,
//! `/opt`, `/srv`, `/var/lib`, `/var/cache`, `/sys` and the sound and
//! video devices read-only, so that the program finds what it would find
//! outside and behaves as it would; its home is an empty one, thrown
//! away at exit (the draft then does not depend on what your home holds:
//! it is the program's first run that is recorded). What the program
//! named is then sorted: what `minimal` shows already is left out; what a
//! fragment shows is that fragment (inherited, not repeated); the rest
//! becomes binds of the folders it lies in (`collapse`), never the home
//! wholesale.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::bus::Names;
use super::{Recording, collapse, container, outermost, uninteresting, written};
use crate::plan::Plan;

/// The fragments a recording sandbox inherits, in the order a draft
/// checks them.
pub const FRAGMENTS: &[&str] = &[
    "with-display",
    "with-audio",
    "with-gpu",
    "with-fonts",
    "with-themes",
    "with-locale",
    "with-network",
    "with-dbus",
];

/// What `with-dbus` lets a program talk to.
pub const WITH_DBUS_TALK: &[&str] = &[
    "org.freedesktop.portal.Desktop",
    "org.freedesktop.Notifications",
];

/// `/etc` entries the recording sandbox never shows: secrets (`shadow`,
/// the SSH host keys, `ssl`'s private keys: the network's binds give the
/// certificates), the accounts (the sandbox has its own `passwd` and
/// `group`) and antimony's own folder.
const ETC_HIDDEN: &[&str] = &[
    "shadow",
    "shadow-",
    "gshadow",
    "gshadow-",
    "passwd",
    "passwd-",
    "group",
    "group-",
    "sudoers",
    "sudoers.d",
    "ssh",
    "ssl",
    "security",
    "antimony",
    "credstore",
    "credstore.encrypted",
    "machine-id",
    "hostname",
    "hosts",
    "resolv.conf",
];

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text for a `#` comment: it comes from the recorded program (a file name
/// it wrote, a path it read), so no control character of it may end the
/// comment and start a line of TOML (a hook, a bind) in a profile that a
/// later run loads; each is written as `\uXXXX`.
fn comment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\t' {
            let _ = write!(out, "\\u{:04X}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| quote(s))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The recording sandbox's profile. `bus` holds the names a previous
/// round found the program asking for (granted now, so that it goes on
/// as it would with them).
pub fn recording_profile(program: &Path, bus: &Names) -> String {
    let mut ro: Vec<String> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/etc") {
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !ETC_HIDDEN.contains(&n.as_str()))
            .collect();
        names.sort();
        ro.extend(names.into_iter().map(|n| format!("?/etc/{n}")));
    }
    for p in [
        "/opt",
        "/srv",
        "/var/lib",
        "/var/cache",
        "/sys",
        "/usr/local",
    ] {
        ro.push(format!("?{p}"));
    }
    // A program outside the system's folders (in a home, a build tree).
    if !["/usr", "/bin", "/sbin", "/lib", "/opt"]
        .iter()
        .any(|d| program.starts_with(d))
    {
        ro.push(program.to_string_lossy().into_owned());
    }
    let dev: Vec<String> = ["/dev/snd", "/dev/video0", "/dev/video1", "/dev/input"]
        .iter()
        .map(|d| format!("?{d}"))
        .collect();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# antimony learn: the recording sandbox (written for one run)"
    );
    let _ = writeln!(text, "description = \"antimony learn: recording\"");
    let _ = writeln!(text, "path = {}", quote(&program.to_string_lossy()));
    let mut inherits = vec!["minimal".to_string()];
    inherits.extend(FRAGMENTS.iter().map(|f| f.to_string()));
    let _ = writeln!(text, "inherits = [{}]", list(&inherits));
    let _ = writeln!(
        text,
        "\n[files]\nro = [{}]\ndev = [{}]",
        list(&ro),
        list(&dev)
    );
    let extra = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
    let _ = writeln!(
        text,
        "\n[dbus]\nsee = [{}]\ntalk = [{}]\nown = [{}]",
        list(&extra(&bus.see)),
        list(&extra(&bus.talk)),
        list(&extra(&bus.own))
    );
    text
}

/// What the draft is drawn from.
pub struct Learned<'a> {
    /// The profile's name, and the program (a host path).
    pub name: &'a str,
    pub program: &'a Path,
    pub rec: &'a Recording,
    pub bus: &'a Names,
    /// The home, and the runtime folder, on the host.
    pub home: &'a Path,
    pub runtime_dir: Option<&'a Path>,
    /// Host files the arguments named (forwarded in every run).
    pub forwarded: &'a [PathBuf],
    /// The plan of `minimal` with the program, and of `minimal` with
    /// each fragment: what each shows.
    pub minimal: &'a Plan,
    pub fragments: &'a [(&'static str, Plan)],
}

/// Why something is in the draft: the first path that needed it.
#[derive(Debug, Default)]
struct Reasons(BTreeMap<String, String>);

impl Reasons {
    fn add(&mut self, what: &str, why: String) {
        self.0.entry(what.to_string()).or_insert(why);
    }
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// The draft profile's text.
pub fn draft(l: &Learned) -> String {
    let mut fragments = Reasons::default();
    let mut binds: Vec<(PathBuf, bool, PathBuf)> = Vec::new();
    // A program the minimal sandbox does not show is bound by itself.
    let own_bind = !super::shown(l.minimal, l.program);
    let mut home_read: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    let mut home_written: BTreeSet<PathBuf> = BTreeSet::new();
    let mut not_granted: BTreeSet<String> = BTreeSet::new();
    let mut system_bus = false;
    for (p, u) in &l.rec.paths {
        let in_home = p.starts_with(l.home) && p != l.home;
        if (!in_home && uninteresting(p, l.runtime_dir))
            || container(p, l.home)
            || p == l.program
            || l.forwarded.iter().any(|f| p.starts_with(f))
        {
            continue;
        }
        if in_home && u.write {
            home_written.insert(collapse(p, l.home));
            continue;
        }
        if !exists(p) || super::shown(l.minimal, p) {
            continue;
        }
        // The processor list (/sys/devices/system/cpu: GLib, Qt and the C
        // library count processors there) is its own bind, not the GPU's
        // /sys/devices.
        let cpu = p.starts_with("/sys/devices/system");
        if let Some((name, _)) = l.fragments.iter().find(|(name, plan)| {
            // The GPU's /sys is what names its devices; the block
            // devices' or processors' are not a reason for the GPU.
            let gpu_reason = *name != "with-gpu" || !p.starts_with("/sys");
            !cpu && gpu_reason && super::shown(plan, p)
        }) {
            let how = if u.connect { "connected to" } else { "used" };
            fragments.add(name, format!("it {how} {}", written(p, l.home)));
            continue;
        }
        if p.starts_with("/run/dbus") {
            system_bus = true;
            continue;
        }
        if in_home {
            let c = collapse(p, l.home);
            let first = c
                .strip_prefix(l.home)
                .ok()
                .and_then(|r| r.components().next());
            // A cache is not settings: never bound from the host.
            if p.starts_with(l.home.join(".cache")) {
                continue;
            }
            if first.is_some_and(|f| f.as_os_str().to_string_lossy().starts_with('.')) {
                home_read.entry(c).or_insert_with(|| p.clone());
            } else {
                not_granted.insert(written(p, l.home));
            }
            continue;
        }
        if l.runtime_dir.is_some_and(|r| p.starts_with(r)) || p.starts_with("/run/user") {
            not_granted.insert(p.display().to_string());
            continue;
        }
        binds.push((collapse(p, l.home), u.write, p.clone()));
    }
    if l.rec
        .abstract_sockets
        .iter()
        .any(|s| s.starts_with("@/tmp/.X11-unix/"))
    {
        fragments.add("with-display", "it connected to the X server".into());
    }
    if l.rec.inet {
        fragments.add("with-network", "it connected to an internet address".into());
    }
    let mut bus = l.bus.clone();
    let a11y = bus.talk.remove("org.a11y.Bus") | bus.see.remove("org.a11y.Bus");
    for n in WITH_DBUS_TALK {
        bus.talk.remove(*n);
    }
    let asked_bus = !l.bus.is_empty();
    if asked_bus && !(a11y && bus.is_empty() && l.bus.talk.len() + l.bus.see.len() == 1) {
        let names: Vec<&String> = l
            .bus
            .talk
            .iter()
            .chain(&l.bus.own)
            .chain(&l.bus.see)
            .collect();
        let shown: Vec<String> = names.iter().take(3).map(|s| s.to_string()).collect();
        fragments.add(
            "with-dbus",
            format!("it asked the session bus for {}", shown.join(", ")),
        );
    }

    // Binds: the outermost folders, each with the first path under it.
    let folders = outermost(binds.iter().map(|(c, ..)| c.clone()).collect());
    let mut ro = Vec::new();
    let mut rw = Vec::new();
    let mut dev = Vec::new();
    for f in &folders {
        let (wrote, example) = binds
            .iter()
            .filter(|(c, ..)| c.starts_with(f))
            .fold((false, None), |(w, e), (_, wr, p)| {
                (w || *wr, e.or(Some(p)))
            });
        let example = example.map(|p| p.display().to_string()).unwrap_or_default();
        let entry = (f.display().to_string(), format!("it read {example}"));
        if f.starts_with("/dev") {
            dev.push((format!("?{}", entry.0), format!("it opened {example}")));
        } else if wrote && nix::unistd::access(f.as_path(), nix::unistd::AccessFlags::W_OK).is_ok()
        {
            rw.push((entry.0, format!("it wrote {example}")));
        } else {
            ro.push(entry);
        }
    }
    let home_folders = outermost(home_read.keys().cloned().collect());
    for h in &home_folders {
        if home_written
            .iter()
            .any(|w| w.starts_with(h) || h.starts_with(w))
        {
            continue;
        }
        let example = home_read
            .get(h)
            .map(|p| written(p, l.home))
            .unwrap_or_default();
        ro.push((
            format!("?{}", written(h, l.home)),
            format!("your settings: it read {example}"),
        ));
    }

    if own_bind {
        ro.insert(
            0,
            (l.program.display().to_string(), "the program itself".into()),
        );
    }
    let mut inherits = vec![("minimal".to_string(), "the strict base".to_string())];
    for f in FRAGMENTS {
        if let Some(why) = fragments.0.get(*f) {
            inherits.push((f.to_string(), why.clone()));
        }
    }
    let mut grants: Vec<String> = inherits
        .iter()
        .skip(1)
        .map(|(f, _)| f.trim_start_matches("with-").to_string())
        .collect();
    if !home_written.is_empty() {
        grants.push("a private persistent home".into());
    }
    for (p, _) in ro.iter().chain(&rw) {
        if !p.starts_with("?~") {
            grants.push(p.clone());
        }
    }
    if grants.is_empty() {
        grants.push("nothing beyond the minimal sandbox".into());
    }

    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Drafted by `antimony learn` from a recorded run of {}.\n\
         # Each grant says which path needed it. Check it, then: antimony run {}",
        comment(&l.program.display().to_string()),
        l.name
    );
    let _ = writeln!(
        t,
        "description = {}",
        quote(&format!(
            "{} (drafted by antimony learn): {}",
            l.name,
            grants.join(", ")
        ))
    );
    let _ = writeln!(t, "path = {}", quote(&l.program.to_string_lossy()));
    let _ = writeln!(t, "inherits = [");
    for (f, why) in &inherits {
        let _ = writeln!(t, "    {},  # {}", quote(f), comment(why));
    }
    let _ = writeln!(t, "]");
    if !home_written.is_empty() {
        let shown: Vec<String> = home_written
            .iter()
            .take(3)
            .map(|h| written(h, l.home))
            .collect();
        let _ = writeln!(
            t,
            "\n[home]\n# It wrote {} : a private home of its own, kept\n# (~/.local/share/antimony/{}); your own files stay out of reach.\npolicy = \"Enabled\"",
            comment(&shown.join(", ")),
            l.name
        );
    }
    if !(ro.is_empty() && rw.is_empty() && dev.is_empty() && not_granted.is_empty()) {
        let _ = writeln!(t, "\n[files]");
        for (key, items) in [("ro", &ro), ("rw", &rw), ("dev", &dev)] {
            if items.is_empty() {
                continue;
            }
            let _ = writeln!(t, "{key} = [");
            for (p, why) in items {
                let _ = writeln!(t, "    {},  # {}", quote(p), comment(why));
            }
            let _ = writeln!(t, "]");
        }
        if !not_granted.is_empty() {
            let shown: Vec<String> = not_granted.iter().take(8).cloned().collect();
            let _ = writeln!(
                t,
                "# Not granted (it looked, and ran without them): {}",
                comment(&shown.join(", "))
            );
        }
    }
    if asked_bus && fragments.0.contains_key("with-dbus") {
        let _ = writeln!(t, "\n[dbus]");
        let _ = writeln!(
            t,
            "# It asked the session bus for these names (besides with-dbus's portal and notifications)."
        );
        for (key, set) in [("talk", &bus.talk), ("own", &bus.own), ("see", &bus.see)] {
            if !set.is_empty() {
                let v: Vec<String> = set.iter().cloned().collect();
                let _ = writeln!(t, "{key} = [{}]", list(&v));
            }
        }
    }
    if a11y {
        let _ = writeln!(
            t,
            "# It asked for the accessibility bus (org.a11y.Bus), which it runs without;\n# for a screen reader, add [dbus] talk = [\"org.a11y.Bus\"] (and with-dbus)."
        );
    }
    if system_bus {
        let _ = writeln!(
            t,
            "# It looked for the system bus (/run/dbus/system_bus_socket), which antimony does not give; it ran without."
        );
    }
    t
}

#[cfg(test)]
mod comment_tests {
    use super::comment;

    #[test]
    fn a_recorded_name_never_ends_its_comment() {
        let hostile = "a\n[[hooks.pre]]\ncontent = \"touch /tmp/x\"\r\u{b}b";
        let c = comment(hostile);
        assert!(!c.chars().any(|c| c.is_control()), "{c}");
        assert_eq!(
            c,
            "a\\u000A[[hooks.pre]]\\u000Acontent = \"touch /tmp/x\"\\u000D\\u000Bb"
        );
        assert_eq!(comment("tab\tkept"), "tab\tkept");
    }
}
