#!/usr/bin/env bash
# The standard benchmark matrix in one command: builds the release binaries,
# then for every backend × workload × pipeline depth starts a fresh
# fkvs-server pinned to CPU 0, drives it with fkvs-benchmark pinned to
# CPU 1, and writes a Markdown table (req/s, p50/p99 latency, server and
# client CPU ns per request) into docs/performance.md between the
# bench.sh marker comments, so a rerun replaces the previous table. With
# redis-server and redis-benchmark installed, Redis rows are added for
# reference.
#
# Usage: scripts/bench.sh [--quick]
#
# Environment (defaults in brackets):
#   BACKENDS        io backends to run                    [epoll io_uring]
#   PIPELINES       pipeline depths                       [1 16 128]
#   CLIENTS         connections                           [50]
#   REQUESTS        requests per run at P=1; deeper runs
#                   use REQUESTS×P, capped at REQUESTS_MAX [100000]
#   REQUESTS_MAX                                          [2000000]
#   KEYSPACE        keys for the random-key workloads     [1000000]
#   SERVER_CPU / CLIENT_CPU  CPUs to pin to               [0 / 1]
#   REDIS           set to 0 to skip Redis rows           [1]
#   OUT             the Markdown file to update           [docs/performance.md]
# --quick divides REQUESTS and REQUESTS_MAX by 5 (same matrix, shorter runs).
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS=${BACKENDS:-"epoll io_uring"}
PIPELINES=${PIPELINES:-1 16 128}
CLIENTS=${CLIENTS:-50}
REQUESTS=${REQUESTS:-100000}
REQUESTS_MAX=${REQUESTS_MAX:-2000000}
KEYSPACE=${KEYSPACE:-1000000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
REDIS=${REDIS:-1}
OUT=${OUT:-docs/performance.md}
COMMAND_LINE="scripts/bench.sh${*:+ $*}"
if [[ "${1:-}" == "--quick" ]]; then
    REQUESTS=$((REQUESTS / 5)); REQUESTS_MAX=$((REQUESTS_MAX / 5))
elif [[ $# -gt 0 ]]; then
    sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2
fi

# label | fkvs-benchmark flags (the Redis rows reuse the label).
WORKLOADS=(
    "PING|-t ping"
    "SET one key|-t set"
    "GET one key|-t get"
    "INCR one key|-t incr"
    "SET unique keys (32 B)|-t set -r"
    "GET random key of $KEYSPACE|-t get --keyspace $KEYSPACE"
    "mixed 9:1, zipf 0.99 over $KEYSPACE|-t mixed --ratio 9:1 --keyspace $KEYSPACE --distribution zipf"
)

for tool in taskset jq; do
    command -v "$tool" >/dev/null || { echo "bench.sh: $tool is required" >&2; exit 1; }
done

echo "==> cargo build --release (fkvs-server, fkvs-benchmark)" >&2
cargo build --release --quiet --bin fkvs-server --bin fkvs-benchmark
SERVER_BIN=target/release/fkvs-server
BENCH_BIN=target/release/fkvs-benchmark

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=scripts/lib/server.sh
source "$(dirname "$0")/lib/server.sh"

# start_fkvs BACKEND: a fresh fkvs-server on a free port, pinned to SERVER_CPU.
start_fkvs() {
    start_server "$WORK/server.log" taskset -c "$SERVER_CPU" "$SERVER_BIN" --port 0 --io-backend "$1"
}

requests_for() { local n=$((REQUESTS * $1)); echo $((n < REQUESTS_MAX ? n : REQUESTS_MAX)); }

# num VALUE DECIMALS: rounded ("-" for null).
num() { [[ "$1" == "null" || -z "$1" ]] && echo "-" || printf "%.${2}f" "$1"; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS="$WORK/rows.md"
: >"$ROWS"
FAILED_RUNS=0
for backend in $BACKENDS; do
    if ! start_fkvs "$backend"; then
        echo "| fkvs $backend | backend not available in this build | | | | | | |" >>"$ROWS"
        FAILED_RUNS=$((FAILED_RUNS + 1))
        continue
    fi
    stop_server
    for entry in "${WORKLOADS[@]}"; do
        label=${entry%%|*}
        read -r -a flags <<<"${entry#*|}"
        for depth in $PIPELINES; do
            n=$(requests_for "$depth")
            start_fkvs "$backend" || exit 1
            echo "==> $backend  $label  P=$depth  n=$n" >&2
            status=0
            taskset -c "$CLIENT_CPU" "$BENCH_BIN" -p "$PORT" -c "$CLIENTS" -n "$n" -P "$depth" "${flags[@]}" --json \
                >"$WORK/run.json" 2>"$WORK/run.err" || status=$?
            stop_server
            if [[ $status -ne 0 ]] || ! jq -e . "$WORK/run.json" >/dev/null 2>&1; then
                echo "    failed (exit $status): $(tail -n 1 "$WORK/run.err")" >&2
                FAILED_RUNS=$((FAILED_RUNS + 1))
                echo "| fkvs $backend | $label | $depth | failed | | | | |" >>"$ROWS"
                continue
            fi
            read -r rps p50 p99 srv cli < <(jq -r '[.throughput_rps, .latency.p50_us, .latency.p99_us,
                .server.cpu_ns_per_request, .client.cpu_ns_per_request] | map(tostring) | join(" ")' "$WORK/run.json")
            echo "| fkvs $backend | $label | $depth | $(num "$rps" 0) | $(num "$p50" 1) | $(num "$p99" 1) | $(num "$srv" 0) | $(num "$cli" 0) |" >>"$ROWS"
        done
    done
done

# --- Redis, for reference --------------------------------------------------
# schedstat_ns PID: CPU ns of every thread of PID.
schedstat_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d", s}'; }

REDIS_NOTE=""
if [[ "$REDIS" != 0 ]] && command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    REDIS_VERSION=$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')
    REDIS_NOTE="Redis $REDIS_VERSION rows: \`redis-benchmark -c $CLIENTS -P D\` (its latency is per request, not per batch), server pinned the same way, no persistence."
    for test in "PING|PING_MBULK|ping_mbulk" "SET one key|SET|set" "GET one key|GET|get" "INCR one key|INCR|incr"; do
        IFS='|' read -r label name arg <<<"$test"
        for depth in $PIPELINES; do
            n=$(requests_for "$depth")
            port=$((20000 + RANDOM % 20000))
            taskset -c "$SERVER_CPU" redis-server --port "$port" --save "" --appendonly no --daemonize no \
                >"$WORK/redis.log" 2>&1 &
            SERVER_PID=$!
            for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
            echo "==> redis  $label  P=$depth  n=$n" >&2
            before=$(schedstat_ns "$SERVER_PID")
            # bash's `time`: user and system seconds of the child, 1 ms resolution.
            client_cpu=$( { TIMEFORMAT='%3U %3S'; time taskset -c "$CLIENT_CPU" redis-benchmark -p "$port" \
                -c "$CLIENTS" -n "$n" -P "$depth" -t "$arg" --csv >"$WORK/redis.csv" 2>/dev/null; } 2>&1 | tail -n 1)
            after=$(schedstat_ns "$SERVER_PID")
            stop_server
            line=$(grep -i "^\"$name\"" "$WORK/redis.csv" | head -n 1 | tr -d '"')
            IFS=',' read -r _ rps _avg _min p50 _p95 p99 _max <<<"$line"
            read -r user sys <<<"$client_cpu"
            srv=$(awk -v d=$((after - before)) -v n="$n" 'BEGIN {printf "%d", d / n}')
            cli=$(awk -v u="$user" -v s="$sys" -v n="$n" 'BEGIN {printf "%d", (u + s) * 1e9 / n}')
            echo "| redis | $label | $depth | $(num "$rps" 0) | $(num "$(awk -v v="$p50" 'BEGIN{print v*1000}')" 1) | $(num "$(awk -v v="$p99" 'BEGIN{print v*1000}')" 1) | $srv | $cli |" >>"$ROWS"
        done
    done
fi

# --- write the table between the markers ------------------------------------
BEGIN_MARK="<!-- bench.sh:begin (generated by scripts/bench.sh; a rerun replaces this block) -->"
END_MARK="<!-- bench.sh:end -->"
TABLE="$WORK/table.md"
{
    echo "$BEGIN_MARK"
    echo
    echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') at commit \`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo "on $(nproc) vCPU $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r),"
    echo "with \`$COMMAND_LINE\` (BACKENDS=\"$BACKENDS\" PIPELINES=\"$PIPELINES\" CLIENTS=$CLIENTS"
    echo "REQUESTS=$REQUESTS REQUESTS_MAX=$REQUESTS_MAX KEYSPACE=$KEYSPACE). Server pinned to CPU $SERVER_CPU, client to"
    echo "CPU $CLIENT_CPU, loopback TCP, $CLIENTS connections, a fresh server per row. Requests per row: $REQUESTS × P, at most"
    echo "$REQUESTS_MAX. Latency is the closed-loop round trip of one pipelined batch. \"srv ns/req\" is the server's CPU"
    echo "(all threads, \`/proc/PID/task/*/schedstat\`) per completed request; \"client ns/req\" is the load generator's"
    echo "(fkvs-benchmark: its process CPU clock; redis-benchmark: bash \`time\`). ${REDIS_NOTE:-No Redis rows: redis-server/redis-benchmark not installed.}"
    echo "Load average (1/5/15 min) before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg); other processes share"
    echo "these CPUs, so compare rows of one run, and CPU per request rather than req/s."
    echo
    echo "| server | workload | P | req/s | p50 µs | p99 µs | srv ns/req | client ns/req |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    cat "$ROWS"
    echo
    echo "$END_MARK"
} >"$TABLE"

mkdir -p "$(dirname "$OUT")"
[[ -f "$OUT" ]] || printf '# Performance\n' >"$OUT"
if grep -qF "<!-- bench.sh:begin" "$OUT" && grep -qF "$END_MARK" "$OUT"; then
    awk -v table="$TABLE" '
        /<!-- bench.sh:begin/ { while ((getline line < table) > 0) print line; skipping = 1; next }
        /<!-- bench.sh:end -->/ { skipping = 0; next }
        !skipping { print }
    ' "$OUT" >"$WORK/out.md"
    cat "$WORK/out.md" >"$OUT"
else
    { echo; echo "## Benchmarks"; echo; cat "$TABLE"; } >>"$OUT"
fi
cat "$TABLE" | sed -n '/^|/p'
echo "==> table written to $OUT" >&2
if [[ $FAILED_RUNS -gt 0 ]]; then
    echo "bench.sh: $FAILED_RUNS run(s) failed" >&2
    exit 1
fi
