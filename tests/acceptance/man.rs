//! The man pages in `man/` against the code.
//!
//! - The generated pages (`antimony::man::pages()`, from the clap
//!   definitions) must equal the committed files; `ANTIMONY_UPDATE_MAN=1`
//!   rewrites the files instead.
//! - Every key of the profile format, found by walking the raw serde structs
//!   with a recording `Deserializer`, and every value of its enums, must be
//!   documented in the hand-written `man/antimony-profile.5`.
//! - Every subcommand has a page, and `antimony.1` names it.
//! - The pages render without warnings (`groff -ww -z`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use serde::de::value::{BorrowedStrDeserializer, Error as DeError};
use serde::de::{self, DeserializeSeed, Deserializer, Visitor};
use serde::forward_to_deserialize_any;

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    vec![
        case(
            "man::generated_pages_match_man_folder",
            generated_pages_match,
        ),
        case(
            "man::every_profile_key_is_documented",
            every_profile_key_is_documented,
        ),
        case(
            "man::every_subcommand_has_a_page",
            every_subcommand_has_a_page,
        ),
        case(
            "man::base_etc_entries_are_documented",
            etc_entries_documented,
        ),
        case(
            "man::pages_render_without_warnings",
            pages_render_without_warnings,
        ),
    ]
}

const UPDATE: &str = "ANTIMONY_UPDATE_MAN";
const PROFILE_PAGE: &str = "antimony-profile.5";

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

fn read_page(name: &str) -> Result<String, Failed> {
    let path = man_dir().join(name);
    std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()).into())
}

/// The first line where two texts differ, for the failure message.
fn first_difference(want: &str, have: &str) -> String {
    let (w, h): (Vec<&str>, Vec<&str>) = (want.lines().collect(), have.lines().collect());
    for i in 0..w.len().max(h.len()) {
        let (a, b) = (w.get(i), h.get(i));
        if a != b {
            return format!(
                "line {}:\n  generated: {}\n  in man/:   {}",
                i + 1,
                a.unwrap_or(&"(end of page)"),
                b.unwrap_or(&"(end of page)")
            );
        }
    }
    "(only line endings differ)".into()
}

fn generated_pages_match() -> TestResult {
    let update = std::env::var(UPDATE).as_deref() == Ok("1");
    let dir = man_dir();
    let pages = antimony::man::pages();
    let mut problems = Vec::new();
    for (name, text) in &pages {
        let path = dir.join(name);
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(text.as_str()) {
            continue;
        }
        if update {
            std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
            eprintln!("rewrote {}", path.display());
            continue;
        }
        problems.push(match current {
            None => format!("man/{name} is missing"),
            Some(c) => format!("man/{name} differs, {}", first_difference(text, &c)),
        });
    }
    // A page for a command that no longer exists.
    let generated: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("read {}: {e}", dir.display()))? {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".1") && !generated.contains(&name.as_ref()) {
            problems.push(format!("man/{name} belongs to no command (delete it)"));
        }
    }
    ensure!(
        problems.is_empty(),
        "the man pages in man/ have drifted from the command line (src/cli.rs, src/man.rs):\n{}\n\
         Run `{UPDATE}=1 cargo test --test acceptance -- man::` to rewrite them, then review and commit man/.",
        problems.join("\n")
    );
    pass()
}

fn every_subcommand_has_a_page() -> TestResult {
    let top = read_page("antimony.1")?;
    let pages = antimony::man::pages();
    let mut problems = Vec::new();
    for sub in Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
    {
        let name = sub.get_name();
        let file = format!("antimony-{name}.1");
        if !pages.iter().any(|(n, _)| *n == file) {
            problems.push(format!("antimony::man::pages() has no {file}"));
        }
        if !man_dir().join(&file).is_file() {
            problems.push(format!("man/{file} is missing"));
        }
        if !top.contains(&format!("antimony\\-{name}(1)")) {
            problems.push(format!("man/antimony.1 does not name antimony-{name}(1)"));
        }
    }
    let profile = read_page(PROFILE_PAGE)?;
    ensure!(
        profile.contains(".TH ANTIMONY-PROFILE 5"),
        "man/{PROFILE_PAGE} has no `.TH ANTIMONY-PROFILE 5` title"
    );
    ensure!(
        top.contains("antimony\\-profile") && top.contains("(5)"),
        "man/antimony.1 does not refer to antimony-profile(5)"
    );
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    pass()
}

use antimony::cli::Cli;

// ---------------------------------------------------------------------------
// The profile format's keys, as the raw serde structs declare them.

/// What one walk of the raw structs found.
#[derive(Default, Debug)]
struct Keys {
    /// Table path (`""`, `home`, `hooks.pre`, …) → its keys.
    tables: BTreeMap<String, Vec<&'static str>>,
    /// Key path (`home.policy`, `sandbox.share`, …) → the enum's values.
    enums: BTreeMap<String, Vec<&'static str>>,
}

/// A `Deserializer` that produces a minimal value of any type and records
/// the `fields` of every struct and the `variants` of every enum it is
/// asked for, with the key path that led there.
struct Recorder<'a> {
    path: String,
    keys: &'a mut Keys,
}

