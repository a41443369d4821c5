//! antimony's acceptance tests: real processes, real namespaces, real
//! files, as root and as an unprivileged user. See `support.rs` for the
//! conventions; run with `cargo test --test acceptance`.

#[macro_use]
mod support;
#[macro_use]
mod fixture;
mod forward;

mod apps;
mod architecture;
mod cli;
mod dbus;
mod doctor;
mod escape;
mod faults;
mod hooks;
mod hostside;
mod instances;
mod learn;
mod limits;
mod man;
mod manpages;
mod network;
mod notify;
mod package;

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    support::setup();
    let mut tests = Vec::new();
    tests.extend(cli::tests());
    tests.extend(dbus::tests());
    tests.extend(hooks::tests());
    tests.extend(hostside::tests());
    tests.extend(escape::tests());
    tests.extend(instances::tests());
    tests.extend(faults::tests());
    tests.extend(man::tests());
    tests.extend(apps::tests());
    tests.extend(learn::tests());
    tests.extend(notify::tests());
    tests.extend(forward::tests());
    tests.extend(limits::tests());
    tests.extend(network::tests());
    tests.extend(architecture::tests());
    tests.extend(doctor::tests());
    tests.extend(package::tests());
    let conclusion = libtest_mimic::run(&args, tests);
    support::teardown();
    conclusion.exit_code()
}
