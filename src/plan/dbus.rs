//! The session bus through a filtering proxy. With a `[dbus]` table, the
//! sandbox gets a bus socket at `/run/user/UID/bus` served by
//! `xdg-dbus-proxy --filter`, which lets through only the names the
//! profile lists; the host's own bus socket is never bound in. Without the
//! table there is no bus in the sandbox at all.
//!
//! The proxy runs in a sandbox of its own, and that is how the desktop
//! portal tells the program apart from host applications.
//! xdg-desktop-portal identifies a caller by the PID of its bus
//! connection (`GetConnectionUnixProcessID`): here, the proxy. If
//! `/proc/PID/root/.flatpak-info` is a regular file whose `[Application]`
//! `name` is a valid application id, the caller is that Flatpak app, with
//! permission-store entries of its own; otherwise (no such file) it is a
//! host application, whose id is "" (or its systemd unit's) and whose
//! grants every host application shares. So the proxy's root is a
//! read-only tmpfs that holds `/.flatpak-info` naming this profile's id,
//! `/usr` read-only, the host's bus socket and the folder of its own
//! listening socket — nothing else. This is what Flatpak does.
//!
//! Why this way: the portal of Debian 12 (1.16) knows Flatpak, Snap (a
//! `snap.` cgroup, then `snap routine portal-info`) and host callers only,
//! and later versions add a host registry
//! (`org.freedesktop.host.portal.Registry`) where a host caller *names
//! itself* — which a sandbox must never do. The id is written by antimony
//! before the proxy starts, in a root the program cannot reach (another
//! mount namespace, read-only, the proxy without capabilities), so neither
//! the program nor a proxy it might take over can choose or change it.
//! Running the proxy in the program's own sandbox instead would put the
//! host's raw bus within the program's reach.
//!
//! The id is `antimony.NAME` (NAME escaped to the id syntax), never the
//! profile's `id`: that is a desktop id, inherited by every profile built
//! on another (two profiles would share grants), and it may name a Flatpak
//! app's id (whose grants the sandbox would get).

use std::path::{Path, PathBuf};

use super::mounts::{BaseFacts, Mount, Op, Origin};
use super::{LandlockPlan, Namespaces, Plan, SeccompPlan};
use crate::host::{Host, HostView};
use crate::profile::{BindMode, Dbus, HomePolicy, LandlockMode};

#[derive(Debug, Clone)]
pub struct DbusPlan {
    /// The proxy program on the host.
    pub proxy: PathBuf,
    /// The host's session bus, as the host names it.
    pub address: String,
    /// This run's folder on the host, holding the proxy's socket (the
    /// proxy's sandbox binds it; nothing else of the runtime folder).
    pub folder: PathBuf,
    /// Where the proxy listens, in `folder` (bound into the sandbox).
    pub socket: PathBuf,
    /// The proxy's policy arguments: `--filter`, `--talk=…`, …
    pub args: Vec<String>,
    /// The application id the desktop portal sees for the sandbox.
    pub app_id: String,
    /// The proxy's own sandbox; its program is the proxy, told to write a
    /// byte to its standard output once it listens (`--fd=1`).
    pub sandbox: Box<Plan>,
    /// A recording run's log of the program's calls (`--log`): the
    /// proxy's standard output goes to this host file (see `log_to`).
    pub log: Option<PathBuf>,
}

impl DbusPlan {
    /// Has the proxy log every message to `file` (`xdg-dbus-proxy
    /// --log`: each call with its destination, and each one its policy
    /// filtered, with the level it required), for `antimony learn`.
    /// The proxy logs to its standard output, which is then the file; its
    /// readiness byte goes to its standard error instead (`--fd=2`).
    pub fn log_to(&mut self, file: PathBuf) {
        self.args.push("--log".into());
        for a in self.sandbox.argv.iter_mut() {
            if a == "--fd=1" {
                *a = "--fd=2".into();
            }
        }
        self.sandbox.argv.push("--log".into());
        self.log = Some(file);
    }
}

/// The sandbox's bus socket, inside.
pub fn sandbox_socket(uid: u32) -> PathBuf {
    PathBuf::from(format!("/run/user/{uid}/bus"))
}

