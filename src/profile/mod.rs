//! Profiles: finding them (`load`), reading the TOML (`raw`), checking it
//! (`validate`), and merging what they inherit (`merge`) into the `Profile`
//! model that the planner and the hook runner use.
//!
//! This folder owns the profile file format and its validated model (the
//! hook model included: `Hook`, `HookEvent`, conditions), and the search
//! for files by name (`Searcher`, for profiles and reusable hooks alike).
//! It may use `host` (where the folders are) and nothing above it: what a
//! profile becomes for one run is `plan`'s, reusable hooks' and drop-ins'
//! definitions included (`plan::hooks`).

pub mod load;
pub mod merge;
pub mod model;
pub mod raw;
mod shipped;
pub mod show;
pub mod validate;

use std::fmt;
use std::path::PathBuf;

pub use load::{Origin, Searcher, Source};
pub use merge::resolve;
pub use model::*;

/// A position in a profile file, 1-based, for messages like `file:3:7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text`.
    pub fn at(file: &str, text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = &text.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        // Columns count characters, not bytes, so that editors agree.
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        Location {
            file: file.to_string(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {}: {}", path.display(), crate::error::io_text(.source))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, unknown keys, wrong types and invalid values.
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
    /// `context` says where the name was written (`file:line:col: inherits: `), or is empty.
    #[error("{context}{what} `{name}` not found (looked in {searched})")]
    NotFound {
        what: &'static str,
        name: String,
        searched: String,
        context: String,
    },
    /// A path given where a profile is expected names a program.
    #[error(
        "{} is a program, not a profile: to run it in a sandbox, give it a profile with `path = \"{}\"` (`antimony edit NAME` starts one), or try it in the strictest one: `antimony run minimal --program {}`",
        .path.display(), .path.display(), .path.display()
    )]
    Program { path: PathBuf },
    #[error("{at}: inherits: cycle {chain}")]
    Cycle { at: Location, chain: String },
    #[error("{}`{name}` is not a valid profile name: use letters, digits, `.`, `_`, `+` and `-`, starting with a letter or digit", at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
    BadName { name: String, at: Option<Location> },
    /// A reusable hook's definition is wrong.
    #[error("{file}: {message}")]
    Definition { file: String, message: String },
    #[error(
        "`{name}` is a fragment, meant to be inherited by other profiles; it cannot run on its own"
    )]
    Fragment { name: String },
}

/// Loads arbitrary bytes as a profile named `fuzz` (the fuzz target's and
/// the property tests' entry point): validation, inheritance from the
/// shipped profiles, then `show` and re-loading what `show` printed, which
/// must give the same profile. Returns the error message for invalid input
/// (`None` for a valid profile); panics only on a bug. Only in builds with
/// the `fuzzing` feature (the fuzz target, `tests/fuzz_profiles.rs`).
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_error(data: &[u8]) -> Option<String> {
    let path = std::path::Path::new("/nonexistent/fuzz.toml");
    let text = match load::decode(path, data.to_vec()) {
        Ok(text) => text,
        Err(e) => return Some(e.to_string()),
    };
    let source = Source {
        name: "fuzz".into(),
        origin: Origin::File(path.into()),
        text: text.clone().into(),
    };
    let searcher = Searcher::with_dirs(
        "/nonexistent/antimony-fuzz/user".into(),
        "/nonexistent/antimony-fuzz/system".into(),
    );
    match merge::resolve_source(&searcher, source) {
        Ok(profile) => {
            let shown = show::to_toml(&profile);
            let again = Source {
                name: "fuzz".into(),
                origin: Origin::File("/nonexistent/shown.toml".into()),
                text: shown.clone().into(),
            };
            // The first line is a comment naming what was inherited; the
            // marks of which file set a value name the first's layers.
            let body = |s: &str| {
                s.split_once('\n').map(|(_, b)| {
                    b.lines()
                        .map(|l| l.split_once(show::SET_BY).map_or(l, |(v, _)| v))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
            };
            match merge::resolve_source(&searcher, again) {
                Ok(p2) => assert_eq!(
                    body(&show::to_toml(&p2)),
                    body(&shown),
                    "show is not stable for {text:?}"
                ),
                Err(e) => panic!("show printed an invalid profile ({e}):\n{shown}\nfrom {text:?}"),
            }
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

/// `fuzz_error`, as "was it valid".
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_one(data: &[u8]) -> bool {
    fuzz_error(data).is_none()
}

/// Whether a command-line argument names a profile file rather than a profile:
/// it contains `/` or ends in `.toml`. A bare name is never looked up in the
/// current directory.
pub fn is_path_argument(arg: &str) -> bool {
    arg.contains('/') || arg.ends_with(".toml")
}

/// Profile names: letters, digits, `.`, `_`, `+`, `-`; first a letter or digit.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        let l = Location::at("f", text, text.find('=').unwrap());
        assert_eq!((l.line, l.column), (1, 3));
        let second = text.rfind('=').unwrap();
        let l = Location::at("f", text, second);
        assert_eq!((l.line, l.column), (2, 4));
        assert_eq!(l.to_string(), "f:2:4");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_a_positioned_error() {
        let e = load::decode(
            std::path::Path::new("/p.toml"),
            b"a = 1\nb = \"\xe9\"\n".to_vec(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/p.toml:2:6: not UTF-8 text (a profile is a UTF-8 TOML file)"
        );
        assert!(fuzz_error(b"\xff").is_some_and(|m| m.contains(":1:1:")));
    }

    #[test]
    fn names_and_paths() {
        assert!(valid_name("firefox"));
        assert!(valid_name("org.mozilla.firefox"));
        assert!(!valid_name(".hidden"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(""));
        assert!(is_path_argument("./x"));
        assert!(is_path_argument("x.toml"));
        assert!(!is_path_argument("firefox"));
    }
}
