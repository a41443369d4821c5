//! The session bus through a filtering proxy. With a `[dbus]` table, the
//! sandbox gets a bus socket at `/run/user/UID/bus` served by
//! `xdg-dbus-proxy --filter` on the host, which lets through only the names
//! the profile lists; the host's own bus socket is never bound in.
//! Without the table there is no bus in the sandbox at all.

use std::path::PathBuf;

use crate::host::{Host, HostView};
use crate::profile::Dbus;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbusPlan {
    /// The proxy program on the host.
    pub proxy: PathBuf,
    /// The host's session bus.
    pub address: String,
    /// Where the proxy listens on the host (bound into the sandbox).
    pub socket: PathBuf,
    /// The proxy's policy arguments: `--filter`, `--talk=…`, …
    pub args: Vec<String>,
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
}

/// A program on the host's PATH (the sandbox's when it has none).
fn find_program(name: &str, host: &Host, fs: &dyn HostView) -> Option<PathBuf> {
    let path = host
        .var("PATH")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| super::SANDBOX_PATH.into());
    fs.find_program(name, &path)
}

/// Plans the proxy; `Err`: the sandbox gets no bus.
pub fn build(d: &Dbus, host: &Host, fs: &dyn HostView, instance: &str) -> Result<DbusPlan, NoBus> {
    let address = match host.var("DBUS_SESSION_BUS_ADDRESS") {
        Some(a) if !a.is_empty() => a.to_string_lossy().into_owned(),
        _ => match &host.runtime_dir {
            Some(r) if fs.exists(&r.join("bus")) => {
                format!("unix:path={}", r.join("bus").display())
            }
            _ => return Err(NoBus::NoSessionBus),
        },
    };
    let proxy = find_program("xdg-dbus-proxy", host, fs).ok_or(NoBus::NoProxy)?;
    let dir = host.runtime_base.join("dbus");
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
    Ok(DbusPlan {
        proxy,
        address,
        socket: dir.join(format!("{instance}.sock")),
        args,
    })
}
