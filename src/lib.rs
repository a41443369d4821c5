//! antimony: a Linux sandbox launcher.
//!
//! The pipeline, in the order a run goes through it:
//! `cli` (clap) → `profile` (find, parse, validate, merge) → `plan` (inert,
//! printable) → `pipeline`: `hooks` (pre, attached) → `sandbox` (clone,
//! set up, confine, exec) → wait and pass signals on → attached hooks
//! terminated → post-hooks → the program's exit status.

pub mod cli;
pub mod commands;
pub mod error;
pub mod files;
pub mod hooks;
pub mod host;
pub mod instance;
pub mod integrate;
pub mod pipeline;
pub mod plan;
pub mod procfs;
pub mod profile;
pub mod pty;
pub mod sandbox;
pub mod signals;
pub mod text;

pub use error::{EXIT_LAUNCHER_FAILURE, Error};
