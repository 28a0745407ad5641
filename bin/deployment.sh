#!/usr/bin/env bash
# The goals timeline, as the original's deployment.sh started it, without Docker: N
# ZooWeeper servers, 3 Mimic Queue brokers and 2 consumer front ends, all on 127.0.0.1.
set -euo pipefail
# shellcheck source=bin/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
usage: bin/deployment.sh [--run-dir DIR] [--data-dir DIR] N

Starts, in the background and on 127.0.0.1:
  N ZooWeeper servers  HTTP ZW_START_PORT.. (default 8080..), Zab on HTTP port + 10000
  3 brokers            mimic-queue on BROKER_START_PORT.. (default 9090..9092),
                       named mq-<port>, data in <data-dir>/mq-<port>
  2 consumers          goals-consumer on CONSUMER_START_PORT.. (default 3000, 3001),
                       named consumer-<port>, its page at http://127.0.0.1:<port>/
and waits until every server serves under a leader, every broker is registered in
ZooWeeper and every consumer answers GET /status. Builds the release binaries if missing.

Everything it starts leaves <name>.pid and <name>.log in the run folder; a consumer's
printed timeline goes to <name>.timeline there. Stop it all with
  bin/stop.sh --run-dir DIR        (and see it with bin/status.sh --run-dir DIR)

  --run-dir DIR    pid, log and timeline files (default ./run/goals)
  --data-dir DIR   the zw-<port> and mq-<port> data folders (default ./data); they
                   survive a stop, so a restart resumes (consumers keep their offsets)
  -h, --help       this help
Environment: ZW_START_PORT, BROKER_START_PORT, CONSUMER_START_PORT move the port bases;
READY_TIMEOUT (seconds, default 30) bounds each wait. With tokens and a peer secret
(docs/security.md): ZW_CLIENT_TOKEN_FILE and ZW_PEER_SECRET_FILE go to the servers,
ZW_TOKEN_FILE to the brokers and consumers.
USAGE
}

die() { echo "deployment.sh: $*" >&2; exit 1; }

run_dir=./run/goals
data_root=./data
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --run-dir) run_dir=${2:?--run-dir needs a value}; shift 2 ;;
        --data-dir) data_root=${2:?--data-dir needs a value}; shift 2 ;;
        -*) echo "deployment.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) break ;;
    esac
