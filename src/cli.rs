//! The command line (clap). The same definitions generate the man pages
//! (`man/`) and the shell completions, so they cannot disagree.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

pub const EXIT_STATUS_HELP: &str = "\
Exit status of `antimony run`: the program's own exit status; 128+N when the \
program dies of signal N; 125 when antimony itself fails (a bad profile or \
option, a hook that fails without `can_fail`, a sandbox that \
cannot be set up or a program that cannot be executed), after one line \
`antimony: error: …` on standard error. Other commands exit 0 on success and \
125 on failure.";

#[derive(Debug, Parser)]
#[command(
    name = "antimony",
    version,
    about = "Run programs in a sandbox described by a TOML profile",
    long_about = "antimony runs a program in a sandbox it builds itself (user, mount, PID, IPC, UTS, \
cgroup and network namespaces; a new root of read-only binds; Landlock; no capabilities; a \
seccomp filter), as the profile says. The profile's pre-hooks run on the host before, \
attached hooks alongside, and post-hooks after the sandbox. No setuid bit, no helper: it \
works for ordinary users through unprivileged user namespaces, and for root.",
    after_long_help = EXIT_STATUS_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a profile's program in its sandbox
    #[command(
        long_about = "Runs the profile's pre-hooks on the host, then its program in the sandbox \
(with the profile's `arguments`, then ARGS), passing SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, \
SIGUSR2 and SIGWINCH on to it; started hooks run once it is running; when it exits, attached \
hooks and started hooks still running get SIGTERM (and SIGKILL after the profile's grace \
period), then the post-hooks run. \
Options here override the profile for this run only.",
        after_long_help = EXIT_STATUS_HELP
    )]
    Run(RunArgs),
    /// Record a program's run and draft a profile for it
    #[command(
        long_about = "Runs PROGRAM (a name looked up in PATH, or a path) with ARGS in a recording \
sandbox: the minimal sandbox with every shipped fragment (display, sound, GPU, fonts, themes, \
locale, network, the session bus through the filtering proxy), the host's /etc, /opt, /srv, \
/var/lib, /var/cache and /sys read-only, and an empty home thrown away at exit. Every file and \
folder the program names (opening, looking up, executing, creating, removing, connecting to a \
socket) is reported to antimony by a seccomp user notification and the call goes on unchanged; \
no root is needed. The D-Bus proxy logs the names it asks for; when it asked for names the \
recording did not allow, the run is recorded again with them (at most three rounds). Close the \
program (or give --for) to end a round. Then the draft: the fragments whose paths it used, \
binds of the folders it read outside them (never the home wholesale), a private persistent home \
if it wrote in its home, its devices and D-Bus names, each with a comment saying which path \
needed it. It is written to ~/.config/antimony/profiles/NAME.toml (NAME: the program's file \
name) unless --output says where, checked as `antimony check` does, and never written over an \
existing file without --force."
    )]
    Learn {
        /// The program: a name looked up in PATH, or a path
        program: String,
        /// The draft's profile name (default: the program's file name)
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Write the draft here instead of ~/.config/antimony/profiles/NAME.toml ("-": standard output)
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Replace an existing file
        #[arg(long)]
        force: bool,
        /// Stop the program (SIGTERM) after this many seconds of each round, instead of waiting for it to exit
        #[arg(long = "for", value_name = "SECONDS")]
        seconds: Option<u64>,
        /// Arguments for the program; everything after `--` is the program's
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// Check that profiles are valid
    #[command(
        long_about = "Loads each profile with everything it inherits, validates it, and plans a \
run of it (so a missing program is reported too; a fragment, which does not run on its own, is \
not planned). Prints `NAME: ok` (`NAME: ok (fragment)`) for each valid profile and one error \
line for each invalid one; exits 125 if any is invalid."
    )]
    Check {
        /// Profile names or paths to profile files
        #[arg(required = true, value_name = "PROFILE")]
        profiles: Vec<String>,
    },
    /// Print a profile, with everything it inherits, as TOML
    #[command(
        long_about = "Prints the fully resolved profile: its own values over everything it \
inherits, with every default written out. The output is itself a valid profile. For a profile \
that inherits, each value a layer set is followed by a comment naming that layer's file \
(`# ← <shipped>/with-x11.toml`); a value without one is the default."
    )]
    Show {
        /// Profile name or path to a profile file
        profile: String,
    },
    /// List every profile and where it comes from
    #[command(
        long_about = "Lists every profile name found in the user's folder, the system folder and \
the shipped profiles, which copy wins, and which copies it shadows."
    )]
    List,
    /// Edit the user's copy of a profile
    #[command(
        long_about = "Opens $VISUAL or $EDITOR (else vi) on the user's copy of the profile. For a \
system or shipped profile the user has no copy of, that copy starts as an override: it inherits \
the profile of the same name from the layer below (with its text commented, for reference), so \
later fixes to it still apply and only what you set changes. A profile that exists \
nowhere starts from a template: the strict base (minimal), the program of that name found on \
PATH, and, commented, the fragments a desktop application usually needs. After the editor \
exits, the profile is validated; an invalid profile is saved only if you say so."
    )]
    Edit {
        /// Profile name
        profile: String,
    },
    /// Show recent runs and their hooks
    #[command(long_about = "Shows the most recent runs from the run records in \
