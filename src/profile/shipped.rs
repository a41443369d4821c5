//! The profiles shipped in the repository's `profiles/` folder, compiled into
//! the binary by `build.rs` so that a freshly built antimony needs no install
//! step.

include!(concat!(env!("OUT_DIR"), "/shipped_profiles.rs"));

/// The text of a shipped profile.
pub fn get(name: &str) -> Option<&'static str> {
    SHIPPED_PROFILES
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| SHIPPED_PROFILES[i].1)
}

/// Every shipped profile, sorted by name.
pub fn all() -> &'static [(&'static str, &'static str)] {
    SHIPPED_PROFILES
}
