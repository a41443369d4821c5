//! What hooks leave for later: their state, kept per profile and hook and
//! handed back on the next run (fifty concurrent runs lose no update); a
//! failing hook's error message; the run records, `antimony log`, and the
//! pruning of old records.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::process::Child;
use std::time::Duration;

use serde_json::Value;

use super::{all_records, records_of};
use crate::fixture::*;
use crate::support::*;

pub fn tests() -> Vec<Trial> {
    both_each(
        "hooks::state_and_records",
        &[
            ("state_is_kept_and_handed_back", state_kept),
            (
                "fifty_concurrent_runs_lose_no_state_update",
                state_concurrent,
            ),
            ("a_failing_hooks_error_message_is_reported", error_message),
            ("run_records_and_antimony_log", run_records),
            ("old_run_records_are_pruned", pruning),
        ],
    )
}

// ------------------------------------------------------------ state

/// A counter kept in the hook's state: read from the JSON input, printed
/// back as an update. The pause between the read and the reply widens the
/// window a lost update would need.
fn counter() -> Hook {
    Hook::pre().name("counter").stdin().content(
        r#"input=$(cat)
printf '%s\n' "$input" > "@OUT@/input-$ANTIMONY_INSTANCE"
n=$(printf '%s' "$input" | grep -o '"counter_n":[0-9]*' | cut -d: -f2)
n=${n:-0}
sleep 0.01
echo "counter output $n"
echo "{\"state\": {\"update\": {\"counter_n\": $((n+1)), \"old\": \"x$n\"}, \"remove\": [\"old\"]}}"
"#,
    )
}

/// The JSON inputs the counter saved, removed as they are read.
fn take_inputs(f: &Fixture) -> Result<Vec<Value>, String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&f.out)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("input-") {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            let _ = std::fs::remove_file(entry.path());
            found.push(serde_json::from_slice(&bytes).map_err(|e| e.to_string())?);
        }
    }
    Ok(found)
}

/// State updates and removals are kept per profile and hook and handed
/// back on the next run; the reply line is not output; another profile's
/// hook of the same name has a state of its own.
fn state_kept(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile("stateful", &Profile::on("sh").hook(counter()));
    f.profile("other", &Profile::on("sh").hook(counter()));
    let mut states = Vec::new();
    for profile in ["stateful", "stateful", "other", "stateful"] {
        let out = f.run(profile, "true").run();
        ensure!(out.code() == Some(0), "{}", out.show());
        ensure!(
            out.stdout.contains("counter output") && !out.stdout.contains("\"state\""),
            "the hook's output, without its state reply, is antimony's: {}",
            out.show()
        );
        let inputs = take_inputs(&f)?;
        ensure!(inputs.len() == 1, "inputs: {inputs:?}");
        states.push((profile, inputs[0]["hook"]["state"].clone()));
    }
    // `remove` applies before `update`: after each run, `old` is this run's.
    let want = [
        ("stateful", serde_json::json!({})),
        ("stateful", serde_json::json!({"counter_n": 1, "old": "x0"})),
        ("other", serde_json::json!({})),
        ("stateful", serde_json::json!({"counter_n": 2, "old": "x1"})),
    ];
    ensure!(states == want, "states handed back: {states:?}");
    // Kept where the man page says, readable by its owner only.
    let file = f.state_home("state/stateful/counter.json");
    let saved: Value = serde_json::from_slice(
        &std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?,
    )
    .map_err(|e| e.to_string())?;
    ensure!(
        saved == serde_json::json!({"counter_n": 3, "old": "x2"}),
        "saved: {saved}"
    );
    let mode = std::fs::metadata(f.state_home("state/stateful"))
        .map_err(|e| e.to_string())?
        .mode();
    ensure!(mode & 0o077 == 0, "the state folder has mode {mode:o}");
    pass()
}

