//! `antimony show`: a resolved profile written back as profile TOML, so the
//! output is itself a valid profile with the same meaning.

use std::collections::BTreeMap;

use toml::Spanned;

use super::model::*;
use super::raw::*;

fn s<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

/// The profile as TOML, with every inherited value folded in.
pub fn to_toml(p: &Profile) -> String {
    let mut files = RawFiles::default();
    for entry in &p.files {
        let slot = match entry {
            FileEntry::Bind { mode, .. } => match mode {
                BindMode::Ro => &mut files.ro,
                BindMode::Rw => &mut files.rw,
                BindMode::Dev => &mut files.dev,
            },
            FileEntry::Tmpfs { .. } => &mut files.tmpfs,
        };
        slot.get_or_insert_with(Vec::new).push(s(entry.written()));
    }
    if p.forward != ForwardMode::default() {
        files.forward = Some(p.forward);
    }
    let has_files = !p.files.is_empty() || files.forward.is_some();
    files.package_config = p.package_config.then_some(true);
    let environment: BTreeMap<String, Spanned<String>> = p
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), s(v.written())))
        .collect();
    let sb = &p.sandbox;
    let hooks_of = |event: HookEvent| -> Option<Vec<Spanned<RawHook>>> {
        let list: Vec<_> = p.hooks(event).map(|h| s(raw_hook(h))).collect();
        (!list.is_empty()).then_some(list)
    };
    let raw = RawProfile {
        description: p.description.clone().map(s),
        id: p.id.clone().map(s),
        fragment: p.fragment.then_some(true),
        base: p.base.then_some(true),
        path: match p.path.as_slice() {
            [] => None,
            [one] => Some(s(ProgramSpec::One(one.to_string()))),
            many => Some(s(ProgramSpec::Any(
                many.iter().map(ToString::to_string).collect(),
            ))),
        },
        arguments: (!p.arguments.is_empty()).then(|| p.arguments.iter().cloned().map(s).collect()),
        dir: p.dir.as_ref().map(|d| s(d.to_string())),
        inherits: None,
        home: (p.home != Home::default()).then(|| RawHome {
            policy: Some(p.home.policy),
            name: p.home.name.clone().map(s),
        }),
        files: (has_files || p.package_config).then_some(files),
        environment: (!environment.is_empty()).then_some(environment),
        sandbox: Some(RawSandbox {
            network: Some(sb.network),
            forward_ports: (!sb.forward_ports.is_empty())
                .then(|| sb.forward_ports.iter().copied().map(s).collect()),
            local_network: sb.local_network.then_some(true),
            tcp_connect: sb.tcp_connect.clone(),
            tcp_bind: sb.tcp_bind.clone(),
            share: Some(sb.share.iter().copied().collect()),
            seccomp: Some(sb.seccomp),
            landlock: Some(sb.landlock),
            nested_userns: Some(sb.nested_userns),
            single_instance: sb.single_instance.then_some(true),
            abstract_sockets: (!sb.abstract_sockets.is_empty())
                .then(|| sb.abstract_sockets.iter().cloned().map(s).collect()),
        }),
        dbus: p.dbus.as_ref().map(|d| {
            let list =
                |v: &Vec<String>| (!v.is_empty()).then(|| v.iter().cloned().map(s).collect());
            RawDbus {
                see: list(&d.see),
                talk: list(&d.talk),
                own: list(&d.own),
                call: list(&d.call),
                broadcast: list(&d.broadcast),
            }
        }),
        hooks: {
            let raw = RawHooks {
                grace: (p.grace != DEFAULT_GRACE).then(|| s(p.grace.as_secs_f64())),
                user_dropins: (!p.user_dropins).then_some(false),
                pre: hooks_of(HookEvent::Pre),
                started: hooks_of(HookEvent::Started),
                stopping: hooks_of(HookEvent::Stopping),
                post: hooks_of(HookEvent::Post),
            };
            let empty = raw.grace.is_none()
                && raw.user_dropins.is_none()
                && raw.pre.is_none()
                && raw.started.is_none()
                && raw.stopping.is_none()
                && raw.post.is_none();
            (!empty).then_some(raw)
        },
        limits: raw_limits(&p.limits),
    };
    let mut out = format!("# antimony show {}", p.name);
    if !p.inherited.is_empty() {
        out.push_str(&format!(" (inherits {})", p.inherited.join(", ")));
    }
    out.push('\n');
    let text = toml::to_string(&raw).unwrap_or_else(|e| format!("# cannot print: {e}\n"));
    if p.inherited.is_empty() {
        out.push_str(&text);
    } else {
        out.push_str(&annotate(&text, &p.set_by));
    }
    out
}

/// What marks, in `show`, the file that set a value.
pub const SET_BY: &str = "  # \u{2190} ";

/// Marks each single value of `text` (TOML as `to_toml` writes it) with the
/// file of the layer that set it. Lines inside a multi-line string are
/// left alone.
fn annotate(text: &str, set_by: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut table = String::new();
    let mut in_string = false;
    for line in text.lines() {
        out.push_str(line);
        let quotes = line.matches("'''").count() + line.matches("\"\"\"").count();
        if !in_string {
            if let Some(header) = line.strip_prefix('[') {
                table = header.trim_matches(|c| c == '[' || c == ']').to_string();
            } else if let Some((key, _)) = line.split_once(" = ") {
                let key = key.trim().trim_matches('"');
                let full = if table.is_empty() {
                    key.to_string()
                } else {
                    format!("{table}.{key}")
                };
                if let (Some(file), 0) = (set_by.get(&full), quotes) {
                    out.push_str(SET_BY);
                    // One comment line, whatever the file's name holds.
                    out.push_str(&crate::text::escape_line(file));
                }
            }
        }
        if quotes % 2 == 1 {
            in_string = !in_string;
        }
        out.push('\n');
    }
    out
}

