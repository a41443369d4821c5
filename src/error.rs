//! The error every command returns, printed once by `main` as
//! `antimony: error: …`.

use crate::hooks::HookError;
use crate::plan::PlanError;
use crate::profile::ProfileError;
use crate::sandbox::SandboxError;

/// The exit status of every launcher failure: a bad profile or option, a
/// failed pre-hook or post-hook, a failed sandbox set-up. Like `env`,
/// `chroot` and container runtimes, antimony keeps 126 and 127 free and
/// uses 125 for its own errors; a program that exits 125 by itself is
/// indistinguishable, which the man page says.
pub const EXIT_LAUNCHER_FAILURE: u8 = 125;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Instance(#[from] crate::instance::InstanceError),
    #[error(transparent)]
    Integrate(#[from] crate::integrate::IntegrateError),
    #[error("{context}: {}", io_text(.source))]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// xdg-dbus-proxy ran but never said it listens.
    #[error("the D-Bus proxy ({}) did not start listening on {}", .proxy.display(), .socket.display())]
    ProxyNotListening {
        proxy: std::path::PathBuf,
        socket: std::path::PathBuf,
    },
    /// `antimony run NAME` for a program without a profile.
    #[error(
        "{not_found}; `{name}` is a program ({}): `antimony edit {name}` writes a profile for it from a template that names the fragments a desktop application needs",
        .program.display()
    )]
    NoProfileForProgram {
        name: String,
        program: std::path::PathBuf,
        not_found: String,
    },
    /// `antimony edit`: the editor failed; the profile is left as it was.
    #[error("the editor `{program}` failed ({status}); {} is unchanged", .file.display())]
    EditorFailed {
        program: String,
        status: std::process::ExitStatus,
        file: std::path::PathBuf,
    },
    /// `network = "isolated"` cannot be had: what is wrong, how to fix it.
    #[error("isolated network: {problem}; {fix}")]
    Network { problem: String, fix: String },
    #[error("{0}")]
    Other(String),
}

/// An I/O error as antimony prints it: the errno's name first
/// (`ENOENT: No such file or directory`), not std's "(os error 2)".
pub fn io_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).to_string(),
        None => e.to_string(),
    }
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
