//! Arbitrary bytes as a profile: the loader must answer with a positioned
//! error or a valid profile, and never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    antimony::profile::fuzz_one(data);
});
