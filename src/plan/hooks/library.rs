//! Reusable hooks: a hook defined once in `hooks/NAME.toml` (searched like
//! profiles: the user's folder, `/etc/antimony/hooks/`, then the ones
//! shipped in the repository's `hooks/` folder), with a default `config`,
//! and used from any profile by `use = "NAME"` with `config` overrides.
//!
//! ```toml
//! description = "Blocks until a TCP port accepts connections"
//! [config]
//! host = "127.0.0.1"
//! port = 8080
//! [hook]                      # for any event; or [pre], [started], [stopping], [post]
//! content = "…"
//! arguments = ["{host}", "{port}"]
//! ```
//!
//! `{KEY}` in `path` or `arguments` is replaced by the config value (and
//! `{profile}`, `{home}`, `{instance}` by the run's): each value becomes
//! (part of) one argv element, never text of a shell script. `{{` and `}}`
//! are literal braces.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::host::HostView;
use crate::profile::raw::{Identity, RawCondition};
use crate::profile::{Condition, HookEvent, ProfileError, Searcher, Source, validate};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    description: Option<String>,
    config: Option<toml::Table>,
    hook: Option<RawCommand>,
    pre: Option<RawCommand>,
    started: Option<RawCommand>,
    stopping: Option<RawCommand>,
    post: Option<RawCommand>,
}

/// What a reusable hook runs for an event, and its default settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommand {
    pub path: Option<String>,
    pub content: Option<String>,
    pub arguments: Option<Vec<String>>,
    pub system: Option<Identity>,
    pub env: Option<bool>,
    pub can_fail: Option<bool>,
    pub timeout: Option<f64>,
    pub stdin: Option<bool>,
    pub on: Option<Vec<RawCondition>>,
}

#[derive(Debug, Clone)]
pub struct Definition {
    pub name: String,
    pub file: String,
    /// The file it was read from (`None`: shipped).
    pub path: Option<std::path::PathBuf>,
    pub description: Option<String>,
    pub config: toml::Table,
    /// `None`: the `[hook]` table, for every event without its own.
    commands: BTreeMap<Option<HookEvent>, RawCommand>,
}

fn definition_error(file: &str, message: impl Into<String>) -> ProfileError {
    ProfileError::Definition {
        file: file.to_string(),
        message: message.into(),
    }
}

/// Finds and parses a reusable hook. `context` is where the profile uses it.
pub fn load(
    fs: &dyn HostView,
    searcher: &Searcher,
    name: &str,
    context: &str,
) -> Result<Definition, ProfileError> {
    let source = searcher.find_on(fs, name, None).map_err(|e| match e {
        ProfileError::NotFound {
            what,
            name,
            searched,
            ..
        } => ProfileError::NotFound {
            what,
            name,
            searched,
            context: format!("{context}: use: "),
        },
        other => other,
    })?;
    parse(&source)
}

/// Parses a definition's text.
pub fn parse(source: &Source) -> Result<Definition, ProfileError> {
    let file = source.file_label();
    let raw: RawDefinition = toml::from_str(&source.text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        ProfileError::Invalid {
            at: crate::profile::Location::at(&file, &source.text, offset),
            message: e.message().trim().to_string(),
        }
    })?;
    let mut commands = BTreeMap::new();
    for (event, cmd) in [
        (None, raw.hook),
        (Some(HookEvent::Pre), raw.pre),
        (Some(HookEvent::Started), raw.started),
        (Some(HookEvent::Stopping), raw.stopping),
        (Some(HookEvent::Post), raw.post),
    ] {
        if let Some(cmd) = cmd {
            if cmd.path.is_some() == cmd.content.is_some() {
                return Err(definition_error(
                    &file,
                    "each command needs exactly one of `path` and `content`",
                ));
            }
            commands.insert(event, cmd);
        }
    }
    if commands.is_empty() {
        return Err(definition_error(
            &file,
            "nothing to run: add a [hook] table (or [pre], [started], [stopping], [post])",
        ));
    }
    Ok(Definition {
        name: source.name.clone(),
        file,
        path: source.origin.path().map(std::path::Path::to_path_buf),
        description: raw.description,
        config: raw.config.unwrap_or_default(),
        commands,
    })
}

/// Values the placeholders can name besides the config's.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub profile: String,
    pub home: Option<String>,
    pub instance: String,
}

/// A reusable hook made concrete for one use.
#[derive(Debug, Clone)]
pub struct Instance {
    pub path: Option<String>,
    pub content: Option<String>,
    pub arguments: Vec<String>,
    pub config: toml::Table,
    pub system: Option<Identity>,
    pub env: Option<bool>,
    pub can_fail: Option<bool>,
    pub timeout: Option<std::time::Duration>,
    pub stdin: Option<bool>,
    pub on: Option<Vec<Condition>>,
}

