//! The profile loader under hostile input, bounded for CI (the long,
//! coverage-guided run is `cargo fuzz run profile`, see fuzz/README.md):
//!
//! 1. every file of the committed corpus (`fuzz/corpus-min/profile/`,
//!    including the regression cases of past findings) is loaded;
//! 2. structured mutations of the shipped profiles and hooks — bytes
//!    flipped, TOML tokens inserted, lines dropped, doubled and swapped —
//!    from a fixed seed, for a bounded time.
//!
//! Each input must give a valid profile or an error positioned at
//! `file:line:column`, without a panic, in bounded time.

use std::path::Path;
use std::time::{Duration, Instant};

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    ",",
    "\n",
    "#",
    ".",
    "~",
    "?",
    "$",
    "\\",
    "\\u0000",
    "..",
    "/",
    "true",
    "false",
    "0",
    "-1",
    "1e400",
    "nan",
    "inf",
    "9223372036854775808",
    "path",
    "inherits",
    "[hooks]",
    "[[hooks.pre]]",
    "[[hooks.post]]",
    "[[hooks.started]]",
    "[[hooks.stopping]]",
    "[files]",
    "[sandbox]",
    "[home]",
    "[dbus]",
    "[environment]",
    "policy = \"Overlay\"",
    "use = \"wait-for-port\"",
    "profile = \"sh\"",
    "inherits = [\"sh\", \"minimal\"]",
    "inherits = [\"fuzz\"]",
    "inherits = [\"./fuzz.toml\"]",
    "on = [\"ok\", 300]",
    "timeout = 0",
    "inside = true",
    "attach = true",
    "config = {x = 1}",
    "ro = [\"~/a=/\"]",
    "talk = [\"org.x.*\"]",
    "rw = [\"/x=~\"]",
    "content = \"$(id)\"",
    "\u{00e9}",
    "\u{1f600}",
    "\r\n",
    "\t",
];

fn positioned(msg: &str) -> bool {
    // `file:line:column: …` somewhere in the message (the file name may
    // itself contain colons, so look for `:N:N:`).
    let b = msg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b':' {
            let digits = |mut j: usize| {
                let s = j;
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                (j > s).then_some(j)
            };
            if let Some(j) = digits(i + 1) {
                if b.get(j) == Some(&b':') {
                    if let Some(k) = digits(j + 1) {
                        if b.get(k) == Some(&b':') {
                            return true;
                        }
                    }
                }
            }
        }
        i += 1;
    }
    false
}

/// What each test thread is loading, and since when: a watchdog reads it.
type Loading = std::collections::HashMap<std::thread::ThreadId, (Instant, Vec<u8>)>;
static CURRENT: std::sync::Mutex<Option<Loading>> = std::sync::Mutex::new(None);

/// A load that never returns would stall the suite until CI's own limit:
/// after 30 s on one input, the watchdog prints the input and aborts the
/// test binary (a failure).
fn watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
                for (since, data) in current.iter().flat_map(|m| m.values()) {
                    if since.elapsed() > Duration::from_secs(30) {
                        eprintln!("hung on {:?}", String::from_utf8_lossy(data));
                        std::process::abort();
                    }
                }
            }
        });
    });
}

/// Loads one input and checks the contract.
fn check(data: &[u8]) -> Result<(), String> {
    watchdog();
    let me = std::thread::current().id();
    CURRENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(Default::default)
        .insert(me, (Instant::now(), data.to_vec()));
    let start = Instant::now();
    let result = std::panic::catch_unwind(|| antimony::profile::fuzz_error(data));
    let took = start.elapsed();
    if let Some(m) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        m.remove(&me);
    }
    match result {
        Err(_) => Err(format!("panicked on {:?}", String::from_utf8_lossy(data))),
        Ok(_) if took > Duration::from_secs(2) => Err(format!(
            "took {took:?} on {:?}",
            String::from_utf8_lossy(data)
        )),
        Ok(Some(msg)) if !positioned(&msg) => Err(format!(
            "error without a position ({msg}) on {:?}",
            String::from_utf8_lossy(data)
        )),
        Ok(_) => Ok(()),
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["profiles", "hooks"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|p| std::fs::read(p).unwrap()));
    }
    out
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(v.len() + 1);
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                v.splice(i..i, t.iter().copied());
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                let j = (i + rng.below(16)).min(v.len());
                v.drain(i..j);
            }
            _ => {
                // Line-level: drop, double or swap lines.
                let mut lines: Vec<Vec<u8>> =
                    v.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                if lines.len() > 1 {
                    let a = rng.below(lines.len());
                    let b = rng.below(lines.len());
                    match rng.below(3) {
                        0 => {
                            lines.remove(a);
                        }
                        1 => {
                            let l = lines[a].clone();
                            lines.insert(b, l);
                        }
                        _ => lines.swap(a, b),
                    }
                }
                v = lines.join(&b'\n');
            }
        }
    }
    v
}

#[test]
fn corpus_loads_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus-min/profile");
    let mut n = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the committed corpus") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        if let Err(e) = check(&data) {
            failures.push(e);
        }
        n += 1;
    }
    assert!(n > 0, "empty corpus");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mutated_shipped_profiles_never_panic() {
    let seeds = seeds();
    // Bounded: a fixed number of cases, stopped early after 20 s.
    let budget = Duration::from_secs(20);
    let start = Instant::now();
    let mut rng = Rng(0x00A1_7140_5EED_u64);
    let mut failures = Vec::new();
    let mut cases = 0;
    while cases < 200_000 && start.elapsed() < budget {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        if let Err(e) = check(&input) {
            failures.push(e);
            if failures.len() > 10 {
                break;
            }
        }
        cases += 1;
    }
    assert!(
        failures.is_empty(),
        "after {cases} cases:\n{}",
        failures.join("\n")
    );
    assert!(cases > 100, "only {cases} cases ran");
}
