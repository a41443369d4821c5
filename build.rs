//! Compiles the shipped profiles (`profiles/*.toml`) into the binary.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("profiles/ folder")
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".toml")?
                .to_string();
            println!("cargo:rerun-if-changed={}", path.display());
            Some((name, path.display().to_string()))
        })
        .collect();
    names.sort();
    let mut out = String::from(
        "/// `(name, text)` for every shipped profile, sorted by name.\n\
         pub static SHIPPED_PROFILES: &[(&str, &str)] = &[\n",
    );
    for (name, path) in &names {
        writeln!(out, "    ({name:?}, include_str!({path:?})),").unwrap();
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").unwrap()).join("shipped_profiles.rs");
    std::fs::write(target, out).unwrap();
}
