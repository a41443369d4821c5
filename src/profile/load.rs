//! Where profiles come from. Search order, first hit wins:
//! `$XDG_CONFIG_HOME/antimony/profiles/`, `/etc/antimony/profiles/`, then the
//! profiles shipped in the repository's `profiles/` folder, compiled into the
//! binary. A bare name is never looked up in the current directory.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{ProfileError, is_path_argument, shipped, valid_name};
use crate::host::{Host, HostView, RealHost};

pub use crate::host::SYSTEM_CONFIG;
/// The system-wide profile folder.
pub const SYSTEM_PROFILES: &str = "/etc/antimony/profiles";
/// The system-wide folder of reusable hooks.
pub const SYSTEM_HOOKS: &str = "/etc/antimony/hooks";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The user's folder.
    User(PathBuf),
    /// `/etc/antimony/profiles`.
    System(PathBuf),
    /// Compiled into the binary from the repository's `profiles/`.
    Shipped,
    /// Named by path on the command line (or in `inherits`).
    File(PathBuf),
}

impl Origin {
    /// A short word for tables: user, system, shipped, file.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::User(_) => "user",
            Origin::System(_) => "system",
            Origin::Shipped => "shipped",
            Origin::File(_) => "file",
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match self {
            Origin::User(p) | Origin::System(p) | Origin::File(p) => Some(p),
            Origin::Shipped => None,
        }
    }
}

/// A profile's text and where it was found.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub origin: Origin,
    pub text: Cow<'static, str>,
}

impl Source {
    /// The file name used in messages: the path, or `<shipped>/NAME.toml`.
    pub fn file_label(&self) -> String {
        match self.origin.path() {
            Some(p) => p.display().to_string(),
            None => format!("<shipped>/{}.toml", self.name),
        }
    }
}

/// One name in `antimony list`: every copy, the winning one first.
#[derive(Debug, Clone)]
pub struct Listing {
    pub name: String,
    pub copies: Vec<Origin>,
}

/// Looks files up by name in the user's folder, the system's, then the
/// copies compiled into the binary: profiles, and reusable hooks alike.
#[derive(Debug, Clone)]
pub struct Searcher {
    user: PathBuf,
    system: PathBuf,
    shipped: &'static [(&'static str, &'static str)],
    /// "profile" or "hook", for messages.
    what: &'static str,
}

impl Searcher {
    /// The profile searcher.
    pub fn new(host: &Host) -> Searcher {
        Searcher {
            user: host.user_profiles(),
            system: PathBuf::from(SYSTEM_PROFILES),
            shipped: shipped::all(),
            what: "profile",
        }
    }

    /// The searcher of reusable hooks (`hooks/NAME.toml`).
    pub fn hooks(host: &Host) -> Searcher {
        Searcher {
            user: host.config_home.join("antimony/hooks"),
            system: PathBuf::from(SYSTEM_HOOKS),
            shipped: shipped::hooks(),
            what: "hook",
        }
    }

    /// A searcher over given folders (tests).
    pub fn with_dirs(user: PathBuf, system: PathBuf) -> Searcher {
        Searcher {
            user,
            system,
            shipped: shipped::all(),
            what: "profile",
        }
    }

