//! `build` on a host in memory: no root, no namespaces, no real file looked
//! at. Each test says what of the host decides what in the plan.

use std::path::{Path, PathBuf};

use super::*;
use crate::host::test_host;
use crate::host::view::fake::FakeHost;
use crate::profile::{Origin as ProfileOrigin, Searcher, Source, merge};

const ID: &str = "0123456789abcdef";

/// A small merged-/usr host: bash, `tool`, a few `/etc` entries, the
/// user's home; Landlock ABI 7.
fn host_fs() -> FakeHost {
    let mut fs = FakeHost::new();
    fs.abi = 7;
    fs.file("/usr/bin/bash", 0o755, "")
        .file("/usr/bin/tool", 0o755, "")
        .link("/bin", "usr/bin")
        .dir("/usr/lib")
        .link("/lib", "usr/lib")
        .file("/etc/hosts", 0o644, "")
        .file("/etc/os-release", 0o644, "")
        .file(
            "/etc/passwd",
            0o644,
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/zsh\nbob:x:1001:1001::/home/bob:/bin/sh\n",
        )
        .file("/etc/group", 0o644, "root:x:0:\nalice:x:1000:bob\n")
        .dir_as("/home/user", 1000, 0o755);
    fs
}

/// A profile read from `/home/user/proj/NAME.toml` (nothing inherited, so
/// nothing else is read).
fn profile(name: &str, text: &str) -> Profile {
    let source = Source {
        name: name.into(),
        origin: ProfileOrigin::File(format!("/home/user/proj/{name}.toml").into()),
        text: text.to_string().into(),
    };
    let searcher = Searcher::with_dirs("/nonexistent/user".into(), "/nonexistent/system".into());
    merge::resolve_source(&searcher, source).unwrap()
}

fn plan(p: &Profile, opts: &RunOptions, fs: &FakeHost) -> Result<Plan, PlanError> {
    build(p, opts, &test_host(), fs, ID)
}

fn bind_at<'a>(plan: &'a Plan, dest: &str) -> Option<&'a Mount> {
    plan.mounts
        .iter()
        .find(|m| m.dest == Path::new(dest) && matches!(m.op, Op::Bind { .. }))
}

