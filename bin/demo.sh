#!/usr/bin/env bash
# The demo: builds ZooWeeper, starts a 3-server ensemble on 127.0.0.1 (HTTP 8080..8082,
# Zab 18080..18082), sends writes to the leader and to followers, shows every server's
# /metadata and status, kills the leader with SIGKILL, shows the new leader taking writes
# and the old one catching up after its restart, then stops everything it started.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: bin/demo.sh [--keep] [START_PORT]

  --keep        leave the ensemble running at the end (stop it with bin/stop.sh --run-dir run/demo)
  START_PORT    first HTTP port (default 8080; the demo uses three consecutive ports)
Needs: the Rust toolchain and curl. Data lives in ./data/zw-<PORT> and survives runs.
USAGE
}

keep=0
start=8080
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --keep) keep=1; shift ;;
        *) start=$1; shift ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
run=run/demo
ports=("$start" $((start + 1)) $((start + 2)))

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
    if [[ $keep == 0 ]]; then
        say "stopping the ensemble (by the pids it recorded)"
        bin/stop.sh --run-dir "$run" || true
    fi
}

say "building (release)"
cargo build --release --bins

for p in "${ports[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "port $p is already in use: stop what runs there or pass another START_PORT" >&2
        exit 1
    fi
done

say "starting 3 servers"
trap cleanup EXIT
bin/start-ensemble.sh --run-dir "$run" 3 "$start"
bin/status.sh --run-dir "$run"

leader_port() {
    local p
    for p in "${ports[@]}"; do
        if curl -sf "http://127.0.0.1:$p/status" 2>/dev/null | grep -q '"role":"leading"'; then
            echo "$p"
            return
        fi
    done
    return 1
}

metadata_write() { # PORT SENDER CLIENTS
    curl -sf -XPOST "http://127.0.0.1:$1/metadata" -H 'Content-Type: application/json' -d \
        "{\"Timestamp\":\"$(date +%s)\",\"Metadata\":{\"SenderIp\":\"$2\",\"ReceiverIp\":\"$1\",\"Timestamp\":\"$(date +%s)\",\"Clients\":\"$3\"},\"GameResults\":{\"Minute\":12,\"Player\":\"Messi\",\"Club\":\"FCB\",\"Score\":\"1-0\"}}"
    echo
}

leader=$(leader_port)
say "writes: one to the leader ($leader), the others to followers (forwarded over the Zab link)"
for p in "${ports[@]}"; do
    echo "POST :$p/znodes/demo/run-?sequential=true"
    curl -sf -XPOST "http://127.0.0.1:$p/znodes/demo" -d 'goals timeline' >/dev/null 2>&1 || true
    curl -sf -XPOST "http://127.0.0.1:$p/znodes/demo/run-?sequential=true" -d "via $p"
    echo
done
metadata_write "${ports[1]}" 9091 "9090,9091,9092"
metadata_write "${ports[0]}" 9090 "9090,9091,9092"
metadata_write "$leader" 9090 "9090,9091" # Clients changed: broker 9090's Version goes to 1

say "every server shows the same process znodes in GET /metadata"
for p in "${ports[@]}"; do
    echo "-- :$p/metadata"
    curl -sf "http://127.0.0.1:$p/metadata"
    echo
done

say "sessions, an ephemeral lock node and a watch that misses nothing (zwcli)"
zwcli=(./target/release/zwcli --servers "127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}")
session=$("${zwcli[@]}" session open --timeout 5000)
echo "opened session $session (5 s timeout, heartbeats to any server)"
"${zwcli[@]}" create /locks >/dev/null 2>&1 || true
echo "lock node: $("${zwcli[@]}" create -s -e "$session" /locks/n- holder)"
from=$(curl -sf "http://127.0.0.1:${ports[1]}/status" | sed -n 's/.*"zxid":\([0-9]*\).*/\1/p')
"${zwcli[@]}" session close "$session"
echo "closed the session; a watch on /locks from zxid $from (asked of another server) sees:"
"${zwcli[@]}" watch --children --after "$from" --count 1 /locks
echo "children of /locks now: [$("${zwcli[@]}" ls /locks)]"

say "SIGKILL the leader ($leader)"
name="zw-$leader"
kill -9 "$(cat "$run/$name.pid")"
source bin/common.sh
t0=$(date +%s%N)
written=
for p in "${ports[@]}"; do
    [[ $p == "$leader" ]] && continue
    until reply=$(curl -sf -XPOST "http://127.0.0.1:$p/znodes/demo/after-failover-?sequential=true" -d ok 2>/dev/null); do
        if (( ($(date +%s%N) - t0) / 1000000 > 15000 )); then
            echo "no write accepted within 15 s of the leader's death" >&2
            exit 1
        fi
        sleep 0.02
    done
    written=$(sed 's/.*"path":"\([^"]*\)".*/\1/' <<<"$reply")
done
echo "writes accepted again $(( ($(date +%s%N) - t0) / 1000000 )) ms after the kill; new leader: $(leader_port); wrote $written"

say "restarting $name on its data dir: it rejoins as a follower and catches up"
PORT=$leader START_PORT=$start END_PORT=$((start + 2)) bin/start-server.sh --run-dir "$run"
until curl -sf "http://127.0.0.1:$leader/znodes$written" >/dev/null 2>&1; do
    if (( ($(date +%s%N) - t0) / 1000000 > 30000 )); then
        echo "$name did not catch up; see $run/$name.log" >&2
        exit 1
    fi
    sleep 0.05
done
echo "$name has $written, written while it was dead"
bin/status.sh --run-dir "$run"
echo
echo "four-letter word on the peer port: echo ruok | nc 127.0.0.1 $((start + 10000))"
exec 3<>"/dev/tcp/127.0.0.1/$((start + 10000))"
printf ruok >&3
cat <&3
echo
