//! Inheritance: a profile's `inherits` are merged under it, in order, and the
//! profile's own values win.
//!
//! Merge rules, from the first inherited layer to the profile itself:
//! - single values (`path`, `arguments`, `dir`, `home.*`, `[sandbox]` keys,
//!   `files.package_config`, `hooks.grace`, `id`, `description`): the last
//!   layer that sets one wins;
//! - `[files]` entries and hooks: concatenated in merge order, so inherited
//!   pre-hooks run before the profile's own; a later bind to the same sandbox
//!   path replaces an earlier one;
//! - `[environment]` and `[limits]`: per variable or limit, the last layer wins;
//! - `fragment` and `base` are never inherited, and a base's `path` and
//!   `arguments` are its own: a profile that inherits `minimal` runs its own
//!   program (or the one named after it), never `minimal`'s `/usr/bin/true`.
//!
//! A profile inherited twice (a diamond) is merged once, at its first place.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::load::{Source, read_file};
use super::model::*;
use super::validate::{Layer, load_layer};
use super::{Location, ProfileError, Searcher, is_path_argument};

/// How deep `inherits` may nest.
pub const MAX_DEPTH: usize = 16;

/// Finds, loads, validates and merges a profile named on the command line.
pub fn resolve(searcher: &Searcher, arg: &str) -> Result<Profile, ProfileError> {
    let source = searcher.lookup(arg)?;
    resolve_source(searcher, source)
}

/// Loads, validates and merges a profile whose text is already at hand.
pub fn resolve_source(searcher: &Searcher, source: Source) -> Result<Profile, ProfileError> {
    let name = source.name.clone();
    let mut layers = Vec::new();
    let mut stack = vec![(source.file_label(), source.name.clone())];
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    let by = source.origin.path().map(Path::to_path_buf);
    let own_file = by.is_some();
    collect(
        searcher,
        (source, by),
        &mut stack,
        &mut seen,
        &mut layers,
        &mut files,
    )?;
    let mut p = merge(name, layers);
    // The profile's own file is collected last, as its layer is merged.
    if let (true, Some(own)) = (own_file, files.last_mut()) {
        own.inherited = None;
    }
    p.read_from = files;
    Ok(p)
}

/// Loads `source` and what it inherits, depth first. `by` is the path the
/// file was reached by (`None`: shipped), recorded in `files` as it is
/// merged.
fn collect(
    searcher: &Searcher,
    (source, by): (Source, Option<PathBuf>),
    stack: &mut Vec<(String, String)>,
    seen: &mut HashSet<String>,
    out: &mut Vec<Layer>,
    files: &mut Vec<ProfileFile>,
) -> Result<(), ProfileError> {
    let layer = load_layer(&source)?;
    for (inherit, at) in &layer.inherits {
        let (child, child_by) = find_inherited(searcher, &source, inherit, at)?;
        let key = child.file_label();
        if let Some(pos) = stack.iter().position(|(k, _)| *k == key) {
            let mut chain: Vec<&str> = stack[pos..].iter().map(|(_, n)| n.as_str()).collect();
            chain.push(inherit);
            return Err(ProfileError::Cycle {
                at: at.clone(),
                chain: chain.join(" → "),
            });
        }
        if seen.contains(&key) {
            continue;
        }
        if stack.len() >= MAX_DEPTH {
            return Err(ProfileError::Invalid {
                at: at.clone(),
                message: format!("inherits: more than {MAX_DEPTH} levels deep"),
            });
        }
        stack.push((key, child.name.clone()));
        collect(searcher, (child, child_by), stack, seen, out, files)?;
        stack.pop();
    }
    seen.insert(source.file_label());
    if let Some(path) = by {
        files.push(ProfileFile {
            // Relative to the current folder (a path on the command line).
            path: std::path::absolute(&path).unwrap_or(path),
            inherited: Some(source.name.clone()),
        });
    }
    out.push(layer);
    Ok(())
}

