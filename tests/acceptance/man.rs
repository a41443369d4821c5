//! (to be written)

use crate::support::*;

pub fn tests() -> Vec<Trial> {
    Vec::new()
}
