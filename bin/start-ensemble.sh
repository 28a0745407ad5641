#!/usr/bin/env bash
# Starts N ZooWeeper servers on HTTP ports START_PORT..START_PORT+N-1 (peer ports +10000),
# as the original's deployment did, and waits until each serves under an elected leader.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: bin/start-ensemble.sh [--run-dir DIR] [--data-dir DIR] N [START_PORT]

Starts N zooweeper servers in the background (default START_PORT 8080): server i serves
HTTP on START_PORT+i-1 and talks Zab on that port + 10000, with its data in
<data-dir>/zw-<PORT> (DATA_DIR is ignored here: it would be shared). Builds the release
binary first if it is missing. Stop them with bin/stop.sh, inspect with bin/status.sh.
  --run-dir DIR   pid, log and address files (default ./run)
  --data-dir DIR  where the servers' zw-<PORT> data folders go (default ./data)
  -h, --help      this help
USAGE
}

run_dir=${RUN_DIR:-./run}
data_root=./data
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --run-dir) run_dir=${2:?--run-dir needs a value}; shift 2 ;;
        --data-dir) data_root=${2:?--data-dir needs a value}; shift 2 ;;
        *) break ;;
    esac
done
n=${1:-}
start=${2:-8080}
if ! [[ $n =~ ^[1-9][0-9]*$ ]] || ! [[ $start =~ ^[1-9][0-9]*$ ]]; then
    usage >&2
    exit 2
fi
end=$((start + n - 1))
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${ZOOWEEPER_BIN:-target/release/zooweeper}
if [[ ! -x $bin ]]; then
    echo "building $bin ..."
    cargo build --release --bin zooweeper
fi

unset DATA_DIR
for ((port = start; port <= end; port++)); do
    PORT=$port START_PORT=$start END_PORT=$end ZOOWEEPER_BIN=$bin \
        "$here/start-server.sh" --run-dir "$run_dir" --data-dir "$data_root/zw-$port"
done

# Ready = every server answers GET /status and serves under an established leader.
deadline=$((SECONDS + 30))
for ((port = start; port <= end; port++)); do
    until curl -sf "http://127.0.0.1:$port/status" | grep -q '"serving":true'; do
        if ((SECONDS >= deadline)); then
            echo "start-ensemble.sh: server on $port is not serving; see $run_dir/zw-$port.log" >&2
            exit 1
        fi
        sleep 0.1
    done
done
echo "ensemble of $n up: HTTP $start..$end, peer $((start + 10000))..$((end + 10000))"
