#!/usr/bin/env bash
# The whole test suite, as the README's quick start and CI run it:
# formatting, lints, then every unit, property and end-to-end test (the
# end-to-end tests start the real binaries on ephemeral loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "rustfmt and clippy components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

step "cargo test"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
cargo test --quiet 2>&1 | tee "$results"

step "tuned-build smoke check (scripts/pgo-build.sh --check)"
scripts/pgo-build.sh --check

# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$results"