/// The limits the profile sets (the others are the plan's defaults).
fn raw_limits(l: &Limits) -> Option<RawLimits> {
    if *l == Limits::default() {
        return None;
    }
    let count = |v: Option<u64>| v.map(|n| s(n as i64));
    let size = |v: Option<u64>| v.map(|b| s(RawSize::Text(super::validate::written_size(b))));
    Some(RawLimits {
        processes: count(l.processes),
        open_files: count(l.open_files),
        core_dumps: l.core_dumps,
        tmpfs: size(l.tmpfs),
        memory: size(l.memory),
        cpu: l.cpu.map(|c| s(format!("{c}%"))),
    })
}

fn raw_hook(h: &Hook) -> RawHook {
    let mut raw = RawHook {
        name: h.name.clone(),
        attach: h.attach.then_some(true),
        can_fail: Some(h.can_fail),
        on: (!h.on.is_empty()).then(|| {
            h.on.iter()
                .map(|c| match c {
                    Condition::Code(n) => RawCondition::Code(i64::from(*n)),
                    other => RawCondition::Name(other.written()),
                })
                .collect()
        }),
        timeout: h.timeout.map(|t| t.as_secs_f64()),
        stdin: h.stdin.then_some(true),
        inside: h.inside.then_some(true),
        ..RawHook::default()
    };
    if !h.inside {
        raw.system = Some(h.identity);
        raw.env = Some(h.env);
    }
    let args = |a: &Vec<String>| (!a.is_empty()).then(|| a.clone());
    match &h.command {
        HookCommand::Program { path, arguments } => {
            raw.path = Some(path.to_string());
            raw.arguments = args(arguments);
        }
        HookCommand::Script { content, arguments } => {
            raw.content = Some(content.clone());
            raw.arguments = args(arguments);
        }
        HookCommand::Use { name, config } => {
            raw.uses = Some(name.clone());
            raw.config = (!config.is_empty()).then(|| config.clone());
            // A `use` hook shows only what it sets itself.
            if !h.explicit.identity {
                raw.system = None;
            }
            if !h.explicit.env {
                raw.env = None;
            }
            if !h.explicit.can_fail {
                raw.can_fail = None;
            }
            // What it sets, even to the plain default: `stdin = false`
            // over a definition's `true` must stay false.
            raw.stdin = h.explicit.stdin.then_some(h.stdin);
            if !h.explicit.timeout {
                raw.timeout = None;
            }
            if h.explicit.on {
                raw.on = Some(raw.on.take().unwrap_or_default());
            } else {
                raw.on = None;
            }
        }
        HookCommand::Profile { name, arguments } => {
            raw.profile = Some(name.clone());
            raw.arguments = args(arguments);
            raw.system = None;
        }
    }
    raw
}

#[cfg(test)]
mod tests {
    #[test]
    fn marks_go_on_set_values_and_never_into_a_string() {
        let set_by: BTreeMap<String, String> = [
            ("path".to_string(), "a.toml".to_string()),
            ("environment.LANG".to_string(), "b.toml".to_string()),
        ]
        .into();
        let text = "description = '''\npath = \"in a string\"\n'''\npath = \"/bin/sh\"\n\n[environment]\nLANG = \"$LANG\"\nTZ = \"$TZ\"\n";
        let out = annotate(text, &set_by);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "path = \"in a string\"");
        assert_eq!(lines[3], format!("path = \"/bin/sh\"{SET_BY}a.toml"));
        assert_eq!(lines[6], format!("LANG = \"$LANG\"{SET_BY}b.toml"));
        assert_eq!(lines[7], "TZ = \"$TZ\"");
    }

    use super::*;
    use crate::profile::{Origin, Searcher, Source, merge};

    fn load(text: &str) -> Profile {
        let searcher = Searcher::with_dirs("/nonexistent/u".into(), "/nonexistent/s".into());
        let source = Source {
            name: "t".into(),
            origin: Origin::File("/nonexistent/t.toml".into()),
            text: text.to_string().into(),
        };
        merge::resolve_source(&searcher, source).unwrap()
    }

    #[test]
    fn a_use_hooks_own_settings_survive_show() {
        // notify-on-failure reads its stdin by default.
        let p = load(
            "inherits = [\"sh\"]\n[[hooks.post]]\nuse = \"notify-on-failure\"\nstdin = false\n",
        );
        assert!(!p.hooks[0].stdin);
        let shown = to_toml(&p);
        assert!(shown.contains("stdin = false"), "{shown}");
        let again = &load(&shown).hooks[0];
        assert!(!again.stdin && again.explicit == p.hooks[0].explicit);
    }

    #[test]
    fn package_config_is_shown_and_read_back() {
        let p = load("inherits = [\"sh\"]\n[files]\npackage_config = true\n");
        assert!(p.package_config);
        let shown = to_toml(&p);
        assert!(shown.contains("package_config = true"), "{shown}");
        assert!(load(&shown).package_config);
        // A single value: the last layer that sets it wins.
        let off = load("inherits = [\"sh\"]\n[files]\npackage_config = false\n");
        assert!(!off.package_config && !to_toml(&off).contains("package_config"));
    }
}