/// Fifty runs of one profile at once, each adding one to a counter in its
/// hook's state: the runs of the hook are serialized, so the count is 50.
fn state_concurrent(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "count",
        &Profile::on("minimal").path("/bin/true").hook(counter()),
    );
    let runs: Vec<Child> = (0..50)
        .map(|_| f.s.antimony(["run", "count"]).spawn())
        .collect();
    let mut failures = Vec::new();
    for mut child in runs {
        let status = wait_exit(&mut child, Duration::from_secs(120));
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        if status.is_none_or(|s| !s.success()) {
            failures.push(format!("{status:?}: {err}"));
        }
    }
    ensure!(failures.is_empty(), "runs failed: {failures:?}");
    let inputs = take_inputs(&f)?;
    let seen: BTreeSet<i64> = inputs
        .iter()
        .map(|v| v["hook"]["state"]["counter_n"].as_i64().unwrap_or(0))
        .collect();
    ensure!(
        seen == (0..50).collect(),
        "the runs did not each see the one before: {seen:?}"
    );
    let file = f.state_home("state/count/counter.json");
    let saved: Value = serde_json::from_slice(
        &std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?,
    )
    .map_err(|e| e.to_string())?;
    ensure!(saved["counter_n"] == 50, "updates were lost: {saved}");
    pass()
}

/// A failing hook's `{"error": {"message": …}}` is what antimony reports
/// (and records), and its state update is not applied.
fn error_message(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "grumpy",
        &Profile::on("sh").hook(Hook::pre().name("grumpy").stdin().content(
            r#"cat > @OUT@/input.json
echo '{"state": {"update": {"tries": 1}}}'
echo '{"error": {"message": "the disk is full"}}'
exit 3
"#,
        )),
    );
    for _ in 0..2 {
        let out = f.run("grumpy", "echo program >> @OUT@/log").run();
        ensure!(out.code() == Some(125), "{}", out.show());
        error_line(&out, &["grumpy", "the disk is full"])?;
        ensure!(
            !out.stdout.contains("the disk is full"),
            "the reply was passed on as output: {}",
            out.show()
        );
    }
    ensure!(f.log().is_empty(), "the program ran");
    let input = f.json("input.json")?;
    ensure!(
        input["hook"]["state"] == serde_json::json!({}),
        "a failed hook's state update was applied: {input:#}"
    );
    let record = records_of(&f, "grumpy");
    let hook = record
        .last()
        .and_then(|r| r["hooks"].get(0).cloned())
        .unwrap_or_default();
    ensure!(
        hook["error"] == "the disk is full" && hook["exit_code"] == 3,
        "the record: {hook}"
    );
    pass()
}

// ------------------------------------------------------------ run records

