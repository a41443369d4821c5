//! Running instances, from both ends: the record each `antimony run`
//! keeps in the registry while its program runs (`registry`: ids, records,
//! their verification, listing and finding), the messages on an
//! instance's `control` socket (`wire`), what the supervising antimony
//! serves on it (`server`; and its `--status-fd` lines, `status`), and what
//! `ps`, `enter` and `stop` do on the other side (`client`: connect to a
//! verified record, send a request, relay an entered command's terminal or
//! pipes). It may call `host` (where the registry is), `procfs`, `pty`,
//! `signals` and the leaf `error`, and takes from `sandbox::protocol` only
//! the values it forwards to init or relays from it (a terminal request,
//! init's answers about an entered command); it never calls `pipeline` or
//! `commands`, and reports nothing itself: failures are returned, as
//! `InstanceError`, for the commands to print.

pub mod client;
mod error;
pub mod join;
pub mod registry;
pub mod server;
mod status;
pub mod wire;

pub use client::ConnectError;
pub use error::InstanceError;
pub use registry::{
    Forged, Found, Info, Registration, Stale, ambiguous, find, instance_id, list, matching,
    registry_problem,
};
pub use status::StatusFd;
