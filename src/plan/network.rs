//! The sandbox's network: none (a namespace of its own with loopback
//! only), the host's, or an isolated one: a namespace of its own that
//! `pasta` (from passt) connects to the outside.
//!
//! pasta runs on the host as the user, joined to the sandbox's user and
//! network namespaces: it gives the namespace an interface with the
//! host's address and routes, and carries the sandbox's TCP, UDP and ICMP
//! over ordinary sockets of the user's on the host. Options that matter
//! (`pipeline::network` passes them):
//! - `--no-map-gw`: the gateway's address is the real gateway, not a way
//!   to the host's loopback;
//! - `-T none -U none`: no port of the host's loopback is forwarded into
//!   the namespace's (pasta's default forwards every bound one);
//! - `-t none -u none`, or the profile's `forward_ports` bound on the
//!   host's 127.0.0.1 only;
//! - `--dns-forward DNS`: queries to `DNS` go to the host's resolver (the
//!   first `nameserver` of the host's resolv.conf, which may be on the
//!   host's loopback); the sandbox's own resolv.conf names `DNS`.
//!
//! pasta copies the host's address into the namespace: there it is the
//! sandbox's own, so the host's services bound to it are out of reach as
//! well. pasta has no filter of its own for the rest: the local network and
//! the host's other addresses would be reached through its sockets. So the
//! sandbox's init, which holds CAP_NET_ADMIN in the namespace's user
//! namespace until it drops its capabilities, adds routing-policy rules
//! there (`FR_ACT_PROHIBIT`: connect fails with EACCES) for the private
//! ranges (unless `local_network`) and the host's own addresses, after
//! the lookup of the namespace's local table (priority 0: its own
//! addresses and loopback stay reachable) and after one that lets the DNS
//! address through. Rules rather than routes: pasta's routes to the
//! host's subnet are more specific than a blocking route for its range,
//! and rules win whatever the routes are. Nothing inside can change them:
//! the program has no capabilities, and a user namespace it creates has
//! none over this network namespace (owned by the sandbox's).
//!
//! Host abstract unix sockets live in the host's network namespace: an
//! isolated sandbox has none of them (the Landlock scope on abstract
//! sockets stays on; see `landlock`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::host::HostView;
use crate::profile::{NetworkMode, SandboxSettings};

/// Where the sandbox's DNS queries go: pasta forwards them to the host's
/// resolver. Link-local (169.254/16, otherwise blocked), unused on the
/// host's side: the address pasta itself proposes for this.
pub const DNS: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// The sandbox's /etc/resolv.conf when isolated.
pub fn resolv_conf() -> Vec<u8> {
    format!("# antimony: isolated network; pasta forwards DNS to the host's resolver\nnameserver {DNS}\n")
        .into_bytes()
}

/// Where pasta is looked for (fixed system folders: it runs on the host
/// with the user's rights; the user's PATH is not asked).
pub const PASTA_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// The private, link-local, shared and unique-local ranges: the local
/// network, blocked unless `local_network = true`.
pub const LOCAL_RANGES: &[(IpAddr, u8)] = &[
    (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8),
    (IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)), 12),
    (IpAddr::V4(Ipv4Addr::new(192, 168, 0, 0)), 16),
    (IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),
    (IpAddr::V4(Ipv4Addr::new(100, 64, 0, 0)), 10),
    (IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 7),
    (IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
];

/// One routing-policy rule in the sandbox's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub addr: IpAddr,
    pub prefix: u8,
    /// Let through (look the main table up) rather than prohibit.
    pub allow: bool,
    pub why: &'static str,
}

impl Rule {
    /// Priorities: after the local table's (0), the exceptions first.
    pub fn priority(&self) -> u32 {
        if self.allow { 100 } else { 200 }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.allow {
            "allowed   "
        } else {
            "prohibited"
        };
        write!(f, "{verb} {}/{} ({})", self.addr, self.prefix, self.why)
    }
}

/// The isolated network's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolated {
    /// pasta, where found (`None`: the launch fails and says how to fix it).
    pub pasta: Option<PathBuf>,
    /// TCP ports forwarded from the host's 127.0.0.1 into the sandbox.
    pub forward_ports: Vec<u16>,
    pub local_network: bool,
    /// The rules init adds, in order.
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    pub mode: NetworkMode,
    /// With `mode == Isolated`.
    pub isolated: Option<Isolated>,
}

impl NetworkPlan {
    pub fn build(mode: NetworkMode, sb: &SandboxSettings, fs: &dyn HostView) -> NetworkPlan {
        let isolated = (mode == NetworkMode::Isolated).then(|| {
            let mut rules = vec![Rule {
                addr: IpAddr::V4(DNS),
                prefix: 32,
                allow: true,
                why: "DNS, forwarded by pasta",
            }];
            if !sb.local_network {
                rules.extend(LOCAL_RANGES.iter().map(|&(addr, prefix)| Rule {
                    addr,
                    prefix,
                    allow: false,
                    why: "local network",
                }));
            }
            for addr in fs.addresses() {
                let prefix = if addr.is_ipv4() { 32 } else { 128 };
                rules.push(Rule {
                    addr,
                    prefix,
                    allow: false,
                    why: "the host's own address",
                });
            }
            Isolated {
                pasta: fs.find_program("pasta", PASTA_PATH),
                forward_ports: sb.forward_ports.clone(),
                local_network: sb.local_network,
                rules,
            }
        });
        NetworkPlan { mode, isolated }
    }

    /// Whether the sandbox gets a network namespace of its own.
    pub fn own_namespace(&self) -> bool {
        self.mode != NetworkMode::Host
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::view::fake::FakeHost;

    #[test]
    fn isolated_blocks_the_local_network_unless_allowed() {
        let fs = FakeHost::new();
        let mut sb = SandboxSettings {
            forward_ports: vec![8080],
            ..SandboxSettings::default()
        };
        let p = NetworkPlan::build(NetworkMode::Isolated, &sb, &fs);
        assert!(p.own_namespace());
        let iso = p.isolated.unwrap();
        assert_eq!(iso.forward_ports, [8080]);
        assert!(iso.rules[0].allow && iso.rules[0].addr == IpAddr::V4(DNS));
        assert_eq!(iso.rules.len(), 1 + LOCAL_RANGES.len());
        assert!(iso.rules[1..].iter().all(|r| !r.allow));
        sb.local_network = true;
        let iso = NetworkPlan::build(NetworkMode::Isolated, &sb, &fs)
            .isolated
            .unwrap();
        assert_eq!(iso.rules.len(), 1);
        assert!(
            NetworkPlan::build(NetworkMode::Host, &sb, &fs)
                .isolated
                .is_none()
        );
        assert!(!NetworkPlan::build(NetworkMode::Host, &sb, &fs).own_namespace());
    }
}