/// toml's `Spanned<T>` deserializes as a struct with this name around the
/// value; it is transparent to the profile format.
const SPANNED: &str = "$__serde_spanned_private_Spanned";

impl Recorder<'_> {
    fn child(&mut self, key: &str) -> Recorder<'_> {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Recorder {
            path,
            keys: &mut *self.keys,
        }
    }

    fn same(&mut self) -> Recorder<'_> {
        Recorder {
            path: self.path.clone(),
            keys: &mut *self.keys,
        }
    }
}

impl<'de> Deserializer<'de> for Recorder<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        // Untagged enums and free-form values: a string satisfies most.
        v.visit_borrowed_str("")
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_bool(false)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_i64(0)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_u64(0)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_f64(0.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_seq(Elements { rec: self, left: 1 })
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, DeError> {
        v.visit_seq(Elements {
            rec: self,
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_seq(Elements {
            rec: self,
            left: len,
        })
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        // A free-form table (`[environment]`): its keys are the user's.
        v.visit_map(Fields {
            rec: self,
            fields: &[],
            next: 0,
            spanned: false,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let spanned = name == SPANNED;
        if !spanned {
            self.keys
                .tables
                .entry(self.path.clone())
                .or_default()
                .extend_from_slice(fields);
        }
        v.visit_map(Fields {
            rec: self,
            fields,
            next: 0,
            spanned,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.keys
            .enums
            .entry(self.path.clone())
            .or_default()
            .extend_from_slice(variants);
        v.visit_enum(Variant {
            rec: self,
            name: variants.first().copied().unwrap_or(""),
        })
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u16 u32 u128 f32 char str string bytes byte_buf
        unit unit_struct identifier ignored_any
    }
}

struct Elements<'a> {
    rec: Recorder<'a>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.rec.same()).map(Some)
    }
}

struct Fields<'a> {
    rec: Recorder<'a>,
    fields: &'static [&'static str],
    next: usize,
    spanned: bool,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.fields.get(self.next) {
            Some(field) => seed
                .deserialize(BorrowedStrDeserializer::new(field))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let field = self.fields[self.next];
        self.next += 1;
        if self.spanned {
            seed.deserialize(self.rec.same())
        } else {
            seed.deserialize(self.rec.child(field))
        }
    }
}

struct Variant<'a> {
    rec: Recorder<'a>,
    name: &'static str,
}

impl<'de, 'a> de::EnumAccess<'de> for Variant<'a> {
    type Error = DeError;
    type Variant = Recorder<'a>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Recorder<'a>), DeError> {
        let v = seed.deserialize(BorrowedStrDeserializer::<DeError>::new(self.name))?;
        Ok((v, self.rec))
    }
}

impl<'de> de::VariantAccess<'de> for Recorder<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, DeError> {
        v.visit_seq(Elements {
            rec: self,
            left: len,
        })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_struct("", fields, v)
    }
}

/// Every table and enum of the profile format, from `RawProfile` down.
fn profile_keys() -> Result<Keys, Failed> {
    let mut keys = Keys::default();
    let rec = Recorder {
        path: String::new(),
        keys: &mut keys,
    };
    <antimony::profile::raw::RawProfile as serde::Deserialize>::deserialize(rec)
        .map_err(|e| format!("walking the raw profile structs failed: {e}"))?;
    Ok(keys)
}

/// A section of a roff page: its `.SH`/`.SS` heading and its lines.
struct Block<'a> {
    heading: String,
    lines: Vec<&'a str>,
}

fn blocks(page: &str) -> Vec<Block<'_>> {
    let mut out = vec![Block {
        heading: String::new(),
        lines: Vec::new(),
    }];
    for line in page.lines() {
        if let Some(h) = line
            .strip_prefix(".SH ")
            .or_else(|| line.strip_prefix(".SS "))
        {
            out.push(Block {
                heading: h.trim().trim_matches('"').to_string(),
                lines: Vec::new(),
            });
        } else if let Some(b) = out.last_mut() {
            b.lines.push(line);
        }
    }
    out
}

/// The block that documents the table at `path`: `Top-level keys` for the
/// top, else the one whose heading contains `[path]` (which also matches
/// `[[hooks.pre]]`).
fn table_block<'p, 'b>(blocks: &'b [Block<'p>], path: &str) -> Option<&'b Block<'p>> {
    if path.is_empty() {
        blocks
            .iter()
            .find(|b| b.heading.starts_with("Top-level keys"))
    } else {
        let want = format!("[{path}]");
        blocks.iter().find(|b| b.heading.contains(&want))
    }
}

/// Whether `key` is the tag of a `.TP` paragraph in the block: the line
/// after `.TP` starts with `.B key`, `.BR key` or `\fBkey\fR`.
fn tagged(block: &Block<'_>, key: &str) -> bool {
    block.lines.windows(2).any(|w| {
        let (tp, tag) = (w[0].trim_end(), w[1]);
        if tp != ".TP" {
            return false;
        }
        let word = |rest: &str| rest.is_empty() || rest.starts_with(' ');
        [".B ", ".BR "].iter().any(|m| {
            tag.strip_prefix(m)
                .and_then(|r| r.strip_prefix(key))
                .is_some_and(word)
        }) || tag.starts_with(&format!("\\fB{key}\\fR"))
    })
}

