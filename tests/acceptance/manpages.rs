//! The man pages of the command line, generated from the clap definitions
//! in `cli` so that names, synopses and options cannot drift from the code.
//!
//! `pages()` returns `antimony.1` and one `antimony-COMMAND.1` per
//! subcommand. The synopsis is clap's own usage line, NAME, DESCRIPTION,
//! OPTIONS and the list of commands come from clap_mangen, EXIT STATUS from
//! the `after_long_help` of the top command and of `run` (the other
//! commands' are written below); the rest (ENVIRONMENT, FILES, EXAMPLES,
//! SEE ALSO…) is roff written below too, next to nothing that could check
//! it. The output is deterministic: no date.
//!
//! The pages are committed in `man/`; the acceptance test `man` fails when
//! they differ from what this module generates, and rewrites them with
//! `ANTIMONY_UPDATE_MAN=1`. The profile format's page, `antimony-profile.5`,
//! is written by hand in `man/`. The generator lives with that test, not in
//! the shipped library: antimony itself never renders a page.

use std::fmt::Write as _;

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use antimony::cli::{Cli, EXIT_STATUS_HELP};

/// What `roff::Roff` writes at the start of every rendering: defines the
/// `Aq` string (a straight apostrophe) that escaped apostrophes use.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// Every generated page: (file name, roff source).
pub fn pages() -> Vec<(String, String)> {
    let mut root = Cli::command()
        .disable_help_subcommand(true)
        .subcommand_help_heading("COMMANDS");
    root.build();
    let subcommands: Vec<clap::Command> = root
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let names: Vec<String> = subcommands
        .iter()
        .map(|s| s.get_name().to_string())
        .collect();

    let mut pages = vec![page(&root, true, &names)];
    for sub in &subcommands {
        pages.push(page(sub, false, &names));
    }
    pages
}

/// The file name and roff source of one command's page.
fn page(cmd: &clap::Command, top: bool, all: &[String]) -> (String, String) {
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string();
    let man = Man::new(cmd.clone());

    // The title by hand: roff drops the empty date argument that
    // clap_mangen passes, which shifts the footer fields.
    let mut out = String::from(PREAMBLE);
    let _ = writeln!(
        out,
        ".TH {} 1 \"\" \"antimony\" \"User Commands\"",
        name.to_uppercase()
    );
    out.push_str(&clap_part(&man, Man::render_name_section));
    out.push_str(&synopsis(cmd));
    out.push_str(&clap_part(&man, Man::render_description_section));
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        out.push_str(&clap_part(&man, Man::render_options_section));
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        out.push_str(&clap_part(&man, Man::render_subcommands_section));
    }
    let short = cmd.get_name();
    let mut sections: Vec<(String, String)> = Vec::new();
    if let Some(after) = cmd.get_after_long_help() {
        let after = after.to_string();
        let heading = if after == EXIT_STATUS_HELP {
            "EXIT STATUS"
        } else {
            "NOTES"
        };
        sections.push((heading.into(), text_body(&after)));
    }
    let extra = if top {
        TOP_SECTIONS
    } else {
        sections_of(short)
    };
    for (heading, body) in extra {
        sections.push((heading.to_string(), body.to_string()));
    }
    // The usual order of man(7): the command's own sections first.
    sections.sort_by_key(|(heading, _)| {
        ["EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"]
            .iter()
            .position(|h| h == heading)
            .map_or(0, |i| i + 1)
    });
    for (heading, body) in &sections {
        let _ = writeln!(out, ".SH \"{heading}\"");
        out.push_str(body);
        if !body.ends_with('\n') {
            out.push('\n');
        }
    }
    out.push_str(&see_also(if top { None } else { Some(short) }, all));
    (format!("{name}.1"), finish(&out))
}

/// One section of clap_mangen's rendering, without the preamble.
fn clap_part(
    man: &Man,
    render: fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>,
) -> String {
    let mut buf = Vec::new();
    render(man, &mut buf).expect("rendering into memory cannot fail");
    let text = String::from_utf8(buf).expect("clap_mangen writes UTF-8");
    text.strip_prefix(PREAMBLE).unwrap_or(&text).to_string()
}

