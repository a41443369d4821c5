//! `antimony doctor`: the checks are `crate::doctor`'s; this prints them
//! (escaped: paths and addresses come from the environment) and turns the
//! verdict into the exit status.

use crate::error::Error;
use crate::host::Host;

/// Exit status when `antimony run` cannot work here.
const EXIT_CANNOT_RUN: u8 = 1;

pub fn doctor(host: &Host, json: bool) -> Result<u8, Error> {
    let report = crate::doctor::judge(&crate::doctor::probe::facts(host));
    if json {
        let text = crate::text::to_json_pretty(&report)
            .map_err(|e| Error::io("doctor: write JSON", std::io::Error::other(e)))?;
        outln!("{text}");
    } else {
        out!(
            "{}",
            crate::doctor::render(&report, &|s| crate::text::escape_line(s).into_owned())
        );
    }
    Ok(if report.can_run { 0 } else { EXIT_CANNOT_RUN })
}
