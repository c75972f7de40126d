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
