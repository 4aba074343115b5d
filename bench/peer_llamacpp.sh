#!/usr/bin/env bash
# Peer comparison in one run (issue 8, item 5): the SAME GGUF file timed by llama.cpp (the prebuilt CPU
# library of node-llama-cpp, from npm) and by `llama-cli bench`, interleaved round by round
# (ours, theirs, ours, theirs, ...) on this machine, with the medians and ours/llama.cpp ratios.
#
#   bench/peer_llamacpp.sh [--cli build/llama-cli] [--models llama-3.2-1b:bf16,llama-3.2-1b:q8_0,...]
#                          [--gguf FILE.gguf]... [--rounds 5] [--repeat 2] [--warm-runs 1] [--prompt 128] [--gen 64]
#                          [--threads 2] [--flash-attn auto|on|off] [--cpu-kernels K] [--workdir build/peer]
#                          [--reconvert] [--no-random] [--quiet-wait 120] [--quiet-idle 85] [--max-others 10]
#
# Random-weight GGUF files are written with `llama-cli convert --to gguf --random-weights PRESET --dtype D`
# into WORKDIR/models (again whenever llama-cli is newer than the file, or with --reconvert).
# node-llama-cpp is installed into WORKDIR/npm if missing (pinned; it never builds or downloads llama.cpp).
# The machine is shared: before every timed process the script waits (up to --quiet-wait seconds) until
# the CPUs were at least --quiet-idle % idle over one second, and records the idle share it saw; with 2
# threads on 2 busy cores llama.cpp's spinning thread barrier collapses (10x slower decode), so figures
# taken on a busy machine compare contention handling, not kernels. Each process's figures are also
# tagged with the share of the CPUs other processes used while it ran; the medians use only runs where
# that stayed within --max-others % (all runs, flagged, when none did).
# Every process (both sides) runs --warm-runs + --repeat times; the first --warm-runs runs of every
# process are left out of the medians on both sides (llama.cpp's first prefill and decode in a process
# are several times slower than the next ones, even after a one-token warm-up pass).
# Exit status: 0 when every model ran on both sides; 1 when llama.cpp (or we) could not load a file
# (llama.cpp's own messages are printed: a file it rejects is not llama.cpp-compatible); 2 on bad usage.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
NLC_VERSION=3.21.1

cli="$root/build/llama-cli"
models="llama-3.2-1b:bf16,llama-3.2-1b:q8_0,llama-3.2-1b:q4_k,qwen3-0.6b:bf16"
ggufs=()
rounds=5
repeat=2
warm=1
prompt=128
gen=64
threads=2
flash_attn=auto
cpu_kernels=""
workdir="$root/build/peer"
reconvert=0
quiet_wait=120
quiet_idle=85
max_others=10

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
die() { echo "peer_llamacpp.sh: $*" >&2; exit 2; }
need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --cli) need "$@"; cli=$2; shift 2 ;;
        --models) need "$@"; models=$2; shift 2 ;;
        --no-random) models=""; shift ;;
        --gguf) need "$@"; ggufs+=("$2"); shift 2 ;;
        --rounds) need "$@"; rounds=$2; shift 2 ;;
        --repeat) need "$@"; repeat=$2; shift 2 ;;
        --warm-runs) need "$@"; warm=$2; shift 2 ;;
        --prompt) need "$@"; prompt=$2; shift 2 ;;
        --gen) need "$@"; gen=$2; shift 2 ;;
        --threads) need "$@"; threads=$2; shift 2 ;;
        --flash-attn) need "$@"; flash_attn=$2; shift 2 ;;
        --cpu-kernels) need "$@"; cpu_kernels=$2; shift 2 ;;
        --workdir) need "$@"; workdir=$2; shift 2 ;;
        --reconvert) reconvert=1; shift ;;
        --quiet-wait) need "$@"; quiet_wait=$2; shift 2 ;;
        --quiet-idle) need "$@"; quiet_idle=$2; shift 2 ;;
        --max-others) need "$@"; max_others=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option '$1' (--help lists them)" ;;
    esac
