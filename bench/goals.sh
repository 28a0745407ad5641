#!/usr/bin/env bash
# Times goals through the whole path, producer -> broker -> ZooWeeper -> every broker's log
# -> every consumer, on release binaries: bin/deployment.sh N on spare ports, then ROUNDS
# rounds of scripts/send_requests.sh GOALS (sequential curl requests, as the original's
# table was measured), each timed until the producer has every answer and until both
# consumers have printed every goal. Prints a table and the medians.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    cat <<'USAGE'
usage: bench/goals.sh [--servers N] [--goals G] [--rounds R]

  --servers N   ZooWeeper servers (default 3)
  --goals G     goals per round (default 100)
  --rounds R    rounds (default 5)
Ports: ZooWeeper 8380.., brokers 9390..9392, consumers 3300/3301 (override with
ZW_START_PORT, BROKER_START_PORT, CONSUMER_START_PORT). Everything runs in a temp dir
and is stopped at the end.
USAGE
}

servers=3 goals=100 rounds=5
while [[ $# -gt 0 ]]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --servers) servers=${2:?}; shift 2 ;;
        --goals) goals=${2:?}; shift 2 ;;
        --rounds) rounds=${2:?}; shift 2 ;;
        *) usage >&2; exit 2 ;;
    esac
done
export ZW_START_PORT=${ZW_START_PORT:-8380}
export BROKER_START_PORT=${BROKER_START_PORT:-9390}
export CONSUMER_START_PORT=${CONSUMER_START_PORT:-3300}

cargo build --release --bins -q
work=$(mktemp -d /tmp/zw-goals-bench.XXXXXX)
run=$work/run
cleanup() { bin/stop.sh --run-dir "$run" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
bin/deployment.sh --run-dir "$run" --data-dir "$work/data" "$servers" >/dev/null

zw_ports=$(seq -s, "$ZW_START_PORT" $((ZW_START_PORT + servers - 1)))
broker_ports=$(seq -s, "$BROKER_START_PORT" $((BROKER_START_PORT + 2)))
c0=$run/consumer-$CONSUMER_START_PORT.timeline
c1=$run/consumer-$((CONSUMER_START_PORT + 1)).timeline

lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
now() { date +%s.%N; }

# The original's published seconds for 100 requests, by ensemble size.
case $servers in
    3) original=21.3898 ;; 5) original=22.5576 ;; 7) original=23.1910 ;; 9) original=24.3430 ;;
    *) original= ;;
esac
echo "| servers | round | goals | acknowledged s | on both consumers s | per goal ms | original s (100 requests) | speed-up per goal |"
echo "|---|---|---|---|---|---|---|---|"
acked=() delivered=()
for r in $(seq 1 "$rounds"); do
    want=$((r * goals))
    t0=$(now)
    ZW_PORTS=$zw_ports BROKER_PORTS=$broker_ports scripts/send_requests.sh "$goals" >/dev/null
    t1=$(now)
    deadline=$(( $(date +%s) + 120 ))
    until [[ $(lines "$c0") -ge $want && $(lines "$c1") -ge $want ]]; do
        if [[ $(date +%s) -gt $deadline ]]; then
            echo "consumers did not print $want goals within 120 s" >&2
            exit 1
        fi
        sleep 0.005
    done
    t2=$(now)
    a=$(awk -v x="$t1" -v y="$t0" 'BEGIN {print x - y}')
    d=$(awk -v x="$t2" -v y="$t0" 'BEGIN {print x - y}')
    acked+=("$a") delivered+=("$d")
    printf '| %s | %s | %s | %.3f | %.3f | %.2f | - | - |\n' "$servers" "$r" "$goals" "$a" "$d" \
        "$(awk -v d="$d" -v g="$goals" 'BEGIN {print d * 1000 / g}')"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ma=$(median "${acked[@]}") md=$(median "${delivered[@]}")
if [[ -n $original ]]; then
    speedup=$(awk -v o="$original" -v m="$md" -v g="$goals" 'BEGIN {printf "%.0fx", o / (m * 100 / g)}')
else
    original=- speedup=-
fi
printf '| %s | median | %s | %.3f | %.3f | %.2f | %s | %s |\n' "$servers" "$goals" "$ma" "$md" \
    "$(awk -v d="$md" -v g="$goals" 'BEGIN {print d * 1000 / g}')" "$original" "$speedup"
