#!/usr/bin/env bash
# Long deterministic-simulation sweep of the Zab core over 3, 5 and 7 servers.
#
#   scripts/sim-sweep.sh                 # 30,000 seeds from seed 0, full-length runs
#   scripts/sim-sweep.sh 100000 500000   # 100,000 seeds from seed 500,000
#   JOBS=4 scripts/sim-sweep.sh          # split the seeds over 4 processes
#   MUTATION=skip-trunc scripts/sim-sweep.sh 1000
#
# Each violation prints its seed, the invariant and the last events before it; replay one
# with: target/release/zw-sim --seed S --servers N --trace
# Exits 0 when no seed broke an invariant.
set -euo pipefail

SEEDS=${1:-30000}
START=${2:-0}
JOBS=${JOBS:-1}
cd "$(dirname "$0")/.."

cargo build --release --features sim --bin zw-sim
BIN=target/release/zw-sim
ARGS=()
if [[ -n "${MUTATION:-}" ]]; then
    ARGS+=(--mutation "$MUTATION")
fi

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
# Each job takes a contiguous block whose length is a multiple of 3, so seed s still runs
# on 3, 5 or 7 servers by s mod 3 and the sizes stay balanced.
PER=$(( (SEEDS / JOBS + 2) / 3 * 3 ))
PIDS=()
for ((j = 0; j < JOBS; j++)); do
    FROM=$((START + j * PER))
    COUNT=$PER
    if ((j == JOBS - 1)); then
        COUNT=$((START + SEEDS - FROM))
    fi
    ((COUNT > 0)) || continue
    "$BIN" --seeds "$COUNT" --start "$FROM" "${ARGS[@]}" >"$OUT/job$j.txt" &
    PIDS+=($!)
done

STATUS=0
for pid in "${PIDS[@]}"; do
    wait "$pid" || STATUS=1
done

TOTAL_SEEDS=0
TOTAL_EVENTS=0
TOTAL_VIOLATIONS=0
for f in "$OUT"/job*.txt; do
    cat "$f"
    echo
    read -r s e v < <(tail -n 1 "$f" | sed -E 's/seeds=([0-9]+) events=([0-9]+) violations=([0-9]+)/\1 \2 \3/')
    TOTAL_SEEDS=$((TOTAL_SEEDS + s))
    TOTAL_EVENTS=$((TOTAL_EVENTS + e))
    TOTAL_VIOLATIONS=$((TOTAL_VIOLATIONS + v))
done
echo "seeds=$TOTAL_SEEDS events=$TOTAL_EVENTS violations=$TOTAL_VIOLATIONS"
exit "$STATUS"
