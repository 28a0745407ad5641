#!/usr/bin/env bash
# Refreshes the recorded Apache ZooKeeper side of the differential tests and shows how
# ZooWeeper differs: starts a 3-server Apache ZooKeeper 3.8 ensemble on free loopback
# ports (Debian's `zookeeper` package, installed when missing; TTL znodes enabled), then
#   1. runs the sequence of tests/zk_differential.rs with its sessions on a follower and
#      records the normalised answers in tests/data/zk_differential.json;
#   2. runs it again on the leader and checks it matches the recording (so the recording
#      holds no timing accident);
#   3. records zkCli.sh's output for the script of tests/zk_cli.rs in
#      tests/data/zk_cli.json;
#   4. stops ZooKeeper, then runs both tests against ZooWeeper: each prints every
#      difference (step, request, ZooKeeper's answer, ZooWeeper's), known ones with their
#      reason, and fails on any other.
# Usage: scripts/zk-differential.sh [--keep-going]   (--keep-going: step 4 runs even if a
# recording step failed). Kills every process it started, by pid, also on errors.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

keep_going=0
for a in "$@"; do
    case "$a" in
        --keep-going) keep_going=1 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "zk-differential.sh: unknown argument '$a' (try --help)" >&2; exit 2 ;;
    esac
done

# shellcheck source=zookeeper-lib.sh
. scripts/zookeeper-lib.sh
zk_install

echo "== building (debug)" >&2
cargo build -q --bin zk-bench
cargo test -q --no-run --test zk_differential --test zk_cli 2>/dev/null
zkb=${CARGO_TARGET_DIR:-target}/debug/zk-bench

work=$(mktemp -d "${TMPDIR:-/tmp}/zk-differential.XXXXXX")
pids=()
finish() {
    local rc=$?
    stop_all
    if ((rc)); then
        echo "zk-differential.sh failed; ZooKeeper's files are kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap finish EXIT
trap 'exit 130' INT TERM

echo "== starting Apache ZooKeeper (3 servers)" >&2
ZK_JAVA_OPTS="-Dzookeeper.extendedTypesEnabled=true" zk_start "$work/zk" 3 "$zkb"
version=$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo unknown)
echo "   leader $zk_leader, follower $zk_follower, Debian package $version" >&2

failed=0
echo "== recording the differential sequence on the follower" >&2
ZK_DIFF_RECORD=$zk_follower ZK_DIFF_VERSION=$version \
    cargo test -q --test zk_differential -- --nocapture || failed=1
echo "== checking the recording against the leader" >&2
ZK_DIFF_AGAINST=$zk_leader cargo test -q --test zk_differential -- --nocapture || failed=1
echo "== recording zkCli.sh against the follower" >&2
ZK_CLI_RECORD=$zk_follower ZK_CLI_VERSION=$version \
    cargo test -q --test zk_cli -- --nocapture || failed=1
stop_all
if ((failed && !keep_going)); then
    echo "a recording step failed (see above); the recordings may be incomplete" >&2
    exit 1
fi

echo "== ZooWeeper against the recordings" >&2
rc=0
cargo test -q --test zk_differential -- --nocapture || rc=1
cargo test -q --test zk_cli -- --nocapture || rc=1
git --no-pager diff --stat -- tests/data/ || true
exit $((rc | failed))
