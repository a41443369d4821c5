#!/usr/bin/env bash
# Launch overhead of antimony, measured side by side (issue 7).
#
#   benches/launch.sh              the full run (builds the release binary first)
#   benches/launch.sh --quick      a smoke run: few iterations, small sizes (CI)
#   benches/launch.sh --markdown   also print the results as the README's table
#   benches/launch.sh --against OLD   also time the binary OLD against this one,
#                                  launch by launch in turn (a change's cost)
#
# Options: --bin PATH (the antimony binary to measure; default: a fresh
# `cargo build --release`), --runs N (hyperfine runs per command and round),
# --rounds N (how often the core comparison is repeated; its figures are the
# median of the rounds' medians), --user NAME (the unprivileged account used
# when started as root; default antimony-bench).
#
# What it does, in one run on one machine, as an ordinary user:
#   1. times /bin/true, `unshare` with every namespace, bubblewrap with every
#      namespace (a bare read-only /usr root, and a root equivalent to
#      antimony's minimal sandbox: the same /usr, /etc entries, passwd and
#      group, /proc, /dev, tmpfs folders, read-only root), and `antimony run
#      minimal`, with hyperfine -N (no shell); prints the ratios;
#   1b. a launch with the isolated network (pasta's start and end included)
#      against the same profile without a network, where pasta is installed;
#   2. a blocking pre-hook (/bin/true) against exec'ing /bin/true directly,
#      and an attached pre-hook's effect on the program's start (the program
#      is /usr/bin/date, which prints when it started; both variants
#      interleaved);
#   3. peak resident memory: GNU time's %M of `antimony run minimal` (the
#      largest of antimony and the processes it waited for, which are a fork
#      of it and /usr/bin/true), and antimony's own VmHWM, read from
#      /proc/$PPID/status by a post-hook;
#   4. scaling: profiles with 10/100/1000 binds and 10/100 blocking hooks
#      (per-unit cost = (t(n) - t(minimal)) / n, which should stay flat), and
#      bubblewrap with the same binds for comparison;
#   5. 32 launches at once, all of which must succeed.
# It ends with which of the issue's goals are met. With --against OLD, a
# last section times OLD and the measured binary in turn (the same profiles:
# minimal, a blocking hook, an attached hook's start and whole run) and gives
# the new binary's cost as the median of the paired differences.
#
# Figures are medians (robust to the odd preempted run). Nothing is asserted
# on a time: the harness fails only when something does not work (a launch
# fails, a tool is missing). bubblewrap runs without Landlock and seccomp,
# which antimony applies, so its side of the comparison does less work.
#
# Run as root, it creates the account antimony-bench (unless it exists),
# runs the measurements as that user through setpriv, and deletes the
# account again. Profiles, the copied binary and every file it writes live
# in one temporary folder, removed at the end; HOME and the XDG folders point
# into it, so antimony's state and caches go there too. XDG_RUNTIME_DIR is
# a private folder on /dev/shm (a tmpfs, as /run/user/UID is in a desktop
# session; also removed), since antimony registers each running instance
# there; one row of section 1 shows a launch without it.
#
# Needs: bash, rustc (for benches/interleave.rs), hyperfine, bwrap (bubblewrap), unshare and setpriv
# (util-linux), GNU time (/usr/bin/time), useradd/userdel (passwd) as root.
set -euo pipefail

QUICK=0
MARKDOWN=0
BIN=""
AGAINST=""
RUNS=""
ROUNDS=""
WORKER=""
BUILD=release
BENCH_USER=antimony-bench

die() {
    echo "launch.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while (($#)); do
    case $1 in
    --quick) QUICK=1 ;;
    --markdown) MARKDOWN=1 ;;
    --bin) BIN=${2:?--bin needs a path}; shift ;;
    --against) AGAINST=${2:?--against needs a path}; shift ;;
    --runs) RUNS=${2:?--runs needs a number}; shift ;;
    --rounds) ROUNDS=${2:?--rounds needs a number}; shift ;;
    --user) BENCH_USER=${2:?--user needs a name}; shift ;;
    --worker) WORKER=${2:?}; shift ;; # internal: the measuring half
    --build) BUILD=${2:?}; shift ;;   # internal: release or debug
    -h | --help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

if ((QUICK)); then
    : "${RUNS:=10}" "${ROUNDS:=1}"
    WARMUP=2
    BIND_SIZES=(10 100)
    HOOK_SIZES=(5 20)
    SCALE_RUNS=5
    HOOK_PAIRS=10
    START_PAIRS=5
    CONCURRENT_ROUNDS=1
