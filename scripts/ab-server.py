#!/usr/bin/env python3
"""Interleaved A/B runs of fkvs-server variants under one constant load.

Each variant is a directory holding an `fkvs-server` binary (a name under
target/, e.g. `release`, `pgo`, `pgo-bolt`, or any path), optionally with
extra server flags: `label=DIR[:flag,flag]`, e.g.
`uring=release:--io-backend,io_uring`. Every round runs every workload on
every variant in turn (interleaved, so machine noise spreads evenly), with the
server pinned to CPU 0 and the load generator (always target/release's
fkvs-benchmark unless --client names another, so the client is constant)
pinned to CPU 1.

Per run it records the benchmark's throughput and the server's CPU time per
request, read from /proc/PID/task/*/schedstat (all threads) before and after
the load. It prints medians and ratios against the first variant.
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [("SET", "set"), ("GET", "get")]


def parse_variant(spec):
    label, _, rest = spec.partition("=")
    if not rest:
        rest = label
    directory, _, flags = rest.partition(":")
    path = Path(directory) if "/" in directory else ROOT / "target" / directory
    server = path / "fkvs-server"
    if not server.exists():
        sys.exit(f"ab-server: no {server} (build it first)")
    return label, server, [f for f in flags.split(",") if f]


def server_cpu_ns(pid):
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def start_server(server, flags):
    proc = subprocess.Popen(
        ["taskset", "-c", "0", str(server), "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 10
    for line in proc.stdout:
        match = re.search(r"Ready to accept connections via tcp on \S+:(\d+)", line)
        if match:
            return proc, int(match.group(1))
        if time.monotonic() > deadline:
            break
    proc.kill()
    sys.exit(f"ab-server: {server} {flags} did not start")


def run_once(server, flags, command, depth, requests, connections, client, keyspace):
    proc, port = start_server(server, flags)
    try:
        args = ["taskset", "-c", "1", str(client), "-p", str(port), "-c", str(connections),
                "-n", str(requests), "-P", str(depth), "-t", command]
        if command == "get":
            args += ["--keyspace", str(keyspace)]
        before = server_cpu_ns(proc.pid)
        out = subprocess.run(args, capture_output=True, text=True, check=False)
        after = server_cpu_ns(proc.pid)
        match = re.search(r"Throughput: ([0-9.]+) req/s", out.stdout)
        if out.returncode != 0 or not match:
            sys.exit(f"ab-server: benchmark failed:\n{out.stdout}\n{out.stderr}")
        return float(match.group(1)), (after - before) / requests
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2_000_000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--client", type=Path, default=ROOT / "target" / "release" / "fkvs-benchmark",
                        help="the fkvs-benchmark binary driving every variant")
    parser.add_argument("--commands", default="SET,GET", help="which of SET and GET to run")
    parser.add_argument("--depths", default="1,16,128", help="pipeline depths to run")
    parser.add_argument("--keyspace", type=int, default=1000,
                        help="keys GET reads (preloaded; 1000000 exercises a store larger than the caches)")
    parser.add_argument("variants", nargs="+")
    options = parser.parse_args()
    commands = options.commands.split(",")
    workloads = [(name, command, int(depth)) for name, command in COMMANDS if name in commands
                 for depth in options.depths.split(",")]
    variants = [parse_variant(v) for v in options.variants]
    client = options.client
    if not client.exists():
        sys.exit(f"ab-server: no {client}: run cargo build --release first")

    results = {}  # (workload, label) -> [(req/s, ns/req)]
    for round_index in range(options.rounds):
        for name, command, depth in workloads:
            for label, server, flags in variants:
                rate, ns = run_once(server, flags, command, depth, options.requests, options.connections, client,
                                    options.keyspace)
                results.setdefault((name, depth, label), []).append((rate, ns))
                print(f"round {round_index + 1}: {name} P={depth} {label}: {rate:,.0f} req/s, "
                      f"{ns:.0f} srv ns/req", file=sys.stderr)

    base = variants[0][0]
    print(f"\n{options.rounds} interleaved rounds, {options.requests} requests, "
          f"{options.connections} connections; server on CPU 0, load on CPU 1; medians.\n")
    print("| workload | variant | req/s | srv ns/req | req/s ratio | ns/req ratio |")
    print("|---|---|---|---|---|---|")
    for name, _, depth in workloads:
        base_rate = statistics.median(r for r, _ in results[(name, depth, base)])
        base_ns = statistics.median(n for _, n in results[(name, depth, base)])
        for label, _, _ in variants:
            rate = statistics.median(r for r, _ in results[(name, depth, label)])
            ns = statistics.median(n for _, n in results[(name, depth, label)])
            print(f"| {name} P={depth} | {label} | {rate:,.0f} | {ns:.0f} | "
                  f"{rate / base_rate:.3f} | {ns / base_ns:.3f} |")


if __name__ == "__main__":
    main()