/// SYNOPSIS from clap's own usage line (`antimony run [OPTIONS] <PROFILE>
/// [-- <ARGS>...]`), which keeps the `--` that clap_mangen's synopsis drops.
fn synopsis(cmd: &clap::Command) -> String {
    let bin = cmd
        .get_bin_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string();
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.trim();
    let usage = usage.strip_prefix("Usage:").unwrap_or(usage).trim();
    let mut roff = Roff::default();
    roff.control("SH", ["SYNOPSIS"]);
    for (i, form) in usage
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            roff.control("br", []);
        }
        match form.strip_prefix(bin.as_str()) {
            Some(rest) => roff.text([bold(bin.as_str()), roman(rest)]),
            None => roff.text([roman(form)]),
        };
    }
    let text = roff.render();
    text.strip_prefix(PREAMBLE).unwrap_or(&text).to_string()
}

/// A section body from plain text in the clap definitions.
fn text_body(body: &str) -> String {
    let mut roff = Roff::default();
    for (i, para) in body.split("\n\n").enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(para.replace('\n', " "))]);
    }
    let text = roff.render();
    text.strip_prefix(PREAMBLE).unwrap_or(&text).to_string()
}

fn see_also(this: Option<&str>, all: &[String]) -> String {
    let mut refs: Vec<String> = Vec::new();
    if this.is_some() {
        refs.push("antimony(1)".into());
    }
    for name in all {
        if Some(name.as_str()) != this {
            refs.push(format!("antimony-{name}(1)"));
        }
    }
    refs.push("antimony-profile(5)".into());
    let items: Vec<String> = refs
        .iter()
        .map(|r| {
            let (page, section) = r.split_once('(').unwrap_or((r, ""));
            format!(".BR {} ({section}", page.replace('-', "\\-"))
        })
        .collect();
    let mut out = String::from(".SH \"SEE ALSO\"\n");
    let last = items.len() - 1;
    for (i, item) in items.into_iter().enumerate() {
        out.push_str(&item);
        if i != last {
            out.push(',');
        }
        out.push('\n');
    }
    out
}

/// Final touches on a whole page: `code` in help texts becomes bold, and
/// characters beyond ASCII become roff escapes so that every formatter
/// reads the page the same way whatever its input encoding.
fn finish(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for line in page.lines() {
        let line = if !line.starts_with('.') && line.matches('`').count() % 2 == 0 {
            let mut s = String::new();
            for (i, part) in line.split('`').enumerate() {
                if i > 0 {
                    s.push_str(if i % 2 == 1 { "\\fB" } else { "\\fR" });
                }
                s.push_str(part);
            }
            s
        } else {
            line.to_string()
        };
        for c in line.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let _ = write!(out, "\\[u{:04X}]", c as u32);
            }
        }
        out.push('\n');
    }
    out
}

// The hand-written sections, in man(7) roff. Keep each fact next to the
// code that decides it in mind: profile details belong in
// `man/antimony-profile.5`, not here.

