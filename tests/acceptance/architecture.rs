//! The folders of `src/` against `docs/architecture.md`: no folder uses one
//! that uses it back (the leaf error type aside), and the document names
//! every folder and every edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    vec![case(
        "architecture::folders_have_no_cycles",
        folders_have_no_cycles,
    )]
}

/// The top-level module a file of `src/` belongs to.
fn unit(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `crate::NAME` uses outside comments and unit tests, by folder.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut all = Vec::new();
    files(src, &mut all);
    let units: BTreeSet<String> = all.iter().filter_map(|f| unit(src, f)).collect();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &all {
        let Some(u) = unit(src, f) else { continue };
        if u == "main" || u == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let entry = deps.entry(u.clone()).or_default();
        for line in code.lines() {
            let line = line.split("//").next().unwrap_or("");
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + 7..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if name != u && units.contains(&name) {
                    entry.insert(name);
                }
            }
            // `use crate::{a, b::c}`: every first segment after a `{` or `,`.
            if let Some(i) = line.find("use crate::{") {
                for part in line[i + 12..].split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if name != u && units.contains(&name) {
                        entry.insert(name);
                    }
                }
            }
        }
    }
    deps
}

fn folders_have_no_cycles() -> TestResult {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deps = graph(&root.join("src"));
    let mut cycles = Vec::new();
    for (a, uses) in &deps {
        for b in uses {
            if a < b && a != "error" && b != "error" && deps.get(b).is_some_and(|d| d.contains(a)) {
                cycles.push(format!("{a} <-> {b}"));
            }
        }
    }
    ensure!(cycles.is_empty(), "folders that use each other: {cycles:?}");
    let doc = std::fs::read_to_string(root.join("docs/architecture.md"))
        .map_err(|e| format!("docs/architecture.md: {e}"))?;
    // The graph: the first code block after its heading, one line per
    // folder, `NAME → A, B, C`.
    let graph_block: Vec<&str> = doc
        .split("## The module graph")
        .nth(1)
        .and_then(|s| s.split("```").nth(1))
        .unwrap_or("")
        .lines()
        .collect();
    for (a, uses) in &deps {
        if a == "error" || uses.is_empty() {
            continue;
        }
        let line = graph_block
            .iter()
            .find(|l| l.split_whitespace().next() == Some(a.as_str()) && l.contains('→'))
            .ok_or(format!("docs/architecture.md has no graph line for {a}"))?;
        let listed: BTreeSet<String> = line
            .split('→')
            .nth(1)
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        ensure!(
            &listed == uses,
            "docs/architecture.md says {a} → {listed:?}; the code: {uses:?}"
        );
    }
    pass()
}
