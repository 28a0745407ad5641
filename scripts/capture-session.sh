#!/usr/bin/env bash
# Captures a real session of the peer protocol: starts 3 servers on 127.0.0.1 (HTTP
# 18080..18082, Zab 28080..28082), records their traffic with tcpdump, sends two writes,
# stops the servers, and splits the capture into one stream file per connection direction
# (scripts/pcap-streams.py), printing each stream decoded by zw-wire.
# Usage: scripts/capture-session.sh [OUT_DIR]   (default ./run/capture; needs tcpdump and
# the right to capture on lo, i.e. root; apt-get install tcpdump)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
case ${1:-} in -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
out=${1:-run/capture}
command -v tcpdump >/dev/null || { echo "capture-session.sh: tcpdump is not installed" >&2; exit 1; }
cargo build --release --bin zooweeper --bin zw-wire
rm -rf "$out" && mkdir -p "$out/data"
members=(--server 1=127.0.0.1:18080:28080 --server 2=127.0.0.1:18081:28081
         --server 3=127.0.0.1:18082:28082)

servers=()
tcpdump_pid=
cleanup() {
    for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done
    servers=()
    if [[ -n $tcpdump_pid ]]; then
        sleep 0.5 # let tcpdump write out what it has received
        kill -INT "$tcpdump_pid" 2>/dev/null || true
        tcpdump_pid=
    fi
    wait 2>/dev/null || true
}
trap cleanup EXIT

tcpdump -i lo -U --immediate-mode -w "$out/session.pcap" 'tcp portrange 28080-28082' 2>"$out/tcpdump.log" &
tcpdump_pid=$!
until grep -q 'listening on' "$out/tcpdump.log" 2>/dev/null; do sleep 0.05; done
for id in 1 2 3; do
    target/release/zooweeper --id "$id" "${members[@]}" --data-dir "$out/data/$id" \
        --log warn 2>"$out/zw-$id.log" &
    servers+=($!)
done
until curl -sf localhost:18081/status 2>/dev/null | grep -q '"serving":true'; do sleep 0.05; done
curl -sf -XPOST localhost:18081/znodes/goals -d 'Messi 12' >/dev/null
curl -sf -XPOST localhost:18082/metadata \
    -d '{"Metadata":{"SenderIp":"9090","ReceiverIp":"8082","Timestamp":"t","Clients":"9090,9091"}}' \
    >/dev/null
# A few pings go by, then everything stops.
for _ in 1 2 3; do curl -sf localhost:18080/status >/dev/null; sleep 0.1; done
cleanup

scripts/pcap-streams.py "$out/session.pcap" "$out/streams"
for f in "$out"/streams/*.bin; do
    echo "== $f"
    target/release/zw-wire decode "$f" || true
done
