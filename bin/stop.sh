#!/usr/bin/env bash
# Stops the servers recorded in the run folder (SIGTERM, then waits for each to exit).
set -euo pipefail
# shellcheck source=bin/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
usage: bin/stop.sh [--run-dir DIR] [--timeout SECONDS] [NAME...]

Sends SIGTERM to every server recorded in the run folder (or only the NAMEs given, e.g.
zw-8081), waits for each to exit, and removes its pid file. A server still running after
the timeout (default 10 s) gets SIGKILL.
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
        *) names+=("$1"); shift ;;
    esac
done
if [[ ${#names[@]} -eq 0 ]]; then
    shopt -s nullglob
    for f in "$run_dir"/*.pid; do names+=("$(basename "$f" .pid)"); done
fi
if [[ ${#names[@]} -eq 0 ]]; then
    echo "no servers recorded in $run_dir"
    exit 0
fi

for name in "${names[@]}"; do
    pid_file=$run_dir/$name.pid
    [[ -f $pid_file ]] || { echo "$name: no pid file" >&2; continue; }
    pid=$(cat "$pid_file")
    if kill -TERM "$pid" 2>/dev/null; then
        echo "$name: SIGTERM sent to pid $pid"
    else
        echo "$name: pid $pid was not running"
    fi
done

for name in "${names[@]}"; do
    pid_file=$run_dir/$name.pid
    [[ -f $pid_file ]] || continue
    pid=$(cat "$pid_file")
    deadline=$((SECONDS + timeout))
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
