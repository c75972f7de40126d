# Shell helpers shared by the comparison scripts (sourced, not run).

# wait_port PORT: until something listens on 127.0.0.1:PORT (at most 5 s).
wait_port() {
    for _ in $(seq 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "server did not come up on port $1" >&2
    return 1
}

# harness_in DIR: the echo harness binary in DIR, a folder of prebuilt servers (VOLLEY_BASE,
# BIN): `echo-harness`, or `echo` in a build from before the harness left examples/echo.rs
# (older commits named the harness `echo`).
harness_in() {
    if [ -e "$1/echo-harness" ]; then echo "$1/echo-harness"; else echo "$1/echo"; fi
}

# cpu_ticks PID: the process's CPU time so far (utime + stime, /proc/PID/stat fields 14 and 15),
# in clock ticks (getconf CLK_TCK per second).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# busy_ticks: the CPU time the whole machine has spent busy (every CPU, /proc/stat), in ticks.
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }

# cpu_over_window LOG PID...: once the uWebSockets load generator writing LOG (load_test,
# broadcast_test) says "Running benchmark" (it connects first), prints the CPU ticks of each PID
# over its 2nd and 3rd reports (4 s apart, from 4 to 12 s), the window whose rates
# `window_rates` reads, then the whole machine's busy ticks over the same window.
cpu_over_window() {
    local log=$1 p i=0 m0
    shift
    for _ in $(seq 600); do
        grep -q "Running benchmark" "$log" 2>/dev/null && break
        sleep 0.1
    done
    sleep 4.05
    local before=() after=()
    for p in "$@"; do before+=("$(cpu_ticks "$p")"); done
    m0=$(busy_ticks)
    sleep 8
    for p in "$@"; do
        after+=($(($(cpu_ticks "$p") - before[i])))
        i=$((i + 1))
    done
    echo "${after[*]} $(($(busy_ticks) - m0))"
}

# window_rates LOG: the rates of the load generator's 2nd and 3rd reports ("Msg/sec: N",
# "Iterations/second (C clients): N"), the window of `cpu_over_window`.
window_rates() {
    grep -oE '(Msg/sec|Iterations/second \([0-9]+ clients\)): [0-9.]+' "$1" |
        awk '{print $NF}' | sed -n '2,3p' | tr '\n' ' ' || true
}
