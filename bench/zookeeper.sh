#!/usr/bin/env bash
# Apache ZooKeeper and ZooWeeper measured in the same run with the same client: for each
# ensemble size, starts an Apache ZooKeeper ensemble on loopback, drives it with zk-bench
# (ZooKeeper's client protocol), stops it, then does the same with a ZooWeeper ensemble
# serving that protocol on --client-port. Writes bench/results/zookeeper.md and
# bench/results/zookeeper_{latency,load,rss}.csv. Installs Debian's `zookeeper` package
# when it is missing. Kills every process it started, by pid, also on errors.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    cat <<'USAGE'
usage: bench/zookeeper.sh [--quick] [--sizes 3,9] [--out DIR]

  --quick       short runs on 3 servers (1,000 writes, 8 and 64 clients for 3 s)
  --out DIR     where zookeeper.md and the CSVs go (default bench/results;
                --quick: bench/results/quick)
  --sizes LIST  ensemble sizes for the latency runs (default 3,9; --quick: 3); the
                load runs (1, 8, 64, 256 clients) use 3 servers
Full: 10,000 sequential creates after 2,000 unmeasured ones, per size, via a follower;
load with 1, 8, 64 and 256 sessions for 8 s each on 3 servers; RSS of every server after.
USAGE
}

quick=0
sizes=
out=
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) quick=1; shift ;;
        --sizes) sizes=${2:?--sizes needs a value}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
if [[ $quick == 1 ]]; then
    out=${out:-bench/results/quick}
    sizes=${sizes:-3} writes=1000 warmup=200 clients="8 64" seconds=3
else
    out=${out:-bench/results}
    sizes=${sizes:-3,9} writes=10000 warmup=2000 clients="1 8 64 256" seconds=8
fi
if ! [[ $sizes =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]]; then
    usage >&2
    exit 2
fi

# shellcheck source=../scripts/zookeeper-lib.sh
. scripts/zookeeper-lib.sh
zk_install

echo "== building (release)" >&2
cargo build --release --bin zooweeper --bin zk-bench -q
bin=${CARGO_TARGET_DIR:-target}/release
zkb=$bin/zk-bench