fn every_profile_key_is_documented() -> TestResult {
    let page = read_page(PROFILE_PAGE)?;
    let blocks = blocks(&page);
    let keys = profile_keys()?;
    ensure!(
        keys.tables.get("").is_some_and(|k| k.contains(&"path")),
        "the walk of RawProfile found no top-level `path`: {keys:?}"
    );
    let mut missing = Vec::new();
    // (section, key) → the tables that lack it: `[[hooks.pre]]` and
    // `[[hooks.post]]` share one struct and one section.
    let mut untagged: BTreeMap<(String, &str), Vec<String>> = BTreeMap::new();
    for (table, fields) in &keys.tables {
        let shown = if table.is_empty() {
            "top level".to_string()
        } else {
            format!("[{table}]")
        };
        let Some(block) = table_block(&blocks, table) else {
            missing.push(format!(
                "{shown}: no section (`.SS` heading containing `{}`)",
                if table.is_empty() {
                    "Top-level keys".to_string()
                } else {
                    format!("[{table}]")
                }
            ));
            continue;
        };
        for field in fields {
            let path = if table.is_empty() {
                field.to_string()
            } else {
                format!("{table}.{field}")
            };
            // A key is documented as a `.TP` tag in its table's section, or,
            // for a table of its own, by that table's section.
            if !tagged(block, field) && table_block(&blocks, &path).is_none() {
                untagged
                    .entry((block.heading.clone(), field))
                    .or_default()
                    .push(shown.clone());
            }
        }
    }
    for ((heading, field), tables) in untagged {
        missing.push(format!(
            "{}: key `{field}` (no `.TP` tag `.B {field}` in section `{heading}`)",
            tables.join(", ")
        ));
    }
    for (key, variants) in &keys.enums {
        let table = key.rsplit_once('.').map_or("", |(t, _)| t);
        let Some(block) = table_block(&blocks, table) else {
            continue; // reported above
        };
        let text = block.lines.join("\n").replace("\\-", "-");
        for v in variants {
            if !text.contains(&format!("\"{v}\"")) {
                missing.push(format!(
                    "`{key}`: value \"{v}\" not in section `{}`",
                    block.heading
                ));
            }
        }
    }
    ensure!(
        missing.is_empty(),
        "man/{PROFILE_PAGE} does not document these parts of the profile format \
         (src/profile/raw.rs):\n{}",
        missing.join("\n")
    );
    pass()
}

/// The `/etc` entries of every sandbox, as the profile page lists them
/// (between "these entries of" and "(never"), equal `ETC_ENTRIES`.
fn etc_entries_documented() -> TestResult {
    let page = read_page(PROFILE_PAGE)?;
    let listed: Option<Vec<String>> = page.split_once("these entries of").and_then(|(_, rest)| {
        let (_, rest) = rest.split_once("where the host has them:")?;
        let (list, _) = rest.split_once("(never")?;
        Some(
            list.replace("\\-", "-")
                .split([',', ' ', '\n'])
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect(),
        )
    });
    let Some(listed) = listed else {
        return Err(format!(
            "man/{PROFILE_PAGE} has no list \"these entries of /etc … where the host has them: … (never\""
        )
        .into());
    };
    let code = antimony::plan::mounts::ETC_ENTRIES;
    let missing: Vec<&str> = code
        .iter()
        .copied()
        .filter(|e| !listed.iter().any(|l| l == e))
        .collect();
    let extra: Vec<&str> = listed
        .iter()
        .map(String::as_str)
        .filter(|l| !code.contains(l))
        .collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "the /etc entries listed in man/{PROFILE_PAGE} differ from ETC_ENTRIES in \
         src/plan/mounts.rs: missing {missing:?}, not in the code {extra:?}"
    );
    pass()
}

fn pages_render_without_warnings() -> TestResult {
    if Command::new("groff").arg("--version").output().is_err() {
        return skip("groff is not installed (apt-get install groff-base)");
    }
    let mut names: Vec<String> = antimony::man::pages().into_iter().map(|(n, _)| n).collect();
    names.push(PROFILE_PAGE.into());
    let mut problems = Vec::new();
    for name in names {
        let path = man_dir().join(&name);
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z", "-Tutf8"])
            .arg(&path)
            .env("LC_ALL", "C.UTF-8")
            .output()
            .map_err(|e| format!("groff: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || !stderr.trim().is_empty() {
            problems.push(format!(
                "man/{name}: {}{stderr}",
                if out.status.success() {
                    ""
                } else {
                    "groff failed; "
                }
            ));
        }
    }
    ensure!(
        problems.is_empty(),
        "groff -man -ww reports:\n{}",
        problems.join("\n")
    );
    pass()
}
