# Apache ZooKeeper on loopback, for the scripts that compare it with ZooWeeper
# (bench/zookeeper.sh, scripts/zk-differential.sh). Source it; it defines:
#
#   zk_install              installs Debian's `zookeeper` package when it is missing
#                           (as root or with sudo -n) and sets zk_cp, the java classpath
#   zk_start DIR N ZKB      starts an N-server ensemble under DIR (zoo.cfg written by
#                           `ZKB zk-config`, ZKB being a zk-bench binary), waits until
#                           every server is leader or follower, and sets zk_hosts (every
#                           client address), zk_leader, zk_follower (one of them) and
#                           zk_pids. Each pid is also appended to the caller's `pids`
#                           array so its cleanup can kill them. Extra JVM flags (system
#                           properties) come from ZK_JAVA_OPTS.
#   stop_all                stops every pid in the caller's `pids` array: SIGTERM, up to
#                           5 s for them to exit, then SIGKILL; empties `pids`
#
# zk_install and zk_start exit the script with a message on failure.

zk_jar=/usr/share/java/zookeeper.jar

zk_install() {
    if [[ ! -f $zk_jar ]]; then
        echo "== installing Debian's zookeeper package" >&2
        if [[ $(id -u) == 0 ]]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y zookeeper >&2
        elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y zookeeper >&2
        else
            echo "$zk_jar is missing and apt-get needs root (or sudo -n)" >&2
            exit 1
        fi
    fi
    zk_cp=$zk_jar
    [[ -d /etc/zookeeper/conf ]] && zk_cp=/etc/zookeeper/conf:$zk_cp
    # Debian's package has no slf4j binding, so ZooKeeper logs nothing at all; the simple
    # one (in libslf4j-java, installed with it) writes warnings to server.log.
    if [[ -f /usr/share/java/slf4j-simple.jar ]]; then
        zk_cp=$zk_cp:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar
    fi
    return 0
}

zk_start() {
    local dir=$1 n=$2 zkb=$3 id port deadline mode h
    local -a jopts=()
    read -r -a jopts <<<"${ZK_JAVA_OPTS:-}"
    zk_hosts=() zk_leader= zk_follower= zk_pids=()
    mkdir -p "$dir"
    while read -r id port; do
        java -Dzookeeper.log.dir="$dir/zk-$id" -Dzookeeper.root.logger=WARN,CONSOLE \
            -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
            -Dorg.slf4j.simpleLogger.showDateTime=true \
            "${jopts[@]}" -cp "$zk_cp" org.apache.zookeeper.server.quorum.QuorumPeerMain \
            "$dir/zk-$id/zoo.cfg" >"$dir/zk-$id/server.log" 2>&1 </dev/null &
        pids+=($!) zk_pids+=($!)
        zk_hosts+=("127.0.0.1:$port")
    done < <("$zkb" zk-config --servers "$n" --dir "$dir")
    deadline=$((SECONDS + 180))
    for h in "${zk_hosts[@]}"; do
        until mode=$("$zkb" four "$h" srvr 2>/dev/null | awk '/^Mode:/ {print $2}') &&
            [[ $mode == leader || $mode == follower || $mode == standalone ]]; do
            if ((SECONDS >= deadline)); then
                echo "ZooKeeper server $h is not up; see $dir/zk-*/server.log" >&2
                tail -5 "$dir"/zk-*/server.log >&2 || true
                exit 1
            fi
            sleep 0.2
        done
        [[ $mode == follower && -z $zk_follower ]] && zk_follower=$h
        [[ $mode == leader || $mode == standalone ]] && zk_leader=$h
    done
    return 0
}

stop_all() {
    local p
    ((${#pids[@]})) || return 0
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}
