//! The JSON a hook reads on stdin with `stdin = true` (Sensu's hook input,
//! Razor's event input): one object describing the run, then end of file.

use serde_json::{Map, Value, json};

use crate::plan::{Plan, PlannedHook};
use crate::profile::Outcome;

/// What is known about the run when a hook starts.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// The program's PID, once it has started: on the host, or inside the
    /// sandbox for a hook that runs there.
    pub pid: Option<u32>,
    /// How it ended (post-hooks).
    pub outcome: Option<Outcome>,
}

/// The object written to a hook's stdin.
pub fn input(plan: &Plan, run: &RunState, hook: &PlannedHook, state: &Map<String, Value>) -> Value {
    let outcome = run.outcome.as_ref().map(|o| match o {
        Outcome::Exited(code) => json!({"kind": "exited", "code": code}),
        Outcome::Signaled(sig) => json!({"kind": "signaled", "signal": sig}),
        Outcome::LaunchFailed(msg) => json!({"kind": "launch-failed", "error": msg}),
    });
    json!({
        "event": hook.hook.event.key(),
        "profile": plan.name,
        "instance": plan.instance,
        "program": plan.program.to_string_lossy(),
        "arguments": plan.argv.iter().skip(1).map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
        "pid": run.pid,
        "outcome": outcome,
        "hook": {
            "name": hook.hook.name.clone().unwrap_or_else(|| hook.hook.label()),
            "config": serde_json::to_value(&hook.config).unwrap_or(Value::Null),
            "state": state,
        },
    })
}