const TOP_SECTIONS: &[(&str, &str)] = &[
    (
        "ENVIRONMENT",
        r#".TP
.B HOME
The host home folder. A leading \fB~\fR in profiles and in \fB\-\-ro\fR/\fB\-\-rw\fR
means this folder, and the sandbox's \fB$HOME\fR is the same path (what is
mounted there depends on the profile's \fB[home]\fR policy). When unset or
empty, the home folder from the password database is used.
.TP
.B XDG_CONFIG_HOME
Where the user's profiles, reusable hooks and drop-in hooks are:
\fB$XDG_CONFIG_HOME/antimony/profiles/\fR, \fBhooks/\fR, \fBhooks.d/\fR.
Default \fB~/.config\fR.
.TP
.B XDG_DATA_HOME
Where persistent profile homes are: \fB$XDG_DATA_HOME/antimony/\fINAME\fR;
and where \fBantimony integrate\fR writes its desktop entries and D-Bus
services (\fBapplications/\fR, \fBdbus\-1/services/\fR).
Default \fB~/.local/share\fR.
.TP
.B XDG_DATA_DIRS
Where \fBantimony integrate\fR finds the system's desktop entries and
D-Bus services. Default \fB/usr/local/share:/usr/share\fR.
.TP
.B XDG_CACHE_HOME
Where each profile's launcher folder is:
\fB$XDG_CACHE_HOME/antimony/profiles/\fINAME\fR (\fBANTIMONY_CACHE\fR for hooks).
Default \fB~/.cache\fR.
.TP
.B XDG_STATE_HOME
Where antimony keeps its run records (\fB$XDG_STATE_HOME/antimony/runs/\fR),
hooks' saved state (\fBantimony/state/\fR) and \fBintegrate\fR's records
(\fBantimony/integrations/\fR); no sandbox can see it.
Default \fB~/.local/state\fR.
.PP
A relative value of any of the four \fBXDG_*\fR variables above is ignored
and the default is used.
.TP
.B XDG_RUNTIME_DIR
Where running instances are registered:
\fB$XDG_RUNTIME_DIR/antimony/instances/\fR (see
.BR antimony\-ps (1));
without it, \fB$TMPDIR/antimony\-\fIUID\fB/instances/\fR (\fBTMPDIR\fR
defaults to \fB/tmp\fR). That folder must be yours, not a link, and
writable by nobody else: one another user made first, or one others may
write, is refused, and \fBantimony run\fR stops before anything runs,
saying so; one of yours that others may only read is made private (0700). Not passed on:
the sandbox gets an empty private
\fB/run/user/\fIUID\fR and \fBXDG_RUNTIME_DIR\fR pointing at it. Hooks with
\fBenv = true\fR see the host's value.
.TP
.B DBUS_SESSION_BUS_ADDRESS
The session bus the D-Bus proxy of a profile with \fB[dbus]\fR connects to
(else \fB$XDG_RUNTIME_DIR/bus\fR). The sandbox never gets it: its own
points at the proxy. \fBantimony run\fR also sends its desktop
notifications there when its stderr is not a terminal (see MESSAGES in
.BR antimony\-run (1)).
.TP
.BR VISUAL ", " EDITOR
The editor \fBantimony edit\fR starts (\fBVISUAL\fR first, split on white
space); \fBvi\fR when neither is set.
.TP
.BR SUDO_UID ", " SUDO_GID ", " PKEXEC_UID
When antimony runs as root and \fBSUDO_UID\fR is set (with \fBSUDO_GID\fR,
else that user's primary group), or else \fBPKEXEC_UID\fR is set (with that
user's primary group), hooks with \fBsystem = "User"\fR (the default) run as
that user and group instead of root, each in a session of its own, never
with root's terminal: a hook that would share antimony's terminal gets one
of its own, which antimony relays (see
.BR antimony\-profile (5),
\fBIdentity\fR). Ignored when antimony is not root.
.TP
.B PATH
Where hook programs named without a \fB/\fR are found (default
\fB/usr/local/bin:/usr/bin:/bin\fR). The sandbox never inherits it: its
\fBPATH\fR is \fB/usr/local/bin:/usr/bin:/bin\fR (for root, with the
\fBsbin\fR folders too), and a profile's program named without a \fB/\fR
is looked up there.
.TP
.BR TERM ", " COLORTERM ", " LANG ", " LANGUAGE ", " TZ ", " NO_COLOR ", " LC_*
Copied into the sandbox when set. Every other host variable is left out
unless the profile's \fB[environment]\fR or \fB\-\-env\fR asks for it.
"#,
    ),
    (
        "FILES",
        r#".TP
.BI $XDG_CONFIG_HOME/antimony/profiles/ NAME .toml
The user's profiles, searched first.
.TP
.BI /etc/antimony/profiles/ NAME .toml
System-wide profiles, searched second.
.TP
shipped profiles
The profiles in the source tree's \fBprofiles/\fR folder, compiled into the
binary and searched last, so that a freshly built antimony runs
\fBantimony run sh\fR with no install step. \fBantimony list\fR shows which
copy of each name wins.
.TP
.BI $XDG_DATA_HOME/antimony/ NAME
The persistent home of profile \fINAME\fR (or of its \fBhome.name\fR) for the
home policies \fBEnabled\fR, \fBReadOnly\fR and \fBOverlay\fR; created
(mode 0700) before the sandbox starts.
.TP
.BI $XDG_CACHE_HOME/antimony/profiles/ NAME
The profile's launcher folder, given to hooks as \fBANTIMONY_CACHE\fR;
created with mode 0555 when the profile has hooks.
.TP
.BI $XDG_CONFIG_HOME/antimony/hooks/ NAME .toml\fR,\fP /etc/antimony/hooks/ NAME .toml
Reusable hooks (\fBuse\fR), the user's and the system's; shipped ones last.
.TP
.BR $XDG_CONFIG_HOME/antimony/hooks.d/ ", " /etc/antimony/hooks.d/
Drop-in hooks that run for every profile, by event.
.TP
.B $XDG_STATE_HOME/antimony/
Run records (\fBruns/\fR), hooks' saved state (\fBstate/\fIPROFILE\fB/\fR)
and \fBintegrate\fR's records (\fBintegrations/\fR).
.TP
.BI ~/.local/bin/ PROFILE
The symlink to antimony that \fBantimony integrate\fR makes.
.PP
\fB$XDG_CONFIG_HOME/antimony\fR, \fB/etc/antimony\fR, \fB$XDG_DATA_HOME/antimony\fR,
\fB$XDG_STATE_HOME/antimony\fR, \fB$XDG_CACHE_HOME/antimony\fR and the
instance registry's folder (\fB$XDG_RUNTIME_DIR/antimony\fR, or
\fB$TMPDIR/antimony\-\fIUID\fR) are never visible to a sandbox: where a
profile's bind would expose one of them, an empty read-only folder is
mounted over it. A profile named by path (and what it inherits, the
hooks' definitions and antimony itself) that a writable bind reaches is
kept read-only in the sandbox, the folders on its way pinned; a hook's
program that one reaches fails the run (see \fBantimony\-profile\fR(5),
FINDING PROFILES).
"#,
    ),
    (
        "EXAMPLES",
        r#".TP
.B antimony run sh \-\- \-c \(aqecho hello\(aq
Runs \fB/bin/sh \-c \(aqecho hello\(aq\fR in the shipped \fBsh\fR profile's sandbox.
.TP
.B antimony run \-\-rw . sh
The same shell with the current folder bound read-write at the same path
(and started there).
.TP
.B antimony run \-\-dry\-run ./myapp.toml
Prints what a run of the profile file \fBmyapp.toml\fR would do, and runs
nothing.
.TP
.B antimony run ./antimony.toml \-\-rw .
Runs the project's own profile with the project (the current folder)
writable; the profile stays read-only in the sandbox.
.TP
.B antimony check myapp
Validates the profile \fBmyapp\fR and everything it inherits.
"#,
    ),
];

fn sections_of(command: &str) -> &'static [(&'static str, &'static str)] {
    match command {
        "run" => RUN_SECTIONS,
        "check" => CHECK_SECTIONS,
        "learn" => LEARN_SECTIONS,
        "show" => SHOW_SECTIONS,
        "list" => LIST_SECTIONS,
        "edit" => EDIT_SECTIONS,
        "ps" => PS_SECTIONS,
        "enter" => ENTER_SECTIONS,
        "stop" => STOP_SECTIONS,
        "doctor" => DOCTOR_SECTIONS,
        _ => &[],
    }
}

const DOCTOR_SECTIONS: &[(&str, &str)] = &[
    (
        "OUTPUT",
        r#"One line per check: its status (\fBok\fR, \fBinfo\fR, \fBwarning\fR,
\fBfailure\fR), its id and what was found; under each check that is not ok,
\fBaffects:\fR what depends on it and \fBfix:\fR the command that fixes it.
The last line says whether \fBantimony run\fR can work here. Text from the
environment (paths, the bus address) is escaped.
"#,
    ),
    (
        "JSON OUTPUT",
        r#"With \fB\-\-json\fR: one object, \fBcan_run\fR (boolean: no failure) and
\fBchecks\fR, an array of objects in the order above, each with \fBid\fR
(string: \fBuserns\-sysctls\fR, \fBapparmor\-userns\fR, \fBuserns\fR,
\fBlandlock\fR, \fBseccomp\fR, \fBcgroup\fR, \fBfuse\fR, \fBtun\fR,
\fBxdg\-dbus\-proxy\fR, \fBpasta\fR, \fBgocryptfs\fR, \fBruntime\-dir\fR,
\fBruntime\-folder\fR (only when antimony's folder is refused),
\fBnotifications\fR, \fBdisplay\fR), \fBstatus\fR (string: \fBok\fR,
\fBinfo\fR, \fBwarning\fR, \fBfailure\fR), \fBfound\fR and \fBaffects\fR
(strings) and \fBfix\fR (string, or null when the check is ok). Fields may
be added: a reader should ignore those it does not know.
"#,
    ),
    (
        "FILES",
        r#".TP
.B /etc/apparmor.d/antimony
antimony's AppArmor profile: it grants \fB/usr/bin/antimony\fR user
namespaces where AppArmor restricts them. The Debian package installs and
loads it where AppArmor can; \fBdoctor\fR reads
\fB/sys/kernel/security/apparmor/profiles\fR to see whether it is loaded.
"#,
    ),
    (
        "EXAMPLES",
        r#".TP
.B antimony doctor
Checks this host, as you.
.TP
.B antimony doctor \-\-json | jq \-r '.checks[] | select(.status == "failure") | .fix'
The commands that would make \fBantimony run\fR work.
"#,
    ),
];

const RUN_SECTIONS: &[(&str, &str)] = &[
    (
        "THE RUN",
        r#"In order:
.IP 1. 4
The profile is found, read, validated and merged with everything it
inherits; the run is planned (the program is looked up, the mount list,
Landlock rules and seccomp filter are built). Any error here stops the run
before anything is executed.
.IP 2. 4
The pre-hooks run on the host, in profile order; attached ones are left
running.
.IP 3. 4
The sandbox is built and the program started in it. SIGINT, SIGTERM,
SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH sent to antimony are passed
on to the program.
.IP 4. 4
When the program has exited, every attached hook and every started hook
still running gets SIGTERM, and SIGKILL after the profile's grace period.
.IP 5. 4
The post-hooks run, even when a pre-hook or the set-up failed.
.PP
See
.BR antimony\-profile (5)
for the hooks and the sandbox in detail.
"#,
    ),
    (
        "OVERRIDES",
        r#"\fB\-\-ro\fR and \fB\-\-rw\fR take the same \fB[?]\fIHOST\fB[=\fISANDBOX\fB]\fR
form as the profile's \fB[files]\fR lists, except that a relative path is
relative to the current folder. They are mounted after the profile's
entries and replace any mount at or beneath the same place.
\fB\-\-env\fR is applied after the profile's \fB[environment]\fR; a value of
the form \fB$\fINAME\fR copies the host's \fINAME\fR (and unsets the
variable when the host has none). \fB\-\-network\fR (the isolated network,
as \fBnetwork = "isolated"\fR), \fB\-\-network=host\fR and \fB\-\-no\-network\fR
replace the profile's \fBnetwork\fR; the last one given wins. The value
needs the \fB=\fR: \fB\-\-network firefox\fR runs the profile firefox
with the isolated network.
"#,
    ),
    (
        "MESSAGES",
        r#"Warnings (\fBantimony: warning: \fR...) and antimony's own error
(\fBantimony: error: \fR..., exit status 125) go to stderr, escaped as
everything antimony did not write itself. The plan's warnings are said
before the pre-hooks run, a pre-hook's that may fail (\fBcan_fail\fR) and
failed before the sandbox starts; the others (a started, stopping or post-hook
that may fail and failed, hook state or a run record that could not be
kept) once the program has ended.
.PP
When stderr is not a terminal \(em the program was started from a desktop
menu, a file manager or a link \fBantimony integrate\fR wrote, and nobody
reads stderr \(em the same warnings and error are also shown as desktop
notifications: antimony itself, on the host, calls
\fBorg.freedesktop.Notifications.Notify\fR on the session bus
(\fBDBUS_SESSION_BUS_ADDRESS\fR, else \fB$XDG_RUNTIME_DIR/bus\fR), with the
application name \fBantimony\fR, the summary \fBantimony: \fIPROFILE\fR, the
text as the body (control characters escaped as on a terminal, and \fB&\fR,
\fB<\fR, \fB>\fR as entities, so that a server that reads markup shows
them as text), urgency normal for warnings (those of one moment of the run
together) and critical for the error. The program's own output and exit
status are its own: nothing of them is notified.
.PP
The whole exchange is bounded (300 ms): without a session bus or a
notification service nothing is shown and the run goes on at once; a bus
that does not answer in time costs the run that long once, after which
the run sends no more notifications. A notification never fails a run.
With stderr a terminal nothing is sent.
"#,
    ),
    ("STATUS LINES", STATUS_LINES),
];

const STATUS_LINES: &str = r#"With \fB\-\-status\-fd \fIFD\fR, antimony writes one JSON object per
line to descriptor \fIFD\fR (which must be open: otherwise the run fails
before anything runs), as things happen. The descriptor is not passed to
hooks or into the sandbox, and is not closed by antimony; a write that fails
is ignored. Keys may come in any order, and keys may be added in later
versions; the ones below keep their names and types.
.TP
.B started
Once the program has been executed:
.RS
.nf
{"event":"started","instance":"\fIID\fP","pid":\fIPID\fP,
 "namespaces":{"cgroup":\fIN\fP,"ipc":\fIN\fP,"mnt":\fIN\fP,"net":\fIN\fP,
               "pid":\fIN\fP,"user":\fIN\fP,"uts":\fIN\fP}}
.fi
.RE
.IP
\fBinstance\fR is the run's id (\fBANTIMONY_INSTANCE\fR, and the id
.BR antimony\-ps (1)
lists), \fBpid\fR the program's PID on the host, and each namespace's
number the inode that \fBstat \-L \-c %i /proc/\fIPID\fB/ns/\fIname\fR
prints for the program (a shared namespace is the host's; one that could
not be read, the program having already exited, is left out).
.TP
.B exited
Once the program has ended (before attached hooks are ended and post-hooks
run): \fB{"event":"exited","instance":"\fIID\fB","exit\-code":\fIN\fB}\fR
when it exited, \fB{"event":"exited","instance":"\fIID\fB","signal":\fIN\fB}\fR
when a signal killed it (9 when it was killed after the grace period, with
the whole sandbox).
.PP
A run that fails before its program has started (a pre-hook, the set-up,
a program that cannot be executed) writes neither line; so an
\fBexited\fR line always follows a \fBstarted\fR one. A run whose
antimony is killed writes no \fBexited\fR line.
"#;

const PS_SECTIONS: &[(&str, &str)] = &[
    (
        "OUTPUT",
        r#"A header, then one line per instance, oldest first: the instance id, the
profile, the program's PID on the host, when the instance started
(\fIYYYY\-MM\-DD HH:MM:SS\fR, UTC) and its uptime (\fB42s\fR, \fB5m07s\fR,
\fB3h12m\fR). The instance id is the run's \fBANTIMONY_INSTANCE\fR, the
one \fBantimony log\fR shows.
"#,
    ),
    (
        "JSON OUTPUT",
        r#"With \fB\-\-json\fR: a JSON array (\fB[]\fR when nothing runs) with one
object per instance, in the same order. This format is stable: the fields
below keep their names, types and meaning; fields may be added, so a
reader should ignore those it does not know.
.TP
.B instance
String: the instance id, 16 lowercase hexadecimal digits.
.TP
.B profile
String: the profile's name.
.TP
.B pid
Number: the program's PID on the host (0 in the rare case antimony could
not read it).
.TP
.B antimony_pid
Number: the PID of the antimony that runs the instance (its
\fBantimony run\fR).
.TP
.B antimony_start
Number: that antimony's start time, in clock ticks since boot (field 22 of
\fB/proc/\fIPID\fB/stat\fR); with \fBantimony_pid\fR, it names the
process even after its PID is reused.
.TP
.B started_at
Number: when the instance was registered (its program had just
started), in seconds since the Unix epoch.
.TP
.B uid
Number: the user the instance belongs to.
"#,
    ),
    (
        "FILES",
        r#".TP
.BI $XDG_RUNTIME_DIR/antimony/instances/ ID /
The record of instance \fIID\fR (without \fBXDG_RUNTIME_DIR\fR,
\fB$TMPDIR/antimony\-\fIUID\fB/instances/\fIID\fB/\fR, \fBTMPDIR\fR
defaulting to \fB/tmp\fR): a folder of mode 0700 with \fBinfo.json\fR
(the object above) and \fBcontrol\fR, the socket on which the instance's
antimony takes \fBenter\fR and \fBstop\fR requests. It is made as
\fB.\fIID\fR and renamed once its socket listens, and removed when the
instance ends. The registry and the folder above it must be folders of
yours that nobody else may enter; otherwise they are not used at all. No
sandbox can see them.
.PP
A record is listed, entered or stopped only when its antimony is alive,
has the recorded start time, runs the same antimony executable, is yours,
and is the process that serves the record's \fBcontrol\fR socket (as the
kernel reports the socket's peer). A record whose antimony is gone (it
died, even by SIGKILL, and its sandbox with it) is stale and removed by the
next \fBps\fR, \fBenter\fR or \fBstop\fR; any other record that fails a
check is left alone and refused.
"#,
    ),
    (
        "EXIT STATUS",
        "0; a registry that cannot be used is reported in a warning.\n",
    ),
];

const ENTER_SECTIONS: &[(&str, &str)] = &[
    (
        "THE INSTANCE",
        r#"\fIINSTANCE\fR is an instance id as
.BR antimony\-ps (1)
lists it, a prefix of one that no other id shares, or a profile name with
exactly one running instance (with two or more, \fBenter\fR refuses and
names them). Before anything is sent, the instance's record is checked as
.BR antimony\-ps (1)
describes; a stale record is removed and refused, any other unproven one
refused. The instance's antimony, on its side, serves only clients of the
same user that run in its own user namespace, so that no process inside a
sandbox could use the socket even if it could reach it.
"#,
    ),
    (
        "THE COMMAND",
        r#"The sandbox's init (PID 1 inside) forks and executes \fICMD\fR, as it
started the program, after the instance was confined. So the command has
exactly the program's confinement: its user, mount, PID, IPC, UTS, cgroup
and network namespaces, its root, the sandbox's Landlock domain, its
seccomp filters, no capability in any set, \fBno_new_privs\fR, its uid and
gids. Like the program, it has a Landlock domain of its own nested in the
sandbox's: neither can read the other's memory
.RB ( /proc/\fIPID\fB/mem ),
environment or descriptors, though each may signal the other. Only the
instance's antimony and init are involved: \fBantimony enter\fR itself never
joins a namespace.
.PP
The command runs in a session of its own, in the sandbox's home folder,
with the umask of the sandbox, and with the sandbox's environment (as
\fBantimony run \-\-dry\-run\fR shows it) plus \fBANTIMONY_NAME\fR (the
profile) and \fBANTIMONY_INSTANCE\fR (the id): nothing of the caller's
environment. A \fICMD\fR without \fB/\fR is looked up on the sandbox's
\fBPATH\fR.
.PP
SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to
\fBantimony enter\fR are passed on to the command's process group (and
SIGWINCH, when the command has no terminal). When \fBantimony enter\fR dies
(even by SIGKILL), the command's process group gets SIGHUP. When the
instance ends, the command ends with it.
"#,
    ),
    (
        "THE TERMINAL",
        r#"The command never gets a descriptor of \fBantimony enter\fR's: anything
the sandbox could copy from it (\fBpidfd_getfd\fR(2), \fB/proc/\fIPID\fB/fd\fR)
would be the sandbox's for good, a terminal to read the next password
typed into, or to type into.
.PP
When its stdin, stdout or stderr is a terminal, the command gets a new
one, opened in the sandbox's own \fB/dev/pts\fR, in their place (all
three where all three are terminals): its controlling terminal, with the
caller's terminal settings and window size. \fBantimony enter\fR holds its
master side and relays between it and the caller's terminal, as
\fBssh \-t\fR does: meanwhile the caller's terminal is in raw mode, so the
new terminal echoes, edits lines and turns \fB^C\fR, \fB^Z\fR and
\fB^\e\fR into signals for the command's foreground process group; a new
window size (SIGWINCH) is passed on to it. Each of stdin, stdout and stderr
that is not a terminal is a pipe \fBantimony enter\fR fills from, or
empties into, its own (a closed one reads as empty).
.PP
When the command has ended, what it wrote is passed on (what it left
running may keep writing: for two seconds at most), the caller's terminal
is put back as it was, and the new terminal and the pipes are closed:
what the command left running loses its terminal (it is hung up) and can
reach nothing of the caller's.
"#,
    ),
    (
        "EXIT STATUS",
        r#"The command's exit status; 128+\fIN\fR when it died of signal \fIN\fR. 125
when \fBantimony enter\fR fails: no such instance, a profile with several,
a record that is refused, a command that cannot be started (the message
says why), or an instance that ended while the command ran.
"#,
    ),
    (
        "EXAMPLES",
        r#".TP
.B antimony enter firefox
A shell inside the running instance of the profile \fBfirefox\fR.
.TP
.B antimony enter 3f2a9c \-\- ls \-l /proc
A command in the instance whose id starts with \fB3f2a9c\fR.
"#,
    ),
];

