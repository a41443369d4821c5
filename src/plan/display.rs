//! `--dry-run`: the plan written for people.

use std::fmt;

use super::Plan;
use crate::profile::{HookEvent, LandlockMode};

fn quote(s: &std::ffi::OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:+,@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn write_network(f: &mut fmt::Formatter<'_>, n: &super::NetworkPlan) -> fmt::Result {
    use crate::profile::NetworkMode;
    match (n.mode, &n.isolated) {
        (NetworkMode::Off, _) => writeln!(f, "network: none (loopback only)"),
        (NetworkMode::Host, _) => writeln!(
            f,
            "network: the host's (its network namespace: the host's loopback services, abstract sockets and local network are reachable)"
        ),
        (NetworkMode::Isolated, None) => writeln!(f, "network: isolated"),
        (NetworkMode::Isolated, Some(iso)) => {
            let pasta = match &iso.pasta {
                Some(p) => p.display().to_string(),
                None => "not found: install passt".into(),
            };
            writeln!(
                f,
                "network: isolated (a namespace of its own, connected by pasta: {pasta}); DNS at {}, forwarded to the host's resolver; the host's loopback is not reachable",
                super::network::DNS
            )?;
            if iso.forward_ports.is_empty() {
                writeln!(f, "  ports forwarded into the sandbox: none")?;
            } else {
                let list: Vec<String> = iso.forward_ports.iter().map(u16::to_string).collect();
                writeln!(
                    f,
                    "  ports forwarded into the sandbox: TCP {}, from the host's 127.0.0.1",
                    list.join(", ")
                )?;
            }
            if iso.local_network {
                writeln!(
                    f,
                    "  local network: reachable (profile: local_network = true)"
                )?;
            }
            for r in &iso.rules {
                writeln!(f, "  {r}")?;
            }
            Ok(())
        }
    }
}

/// Landlock's port rules (ABI 4).
fn write_ports(f: &mut fmt::Formatter<'_>, ll: &super::LandlockPlan) -> fmt::Result {
    // LANDLOCK_ACCESS_NET_BIND_TCP = 1, LANDLOCK_ACCESS_NET_CONNECT_TCP = 2.
    for (bit, what, key) in [
        (2u64, "TCP connect", "tcp_connect"),
        (1, "TCP bind", "tcp_bind"),
    ] {
        if ll.handled_net & bit == 0 {
            continue;
        }
        let ports: Vec<String> = ll
            .ports
            .iter()
            .filter(|(_, b)| b & bit != 0)
            .map(|(p, _)| p.to_string())
            .collect();
        if ports.is_empty() {
            writeln!(f, "  {what}: no port (profile: {key} = [])")?;
        } else {
            writeln!(
                f,
                "  {what}: ports {} only (profile: {key})",
                ports.join(", ")
            )?;
        }
    }
    Ok(())
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "profile: {}", self.name)?;
        let argv: Vec<String> = self.argv.iter().map(|a| quote(a)).collect();
        writeln!(f, "program: {}", self.program.display())?;
        writeln!(f, "argv: {}", argv.join(" "))?;
        writeln!(f, "working directory: {}", self.cwd.display())?;
        writeln!(
            f,
            "user: uid {} gid {} (mapped to the same ids outside; no capabilities)",
            self.uid, self.gid
        )?;
        writeln!(f, "namespaces: {}", self.namespaces.names().join(", "))?;
        write_network(f, &self.network)?;
        let home = match &self.host_home {
            Some(h) => format!("{:?} from {}", self.home_policy, h.display()),
            None => "None (empty, private, discarded at exit)".into(),
        };
        writeln!(f, "home: {} at {}", home, self.home.display())?;

        writeln!(
            f,
            "\nmounts (in order, on an empty tmpfs root; all nosuid, nodev unless dev):"
        )?;
        for m in &self.mounts {
            writeln!(f, "  {m}")?;
        }
        writeln!(
            f,
            "  then: the root is made read-only, pivot_root, old root detached"
        )?;
        if !self.forwards.is_empty() {
            writeln!(
                f,
                "\nforwarded (files the arguments name, bound at their place above):"
            )?;
            for fw in &self.forwards {
                let what = if fw.folder { "folder" } else { "file" };
                let from = if fw.source != fw.path {
                    format!(" ← {}", fw.source.display())
                } else {
                    String::new()
                };
                writeln!(
                    f,
                    "  {:<7} {}{from} ({what}, argument {})",
                    fw.mode.key(),
                    fw.path.display(),
                    fw.arg
                )?;
            }
        }
        if self.single_instance {
            writeln!(
                f,
                "\nsingle instance: while this runs, `antimony run {}` runs its command in it; files that run forwards are bound under {}",
                self.name,
                super::FORWARD_AREA
            )?;
        }
        if let Some(c) = &self.package_config {
            let from = if c.packages.is_empty() {
                "no Debian package ships the program".to_string()
            } else {
                format!("from the package(s) {}", c.packages.join(", "))
            };
            writeln!(
                f,
                "\npackage_config ({from}): {}",
                if c.paths.is_empty() {
                    "no /etc configuration found".to_string()
                } else {
                    let paths: Vec<String> =
                        c.paths.iter().map(|p| p.display().to_string()).collect();
                    format!("{}, read-only (in the mounts above)", paths.join(", "))
                }
            )?;
        }
        if !self.guarded.is_empty() {
            writeln!(
                f,
                "\nloaded files within the sandbox's reach, read-only there (ro-self) at the place shown, the folders on their way pinned:"
            )?;
            for g in &self.guarded {
                let at = if g.folder { "with its folder, " } else { "" };
                writeln!(
                    f,
                    "  {} ({}): {at}{}",
                    g.file.display(),
                    g.what,
                    g.dest.display()
                )?;
            }
        }

        writeln!(f, "\nenvironment (everything else is cleared):")?;
        for (k, v) in &self.env {
            writeln!(f, "  {}={}", k.to_string_lossy(), quote(v))?;
        }

        writeln!(f, "\nprocess:")?;
        writeln!(
            f,
            "  init as PID 1 (reaps zombies, forwards signals); the program runs in a new session (setsid)"
        )?;
        writeln!(
            f,
            "  no_new_privs; capabilities: none in any set (bounding, ambient, inheritable, permitted, effective)"
        )?;
        writeln!(f, "  file descriptors: only 0, 1 and 2 are passed")?;
        writeln!(f, "  dies with antimony (PDEATHSIG on PID 1)")?;

        writeln!(f, "\nlimits (default, or the profile file that set each):")?;
        write!(f, "{}", self.limits)?;

        let ll = &self.landlock;
        if ll.mode == LandlockMode::Off {
            writeln!(f, "\nlandlock: off (profile: landlock = \"off\")")?;
        } else if !ll.enforced() {
            writeln!(
                f,
                "\nlandlock: not enforced (the kernel does not implement it)"
            )?;
        } else {
            writeln!(
                f,
                "\nlandlock: ABI {} enforced (kernel ABI {}, mode {:?})",
                ll.abi, ll.kernel_abi, ll.mode,
            )?;
            // LANDLOCK_SCOPE_SIGNAL = 2, LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1.
            if ll.scoped & 2 != 0 {
                writeln!(f, "  scoped: no signals to processes outside the sandbox")?;
            }
            if ll.scoped & 1 != 0 {
                writeln!(
                    f,
                    "  scoped: no connecting to abstract unix sockets made outside"
                )?;
            } else if ll.abi >= 6 {
                writeln!(
                    f,
                    "  not scoped: abstract unix sockets, for {} (profile: abstract_sockets); every abstract socket of the host is reachable",
                    ll.abstract_sockets.join(", ")
                )?;
            }
            for r in &ll.rules {
                writeln!(f, "  {:<28} {}", r.path.display(), r.grant)?;
            }
            write_ports(f, ll)?;
        }

        match &self.seccomp {
            None => writeln!(f, "\nseccomp: off (profile: seccomp = false)")?,
            Some(s) => {
                writeln!(f, "\nseccomp: default filter")?;
                writeln!(f, "  EPERM: {}", s.denied.join(", "))?;
                for (name, what) in &s.conditional {
                    writeln!(f, "  EPERM: {name} {what}")?;
                }
                writeln!(f, "  ENOSYS: {}", s.enosys.join(", "))?;
                writeln!(f, "  other architectures: {}", s.foreign_arch)?;
            }
        }
        if self.nested_userns {
            writeln!(f, "  nested user namespaces: allowed by the profile")?;
        }
        if let Some(r) = &self.record {
            let names: Vec<&str> = super::seccomp::RECORDED
                .iter()
                .chain(super::seccomp::RECORDED_ARCH)
                .map(|c| c.name)
                .collect();
            writeln!(
                f,
                "  recording (seccomp user notification to antimony, then allowed): {}",
                names.join(", ")
            )?;
            if let Some(d) = r.stop_after {
                writeln!(f, "  the program is stopped after {} s", d.as_secs())?;
            }
        }

        if let Some(d) = &self.dbus {
            writeln!(
                f,
                "\nsession bus: {} at {}, filtered by xdg-dbus-proxy: {}",
                d.address,
                super::dbus::sandbox_socket(self.uid).display(),
                d.args.join(" ")
            )?;
            writeln!(
                f,
                "  desktop portals see the application id {} (the proxy's /.flatpak-info)",
                d.app_id
            )?;
            let p = &d.sandbox;
            let argv: Vec<String> = p.argv.iter().map(|a| quote(a)).collect();
            writeln!(
                f,
                "  the proxy's own sandbox ({}; landlock ABI {}, seccomp, no capabilities): {}",
                p.namespaces.names().join(", "),
                p.landlock.abi,
                argv.join(" ")
            )?;
            for m in &p.mounts {
                writeln!(f, "    {m}")?;
            }
        }

        writeln!(f, "\nhooks (in the order they run):")?;
        let pre: Vec<_> = self.hooks(HookEvent::Pre).collect();
        let post: Vec<_> = self.hooks(HookEvent::Post).collect();
        if pre.is_empty() && post.is_empty() {
            writeln!(f, "  none")?;
        }
        let mut n = 0;
        for (when, list) in [("before the sandbox", &pre), ("after the sandbox", &post)] {
            for h in list {
                n += 1;
                let mut flags = Vec::new();
                if h.hook.attach {
                    flags.push("attached");
                }
                if h.hook.can_fail {
                    flags.push("can fail");
                }
                if h.hook.env {
                    flags.push("full environment");
                }
                flags.push(match h.hook.identity {
                    crate::profile::Identity::User => "as the user",
                    crate::profile::Identity::System => "as antimony",
                });
                let args: Vec<String> = h.args.iter().map(|a| quote(a)).collect();
                writeln!(
                    f,
                    "  {n}. {} ({when}; {}): {} {}",
                    h.hook.label(),
                    flags.join(", "),
                    h.exec.display(),
                    args.join(" ")
                )?;
            }
        }
        if pre.iter().any(|h| h.hook.attach) {
            writeln!(
                f,
                "  attached hooks get SIGTERM when the sandbox exits, SIGKILL {:?} later",
                self.grace
            )?;
        }
        for w in &self.warnings {
            writeln!(f, "\nwarning: {w}")?;
        }
        Ok(())
    }
}