/// The inherited profile, and the path it was reached by (`None`: shipped).
fn find_inherited(
    searcher: &Searcher,
    from: &Source,
    inherit: &str,
    at: &Location,
) -> Result<(Source, Option<PathBuf>), ProfileError> {
    if is_path_argument(inherit) {
        // A path in `inherits` is relative to the file that names it.
        let base = from
            .origin
            .path()
            .and_then(Path::parent)
            .unwrap_or(Path::new("/"));
        // Normalised, so that `./a.toml` and `a.toml` are one file to the
        // cycle check and to messages.
        let joined = base.join(inherit);
        let path = std::fs::canonicalize(&joined).unwrap_or_else(|_| joined.clone());
        let source = read_file(&path).map_err(|e| match e {
            ProfileError::Read { path, source } => ProfileError::Invalid {
                at: at.clone(),
                message: format!("inherits: cannot read {}: {source}", path.display()),
            },
            other => other,
        })?;
        // The next run follows the links in `joined` again: they are part
        // of the way to the file, which the canonical path would hide.
        Ok((source, Some(joined)))
    } else {
        // A profile that inherits its own name inherits the one it hides,
        // from the layer below its own: a user's override of the shipped
        // profile, which keeps every later fix to it.
        let below = (inherit == from.name)
            .then(|| searcher.find_below(inherit, &from.origin, Some(at)))
            .flatten();
        let source = match below {
            Some(found) => found?,
            None => searcher.find(inherit, Some(at))?,
        };
        let by = source.origin.path().map(Path::to_path_buf);
        Ok((source, by))
    }
}