const STOP_SECTIONS: &[(&str, &str)] = &[
    (
        "THE STOP",
        r#"For each instance named (all of them at once):
.IP 1. 4
its stopping hooks run, in order;
.IP 2. 4
the program gets SIGTERM;
.IP 3. 4
if it still runs after the profile's grace period (\fB[hooks] grace\fR), the
whole sandbox is killed (SIGKILL);
.IP 4. 4
attached hooks, and started hooks still running, get SIGTERM, and SIGKILL
after the grace period;
.IP 5. 4
the post-hooks run (those whose \fBon\fR matches how the program ended);
.IP 6. 4
the run is recorded (\fBantimony log\fR), the instance's record removed, and
its \fBantimony run\fR exits with the program's status: 143 after SIGTERM,
137 after SIGKILL (125 when a stopping or post-hook failed).
.PP
\fBantimony stop\fR returns once every instance named has ended, that is,
once its antimony has exited. Asking again while an instance is stopping
skips its remaining stopping hooks. The instance is checked first as
.BR antimony\-ps (1)
describes.
"#,
    ),
    (
        "EXIT STATUS",
        r#"0 when every instance named has ended. 125 when there is no such instance,
an id prefix names several, a record is refused (the others named are still
stopped), or an instance's antimony refused the request; one
\fBantimony: error:\fR line says so for each.
"#,
    ),
];

