#!/usr/bin/env bash
# PGO training workload: drives the instrumented binaries in BIN_DIR through
# every command, every I/O backend the server accepts, pipeline depths 1, 16
# and 128, small and large values, unique and repeated keys. The server is
# stopped with SIGTERM so it exits normally and writes its profile.
#
# Usage: pgo/train.sh BIN_DIR [--quick]
# LLVM_PROFILE_FILE must be set by the caller (scripts/pgo-build.sh does).
set -euo pipefail

bin=${1:?usage: pgo/train.sh BIN_DIR [--quick]}
quick=${2:-}
requests=300000
sizes="16 512 4096"
depths="1 16 128"
if [ "$quick" = "--quick" ]; then
  requests=20000
  sizes="16 4096"
  depths="1 128"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source=scripts/lib/server.sh
source "$(dirname "$0")/../scripts/lib/server.sh"

bench() { "$bin/fkvs-benchmark" -q --no-counters "$@" >/dev/null; }
cli() { "$bin/fkvs-cli" -p "$PORT" "$@" >/dev/null; }

for backend in epoll io_uring; do
  if ! start_server "$work/server.log" "$bin/fkvs-server" --io-backend "$backend" --port 0; then
    echo "training: $backend backend not available here, skipped"
    continue
  fi
  echo "training: $backend backend"
  for depth in $depths; do
    bench -p "$PORT" -c 50 -n "$requests" -P "$depth" -t ping
    for size in $sizes; do
      bench -p "$PORT" -c 50 -n "$requests" -P "$depth" -t set -d "$size"
      bench -p "$PORT" -c 50 -n "$requests" -P "$depth" -t get -d "$size" --keyspace 1000
      bench -p "$PORT" -c 50 -n "$requests" -P "$depth" -t mixed --ratio 9:1 -d "$size" --keyspace 100000
    done
    bench -p "$PORT" -c 50 -n "$requests" -P "$depth" -t set -r
    bench -p "$PORT" -c 50 -n "$requests" -P "$depth" -t incr --keyspace 1000
  done
  # Every other command, and the error paths, through the CLI.
  for line in "SET t 10 EX 100" "TTL t" "EXPIRE t 5" "PERSIST t" "INCRBY t 7" "DECRBY t 3" \
              "DECR t" "INCR t" "GET t" "DEL t" "GET t" "INCR word" "SET word abc" "INCR word" \
              "KEYS" "INFO" "PING" "PING hello"; do
    # shellcheck disable=SC2086 # words are the command's tokens
    cli $line
  done
  stop_server
done

echo "training: unix socket"
start_server "$work/server.log" "$bin/fkvs-server" --unixsocket "$work/fkvs.sock"
"$bin/fkvs-benchmark" -q --no-counters --socket "$work/fkvs.sock" -c 10 -n "$requests" -P 16 -t set >/dev/null
stop_server
