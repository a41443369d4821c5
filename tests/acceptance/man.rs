//! The man pages in `man/` against the code.
//!
//! - The generated pages (`manpages::pages()`, from the clap
//!   definitions) must equal the committed files; `ANTIMONY_UPDATE_MAN=1`
//!   rewrites the files instead.
//! - Every key of the profile format, found by walking the raw serde structs
//!   with a recording `Deserializer`, and every value of its enums, must be
//!   documented in the hand-written `man/antimony-profile.5`; and the other
//!   way round, every key that page documents exists in those structs.
//! - Every TOML example of `man/antimony-profile.5` passes `antimony check`
//!   (see [`profile_page_examples_are_valid`] for which examples and how).
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
            "man::every_documented_key_exists",
            every_documented_key_exists,
        ),
        case(
            "man::profile_page_examples_are_valid",
            profile_page_examples_are_valid,
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
    let pages = crate::manpages::pages();
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
    let pages = crate::manpages::pages();
    let mut problems = Vec::new();
    for sub in Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
    {
        let name = sub.get_name();
        let file = format!("antimony-{name}.1");
        if !pages.iter().any(|(n, _)| *n == file) {
            problems.push(format!("crate::manpages::pages() has no {file}"));
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
        // `sandbox.network`: false or a mode's name.
        if self.path == "sandbox.network" {
            return v.visit_bool(false);
        }
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

    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_u16(1)
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u32 u128 f32 char str string bytes byte_buf
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
    let mut names: Vec<String> = crate::manpages::pages()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
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

// ---------------------------------------------------------------------------
// The other way round: what the page documents as a key exists.

/// A `.TP` (or `.TQ`) paragraph tag in the `KEYS` section of the profile
/// page: the `.SS` heading it is under, its `.RS` depth, its line number.
struct Tag<'a> {
    heading: &'a str,
    depth: usize,
    line: usize,
    text: &'a str,
}

/// The `.SS` headings of the page's `KEYS` section (in order) and every
/// paragraph tag in it.
fn keys_section(page: &str) -> (Vec<&str>, Vec<Tag<'_>>) {
    let (mut headings, mut tags) = (Vec::new(), Vec::new());
    let (mut in_keys, mut heading, mut depth, mut tagging) = (false, "", 0usize, false);
    for (i, l) in page.lines().enumerate() {
        if let Some(sh) = l.strip_prefix(".SH ") {
            in_keys = sh.trim().trim_matches('"') == "KEYS";
            continue;
        }
        if !in_keys {
            continue;
        }
        if let Some(ss) = l.strip_prefix(".SS ") {
            heading = ss.trim().trim_matches('"');
            headings.push(heading);
            depth = 0;
        } else if l.starts_with(".RS") {
            depth += 1;
        } else if l.starts_with(".RE") {
            depth = depth.saturating_sub(1);
        } else if tagging {
            tags.push(Tag {
                heading,
                depth,
                line: i + 1,
                text: l,
            });
        }
        tagging = matches!(l.trim_end(), ".TP" | ".TQ");
    }
    (headings, tags)
}

/// The table paths a `KEYS` heading documents: `Top-level keys` is the top
/// (`""`), `[home]` is `home`, `[[hooks.pre]], [[hooks.started]] …` are
/// `hooks.pre`, `hooks.started`, ….
fn heading_tables(heading: &str) -> Vec<String> {
    if heading.starts_with("Top-level keys") {
        return vec![String::new()];
    }
    heading
        .split(['[', ']'])
        .filter(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
        })
        .map(String::from)
        .collect()
}

/// The key a tag names: `\fBKEY\fR = …`, `.B KEY`, `.BR KEY …`, or a table
/// of its own, `.B [KEY]`. `None` when the tag is not a key's.
fn tag_key(tag: &str) -> Option<&str> {
    let word = if let Some(rest) = tag.strip_prefix("\\fB") {
        rest.split_once("\\f")?.0
    } else {
        let rest = tag
            .strip_prefix(".B ")
            .or_else(|| tag.strip_prefix(".BR "))?;
        rest.split_whitespace().next()?.trim_matches('"')
    };
    let key = word
        .strip_prefix('[')
        .and_then(|w| w.strip_suffix(']'))
        .unwrap_or(word);
    let is_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    is_key.then_some(key)
}

/// Every key `man/antimony-profile.5` documents (the tag of a `.TP`
/// paragraph directly in a table's section of `KEYS`, the same place the
/// forward check looks) is a field of that table in the raw serde structs,
/// and every table a section is named after exists. Nested lists (`.RS`)
/// hold values, not keys; any other tag directly in a table's section is
/// an error, so that a key written some new way is not silently skipped.
fn every_documented_key_exists() -> TestResult {
    let page = read_page(PROFILE_PAGE)?;
    let keys = profile_keys()?;
    let (headings, tags) = keys_section(&page);
    let mut problems = Vec::new();
    // A table is a struct the walk found, or a free-form table
    // (`[environment]`) that is a field of its parent.
    let is_table = |path: &str| {
        keys.tables.contains_key(path) || {
            let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
            keys.tables.get(parent).is_some_and(|f| f.contains(&key))
        }
    };
    for heading in &headings {
        let tables = heading_tables(heading);
        if tables.is_empty() {
            problems.push(format!(
                "section `{heading}` of KEYS names no table (`[table]` or `Top-level keys`)"
            ));
        }
        for table in tables.iter().filter(|t| !is_table(t)) {
            problems.push(format!(
                "section `{heading}`: there is no table `[{table}]` in the profile format"
            ));
        }
    }
    let mut checked = 0;
    for tag in tags.iter().filter(|t| t.depth == 0) {
        let at = format!(
            "man/{PROFILE_PAGE}:{} (section `{}`)",
            tag.line, tag.heading
        );
        let Some(key) = tag_key(tag.text) else {
            problems.push(format!("{at}: the tag `{}` is not a key", tag.text));
            continue;
        };
        for table in heading_tables(tag.heading) {
            checked += 1;
            if !keys.tables.get(&table).is_some_and(|f| f.contains(&key)) {
                let shown = if table.is_empty() {
                    "the top level".to_string()
                } else {
                    format!("[{table}]")
                };
                problems.push(format!("{at}: `{key}` is not a key of {shown}"));
            }
        }
    }
    ensure!(
        checked > 0,
        "found no key tags in the KEYS section of man/{PROFILE_PAGE}"
    );
    ensure!(
        problems.is_empty(),
        "man/{PROFILE_PAGE} documents keys the profile format (src/profile/raw.rs) \
         does not have:\n{}",
        problems.join("\n")
    );
    pass()
}

// ---------------------------------------------------------------------------
// The worked examples of the profile page.

/// The text groff shows for a line of a roff page: escapes resolved, fonts
/// dropped. An escape this does not know is an error, so that no example
/// is checked in a mangled form.
fn unescape(line: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let named = |name: &str| -> Option<&'static str> {
            Some(match name {
                "aq" => "'",
                "dq" => "\"",
                "ga" => "`",
                "ha" => "^",
                "ti" => "~",
                "rs" => "\\",
                "->" => "\u{2192}",
                "em" => "\u{2014}",
                "en" => "\u{2013}",
                "bu" => "\u{2022}",
                _ => return None,
            })
        };
        match chars.next() {
            Some('-') => out.push('-'),
            Some('e') | Some('\\') => out.push('\\'),
            Some('.') => out.push('.'),
            Some(' ') | Some('~') => out.push(' '),
            Some('&') | Some(':') | Some('%') => {}
            Some('"') => break, // a comment to the end of the line
            Some('(') => {
                let name: String = chars.by_ref().take(2).collect();
                out.push_str(named(&name).ok_or(format!("unknown escape \\({name} in `{line}`"))?);
            }
            Some('[') => {
                let name: String = chars.by_ref().take_while(|&c| c != ']').collect();
                out.push_str(named(&name).ok_or(format!("unknown escape \\[{name}] in `{line}`"))?);
            }
            Some('f') => match chars.next() {
                Some('(') => {
                    chars.by_ref().take(2).for_each(drop);
                }
                Some('[') => {
                    chars.by_ref().take_while(|&c| c != ']').for_each(drop);
                }
                Some(_) => {}
                None => return Err(format!("`\\f` at the end of `{line}`")),
            },
            other => {
                return Err(format!(
                    "unknown escape \\{} in `{line}`",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(out)
}

/// A no-fill block (`.nf` … `.fi`, or `.EX` … `.EE`) of the page: where it
/// starts, the text groff shows (control lines, which start with `.` or
/// `'`, dropped; escapes resolved), and the page's prose before it, back to
/// the previous block.
struct Example {
    line: usize,
    text: String,
    before: String,
}

fn examples(page: &str) -> Result<Vec<Example>, String> {
    let mut out = Vec::new();
    let (mut current, mut before): (Option<Example>, String) = (None, String::new());
    for (i, l) in page.lines().enumerate() {
        let request = l.trim_end();
        match (&mut current, request) {
            (None, ".nf" | ".EX") => {
                current = Some(Example {
                    line: i + 2,
                    text: String::new(),
                    before: std::mem::take(&mut before),
                });
            }
            (Some(_), ".fi" | ".EE") => out.extend(current.take()),
            (Some(_), _) if l.starts_with('.') || l.starts_with('\'') => {}
            (Some(e), _) => {
                e.text
                    .push_str(&unescape(l).map_err(|e| format!("line {}: {e}", i + 1))?);
                e.text.push('\n');
            }
            (None, _) if l.starts_with(".\\\"") => {}
            (None, _) => {
                // Prose, for the file names it mentions: escapes resolved
                // where they can be, fonts dropped.
                before.push_str(&unescape(l).unwrap_or_else(|_| l.to_string()));
                before.push('\n');
            }
        }
    }
    ensure!(current.is_none(), "a no-fill block is not closed");
    Ok(out)
}

/// Whether an example is TOML rather than a terminal, a listing or JSON: its
/// first line is a comment, a table header or `KEY = …`.
fn is_toml(text: &str) -> bool {
    let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return false;
    };
    if first.starts_with('#') || first.starts_with("[[") {
        return true;
    }
    if let Some(rest) = first.strip_prefix('[') {
        return rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '"');
    }
    first.split_once('=').is_some_and(|(k, _)| {
        let k = k.trim();
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"'))
    })
}

/// The `NAME` of the last `DIR/NAME.toml` in the text.
fn last_toml_name<'t>(text: &'t str, dir: &str) -> Option<&'t str> {
    let at = text.rfind(&format!("{dir}/"))? + dir.len() + 1;
    let name = text[at..].split(".toml").next()?;
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'));
    valid.then_some(name)
}

