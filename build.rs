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
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| {
                let path = e.ok()?.path();
                let stem = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".toml")?
                    .to_string();
                println!("cargo:rerun-if-changed={}", path.display());
                Some((stem, path.display().to_string()))
            })
            .collect()
        })
        .unwrap_or_default();
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
