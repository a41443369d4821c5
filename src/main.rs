//! The `antimony` command: parse, run, map the outcome to an exit status.

fn main() -> std::process::ExitCode {
    antimony::commands::main(std::env::args_os())
}
