//! `antimony integrate` and `antimony completions` (the work is in
//! `crate::integrate`).

use crate::cli::CompletionShell;
use crate::error::Error;
use crate::host::Host;
use crate::profile::Searcher;

pub fn integrate(
    profile: &str,
    remove: bool,
    host: &Host,
    searcher: &Searcher,
) -> Result<u8, Error> {
    if remove {
        crate::integrate::remove(profile, host)
    } else {
        crate::integrate::integrate(profile, host, searcher)
    }
}

pub fn completions(shell: CompletionShell) -> Result<u8, Error> {
    use std::io::Write;
    std::io::stdout()
        .write_all(crate::integrate::shell::script(shell).as_bytes())
        .map_err(|e| Error::io("completions: write the script", e))?;
    Ok(0)
}