/// Why the sandbox gets no bus: a warning, not an error (the run goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoBus {
    #[error(
        "[dbus]: there is no session bus here (DBUS_SESSION_BUS_ADDRESS is not set): the sandbox gets none"
    )]
    NoSessionBus,
    #[error(
        "[dbus]: xdg-dbus-proxy is not installed: the sandbox gets no bus (install the xdg-dbus-proxy package)"
    )]
    NoProxy,
    #[error(
        "[dbus]: the session bus address `{0}` names no unix socket (unix:path= or unix:abstract=) the proxy's sandbox could reach: the sandbox gets no bus"
    )]
    Unsupported(String),
    #[error(
        "[dbus]: the session bus socket {} does not exist: the sandbox gets no bus", .0.display()
    )]
    Missing(PathBuf),
}

/// The host bus, as the proxy's sandbox reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// A socket file: bound into the proxy's sandbox at the same place.
    Path(PathBuf),
    /// An abstract socket: reachable only in the host's network namespace.
    Abstract(String),
}

/// The first address of a D-Bus address list that is a unix socket the
/// proxy can connect to. Values are `%XX`-escaped (D-Bus specification,
/// "Server Addresses").
fn endpoint(address: &str) -> Option<Endpoint> {
    address.split(';').find_map(|one| {
        let rest = one.strip_prefix("unix:")?;
        rest.split(',').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let v = unescape(v)?;
            match k {
                "path" if v.starts_with('/') => Some(Endpoint::Path(PathBuf::from(v))),
                "abstract" => Some(Endpoint::Abstract(v)),
                _ => None,
            }
        })
    })
}

fn unescape(v: &str) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
    let mut bytes = v.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    let s = String::from_utf8(out).ok()?;
    (!s.contains('\0')).then_some(s)
}

/// A value escaped for a D-Bus address.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_/.\\*".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The application id portals see for profile `name`: `antimony.` and the
/// name, each character outside `[A-Za-z0-9-]` written `_XX` (its hex
/// code; `_` itself too), so the id is valid (elements of letters, digits
/// and `_`, a `-` only in the last one, at most 255 bytes: a profile name
/// has at most 128) and two names never share one.
pub fn app_id(name: &str) -> String {
    let mut id = String::from("antimony.");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            id.push(b as char);
        } else {
            id.push_str(&format!("_{b:02x}"));
        }
    }
    id
}

/// `/.flatpak-info` of the proxy's root: the id, and the network when the
/// sandbox has it (the portal's network monitor and proxy resolver answer
/// an app only if `[Context] shared` names it).
fn flatpak_info(app_id: &str, network: bool) -> Vec<u8> {
    let mut s = format!("[Application]\nname={app_id}\n");
    if network {
        s.push_str("\n[Context]\nshared=network;\n");
    }
    s.into_bytes()
}

/// A program on the host's PATH (the sandbox's when it has none).
fn find_program(name: &str, host: &Host, fs: &dyn HostView) -> Option<PathBuf> {
    let path = host
        .var("PATH")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| super::SANDBOX_PATH.into());
    fs.find_program(name, &path)
}

/// What the proxy's plan is drawn from besides `[dbus]`.
pub struct For<'a> {
    /// The profile's name.
    pub name: &'a str,
    /// Whether the sandbox has a network (isolated or the host's).
    pub network: bool,
    pub instance: &'a str,
    pub facts: &'a BaseFacts,
}

