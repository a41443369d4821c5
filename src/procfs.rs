//! Reading a process's `/proc/PID/stat` line (proc(5)).

/// Field `n` of a stat line, numbered from 1 as proc(5) numbers them (3:
/// state, 4: ppid, 5: pgrp, 20: num_threads, 22: starttime); `None` for
/// fields 1 and 2 or past the end. The command name (field 2) may hold
/// spaces and parentheses, so the fields after it are counted from its
/// last `)`.
pub fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_ascii_whitespace().nth(n.checked_sub(3)?)
}

/// Field `n` of process (or thread) `id`'s stat line, parsed.
pub fn read_stat_field<T: std::str::FromStr>(id: impl std::fmt::Display, n: usize) -> Option<T> {
    let stat = std::fs::read_to_string(format!("/proc/{id}/stat")).ok()?;
    stat_field(&stat, n)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::stat_field;

    #[test]
    fn fields_are_counted_after_the_command_names_last_parenthesis() {
        let line = "42 (a (b) c) S 7 42 42 0 -1 4194304 1 0 0 0 0 0 0 0 20 0 3 0 99 0\n";
        assert_eq!(stat_field(line, 3), Some("S"));
        assert_eq!(stat_field(line, 4), Some("7"));
        assert_eq!(stat_field(line, 5), Some("42"));
        assert_eq!(stat_field(line, 20), Some("3"));
        assert_eq!(stat_field(line, 22), Some("99"));
        assert_eq!(stat_field(line, 2), None);
        assert_eq!(stat_field(line, 30), None);
        assert_eq!(stat_field("no name", 3), None);
    }
}
