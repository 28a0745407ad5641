#!/usr/bin/env bash
# For every process recorded in the run folder: is its pid alive and what its GET /status
# says. ZooWeeper servers: role, leader, epoch, zxid and the peer port's answer to `ruok`;
# brokers: registered, next_offset, events; consumers: broker, offset, goals.
set -euo pipefail
# shellcheck source=bin/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
usage: bin/status.sh [--run-dir DIR]

One line per process recorded in the run folder (default ./run), in up to three tables:
  ZooWeeper servers  name, pid, alive, role/leader/epoch/zxid from GET /status, and the
                     answer to the four-letter word `ruok` on its peer port
  brokers            name, pid, alive, registered/next_offset/events (and last_error)
                     from the broker's GET /status
  consumers          name, pid, alive, broker/offset/goals from the consumer's GET /status
USAGE
}

run_dir=${RUN_DIR:-./run}
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --run-dir) run_dir=${2:?--run-dir needs a value}; shift 2 ;;
        *) echo "status.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
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
    echo "nothing recorded in $run_dir"
    exit 0
fi
zw=() brokers=() consumers=()
for f in "${files[@]}"; do
    name=$(basename "$f" .pid)
    KIND=""
    [[ -f $run_dir/$name.addr ]] && KIND=$(sed -n 's/^KIND=//p' "$run_dir/$name.addr")
    case $KIND in
        broker) brokers+=("$name") ;;
        consumer) consumers+=("$name") ;;
        *) zw+=("$name") ;;
    esac
done

# alive_of NAME: sets pid and alive; HTTP and PEER from NAME.addr.
alive_of() {
    pid=$(cat "$run_dir/$1.pid")
    alive=no
    if pid_alive "$pid"; then alive=yes; fi
    HTTP="" PEER=""
    if [[ -f $run_dir/$1.addr ]]; then source "$run_dir/$1.addr"; fi
}

if [[ ${#zw[@]} -gt 0 ]]; then
    printf '%-15s %-8s %-6s %-10s %-6s %-6s %-14s %s\n' NAME PID ALIVE ROLE LEADER EPOCH ZXID RUOK
    for name in "${zw[@]}"; do
        alive_of "$name"
        role=- leader=- epoch=- zxid=- ok=-
        if [[ -n $HTTP ]] && json=$(curl -sf --max-time 2 "http://$HTTP/status"); then
            role=$(field role "$json"); leader=$(field leader "$json")
            epoch=$(field epoch "$json"); zxid=$(field zxid_hex "$json")
        fi
        if [[ -n $PEER ]]; then ok=$(ruok "$PEER" 2>/dev/null); fi
        printf '%-15s %-8s %-6s %-10s %-6s %-6s %-14s %s\n' "$name" "$pid" "$alive" "$role" "$leader" "$epoch" "$zxid" "$ok"
    done
fi

if [[ ${#brokers[@]} -gt 0 ]]; then
    [[ ${#zw[@]} -eq 0 ]] || echo
    printf '%-15s %-8s %-6s %-11s %-12s %-7s %s\n' BROKER PID ALIVE REGISTERED NEXT_OFFSET EVENTS LAST_ERROR
    for name in "${brokers[@]}"; do
        alive_of "$name"
        registered=- next=- events=- last_error=-
        if [[ -n $HTTP ]] && json=$(curl -sf --max-time 2 "http://$HTTP/status"); then
            registered=$(field registered "$json"); next=$(field next_offset "$json")
            events=$(field events "$json")
            last_error=$(sed -n 's/.*"last_error":\(null\|"[^"]*"\).*/\1/p' <<<"$json")
            [[ $last_error == null || -z $last_error ]] && last_error=-
        fi
        printf '%-15s %-8s %-6s %-11s %-12s %-7s %s\n' "$name" "$pid" "$alive" "$registered" "$next" "$events" "$last_error"
    done
fi

if [[ ${#consumers[@]} -gt 0 ]]; then
    [[ ${#zw[@]} -eq 0 && ${#brokers[@]} -eq 0 ]] || echo
    printf '%-15s %-8s %-6s %-8s %-7s %-6s %s\n' CONSUMER PID ALIVE BROKER OFFSET GOALS PAGE
    for name in "${consumers[@]}"; do
        alive_of "$name"
        broker=- offset=- goals=-
        if [[ -n $HTTP ]] && json=$(curl -sf --max-time 2 "http://$HTTP/status"); then
            broker=$(field broker "$json"); offset=$(field offset "$json")
            goals=$(field goals "$json")
        fi
        printf '%-15s %-8s %-6s %-8s %-7s %-6s %s\n' "$name" "$pid" "$alive" "${broker:--}" "$offset" "$goals" "http://$HTTP/"
    done
fi
