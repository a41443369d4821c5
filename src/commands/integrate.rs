//! `antimony integrate` and `antimony completions` (to be written).

use crate::cli::CompletionShell;
use crate::error::Error;
use crate::host::Host;
use crate::profile::Searcher;

pub fn integrate(
    _profile: &str,
    _remove: bool,
    _host: &Host,
    _searcher: &Searcher,
) -> Result<u8, Error> {
    Err(Error::Other("integrate: not implemented yet".into()))
}

pub fn completions(_shell: CompletionShell) -> Result<u8, Error> {
    Err(Error::Other("completions: not implemented yet".into()))
}
