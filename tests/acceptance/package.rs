//! The Debian package's parts that a test can check without installing it
//! (the install test is tests/install/run, run by scripts/test): the
//! AppArmor profile parses with an AppArmor 4 parser (the first that knows
//! the `userns` rule), a broken copy does not, and it grants nothing but
//! user namespaces.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::Trial;

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    vec![case(
        "package::apparmor_profile_parses_and_grants_only_userns",
        apparmor_profile,
    )]
}

/// Where scripts/preconditions unpacks Debian 13's parser when the host's
/// is older than AppArmor 4.
const UNPACKED: &str = "/var/cache/antimony-test/apparmor4/root";

/// `apparmor_parser -Q` (syntax only, nothing loaded) on `profile`, with
/// an AppArmor 4 parser; None when there is none.
fn parse(profile: &Path) -> Option<std::process::Output> {
    let host_is_4 = Command::new("apparmor_parser")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| {
            v.split_whitespace()
                .skip_while(|w| *w != "version")
                .nth(1)
                .and_then(|n| n.split('.').next()?.parse::<u32>().ok())
        })
        .is_some_and(|major| major >= 4);
    let mut cmd = if host_is_4 {
        Command::new("apparmor_parser")
    } else {
        let root = PathBuf::from(UNPACKED);
        if !root.join("usr/sbin/apparmor_parser").exists() {
            return None;
        }
        // Debian 13's parser needs its own C library: through its loader.
        let mut c = Command::new(root.join("usr/lib64/ld-linux-x86-64.so.2"));
        c.arg("--library-path")
            .arg(root.join("usr/lib/x86_64-linux-gnu"))
            .arg(root.join("usr/sbin/apparmor_parser"))
            .arg("--base")
            .arg(root.join("etc/apparmor.d"));
        c
    };
    cmd.args(["--skip-kernel-load", "--skip-cache", "-Q"])
        .arg(profile);
    cmd.output().ok()
}

fn apparmor_profile() -> TestResult {
    let profile = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/apparmor/antimony");
    let Some(out) = parse(&profile) else {
        return skip(format!(
            "no AppArmor 4 parser (the host's is older, and {UNPACKED} is missing: run scripts/preconditions)"
        ));
    };
    ensure!(
        out.status.success(),
        "apparmor_parser -Q refuses the profile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The check is real: a broken rule is refused.
    let text = std::fs::read_to_string(&profile).map_err(|e| e.to_string())?;
    let scratch = scratch!(Who::Root);
    let broken = scratch.write("broken", &text.replace("  userns,", "  userns bogus,"));
    let out = parse(&broken).ok_or("the parser went away")?;
    ensure!(!out.status.success(), "a broken profile parsed");
    // What it grants: the profile block holds `userns,` and the local
    // include, nothing else; it is attached to the installed path only.
    let body: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    ensure!(
        body == [
            "abi <abi/4.0>,",
            "include <tunables/global>",
            "profile antimony /usr/bin/antimony flags=(unconfined) {",
            "userns,",
            "include if exists <local/antimony>",
            "}",
        ],
        "the profile holds more than the userns rule: {body:?}"
    );
    pass()
}