$XDG_STATE_HOME/antimony/runs/log.jsonl: when each started, its profile, instance id, duration, \
how the program ended and how many hooks ran (and failed). About one run in sixteen, recording \
it also removes the records older than 30 days and all but the 200 that started last.")]
    Log {
        /// Only runs of this profile
        profile: Option<String>,
        /// How many runs to show
        #[arg(short = 'n', long, default_value_t = 20, value_name = "N")]
        limit: usize,
        /// Also list each run's hooks with their status and duration
        #[arg(long)]
        hooks: bool,
        /// Print the records as a JSON array, oldest first
        #[arg(long)]
        json: bool,
        /// Print the last denial report of PROFILE (from `antimony run --explain`) instead
        #[arg(long, requires = "profile")]
        explain: bool,
    },
    /// List running instances
    #[command(
        long_about = "Lists your running instances, oldest first: instance id, profile, the \
program's PID on the host, when the instance started (UTC) and for how long it has run. An \
instance is listed from the moment its program runs (not while its pre-hooks do), and only once \
its record is proven: its antimony is alive, is the same antimony \
binary and yours, and is the process serving the record's control socket. Records left by an \
antimony that died (even by SIGKILL) are removed; any other record that fails a check is left \
alone and never listed."
    )]
    Ps {
        /// Print a JSON array of instances (stable format: see JSON OUTPUT in antimony-ps(1))
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a running instance, with exactly its confinement
    #[command(
        long_about = "Runs CMD (default: /bin/sh) inside a running instance, with exactly the \
instance's confinement: its namespaces, root, Landlock domain, seccomp filter, no capabilities, \
no_new_privs, and its environment plus ANTIMONY_NAME and ANTIMONY_INSTANCE. antimony never \
joins the instance's namespaces itself: it asks the instance's antimony, over its control \
socket, to have the sandbox's init start the command. The instance must be proven to be one \
that antimony started and that is still alive (see antimony-ps(1)); anything else is refused. \
CMD never gets your descriptors: where your stdin, stdout or stderr is a terminal, it gets a \
new terminal of its own (made for it outside the sandbox, so that no other process inside can \
open it; its controlling terminal, /dev/tty, though `tty` finds no name for it), which \
antimony relays to yours (in raw mode meanwhile, with your window size), as `ssh -t` does; the \
others are pipes antimony relays. Signals you send \
to `antimony enter` (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) go to CMD's process \
group, which also gets SIGHUP if `antimony enter` dies. Exits with CMD's status."
    )]
    Enter {
        /// Instance id (or a unique prefix), or a profile with one running instance
        instance: String,
        /// The command and its arguments (default: /bin/sh); a name without `/` is looked up on the sandbox's PATH
        #[arg(last = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Stop a running instance gracefully
    #[command(
        long_about = "Stops a running instance the way a normal exit ends: its stopping hooks \
run, the program gets SIGTERM, then SIGKILL after the profile's grace period if it is still \
running; attached hooks are terminated and the post-hooks run. A profile name stops every \
instance of it. Returns when they have ended (their antimony has exited); the stopped \
`antimony run` exits with the program's status (143 after SIGTERM, 137 after SIGKILL)."
    )]
    Stop {
        /// Instance id (or a unique prefix), or a profile name
        instance: String,
    },
    /// Put a profile in the desktop's menu and on PATH
    #[command(
        long_about = "Makes every way of starting the profile's program go through antimony. \
For the system's desktop entry of the program (the profile's `id`, ID.desktop, else every entry \
whose Exec or TryExec runs the program, found in $XDG_DATA_DIRS/applications/, default \
/usr/local/share:/usr/share), it writes one with the same desktop id under \
$XDG_DATA_HOME/applications/, which shadows it: the menu shows one entry, with the same name \
and icon, whose every Exec (actions included) runs `antimony run PROFILE --` followed by the \
original arguments and field codes (%u, %F…); TryExec names antimony and DBusActivatable is \
false. There is no action that runs the program outside the sandbox. A profile the system has \
no entry for gets a minimal one. The system's D-Bus services that start the program \
($XDG_DATA_DIRS/dbus-1/services/) are shadowed the same way under \
$XDG_DATA_HOME/dbus-1/services/, so that D-Bus activation goes through antimony too. Last, \
a symlink ~/.local/bin/PROFILE → antimony: antimony started under another name runs the \
profile of that name with every argument passed on. A warning says when ~/.local/bin is not \
on PATH or a folder before it has its own PROFILE.\n\n\
A PROFILE that is also a command of the system's without a desktop entry of its own (a shell, \
an interpreter, a core utility: sh, python3, curl) is refused: the link would stand for it \
wherever PATH finds it, and every script that runs it (`#!/usr/bin/env sh`) would get the \
sandbox instead. --force integrates it all the same, with a warning.\n\n\
Every file it writes is marked as antimony's (X-Antimony-Profile=PROFILE) and recorded under \
$XDG_STATE_HOME/antimony/integrations/. A file in the way that antimony did not write, or a \
symlink that points elsewhere, is never replaced: integrate then fails before writing \
anything. Integrating again refreshes the files. --remove removes exactly what integrate \
wrote for the profile, and the folders it made if they are empty, and nothing else.\n\n\
The files name the antimony that wrote them. One run from its build folder (target/release, \
target/debug) says so in a warning and in each file's header; once antimony is installed \
(or the checkout moved), `antimony integrate --refresh` writes every integrated profile's \
files again with the path of the antimony it runs as."
    )]
    Integrate {
        /// Profile name
        #[arg(required_unless_present = "refresh")]
        profile: Option<String>,
        /// Remove what `integrate` wrote for this profile
        #[arg(long)]
        remove: bool,
        /// Integrate a command of the system's too (a shell, an interpreter, a core utility)
        #[arg(long, conflicts_with = "remove")]
        force: bool,
        /// Write every integrated profile's files again, with this antimony's path (after installing it, or moving the build folder)
        #[arg(long, conflicts_with_all = ["profile", "remove", "force"])]
        refresh: bool,
    },
    /// Check that this host has what antimony needs, and say how to fix what it lacks
    #[command(
        long_about = "Checks everything antimony relies on in this host and prints, for each \
check, `ok`, `info`, `warning` or `failure`, what was found, and for what is not ok what it \
affects and the one command that fixes it. The checks: the sysctls that limit user namespaces \
(user.max_user_namespaces, kernel.unprivileged_userns_clone where it exists), AppArmor's \
restriction of user namespaces (kernel.apparmor_restrict_unprivileged_userns, as on Ubuntu 23.10 \
and later) and whether antimony's AppArmor profile is loaded, a user namespace with a mount \
namespace actually made (in a child process, which maps your ids and mounts a tmpfs there), \
the Landlock ABI, seccomp filters, cgroup v2 and whether your cgroup is delegated to you (for \
[limits]), /dev/fuse and /dev/net/tun opened as you, xdg-dbus-proxy, pasta, gocryptfs and \
fusermount3 on PATH, XDG_RUNTIME_DIR (set, yours, private) and antimony's folder in it, and, \
for information, a notification service on the session bus and a display. Nothing is \
changed.\n\n\
Exit status: 0 when `antimony run` can work (warnings name features that cannot: a missing \
xdg-dbus-proxy, an unusable /dev/fuse…); 1 when it cannot (a failure: no user namespace, no \
seccomp, a runtime folder antimony refuses); 125 when doctor itself fails."
    )]
    Doctor {
        /// Print the checks as JSON: {"can_run": BOOL, "checks": [{"id", "status", "found", "affects", "fix"}]}
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script
    #[command(
        long_about = "Prints a completion script for bash, zsh or fish, generated from the same \
definitions as the command line: subcommands, options and their values, and profile names \
for `run`, `check`, `show`, `edit` and `integrate` (asked from `antimony list` when \
completing; `run` and `integrate` are offered profiles, not fragments). To load it:\n\n\
bash: `source <(antimony completions bash)` in ~/.bashrc, or the output saved as \
~/.local/share/bash-completion/completions/antimony\n\n\
zsh: the output saved as `_antimony` in a folder of $fpath, before compinit runs\n\n\
fish: the output saved as ~/.config/fish/completions/antimony.fish"
    )]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// Shells `antimony completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Profile name, or path to a profile file (contains `/` or ends in `.toml`)
    pub profile: String,

    /// Also bind HOST read-only at SANDBOX (default: the same path); a leading `?` makes it optional
    #[arg(long = "ro", value_name = "HOST[=SANDBOX]")]
    pub ro: Vec<String>,

    /// Also bind HOST read-write at SANDBOX (default: the same path); a leading `?` makes it optional
    #[arg(long = "rw", value_name = "HOST[=SANDBOX]")]
    pub rw: Vec<String>,

    /// Set an environment variable in the sandbox (`KEY=$NAME` copies the host's NAME)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Give the sandbox a network for this run: isolated (the default: its own, through pasta; not the host's loopback nor the local network) or host (the host's own)
    #[arg(
        long,
        value_name = "MODE",
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "isolated",
        overrides_with = "no_network"
    )]
    pub network: Option<Network>,

    /// Give the sandbox no network (loopback only) for this run
    #[arg(long = "no-network", overrides_with = "network")]
    pub no_network: bool,

    /// Run this program instead of the profile's `path` (a path inside the sandbox, or a name on its PATH)
    #[arg(long, value_name = "PROGRAM")]
    pub program: Option<String>,

    /// What becomes of host files and folders the program's arguments name (paths, file:// URIs): bound read-only at the same path, writable, or not at all (default: the profile's `files.forward`, else ro)
    #[arg(long, value_name = "MODE", value_enum)]
    pub forward: Option<Forward>,

    /// With a `single_instance` profile: start another instance even when one runs
    #[arg(long)]
    pub new_instance: bool,

    /// Print the plan (mounts, namespaces, Landlock, seccomp, environment, hooks in order) and run nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Write JSON lines about the run to this open file descriptor: one when the program has started, one when it has ended (see STATUS LINES)
    #[arg(long, value_name = "FD")]
    pub status_fd: Option<i32>,

    /// Record the paths the program tries (a round trip to antimony for each); if it exits with an error, name those that exist on the host but that the profile does not grant, and what to add (kept for `antimony log PROFILE`)
    #[arg(long)]
    pub explain: bool,

    /// Arguments for the program, after the profile's `arguments`; everything after `--` is the program's
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<OsString>,
}

/// `--network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Network {
    Isolated,
    Host,
}

/// `--forward`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Forward {
    Ro,
    Rw,
    Off,
}

impl RunArgs {
    /// `Some(None)`: `--no-network`.
    pub fn network(&self) -> Option<Option<Network>> {
        match (self.network, self.no_network) {
            (Some(n), _) => Some(Some(n)),
            (_, true) => Some(None),
            _ => None,
        }
    }
}
