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