else
    : "${RUNS:=300}" "${ROUNDS:=3}"
    WARMUP=20
    BIND_SIZES=(10 100 1000)
    HOOK_SIZES=(10 100)
    SCALE_RUNS=100
    HOOK_PAIRS=600
    START_PAIRS=400
    CONCURRENT_ROUNDS=5
fi
CONCURRENT=32

# ---------------------------------------------------------------------------
# The first half: tools, binary, temporary folder, the unprivileged user.
# ---------------------------------------------------------------------------
if [ -z "$WORKER" ]; then
    for tool in hyperfine bwrap unshare setpriv; do
        command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install hyperfine bubblewrap util-linux)"
    done
    [ -x /usr/bin/time ] || die "GNU time is not installed (apt-get install time)"
    repo=$(cd "$(dirname "$0")/.." && pwd)
    if [ -z "$BIN" ]; then
        echo "building the release binary (cargo build --release)…" >&2
        (cd "$repo" && cargo build --release --quiet --bin antimony)
        BIN=$repo/target/release/antimony
    fi
    [ -x "$BIN" ] || die "$BIN is not an executable"

    T=""
    RT=""
    created_user=0
    cleanup() {
        local rc=$?
        local d
        for d in "$T" "$RT"; do
            if [ -n "$d" ] && [ -d "$d" ]; then
                chmod -R u+w "$d" 2>/dev/null || true
                rm -rf "$d"
            fi
        done
        if ((created_user)); then
            userdel "$BENCH_USER" 2>/dev/null || echo "launch.sh: could not delete the user $BENCH_USER" >&2
        fi
        exit "$rc"
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    T=$(mktemp -d /tmp/antimony-bench.XXXXXX)
    chmod 755 "$T"
    # The runtime folder on a tmpfs, as in a desktop session.
    RT=""
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        RT=$(mktemp -d /dev/shm/antimony-bench-run.XXXXXX)
    fi
    mkdir "$T/bin" "$T/w"
    cp "$BIN" "$T/bin/antimony"
    cp "$0" "$T/bin/launch.sh"
    # The interleaving timer (std only: rustc alone builds it).
    rustc --edition 2024 -O -o "$T/bin/interleave" "$repo/benches/interleave.rs" ||
        die "could not build benches/interleave.rs"
    chmod 755 "$T/bin/antimony" "$T/bin/launch.sh" "$T/bin/interleave"
    if [ -n "$AGAINST" ]; then
        [ -x "$AGAINST" ] || die "$AGAINST (--against) is not an executable"
        cp "$AGAINST" "$T/bin/antimony-old"
        chmod 755 "$T/bin/antimony-old"
    fi
    profile=release
    case $BIN in */debug/*) profile=debug ;; esac

    args=(--worker "$T" --runs "$RUNS" --rounds "$ROUNDS" --build "$profile")
    ((QUICK)) && args+=(--quick)
    ((MARKDOWN)) && args+=(--markdown)
    [ -z "$AGAINST" ] || args+=(--against "$T/bin/antimony-old")
    if [ "$(id -u)" -eq 0 ]; then
        if ! id -u "$BENCH_USER" >/dev/null 2>&1; then
            useradd --no-create-home --user-group --shell /usr/sbin/nologin \
                --comment "antimony benchmarks" "$BENCH_USER" ||
                die "could not create the user $BENCH_USER"
            created_user=1
        fi
        uid=$(id -u "$BENCH_USER")
        [ "$uid" -ne 0 ] || die "$BENCH_USER is root"
        chown -R "$BENCH_USER:" "$T/w"
        [ -z "$RT" ] || chown "$BENCH_USER:" "$RT"
        set +e
        (cd "$T/w" && setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --init-groups \
            env -i HOME="$T/w/home" USER="$BENCH_USER" LOGNAME="$BENCH_USER" ${RT:+XDG_RUNTIME_DIR="$RT"} \
            PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
            bash "$T/bin/launch.sh" "${args[@]}")
        rc=$?
        set -e
    else
        set +e
        (cd "$T/w" && env -i HOME="$T/w/home" USER="$(id -un)" LOGNAME="$(id -un)" ${RT:+XDG_RUNTIME_DIR="$RT"} \
            PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
            bash "$T/bin/launch.sh" "${args[@]}")
        rc=$?
        set -e
    fi
    exit "$rc"
fi

# ---------------------------------------------------------------------------
# The second half, as the unprivileged user: the measurements.
# ---------------------------------------------------------------------------
T=$WORKER
W=$T/w
A=$T/bin/antimony
IV=$T/bin/interleave
P=$W/profiles
mkdir -p "$HOME" "$P" "$W/out"
cd "$W"
UID_=$(id -u)
GID_=$(id -g)

# --- helpers ---------------------------------------------------------------

ms() { awk -v s="$1" 'BEGIN { printf "%.2f", s * 1000 }'; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
# a difference with its sign: +0.05, -0.01
signed() { awk -v v="$1" 'BEGIN { printf (v < 0 ? "%.2f" : "+%.2f"), v }'; }
# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

declare -A MED    # name → median, ms
declare -A ROUND  # name → per-round medians, ms

# hf RUNS WARMUP NAME CMD [NAME CMD]…: hyperfine -N; medians into MED.
hf() {
    local runs=$1 warm=$2 csv=$W/out/hf.csv
    shift 2
    local names=() cmds=()
    while (($#)); do
        names+=(-n "$1")
        cmds+=("$2")
        shift 2
    done
    if ! hyperfine -N --style none --runs "$runs" --warmup "$warm" --export-csv "$csv" \
        "${names[@]}" "${cmds[@]}" >"$W/out/hf.log" 2>&1; then
        cat "$W/out/hf.log" >&2
        die "a benchmarked command failed (see above)"
    fi
    local name median
    while IFS=, read -r name _ _ median _; do
        [ "$name" = command ] && continue
        MED[$name]=$(ms "$median")
    done <"$csv"
}

# check NAME CMD…: runs it once; fails the harness with its output if it fails.
check() {
    local name=$1
    shift
    if ! "$@" >"$W/out/check.log" 2>&1; then
        echo "launch.sh: $name does not work:" >&2
        printf '  %q' "$@" >&2
        echo >&2
        sed 's/^/  | /' "$W/out/check.log" >&2
        exit 1
    fi
}

row() { printf '  %-34s %10s  %s\n' "$@"; }

# --- the commands ------------------------------------------------------------

TRUE=/bin/true
UNSHARE="unshare -Urmpif --mount-proc -n -u -C /bin/true"

# bubblewrap with a bare read-only root (the issue's reference).
usr_links=()
for n in bin sbin lib lib32 lib64 libx32; do
    if [ -L "/$n" ]; then
        usr_links+=(--symlink "$(readlink "/$n")" "/$n")
    elif [ -d "/$n" ]; then
        usr_links+=(--ro-bind "/$n" "/$n")
    fi
done
BWRAP_MIN="bwrap --unshare-all --die-with-parent --new-session --ro-bind /usr /usr ${usr_links[*]} --proc /proc --dev /dev --tmpfs /tmp /bin/true"

# bubblewrap with antimony's minimal sandbox (src/plan/mounts.rs: base()):
# the same /usr, /etc entries, passwd and group holding only root, the user
# and nobody, /proc, /dev with its nodes, devpts and shm, private /tmp,
# /var/tmp, /run/user/UID and home, then a read-only root. What it lacks:
# Landlock and seccomp.
etc_entries=(alternatives bash.bashrc debian_version environment fonts gai.conf host.conf
    hostname hosts inputrc ld.so.cache ld.so.conf ld.so.conf.d locale.alias locale.conf
    localtime lsb-release machine-id mime.types nsswitch.conf os-release profile protocols
    services shells terminfo timezone xdg)
{
    grep -E "^[^:]*:[^:]*:(0|$UID_|65534):" /etc/passwd || true
} >"$W/passwd"
{
    grep -E "^[^:]*:[^:]*:(0|$GID_|65534):" /etc/group | cut -d: -f1-3 | sed 's/$/:/' || true
} >"$W/group"
bw_etc=()
for e in "${etc_entries[@]}"; do
    [ -e "/etc/$e" ] && bw_etc+=(--ro-bind "/etc/$e" "/etc/$e")
done
BWRAP="bwrap --unshare-all --die-with-parent --new-session --ro-bind /usr /usr ${usr_links[*]} ${bw_etc[*]}"
BWRAP+=" --ro-bind $W/passwd /etc/passwd --ro-bind $W/group /etc/group --symlink ../proc/self/mounts /etc/mtab"
BWRAP+=" --proc /proc --dev /dev --tmpfs /dev/shm --tmpfs /tmp --tmpfs /var/tmp --tmpfs /run/user/$UID_"
BWRAP+=" --tmpfs $HOME --remount-ro / /bin/true"

ANTIMONY="$A run minimal"

# --- profiles ------------------------------------------------------------------

# The hooks' baseline: the same profile file without the hook (reading a
# profile from a file is not the hook's cost).
cat >"$P/hook-none.toml" <<'EOF'
inherits = ["minimal"]
path = "/usr/bin/true"
EOF
cat >"$P/hook-block.toml" <<'EOF'
inherits = ["minimal"]
path = "/usr/bin/true"
[[hooks.pre]]
path = "/bin/true"
EOF
cat >"$P/hook-attach.toml" <<'EOF'
inherits = ["minimal"]
path = "/usr/bin/true"
[[hooks.pre]]
path = "/bin/sleep"
arguments = ["60"]
attach = true
EOF
# Prints antimony's own peak resident size (its parent's VmHWM), with bash
# built-ins only.
cat >"$P/peak.toml" <<'EOF'
inherits = ["minimal"]
path = "/usr/bin/true"
[[hooks.post]]
content = 'while read -r k v _; do case $k in Name:|VmHWM:) echo "$k $v";; esac; done < /proc/$PPID/status'
EOF
# The isolated network (pasta started, waited for and ended with the
# sandbox), against the same profile without a network: only where pasta
# is installed (section 1b).
HAVE_PASTA=0
if command -v pasta >/dev/null || [ -x /usr/bin/pasta ]; then
    HAVE_PASTA=1
    cat >"$P/net-isolated.toml" <<'EOF'
inherits = ["minimal"]
path = "/usr/bin/true"
[sandbox]
network = "isolated"
EOF
fi
mkdir -p "$W/binds"
max_binds=${BIND_SIZES[-1]}
for ((i = 0; i < max_binds; i++)); do mkdir "$W/binds/$i"; done
for n in "${BIND_SIZES[@]}"; do
    {
        echo 'inherits = ["minimal"]'
        echo 'path = "/usr/bin/true"'
        echo '[files]'
        echo 'ro = ['
        for ((i = 0; i < n; i++)); do echo "  \"$W/binds/$i=/bench/$i\","; done
        echo ']'
    } >"$P/binds-$n.toml"
    args=""
    for ((i = 0; i < n; i++)); do args+=" --ro-bind $W/binds/$i /bench/$i"; done
    declare "BWRAP_BINDS_$n=bwrap --unshare-all --die-with-parent --new-session --ro-bind /usr /usr ${usr_links[*]} --proc /proc --dev /dev --tmpfs /tmp$args /bin/true"
done
for n in "${HOOK_SIZES[@]}"; do
    {
        echo 'inherits = ["minimal"]'
        echo 'path = "/usr/bin/true"'
        for ((i = 0; i < n; i++)); do printf '[[hooks.pre]]\npath = "/bin/true"\n'; done
    } >"$P/hooks-$n.toml"
done

# --- does everything work? ----------------------------------------------------

check "/bin/true" $TRUE
check "unshare" $UNSHARE
check "bubblewrap (bare root)" $BWRAP_MIN
check "bubblewrap (antimony's root)" $BWRAP
check "antimony run minimal" $ANTIMONY
for f in "$P"/*.toml; do check "antimony run $(basename "$f")" "$A" run "$f"; done

mode=""
((QUICK)) && mode=", quick mode"
echo "antimony launch benchmark ($BUILD build$mode)"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
echo "  machine: ${cpu:-unknown CPU}, $(nproc) cores, Linux $(uname -r), Debian $(cat /etc/debian_version 2>/dev/null || echo ?)"
echo "  as: $(id -un) (uid $UID_), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  hyperfine -N, $RUNS runs per command and round, $ROUNDS round(s); figures are medians"
[ "$BUILD" = release ] || echo "  (not a release build: the figures say nothing about performance)"
echo

# --- 1. side by side -------------------------------------------------------------

CORE=(true unshare bwrap-bare bwrap antimony)
for ((r = 1; r <= ROUNDS; r++)); do
    hf "$RUNS" "$WARMUP" true "$TRUE" unshare "$UNSHARE" bwrap-bare "$BWRAP_MIN" bwrap "$BWRAP" antimony "$ANTIMONY"
    for n in "${CORE[@]}"; do ROUND[$n]+=" ${MED[$n]}"; done
done
for n in "${CORE[@]}"; do
    # shellcheck disable=SC2086
    MED[$n]=$(median ${ROUND[$n]})
done
t_true=${MED[true]} t_unshare=${MED[unshare]} t_bwrap_bare=${MED[bwrap-bare]} t_bwrap=${MED[bwrap]} t_antimony=${MED[antimony]}
r_bwrap=$(calc "$t_antimony / $t_bwrap")
r_bwrap_bare=$(calc "$t_antimony / $t_bwrap_bare")
r_unshare=$(calc "$t_antimony / $t_unshare")

# The same launch without a runtime folder: antimony then registers the
# instance under $TMPDIR (here: inside the temporary folder, on the disk
# that holds /tmp). Informational; its own hyperfine run, so compare it
# with a grain of salt.
t_nort=""
if [ -n "${XDG_RUNTIME_DIR:-}" ]; then
    mkdir -p "$W/tmpdir"
    if env -u XDG_RUNTIME_DIR TMPDIR="$W/tmpdir" \
        hyperfine -N --style none --runs "$RUNS" --warmup "$WARMUP" --export-csv "$W/out/nort.csv" \
        -n antimony "$ANTIMONY" >"$W/out/hf.log" 2>&1; then
        t_nort=$(ms "$(awk -F, '$1 == "antimony" { print $4 }' "$W/out/nort.csv")")
    else
        cat "$W/out/hf.log" >&2
        die "antimony run minimal fails without XDG_RUNTIME_DIR"
    fi
fi

echo "1. Launching /bin/true (median ms; per-round medians in brackets)"
row "/bin/true" "$t_true" "[${ROUND[true]# }]"
row "unshare, every namespace" "$t_unshare" "[${ROUND[unshare]# }]"
row "bwrap, bare read-only root" "$t_bwrap_bare" "[${ROUND[bwrap-bare]# }]"
row "bwrap, antimony's minimal root" "$t_bwrap" "[${ROUND[bwrap]# }]"
row "antimony run minimal" "$t_antimony" "[${ROUND[antimony]# }]"
[ -z "$t_nort" ] || row "  same, XDG_RUNTIME_DIR unset" "$t_nort" "(instance registry on $(df --output=fstype "$W" | tail -n1) instead of tmpfs)"
echo "  ratios: antimony/bwrap = $r_bwrap (bare root: $r_bwrap_bare), antimony/unshare = $r_unshare"
echo

# --- 1b. the isolated network ------------------------------------------------------

t_net=""
net_cost=""
if ((HAVE_PASTA)); then
    hf "$RUNS" "$WARMUP" no-network "$A run $P/hook-none.toml" isolated "$A run $P/net-isolated.toml"
    t_net=${MED[isolated]}
    net_cost=$(calc "${MED[isolated]} - ${MED[no-network]}")
    echo "1b. The isolated network (network = \"isolated\": pasta's start and end included)"
    row "no network" "${MED[no-network]}" ""
    row "isolated network" "$t_net" "($(signed "$net_cost") ms)"
else
    echo "1b. The isolated network: not measured (pasta is not installed: apt-get install passt)"
fi
echo

# --- 2. hooks ---------------------------------------------------------------------

# The blocking hook's cost: launches of the same profile file with and
# without the hook, one at a time in turn (the machine drifts more than the
# cost is big, and hyperfine runs one command after the other), spawned
# directly as hyperfine -N does (benches/interleave.rs); the cost is the
# median of the paired differences (each launch with the hook minus the one
# without it just before: the drift between rounds cancels out), its third
# line. "exec'ing that hook" is /bin/true by hyperfine -N in section 1.
"$IV" "$HOOK_PAIRS" ::: "$A" run "$P/hook-none.toml" ::: "$A" run "$P/hook-block.toml" >"$W/out/hook.txt" ||
    die "antimony run hook-none.toml or hook-block.toml failed"
MED[none]=$(sed -n 1p "$W/out/hook.txt" | cut -d' ' -f1)
MED[block]=$(sed -n 2p "$W/out/hook.txt" | cut -d' ' -f1)
hook_cost=$(sed -n 3p "$W/out/hook.txt" | cut -d' ' -f1)
hook_cost=$(calc "$hook_cost")
hook_budget=$(calc "${MED[true]} + 0.3")

# The attached hook: when does the program start? /usr/bin/date inside the
# sandbox prints the wall-clock time of its start; the timer notes when it
# launched antimony. The same profile file with and without the hook, in
# turn; then the whole launches, in turn too. Costs: medians of the paired
# differences, as above.
D=(--program /usr/bin/date -- +%s.%N)
"$IV" "$START_PAIRS" --start ::: "$A" run "$P/hook-none.toml" "${D[@]}" ::: "$A" run "$P/hook-attach.toml" "${D[@]}" \
    >"$W/out/start.txt" || die "antimony run hook-none.toml or hook-attach.toml failed"
"$IV" "$START_PAIRS" ::: "$A" run "$P/hook-none.toml" ::: "$A" run "$P/hook-attach.toml" \
    >"$W/out/whole.txt" || die "antimony run hook-none.toml or hook-attach.toml failed"
sp=$(sed -n 1p "$W/out/start.txt" | cut -d' ' -f1) sa=$(sed -n 2p "$W/out/start.txt" | cut -d' ' -f1)
tp=$(sed -n 1p "$W/out/whole.txt" | cut -d' ' -f1) ta=$(sed -n 2p "$W/out/whole.txt" | cut -d' ' -f1)
attach_cost=$(calc "$(sed -n 3p "$W/out/start.txt" | cut -d' ' -f1)")
attach_total=$(calc "$(sed -n 3p "$W/out/whole.txt" | cut -d' ' -f1)")

echo "2. Hooks (median ms)"
row "exec /bin/true directly" "${MED[true]}"
row "antimony run (a file: minimal)" "$(calc "${MED[none]}")" "(the hooks' baseline: the same profile file without the hook)"
row "with a blocking pre-hook /bin/true" "$(calc "${MED[block]}")" "hook cost $hook_cost ms ($HOOK_PAIRS launches each, in turn; goal ≤ exec + 0.3 = $hook_budget)"
row "program start, no hook" "$(calc "$sp")" "($START_PAIRS launches each, interleaved)"
row "program start, attached hook" "$(calc "$sa")" "attached hook delays the start by $attach_cost ms (median of paired differences)"
row "whole run, attached hook" "$(calc "$ta")" "vs $(calc "$tp") without: $(signed "$attach_total") ms (ending the hook)"
echo

# --- 3. memory ------------------------------------------------------------------------

maxrss() { # the largest %M (KiB) of 5 runs
    local m=0 v
    for _ in 1 2 3 4 5; do
        v=$(/usr/bin/time -f %M -o "$W/out/time" "$@" >/dev/null 2>&1 && tail -n1 "$W/out/time") ||
            die "$* failed under /usr/bin/time"
        ((v > m)) && m=$v
    done
    echo "$m"
}
rss_antimony=$(maxrss $ANTIMONY)
rss_bwrap=$(maxrss $BWRAP)
rss_unshare=$(maxrss $UNSHARE)
rss_true=$(maxrss $TRUE)
hwm=0
hwm_name=""
for _ in 1 2 3 4 5; do
    out=$("$A" run "$P/peak.toml")
    name=$(awk '$1 == "Name:" { print $2 }' <<<"$out")
    v=$(awk '$1 == "VmHWM:" { print $2 }' <<<"$out")
    hwm_name=$name
    [ -n "$v" ] && ((v > hwm)) && hwm=$v
done
if [ "$hwm_name" != antimony ]; then
    hwm_note="(the post-hook's parent is \"$hwm_name\", not antimony: not measured)"
    hwm=""
else
    hwm_note="antimony's own VmHWM, read by a post-hook"
fi
rss_goal=4096

echo "3. Peak resident memory (KiB, largest of 5 runs)"
row "antimony run minimal (%M)" "$rss_antimony" "GNU time: antimony and the processes it waited for"
row "antimony's own process" "${hwm:-—}" "$hwm_note"
row "bwrap, antimony's minimal root" "$rss_bwrap"
row "unshare" "$rss_unshare"
row "/bin/true" "$rss_true"
echo

# --- 4. scaling --------------------------------------------------------------------------

cmds=(minimal "$ANTIMONY")
for n in "${BIND_SIZES[@]}"; do cmds+=("binds-$n" "$A run $P/binds-$n.toml"); done
for n in "${HOOK_SIZES[@]}"; do cmds+=("hooks-$n" "$A run $P/hooks-$n.toml"); done
hf "$SCALE_RUNS" 3 "${cmds[@]}"
declare -A SCALE
for n in "${BIND_SIZES[@]}"; do SCALE[binds-$n]=${MED[binds-$n]}; done
for n in "${HOOK_SIZES[@]}"; do SCALE[hooks-$n]=${MED[hooks-$n]}; done
t0=${MED[minimal]}

# bubblewrap with the same binds (it re-reads the mount table per bind, so
# its largest size gets only a few runs).
bw_cmds=(bwrap-bare "$BWRAP_MIN")
for n in "${BIND_SIZES[@]}"; do
    v=BWRAP_BINDS_$n
    check "bubblewrap with $n binds" ${!v}
    ((n >= 1000)) || bw_cmds+=("bwrap-binds-$n" "${!v}")
done
hf "$SCALE_RUNS" 3 "${bw_cmds[@]}"
for n in "${BIND_SIZES[@]}"; do
    v=BWRAP_BINDS_$n
    ((n < 1000)) || hf 5 1 "bwrap-binds-$n" "${!v}"
done

per_unit() { calc "($1 - $2) / $3 * 1000"; } # µs per unit
echo "4. Scaling (median ms; per unit = (t(n) - t(none)) / n, in µs)"
printf '  %-24s %10s %12s   %-22s %10s %12s\n' "antimony" "ms" "µs per unit" "bwrap" "ms" "µs per unit"
printf '  %-24s %10s %12s   %-22s %10s %12s\n' "minimal (no binds)" "$t0" "" "bare root (no binds)" "${MED[bwrap-bare]}" ""
for n in "${BIND_SIZES[@]}"; do
    printf '  %-24s %10s %12s   %-22s %10s %12s\n' "$n binds" "${SCALE[binds-$n]}" "$(per_unit "${SCALE[binds-$n]}" "$t0" "$n")" \
        "$n binds" "${MED[bwrap-binds-$n]}" "$(per_unit "${MED[bwrap-binds-$n]}" "${MED[bwrap-bare]}" "$n")"
done
for n in "${HOOK_SIZES[@]}"; do
    printf '  %-24s %10s %12s\n' "$n blocking hooks" "${SCALE[hooks-$n]}" "$(per_unit "${SCALE[hooks-$n]}" "$t0" "$n")"
done
# Flatness: the per-unit cost at the largest size over that at the next
# size down (100 → 1000 binds, 10 → 100 hooks in the full run). The
# smallest size's per-unit figure is printed, but with 10 binds the
# difference to no binds is within the noise.
flat() { # flat T_LARGE T_SMALL T0 N_LARGE N_SMALL → ratio, or "n/a"
    awk -v tl="$1" -v ts="$2" -v t0="$3" -v nl="$4" -v ns="$5" 'BEGIN {
        ul = (tl - t0) / nl; us = (ts - t0) / ns
        if (us <= 0) print "n/a"; else printf "%.2f", ul / us }'
}
b_large=${BIND_SIZES[-1]} b_small=${BIND_SIZES[-2]}
h_large=${HOOK_SIZES[-1]} h_small=${HOOK_SIZES[-2]}
bind_flat=$(flat "${SCALE[binds-$b_large]}" "${SCALE[binds-$b_small]}" "$t0" "$b_large" "$b_small")
hook_flat=$(flat "${SCALE[hooks-$h_large]}" "${SCALE[hooks-$h_small]}" "$t0" "$h_large" "$h_small")
bw_flat=$(flat "${MED[bwrap-binds-$b_large]}" "${MED[bwrap-binds-$b_small]}" "${MED[bwrap-bare]}" "$b_large" "$b_small")
echo "  per-unit cost, $b_large vs $b_small binds: ×$bind_flat (bwrap: ×$bw_flat); $h_large vs $h_small hooks: ×$hook_flat"
echo

# --- 5. concurrency ---------------------------------------------------------------------------

echo "5. $CONCURRENT launches at once ($CONCURRENT_ROUNDS round(s))"
conc_ok=1
conc_walls=()
for ((r = 1; r <= CONCURRENT_ROUNDS; r++)); do
    pids=()
    t0c=$EPOCHREALTIME
    for ((i = 0; i < CONCURRENT; i++)); do
        $ANTIMONY >"$W/out/c$i.log" 2>&1 &
        pids+=($!)
    done
    ok=0
    for i in "${!pids[@]}"; do
        if wait "${pids[$i]}"; then
            ok=$((ok + 1))
        else
            echo "  launch $i failed:" >&2
            sed 's/^/  | /' "$W/out/c$i.log" >&2
        fi
    done
    wall=$(awk -v a="$t0c" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
    conc_walls+=("$wall")
    echo "  round $r: $ok of $CONCURRENT succeeded, $wall ms for all"
    ((ok == CONCURRENT)) || conc_ok=0
done
echo

# --- old against new ------------------------------------------------------------------------

if [ -n "$AGAINST" ]; then
    echo "6. The old binary (--against) and this one, launch by launch in turn (median ms)"
    versus() { # NAME ARGS… : OLD and NEW with the same arguments, in turn
        local name=$1
        shift
        "$IV" "$HOOK_PAIRS" "$@" >"$W/out/versus.txt" || die "$name failed with one of the binaries"
        local old new diff
        old=$(calc "$(sed -n 1p "$W/out/versus.txt" | cut -d' ' -f1)")
        new=$(calc "$(sed -n 2p "$W/out/versus.txt" | cut -d' ' -f1)")
        diff=$(signed "$(calc "$(sed -n 3p "$W/out/versus.txt" | cut -d' ' -f1)")")
        row "$name" "$old → $new" "new − old: $diff ms ($HOOK_PAIRS launches each)"
    }
    O=$T/bin/antimony-old
    versus "run minimal" ::: "$O" run minimal ::: "$A" run minimal
    versus "a blocking hook" ::: "$O" run "$P/hook-block.toml" ::: "$A" run "$P/hook-block.toml"
    versus "an attached hook: program start" --start ::: "$O" run "$P/hook-attach.toml" "${D[@]}" ::: "$A" run "$P/hook-attach.toml" "${D[@]}"
    versus "an attached hook: whole run" ::: "$O" run "$P/hook-attach.toml" ::: "$A" run "$P/hook-attach.toml"
    echo
fi

# --- goals -------------------------------------------------------------------------------------

verdict() { if "$@"; then echo "met"; else echo "NOT met"; fi; }
g_ratio=$(verdict le "$r_bwrap" 0.8)
g_hook=$(verdict le "$hook_cost" "$hook_budget")
g_attach=$(verdict le "$attach_cost" 0.1)
if [ -n "$hwm" ]; then
    g_rss=$(verdict le "$hwm" "$rss_goal")
    rss_fig="$hwm KiB (own), $rss_antimony KiB (%M)"
else
    g_rss=$(verdict le "$rss_antimony" "$rss_goal")
    rss_fig="$rss_antimony KiB (%M)"
fi
g_binds=$(verdict le "$bind_flat" 2)
g_hooks=$(verdict le "$hook_flat" 2)
[ "$bind_flat" != n/a ] || g_binds="not measured"
[ "$hook_flat" != n/a ] || g_hooks="not measured"
g_conc=$(verdict test "$conc_ok" -eq 1)

if ((QUICK)); then
    echo "Goals (issue 7) -- quick mode: too few runs for these verdicts to mean much"
else
    echo "Goals (issue 7)"
fi
row "antimony ≤ 0.8× bwrap" "$g_ratio" "antimony/bwrap = $r_bwrap ($t_antimony vs $t_bwrap ms); /unshare = $r_unshare"
row "blocking hook ≤ exec + 0.3 ms" "$g_hook" "$hook_cost ms vs $hook_budget ms"
row "attached hook adds nothing" "$g_attach" "$(signed "$attach_cost") ms to the program's start (met: ≤ 0.1 ms)"
row "peak RSS ≤ 4 MiB" "$g_rss" "$rss_fig"
row "binds scale linearly" "$g_binds" "per-bind cost ×$bind_flat from $b_small to $b_large (met: ≤ ×2)"
row "hooks scale linearly" "$g_hooks" "per-hook cost ×$hook_flat from $h_small to $h_large (met: ≤ ×2)"
row "$CONCURRENT launches at once succeed" "$g_conc" "wall time per round: ${conc_walls[*]} ms"

if ((MARKDOWN)); then
    echo
    echo "| Launching \`/bin/true\`, as an ordinary user | median |"
    echo "|---|---:|"
    echo "| \`/bin/true\` | $t_true ms |"
    echo "| \`unshare -Urmpif --mount-proc -n -u -C\` | $t_unshare ms |"
    echo "| bubblewrap, every namespace, bare read-only root | $t_bwrap_bare ms |"
    echo "| bubblewrap, every namespace, antimony's minimal root | $t_bwrap ms |"
    echo "| \`antimony run minimal\` | $t_antimony ms |"
    [ -z "$t_net" ] || echo "| the same, \`network = \"isolated\"\` (pasta started and ended) | $t_net ms ($(signed "$net_cost") ms) |"
    echo
    echo "| Goal | Measured | |"
    echo "|---|---|---|"
    echo "| antimony ≤ 0.8× bubblewrap | $r_bwrap× bubblewrap ($r_bwrap_bare× with a bare root), $r_unshare× unshare | $g_ratio |"
    echo "| blocking hook ≤ exec + 0.3 ms | $hook_cost ms (exec: ${MED[true]} ms) | $g_hook |"
    echo "| attached hook adds nothing to the start | $(signed "$attach_cost") ms | $g_attach |"
    echo "| launcher peak RSS ≤ 4 MiB | $rss_fig | $g_rss |"
    echo "| 1,000 binds: per-bind cost flat | ×$bind_flat ($b_small → $b_large binds; bubblewrap ×$bw_flat) | $g_binds |"
    echo "| 100 hooks: per-hook cost flat | ×$hook_flat ($h_small → $h_large hooks) | $g_hooks |"
    echo "| $CONCURRENT launches at once all succeed | ${conc_walls[*]} ms per batch | $g_conc |"
fi

((conc_ok)) || die "some of the concurrent launches failed"
exit 0
