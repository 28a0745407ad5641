#!/usr/bin/env bash
# The demo: the goals timeline end to end. Builds, deploys 3 ZooWeeper servers, 3 brokers
# and 2 consumers on 127.0.0.1 (bin/deployment.sh), sends 10 goals, shows the timeline
# both consumers print, kills the ZooWeeper leader with SIGKILL, sends 5 more goals and
# shows they arrive in order, restarts the killed server, then stops everything it started.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: bin/demo.sh [--keep] [START_PORT]

  --keep        leave everything running at the end (stop it with bin/stop.sh --run-dir run/demo)
  START_PORT    first ZooWeeper HTTP port (default 8080, or ZW_START_PORT)
Ports: ZooWeeper 8080..8082 (Zab +10000), brokers 9090..9092, consumers 3000..3001;
ZW_START_PORT, BROKER_START_PORT and CONSUMER_START_PORT move them.
Everything (pids, logs, timelines, data) lives in ./run/demo, emptied at each start.
Needs: the Rust toolchain and curl.
USAGE
}

keep=0
zw_start=${ZW_START_PORT:-8080}
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --keep) keep=1; shift ;;
        -*) echo "demo.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) zw_start=$1; shift ;;
    esac
done
broker_start=${BROKER_START_PORT:-9090}
consumer_start=${CONSUMER_START_PORT:-3000}
for v in zw_start broker_start consumer_start; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "demo.sh: $v must be a port, not '${!v}'" >&2; exit 2; }
done
export ZW_START_PORT=$zw_start BROKER_START_PORT=$broker_start CONSUMER_START_PORT=$consumer_start

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=bin/common.sh
source bin/common.sh
run=run/demo
zw=("$zw_start" $((zw_start + 1)) $((zw_start + 2)))
brokers=("$broker_start" $((broker_start + 1)) $((broker_start + 2)))
consumers=("$consumer_start" $((consumer_start + 1)))
export ZW_PORTS BROKER_PORTS
ZW_PORTS=$(IFS=,; echo "${zw[*]}")
BROKER_PORTS=$(IFS=,; echo "${brokers[*]}")

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo.sh: $*" >&2; exit 1; }
ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_until SECONDS WHAT CMD...: polls CMD until it succeeds; fails naming WHAT.
wait_until() {
    local limit=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + limit))
    until "$@"; do
        ((SECONDS < deadline)) || die "$what: not so after ${limit}s (logs in $run/)"
        sleep 0.1
    done
}
lines() { [[ -f $1 ]] && wc -l <"$1" || echo 0; }
has_lines() { (($(lines "$1") >= $2)); }
leader_port() {
    local p
    for p in "${zw[@]}"; do
        if curl -sf --max-time 1 "http://127.0.0.1:$p/status" 2>/dev/null | grep -q '"role":"leading"'; then
            echo "$p"
            return 0
        fi
    done
    return 1
}
serving() { curl -sf --max-time 1 "http://127.0.0.1:$1/status" 2>/dev/null | grep -q '"serving":true'; }