impl Definition {
    /// The command for `event` with the profile's `overrides` of the config.
    pub fn instantiate(
        &self,
        event: HookEvent,
        overrides: &toml::Table,
        vars: &Vars,
        context: &str,
    ) -> Result<Instance, ProfileError> {
        let err = |m: String| definition_error(context, m);
        let cmd = self
            .commands
            .get(&Some(event))
            .or_else(|| self.commands.get(&None))
            .ok_or_else(|| {
                err(format!(
                    "use: hook `{}` has nothing to run at `{}`",
                    self.name,
                    event.key()
                ))
            })?;
        let mut config = self.config.clone();
        for (k, v) in overrides {
            if !config.contains_key(k) {
                let known: Vec<&str> = self.config.keys().map(String::as_str).collect();
                return Err(err(format!(
                    "config: `{k}` is not a setting of hook `{}` (its settings: {})",
                    self.name,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            config.insert(k.clone(), v.clone());
        }
        // Positioned at the use (a `{home}` the profile cannot give is its
        // problem), naming the definition too (a bad placeholder is that's).
        let sub = |s: &str| {
            substitute(s, &config, vars)
                .map_err(|m| err(format!("use: hook `{}` ({}): {m}", self.name, self.file)))
        };
        let path = cmd.path.as_deref().map(sub).transpose()?;
        let arguments = cmd
            .arguments
            .iter()
            .flatten()
            .map(|a| sub(a))
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = validate::timeout(cmd.timeout)
            .map_err(|e| definition_error(&self.file, e.to_string()))?;
        let on = match &cmd.on {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|c| {
                        validate::condition(c)
                            .map_err(|e| definition_error(&self.file, e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        if let Some(p) = &path {
            validate::parse_host_path(p)
                .map_err(|m| definition_error(&self.file, format!("path: {m}")))?;
        }
        Ok(Instance {
            path,
            content: cmd.content.clone(),
            arguments,
            config,
            system: cmd.system,
            env: cmd.env,
            can_fail: cmd.can_fail,
            timeout,
            stdin: cmd.stdin,
            on,
        })
    }
}

/// A placeholder that cannot be filled. `text` is the argument (or path)
/// as the definition writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubstituteError {
    #[error("`{text}`: a lone `}}` (write `}}}}` for a brace)")]
    LoneClose { text: String },
    #[error("`{text}`: `{{` without `}}`")]
    Unclosed { text: String },
    #[error("`{{{key}}}`: the config value is a table or list, which cannot be an argument")]
    NotScalar { key: String },
    #[error("`{{home}}`: the profile has no persistent home (home.policy)")]
    NoHome,
    #[error("`{{{key}}}` names no config setting")]
    Unknown { key: String },
}

/// Replaces `{KEY}` with config values and the run's variables.
pub fn substitute(s: &str, config: &toml::Table, vars: &Vars) -> Result<String, SubstituteError> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if tail.starts_with('}') {
            return Err(SubstituteError::LoneClose { text: s.into() });
        } else {
            let end = tail
                .find('}')
                .ok_or_else(|| SubstituteError::Unclosed { text: s.into() })?;
            let key = &tail[1..end];
            let value = match (key, config.get(key)) {
                (_, Some(v)) => {
                    scalar(v).ok_or_else(|| SubstituteError::NotScalar { key: key.into() })?
                }
                ("profile", None) => vars.profile.clone(),
                ("instance", None) => vars.instance.clone(),
                ("home", None) => vars.home.clone().ok_or(SubstituteError::NoHome)?,
                _ => return Err(SubstituteError::Unknown { key: key.into() }),
            };
            out.push_str(&value);
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Origin;
    use std::borrow::Cow;

    fn def(text: &str) -> Definition {
        parse(&Source {
            name: "d".into(),
            origin: Origin::File("d.toml".into()),
            text: Cow::Owned(text.into()),
        })
        .unwrap()
    }

    #[test]
    fn substitution_is_per_argument() {
        let mut config = toml::Table::new();
        config.insert("port".into(), toml::Value::Integer(80));
        config.insert("host".into(), toml::Value::String("a b;$(id)".into()));
        let vars = Vars {
            profile: "p".into(),
            ..Vars::default()
        };
        assert_eq!(substitute("{host}", &config, &vars).unwrap(), "a b;$(id)");
        assert_eq!(
            substitute("x{port}y{{}}", &config, &vars).unwrap(),
            "x80y{}"
        );
        assert_eq!(substitute("{profile}", &config, &vars).unwrap(), "p");
        assert!(substitute("{nope}", &config, &vars).is_err());
        assert!(substitute("{home}", &config, &vars).is_err());
        // The messages, as they were when these were strings.
        let text = |s: &str| substitute(s, &config, &vars).unwrap_err().to_string();
        assert_eq!(text("a}b"), "`a}b`: a lone `}` (write `}}` for a brace)");
        assert_eq!(text("a{b"), "`a{b`: `{` without `}`");
        assert_eq!(text("{nope}"), "`{nope}` names no config setting");
        assert_eq!(
            text("{home}"),
            "`{home}`: the profile has no persistent home (home.policy)"
        );
        let mut listed = config.clone();
        listed.insert("list".into(), toml::Value::Array(Vec::new()));
        let e = substitute("{list}", &listed, &vars).unwrap_err();
        assert_eq!(e, SubstituteError::NotScalar { key: "list".into() });
        assert_eq!(
            e.to_string(),
            "`{list}`: the config value is a table or list, which cannot be an argument"
        );
    }

    #[test]
    fn events_and_overrides() {
        let d = def(
            "[config]\nport = 1\n[hook]\npath = \"/bin/a\"\narguments = [\"{port}\"]\n\
             [post]\npath = \"/bin/b\"\n",
        );
        let mut over = toml::Table::new();
        over.insert("port".into(), toml::Value::Integer(2));
        let i = d
            .instantiate(HookEvent::Pre, &over, &Vars::default(), "here")
            .unwrap();
        assert_eq!(i.path.as_deref(), Some("/bin/a"));
        assert_eq!(i.arguments, ["2"]);
        let i = d
            .instantiate(HookEvent::Post, &over, &Vars::default(), "here")
            .unwrap();
        assert_eq!(i.path.as_deref(), Some("/bin/b"));
        over.insert("prot".into(), toml::Value::Integer(2));
        let e = d
            .instantiate(HookEvent::Pre, &over, &Vars::default(), "here")
            .unwrap_err();
        assert!(e.to_string().contains("`prot` is not a setting"), "{e}");
    }
}
