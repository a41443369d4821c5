//! The smaller holes of the same class: the host's abstract unix sockets
//! with the network on, text from inside the sandbox that antimony prints,
//! hook state an inside hook could forge for a host hook, and a runtime
//! folder in /tmp that another user made first.

use std::time::Duration;

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(both(
        "hostside::misc::abstract_sockets_stay_out_of_reach_with_the_network",
        abstract_sockets,
    ));
    t
}

fn scratch(who: Who) -> Result<Scratch, TestResult> {
    Scratch::new(who).map_err(skip)
}

macro_rules! scratch {
    ($who:expr) => {
        match scratch($who) {
            Ok(s) => s,
            Err(r) => return r,
        }
    };
}

/// `antimony run PROFILE --ro PROBE=/probe EXTRA… --program /probe -- SUB…`
fn probe_in(s: &Scratch, profile: &str, extra: &[&str], sub: &[&str]) -> Run {
    s.antimony(["run", profile, "--ro"])
        .arg(format!("{}=/probe", world().probe.display()))
        .args(extra)
        .args(["--program", "/probe", "--"])
        .args(sub)
}

// ------------------------------------------------------ abstract sockets

fn accepted(l: &std::os::unix::net::UnixListener) -> usize {
    let mut n = 0;
    while l.accept().is_ok() {
        n += 1;
    }
    n
}

/// A host process listens on an abstract socket (as an X server does on
/// `@/tmp/.X11-unix/X0`). With the host's network, the sandbox shares the
/// namespace the socket lives in, and still cannot connect: not with
/// `--network`, not with `network = true`, not with a profile that names
/// other sockets without the network. The control: a profile that names
/// it, with the network, reaches it.
fn abstract_sockets(who: Who) -> TestResult {
    use std::os::linux::net::SocketAddrExt;
    let s = scratch!(who);
    let name = unique(&s, "abstract");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| e.to_string())?;
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr)
        .map_err(|e| format!("listen on @{name}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    s.profile(
        "net",
        "inherits = [\"minimal\"]\n[sandbox]\nnetwork = true\n",
    );
    s.profile(
        "named-offline",
        &format!("inherits = [\"minimal\"]\n[sandbox]\nabstract_sockets = [\"@{name}\"]\n"),
    );
    s.profile(
        "named",
        &format!(
            "inherits = [\"minimal\"]\n[sandbox]\nnetwork = true\nabstract_sockets = [\"@{name}\"]\n"
        ),
    );
    for (profile, extra) in [
        ("minimal", &["--network"][..]),
        ("net", &[][..]),
        ("named-offline", &[][..]),
    ] {
        let out = probe_in(&s, profile, extra, &["unix", &name]).run();
        blocked(&format!("{profile} {extra:?}: connect to @{name}"), &out)?;
        ensure!(
            accepted(&listener) == 0,
            "{profile}: a connection reached the host's socket"
        );
    }
    let out = probe_in(&s, "named", &[], &["unix", &name]).run();
    escaped("a profile that names the socket", &out)?;
    ensure!(
        wait_until(Duration::from_secs(5), || accepted(&listener) == 1),
        "the named socket's connection did not arrive"
    );
    pass()
}
