#!/usr/bin/env bash
# The project's whole test run: formatting, lints, the purity check of the protocol core,
# and every test (unit, property, simulation, integration with real processes).
# Usage: scripts/check.sh [--quick]   (--quick is what CI runs; without it a release build
# of the simulation then sweeps 1,000 full-length seeds on each of 3, 5 and 7 servers).
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
    src/types.rs src/wire src/wire.rs src/zab src/zab.rs src/ztree src/ztree.rs; then
  echo "the pure core must not do IO, read clocks or spawn threads (see DESIGN.md, principle 1)" >&2
  exit 1
fi
echo "clean"

step "cargo clippy --all-targets --features sim -- -D warnings"
cargo clippy --all-targets --features sim -- -D warnings

step "chromium for the browser test (Debian's package, installed when missing)"
if [ -n "${CHROMIUM:-}" ]; then
  echo "using CHROMIUM=$CHROMIUM"
elif command -v chromium >/dev/null 2>&1; then
  echo "found $(command -v chromium)"
else
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  echo "installed $(command -v chromium)"
fi

step "kazoo for the ZooKeeper client-port test (pip, installed when missing)"
if python3 -c 'import kazoo' 2>/dev/null; then
  echo "found kazoo $(python3 -c 'import kazoo; print(kazoo.__version__)')"
else
  python3 -m pip install --quiet kazoo
  echo "installed kazoo"
fi

step "zkCli.sh for the zkCli test (Debian's zookeeper package, installed when missing)"
if [ -n "${ZKCLI:-}" ]; then
  echo "using ZKCLI=$ZKCLI"
elif [ -x /usr/share/zookeeper/bin/zkCli.sh ]; then
  echo "found /usr/share/zookeeper/bin/zkCli.sh"
else
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends zookeeper >/dev/null
  echo "installed /usr/share/zookeeper/bin/zkCli.sh"
fi

step "cargo test --features sim"
cargo test --features sim

if [ "$quick" = 0 ]; then
  for n in 3 5 7; do
    step "simulation sweep: 1,000 seeds on $n servers (release)"
    cargo run --release --features sim --bin zw-sim -- --seeds 1000 --servers "$n" --start 1000000
  done
fi