const CHECK_SECTIONS: &[(&str, &str)] = &[(
    "EXIT STATUS",
    r#"0 when every profile is valid, 125 when one or more is not. Each error is
one line \fBantimony: error: \fIFILE\fB:\fILINE\fB:\fICOLUMN\fB: \fImessage\fR
on standard error when it has a position.
"#,
)];

const LEARN_SECTIONS: &[(&str, &str)] = &[
    (
        "HOW IT RECORDS",
        r#"The program's process installs, just before it executes the program, a
seccomp filter that turns the calls naming a file (\fBopenat\fR, \fBopen\fR,
the \fBstat\fR family, \fBaccess\fR, \fBreadlink\fR, \fBexecve\fR,
\fBmkdir\fR, \fBunlink\fR, \fBrename\fR, \fBchdir\fR,
\fBinotify_add_watch\fR) and \fBconnect\fR into user notifications
(\fBSECCOMP_RET_USER_NOTIF\fR), and sends the filter's listener to antimony.
antimony reads each path from the program's memory and lets the call go on
unchanged (\fBSECCOMP_USER_NOTIF_FLAG_CONTINUE\fR): the program does what it
would do, failed look-ups included (a missing \fB/etc/libreoffice\fR is a
failed \fBopenat\fR). No privilege is needed, and nothing but the recorded
run pays the round trip. The session bus goes through the filtering proxy
with \fB--log\fR, which names each bus name the program calls or asks to own.
"#,
    ),
    (
        "THE DRAFT",
        r#"What the minimal sandbox shows is left out. A path a shipped fragment
shows (the X server's socket, the font cache, \fB/etc/papersize\fR...) is
that fragment, inherited. Any other file or folder that exists on the host
is a read-only bind of the folder it lies in (\fB/etc/\fINAME\fR,
\fB/var/lib/\fINAME\fR, \fB~/.config/\fINAME\fR...), read-write where it
wrote and may; devices under \fBdev\fR; the home is never bound wholesale.
A program that wrote in its home gets \fB[home] policy = "Enabled"\fR. Bus
names other than the portal's and the notifications' go to \fB[dbus]\fR. Each
grant carries a comment naming the path that needed it. The draft is planned
as \fBantimony check\fR does before it is written.
"#,
    ),
    (
        "EXIT STATUS",
        "0 when the draft was written, 125 when it was not (the program was not found, the file exists, the recording could not run).\n",
    ),
    (
        "EXAMPLES",
        r#".B antimony learn xcalc
Records xcalc until you close it and writes
\fB~/.config/antimony/profiles/xcalc.toml\fR.
.PP
.B antimony learn --for 20 -o - mupdf -- ~/Documents/report.pdf
Records mupdf showing a document for 20 seconds and prints the draft.
"#,
    ),
];

const SHOW_SECTIONS: &[(&str, &str)] = &[(
    "EXIT STATUS",
    "0 when the profile was printed, 125 when it cannot be found or is invalid.\n",
)];

const LIST_SECTIONS: &[(&str, &str)] = &[(
    "OUTPUT",
    r#"One line per profile name, sorted, under a header: the name; its kind
(\fBprofile\fR, or \fBfragment\fR when the winning copy says
\fBfragment = true\fR); where the winning copy comes from (\fBuser\fR,
\fBsystem\fR or \fBshipped\fR); its file (\fBshipped\fR for a shipped
profile); and \fB(shadows \fIFILE\fB)\fR for
each copy further down the search order that it hides. A file whose name is
not a valid profile name is not listed.
"#,
)];

const EDIT_SECTIONS: &[(&str, &str)] = &[
    (
        "THE EDIT",
        r#"The user's copy is \fB$XDG_CONFIG_HOME/antimony/profiles/\fINAME\fB.toml\fR.
When it does not exist, the editor starts on a copy of the system or shipped
profile of that name, or on a short template for a new profile. The editor
works on a temporary file in the same folder. When it exits, the text is
validated with everything it inherits; a valid profile then replaces the
user's copy in one rename. For an invalid one, the error is printed and
antimony asks: \fBe\fR edits again, \fBs\fR saves it anyway, anything else
(or end of input) discards the edit and leaves the user's copy as it was.
"#,
    ),
    (
        "ENVIRONMENT",
        r#".TP
.BR VISUAL ", " EDITOR
The editor and its arguments, split on white space; \fBVISUAL\fR first,
\fBvi\fR when neither is set.
"#,
    ),
    (
        "EXIT STATUS",
        r#"0 when the profile was saved valid or left unchanged; 125 when the editor
failed, when an invalid profile was saved anyway, or when the edit was
discarded.
"#,
    ),
];
