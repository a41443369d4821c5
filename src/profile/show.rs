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
        path: p.path.as_ref().map(|x| s(x.to_string())),
        arguments: (!p.arguments.is_empty()).then(|| p.arguments.iter().cloned().map(s).collect()),
        dir: p.dir.as_ref().map(|d| s(d.to_string())),
        inherits: None,
        home: (p.home != Home::default()).then(|| RawHome {
            policy: Some(p.home.policy),
            name: p.home.name.clone().map(s),
        }),
        files: (!p.files.is_empty()).then_some(files),
        environment: (!environment.is_empty()).then_some(environment),
        sandbox: Some(RawSandbox {
            network: Some(sb.network),
            share: Some(sb.share.iter().copied().collect()),
            seccomp: Some(sb.seccomp),
            landlock: Some(sb.landlock),
            nested_userns: Some(sb.nested_userns),
        }),
        hooks: {
            let pre = hooks_of(HookEvent::Pre);
            let post = hooks_of(HookEvent::Post);
            let grace = (p.grace != DEFAULT_GRACE).then(|| s(p.grace.as_secs_f64()));
            (pre.is_some() || post.is_some() || grace.is_some()).then_some(RawHooks {
                grace,
                pre,
                post,
            })
        },
    };
    let mut out = format!("# antimony show {}", p.name);
    if !p.inherited.is_empty() {
        out.push_str(&format!(" (inherits {})", p.inherited.join(", ")));
    }
    out.push('\n');
    out.push_str(&toml::to_string(&raw).unwrap_or_else(|e| format!("# cannot print: {e}\n")));
    out
}

fn raw_hook(h: &Hook) -> RawHook {
    let (path, content, arguments) = match &h.command {
        HookCommand::Program { path, arguments } => (Some(path.to_string()), None, arguments),
        HookCommand::Script { content, arguments } => (None, Some(content.clone()), arguments),
    };
    RawHook {
        name: h.name.clone(),
        path,
        content,
        arguments: (!arguments.is_empty()).then(|| arguments.clone()),
        attach: h.attach.then_some(true),
        system: Some(h.identity),
        env: Some(h.env),
        can_fail: Some(h.can_fail),
        no_fail: None,
    }
}
