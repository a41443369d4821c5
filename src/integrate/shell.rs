//! `antimony completions SHELL`: clap_complete's script for the command
//! line (subcommands, options, values), generated from the same clap
//! definitions as the parser and the man pages, plus the completion of
//! profile names, which clap cannot know: the scripts ask `antimony list`
//! (its first column; its second says `profile` or `fragment`) when they
//! complete the PROFILE argument of `run`, `check`, `show`, `edit` and
//! `integrate`. `run` and `integrate` are offered profiles only, not
//! fragments.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionShell};

/// The subcommands whose first argument is a profile that can run.
const RUNNABLE: &[&str] = &["run", "integrate"];
/// The subcommands whose first argument is any profile (`check`: every argument).
const ANY: &[&str] = &["check", "show", "edit"];
/// `run`'s options that take a value (the next word is not the profile),
/// from the clap definition: a new option cannot be forgotten here.
fn value_options() -> Vec<String> {
    let cmd = Cli::command();
    let Some(run) = cmd.find_subcommand("run") else {
        return Vec::new();
    };
    run.get_arguments()
        .filter(|a| a.get_action().takes_values())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect()
}

/// The whole completion script for a shell.
pub fn script(shell: CompletionShell) -> String {
    let generator = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(generator, &mut cmd, "antimony", &mut buf);
    let base = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        CompletionShell::Bash => bash(base),
        CompletionShell::Zsh => zsh(base),
        CompletionShell::Fish => fish(base),
    }
}

fn words(list: &[&str]) -> String {
    list.join(" ")
}

fn bash(base: String) -> String {
    let subs = RUNNABLE
        .iter()
        .chain(ANY)
        .copied()
        .collect::<Vec<_>>()
        .join("|");
    let values = value_options().join("|");
    let runnable = RUNNABLE.join("|");
    base + &format!(
        r#"
# Profile names, from `antimony list`: $1 is `all` or `runnable` (no
# fragments), $2 the antimony to ask.
__antimony_profile_names() {{
    local kinds="$1" exe="$2" first=1 name kind rest
    while read -r name kind rest; do
        if ((first)); then first=0; continue; fi
        if [[ $kinds == all || $kind == profile ]]; then
            printf '%s\n' "$name"
        fi
    done < <("$exe" list 2>/dev/null)
}}

_antimony_with_profiles() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" sub="${{COMP_WORDS[1]}}" exe="${{COMP_WORDS[0]}}"
    local i n=0 word kinds=all
    [[ $exe == "~/"* ]] && exe="$HOME/${{exe#"~/"}}"
    # A word with a `/` is a path to a profile file: files are completed.
    if ((COMP_CWORD >= 2)) && [[ $cur != -* && $cur != */* ]]; then
        case $sub in
            {subs})
                for ((i = 2; i < COMP_CWORD; i++)); do
                    word="${{COMP_WORDS[i]}}"
                    case $word in
                        --) n=-1; break ;;
                        {values}) [[ ${{COMP_WORDS[i+1]}} == "=" ]] || ((i++)) ;;
                        =) ((i++)) ;;
                        -*) ;;
                        *) ((n++)) ;;
                    esac
                done
                if ((n == 0)) || [[ $sub == check && $n -gt 0 ]]; then
                    case $sub in {runnable}) kinds=runnable ;; esac
                    COMPREPLY=($(compgen -W "$(__antimony_profile_names "$kinds" "$exe")" -- "$cur"))
                    return 0
                fi
                ;;
        esac
    fi
    _antimony "$@"
}}

if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F _antimony_with_profiles -o nosort -o bashdefault -o default antimony
else
    complete -F _antimony_with_profiles -o bashdefault -o default antimony
fi
"#
    )
}

/// zsh: clap_complete writes each subcommand's `_arguments` specs in its own
/// `(NAME)` branch; the profile argument's action (`_default`) becomes
/// `_antimony_profiles`.
fn zsh(base: String) -> String {
    let mut out = String::new();
    let mut current: Option<String> = None;
    for line in base.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            current = Some(name.to_string());
        }
        let sub = current.as_deref().unwrap_or("");
        let kinds = if RUNNABLE.contains(&sub) {
            Some("runnable")
        } else if ANY.contains(&sub) {
            Some("all")
        } else {
            None
        };
        let is_profile_spec = t.starts_with("':profile -- ") || t.starts_with("'*::profiles -- ");
        match kinds {
            Some(k) if is_profile_spec && t.contains(":_default'") => {
                out.push_str(&line.replace(":_default'", &format!(":_antimony_profiles {k}'")));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    // The helper must be defined before the script calls `_antimony` (its
    // last lines), so it goes after the `#compdef` line.
    let helper = r#"
# Profile names, from `antimony list`: with the argument `runnable`, no
# fragments (_arguments passes compadd options before it).
(( $+functions[_antimony_profiles] )) ||
_antimony_profiles() {
    local kinds=all name kind rest first=1
    (( ${@[(I)runnable]} )) && kinds=runnable
    local -a names
    # A path to a profile file.
    if [[ $PREFIX == */* ]]; then
        _files
        return
    fi
    ${~service:-antimony} list 2>/dev/null | while read -r name kind rest; do
        if (( first )); then first=0; continue; fi
        if [[ $kinds == all || $kind == profile ]]; then
            names+=("$name")
        fi
    done
    _wanted profiles expl profile compadd -a names
}
"#;
    match out.split_once('\n') {
        Some((first, rest)) if first.starts_with("#compdef") => {
            format!("{first}\n{helper}{rest}")
        }
        _ => format!("{helper}{out}"),
    }
}

fn fish(base: String) -> String {
    base + &format!(
        r#"
# Profile names, from `antimony list`: $argv[1] is `all` or `runnable` (no fragments).
function __antimony_profiles
    set -l kinds $argv[1]
    set -l exe (commandline -opc)[1]
    set -l first 1
    command $exe list 2>/dev/null | while read -l name kind rest
        if test $first = 1
            set first 0
            continue
        end
        if test "$kinds" = all; or test "$kind" = profile
            echo $name
        end
    end
end

# Whether the command line is `antimony SUB` (SUB one of $argv) still
# waiting for its profile (for `check`: any number of them).
function __antimony_needs_profile
    # A word with a `/` is a path to a profile file.
    string match -q -- '*/*' (commandline -ct); and return 1
    set -l words (commandline -opc)
    test (count $words) -ge 2; or return 1
    set -l sub $words[2]
    contains -- $sub $argv; or return 1
    set -l skip 0
    set -l n 0
    for w in $words[3..-1]
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case --
                return 1
            case {values}
                set skip 1
            case '-*'
            case '*'
                set n (math $n + 1)
        end
    end
    test $sub = check; or test $n = 0
end

complete -c antimony -n '__antimony_needs_profile {runnable}' -f -a '(__antimony_profiles runnable)'
complete -c antimony -n '__antimony_needs_profile {any}' -f -a '(__antimony_profiles all)'
"#,
        values = value_options().join(" "),
        runnable = words(RUNNABLE),
        any = words(ANY),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_the_profile_helper() {
        let zsh = script(CompletionShell::Zsh);
        assert!(zsh.starts_with("#compdef antimony\n"), "{zsh}");
        assert!(zsh.contains(":_antimony_profiles runnable'"), "{zsh}");
        assert!(zsh.contains(":_antimony_profiles all'"), "{zsh}");
        assert!(script(CompletionShell::Bash).contains("complete -F _antimony_with_profiles"));
        assert!(script(CompletionShell::Fish).contains("__antimony_needs_profile run integrate"));
    }
}