/// The top-level tables of a reusable hook's definition (`man` HOOKS,
/// "Reusable hooks"); no profile has any of them.
const DEFINITION_TABLES: [&str; 6] = ["hook", "pre", "started", "stopping", "post", "config"];

/// Every worked TOML example of `man/antimony-profile.5` is valid.
///
/// Which examples and how:
/// - An example is a no-fill block (`.nf`/`.fi` or `.EX`/`.EE`), as groff
///   shows it. It is TOML when its first line is a comment, a table header
///   or `KEY = …`; the others (terminal sessions, error lines, file lists,
///   JSON) are not checked. Every TOML example must parse.
/// - A comment line `# …/profiles/NAME.toml` or `# …/hooks/NAME.toml`
///   starts a file of that name; one example may hold several.
/// - A file with a top-level `[hook]`, `[pre]`, `[started]`, `[stopping]`,
///   `[post]` or `[config]` table is a reusable hook's definition. Without
///   a comment naming it, its name is that of the last `hooks/NAME.toml`
///   the page mentions before it. It is installed in the user's `hooks/`
///   folder, and checked through the examples that `use` it: there must be
///   one.
/// - Every other file is a profile, or a piece of one (hooks, a table).
///   It is installed in the user's `profiles/` folder (named by its comment,
///   else `example-LINE`) and must pass `antimony check`, as the test's
///   ordinary user, after all examples are installed (so `inherits` and
///   `use` find the page's own fragments and definitions), with two
///   changes, and only these:
///   - a profile that names no program (no `path`, no `inherits`) and is
///     not a fragment gets `path = "/usr/bin/true"`, since its program
///     would be its own name, `example-LINE`;
///   - a `path = "NAME"` this host has no program of (in
///     /usr/local/bin:/usr/bin:/bin, the sandbox's `PATH`) becomes
///     `/usr/bin/true`: what is installed is the host's business, not the
///     page's.
fn profile_page_examples_are_valid() -> TestResult {
    let page = read_page(PROFILE_PAGE)?;
    let s = Scratch::new(Who::User).map_err(|e| format!("no scratch: {e}"));
    let s = match s {
        Ok(s) => s,
        Err(e) => return skip(e),
    };
    let mut problems = Vec::new();
    // (example's line, file name, text) of the profiles, and the names of
    // the definitions.
    let mut profiles: Vec<(usize, String, String)> = Vec::new();
    let mut definitions: Vec<(usize, String)> = Vec::new();
    let mut toml_examples = 0;
    for ex in examples(&page).map_err(|e| format!("man/{PROFILE_PAGE}: {e}"))? {
        if !is_toml(&ex.text) {
            continue;
        }
        toml_examples += 1;
        let at = format!("the example at man/{PROFILE_PAGE}:{}", ex.line);
        // Split at the comments that name a file.
        let mut files: Vec<(Option<String>, String)> = vec![(None, String::new())];
        for l in ex.text.lines() {
            let named = l.trim().strip_prefix('#').and_then(|c| {
                ["profiles", "hooks"]
                    .iter()
                    .find_map(|dir| last_toml_name(c, dir).map(|n| format!("{dir}/{n}")))
            });
            match named {
                Some(n) => files.push((Some(n), String::new())),
                None => {
                    let text = &mut files.last_mut().expect("one file at least").1;
                    text.push_str(l);
                    text.push('\n');
                }
            }
        }
        files.retain(|(_, text)| !text.trim().is_empty());
        for (named, text) in files {
            let table: toml::Table = match toml::from_str(&text) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{at} is not valid TOML: {e}\n{text}"));
                    continue;
                }
            };
            let definition = DEFINITION_TABLES
                .iter()
                .any(|k| table.get(*k).is_some_and(toml::Value::is_table));
            if definition {
                let name = match named.as_deref().and_then(|n| n.strip_prefix("hooks/")) {
                    Some(n) => Some(n.to_string()),
                    None if named.is_none() => {
                        last_toml_name(&ex.before, "hooks").map(String::from)
                    }
                    None => None,
                };
                let Some(name) = name else {
                    problems.push(format!(
                        "{at} is a reusable hook's definition, but the page names no \
                         hooks/NAME.toml for it"
                    ));
                    continue;
                };
                s.write(&format!("home/.config/antimony/hooks/{name}.toml"), &text);
                definitions.push((ex.line, name));
                continue;
            }
            let name = match named.as_deref().map(|n| n.strip_prefix("profiles/")) {
                None => format!("example-{}", ex.line),
                Some(Some(n)) => n.to_string(),
                Some(None) => {
                    problems.push(format!(
                        "{at}: a profile under a hooks/ file name: {}",
                        named.unwrap_or_default()
                    ));
                    continue;
                }
            };
            if profiles.iter().any(|(_, n, _)| *n == name) {
                problems.push(format!("{at}: a second profile named {name}"));
                continue;
            }
            profiles.push((ex.line, name, adapt(&table, &text)));
        }
    }
    ensure!(
        toml_examples >= 10 && !profiles.is_empty() && !definitions.is_empty(),
        "found only {toml_examples} TOML examples ({} profiles, {} definitions) in \
         man/{PROFILE_PAGE}: is the markup still .nf/.fi?",
        profiles.len(),
        definitions.len()
    );
    for (_, name, text) in &profiles {
        s.profile(name, text);
    }
    for (line, name) in &definitions {
        let used = profiles.iter().any(|(_, _, text)| {
            toml::from_str::<toml::Table>(text).is_ok_and(|t| uses(&t).contains(&name.as_str()))
        });
        if !used {
            problems.push(format!(
                "the reusable hook `{name}` at man/{PROFILE_PAGE}:{line} is used by no \
                 example, so nothing checks it"
            ));
        }
    }
    for (line, name, text) in &profiles {
        let at = format!("the example at man/{PROFILE_PAGE}:{line}");
        let out = s.antimony(["check", name]).run();
        let ok = [format!("{name}: ok\n"), format!("{name}: ok (fragment)\n")];
        if out.code() != Some(0) || !ok.contains(&out.stdout) || !out.stderr.is_empty() {
            problems.push(format!("{at}, checked as\n{text}fails: {}", out.show()));
        }
    }
    ensure!(
        problems.is_empty(),
        "worked examples of man/{PROFILE_PAGE} are wrong:\n\n{}",
        problems.join("\n\n")
    );
    pass()
}

