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

# cpu_over_window PID LOG: once the uWebSockets load generator writing LOG (load_test,
# broadcast_test) says "Running benchmark" (it connects first), prints PID's CPU ticks over its
# 2nd and 3rd reports (4 s apart, from 4 to 12 s), the window whose rates `window_rates` reads.
cpu_over_window() {
    for _ in $(seq 600); do
        grep -q "Running benchmark" "$2" 2>/dev/null && break
        sleep 0.1
    done
    sleep 4.05
    local c0
    c0=$(cpu_ticks "$1")
    sleep 8
    echo $(($(cpu_ticks "$1") - c0))
}

# window_rates LOG: the rates of the load generator's 2nd and 3rd reports ("Msg/sec: N",
# "Iterations/second (C clients): N"), the window of `cpu_over_window`.
window_rates() {
    grep -oE '(Msg/sec|Iterations/second \([0-9]+ clients\)): [0-9.]+' "$1" |
        awk '{print $NF}' | sed -n '2,3p' | tr '\n' ' ' || true
}