/// Merges validated layers, inherited ones first and the profile itself last.
pub fn merge(name: String, layers: Vec<Layer>) -> Profile {
    let mut p = Profile {
        name,
        description: None,
        id: None,
        fragment: false,
        base: false,
        path: Vec::new(),
        arguments: Vec::new(),
        dir: None,
        home: Home::default(),
        files: Vec::new(),
        forward: ForwardMode::default(),
        package_config: false,
        environment: Default::default(),
        sandbox: SandboxSettings::default(),
        dbus: None,
        grace: DEFAULT_GRACE,
        hooks: Vec::new(),
        user_dropins: true,
        limits: Limits::default(),
        inherited: Vec::new(),
        set_by: Default::default(),
        read_from: Vec::new(),
    };
    let last = layers.len().saturating_sub(1);
    for (i, layer) in layers.into_iter().enumerate() {
        // A layer of the profile's own name (an override of it, below)
        // gives everything: its program, and its being a base.
        let same = layer.name == p.name;
        let own_program = i == last || same || layer.base != Some(true);
        if i == last {
            p.fragment = layer.fragment.unwrap_or(false);
        } else {
            p.inherited.push(layer.name.clone());
        }
        if i == last || same {
            if let Some(b) = layer.base {
                p.base = b;
            }
        }
        // Who set what, for `show`: the last layer to set a key.
        let by = &layer.file;
        let mut mark = |key: &str, set: bool| {
            if set {
                p.set_by.insert(key.to_string(), by.clone());
            }
        };
        mark("description", layer.description.is_some());
        mark("id", layer.id.is_some());
        mark("path", layer.path.is_some() && own_program);
        mark("arguments", layer.arguments.is_some() && own_program);
        mark("dir", layer.dir.is_some());
        mark("home.policy", layer.home_policy.is_some());
        mark("home.name", layer.home_name.is_some());
        mark("files.package_config", layer.package_config.is_some());
        mark("sandbox.network", layer.network.is_some());
        mark("sandbox.forward_ports", layer.forward_ports.is_some());
        mark("sandbox.local_network", layer.local_network.is_some());
        mark("sandbox.tcp_connect", layer.tcp_connect.is_some());
        mark("sandbox.tcp_bind", layer.tcp_bind.is_some());
        mark("sandbox.share", layer.share.is_some());
        mark("sandbox.seccomp", layer.seccomp.is_some());
        mark("sandbox.landlock", layer.landlock.is_some());
        mark("sandbox.nested_userns", layer.nested_userns.is_some());
        mark("sandbox.single_instance", layer.single_instance.is_some());
        mark("files.forward", layer.forward.is_some());
        mark("hooks.grace", layer.grace.is_some());
        let l = &layer.limits;
        mark("limits.processes", l.processes.is_some());
        mark("limits.open_files", l.open_files.is_some());
        mark("limits.core_dumps", l.core_dumps.is_some());
        mark("limits.tmpfs", l.tmpfs.is_some());
        mark("limits.memory", l.memory.is_some());
        mark("limits.cpu", l.cpu.is_some());
        for var in layer.environment.keys() {
            mark(&format!("environment.{var}"), true);
        }
        set(&mut p.description, layer.description);
        set(&mut p.id, layer.id);
        if let (Some(path), true) = (layer.path, own_program) {
            p.path = path;
        }
        if let (Some(a), true) = (layer.arguments, own_program) {
            p.arguments = a;
        }
        set(&mut p.dir, layer.dir);
        if let Some(policy) = layer.home_policy {
            p.home.policy = policy;
        }
        set(&mut p.home.name, layer.home_name);
        p.files.extend(layer.files);
        if let Some(v) = layer.package_config {
            p.package_config = v;
        }
        p.environment.extend(layer.environment);
        if let Some(v) = layer.network {
            p.sandbox.network = v;
        }
        if let Some(v) = layer.forward_ports {
            p.sandbox.forward_ports = v;
        }
        if let Some(v) = layer.local_network {
            p.sandbox.local_network = v;
        }
        if let Some(v) = layer.tcp_connect {
            p.sandbox.tcp_connect = Some(v);
        }
        if let Some(v) = layer.tcp_bind {
            p.sandbox.tcp_bind = Some(v);
        }
        if let Some(v) = layer.share {
            p.sandbox.share = v;
        }
        if let Some(v) = layer.seccomp {
            p.sandbox.seccomp = v;
        }
        if let Some(v) = layer.landlock {
            p.sandbox.landlock = v;
        }
        if let Some(v) = layer.nested_userns {
            p.sandbox.nested_userns = v;
        }
        if let Some(v) = layer.single_instance {
            p.sandbox.single_instance = v;
        }
        if let Some(v) = layer.forward {
            p.forward = v;
        }
        // Like bus names, host abstract sockets add up through inherits.
        for name in layer.abstract_sockets {
            if !p.sandbox.abstract_sockets.contains(&name) {
                p.sandbox.abstract_sockets.push(name);
            }
        }
        // Bus policies add up: each layer may only allow more names.
        if let Some(d) = layer.dbus {
            let all = p.dbus.get_or_insert_with(Dbus::default);
            for (to, from) in [
                (&mut all.see, d.see),
                (&mut all.talk, d.talk),
                (&mut all.own, d.own),
                (&mut all.call, d.call),
                (&mut all.broadcast, d.broadcast),
            ] {
                for v in from {
                    if !to.contains(&v) {
                        to.push(v);
                    }
                }
            }
        }
        if let Some(g) = layer.grace {
            p.grace = g;
        }
        if let Some(v) = layer.user_dropins {
            p.user_dropins = v;
        }
        p.hooks.extend(layer.hooks);
        // Each limit: the last layer that sets it.
        let (to, from) = (&mut p.limits, layer.limits);
        set(&mut to.processes, from.processes);
        set(&mut to.open_files, from.open_files);
        set(&mut to.core_dumps, from.core_dumps);
        set(&mut to.tmpfs, from.tmpfs);
        set(&mut to.memory, from.memory);
        set(&mut to.cpu, from.cpu);
    }
    p
}

fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Origin;
    use std::borrow::Cow;

    fn layer(name: &str, text: &str) -> Layer {
        load_layer(&Source {
            name: name.into(),
            origin: Origin::File(format!("{name}.toml").into()),
            text: Cow::Owned(text.to_string()),
        })
        .unwrap()
    }

    #[test]
    fn own_values_win_and_lists_concatenate() {
        let base = layer(
            "base",
            "path = \"/bin/a\"\n[sandbox]\nnetwork = true\n[environment]\nA = \"1\"\nB = \"1\"\n\
             [files]\nro = [\"/x\"]\n[[hooks.pre]]\nname = \"first\"\npath = \"/bin/true\"\n",
        );
        let top = layer(
            "top",
            "path = \"/bin/b\"\nfragment = true\n[environment]\nB = \"2\"\n[files]\nro = [\"/y\"]\n\
             [[hooks.pre]]\nname = \"second\"\npath = \"/bin/true\"\n",
        );
        let p = merge("top".into(), vec![base, top]);
        assert_eq!(p.path[0].to_string(), "/bin/b");
        assert_eq!(p.sandbox.network, crate::profile::NetworkMode::Isolated);
        assert_eq!(p.environment["A"], EnvValue::Literal("1".into()));
        assert_eq!(p.environment["B"], EnvValue::Literal("2".into()));
        assert_eq!(p.files.len(), 2);
        let names: Vec<_> = p.hooks.iter().map(|h| h.name.clone().unwrap()).collect();
        assert_eq!(names, ["first", "second"]);
        assert!(p.fragment);
        assert_eq!(p.inherited, ["base"]);
    }

    #[test]
    fn the_files_read_are_kept_as_the_next_run_reaches_them() {
        let dir = std::env::temp_dir().join(format!("antimony-merge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("base.toml"), "fragment = true\n").unwrap();
        std::os::unix::fs::symlink(".", dir.join("lib")).unwrap();
        let top = dir.join("top.toml");
        std::fs::write(&top, "inherits = [\"lib/base.toml\", \"sh\"]\n").unwrap();
        let searcher = Searcher::with_dirs("/nonexistent/u".into(), "/nonexistent/s".into());
        let p = resolve(&searcher, top.to_str().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
        // The inherited file through the link, not by its real path;
        // shipped ones (sh, minimal) are read from no file.
        assert_eq!(
            p.unwrap().read_from,
            [
                ProfileFile {
                    path: dir.join("lib/base.toml"),
                    inherited: Some("base".into())
                },
                ProfileFile {
                    path: top,
                    inherited: None
                },
            ]
        );
        let shipped = resolve(&searcher, "sh").unwrap();
        assert!(shipped.read_from.is_empty());
    }

    #[test]
    fn a_bases_program_is_its_own() {
        let base = layer(
            "base",
            "base = true\npath = \"/usr/bin/true\"\narguments = [\"x\"]\n",
        );
        let top = layer("top", "");
        let p = merge("top".into(), vec![base.clone(), top]);
        assert!(p.path.is_empty() && p.arguments.is_empty() && !p.base);
        let alone = merge("base".into(), vec![base.clone()]);
        assert!(alone.base && alone.path.len() == 1 && alone.arguments == ["x"]);
        // An override of the base (same name, the layer below) is the base,
        // program included.
        let over = layer("base", "[environment]\nA = \"1\"\n");
        let p = merge("base".into(), vec![base, over]);
        assert!(p.base && p.path.len() == 1 && p.arguments == ["x"]);
    }

    #[test]
    fn each_limit_comes_from_the_last_layer_that_sets_it() {
        let base = layer("base", "[limits]\nprocesses = 100\ncpu = \"50%\"\n");
        let top = layer("top", "[limits]\nprocesses = 200\ntmpfs = \"1G\"\n");
        let p = merge("top".into(), vec![base, top]);
        assert_eq!(p.limits.processes, Some(200));
        assert_eq!(p.limits.cpu, Some(50));
        assert_eq!(p.limits.tmpfs, Some(1 << 30));
        assert_eq!(p.limits.memory, None);
        assert_eq!(p.set_by["limits.processes"], "top.toml");
        assert_eq!(p.set_by["limits.cpu"], "base.toml");
    }

    #[test]
    fn fragment_is_not_inherited() {
        let base = layer("base", "fragment = true\n");
        let top = layer("top", "");
        assert!(!merge("top".into(), vec![base, top]).fragment);
    }
}
