#!/usr/bin/env bash
# The tuned build: target-cpu=native + fat LTO (from .cargo/config.toml and
# Cargo.toml) + profile-guided optimisation, optionally BOLT, and an
# interleaved A/B run that shows what it gains.
#
#   scripts/pgo-build.sh           full pipeline (~10 min on 2 cores)
#   scripts/pgo-build.sh --quick   short training and a short A/B run
#   scripts/pgo-build.sh --bolt    also a BOLT pass (needs llvm-bolt 22)
#   scripts/pgo-build.sh --check   CI smoke: instrumented build, a short
#                                  training run writes a profile, merge works
#
# Binaries: plain release in target/release/, PGO in target/pgo/,
# PGO+BOLT in target/pgo-bolt/. Profiles (machine-specific) in profiles/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

mode=full; bolt=no
for arg in "$@"; do
  case $arg in
    --quick) mode=quick ;;
    --check) mode=check ;;
    --bolt) bolt=yes ;;
    *) echo "usage: $0 [--quick|--check] [--bolt]" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'pgo-build: %s\n' "$*" >&2; exit 1; }

triple=$(rustc -vV | sed -n 's/^host: //p')
instrumented_dir=$root/target/$triple/release
profiles=$root/profiles

# 1. Tools.
sysroot=$(rustc --print sysroot)
llvm_bin=$sysroot/lib/rustlib/$triple/bin
if [ ! -x "$llvm_bin/llvm-profdata" ]; then
  step "installing llvm-tools-preview (llvm-profdata matching rustc's LLVM)"
  rustup component add llvm-tools-preview
fi
if ! cargo pgo --version >/dev/null 2>&1 || [ "$(cargo pgo --version | awk '{print $2}')" != "0.3.0" ]; then
  step "installing cargo-pgo 0.3.0 (about 30 s)"
  cargo install cargo-pgo --version 0.3.0 --locked
fi
if [ "$bolt" = yes ]; then
  export PATH=/usr/lib/llvm-22/bin:$PATH
  command -v llvm-bolt >/dev/null || die "--bolt needs llvm-bolt 22: apt-get install bolt-22"
fi

# Fails loudly when the optimised build could not use the profile.
check_profile_use() {
  if grep -Eiq 'hash mismatch|corrupt|malformed|no profile data|profile .* not found' "$1"; then
    grep -Ei 'hash mismatch|corrupt|malformed|no profile data|profile .* not found' "$1" | head -5 >&2
    die "the optimised build reported profile problems (see above)"
  fi
}

# 2. Instrumented build.
step "instrumented build (cargo pgo build)"
rm -rf "$profiles"/*.profraw "$profiles"/*.profdata
cargo pgo build --profiles-dir "$profiles" -- --bins

# 3. Training.
step "training with pgo/train.sh"
export LLVM_PROFILE_FILE=$profiles/fkvs-%m-%p.profraw
if [ "$mode" = full ]; then pgo/train.sh "$instrumented_dir"; else pgo/train.sh "$instrumented_dir" --quick; fi
unset LLVM_PROFILE_FILE
raw_count=$(find "$profiles" -name '*.profraw' -size +0 | wc -l)
[ "$raw_count" -gt 0 ] || die "training wrote no profile (did the server exit normally?)"
echo "$raw_count non-empty raw profiles"

if [ "$mode" = check ]; then
  step "merge check"
  "$llvm_bin/llvm-profdata" merge -o "$profiles/check.profdata" "$profiles"/*.profraw
  [ -s "$profiles/check.profdata" ] || die "merge produced an empty profile"
  "$llvm_bin/llvm-profdata" show "$profiles/check.profdata" | grep -E 'Total functions|Maximum function count'
  echo "pgo-build --check: instrumented build, training and merge all work"
  exit 0
fi

# 4 + 5. Merge into profiles/ and build the optimised binaries.
step "optimised build (cargo pgo optimize)"
cargo pgo optimize --profiles-dir "$profiles" -- --bins 2>&1 | tee "$root/target/pgo-optimize.log"
check_profile_use "$root/target/pgo-optimize.log"
mkdir -p target/pgo
cp "$instrumented_dir"/fkvs-server "$instrumented_dir"/fkvs-cli "$instrumented_dir"/fkvs-benchmark target/pgo/

# 6. Optional BOLT pass on top of PGO.
variants="release pgo"
if [ "$bolt" = yes ]; then
  step "BOLT: instrumented build, training, optimised build"
  # cargo pgo's BOLT steps read PGO profiles from its default directory.
  rm -rf target/pgo-profiles && ln -s "$profiles" target/pgo-profiles
  cargo pgo bolt build --with-pgo -- --bin fkvs-server
  # Train the BOLT-instrumented server with the PGO client tools.
  bolt_train=$root/target/bolt-train
  mkdir -p "$bolt_train"
  ln -sf "$instrumented_dir/fkvs-server-bolt-instrumented" "$bolt_train/fkvs-server"
  ln -sf "$root/target/pgo/fkvs-cli" "$bolt_train/fkvs-cli"
  ln -sf "$root/target/pgo/fkvs-benchmark" "$bolt_train/fkvs-benchmark"
  pgo/train.sh "$bolt_train" --quick
  cargo pgo bolt optimize --with-pgo -- --bin fkvs-server 2>&1 | tee "$root/target/bolt-optimize.log"
  check_profile_use "$root/target/bolt-optimize.log"
  mkdir -p target/pgo-bolt
  cp "$instrumented_dir/fkvs-server-bolt-optimized" target/pgo-bolt/fkvs-server
  variants="$variants pgo-bolt"
fi

# 7. Plain release for comparison, then the interleaved A/B run.
step "plain release build"
cargo build --release --bins
step "A/B: $variants, interleaved"
if [ "$mode" = quick ]; then scripts/ab-server.py --rounds 3 --requests 300000 $variants
else scripts/ab-server.py --rounds 5 --requests 2000000 $variants; fi
