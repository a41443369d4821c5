//! Text antimony prints but did not write (a hook's error message, an
//! inside hook's output, what a run record holds), made inert before it
//! reaches a terminal: control characters could otherwise retitle the
//! terminal, move the cursor over antimony's own lines, or worse.
//!
//! One rule, here only: C0 controls (but `\n` and `\t` where the text is
//! lines), DEL, C1 controls (U+0080 to U+009F: a terminal may read U+009B
//! as CSI) and bytes that are not UTF-8 (a terminal in an 8-bit locale
//! reads a lone 0x9B as CSI too) are written as escapes: `\n`, `\t`, `\r`,
//! `\xNN`, `\u{NN}`. An escape sequence is thus only its introducer
//! escaped (`\x1b]0;title\x07`), readable and harmless. Backslashes stay as
//! they are, so escaping twice changes nothing.

use std::borrow::Cow;

/// Whether `\n` and `\t` pass (text that is lines) or not (text that is
/// embedded in one line of antimony's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Lines,
    Nothing,
}

fn needs_escape(c: char, keep: Keep) -> bool {
    match c {
        '\n' | '\t' => keep == Keep::Nothing,
        c => c.is_control(),
    }
}

fn push_escaped(out: &mut String, c: char) {
    use std::fmt::Write as _;
    let _ = match c {
        '\n' => write!(out, "\\n"),
        '\t' => write!(out, "\\t"),
        '\r' => write!(out, "\\r"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    };
}

/// `s` with its control characters escaped (see the module's rule).
pub fn escape(s: &str, keep: Keep) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c, keep)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c, keep) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Text embedded in one of antimony's lines: everything escaped.
pub fn escape_line(s: &str) -> Cow<'_, str> {
    escape(s, Keep::Nothing)
}

/// Text that is lines of its own: `\n` and `\t` kept.
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    escape(s, Keep::Lines)
}

/// Bytes, as `escape` does, with each byte that is not part of valid
/// UTF-8 written `\xNN`.
pub fn escape_bytes(data: &[u8], keep: Keep, out: &mut Vec<u8>) {
    let mut rest = data;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.extend_from_slice(escape(s, keep).as_bytes());
                return;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // Valid by `valid_up_to`.
                let s = std::str::from_utf8(good).unwrap_or_default();
                out.extend_from_slice(escape(s, keep).as_bytes());
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for b in &bad[..n] {
                    out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                }
                rest = &bad[n..];
            }
        }
    }
}

/// A stream of bytes escaped as they come (`escape_bytes`, lines kept):
/// a UTF-8 sequence split between two reads is held back until it is
/// whole, so that neither half is taken for an invalid byte.
#[derive(Debug, Default)]
pub struct Stream {
    pending: Vec<u8>,
}

impl Stream {
    /// Escapes what can be escaped now of `pending + data` into `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut all = std::mem::take(&mut self.pending);
        all.extend_from_slice(data);
        // An incomplete sequence at the end: at most 3 bytes, the start of
        // a valid one (`error_len` is None only then).
        let cut = match std::str::from_utf8(&all) {
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            _ => all.len(),
        };
        escape_bytes(&all[..cut], Keep::Lines, out);
        self.pending = all[cut..].to_vec();
    }

    /// The end of the stream: what was held back, escaped as it is.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let rest = std::mem::take(&mut self.pending);
        escape_bytes(&rest, Keep::Lines, out);
    }
}

/// JSON for people and programs: `serde_json` escapes C0 controls in
/// strings; this also writes DEL and C1 controls as `\u00NN` (the same
/// strings, to a JSON reader).
pub fn to_json_pretty<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, Inert::default());
    value.serialize(&mut ser)?;
    Ok(String::from_utf8(buf).unwrap_or_default())
}

#[derive(Default)]
struct Inert(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for Inert {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_control() {
                w.write_all(&fragment.as_bytes()[start..i])?;
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    // The rest is the pretty formatter's.
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped() {
        let evil = "a\x1b]0;pwned\x07b\u{9b}2Jc\x7f\r";
        assert_eq!(escape_line(evil), "a\\x1b]0;pwned\\x07b\\u{9b}2Jc\\x7f\\r");
        assert_eq!(escape_line("one\ntwo\tthree"), "one\\ntwo\\tthree");
        assert_eq!(escape_lines("one\ntwo\tthree"), "one\ntwo\tthree");
        // Plain text (backslashes too) is left alone, and borrowed.
        assert!(matches!(escape_line("C:\\x ok é"), Cow::Borrowed(_)));
        // Escaping twice changes nothing.
        let once = escape_line(evil).into_owned();
        assert_eq!(escape_line(&once), once);
    }

    #[test]
    fn bytes_and_streams() {
        let mut out = Vec::new();
        escape_bytes(b"x\x9by\xc3\xa9\x1b\n", Keep::Lines, &mut out);
        assert_eq!(out, b"x\\x9by\xc3\xa9\\x1b\n");
        // U+009B split between two reads is one C1 control, escaped once.
        let mut s = Stream::default();
        let mut out = Vec::new();
        s.feed(b"a\xc2", &mut out);
        assert_eq!(out, b"a");
        s.feed(b"\x9b[2J\xc3", &mut out);
        s.finish(&mut out);
        assert_eq!(out, b"a\\u{9b}[2J\\xc3");
    }

    #[test]
    fn json_stays_json() {
        let v = serde_json::json!({"out": "\x1b]0;t\x07\u{9b}\x7fé"});
        let text = to_json_pretty(&v).unwrap();
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        assert!(
            text.contains(r#""\u001b]0;t\u0007\u009b\u007fé""#),
            "{text}"
        );
    }
}