# Refuse to wipe a run folder whose processes still run.
shopt -s nullglob
for f in "$run"/*.pid; do
    pid_alive "$(cat "$f")" &&
        die "$(basename "$f" .pid) of an earlier demo still runs; stop it: bin/stop.sh --run-dir $run"
done

say "building (release)"
cargo build --release --bins

say "bin/deployment.sh 3: 3 ZooWeeper servers, 3 brokers, 2 consumers (run folder $run)"
rm -rf "$run"
mkdir -p "$run"
cleanup() {
    local rc=$?
    if [[ $keep == 0 || $rc != 0 ]]; then
        say "stopping everything the demo started"
        bin/stop.sh --run-dir "$run" || true
    fi
}
trap cleanup EXIT
bin/deployment.sh --run-dir "$run" --data-dir "$run/data" 3

t0=$(ms)
say "scripts/send_requests.sh 10: 10 goals, each to a random broker via a random ZooWeeper server"
scripts/send_requests.sh 10

say "both consumers print the 10 goals"
for c in "${consumers[@]}"; do
    wait_until 15 "consumer-$c printed 10 goals" has_lines "$run/consumer-$c.timeline" 10
done
echo "sent and printed by both in $(($(ms) - t0)) ms"
echo "-- Ordered List of Football Goals Timeline, as consumer-${consumers[0]} prints it ($run/consumer-${consumers[0]}.timeline):"
cat "$run/consumer-${consumers[0]}.timeline"
cmp -s "$run/consumer-${consumers[0]}.timeline" "$run/consumer-${consumers[1]}.timeline" ||
    die "the two consumers printed different timelines"
echo "-- consumer-${consumers[1]} printed the same 10 lines, in the same order"
echo "pages: $(printf 'http://127.0.0.1:%s/  ' "${consumers[@]}")"
echo "brokers in ZooWeeper: /brokers/ids = [$(target/release/zwcli --servers "$(printf '127.0.0.1:%s,' "${zw[@]}")" ls /brokers/ids | tr '\n' ' ' | sed 's/ $//')]"

leader=$(leader_port) || die "no ZooWeeper leader"
say "SIGKILL the ZooWeeper leader (zw-$leader)"
kill -KILL "$(cat "$run/zw-$leader.pid")"
t0=$(ms)
others=()
for p in "${zw[@]}"; do [[ $p == "$leader" ]] || others+=("$p"); done
new_leader() { local l; l=$(leader_port) && [[ $l != "$leader" ]] && serving "${others[0]}" && serving "${others[1]}"; }
wait_until 15 "a new leader serves" new_leader
echo "new leader: zw-$(leader_port), serving $(($(ms) - t0)) ms after the kill"

say "5 more goals (Minutes 11..15); the first through the dead server: the broker fails over"
players=(Ronaldo Messi Pele Maradona) clubs=(FCB RMA MU)
for i in 0 1 2 3 4; do
    minute=$((11 + i))
    broker=${brokers[i % 3]}
    via=$leader
    ((i == 0)) || via=${others[i % 2]}
    body=$(printf '{"metadata": {"ReceiverIp": "%s", "Clients": "%s"}, "gameResults": {"Minute": %d, "Player": "%s", "Club": "%s", "Score": "%d-%d"}}' \
        "$via" "$BROKER_PORTS" "$minute" "${players[RANDOM % 4]}" "${clubs[RANDOM % 3]}" $((RANDOM % 5)) $((RANDOM % 5)))
    answer=$(curl -sS --max-time 30 -w ' %{http_code}' -H 'Content-Type: application/json' \
        --data "$body" "http://127.0.0.1:$broker/addScore") || die "POST :$broker/addScore failed"
    echo "minute $minute -> broker $broker via zw-$via: ${answer##* } ${answer% *}"
    [[ ${answer##* } == 200 ]] || die "broker $broker refused minute $minute"
done
for c in "${consumers[@]}"; do
    wait_until 15 "consumer-$c printed 15 goals" has_lines "$run/consumer-$c.timeline" 15
done
echo "-- consumer-${consumers[0]}'s timeline grew to $(lines "$run/consumer-${consumers[0]}.timeline") lines:"
tail -n 6 "$run/consumer-${consumers[0]}.timeline"
minutes=$(sed 's/ mins.*//' "$run/consumer-${consumers[0]}.timeline" | tr '\n' ' ')
[[ $minutes == "$(seq -s ' ' 1 15) " ]] || die "out of order: minutes $minutes"
cmp -s "$run/consumer-${consumers[0]}.timeline" "$run/consumer-${consumers[1]}.timeline" ||
    die "the two consumers printed different timelines"
echo "-- in order (Minutes 1..15), each once, and consumer-${consumers[1]} printed the same"

say "restarting zw-$leader on its data: it rejoins as a follower and catches up"
PORT=$leader START_PORT=${zw[0]} END_PORT=${zw[2]} \
    bin/start-server.sh --run-dir "$run" --data-dir "$run/data/zw-$leader"
# Caught up: it serves, and its own copy of a consumer's offset says 15.
offset_on() { target/release/zwcli --servers "127.0.0.1:$1" get "/consumers/consumer-${consumers[0]}" 2>/dev/null; }
caught_up() { serving "$leader" && [[ $(offset_on "$leader") == 15 ]]; }
wait_until 30 "zw-$leader caught up" caught_up
echo "zw-$leader has /consumers/consumer-${consumers[0]} = $(offset_on "$leader"), written while it was dead"
bin/status.sh --run-dir "$run"

if [[ $keep == 1 ]]; then
    say "left running (--keep)"
    echo "pages: $(printf 'http://127.0.0.1:%s/  ' "${consumers[@]}")"
    echo "more goals: ZW_PORTS=$ZW_PORTS BROKER_PORTS=$BROKER_PORTS scripts/send_requests.sh 10"
    echo "stop it all: bin/stop.sh --run-dir $run"
fi