/// The reusable hooks a profile's hooks `use`.
fn uses(profile: &toml::Table) -> Vec<&str> {
    let Some(hooks) = profile.get("hooks").and_then(toml::Value::as_table) else {
        return Vec::new();
    };
    hooks
        .values()
        .filter_map(toml::Value::as_array)
        .flatten()
        .filter_map(|h| h.get("use").and_then(toml::Value::as_str))
        .collect()
}

/// A profile example as `antimony check` gets it: see the two changes in
/// [`profile_page_examples_are_valid`].
fn adapt(table: &toml::Table, text: &str) -> String {
    let fragment = table.get("fragment").and_then(toml::Value::as_bool) == Some(true);
    if !fragment && !table.contains_key("path") && !table.contains_key("inherits") {
        return format!("path = \"/usr/bin/true\" # added: the example names no program\n{text}");
    }
    let Some(program) = table.get("path").and_then(toml::Value::as_str) else {
        return text.to_string();
    };
    let installed = program.contains('/')
        || program.starts_with('~')
        || ["/usr/local/bin", "/usr/bin", "/bin"]
            .iter()
            .any(|dir| Path::new(dir).join(program).is_file());
    if installed {
        return text.to_string();
    }
    let quoted = format!("\"{program}\"");
    let mut done = false;
    text.lines()
        .map(|l| {
            let is_it = !done
                && l.split_once('=')
                    .is_some_and(|(k, v)| k.trim() == "path" && v.trim() == quoted);
            done |= is_it;
            if is_it {
                format!("path = \"/usr/bin/true\" # was {quoted}, not installed here\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}