/// Plans the proxy and its sandbox; `Err`: the sandbox gets no bus.
pub fn build(
    d: &Dbus,
    host: &Host,
    fs: &dyn HostView,
    run: &For,
) -> Result<Result<DbusPlan, NoBus>, super::PlanError> {
    let address = match host.var("DBUS_SESSION_BUS_ADDRESS") {
        Some(a) if !a.is_empty() => a.to_string_lossy().into_owned(),
        _ => match &host.runtime_dir {
            Some(r) if fs.exists(&r.join("bus")) => {
                format!("unix:path={}", escape(&r.join("bus").to_string_lossy()))
            }
            _ => return Ok(Err(NoBus::NoSessionBus)),
        },
    };
    let Some(proxy) = find_program("xdg-dbus-proxy", host, fs) else {
        return Ok(Err(NoBus::NoProxy));
    };
    let bus = match endpoint(&address) {
        None => return Ok(Err(NoBus::Unsupported(address))),
        Some(Endpoint::Path(p)) if !fs.exists(&p) => return Ok(Err(NoBus::Missing(p))),
        Some(e) => e,
    };
    let folder = host.runtime_base.join("dbus").join(run.instance);
    let socket = folder.join("bus");
    let mut args = vec!["--filter".to_string()];
    for (flag, list) in [
        ("see", &d.see),
        ("talk", &d.talk),
        ("own", &d.own),
        ("call", &d.call),
        ("broadcast", &d.broadcast),
    ] {
        args.extend(list.iter().map(|v| format!("--{flag}={v}")));
    }
    let app_id = app_id(run.name);
    let sandbox = proxy_sandbox(
        host, fs, run, &bus, &proxy, &socket, &folder, &app_id, &args,
    )?;
    Ok(Ok(DbusPlan {
        proxy,
        address,
        folder,
        socket,
        args,
        app_id,
        sandbox: Box::new(sandbox),
        log: None,
    }))
}

