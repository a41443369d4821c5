//! The host-side battery: what a sandboxed program can touch must never
//! reach back to the host through the launcher's own features (profiles it
//! could rewrite, the caller's terminal, hooks run as another identity,
//! files it plants through a bind, sockets, text antimony prints, hook
//! state). Each test reproduces an attack that worked before its fix.

mod files;
mod misc;
mod profiles;
mod terminal;

use crate::support::Trial;

pub fn tests() -> Vec<Trial> {
    let mut t = Vec::new();
    t.extend(profiles::tests());
    t.extend(terminal::tests());
    t.extend(files::tests());
    t.extend(misc::tests());
    t
}
