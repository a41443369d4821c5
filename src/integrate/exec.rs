//! Command lines in desktop entries and D-Bus service files: split into
//! words, and written back with the quoting each format requires. Nothing
//! here ever builds a string for a shell: a command line is a list of words
//! that the desktop (or dbus-daemon) splits again exactly as written.

/// Splits a command line into words the way GLib's `g_shell_parse_argv`
/// (which GIO applies to `Exec=` values, and dbus-daemon's copy of it to
/// service files) does: blanks separate words; `'…'` is literal; inside
/// `"…"` a backslash escapes `"`, `` ` ``, `$`, `\` and a newline; outside
/// quotes a backslash escapes the next character. Field codes (`%u`) are
/// kept as written. `None` when a quote is not closed.
pub fn split(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '`' | '$' | '\\') => word.push(c),
                            '\n' => {}
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(c) => word.push(c),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// Characters the Desktop Entry Specification reserves: a word holding one
/// must be quoted.
const RESERVED: &[char] = &[
    ' ', '\t', '\n', '"', '\'', '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#', '(', ')',
    '`',
];

/// One word of an `Exec=` command line, quoted as the Desktop Entry
/// Specification says: bare when it can be, else in double quotes with `"`,
/// `` ` ``, `$` and `\` escaped. Field codes stay as they are (they are bare
/// words in the entries antimony reads).
pub fn desktop_word(word: &str) -> String {
    if !word.is_empty() && !word.contains(RESERVED) {
        return word.to_string();
    }
    let mut out = String::from("\"");
    for c in word.chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A command line for an `Exec=` key: the words quoted, then escaped as
/// the value of a `string` key (so a backslash in a quoted word is written
/// four times, as the specification says).
pub fn desktop_exec(words: &[String]) -> String {
    let line = words
        .iter()
        .map(|w| desktop_word(w))
        .collect::<Vec<_>>()
        .join(" ");
    escape_value(&line)
}

/// Escapes the value of a desktop entry `string` key.
pub fn escape_value(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes the escapes of a desktop entry `string` value (`\s`, `\n`, `\t`,
/// `\r`, `\\`); any other backslash is kept, as GLib does.
pub fn unescape_value(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(c) => {
                out.push('\\');
                out.push(c);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A command line for a D-Bus service file's `Exec=` key, which
/// dbus-daemon splits like a POSIX shell: words with anything but safe
/// characters go in single quotes (a `'` as `'\''`).
pub fn service_exec(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let safe = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
            if safe {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Field codes the specification deprecates: removed from command lines.
pub const DEPRECATED_FIELD_CODES: &[&str] = &["%d", "%D", "%n", "%N", "%v", "%m"];

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splits_like_glib() {
        assert_eq!(
            split("/usr/bin/app %U").unwrap(),
            w(&["/usr/bin/app", "%U"])
        );
        assert_eq!(
            split(r#"app "a b" 'c d' e\ f "x\"y\$z" --opt=%u"#).unwrap(),
            w(&["app", "a b", "c d", "e f", "x\"y$z", "--opt=%u"])
        );
        assert_eq!(split("  a   b  ").unwrap(), w(&["a", "b"]));
        assert_eq!(split(r#"a "" b"#).unwrap(), w(&["a", "", "b"]));
        assert!(split(r#"a "b"#).is_none());
        assert!(split("a 'b").is_none());
    }

    #[test]
    fn desktop_quoting_round_trips() {
        let words = w(&[
            "/opt/my apps/antimony",
            "run",
            "firefox",
            "--",
            "%u",
            "a\\b",
            "$HOME",
            "q\"uote",
            "",
            "~x",
        ]);
        let exec = desktop_exec(&words);
        assert!(exec.starts_with(r#""/opt/my apps/antimony" run firefox -- %u "a\\\\b""#));
        assert_eq!(split(&unescape_value(&exec)).unwrap(), words);
    }

    #[test]
    fn service_quoting_round_trips() {
        let words = w(&[
            "/usr/bin/antimony",
            "run",
            "x",
            "--",
            "it's",
            "a b",
            "--gapplication-service",
        ]);
        let exec = service_exec(&words);
        assert_eq!(
            exec,
            "/usr/bin/antimony run x -- 'it'\\''s' 'a b' --gapplication-service"
        );
        assert_eq!(split(&exec).unwrap(), words);
    }

    #[test]
    fn value_escapes() {
        assert_eq!(unescape_value(r"a\sb\\c\nd\;"), "a b\\c\nd\\;");
        assert_eq!(escape_value("a\\b\nc"), r"a\\b\nc");
    }
}
