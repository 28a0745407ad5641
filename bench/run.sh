#!/usr/bin/env bash
# The benchmark run in one command: builds in release mode, measures this machine, then
# runs every workload on fresh ensembles on loopback (fsync on; each command starts its
# own servers and brokers and stops them), and writes bench/RESULTS.md (tables, with
# bench/NOTES.md appended) and bench/results/*.csv plus machine.json. Never fails on time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    cat <<'USAGE'
usage: bench/run.sh [--quick]

  --quick   3 servers only, short runs (about a minute): a smoke test of the harness
            (full: 3/5/7/9 servers, 10,000 sequential writes, 1/8/64/256 clients,
            SIGKILL failover 20 runs each on 3 and 5 servers, SIGSTOP failover 10 runs
            on 3, 100,000 znodes for memory, and Apache ZooKeeper beside
            ZooWeeper on 3/5/7/9 servers; --quick skips that unless ZK_QUICK=1)
Writes bench/RESULTS.md, bench/results/machine.json and one CSV per table (--quick:
the same under bench/results/quick/, leaving the full run's record alone).
USAGE
}

quick=0
for a in "$@"; do
    case $a in
        --quick) quick=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

if [[ $quick == 1 ]]; then
    sizes=3 writes=1000 clients="8 64" seconds=3 fo_runs=3 fo_sizes=3 stop_runs=2 znodes=10000
    read_clients="8" txns=20000 curl_goals=20 curl_rounds=1
else
    sizes=3,5,7,9 writes=10000 clients="1 8 64 256" seconds=8 fo_runs=20 fo_sizes=3,5 stop_runs=10 znodes=100000
    read_clients="1 8 64" txns=1000000 curl_goals=100 curl_rounds=3
fi

echo "== building (release)" >&2
cargo build --release --bins -q
bench=${CARGO_TARGET_DIR:-target}/release/zw-bench
# A full run is the record (bench/RESULTS.md, bench/results/); a quick one only checks the
# harness and writes beside it, in bench/results/quick/.
if [[ $quick == 1 ]]; then
    out=bench/results/quick results=bench/results/quick/RESULTS.md
else
    out=bench/results results=bench/RESULTS.md