/// Every run writes a record: the program's outcome and each hook's event,
/// name, start, duration, status and the first 4 KiB of its output;
/// `antimony log` shows them as a table (with `--hooks`, each hook) and as
/// JSON.
fn run_records(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile(
        "recorded",
        &Profile::on("sh").hooks([
            Hook::pre().name("talker").content(
                r#"echo "hello from talker"
head -c 6000 /dev/zero | tr '\0' x
echo
echo "$ANTIMONY_INSTANCE" > @OUT@/instance
"#,
            ),
            Hook::started()
                .name("st")
                .content("exec 3>@OUT@/st.end; echo st-out >&2"),
            Hook::post()
                .name("grumpy")
                .can_fail()
                .content("echo grumpy-out; exit 3"),
        ]),
    );
    f.profile("unrelated", &Profile::on("sh"));
    // The program ends once the started hook has (its status is then its
    // own, not the SIGTERM of the sandbox's end).
    f.fifo("st.end")?;
    let before = now();
    let out = f.run("recorded", "cat @OUT@/st.end; exit 4").run();
    let after = now();
    ensure!(out.code() == Some(4), "{}", out.show());
    let out2 = f.run("unrelated", "exit 0").run();
    ensure!(out2.code() == Some(0), "{}", out2.show());
    let instance = f.read("instance").trim().to_string();

    let runs = f.state_home("runs");
    let mode = std::fs::metadata(&runs).map_err(|e| e.to_string())?.mode();
    ensure!(mode & 0o077 == 0, "the runs folder has mode {mode:o}");
    let records = records_of(&f, "recorded");
    ensure!(records.len() == 1, "records: {records:?}");
    let r = &records[0];
    let fail = |what: &str| format!("{what}: {r:#}");
    ensure!(r["instance"] == instance.as_str(), "{}", fail("instance"));
    ensure!(
        r["outcome"] == "exited" && r["exit_code"] == 4 && r["status"] == 4,
        "{}",
        fail("outcome")
    );
    ensure!(r["program"] == "/bin/sh", "{}", fail("program"));
    let started = r["started_at"].as_f64().unwrap_or(0.0);
    ensure!(
        started >= before - 1.0 && started <= after + 1.0,
        "{}",
        fail("started_at is not the run's")
    );
    let hooks = r["hooks"].as_array().cloned().unwrap_or_default();
    let summary: Vec<(String, String, String)> = hooks
        .iter()
        .map(|h| {
            (
                h["event"].as_str().unwrap_or("").to_string(),
                h["name"].as_str().unwrap_or("").to_string(),
                h["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want = [
        ("pre", "pre-hook `talker`", "ok"),
        ("started", "started-hook `st`", "ok"),
        ("post", "post-hook `grumpy`", "exit 3"),
    ];
    ensure!(
        summary.len() == 3
            && summary
                .iter()
                .zip(want)
                .all(|(a, b)| a.0 == b.0 && a.1 == b.1 && a.2 == b.2),
        "hooks: {summary:?}"
    );
    let mut previous = started;
    for h in &hooks {
        let at = h["started_at"].as_f64().unwrap_or(0.0);
        ensure!(
            at >= previous && at <= after + 1.0 && h["duration_ms"].is_u64(),
            "a hook's start or duration: {h:#}"
        );
        previous = at;
    }
    let talker = &hooks[0];
    let output = talker["output"].as_str().unwrap_or("");
    ensure!(
        output.starts_with("hello from talker\nxxx")
            && output.len() == 4096
            && talker["output_truncated"] == true,
        "the talker's output head: {} bytes, truncated {}",
        output.len(),
        talker["output_truncated"]
    );
    ensure!(
        hooks[1]["output"] == "st-out\n" && hooks[1]["output_truncated"] == false,
        "stderr is kept: {:#}",
        hooks[1]
    );
    ensure!(
        hooks[2]["output"] == "grumpy-out\n" && hooks[2]["exit_code"] == 3,
        "{:#}",
        hooks[2]
    );

    // `antimony log`: a table, newest last.
    let log = f.s.antimony(["log"]).run();
    ensure!(log.code() == Some(0), "{}", log.show());
    let lines: Vec<&str> = log.stdout.lines().collect();
    ensure!(
        lines.len() == 3 && lines[0].starts_with("STARTED (UTC)") && lines[0].contains("PROFILE"),
        "antimony log: {}",
        log.show()
    );
    ensure!(
        lines[1].contains("recorded")
            && lines[1].contains(&instance)
            && lines[1].contains("exit 4")
            && lines[1].contains("3 (1 failed)")
            && lines[2].contains("unrelated"),
        "antimony log rows: {}",
        log.show()
    );
    let log = f.s.antimony(["log", "recorded", "--hooks"]).run();
    ensure!(log.code() == Some(0), "{}", log.show());
    ensure!(
        !log.stdout.contains("unrelated")
            && log
                .stdout
                .lines()
                .any(|l| l.contains("post") && l.contains("grumpy") && l.contains("exit 3"))
            && log
                .stdout
                .lines()
                .any(|l| l.contains("talker") && l.contains("ok")),
        "antimony log recorded --hooks: {}",
        log.show()
    );
    let log = f.s.antimony(["log", "--json", "-n", "1"]).run();
    ensure!(log.code() == Some(0), "{}", log.show());
    let v: Value = serde_json::from_str(&log.stdout).map_err(|e| format!("{e}: {}", log.show()))?;
    ensure!(
        v.as_array().is_some_and(|a| a.len() == 1) && v[0]["profile"] == "unrelated",
        "antimony log --json -n 1: {v:#}"
    );
    let log = f.s.antimony(["log", "recorded", "--json"]).run();
    let v: Value = serde_json::from_str(&log.stdout).map_err(|e| format!("{e}: {}", log.show()))?;
    ensure!(v[0] == *r, "antimony log --json is not the record: {v:#}");
    pass()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Adds a made-up run record `seconds_ago` old to the log.
fn fake_record(f: &Fixture, name: &str, seconds_ago: f64) {
    let at = now() - seconds_ago;
    let record = serde_json::json!({
        "profile": "fake", "instance": name, "started_at": at, "duration_ms": 1,
        "program": "/bin/true", "arguments": [], "outcome": "exited", "exit_code": 0,
        "status": 0, "hooks": []
    });
    let log = "home/.local/state/antimony/runs/log.jsonl";
    let before = std::fs::read_to_string(f.s.path(log)).unwrap_or_default();
    f.s.write(log, &format!("{before}{record}\n"));
}

/// The instances of the records in the log.
fn record_names(f: &Fixture) -> BTreeSet<String> {
    all_records(f)
        .iter()
        .filter_map(|r| r["instance"].as_str().map(String::from))
        .collect()
}

/// Records older than 30 days go, and so do all but the 200 that started
/// last. A run prunes about one time in sixteen (reading the whole log
/// costs more than appending a record), so the test runs until one has.
fn pruning(who: Who) -> TestResult {
    let f = fixture!(who);
    f.profile("pruned", &Profile::on("minimal").path("/bin/true"));
    for i in 0..3 {
        fake_record(&f, &format!("aged{i}"), 40.0 * 86400.0 + f64::from(i));
    }
    for i in 0..10 {
        fake_record(&f, &format!("recent{i:03}"), 7200.0 - f64::from(i));
    }
    let mut runs = 0;
    while record_names(&f).iter().any(|n| n.contains("aged")) {
        ensure!(runs < 200, "no run pruned the aged records in {runs} runs");
        let out = f.s.antimony(["run", "pruned"]).run();
        ensure!(out.code() == Some(0), "{}", out.show());
        runs += 1;
    }
    let names = record_names(&f);
    ensure!(
        names.len() == 10 + runs,
        "after pruning the aged: {names:?}"
    );
    for i in 10..200 {
        fake_record(&f, &format!("recent{i:03}"), 7200.0 - f64::from(i));
    }
    // 200 made up and the real ones: the oldest made-up ones go.
    let mut more = 0;
    while record_names(&f).len() > 200 || more == 0 {
        ensure!(more < 200, "no run pruned to 200 records in {more} runs");
        let out = f.s.antimony(["run", "pruned"]).run();
        ensure!(out.code() == Some(0), "{}", out.show());
        more += 1;
        if record_names(&f).len() == 200 {
            break;
        }
    }
    let names = record_names(&f);
    let real = records_of(&f, "pruned").len();
    ensure!(
        names.len() == 200 && real == runs + more,
        "after pruning to 200: {} records, {real} of them real (of {})",
        names.len(),
        runs + more
    );
    let gone: Vec<String> = (0..200)
        .map(|i| format!("recent{i:03}"))
        .filter(|r| !names.contains(r))
        .collect();
    let expected: Vec<String> = (0..real).map(|i| format!("recent{i:03}")).collect();
    ensure!(
        gone == expected,
        "the oldest made-up records should have gone: {gone:?}"
    );
    pass()
}
