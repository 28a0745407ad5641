#!/usr/bin/env bash
# Sends N goals to the Mimic Queue brokers, one after another, as the original's
# send_requests.sh did, prints one line per answer and then the total time taken.
# Usage: scripts/send_requests.sh N [BROKER_PORT] [CLIENTS]
#   N            how many goals to send (a whole number, at least 1)
#   BROKER_PORT  send every goal to this broker (default: a random broker per goal)
#   CLIENTS      the brokers that receive this sender's goals from now on
#                (default: every broker, 9090,9091,9092)
# Each goal: a random player (Ronaldo, Messi, Pele, Maradona), club (FCB, RMA, MU) and
# score a-b (0..4 each), Minute 1, 2, ... (after 90, 1 again), and a random ZooWeeper
# server (ReceiverIp) for the broker to write it through.
# Environment: BROKER_PORTS (default 9090,9091,9092) and ZW_PORTS (default
# 8080,8081,8082), comma-separated, are the ports picked from; BROKER_HOST (default
# 127.0.0.1) is where the brokers listen.
# Exit status: 0 every goal was accepted, 1 a request failed, 2 bad usage.
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
fail_usage() { echo "send_requests.sh: $*" >&2; echo "(see send_requests.sh --help)" >&2; exit 2; }

is_port() { [[ "$1" =~ ^[0-9]{1,5}$ ]] && (( 10#$1 >= 1 && 10#$1 <= 65535 )); }
# Splits a comma-separated port list into the array named by $2; $3 names it in errors.
ports_of() {
  local list=$1 what=$3 p
  local -n out=$2
  out=()
  IFS=',' read -r -a items <<< "$list"
  for p in "${items[@]}"; do
    p=${p//[[:space:]]/}
    [[ -z "$p" ]] && continue
    is_port "$p" || fail_usage "$what: '$p' is not a port (1..65535)"
    out+=("$p")
  done
  (( ${#out[@]} > 0 )) || fail_usage "$what is empty"
}

case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
(( $# <= 3 )) || fail_usage "too many arguments (N [BROKER_PORT] [CLIENTS])"
n=$1
[[ "$n" =~ ^[0-9]+$ ]] && (( 10#$n >= 1 )) || fail_usage "N must be a whole number of at least 1, not '$n'"
n=$((10#$n))

ports_of "${BROKER_PORTS:-9090,9091,9092}" brokers BROKER_PORTS
ports_of "${ZW_PORTS:-8080,8081,8082}" servers ZW_PORTS
default_clients=$(IFS=','; echo "${brokers[*]}")
if [[ -n "${2:-}" ]]; then
  is_port "$2" || fail_usage "BROKER_PORT must be a port (1..65535), not '$2'"
  brokers=("$2")
fi
clients=${3:-$default_clients}
clients=${clients//[[:space:]]/}
ports_of "$clients" _clients CLIENTS
host=${BROKER_HOST:-127.0.0.1}
command -v curl >/dev/null || { echo "send_requests.sh: curl is needed" >&2; exit 2; }

players=(Ronaldo Messi Pele Maradona)
clubs=(FCB RMA MU)
body_file=$(mktemp)
trap 'rm -f "$body_file" "$body_file.err"' EXIT

failed=0
start=$(date +%s.%N)
for ((i = 1; i <= n; i++)); do
  broker=${brokers[RANDOM % ${#brokers[@]}]}
  receiver=${servers[RANDOM % ${#servers[@]}]}
  minute=$(( (i - 1) % 90 + 1 ))
  body=$(printf '{"metadata": {"ReceiverIp": "%s", "Clients": "%s"}, "gameResults": {"Minute": %d, "Player": "%s", "Club": "%s", "Score": "%d-%d"}}' \
    "$receiver" "$clients" "$minute" "${players[RANDOM % 4]}" "${clubs[RANDOM % 3]}" \
    $((RANDOM % 5)) $((RANDOM % 5)))
  url="http://$host:$broker/addScore"
  if status=$(curl -sS --max-time 30 -o "$body_file" -w '%{http_code}' \
      -H 'Content-Type: application/json' --data "$body" "$url" 2>"$body_file.err"); then
    answer=$(tr '\n' ' ' < "$body_file")
    echo "$i/$n $url (via $receiver): $status ${answer% }"
    [[ "$status" =~ ^2 ]] || failed=$((failed + 1))
  else
    echo "$i/$n $url (via $receiver): failed: $(tr '\n' ' ' < "$body_file.err")"
    failed=$((failed + 1))
  fi
  rm -f "$body_file.err"
done
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v n="$n" 'BEGIN { printf "total time for %d requests: %.6f s\n", n, e - s }'
if (( failed > 0 )); then
  echo "send_requests.sh: $failed of $n requests failed" >&2
  exit 1
fi
