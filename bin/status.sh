#!/usr/bin/env bash
# For every server recorded in the run folder: is its pid alive, what does GET /status say
# (role, leader, epoch, zxid), and does its peer port answer `ruok`.
set -euo pipefail
# shellcheck source=bin/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
usage: bin/status.sh [--run-dir DIR]

One line per server recorded in the run folder (default ./run):
  name, pid and whether it is alive, role/leader/epoch/zxid from GET /status, and the
  answer to the four-letter word `ruok` on its peer port.
USAGE
}

run_dir=${RUN_DIR:-./run}
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --run-dir) run_dir=${2:?--run-dir needs a value}; shift 2 ;;
        *) usage >&2; exit 2 ;;
    esac
done

field() { # field NAME JSON: a scalar JSON field, without quotes
    sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p" <<<"$2"
}

ruok() { # ruok HOST:PORT
    local host=${1%:*} port=${1##*:} answer
    if ! exec 3<>"/dev/tcp/$host/$port" 2>/dev/null; then
        echo "-"
        return
    fi
    printf ruok >&3
    answer=$(timeout 2 cat <&3 || true)
    exec 3<&-
    echo "${answer:--}"
}

shopt -s nullglob
files=("$run_dir"/*.pid)
if [[ ${#files[@]} -eq 0 ]]; then
    echo "no servers recorded in $run_dir"
    exit 0
fi
printf '%-12s %-8s %-6s %-10s %-6s %-6s %-14s %s\n' NAME PID ALIVE ROLE LEADER EPOCH ZXID RUOK
for f in "${files[@]}"; do
    name=$(basename "$f" .pid)
    pid=$(cat "$f")
    alive=no
    pid_alive "$pid" && alive=yes
    HTTP="" PEER=""
    [[ -f $run_dir/$name.addr ]] && source "$run_dir/$name.addr"
    role=- leader=- epoch=- zxid=- ok=-
    if [[ -n $HTTP ]] && json=$(curl -sf --max-time 2 "http://$HTTP/status"); then
        role=$(field role "$json"); leader=$(field leader "$json")
        epoch=$(field epoch "$json"); zxid=$(field zxid_hex "$json")
    fi
    [[ -n $PEER ]] && ok=$(ruok "$PEER" 2>/dev/null)
    printf '%-12s %-8s %-6s %-10s %-6s %-6s %-14s %s\n' "$name" "$pid" "$alive" "$role" "$leader" "$epoch" "$zxid" "$ok"
done
