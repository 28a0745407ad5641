# Shared by the bin/ scripts (sourced, not run).

# pid_alive PID: true while PID runs. A killed server whose parent is gone may linger as a
# zombie until reaped; it no longer runs, so it counts as dead.
pid_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
    [[ $state != Z ]]
}
