#!/usr/bin/env bash
# Fuzzes hbeat's frame decoder with cargo-fuzz (libFuzzer) for a bounded time: at most FUZZ_SECONDS
# (default 180) and FUZZ_RUNS inputs (default 5,000,000); fails unless at least 1,000,000 inputs ran
# without a crash. Seeded with the golden frames. Runs on the stable toolchain (`--sanitizer none`: the
# sanitizers need nightly; the target's own assertions and Rust's checks still catch what it looks for).
# Installs cargo-fuzz (pinned, with cargo install --locked) when missing; needs a C++ compiler for
# libFuzzer itself. The fuzz build has its own target directory (hbeat/fuzz/target): its flags differ.
#
#   tests/fuzz.sh            FUZZ_SECONDS=60 FUZZ_RUNS=2000000 tests/fuzz.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ=$ROOT/hbeat/fuzz
CARGO_FUZZ_VERSION=0.13.2
MIN_RUNS=1000000
RUNS=${FUZZ_RUNS:-5000000}
SECONDS_MAX=${FUZZ_SECONDS:-180}

say() { printf 'fuzz: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ "$RUNS" -ge "$MIN_RUNS" ] || die "FUZZ_RUNS=$RUNS: at least $MIN_RUNS inputs are required"
command -v cargo >/dev/null || die "cargo is missing: install the Rust toolchain (rustup)"
command -v c++ >/dev/null || die "no C++ compiler for libFuzzer: apt-get install g++"
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo install --locked)"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked -q \
        || die "cargo install cargo-fuzz failed"
fi

# The seed corpus: the golden frames as bytes.
corpus=$(mktemp -d "${TMPDIR:-/tmp}/hbeat-fuzz-corpus.XXXXXX")
log=$corpus.log
trap 'rm -rf "$corpus" "$log"' EXIT
for hex in "$ROOT"/hbeat/tests/fixtures/frames/*.hex; do
    digits=$(sed 's/#.*//' "$hex" | tr -d ' \t\n')
    out=$corpus/$(basename "$hex" .hex)
    : > "$out"
    for ((i = 0; i < ${#digits}; i += 2)); do printf "\\x${digits:i:2}" >> "$out"; done
done

cd "$FUZZ"
unset CARGO_TARGET_DIR
say "building the decode target"
cargo fuzz build --sanitizer none decode || die "cargo fuzz build failed"
say "fuzzing decode: up to $RUNS inputs or ${SECONDS_MAX}s"
rc=0
cargo fuzz run --sanitizer none decode "$corpus" -- \
    -runs="$RUNS" -max_total_time="$SECONDS_MAX" -max_len=1500 -print_final_stats=1 >"$log" 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
    grep -m 1 -A 3 'panicked at' "$log" >&2 || tail -n 40 "$log" >&2
    die "decode crashed or failed (exit $rc); the input is saved under $FUZZ/artifacts/decode/: reproduce with (cd hbeat/fuzz && cargo fuzz run --sanitizer none decode FILE)"
fi
done_runs=$(sed -n 's/^Done \([0-9]*\) runs in .*/\1/p' "$log" | tail -n 1)
[ -n "$done_runs" ] || { tail -n 20 "$log" >&2; die "libFuzzer did not say how many inputs it ran"; }
grep -E '^(INFO: Seed|#[0-9]+[[:space:]]+DONE)' "$log" >&2 || true
[ "$done_runs" -ge "$MIN_RUNS" ] \
    || die "only $done_runs inputs in ${SECONDS_MAX}s (at least $MIN_RUNS required): the machine is too slow or decode got slower"
say "decode: $done_runs inputs, no crash"
