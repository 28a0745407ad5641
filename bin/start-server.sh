#!/usr/bin/env bash
# Starts one ZooWeeper server in the background; its pid, log and addresses go to the run
# folder. The original's environment works: PORT=8081 START_PORT=8080 END_PORT=8082.
set -euo pipefail
# shellcheck source=bin/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
    cat <<'USAGE'
usage: bin/start-server.sh [--run-dir DIR] [--bin PATH] [ZOOWEEPER FLAGS...]

Starts one zooweeper server in the background.
  env PORT, START_PORT, END_PORT, HOST, DATA_DIR  the original's way (see zooweeper --help)
  ZOOWEEPER FLAGS                                 passed through, e.g. --port 8081
                                                  --start-port 8080 --end-port 8082, or
                                                  --id 2 --server 1=H:8080:18080 ...
  --run-dir DIR   where <name>.pid, <name>.log and <name>.addr go (default ./run)
  --bin PATH      the zooweeper binary (default $ZOOWEEPER_BIN or target/release/zooweeper,
                  built with cargo if missing)
  -h, --help      this help
  env ZW_PEER_SECRET_FILE, ZW_CLIENT_TOKEN_FILE  add --peer-secret-file and
                  --client-token-file with these files (docs/security.md)
The server is named zw-<HTTPPORT> (or zw-id<ID> when only --id/--server are given).
USAGE
}

run_dir=${RUN_DIR:-./run}
bin=${ZOOWEEPER_BIN:-target/release/zooweeper}
args=()
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --run-dir) run_dir=${2:?--run-dir needs a value}; shift 2 ;;
        --bin) bin=${2:?--bin needs a value}; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done

# Work out the HTTP and peer address from the flags or the environment, for status.sh.
port=${PORT:-} host=${HOST:-127.0.0.1} id="" start_port=${START_PORT:-}
servers=()
for ((i = 0; i < ${#args[@]}; i++)); do
    next=${args[i+1]:-}
    case ${args[i]} in
        --port) port=$next ;;
        --host) host=$next ;;
        --id) id=$next ;;
        --start-port) start_port=$next ;;
        --server) servers+=("$next") ;;
    esac
done
if [[ -z $port && -n $id && -n $start_port && ${#servers[@]} -eq 0 ]]; then
    port=$((start_port + id - 1))
fi
if [[ -n $port ]]; then
    name=zw-$port
    http_addr=$host:$port
    peer_addr=$host:$((port + 10000))
elif [[ -n $id ]]; then
    name=zw-id$id
    http_addr="" peer_addr=""
    for s in "${servers[@]}"; do
        if [[ ${s%%=*} == "$id" ]]; then
            rest=${s#*=}            # HOST:HTTP:PEER
            peer_port=${rest##*:}; rest=${rest%:*}
            http_port=${rest##*:}; h=${rest%:*}
            http_addr=$h:$http_port
            peer_addr=$h:$peer_port
        fi
    done
else
    echo "start-server.sh: set PORT (and START_PORT/END_PORT), or pass --port or --id; see --help" >&2
    exit 2
fi

if [[ ! -x $bin ]]; then
    if [[ $bin == target/release/zooweeper ]]; then
        echo "building $bin ..." >&2
        cargo build --release --bin zooweeper >&2
    else
        echo "start-server.sh: no executable at $bin" >&2
        exit 2
    fi
fi

mkdir -p "$run_dir"
pid_file=$run_dir/$name.pid
if [[ -f $pid_file ]] && pid_alive "$(cat "$pid_file")"; then
    echo "start-server.sh: $name already runs as pid $(cat "$pid_file")" >&2
    exit 1
fi

# Security (docs/security.md): the secret and token files these variables name, if set.
if [[ -n ${ZW_PEER_SECRET_FILE:-} ]]; then
    args+=(--peer-secret-file "$ZW_PEER_SECRET_FILE")
fi
if [[ -n ${ZW_CLIENT_TOKEN_FILE:-} ]]; then
    args+=(--client-token-file "$ZW_CLIENT_TOKEN_FILE")
fi

nohup "$bin" "${args[@]}" >>"$run_dir/$name.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pid_file"
printf 'HTTP=%s\nPEER=%s\n' "$http_addr" "$peer_addr" >"$run_dir/$name.addr"
echo "started $name (pid $pid, HTTP $http_addr, peer $peer_addr, log $run_dir/$name.log)"