work=$(mktemp -d "${TMPDIR:-/tmp}/zk-compare.XXXXXX")
pids=()
# Runs that failed: reported beside the tables (a failure is a finding), logs kept.
failures=()
finish() {
    local rc=$?
    stop_all
    if ((rc)); then
        echo "bench/zookeeper.sh failed; the servers' logs are kept in $work" >&2
    elif ((${#failures[@]})); then
        echo "some runs failed; the servers' logs are kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap finish EXIT
trap 'exit 130' INT TERM

lat_csv=$work/latency.csv load_csv=$work/load.csv rss_csv=$work/rss.csv cdf_csv=$work/cdf.csv
echo "system,servers,id,pid,rss_kib" >"$rss_csv"

# Set by the start functions: every server's client address, one follower's, and pids.
hosts=() follower= ens_pids=()

start_zookeeper() {
    zk_start "$work/zk-$1" "$1" "$zkb"
    hosts=("${zk_hosts[@]}") follower=$zk_follower ens_pids=("${zk_pids[@]}")
}

start_zooweeper() {
    local n=$1 dir=$work/zw-$n i j deadline
    hosts=() follower= ens_pids=()
    mkdir -p "$dir"
    local ports
    read -r -a ports < <("$zkb" free-ports $((3 * n)))
    local members=()
    for ((j = 0; j < n; j++)); do
        members+=(--server "$((j + 1))=127.0.0.1:${ports[3 * j]}:${ports[3 * j + 1]}")
    done
    for ((i = 0; i < n; i++)); do
        "$bin/zooweeper" --id $((i + 1)) "${members[@]}" --data-dir "$dir/data-$((i + 1))" \
            --client-port "${ports[3 * i + 2]}" --max-client-cnxns 0 --log warn \
            >/dev/null 2>"$dir/zw-$((i + 1)).log" </dev/null &
        pids+=($!) ens_pids+=($!)
        hosts+=("127.0.0.1:${ports[3 * i + 2]}")
    done
    deadline=$((SECONDS + 60))
    for ((i = 0; i < n; i++)); do
        local st=
        until st=$(curl -sf "http://127.0.0.1:${ports[3 * i]}/status") &&
            grep -q '"serving":true' <<<"$st"; do
            if ((SECONDS >= deadline)); then
                echo "ZooWeeper server $((i + 1)) is not serving; see $dir/zw-*.log" >&2
                exit 1
            fi
            sleep 0.1
        done
        if ! grep -q '"role":"leading"' <<<"$st" && [[ -z $follower ]]; then
            follower=${hosts[i]}
        fi
    done
    return 0
}

# run_or_note WHAT COMMAND...: runs COMMAND (its output to stderr); when it fails, notes
# WHAT with the command's last line, and goes on with the next run.
run_or_note() {
    local what=$1 log
    shift
    log=$(mktemp)
    if ! "$@" 1>&2 2>"$log"; then
        failures+=("$what: $(tail -n 1 "$log")")
    fi
    cat "$log" >&2
    rm -f "$log"
}

# measure SYSTEM N: latency via the follower, load on 3 servers, then RSS; stops the
# ensemble.
measure() {
    local sys=$1 n=$2 all k
    all=$(IFS=,; echo "${hosts[*]}")
    local pidlist
    pidlist=$(IFS=,; echo "${ens_pids[*]}")
    echo "== $sys, $n servers: $writes sequential creates via follower $follower" >&2
    run_or_note "$sys, $n servers, $writes sequential creates" \
        "$zkb" zk-latency --label "$sys" --servers "$n" --connect "$follower" \
        --writes "$writes" --warmup "$warmup" --pids "$pidlist" --append-csv "$lat_csv" \
        --cdf-csv "$cdf_csv"
    if [[ $n == 3 ]]; then
        for c in $clients; do
            echo "== $sys, $n servers: $c sessions for $seconds s" >&2
            run_or_note "$sys, $n servers, $c sessions" \
                "$zkb" zk-load --label "$sys" --servers "$n" --connect "$all" --clients "$c" \
                --seconds "$seconds" --pids "$pidlist" --append-csv "$load_csv"
        done
    fi
    for k in "${!ens_pids[@]}"; do
        echo "$sys,$n,$((k + 1)),${ens_pids[k]},$(awk '/^VmRSS:/ {print $2}' "/proc/${ens_pids[k]}/status")"
    done >>"$rss_csv"
    stop_all
}

IFS=, read -r -a size_list <<<"$sizes"
for n in "${size_list[@]}"; do
    echo "== Apache ZooKeeper, $n servers: starting" >&2
    start_zookeeper "$n"
    measure ZooKeeper "$n"
    echo "== ZooWeeper, $n servers: starting" >&2
    start_zooweeper "$n"
    measure ZooWeeper "$n"
done
if [[ $quick == 0 && ! " ${size_list[*]} " =~ " 3 " ]]; then
    echo "note: the load runs need a 3-server size; none was given" >&2
fi

mkdir -p "$out"
zk_version=$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo unknown)
java_version=$(java -version 2>&1 | head -1)
{
    echo "## Apache ZooKeeper beside ZooWeeper, same client"
    echo
    echo "Written by \`bench/zookeeper.sh$([[ $quick == 1 ]] && echo ' --quick') --sizes $sizes\`"
    echo "on $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, Linux $(uname -r), loopback."
    echo "Apache ZooKeeper: Debian package $zk_version ($java_version, default heap),"
    echo "forceSync=yes, one dataDir per server. ZooWeeper: \`$(git rev-parse --short HEAD)\`,"
    echo "fsync on, ZooKeeper's protocol on \`--client-port\`. Neither limits connections per"
    echo "address (maxClientCnxns=0, \`--max-client-cnxns 0\`). Both on the same temp"
    echo "filesystem, one system at a time. The client is \`zk-bench\` for both: blocking"
    echo "sockets, one thread per session, 100-byte persistent znodes."
    echo "Latency: $writes sequential creates through one session on a follower, after"
    echo "$warmup unmeasured ones (the JVM's warm-up). Load: sessions spread over the 3 servers,"
    echo "each with one create outstanding, $seconds s. CPU per write: the load generator's"
    echo "(getrusage) and all servers' together (/proc/PID/stat) over the measured part."
    echo "A ratio below 1 means ZooWeeper's figure is lower: better for latency, CPU and"
    echo "memory, worse for writes/s."
    echo
    report=(--latency "$lat_csv" --rss "$rss_csv")
    # Load runs happen only on 3 servers.
    [[ -f $load_csv ]] && report+=(--load "$load_csv")
    "$zkb" report "${report[@]}"
    if ((${#failures[@]})); then
        echo "### Runs that failed (their rows show \"-\")"
        echo
        printf -- '- %s\n' "${failures[@]}"
        echo
    fi
} >"$out/zookeeper.md"
cp "$lat_csv" "$out/zookeeper_latency.csv"
[[ -f $load_csv ]] && cp "$load_csv" "$out/zookeeper_load.csv"
cp "$rss_csv" "$out/zookeeper_rss.csv"
cp "$cdf_csv" "$out/zookeeper_cdf.csv"
cat "$out/zookeeper.md"
echo "wrote $out/zookeeper.md and $out/zookeeper_{latency,load,rss,cdf}.csv" >&2