/// The proxy's sandbox: every namespace new but the network when the bus
/// is an abstract socket (those live in the network namespace); a root of
/// `/usr` read-only, the bus, this run's socket folder and
/// `/.flatpak-info`; no capabilities, Landlock, seccomp; no home, no
/// `/proc`, `/dev` or `/tmp`, an empty environment.
#[allow(clippy::too_many_arguments)]
fn proxy_sandbox(
    host: &Host,
    fs: &dyn HostView,
    run: &For,
    bus: &Endpoint,
    proxy: &Path,
    socket: &Path,
    folder: &Path,
    app_id: &str,
    args: &[String],
) -> Result<Plan, super::PlanError> {
    let b = Origin::Base;
    let ro = |p: &Path, optional: bool| Op::Bind {
        source: p.to_path_buf(),
        mode: BindMode::Ro,
        optional,
    };
    let mut mounts = vec![Mount {
        dest: "/usr".into(),
        op: ro(Path::new("/usr"), false),
        origin: b,
    }];
    for (name, link) in &run.facts.usr_links {
        let dest = Path::new("/").join(name);
        let op = match link {
            Some(target) => Op::Symlink {
                target: target.clone(),
            },
            None => ro(&dest, true),
        };
        mounts.push(Mount {
            dest,
            op,
            origin: b,
        });
    }
    // A proxy installed outside the system's folders (/opt, ~/.local/bin).
    let top = proxy.components().nth(1).map(|c| c.as_os_str());
    let in_system = top.is_some_and(|t| {
        t == "usr"
            || run
                .facts
                .usr_links
                .iter()
                .any(|(name, _)| t == name.as_str())
    });
    if !in_system {
        mounts.push(Mount {
            dest: proxy.to_path_buf(),
            op: ro(proxy, false),
            origin: Origin::Profile,
        });
    }
    mounts.push(Mount {
        dest: "/etc/ld.so.cache".into(),
        op: ro(Path::new("/etc/ld.so.cache"), true),
        origin: b,
    });
    // Connecting needs no write access to the mount: a read-only bind.
    let (address, net, abstract_sockets) = match bus {
        Endpoint::Path(p) => {
            mounts.push(Mount {
                dest: p.clone(),
                op: ro(p, false),
                origin: Origin::Profile,
            });
            (
                format!("unix:path={}", escape(&p.to_string_lossy())),
                true,
                vec![],
            )
        }
        Endpoint::Abstract(name) => (
            format!("unix:abstract={}", escape(name)),
            false,
            vec![name.clone()],
        ),
    };
    mounts.push(Mount {
        dest: folder.to_path_buf(),
        op: Op::Bind {
            source: folder.to_path_buf(),
            mode: BindMode::Rw,
            optional: false,
        },
        origin: Origin::Profile,
    });
    mounts.push(Mount {
        dest: "/.flatpak-info".into(),
        op: Op::File {
            contents: flatpak_info(app_id, run.network),
            mode: 0o444,
        },
        origin: b,
    });
    let mut mounts = super::mounts::finish(mounts);
    // The proxy's sandbox has antimony's default limits.
    let limits = super::limits::build(
        &Default::default(),
        &Default::default(),
        &super::limits::For {
            uid: host.uid,
            instance: run.instance,
        },
        fs,
        &mut mounts,
        &mut Vec::new(),
    )?;
    let landlock = LandlockPlan::build(
        LandlockMode::BestEffort,
        fs.landlock_abi(),
        &mounts,
        &abstract_sockets,
        &super::landlock::Ports::default(),
    )?;
    let mut argv = vec![
        proxy.as_os_str().to_owned(),
        "--fd=1".into(),
        address.into(),
        socket.as_os_str().to_owned(),
    ];
    argv.extend(args.iter().map(Into::into));
    Ok(Plan {
        name: format!("{} (D-Bus proxy)", run.name),
        instance: run.instance.to_string(),
        program: proxy.to_path_buf(),
        argv,
        env: Vec::new(),
        cwd: "/".into(),
        cwd_explicit: true,
        home: "/".into(),
        home_policy: HomePolicy::None,
        host_home: None,
        uid: host.uid,
        gid: host.gid,
        namespaces: Namespaces {
            ipc: true,
            uts: true,
            cgroup: true,
            net,
        },
        // The proxy's network: its own (loopback only) or, for an abstract
        // bus socket, the host's; never pasta's.
        network: super::NetworkPlan {
            mode: if net {
                crate::profile::NetworkMode::Off
            } else {
                crate::profile::NetworkMode::Host
            },
            isolated: None,
        },
        mounts,
        landlock,
        seccomp: Some(SeccompPlan::build(false)?),
        record: None,
        nested_userns: false,
        dbus: None,
        hooks: Vec::new(),
        guarded: Vec::new(),
        forwards: Vec::new(),
        forward_warnings: Vec::new(),
        single_instance: false,
        package_config: None,
        grace: std::time::Duration::ZERO,
        limits,
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_are_valid_and_distinct() {
        assert_eq!(app_id("firefox"), "antimony.firefox");
        assert_eq!(app_id("my-app"), "antimony.my-app");
        assert_eq!(app_id("gimp-2.10"), "antimony.gimp-2_2e10");
        assert_eq!(app_id("a_b"), "antimony.a_5fb");
        assert_eq!(app_id("c++"), "antimony.c_2b_2b");
        assert_ne!(app_id("a.b"), app_id("a_2eb"));
        // The portal's rule: at least two elements of [A-Za-z0-9_], `-`
        // allowed in the last one only, at most 255 bytes.
        let long = "x".repeat(128);
        for name in ["firefox", "my-app", "gimp-2.10", "1+1", long.as_str()] {
            let id = app_id(name);
            assert!(id.len() <= 255, "{id}");
            let parts: Vec<&str> = id.split('.').collect();
            assert_eq!(parts.len(), 2, "{id}");
            assert!(
                parts[1]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            );
        }
    }

    #[test]
    fn bus_addresses() {
        assert_eq!(
            endpoint("unix:path=/run/user/1000/bus"),
            Some(Endpoint::Path("/run/user/1000/bus".into()))
        );
        assert_eq!(
            endpoint("unix:path=/tmp/a%20b,guid=00ff"),
            Some(Endpoint::Path("/tmp/a b".into()))
        );
        assert_eq!(
            endpoint("unix:guid=1,abstract=/tmp/dbus-X"),
            Some(Endpoint::Abstract("/tmp/dbus-X".into()))
        );
        assert_eq!(
            endpoint("tcp:host=localhost,port=1;unix:path=/b"),
            Some(Endpoint::Path("/b".into()))
        );
        assert_eq!(endpoint("tcp:host=localhost,port=1"), None);
        assert_eq!(endpoint("unix:path=relative"), None);
        assert_eq!(endpoint("unix:path=/a%00b"), None);
        assert_eq!(escape("/tmp/a b,c"), "/tmp/a%20b%2cc");
    }

    #[test]
    fn the_info_file_names_the_id_and_the_network() {
        assert_eq!(
            flatpak_info("antimony.x", false),
            b"[Application]\nname=antimony.x\n"
        );
        assert!(
            String::from_utf8(flatpak_info("antimony.x", true))
                .unwrap()
                .ends_with("[Context]\nshared=network;\n")
        );
    }
}
