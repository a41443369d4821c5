//! The session bus through a filtering proxy. With a `[dbus]` table, the
//! sandbox gets a bus socket at `/run/user/UID/bus` served by
//! `xdg-dbus-proxy --filter` on the host, which lets through only the names
//! the profile lists; the host's own bus socket is never bound in.
//! Without the table there is no bus in the sandbox at all.

use std::path::PathBuf;

use crate::host::Host;
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

/// A program on the host's PATH (the sandbox's when it has none).
fn find_program(name: &str, host: &Host) -> Option<PathBuf> {
    let path = host
        .var("PATH")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| super::SANDBOX_PATH.into());
    super::find_in(name, &path)
}

/// Plans the proxy; `Err` is a warning (no bus is given to the sandbox).
pub fn build(d: &Dbus, host: &Host, instance: &str) -> Result<DbusPlan, String> {
    let address = match host.var("DBUS_SESSION_BUS_ADDRESS") {
        Some(a) if !a.is_empty() => a.to_string_lossy().into_owned(),
        _ => match &host.runtime_dir {
            Some(r) if r.join("bus").exists() => format!("unix:path={}", r.join("bus").display()),
            _ => {
                return Err(
                    "[dbus]: there is no session bus here (DBUS_SESSION_BUS_ADDRESS is not set): the sandbox gets none".into(),
                );
            }
        },
    };
    let proxy = find_program("xdg-dbus-proxy", host).ok_or(
        "[dbus]: xdg-dbus-proxy is not installed: the sandbox gets no bus (install the xdg-dbus-proxy package)",
    )?;
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
