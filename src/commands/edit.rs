//! `antimony edit`: the user's copy of a profile in $VISUAL/$EDITOR, never
//! saved invalid without the user saying so.

use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{EXIT_LAUNCHER_FAILURE, Error};
use crate::host::Host;
use crate::profile::{Origin, ProfileError, Searcher, Source, merge, valid_name};

/// The user's override of a system or shipped profile: it inherits that
/// profile whole (`inherits` of its own name reaches the layer below), so
/// later fixes to it still apply; only what the user sets here changes.
/// The profile it overrides follows, commented, for reference.
fn override_of(name: &str, below: &Source) -> String {
    let layer = match below.origin {
        Origin::System(_) => "system",
        _ => "shipped",
    };
    let mut text = format!(
        "\
# Your changes to the {layer} profile `{name}`. It is inherited whole, so its
# later fixes still reach you: set here only what you change (a key set here
# replaces the inherited value; lists such as [files] rw add to them).
# See antimony-profile(5), INHERITANCE.
inherits = [\"{name}\"]

# The {layer} profile, for reference:
"
    );
    for line in below.text.lines() {
        text.push_str(if line.is_empty() { "#" } else { "# " });
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The template of a new profile: the strict base, the program of that
/// name, and the fragments a desktop application usually needs, commented.
fn new_profile(name: &str, host: &Host) -> String {
    use crate::host::HostView;
    let found = crate::host::RealHost.find_program(name, crate::plan::sandbox_path(host.uid));
    let path = match &found {
        Some(p) => format!("path = {:?}", p.display().to_string()),
        None => format!("path = \"/usr/bin/{name}\"  # not found on PATH: correct it"),
    };
    format!(
        "\
# A profile for {name}. See antimony-profile(5) for every key.
description = \"{name}, sandboxed\"
inherits = [\"minimal\"]
{path}
# arguments = []

# A desktop application usually needs some of these fragments after
# \"minimal\": with-display (Wayland and X11) or with-wayland, with-audio,
# with-gpu, with-fonts, with-themes, with-locale, with-network, with-dbus.
# inherits = [\"minimal\", \"with-display\", \"with-audio\", \"with-fonts\", \"with-themes\", \"with-locale\"]

# A persistent home of its own (~/.local/share/antimony/{name}):
# [home]
# policy = \"Enabled\"

# Host folders it may use:
# [files]
# rw = [\"~/Documents\"]
"
    )
}

fn editor(host: &Host) -> Vec<String> {
    for var in ["VISUAL", "EDITOR"] {
        if let Some(v) = host.var(var) {
            let words: Vec<String> = v
                .to_string_lossy()
                .split_whitespace()
                .map(String::from)
                .collect();
            if !words.is_empty() {
                return words;
            }
        }
    }
    vec!["vi".into()]
}

/// Validates edited text as the user's copy of `name`, inherits included.
fn validate(searcher: &Searcher, name: &str, path: &Path, text: &str) -> Result<(), ProfileError> {
    let source = Source {
        name: name.to_string(),
        origin: Origin::User(path.to_path_buf()),
        text: Cow::Owned(text.to_string()),
    };
    merge::resolve_source(searcher, source).map(drop)
}

fn ask(question: &str) -> Option<char> {
    eprint!("{question} ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => line.trim().chars().next().map(|c| c.to_ascii_lowercase()),
    }
}

pub fn edit(name: &str, host: &Host, searcher: &Searcher) -> Result<u8, Error> {
    if !valid_name(name) {
        return Err(ProfileError::BadName {
            name: name.into(),
            at: None,
        }
        .into());
    }
    let dir = searcher.user_dir().to_path_buf();
    let target = dir.join(format!("{name}.toml"));
    let original = match std::fs::read_to_string(&target) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match searcher.find(name, None) {
            Ok(source) => override_of(name, &source),
            Err(ProfileError::NotFound { .. }) => new_profile(name, host),
            Err(e) => return Err(e.into()),
        },
        Err(e) => return Err(Error::io(format!("read {}", target.display()), e)),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let temp: PathBuf = dir.join(format!(".{name}.toml.edit-{}", std::process::id()));
    std::fs::write(&temp, &original)
        .map_err(|e| Error::io(format!("write {}", temp.display()), e))?;
    let result = edit_loop(name, host, searcher, &target, &temp, &original);
    let _ = std::fs::remove_file(&temp);
    result
}

fn edit_loop(
    name: &str,
    host: &Host,
    searcher: &Searcher,
    target: &Path,
    temp: &Path,
    original: &str,
) -> Result<u8, Error> {
    let mut argv = editor(host);
    let program = argv.remove(0);
    loop {
        let status = Command::new(&program)
            .args(&argv)
            .arg(temp)
            .status()
            .map_err(|e| Error::io(format!("start the editor `{program}`"), e))?;
        if !status.success() {
            return Err(Error::EditorFailed {
                program,
                status,
                file: target.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(temp)
            .map_err(|e| Error::io(format!("read {}", temp.display()), e))?;
        if text == original && target.exists() {
            eprintln!("antimony: {} is unchanged", target.display());
            return Ok(0);
        }
        match validate(searcher, name, target, &text) {
            Ok(()) => {
                save(temp, target)?;
                eprintln!("antimony: saved {}", target.display());
                return Ok(0);
            }
            Err(e) => {
                crate::commands::report(&e);
                match ask("[e]dit again, [s]ave anyway, or [d]iscard?") {
                    Some('e') => continue,
                    Some('s') => {
                        save(temp, target)?;
                        eprintln!("antimony: saved {} (invalid)", target.display());
                        return Ok(EXIT_LAUNCHER_FAILURE);
                    }
                    _ => {
                        eprintln!("antimony: discarded; {} is unchanged", target.display());
                        return Ok(EXIT_LAUNCHER_FAILURE);
                    }
                }
            }
        }
    }
}

fn save(temp: &Path, target: &Path) -> Result<(), Error> {
    // Rename over the old copy: never a half-written profile.
    let staged = temp.with_extension("save");
    std::fs::copy(temp, &staged)
        .and_then(|_| std::fs::rename(&staged, target))
        .map_err(|e| Error::io(format!("save {}", target.display()), e))
}