#[test]
fn the_plan_is_a_function_of_its_inputs() {
    let p = profile("tool", "");
    let fs = host_fs();
    let a = plan(&p, &RunOptions::default(), &fs).unwrap();
    let b = plan(&p, &RunOptions::default(), &fs).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(a.instance, ID);
    // The host's /etc/passwd, cut down to the user (named as the host
    // names uid 1000) and root.
    let passwd = a
        .mounts
        .iter()
        .find_map(|m| match &m.op {
            Op::File { contents, .. } if m.dest == Path::new("/etc/passwd") => Some(contents),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(passwd),
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/user:/bin/zsh\n"
    );
}

#[test]
fn what_the_host_lacks_is_left_out() {
    let p = profile(
        "tool",
        "path = [\"/opt/tool/bin/tool\", \"tool\"]\n\
         [files]\nro = [\"?$NOT_SET/x\", \"/srv/data\"]\n",
    );
    let fs = host_fs();
    let plan = plan(&p, &RunOptions::default(), &fs).unwrap();
    // `/etc` entries the host has are bound (optional); the others are not
    // in the plan at all.
    assert!(bind_at(&plan, "/etc/hosts").is_some());
    assert!(bind_at(&plan, "/etc/hostname").is_none());
    // `/bin` is the host's link; `/lib64`, which it lacks, is nothing.
    assert!(plan.mounts.iter().any(|m| m.dest == Path::new("/bin")
        && m.op
            == Op::Symlink {
                target: "usr/bin".into()
            }));
    assert!(!plan.mounts.iter().any(|m| m.dest == Path::new("/lib64")));
    // An optional bind naming an unset variable is dropped; a bind of a
    // missing path is kept (optional or not, the mount decides then).
    let from_profile: Vec<&Path> = plan
        .mounts
        .iter()
        .filter(|m| m.origin == Origin::Profile)
        .map(|m| m.dest.as_path())
        .collect();
    assert_eq!(from_profile, [Path::new("/srv/data")]);
    // A missing path alternative is passed over for the next.
    assert_eq!(plan.program, Path::new("/usr/bin/tool"));
}

#[test]
fn a_program_is_found_on_the_sandbox_path() {
    let mut fs = host_fs();
    // Not executable: passed over for the next folder.
    fs.file("/usr/local/bin/tool", 0o644, "");
    let plan = plan(&profile("tool", ""), &RunOptions::default(), &fs).unwrap();
    assert_eq!(plan.program, Path::new("/usr/bin/tool"));
    assert_eq!(plan.argv, [PathBuf::from("/usr/bin/tool").into_os_string()]);
    // `--program NAME` is looked up the same way.
    let opts = RunOptions {
        program: Some("bash".into()),
        ..RunOptions::default()
    };
    let bash = build(&profile("tool", ""), &opts, &test_host(), &fs, ID).unwrap();
    assert_eq!(bash.program, Path::new("/usr/bin/bash"));
    // Nowhere: the error names the PATH searched.
    let e = build(
        &profile("absent", ""),
        &RunOptions::default(),
        &test_host(),
        &fs,
        ID,
    )
    .unwrap_err();
    assert!(matches!(e, PlanError::ProgramNotFound { .. }));
    assert_eq!(
        e.to_string(),
        "program `absent` not found in the sandbox's PATH (/usr/local/bin:/usr/bin:/bin)"
    );
}

#[test]
fn a_writable_bind_over_a_profile_file_guards_it() {
    let mut fs = host_fs();
    fs.dir_as("/home/user/proj/.antimony", 1000, 0o755).file_as(
        "/home/user/proj/tool.toml",
        1000,
        0o644,
        1,
        "",
    );
    let p = profile("tool", "");
    let opts = RunOptions {
        rw: vec!["/home/user/proj".into()],
        ..RunOptions::default()
    };
    let plan = plan(&p, &opts, &fs).unwrap();
    // The profile, at the top of the bind, is bound read-only over itself.
    assert_eq!(
        plan.guarded,
        [guard::Guarded {
            file: "/home/user/proj/tool.toml".into(),
            what: guard::What::Profile,
            dest: "/home/user/proj/tool.toml".into(),
            folder: false,
        }]
    );
    assert!(
        plan.mounts
            .iter()
            .any(|m| m.dest == Path::new("/home/user/proj/tool.toml")
                && m.op == Op::ReadOnly
                && m.origin == Origin::Protect)
    );
    // With a second name, it could be written through that one: refused.
    fs.file_as("/home/user/proj/tool.toml", 1000, 0o644, 2, "");
    let e = build(&p, &opts, &test_host(), &fs, ID).unwrap_err();
    let PlanError::Exposed(e) = e else {
        panic!("{e}")
    };
    assert_eq!(e.why, guard::Unguarded::HardLinks(2));
}

#[test]
fn a_hook_program_the_sandbox_could_write_is_refused() {
    let mut fs = host_fs();
    fs.file_as("/home/user/proj/hook.sh", 1000, 0o755, 1, "#!/bin/sh\n")
        .file_as("/home/user/proj/tool.toml", 1000, 0o644, 1, "");
    let p = profile(
        "tool",
        "[[hooks.pre]]\npath = \"~/proj/hook.sh\"\n[files]\nrw = [\"~/proj\"]\n",
    );
    let e = plan(&p, &RunOptions::default(), &fs).unwrap_err();
    let PlanError::Exposed(e) = e else {
        panic!("{e}")
    };
    assert_eq!(
        (e.reach.clone(), e.why.clone()),
        (guard::Reach::File, guard::Unguarded::Program)
    );
}

#[test]
fn the_landlock_abi_decides_what_best_effort_enforces() {
    let p = profile("tool", "");
    let mut fs = host_fs();
    fs.abi = 0;
    let none = plan(&p, &RunOptions::default(), &fs).unwrap();
    assert!(!none.landlock.enforced() && none.landlock.rules.is_empty());
    assert!(
        none.warnings
            .iter()
            .any(|w| w == "this kernel does not implement Landlock: its rules are not enforced")
    );
    fs.abi = 6;
    let six = plan(&p, &RunOptions::default(), &fs).unwrap();
    assert_eq!((six.landlock.kernel_abi, six.landlock.abi), (6, 6));
    assert!(
        six.landlock
            .rules
            .iter()
            .any(|r| r.path == Path::new("/usr"))
    );
    assert!(six.warnings.is_empty(), "{:?}", six.warnings);
    // `strict` on a kernel that is too old: refused.
    fs.abi = 3;
    let strict = profile("tool", "[sandbox]\nlandlock = \"strict\"\n");
    assert!(matches!(
        plan(&strict, &RunOptions::default(), &fs),
        Err(PlanError::Landlock(landlock::LandlockError::TooOld(3)))
    ));
}

#[test]
fn the_instance_id_names_the_bus_socket() {
    let p = profile(
        "tool",
        "[dbus]\ntalk = [\"org.freedesktop.Notifications\"]\n",
    );
    let mut fs = host_fs();
    fs.dir("/run/user/1000")
        .file("/run/user/1000/bus", 0o666, "")
        .file("/usr/bin/xdg-dbus-proxy", 0o755, "");
    let plan = plan(&p, &RunOptions::default(), &fs).unwrap();
    let dbus = plan.dbus.as_ref().unwrap();
    assert_eq!(
        dbus.socket,
        Path::new("/run/user/1000/antimony/dbus/0123456789abcdef/bus")
    );
    assert_eq!(dbus.address, "unix:path=/run/user/1000/bus");
    assert!(bind_at(&plan, "/run/user/1000/bus").is_some());
    // The proxy's own sandbox: the host's bus, this run's folder and the
    // file naming the profile's app id; nothing of the program's.
    assert_eq!(dbus.app_id, "antimony.tool");
    let proxy = &dbus.sandbox;
    let places: Vec<&Path> = proxy.mounts.iter().map(|m| m.dest.as_path()).collect();
    for want in [
        "/usr",
        "/run/user/1000/bus",
        "/run/user/1000/antimony/dbus/0123456789abcdef",
        "/.flatpak-info",
    ] {
        assert!(places.contains(&Path::new(want)), "{want}: {places:?}");
    }
    assert!(!places.contains(&Path::new("/home/user")), "{places:?}");
    assert!(
        proxy
            .mounts
            .iter()
            .any(|m| m.dest == Path::new("/.flatpak-info")
                && m.op
                    == Op::File {
                        contents: b"[Application]\nname=antimony.tool\n".to_vec(),
                        mode: 0o444
                    })
    );
    assert!(proxy.namespaces.net && proxy.env.is_empty());
    assert_eq!(
        &proxy.argv[1..4],
        [
            "--fd=1",
            "unix:path=/run/user/1000/bus",
            "/run/user/1000/antimony/dbus/0123456789abcdef/bus"
        ]
    );
    // No proxy on the host, or no bus: a warning, and no bus.
    let mut fs = host_fs();
    fs.file("/run/user/1000/bus", 0o666, "");
    let plan = build(&p, &RunOptions::default(), &test_host(), &fs, ID).unwrap();
    assert!(plan.dbus.is_none() && bind_at(&plan, "/run/user/1000/bus").is_none());
    assert_eq!(plan.warnings, [dbus::NoBus::NoProxy.to_string()]);
    let plan = build(&p, &RunOptions::default(), &test_host(), &host_fs(), ID).unwrap();
    assert_eq!(plan.warnings, [dbus::NoBus::NoSessionBus.to_string()]);
    // A bus the proxy's sandbox could not reach: no bus either.
    let mut fs = host_fs();
    fs.file("/usr/bin/xdg-dbus-proxy", 0o755, "");
    for (address, warning) in [
        (
            "unix:path=/run/user/1000/gone",
            dbus::NoBus::Missing("/run/user/1000/gone".into()),
        ),
        (
            "tcp:host=localhost,port=4",
            dbus::NoBus::Unsupported("tcp:host=localhost,port=4".into()),
        ),
    ] {
        let mut host = test_host();
        host.env
            .insert("DBUS_SESSION_BUS_ADDRESS".into(), address.into());
        let plan = build(&p, &RunOptions::default(), &host, &fs, ID).unwrap();
        assert!(plan.dbus.is_none(), "{address}");
        assert_eq!(plan.warnings, [warning.to_string()]);
    }
}

#[test]
fn dropins_and_reusable_hooks_come_from_the_host_view() {
    let mut fs = host_fs();
    fs.file("/etc/antimony/hooks.d/pre/10-audit", 0o755, "")
        .file("/etc/antimony/hooks.d/pre/20-loose", 0o757, "")
        .file("/etc/antimony/hooks.d/pre/notes.txt~", 0o755, "")
        .file_as(
            "/home/user/.config/antimony/hooks/wait.toml",
            1000,
            0o644,
            1,
            "[config]\nport = 80\n[hook]\npath = \"/usr/bin/tool\"\narguments = [\"{port}\", \"{instance}\"]\n",
        );
    let p = profile(
        "tool",
        "[[hooks.pre]]\nuse = \"wait\"\nconfig = { port = 8080 }\n",
    );
    let plan = plan(&p, &RunOptions::default(), &fs).unwrap();
    let pre: Vec<(&Path, &[OsString])> = plan
        .hooks(HookEvent::Pre)
        .map(|h| (h.exec.as_path(), h.args.as_slice()))
        .collect();
    assert_eq!(
        pre,
        [
            (Path::new("/etc/antimony/hooks.d/pre/10-audit"), &[][..]),
            (
                Path::new("/usr/bin/tool"),
                &["8080".into(), OsString::from(ID)][..]
            ),
        ]
    );
    assert_eq!(
        plan.warnings,
        ["/etc/antimony/hooks.d/pre/20-loose: skipped: it may be written by others than root"]
    );
    let used = &plan.hooks[1];
    assert_eq!(
        used.definition.as_deref(),
        Some(Path::new("/home/user/.config/antimony/hooks/wait.toml"))
    );
    // A bad placeholder is the definition's error, with the message it had.
    fs.file(
        "/home/user/.config/antimony/hooks/wait.toml",
        0o644,
        "[hook]\npath = \"/usr/bin/tool\"\narguments = [\"{nope}\"]\n",
    );
    let p = profile("tool", "[[hooks.pre]]\nuse = \"wait\"\n");
    let e = build(&p, &RunOptions::default(), &test_host(), &fs, ID).unwrap_err();
    assert!(
        e.to_string().ends_with(
            "use: hook `wait` (/home/user/.config/antimony/hooks/wait.toml): `{nope}` names no config setting"
        ),
        "{e}"
    );
}

#[test]
fn option_and_files_errors_are_typed_and_worded_as_before() {
    let fs = host_fs();
    let p = profile("tool", "");
    let with = |opts: RunOptions| build(&p, &opts, &test_host(), &fs, ID).unwrap_err();
    let e = with(RunOptions {
        env: vec!["NOEQUALS".into()],
        ..RunOptions::default()
    });
    assert!(matches!(
        e,
        PlanError::Option {
            reason: OptionError::NotKeyValue,
            ..
        }
    ));
    assert_eq!(e.to_string(), "--env NOEQUALS: expected KEY=VALUE");
    let e = with(RunOptions {
        ro: vec!["/a/../b".into()],
        ..RunOptions::default()
    });
    assert!(matches!(
        e,
        PlanError::Option {
            reason: OptionError::Path(PathError::ParentDir { .. }),
            ..
        }
    ));
    assert_eq!(e.to_string(), "--ro /a/../b: `/a/../b` contains `..`");
    let mut host = test_host();
    host.cwd = None;
    let opts = RunOptions {
        rw: vec!["rel".into()],
        ..RunOptions::default()
    };
    let e = build(&p, &opts, &host, &fs, ID).unwrap_err();
    assert_eq!(e.to_string(), "--rw rel: the current folder is unknown");
    let e = with(RunOptions {
        rw: vec!["/run/user/1000/bus".into()],
        ..RunOptions::default()
    });
    assert!(matches!(
        e,
        PlanError::Files {
            reason: FilesError::RawSessionBus(_),
            ..
        }
    ));
    let e = with(RunOptions {
        rw: vec!["~/.config/antimony/profiles".into()],
        ..RunOptions::default()
    });
    assert_eq!(
        e.to_string(),
        "command line: `/home/user/.config/antimony/profiles`: it is inside /home/user/.config/antimony, one of antimony's own folders, which no sandbox may see"
    );
    let unset = profile("tool", "[files]\nro = [\"$NOT_SET/x\"]\n");
    let e = plan(&unset, &RunOptions::default(), &fs).unwrap_err();
    assert_eq!(
        e.to_string(),
        "files: `$NOT_SET/x`: a variable it names is not set (write `?` before it to skip it then)"
    );
}

#[test]
fn package_config_binds_the_programs_etc_only_when_asked() {
    let mut fs = host_fs();
    fs.file("/usr/bin/player", 0o755, "")
        .file("/etc/player/player.conf", 0o644, "")
        .file("/etc/antimony/profiles/x.toml", 0o644, "")
        .file(
            "/var/lib/dpkg/info/player.list",
            0o644,
            "/.\n/etc\n/etc/player\n/etc/player/player.conf\n/usr\n/usr/bin\n/usr/bin/player\n",
        );
    let without = plan(&profile("player", ""), &RunOptions::default(), &fs).unwrap();
    assert!(without.package_config.is_none() && bind_at(&without, "/etc/player").is_none());

    // Named `antimony`, it would find /etc/antimony: never bound.
    let p = profile(
        "antimony",
        "path = \"/usr/bin/player\"\n[files]\npackage_config = true\nrw = [\"/srv\"]\n",
    );
    let with = plan(&p, &RunOptions::default(), &fs).unwrap();
    let found = with.package_config.as_ref().unwrap();
    assert_eq!(found.packages, ["player"]);
    assert_eq!(found.paths, [Path::new("/etc/player")]);
    let m = bind_at(&with, "/etc/player").unwrap();
    assert_eq!(
        m.op,
        Op::Bind {
            source: "/etc/player".into(),
            mode: BindMode::Ro,
            optional: false
        }
    );
    assert!(bind_at(&with, "/etc/antimony").is_none());
    let shown = with.to_string();
    assert!(
        shown.contains("package_config (from the package(s) player): /etc/player, read-only"),
        "{shown}"
    );
    assert!(
        shown.contains("ro      /etc/player ← /etc/player\n"),
        "{shown}"
    );
}

#[test]
fn the_network_mode_decides_the_namespace_and_resolv_conf() {
    let mut fs = host_fs();
    fs.file("/etc/resolv.conf", 0o644, "nameserver 127.0.0.53\n")
        .file("/usr/bin/pasta", 0o755, "");
    let p = profile(
        "tool",
        "[sandbox]\nnetwork = true\nforward_ports = [8080]\ntcp_connect = [443]\n",
    );
    let iso = plan(&p, &RunOptions::default(), &fs).unwrap();
    assert!(iso.namespaces.net);
    let n = iso.network.isolated.as_ref().unwrap();
    assert_eq!(n.pasta.as_deref(), Some(Path::new("/usr/bin/pasta")));
    assert_eq!(n.forward_ports, [8080]);
    let resolv = iso
        .mounts
        .iter()
        .find(|m| m.dest == Path::new("/etc/resolv.conf"))
        .unwrap();
    assert!(
        matches!(&resolv.op, Op::File { contents, .. } if String::from_utf8_lossy(contents).contains("nameserver 169.254.1.1"))
    );
    assert!(iso.to_string().contains("TCP connect: ports 443 only"));
    let host = RunOptions {
        network: Some(NetworkMode::Host),
        ..RunOptions::default()
    };
    let shared = plan(&p, &host, &fs).unwrap();
    assert!(!shared.namespaces.net && shared.network.isolated.is_none());
    assert!(bind_at(&shared, "/etc/resolv.conf").is_some());
    assert!(shared.warnings.iter().any(|w| w.contains("forward_ports")));
    let off = RunOptions {
        network: Some(NetworkMode::Off),
        ..RunOptions::default()
    };
    let none = plan(&p, &off, &fs).unwrap();
    assert!(none.namespaces.net && none.network.isolated.is_none());
    assert!(
        !none
            .mounts
            .iter()
            .any(|m| m.dest == Path::new("/etc/resolv.conf"))
    );
}
