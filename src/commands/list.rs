//! `antimony list`: every profile, the copy that wins, the copies it shadows.

use crate::profile::load::{Listing, Origin};
use crate::profile::{Searcher, Source, validate};

fn describe(o: &Origin) -> String {
    match o.path() {
        Some(p) => p.display().to_string(),
        None => "shipped".to_string(),
    }
}

/// Whether the winning copy says `fragment = true` (an unreadable or
/// invalid copy is listed as a profile; `check` says what is wrong).
fn is_fragment(searcher: &Searcher, l: &Listing) -> bool {
    let text = match &l.copies[0] {
        Origin::Shipped => searcher.shipped(&l.name).map(str::to_string),
        o => o.path().and_then(|p| std::fs::read_to_string(p).ok()),
    };
    text.and_then(|t| {
        validate::parse(&Source {
            name: l.name.clone(),
            origin: l.copies[0].clone(),
            text: t.into(),
        })
        .ok()
    })
    .and_then(|raw| raw.fragment)
    .unwrap_or(false)
}

pub fn list(searcher: &Searcher) {
    let all = searcher.list();
    let width = all.iter().map(|l| l.name.len()).max().unwrap_or(4).max(4);
    outln!("{:<width$}  {:<8}  {:<8}  FROM", "NAME", "KIND", "SOURCE");
    for l in &all {
        let kind = if is_fragment(searcher, l) {
            "fragment"
        } else {
            "profile"
        };
        let mut line = format!(
            "{:<width$}  {:<8}  {:<8}  {}",
            l.name,
            kind,
            l.copies[0].kind(),
            describe(&l.copies[0])
        );
        for shadowed in &l.copies[1..] {
            line.push_str(&format!(" (shadows {})", describe(shadowed)));
        }
        outln!("{}", crate::text::escape_line(&line));
    }
}
