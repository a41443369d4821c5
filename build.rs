//! Compiles the shipped profiles (`profiles/*.toml`) and reusable hooks
//! (`hooks/*.toml`) into the binary.

use std::fmt::Write as _;
use std::path::Path;

fn table(out: &mut String, name: &str, folder: &str) {
    // Read when the build script runs (not when it is compiled), so that two
    // checkouts sharing a target folder each compile their own files.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join(folder);
    println!("cargo:rerun-if-changed={}", dir.display());
    // A missing folder or an unreadable entry is a broken checkout: fail
    // the build rather than ship a binary without its profiles.
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<(String, String)> = Vec::new();
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_else(|| panic!("{}: a file name that is not UTF-8", path.display()));
        if let Some(stem) = name.strip_suffix(".toml") {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push((stem.to_string(), path.display().to_string()));
        }
    }
    files.sort();
    writeln!(
        out,
        "/// `(name, text)` of every file in `{folder}/`, sorted by name."
    )
    .unwrap();
    writeln!(out, "pub static {name}: &[(&str, &str)] = &[").unwrap();
    for (stem, path) in &files {
        writeln!(out, "    ({stem:?}, include_str!({path:?})),").unwrap();
    }
    out.push_str("];\n");
}

fn main() {
    let mut out = String::new();
    table(&mut out, "SHIPPED_PROFILES", "profiles");
    table(&mut out, "SHIPPED_HOOKS", "hooks");
    let target = Path::new(&std::env::var("OUT_DIR").unwrap()).join("shipped.rs");
    std::fs::write(target, out).unwrap();
}
