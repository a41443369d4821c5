//! Hooks, feature by feature, with real hooks, real sandboxes and real
//! signals, as root and as an unprivileged user.
//!
//! Hooks and programs append what they see to a log in the scratch's `out`
//! folder (bound read-write into the sandbox); the tests check the recorded
//! order, never an absolute time. Time limits only catch hangs and are
//! generous. Profiles are built with [`Profile`] and [`Hook`]
//! (`support.rs`); the hooks that record in `out` are in `fixture.rs`.

mod attached;
mod dropins;
mod events;
mod identity_and_io;
mod refusals;
mod reusable;
mod signals_and_timeouts;
mod state_and_records;

use serde_json::Value;

use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(events::tests());
    t.extend(attached::tests());
    t.extend(identity_and_io::tests());
    t.extend(signals_and_timeouts::tests());
    t.extend(state_and_records::tests());
    t.extend(dropins::tests());
    t.extend(reusable::tests());
    t.extend(refusals::tests());
    t
}

/// Every run record in the log, in its order (oldest first).
fn all_records(f: &Fixture) -> Vec<Value> {
    std::fs::read_to_string(f.state_home("runs").join("log.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// Every run record of a profile, oldest first.
fn records_of(f: &Fixture, profile: &str) -> Vec<Value> {
    all_records(f)
        .into_iter()
        .filter(|r| r["profile"] == profile)
        .collect()
}

/// A profile on `sh` whose one pre-hook is the shipped `wait-for-port`
/// with this `config` (an inline table).
fn wait_for_port(config: &str) -> Profile {
    Profile::on("sh").hook(Hook::pre().uses("wait-for-port").config(config))
}
