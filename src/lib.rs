//! antimony: a Linux sandbox launcher.
//!
//! The pipeline, in the order a run goes through it:
//! `cli` (clap) → `profile` (find, parse, validate, merge) → `plan` (inert,
//! printable) → `pipeline`: `hooks` (pre, attached) → `sandbox` (clone,
//! set up, confine, exec) → wait and pass signals on → attached hooks
//! terminated → post-hooks → the program's exit status.

/// Declares a module whose code runs after a fork or clone (in the
/// sandbox's init, a hook's child, the guardian): the compiler refuses
/// every construct there that can panic — `unwrap`, `expect`, indexing and
/// slicing that can go out of bounds, `panic!`, `unreachable!` — since a
/// panic there unwinds or aborts a half-made process that shares or copied
/// antimony's memory. Unit tests may use them.
macro_rules! after_fork {
    ($vis:vis mod $name:ident) => {
        #[cfg_attr(
            not(test),
            deny(
                clippy::unwrap_used,
                clippy::expect_used,
                clippy::panic,
                clippy::indexing_slicing,
                clippy::unreachable,
                clippy::todo,
                clippy::unimplemented
            )
        )]
        $vis mod $name;
    };
}

pub mod cli;
pub mod commands;
pub mod doctor;
pub mod error;
pub mod files;
pub mod hooks;
pub mod host;
pub mod instance;
pub mod integrate;
pub mod learn;
pub mod notify;
pub mod pipeline;
pub mod plan;
pub mod procfs;
pub mod profile;
after_fork!(pub mod pty);
after_fork!(pub mod sandbox);
pub mod signals;
pub mod text;

pub use error::{EXIT_LAUNCHER_FAILURE, Error};
