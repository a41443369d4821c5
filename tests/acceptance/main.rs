//! antimony's acceptance tests: real processes, real namespaces, real
//! files, as root and as an unprivileged user. See `support.rs` for the
//! conventions; run with `cargo test --test acceptance`.

#[macro_use]
mod support;

mod cli;
mod dbus;
mod escape;
mod hooks;
mod man;

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    support::setup();
    let mut tests = Vec::new();
    tests.extend(cli::tests());
    tests.extend(dbus::tests());
    tests.extend(hooks::tests());
    tests.extend(escape::tests());
    tests.extend(man::tests());
    let conclusion = libtest_mimic::run(&args, tests);
    support::teardown();
    conclusion.exit_code()
}
