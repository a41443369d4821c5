//! The Landlock model: which access rights the ruleset handles, and which
//! rights each place in the sandbox grants. `sandbox::landlock` applies it.
//!
//! Landlock rules attach to inodes and cover everything beneath them, so one
//! rule per mount point mirrors the mount list: read-only binds may read and
//! execute, writable places may do everything, devices may read, write and
//! ioctl. The root itself only lists folders.

use std::fmt;
use std::path::PathBuf;

use landlock::{ABI, Access, AccessFs, AccessNet, BitFlags, Scope};

use super::mounts::{Mount, Op, PathMap};
use crate::profile::{BindMode, LandlockMode};

/// The ABI `landlock = "strict"` demands: filesystem rights including
/// `ioctl` on devices (v5) and scoping of signals and abstract sockets (v6).
pub const STRICT_ABI: i32 = 6;

/// The first ABI with port rules (TCP connect and bind).
pub const PORTS_ABI: i32 = 4;

/// The profile's port rules (`tcp_connect`, `tcp_bind`): `None` leaves
/// that right unrestricted; a list allows those ports only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ports {
    pub connect: Option<Vec<u16>>,
    pub bind: Option<Vec<u16>>,
}

impl Ports {
    pub fn is_empty(&self) -> bool {
        self.connect.is_none() && self.bind.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// List folders only.
    List,
    /// Read files, list folders, execute.
    Read,
    /// Read, write and device ioctls: device nodes and terminals.
    Device,
    /// Read and write files (procfs).
    ReadWrite,
    /// Every right the ruleset handles.
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Path inside the sandbox.
    pub path: PathBuf,
    pub grant: Grant,
    /// The rights on a folder, as Landlock bits.
    pub dir_access: u64,
    /// The rights on a non-folder (Landlock refuses folder-only rights there).
    pub file_access: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandlockPlan {
    pub mode: LandlockMode,
    /// What the kernel implements.
    pub kernel_abi: i32,
    /// What will be enforced (0: nothing).
    pub abi: i32,
    pub handled: u64,
    /// `LANDLOCK_SCOPE_*` bits.
    pub scoped: u64,
    /// The host abstract sockets the profile names, for which the
    /// abstract-socket scope is lifted (empty: scoped).
    pub abstract_sockets: Vec<String>,
    pub rules: Vec<Rule>,
    /// `LANDLOCK_ACCESS_NET_*` bits handled (ABI 4): only those the
    /// profile has port rules for.
    pub handled_net: u64,
    /// Port rules, when enforced: (port, `LANDLOCK_ACCESS_NET_*` bits).
    pub ports: Vec<(u16, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error(
        "landlock = \"strict\" needs Landlock ABI {STRICT_ABI} or later; this kernel implements {0}"
    )]
    TooOld(i32),
}

fn abi_of(v: i32) -> ABI {
    ABI::from(v)
}

impl Grant {
    /// The rights this grant stands for under ABI `a` (before masking
    /// with what the ruleset handles).
    fn access(self, a: ABI) -> BitFlags<AccessFs> {
        match self {
            Grant::List => AccessFs::ReadDir.into(),
            Grant::Read => {
                AccessFs::Execute | AccessFs::ReadFile | AccessFs::ReadDir | resolve_unix(a)
            }
            Grant::Device => {
                AccessFs::ReadFile
                    | AccessFs::WriteFile
                    | AccessFs::ReadDir
                    | ioctl_dev(a)
                    | resolve_unix(a)
            }
            Grant::ReadWrite => AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::ReadDir,
            Grant::Full => AccessFs::from_all(a),
        }
    }
}

/// The place and grant every mount asks for, in mount order, after the
/// root's own (list only).
fn wanted(mounts: &[Mount]) -> Vec<(PathBuf, Grant)> {
    let mut wanted: Vec<(PathBuf, Grant)> = vec![("/".into(), Grant::List)];
    for m in mounts {
        let grant = match &m.op {
            Op::Bind { mode, .. } => match mode {
                BindMode::Ro => Grant::Read,
                BindMode::Rw => Grant::Full,
                BindMode::Dev => Grant::Device,
            },
            Op::Tmpfs { .. } | Op::Overlay { .. } => Grant::Full,
            Op::Proc => Grant::ReadWrite,
            Op::Devpts => Grant::Device,
            Op::File { .. } => Grant::Read,
            Op::ReadOnly | Op::Symlink { .. } | Op::Dir { .. } | Op::Mask | Op::Pin => continue,
        };
        wanted.push((m.dest.clone(), grant));
    }
    wanted
}

impl LandlockPlan {
    /// Builds the ruleset for a mount list. `abstract_sockets`: the host
    /// abstract sockets the sandbox may reach (only with the host's
    /// network: the caller passes none otherwise).
    pub fn build(
        mode: LandlockMode,
        kernel_abi: i32,
        mounts: &[Mount],
        abstract_sockets: &[String],
        ports: &Ports,
    ) -> Result<LandlockPlan, LandlockError> {
        let abi = match mode {
            LandlockMode::Off => 0,
            // (STRICT_ABI ≥ PORTS_ABI: strict also refuses a kernel
            // without port rules.)
            LandlockMode::Strict if kernel_abi < STRICT_ABI => {
                return Err(LandlockError::TooOld(kernel_abi));
            }
            _ => kernel_abi,
        };
        if abi <= 0 {
            return Ok(LandlockPlan {
                mode,
                kernel_abi,
                abi: 0,
                handled: 0,
                scoped: 0,
                abstract_sockets: abstract_sockets.to_vec(),
                rules: Vec::new(),
                handled_net: 0,
                ports: Vec::new(),
            });
        }
        let a = abi_of(abi);
        let all = AccessFs::from_all(a);
        let bits = |f: BitFlags<AccessFs>| (f & all).bits();
        let file_only = AccessFs::from_file(a);
        // A rule beneath another that already grants at least as much adds
        // nothing: skip it (fewer syscalls after the fork). The rules kept so
        // far are looked up by place, for each proper ancestor of a new one
        // (`Path` hashes and compares by components, as `starts_with`
        // does): O(n × depth) rather than every pair.
        let mut rules: Vec<Rule> = Vec::new();
        let mut granted: PathMap<PathBuf, Vec<u64>> = PathMap::default();
        for (path, grant) in wanted(mounts) {
            let g = grant.access(a);
            let covered = path.ancestors().skip(1).any(|a| {
                granted.get(a).is_some_and(|accesses| {
                    accesses
                        .iter()
                        .any(|&d| (BitFlags::<AccessFs>::from_bits_truncate(d) & g) == (g & all))
                })
            });
            if covered {
                continue;
            }
            granted.entry(path.clone()).or_default().push(bits(g));
            rules.push(Rule {
                path,
                grant,
                dir_access: bits(g),
                file_access: bits(g & file_only),
            });
        }
        // Scoping (ABI 6): no signals to processes outside the sandbox, and
        // no connecting to abstract unix sockets made outside it. With the
        // host's network, its abstract sockets (an X server's, a D-Bus
        // daemon's) are in the sandbox's network namespace: only a profile
        // that names some lifts that scope, and then for all of them, as
        // Landlock scopes them as a whole.
        let mut scopes: BitFlags<Scope> = BitFlags::empty();
        if abi >= 6 {
            scopes |= Scope::Signal;
            if abstract_sockets.is_empty() {
                scopes |= Scope::AbstractUnixSocket;
            }
        }
        // Port rules (ABI 4): a right is handled only when the profile
        // lists ports for it; best-effort below ABI 4 enforces none (the
        // plan's caller warns).
        let mut handled_net: BitFlags<AccessNet> = BitFlags::empty();
        let mut port_rules: Vec<(u16, u64)> = Vec::new();
        if abi >= PORTS_ABI {
            for (list, right) in [
                (&ports.connect, AccessNet::ConnectTcp),
                (&ports.bind, AccessNet::BindTcp),
            ] {
                if let Some(list) = list {
                    handled_net |= right;
                    for &port in list {
                        match port_rules.iter_mut().find(|(p, _)| *p == port) {
                            Some((_, bits)) => *bits |= BitFlags::from(right).bits(),
                            None => port_rules.push((port, BitFlags::from(right).bits())),
                        }
                    }
                }
            }
        }
        Ok(LandlockPlan {
            mode,
            kernel_abi,
            abi,
            handled: all.bits(),
            scoped: scopes.bits(),
            abstract_sockets: abstract_sockets.to_vec(),
            rules,
            handled_net: handled_net.bits(),
            ports: port_rules,
        })
    }

    pub fn enforced(&self) -> bool {
        self.abi > 0
    }
}

/// Connecting to unix sockets is a right of its own from ABI 9: keep it
/// wherever files may be read, as the mount layout does.
fn resolve_unix(abi: ABI) -> BitFlags<AccessFs> {
    if abi >= ABI::V9 {
        AccessFs::ResolveUnix.into()
    } else {
        BitFlags::empty()
    }
}

fn ioctl_dev(abi: ABI) -> BitFlags<AccessFs> {
    if abi >= ABI::V5 {
        AccessFs::IoctlDev.into()
    } else {
        BitFlags::empty()
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Grant::List => "list",
            Grant::Read => "read, execute",
            Grant::Device => "read, write, device ioctl",
            Grant::ReadWrite => "read, write",
            Grant::Full => "all",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::mounts::Origin;

    fn m(dest: &str, op: Op) -> Mount {
        Mount {
            dest: dest.into(),
            op,
            origin: Origin::Base,
        }
    }

    #[test]
    fn rules_mirror_mounts() {
        let mounts = vec![
            m(
                "/usr",
                Op::Bind {
                    source: "/usr".into(),
                    mode: BindMode::Ro,
                    optional: false,
                },
            ),
            m(
                "/usr/share",
                Op::Bind {
                    source: "/usr/share".into(),
                    mode: BindMode::Ro,
                    optional: false,
                },
            ),
            m(
                "/tmp",
                Op::Tmpfs {
                    mode: 0o1777,
                    size: 0,
                },
            ),
            m(
                "/tmp/x",
                Op::Tmpfs {
                    mode: 0o1777,
                    size: 0,
                },
            ),
        ];
        let p = LandlockPlan::build(LandlockMode::BestEffort, 6, &mounts, &[], &Ports::default())
            .unwrap();
        let paths: Vec<_> = p
            .rules
            .iter()
            .map(|r| r.path.display().to_string())
            .collect();
        assert_eq!(paths, ["/", "/usr", "/tmp"]);
        assert_ne!(p.scoped, 0);
        assert!(matches!(
            LandlockPlan::build(LandlockMode::Strict, 3, &mounts, &[], &Ports::default()),
            Err(LandlockError::TooOld(3))
        ));
        assert!(
            !LandlockPlan::build(LandlockMode::Off, 7, &mounts, &[], &Ports::default())
                .unwrap()
                .enforced()
        );
    }

    #[test]
    fn abstract_sockets_stay_scoped_unless_named() {
        let p =
            LandlockPlan::build(LandlockMode::BestEffort, 6, &[], &[], &Ports::default()).unwrap();
        assert_eq!(p.scoped, (Scope::Signal | Scope::AbstractUnixSocket).bits());
        let named = ["@/tmp/.X11-unix/X*".to_string()];
        let q = LandlockPlan::build(LandlockMode::BestEffort, 6, &[], &named, &Ports::default())
            .unwrap();
        assert_eq!(q.scoped, BitFlags::from(Scope::Signal).bits());
        assert_eq!(q.abstract_sockets, named);
    }

    #[test]
    fn port_rules_from_abi_4() {
        let ports = Ports {
            connect: Some(vec![443, 80]),
            bind: Some(vec![80]),
        };
        let p = LandlockPlan::build(LandlockMode::BestEffort, 4, &[], &[], &ports).unwrap();
        assert_eq!(
            p.handled_net,
            (AccessNet::ConnectTcp | AccessNet::BindTcp).bits()
        );
        assert_eq!(
            p.ports,
            [
                (443, BitFlags::from(AccessNet::ConnectTcp).bits()),
                (80, (AccessNet::ConnectTcp | AccessNet::BindTcp).bits())
            ]
        );
        let only = Ports {
            connect: Some(vec![]),
            bind: None,
        };
        let q = LandlockPlan::build(LandlockMode::BestEffort, 7, &[], &[], &only).unwrap();
        assert_eq!(q.handled_net, BitFlags::from(AccessNet::ConnectTcp).bits());
        assert!(q.ports.is_empty());
        let old = LandlockPlan::build(LandlockMode::BestEffort, 3, &[], &[], &ports).unwrap();
        assert_eq!((old.handled_net, old.ports.len()), (0, 0));
        let none =
            LandlockPlan::build(LandlockMode::BestEffort, 7, &[], &[], &Ports::default()).unwrap();
        assert_eq!(none.handled_net, 0);
    }

    /// The former pairwise rule filter, the reference for the lookup.
    fn reference_rules(abi: i32, mounts: &[Mount]) -> Vec<(PathBuf, u64)> {
        let a = abi_of(abi);
        let all = AccessFs::from_all(a);
        let mut rules: Vec<(PathBuf, u64)> = Vec::new();
        for (path, grant) in wanted(mounts) {
            let g = grant.access(a);
            let covered = rules.iter().any(|(p, d)| {
                path.starts_with(p)
                    && *p != path
                    && (BitFlags::<AccessFs>::from_bits_truncate(*d) & g) == (g & all)
            });
            if !covered {
                rules.push((path, (g & all).bits()));
            }
        }
        rules
    }

    #[test]
    fn rule_filter_agrees_with_the_pairwise_reference() {
        const PARTS: &[&str] = &["a", "b", "tmp", "usr"];
        const SEPS: &[&str] = &["/", "//", "/./"];
        let mut seed: u64 = 11;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 33) as usize) % n
        };
        for round in 0..2000 {
            let n = 1 + next(if round % 10 == 0 { 150 } else { 20 });
            let mounts: Vec<Mount> = (0..n)
                .map(|_| {
                    let mut dest = String::new();
                    for _ in 0..=next(4) {
                        dest.push_str(SEPS[next(SEPS.len())]);
                        dest.push_str(PARTS[next(PARTS.len())]);
                    }
                    if next(5) == 0 {
                        dest.push('/');
                    }
                    let op = match next(7) {
                        0 => Op::Tmpfs {
                            mode: 0o755,
                            size: 0,
                        },
                        1 => Op::Proc,
                        2 => Op::Devpts,
                        3 => Op::Mask,
                        k => Op::Bind {
                            source: "/x".into(),
                            mode: [BindMode::Ro, BindMode::Rw, BindMode::Dev][k - 4],
                            optional: false,
                        },
                    };
                    m(&dest, op)
                })
                .collect();
            for abi in [1, 3, 5, 6, 9] {
                let got: Vec<(PathBuf, u64)> = LandlockPlan::build(
                    LandlockMode::BestEffort,
                    abi,
                    &mounts,
                    &[],
                    &Ports::default(),
                )
                .unwrap()
                .rules
                .into_iter()
                .map(|r| (r.path, r.dir_access))
                .collect();
                assert_eq!(
                    got,
                    reference_rules(abi, &mounts),
                    "round {round}, ABI {abi}"
                );
            }
        }
    }
}
