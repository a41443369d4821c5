//! The profiles and reusable hooks shipped in the repository's `profiles/`
//! and `hooks/` folders, compiled into the binary by `build.rs` so that a
//! freshly built antimony needs no install step.

include!(concat!(env!("OUT_DIR"), "/shipped.rs"));

/// Looks a name up in a sorted `(name, text)` table.
pub fn find(table: &'static [(&'static str, &'static str)], name: &str) -> Option<&'static str> {
    table
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| table[i].1)
}

/// Every shipped profile, sorted by name.
pub fn all() -> &'static [(&'static str, &'static str)] {
    SHIPPED_PROFILES
}

/// Every shipped reusable hook, sorted by name.
pub fn hooks() -> &'static [(&'static str, &'static str)] {
    SHIPPED_HOOKS
}