fi
mkdir -p "$out"
rm -f "$out"/*.csv
md=$(mktemp)
trap 'rm -f "$md"' EXIT

# section NAME TITLE COMMAND...: runs COMMAND, keeps its markdown table in RESULTS.md
# and as $out/NAME.csv.
section() {
    local name=$1 title=$2
    shift 2
    echo "== $title" >&2
    local table
    table=$("$@" | grep '^|')
    {
        printf '\n## %s\n\n`%s`\n\n%s\n' "$title" "$*" "$table"
    } >>"$md"
    grep -v '^|---' <<<"$table" | sed -e 's/^| //' -e 's/ |$//' -e 's/ | /,/g' >"$out/$name.csv"
}

echo "== machine" >&2
$bench machine --dir "${TMPDIR:-/tmp}" >"$out/machine.json"

section seed_table "The original's table, straight to ZooWeeper (POST /metadata), spread over the servers" \
    $bench seed-table --sizes "$sizes"
section goals_follower "The original's table through the whole goal path, via a follower" \
    $bench goals --sizes "$sizes" --target follower
section goals_leader "The original's table through the whole goal path, via the leader" \
    $bench goals --sizes "$sizes" --target leader
for target in follower leader; do
    section "seed_table_$target" "The original's table, straight to ZooWeeper (POST /metadata), via the $target" \
        $bench seed-table --sizes "$sizes" --target "$target"
done
# The original's own method: a curl process per goal (scripts/send_requests.sh) into the
# brokers, timed until both consumers printed every goal, on bin/deployment.sh's stack.
for n in ${sizes//,/ }; do
    section "goals_curl_$n" "The original's method, curl per goal (scripts/send_requests.sh): $n servers" \
        bench/goals.sh --servers "$n" --goals "$curl_goals" --rounds "$curl_rounds"
done
for target in follower leader; do
    section "latency_$target" "Sequential write latency, 3 servers, via the $target" \
        $bench latency --servers 3 --writes "$writes" --target "$target"
done
if [[ $quick == 0 ]]; then
    section latency_9 "Sequential write latency, 9 servers, via a follower" \
        $bench latency --servers 9 --writes "$writes" --target follower
fi
for c in $clients; do
    section "load_$c" "Concurrent keep-alive clients: $c, 3 servers, ${seconds} s" \
        $bench load --servers 3 --clients "$c" --seconds "$seconds"
done
for c in $read_clients; do
    for kind in local sync; do
        flag=()
        [[ $kind == sync ]] && flag=(--sync)
        section "reads_${kind}_$c" "Reads ($kind): $c keep-alive clients, 3 servers, ${seconds} s" \
            $bench reads --servers 3 --clients "$c" --seconds "$seconds" "${flag[@]}"
    done
done
section recovery "Recovery: $txns txns, every server SIGKILLed and restarted" \
    $bench recovery --servers 3 --txns "$txns"
# Apache ZooKeeper beside ZooWeeper (bench/zookeeper.sh: installs the Debian package when
# missing, so the quick run skips it unless ZK_QUICK=1).
if [[ $quick == 0 || ${ZK_QUICK:-0} == 1 ]]; then
    echo "== Apache ZooKeeper beside ZooWeeper (bench/zookeeper.sh)" >&2
    if [[ $quick == 1 ]]; then zk_args=(--quick); else zk_args=(--sizes "$sizes"); fi
    zk_args+=(--out "$out")
    zk_log=$(mktemp)
    if bench/zookeeper.sh "${zk_args[@]}" >"$zk_log" 2>&1; then
        { echo; cat "$out/zookeeper.md"; } >>"$md"
    else
        # A failed comparison is a finding, not a reason to lose the rest of the run.
        echo "bench/zookeeper.sh failed; its last lines are in RESULTS.md" >&2
        {
            printf '\n## Apache ZooKeeper beside ZooWeeper: this run failed\n\n'
            printf '`bench/zookeeper.sh %s` ended with:\n\n```text\n' "${zk_args[*]}"
            tail -n 5 "$zk_log"
            printf '```\n'
        } >>"$md"
    fi
    rm -f "$zk_log"
fi
section rss "Resident memory after $znodes znodes of 100 bytes, 3 servers" \
    $bench rss --servers 3 --znodes "$znodes"
# failover SIGNAL RUNS SIZES: the failover bench's table into RESULTS.md and a CSV.
failover() {
    local signal=$1 runs=$2 sizes=$3 upper fo
    upper=$(tr '[:lower:]' '[:upper:]' <<<"$signal")
    echo "== failover (SIG$upper)" >&2
    fo=$(cargo bench -q --bench failover -- --runs "$runs" --sizes "$sizes" --signal "$signal" 2>&1 |
        awk '/^servers +runs/ {on = 1} on && NF == 6' || true)
    {
        printf '\n## Failover: SIG%s of the leader until a write succeeds (ms)\n\n' "$upper"
        printf '`cargo bench --bench failover -- --runs %s --sizes %s --signal %s`\n\n' \
            "$runs" "$sizes" "$signal"
        echo "| servers | runs | median | p90 | min | max |"
        echo "|---|---|---|---|---|---|"
        awk 'NR > 1 {printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6}' <<<"$fo"
    } >>"$md"
    awk 'NR == 1 {print "servers,runs,median_ms,p90_ms,min_ms,max_ms"; next} {print $1","$2","$3","$4","$5","$6}' \
        <<<"$fo" >"$out/failover_$signal.csv"
}
failover kill "$fo_runs" "$fo_sizes"
failover stop "$stop_runs" 3

echo "== plots" >&2
rm -f "$out"/*.svg
# The latency CDF needs the ZooKeeper comparison's CSV; a run without it draws what it can.
$bench plot --results "$out" >&2 || echo "plot: some charts could not be drawn (see above)" >&2

{
    echo "# Benchmark results"
    echo
    echo "Written by \`bench/run.sh$([[ $quick == 1 ]] && echo ' --quick')\`. Machine (\`zw-bench machine\`):"
    echo
    echo '```json'
    cat "$out/machine.json"
    echo '```'
    cat "$md"
    echo
    echo "## Plots"
    echo
    for svg in latency_cdf throughput; do
        if [[ -f $out/$svg.svg ]]; then
            echo "![$svg]($(realpath --relative-to="$(dirname "$results")" "$out/$svg.svg"))"
        fi
    done
    echo
    cat bench/NOTES.md | sed 's/^# /## /'
} >"$results"
echo "wrote $results and $out/" >&2
