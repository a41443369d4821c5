//! The key files of desktop entries and D-Bus service files, read and
//! rewritten line by line so that everything antimony does not change
//! (comments, translations, order) stays as the original has it.

/// One line of a key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `[Group Name]`
    Group(String),
    /// `Key=value` (`Key[locale]=value` keeps its locale in `key`).
    Entry { key: String, value: String },
    /// A comment, a blank line, or anything else, kept as is.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyFile {
    pub lines: Vec<Line>,
}

impl KeyFile {
    pub fn parse(text: &str) -> KeyFile {
        let lines = text
            .lines()
            .map(|raw| {
                let t = raw.trim();
                if t.starts_with('[') && t.ends_with(']') && t.len() >= 2 {
                    Line::Group(t[1..t.len() - 1].to_string())
                } else if t.starts_with('#') || t.is_empty() {
                    Line::Other(raw.to_string())
                } else if let Some((k, v)) = raw.split_once('=') {
                    // The specification allows spaces around `=`.
                    Line::Entry {
                        key: k.trim().to_string(),
                        value: v.trim_start().to_string(),
                    }
                } else {
                    Line::Other(raw.to_string())
                }
            })
            .collect();
        KeyFile { lines }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            match l {
                Line::Group(g) => {
                    out.push('[');
                    out.push_str(g);
                    out.push(']');
                }
                Line::Entry { key, value } => {
                    out.push_str(key);
                    out.push('=');
                    out.push_str(value);
                }
                Line::Other(s) => out.push_str(s),
            }
            out.push('\n');
        }
        out
    }

    /// The group each line belongs to (`None` before the first group).
    pub fn groups(&self) -> Vec<Option<&str>> {
        let mut current = None;
        self.lines
            .iter()
            .map(|l| {
                if let Line::Group(g) = l {
                    current = Some(g.as_str());
                }
                current
            })
            .collect()
    }

    /// The raw value of `key` in `group` (the first one).
    pub fn get(&self, group: &str, key: &str) -> Option<&str> {
        let groups = self.groups();
        self.lines.iter().zip(groups).find_map(|(l, g)| match l {
            Line::Entry { key: k, value } if g == Some(group) && k == key => Some(value.as_str()),
            _ => None,
        })
    }

    /// Whether the file has this group.
    pub fn has_group(&self, group: &str) -> bool {
        self.lines
            .iter()
            .any(|l| matches!(l, Line::Group(g) if g == group))
    }

    /// Removes every `key` of `group`.
    pub fn remove(&mut self, group: &str, key: &str) {
        let groups: Vec<Option<String>> = self
            .groups()
            .into_iter()
            .map(|g| g.map(str::to_string))
            .collect();
        let mut i = 0;
        self.lines.retain(|l| {
            let keep = !matches!(l, Line::Entry { key: k, .. }
                if k == key && groups[i].as_deref() == Some(group));
            i += 1;
            keep
        });
    }

    /// Sets `key` in `group`: replaces the first one in place (and drops
    /// any others), or appends it after the group's last entry.
    pub fn set(&mut self, group: &str, key: &str, value: &str) {
        let groups: Vec<Option<String>> = self
            .groups()
            .into_iter()
            .map(|g| g.map(str::to_string))
            .collect();
        let first = self.lines.iter().zip(&groups).position(|(l, g)| {
            matches!(l, Line::Entry { key: k, .. } if k == key) && g.as_deref() == Some(group)
        });
        match first {
            Some(i) => {
                self.lines[i] = Line::Entry {
                    key: key.to_string(),
                    value: value.to_string(),
                };
                // Drop duplicates after it.
                let mut j = 0;
                self.lines.retain(|l| {
                    let dup = j > i
                        && matches!(l, Line::Entry { key: k, .. } if k == key)
                        && groups[j].as_deref() == Some(group);
                    j += 1;
                    !dup
                });
            }
            None => {
                let last = self
                    .lines
                    .iter()
                    .zip(&groups)
                    .rposition(|(l, g)| {
                        g.as_deref() == Some(group)
                            && matches!(l, Line::Entry { .. } | Line::Group(_))
                    })
                    .unwrap_or(self.lines.len().saturating_sub(1));
                self.lines.insert(
                    (last + 1).min(self.lines.len()),
                    Line::Entry {
                        key: key.to_string(),
                        value: value.to_string(),
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_edit() {
        let text = "# c\n[Desktop Entry]\nName=A\nExec = a %u\n\n[Desktop Action x]\nExec=a -x\n";
        let mut k = KeyFile::parse(text);
        assert_eq!(k.get("Desktop Entry", "Exec"), Some("a %u"));
        assert_eq!(k.get("Desktop Action x", "Exec"), Some("a -x"));
        k.set("Desktop Entry", "TryExec", "/b");
        k.set("Desktop Entry", "Exec", "b");
        k.remove("Desktop Action x", "Exec");
        assert_eq!(
            k.render(),
            "# c\n[Desktop Entry]\nName=A\nExec=b\nTryExec=/b\n\n[Desktop Action x]\n"
        );
    }
}
