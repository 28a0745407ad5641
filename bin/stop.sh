#!/usr/bin/env bash
# Stops what is recorded in the run folder: consumers first, then brokers, then ZooWeeper
# servers (SIGTERM, then waits for each to exit), so brokers can still close their
# ZooWeeper sessions on the way out.
set -euo pipefail
# shellcheck source=bin/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
usage: bin/stop.sh [--run-dir DIR] [--timeout SECONDS] [NAME...]

Sends SIGTERM to every process recorded in the run folder (or only the NAMEs given, e.g.
zw-8081, mq-9090, consumer-3000), waits for each to exit, and removes its pid file.
Consumers go first, then brokers, then ZooWeeper servers. A process still running the
timeout (default 10 s) after its group was sent SIGTERM gets SIGKILL.
  --run-dir DIR   default ./run
USAGE
}

run_dir=${RUN_DIR:-./run}
timeout=10
names=()
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --run-dir) run_dir=${2:?--run-dir needs a value}; shift 2 ;;
        --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
        -*) echo "stop.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) names+=("$1"); shift ;;
    esac
done
if [[ ${#names[@]} -eq 0 ]]; then
    shopt -s nullglob
    for f in "$run_dir"/*.pid; do names+=("$(basename "$f" .pid)"); done
fi
if [[ ${#names[@]} -eq 0 ]]; then
    echo "nothing recorded in $run_dir"
    exit 0
fi

# tier NAME: 0 consumer, 1 broker, 2 anything else (ZooWeeper servers).
tier() {
    local KIND=""
    [[ -f $run_dir/$1.addr ]] && KIND=$(sed -n 's/^KIND=//p' "$run_dir/$1.addr")
    case $KIND in
        consumer) echo 0 ;;
        broker) echo 1 ;;
        *) echo 2 ;;
    esac
}

stop_tier() {
    local name pid pid_file deadline
    for name in "$@"; do
        pid_file=$run_dir/$name.pid
        [[ -f $pid_file ]] || { echo "$name: no pid file" >&2; continue; }
        pid=$(cat "$pid_file")
        if pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null; then
            echo "$name: SIGTERM sent to pid $pid"
        else
            echo "$name: pid $pid was not running"
        fi
    done
    deadline=$((SECONDS + timeout))
    for name in "$@"; do
        pid_file=$run_dir/$name.pid
        [[ -f $pid_file ]] || continue
        pid=$(cat "$pid_file")
        while pid_alive "$pid"; do
            if ((SECONDS >= deadline)); then
                echo "$name: still running after ${timeout}s, sending SIGKILL" >&2
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
        rm -f "$pid_file" "$run_dir/$name.addr"
        echo "$name: stopped"
    done
}

tiers=()
for name in "${names[@]}"; do tiers+=("$(tier "$name")"); done
for t in 0 1 2; do
    group=()
    for i in "${!names[@]}"; do
        if [[ ${tiers[i]} == "$t" ]]; then group+=("${names[i]}"); fi
    done
    if [[ ${#group[@]} -gt 0 ]]; then stop_tier "${group[@]}"; fi
done