done
if [[ $# -ne 1 ]] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
    usage >&2
    exit 2
fi
n=$1
zw_start=${ZW_START_PORT:-8080}
broker_start=${BROKER_START_PORT:-9090}
consumer_start=${CONSUMER_START_PORT:-3000}
ready_timeout=${READY_TIMEOUT:-30}
for v in zw_start broker_start consumer_start ready_timeout; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a whole number, not '${!v}'"
done
command -v curl >/dev/null || die "curl is needed"

# Paths the caller gave are relative to where it stands; the binaries are in the repo.
mkdir -p "$run_dir" "$data_root"
run_shown=${run_dir%/}
run_dir=$(cd "$run_dir" && pwd)
data_root=$(cd "$data_root" && pwd)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

zw_ports=() brokers=() consumers=()
for ((i = 0; i < n; i++)); do zw_ports+=($((zw_start + i))); done
for ((i = 0; i < 3; i++)); do brokers+=($((broker_start + i))); done
for ((i = 0; i < 2; i++)); do consumers+=($((consumer_start + i))); done
servers=$(printf '127.0.0.1:%s,' "${zw_ports[@]}"); servers=${servers%,}

# Refuse before starting anything: a live process of this run folder, or a port in use.
shopt -s nullglob
for f in "$run_dir"/*.pid; do
    pid=$(cat "$f")
    if pid_alive "$pid"; then
        die "$(basename "$f" .pid) still runs (pid $pid) from $run_dir; stop it first: bin/stop.sh --run-dir $run_dir"
    fi
    rm -f "$f"
done
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "${zw_ports[@]}"; do
    for q in "$p" $((p + 10000)); do
        port_busy "$q" && die "port $q (ZooWeeper server $p) is already in use; stop what runs there or set ZW_START_PORT"
    done
done
for p in "${brokers[@]}"; do
    port_busy "$p" && die "port $p (broker) is already in use; stop what runs there or set BROKER_START_PORT"
done
for p in "${consumers[@]}"; do
    port_busy "$p" && die "port $p (consumer) is already in use; stop what runs there or set CONSUMER_START_PORT"
done
((zw_ports[-1] + 10000 <= 65535 && brokers[-1] <= 65535 && consumers[-1] <= 65535)) ||
    die "a port is past 65535 (ZooWeeper's peer ports are its HTTP ports + 10000)"

bin=target/release
if [[ ! -x $bin/zooweeper || ! -x $bin/mimic-queue || ! -x $bin/goals-consumer ]]; then
    echo "building the release binaries ..."
    cargo build --release --bins
fi

# start NAME KIND ADDR OUT CMD...: runs CMD in the background with its stdout in OUT and
# its stderr in NAME.log, and records NAME.pid and NAME.addr.
start() {
    local name=$1 kind=$2 addr=$3 out=$4
    shift 4
    nohup "$@" >>"$out" 2>>"$run_dir/$name.log" </dev/null &
    echo $! >"$run_dir/$name.pid"
    disown $!  # no "Killed" job notice if a failed start has to stop it
    printf 'KIND=%s\nHTTP=%s\n' "$kind" "$addr" >"$run_dir/$name.addr"
}

# wait_for NAME URL PATTERN: polls URL until its answer contains PATTERN.
wait_for() {
    local name=$1 url=$2 pattern=$3 deadline=$((SECONDS + ready_timeout)) pid
    pid=$(cat "$run_dir/$name.pid")
    until curl -sf --max-time 2 "$url" 2>/dev/null | grep -q "$pattern"; do
        pid_alive "$pid" || die "$name (pid $pid) exited; see $run_dir/$name.log"
        ((SECONDS < deadline)) || die "$name is not ready after ${ready_timeout}s ($url has no $pattern); see $run_dir/$name.log"
        sleep 0.1
    done
}

# Past this point a failure stops whatever this run started (its logs stay).
started_ok=0
on_exit() {
    if [[ $started_ok == 0 ]]; then
        echo "deployment.sh: stopping what it started" >&2
        "$repo/bin/stop.sh" --run-dir "$run_dir" >&2 || true
    fi
}
trap on_exit EXIT

echo "== $n ZooWeeper servers"
"$repo/bin/start-ensemble.sh" --run-dir "$run_dir" --data-dir "$data_root" "$n" "$zw_start"

echo "== 3 brokers"
for p in "${brokers[@]}"; do
    start "mq-$p" broker "127.0.0.1:$p" "$run_dir/mq-$p.log" \
        env PORT="$p" "$bin/mimic-queue" --host 127.0.0.1 --servers "$servers" \
        --data-dir "$data_root/mq-$p"
    echo "started mq-$p (pid $(cat "$run_dir/mq-$p.pid"), log $run_dir/mq-$p.log)"
done
for p in "${brokers[@]}"; do
    wait_for "mq-$p" "http://127.0.0.1:$p/status" '"registered":true'
done

echo "== 2 consumers"
for p in "${consumers[@]}"; do
    name=consumer-$p
    start "$name" consumer "127.0.0.1:$p" "$run_dir/$name.timeline" \
        env PORT="$p" "$bin/goals-consumer" --host 127.0.0.1 --servers "$servers" --name "$name"
    echo "started $name (pid $(cat "$run_dir/$name.pid"), log $run_dir/$name.log, timeline $run_dir/$name.timeline)"
done
for p in "${consumers[@]}"; do
    wait_for "consumer-$p" "http://127.0.0.1:$p/status" '"name"'
done
started_ok=1

cat <<EOF

The goals timeline runs on 127.0.0.1:
  ZooWeeper servers  HTTP ${zw_ports[0]}..${zw_ports[-1]}, Zab $((zw_ports[0] + 10000))..$((zw_ports[-1] + 10000))  (names zw-<port>)
  brokers            ${brokers[*]}  (names mq-<port>: POST /addScore, GET /data, GET /status)
  data               $data_root  (zw-<port>, mq-<port>)
  consumers          ${consumers[*]}  pages: $(printf 'http://127.0.0.1:%s/ ' "${consumers[@]}")
  run folder         $run_shown  (<name>.pid, <name>.log, consumer-<port>.timeline)
Send goals:  ZW_PORTS=$(IFS=,; echo "${zw_ports[*]}") BROKER_PORTS=$(IFS=,; echo "${brokers[*]}") scripts/send_requests.sh 10
Watch:       tail -f $run_shown/consumer-${consumers[0]}.timeline
Status:      bin/status.sh --run-dir $run_shown
Stop:        bin/stop.sh --run-dir $run_shown
EOF
