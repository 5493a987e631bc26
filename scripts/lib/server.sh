# Starting and stopping a server under load scripts; sourced by
# scripts/bench.sh and pgo/train.sh.

# start_server LOG COMMAND...: runs COMMAND (an fkvs-server invocation,
# perhaps behind taskset) in the background with its output in LOG, and
# waits up to 10 s for its Ready line. Sets SERVER_PID, and PORT to the TCP
# port it reports (empty on a Unix socket).
# Returns 1, after printing LOG, if the server exits or never gets ready.
start_server() {
    local log=$1
    shift
    : >"$log"
    "$@" >"$log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 200); do
        if grep -q "Ready to accept connections" "$log"; then
            PORT=$(sed -n 's/.*Ready to accept connections via tcp on [^ ]*:\([0-9]*\).*/\1/p' "$log")
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "$*: did not start:" >&2
    cat "$log" >&2
    stop_server || true
    return 1
}

# stop_server: SIGTERM (a clean exit, so an instrumented server writes its
# profile), then waits; returns the server's exit status.
stop_server() {
    local status=0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || status=$?
    SERVER_PID=""
    return "$status"
}
