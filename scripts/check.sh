#!/usr/bin/env bash
# The project's whole test run: formatting, lints, the purity check of the protocol core,
# and every test (unit, property, simulation, integration with real processes).
# Usage: scripts/check.sh [--quick]   (--quick is what CI runs; without it the simulation
# sweep runs more seeds).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown argument '$a' (try --help)" >&2; exit 2 ;;
  esac
done

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "purity: no IO, clocks, threads or IO crates in the protocol core"
if grep -rnE 'std::(net|fs|thread)|Instant::now|SystemTime::now|thread_rng|\b(mio|tiny_http|crossbeam_channel)::' \
    src/wire src/wire.rs src/zab src/zab.rs src/ztree src/ztree.rs; then
  echo "the pure core must not do IO, read clocks or spawn threads (see DESIGN.md, principle 1)" >&2
  exit 1
fi
echo "clean"

step "cargo clippy --all-targets --features sim -- -D warnings"
cargo clippy --all-targets --features sim -- -D warnings

step "cargo test --features sim"
if [ "$quick" = 1 ]; then export ZW_SIM_QUICK=1; fi
cargo test --features sim