done
[[ $warm =~ ^[0-9]+$ ]] || die "--warm-runs needs a count, not '$warm'"
[[ $max_others =~ ^[0-9]+$ ]] || die "--max-others needs a percentage, not '$max_others'"
[[ $quiet_wait =~ ^[0-9]+$ ]] || die "--quiet-wait needs seconds, not '$quiet_wait'"
[[ $quiet_idle =~ ^[0-9]+$ ]] && [ "$quiet_idle" -le 100 ] || die "--quiet-idle needs a percentage, not '$quiet_idle'"
for n in rounds repeat prompt gen threads; do
    [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "--$n needs a positive integer, not '${!n}'"
done
case "$flash_attn" in auto|on|off) ;; *) die "--flash-attn must be auto, on or off" ;; esac
[ -x "$cli" ] || die "no llama-cli at $cli (build it, or pass --cli PATH)"
command -v node >/dev/null || die "node is needed for the llama.cpp side"
command -v npm >/dev/null || die "npm is needed to install node-llama-cpp"
[ -n "$models" ] || [ ${#ggufs[@]} -gt 0 ] || die "nothing to compare (--models is empty and no --gguf)"
mkdir -p "$workdir/models" "$workdir/npm"
workdir=$(cd "$workdir" && pwd)

# ---- llama.cpp: node-llama-cpp's prebuilt CPU library ---------------------------------------------
npm_dir="$workdir/npm"
have=$(node -e 'try{console.log(require(process.argv[1]).version)}catch{console.log("")}' \
    "$npm_dir/node_modules/node-llama-cpp/package.json")
if [ "$have" != "$NLC_VERSION" ] || [ ! -d "$npm_dir/node_modules/@node-llama-cpp/linux-x64/bins" ]; then
    echo "installing node-llama-cpp@$NLC_VERSION into $npm_dir ..." >&2
    [ -f "$npm_dir/package.json" ] || echo '{"name":"llamac-peer-bench","private":true}' >"$npm_dir/package.json"
    # SKIP_DOWNLOAD: the postinstall step must neither download nor compile llama.cpp; the prebuilt
    # binary ships inside @node-llama-cpp/linux-x64.
    (cd "$npm_dir" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund \
        "node-llama-cpp@$NLC_VERSION" "@node-llama-cpp/linux-x64@$NLC_VERSION" --omit=optional >&2) ||
        { echo "peer_llamacpp.sh: npm install of node-llama-cpp@$NLC_VERSION failed" >&2; exit 1; }
fi

# ---- the GGUF files --------------------------------------------------------------------------------
labels=() files=() shapes=() dtypes=() failures=()
if [ -n "$models" ]; then
    IFS=, read -r -a specs <<<"$models"
    for spec in "${specs[@]}"; do
        [[ $spec =~ ^([A-Za-z0-9._-]+):(bf16|f16|f32|q8_0|q4_k)$ ]] ||
            die "--models entries are PRESET:DTYPE (dtype bf16, f16, f32, q8_0 or q4_k), not '$spec'"
        preset=${BASH_REMATCH[1]} dtype=${BASH_REMATCH[2]}
        f="$workdir/models/$preset-$dtype.gguf"
        if [ $reconvert = 1 ] || [ ! -s "$f" ] || [ "$cli" -nt "$f" ]; then
            echo "writing $f ..." >&2
            if ! "$cli" convert --to gguf --random-weights "$preset" --dtype "$dtype" --threads "$threads" "$f" \
                2>"$workdir/convert.err"; then
                msg=$(tr '\r' '\n' <"$workdir/convert.err" | grep -v '^\s*$' | tail -n1)
                echo "peer_llamacpp.sh: llama-cli convert failed for $spec: $msg" >&2
                failures+=("$spec: llama-cli convert failed: $msg")
                continue
            fi
        fi
        labels+=("$preset:$dtype") files+=("$f") shapes+=("$preset") dtypes+=("$dtype")
    done
fi
for f in "${ggufs[@]+"${ggufs[@]}"}"; do
    [ -s "$f" ] || die "no GGUF file at $f"
    labels+=("$f") files+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")")
    shapes+=("$(basename "$f" .gguf)") dtypes+=("file")
done

# ---- interleaved rounds ----------------------------------------------------------------------------
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results="$workdir/results-$stamp.jsonl"
: >"$results"
ours_args=(--prompt "$prompt" --gen "$gen" --repeat $((repeat + warm)) --threads "$threads" --json)
[ -n "$cpu_kernels" ] && ours_args+=(--cpu-kernels "$cpu_kernels")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M')
# the tree's commit when the run started (others may commit meanwhile); +dirty: uncommitted changes
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit+dirty"; fi

# idle share of all CPUs (percent) over one second, from /proc/stat
idle_pct() {
    local a b
    read -r -a a </proc/stat; sleep 1; read -r -a b </proc/stat
    local total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    echo $(((100 * (b[4] - a[4] + b[5] - a[5])) / (total > 0 ? total : 1)))
}
# waits until the machine is quiet (or --quiet-wait has passed); sets $idle to the last sample
wait_quiet() {
    local t0=$SECONDS
    idle=$(idle_pct)
    while [ "$idle" -lt "$quiet_idle" ] && [ $((SECONDS - t0)) -lt "$quiet_wait" ]; do idle=$(idle_pct); done
    [ "$idle" -ge "$quiet_idle" ] || echo "   (machine busy: only $idle% idle after waiting ${quiet_wait}s; timing anyway)" >&2
}

# Runs a command (stdout to $out, stderr to $err), sets $rc and $others: the share (percent) of all
# CPUs that OTHER processes used while it ran (machine busy time from /proc/stat less the command's
# own user + system time), i.e. how much the figure was disturbed.
hz=$(getconf CLK_TCK)
ncpu=$(nproc)
timed() {
    local s0 s1 tf
    tf=$(mktemp)
    s0=$(head -n1 /proc/stat)
    set +e
    /usr/bin/time -o "$tf" -f "%e %U %S" "$@" >"$out" 2>"$err"
    rc=$?
    set -e
    s1=$(head -n1 /proc/stat)
    others=$(awk -v a="$s0" -v b="$s1" -v hz="$hz" -v n="$ncpu" '{
        split(a, x, " "); split(b, y, " ")
        busy = 0; total = 0
        for (i = 2; i <= 9; i++) { d = y[i] - x[i]; total += d; if (i != 5 && i != 6) busy += d }
        own = ($2 + $3) * hz
        if (total <= 0) total = $1 * hz * n
        o = 100 * (busy - own) / total
        printf "%.0f", o < 0 ? 0 : o }' <<<"$(tail -n1 "$tf")")
    rm -f "$tf"
}

# appends one JSON line, tagged with the label, shape, dtype, idle share before and others' share
# during the run, to the results
tag() {
    WARM_RUNS=$warm node -e '
        const [label, shape, dtype, file, side, idle, others] = process.argv.slice(1);
        const line = require("fs").readFileSync(0, "utf8").trim().split("\n").filter(Boolean).pop();
        const r = JSON.parse(line);
        Object.assign(r, {side, label, shape, dtype, file, idle_before: Number(idle), others_pct: Number(others),
                          warm_runs: Number(process.env.WARM_RUNS)});
        console.log(JSON.stringify(r));' "$@" >>"$results"
}

for i in "${!files[@]}"; do
    label=${labels[$i]} f=${files[$i]}
    echo "== $label ($(du -h "$f" | cut -f1)): $rounds rounds, ours then llama.cpp" >&2
    for ((r = 1; r <= rounds; r++)); do
        out=$(mktemp) err=$(mktemp)
        wait_quiet
        timed "$cli" bench --model "$f" "${ours_args[@]}"
        if [ $rc -ne 0 ]; then
            echo "peer_llamacpp.sh: llama-cli bench could not run $f:" >&2
            sed 's/^/  /' "$err" >&2
            failures+=("$label: llama-cli bench failed: $(tr '\n' ' ' <"$err")")
            rm -f "$out" "$err"
            continue 2
        fi
        tag "$label" "${shapes[$i]}" "${dtypes[$i]}" "$f" ours "$idle" "$others" <"$out"
        ours_line=$(tail -n1 "$results")
        wait_quiet
        timed node "$here/peer_llamacpp.mjs" time --npm-dir "$npm_dir" --model "$f" --prompt "$prompt" \
            --gen "$gen" --repeat $((repeat + warm)) --threads "$threads" --flash-attn "$flash_attn" --seed "$r"
        if [ $rc -ne 0 ]; then
            if [ $rc -eq 3 ]; then
                echo "peer_llamacpp.sh: LLAMA.CPP CANNOT LOAD $f -- this GGUF is not llama.cpp-compatible." >&2
            else
                echo "peer_llamacpp.sh: the llama.cpp side failed on $f (exit $rc):" >&2
            fi
            sed 's/^/  /' "$err" >&2
            failures+=("$label: llama.cpp: $(tr '\n' ' ' <"$err")")
            rm -f "$out" "$err"
            continue 2
        fi
        tag "$label" "${shapes[$i]}" "${dtypes[$i]}" "$f" theirs "$idle" "$others" <"$out"
        node -e '
            const a = JSON.parse(process.argv[1]), b = JSON.parse(process.argv[2]);
            const runs = (r, k) => r[k + "_runs"].slice(r.warm_runs).map((x) => x.toFixed(1)).join(" ");
            console.error(`   round ${process.argv[3]}: ours decode ${runs(a, "decode_tok_s")} prefill ${runs(a, "prefill_tok_s")}` +
                ` (bw ${a.bandwidth_gb_s.toFixed(1)} GB/s, others ${a.others_pct}%) | llama.cpp decode ${runs(b, "decode_tok_s")}` +
                ` prefill ${runs(b, "prefill_tok_s")} (others ${b.others_pct}%)`);' \
            "$ours_line" "$(tail -n1 "$results")" "$r"
        rm -f "$out" "$err"
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the table ---------------------------------------------------------------------------------------
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)
[ -n "$cpu" ] || cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
isa=""
for x in avx2 avx512f avx512_bf16 avx512_vnni; do [[ " $flags " == *" $x "* ]] && isa="$isa $x"; done
echo
echo "peer comparison: llamac (llama-cli bench) vs llama.cpp (node-llama-cpp $NLC_VERSION), same GGUF files"
echo "date $started to $(date -u '+%H:%M') UTC, commit $commit, CPU: $cpu, $(nproc) cores,${isa:- no AVX2}"
echo "threads $threads both sides; prompt $prompt tokens, decode $gen tokens, greedy, EOS ignored;" \
    "$rounds interleaved rounds; per process $warm untimed-for-the-table warm run(s) + $repeat timed run(s)"
echo "llama-cli: $cli (built $(date -u -r "$cli" '+%Y-%m-%d %H:%M UTC'))"
echo "load average before: $load_before, after: $load_after"
echo
node "$here/peer_llamacpp.mjs" table "$results" --max-others "$max_others"
echo "raw results: $results"
if [ ${#failures[@]} -gt 0 ]; then
    echo
    echo "FAILED (${#failures[@]}):"
    for f in "${failures[@]}"; do echo "  - $f"; done
    exit 1
fi