    pub fn what(&self) -> &'static str {
        self.what
    }

    pub fn user_dir(&self) -> &Path {
        &self.user
    }

    /// Human-readable list of the places searched, for "not found" messages.
    pub fn searched(&self) -> String {
        format!(
            "{}, {} and the shipped {}s",
            self.user.display(),
            self.system.display(),
            self.what
        )
    }

    /// Finds a profile by command-line argument: a name, or a path to a file.
    pub fn lookup(&self, arg: &str) -> Result<Source, ProfileError> {
        if is_path_argument(arg) {
            read_file(Path::new(arg))
        } else {
            self.find(arg, None)
        }
    }

    /// Finds a profile by name in the search order.
    pub fn find(&self, name: &str, at: Option<&super::Location>) -> Result<Source, ProfileError> {
        self.find_on(&RealHost, name, at)
    }

    /// `find`, reading the folders through `fs` (the planner's view of
    /// the host, which looks reusable hooks up).
    pub fn find_on(
        &self,
        fs: &dyn HostView,
        name: &str,
        at: Option<&super::Location>,
    ) -> Result<Source, ProfileError> {
        self.find_from(fs, name, at, 0)
    }

    /// The profile of this name in the layers below `origin`'s (user →
    /// system → shipped): what a profile that inherits its own name
    /// inherits — an override of the one it hides. `None` for an origin
    /// that is not a layer (a file named by path): the usual search.
    pub fn find_below(
        &self,
        name: &str,
        origin: &Origin,
        at: Option<&super::Location>,
    ) -> Option<Result<Source, ProfileError>> {
        let from = match origin {
            Origin::User(_) => 1,
            Origin::System(_) => 2,
            Origin::Shipped => 3,
            Origin::File(_) => return None,
        };
        Some(self.find_from(&RealHost, name, at, from))
    }

    /// The search from layer `from` down (0: the user's, 1: the system's,
    /// 2: the shipped profiles, 3: nothing).
    fn find_from(
        &self,
        fs: &dyn HostView,
        name: &str,
        at: Option<&super::Location>,
        from: usize,
    ) -> Result<Source, ProfileError> {
        if !valid_name(name) {
            return Err(ProfileError::BadName {
                name: name.to_string(),
                at: at.cloned(),
            });
        }
        let file = format!("{name}.toml");
        for (dir, user) in [(&self.user, true), (&self.system, false)]
            .into_iter()
            .skip(from)
        {
            let path = dir.join(&file);
            match fs.read(&path) {
                Ok(bytes) => {
                    let text = decode(&path, bytes)?;
                    let origin = if user {
                        Origin::User(path)
                    } else {
                        Origin::System(path)
                    };
                    return Ok(Source {
                        name: name.to_string(),
                        origin,
                        text: Cow::Owned(text),
                    });
                }
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(source) => return Err(ProfileError::Read { path, source }),
            }
        }
        match shipped::find(self.shipped, name).filter(|_| from <= 2) {
            Some(text) => Ok(Source {
                name: name.to_string(),
                origin: Origin::Shipped,
                text: Cow::Borrowed(text),
            }),
            None => Err(ProfileError::NotFound {
                what: self.what,
                name: name.to_string(),
                searched: self.searched(),
                context: at
                    .map(|a| {
                        let key = if self.what == "hook" {
                            "use"
                        } else {
                            "inherits"
                        };
                        format!("{a}: {key}: ")
                    })
                    .unwrap_or_default(),
            }),
        }
    }

    /// Every profile name with all its copies, winning copy first.
    pub fn list(&self) -> Vec<Listing> {
        let mut all: BTreeMap<String, Vec<Origin>> = BTreeMap::new();
        for (dir, user) in [(&self.user, true), (&self.system, false)] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".toml"))
                else {
                    continue;
                };
                if !valid_name(name) {
                    continue;
                }
                let origin = if user {
                    Origin::User(path.clone())
                } else {
                    Origin::System(path.clone())
                };
                all.entry(name.to_string()).or_default().push(origin);
            }
        }
        for (name, _) in self.shipped {
            all.entry(name.to_string())
                .or_default()
                .push(Origin::Shipped);
        }
        all.into_iter()
            .map(|(name, copies)| Listing { name, copies })
            .collect()
    }

    /// The text of the shipped copy, if any.
    pub fn shipped(&self, name: &str) -> Option<&'static str> {
        shipped::find(self.shipped, name)
    }
}

/// Reads a profile named by path; its name is the file's stem.
pub fn read_file(path: &Path) -> Result<Source, ProfileError> {
    let bytes = std::fs::read(path).map_err(|source| ProfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // A program (an ELF binary) named where a profile goes: say so, rather
    // than where its bytes stop being TOML. (A `#!` line is a TOML comment:
    // a profile may be an executable file that runs antimony.)
    if bytes.starts_with(b"\x7fELF") {
        return Err(ProfileError::Program {
            path: path.to_path_buf(),
        });
    }
    let text = decode(path, bytes)?;
    // The name names folders (the persistent home, the state): a file
    // called `...toml` must not make it `..`.
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .to_string();
    if !super::valid_name(&name) {
        return Err(ProfileError::BadName { name, at: None });
    }
    Ok(Source {
        name,
        origin: Origin::File(path.to_path_buf()),
        text: Cow::Owned(text),
    })
}

/// A profile file's text: UTF-8, or an error at the first byte that is not.
pub fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, ProfileError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // The prefix is UTF-8 by definition.
        let text = std::str::from_utf8(valid).unwrap_or_default();
        ProfileError::Invalid {
            at: super::Location::at(&path.display().to_string(), text, text.len()),
            message: "not UTF-8 text (a profile is a UTF-8 TOML file)".into(),
        }
    })
}
