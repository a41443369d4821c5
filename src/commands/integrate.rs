//! `antimony integrate` and `antimony completions`: the work is in
//! `crate::integrate`, which returns what it did; this prints it.

use crate::cli::CompletionShell;
use crate::error::Error;
use crate::host::Host;
use crate::profile::Searcher;

pub fn integrate(
    profile: &str,
    remove: bool,
    force: bool,
    host: &Host,
    searcher: &Searcher,
) -> Result<u8, Error> {
    let report = if remove {
        crate::integrate::remove(profile, host)?
    } else {
        crate::integrate::integrate(profile, force, host, searcher)?
    };
    print(&report);
    Ok(0)
}

/// `antimony integrate --refresh`.
pub fn refresh(host: &Host, searcher: &Searcher) -> Result<u8, Error> {
    let report = crate::integrate::refresh(host, searcher)?;
    print(&report);
    Ok(0)
}

fn print(report: &crate::integrate::Report) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for done in &report.done {
        let _ = writeln!(out, "{done}");
    }
    drop(out);
    for w in &report.warnings {
        super::warn(w);
    }
}

pub fn completions(shell: CompletionShell) -> Result<u8, Error> {
    use std::io::Write;
    std::io::stdout()
        .write_all(crate::integrate::shell::script(shell).as_bytes())
        .map_err(|e| Error::io("completions: write the script", e))?;
    Ok(0)
}
