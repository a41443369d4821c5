//! Times commands one launch at a time, in turn (A B A B …), as
//! `hyperfine -N` times one (spawned directly, no shell; stdout to a pipe
//! that is read to its end), for differences smaller than a machine's
//! drift between two hyperfine runs. Used by `benches/launch.sh`.
//!
//!     interleave PAIRS [--start] ::: CMD… [::: CMD…]…
//!
//! Prints one line per command: `median_ms p25_ms p75_ms`; with two
//! commands, a third line, the same of the paired differences (the second
//! command's time minus the first's, round by round). With `--start`,
//! each command prints the wall-clock time it started (`date +%s.%N`) and
//! the figures are from the launch to that time, not to its end.
//! Any command that fails ends the run (exit status 1).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn usage() -> ! {
    eprintln!("usage: interleave PAIRS [--start] ::: CMD... [::: CMD...]...");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // cargo bench passes --bench to every bench target.
    let args: Vec<String> = args.into_iter().filter(|a| a != "--bench").collect();
    if args.is_empty() {
        // `cargo test --all-targets` runs every bench target once, bare.
        println!("interleave: a timer for benches/launch.sh; nothing to test");
        return;
    }
    let Some(rounds) = args.first().and_then(|n| n.parse::<usize>().ok()) else {
        usage()
    };
    let mut rest = &args[1..];
    let start = rest.first().is_some_and(|a| a == "--start");
    if start {
        rest = &rest[1..];
    }
    let mut cmds: Vec<Vec<String>> = Vec::new();
    for a in rest {
        if a == ":::" {
            cmds.push(Vec::new());
        } else if let Some(c) = cmds.last_mut() {
            c.push(a.clone());
        } else {
            usage()
        }
    }
    if cmds.is_empty() || cmds.iter().any(Vec::is_empty) {
        usage()
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); cmds.len()];
    // Three warm-up rounds, not counted.
    for round in 0..rounds + 3 {
        for (i, c) in cmds.iter().enumerate() {
            let t = run(c, start);
            if round >= 3 {
                times[i].push(t);
            }
        }
    }
    // Two commands: also the median of the paired differences (B − A of
    // each round), which the machine's drift between rounds cancels out of.
    let mut paired: Option<Vec<f64>> =
        (times.len() == 2).then(|| times[1].iter().zip(&times[0]).map(|(b, a)| b - a).collect());
    for t in times.iter_mut().chain(paired.as_mut()) {
        t.sort_by(f64::total_cmp);
        let at = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
        println!("{:.3} {:.3} {:.3}", at(0.5), at(0.25), at(0.75));
    }
}

/// One launch: milliseconds to its end, or to the start it printed.
fn run(cmd: &[String], start: bool) -> f64 {
    let wall = SystemTime::now();
    let t0 = Instant::now();
    let mut child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| fail(cmd, &e.to_string()));
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    let status = child.wait().unwrap_or_else(|e| fail(cmd, &e.to_string()));
    let elapsed = t0.elapsed().as_secs_f64() * 1000.0;
    if !status.success() {
        fail(cmd, &status.to_string());
    }
    if !start {
        return elapsed;
    }
    let launched = wall
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    match out.trim().parse::<f64>() {
        Ok(s) => (s - launched) * 1000.0,
        Err(_) => fail(cmd, &format!("printed {out:?}, not a time")),
    }
}

fn fail(cmd: &[String], why: &str) -> ! {
    eprintln!("interleave: {}: {why}", cmd.join(" "));
    std::process::exit(1)
}
