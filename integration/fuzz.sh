#!/bin/bash
# Coverage-guided fuzzing of every parser that reads outside bytes (probes/fuzz, cargo-fuzz /
# libFuzzer on the nightly toolchain), each target for a bounded time. Fails when a target
# finds a crash, a broken property, an input slower than 10 s or one needing more than
# 2 GiB, and prints the reproducer (bytes, file, command). Called by run-tests.sh.
#
#   bash integration/fuzz.sh [TARGET...]          every target (or those named)
#   NODEPROBE_FUZZ_SECONDS=600 nice -n 15 bash integration/fuzz.sh   a longer campaign
#
# NODEPROBE_FUZZ_SECONDS  seconds per target (default 30; 0 skips fuzzing, not allowed in CI)
# NODEPROBE_FUZZ_JOBS     targets run at once (default: the number of CPUs, at most 4)
# NODEPROBE_FUZZ_CORPUS   keep the grown corpus here (default: a temp dir, deleted)
# NODEPROBE_FUZZ_SEED     libFuzzer's -seed (default 1, so a CI run is the same run on any
#                         machine of the same speed and can be replayed; 0 = a random seed,
#                         what longer campaigns that look for new findings should use)
# Reproducers are also copied to target/fuzz-artifacts/<target>/. Reproduce one with
#   cd probes && cargo +nightly fuzz run -s none -a <target> <file>
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${NODEPROBE_FUZZ_SECONDS:-30}
SEED=${NODEPROBE_FUZZ_SEED:-1}
JOBS=${NODEPROBE_FUZZ_JOBS:-$(nproc)}
[ "$JOBS" -gt 4 ] && JOBS=4
# The cargo-fuzz release the script is tested with (crates.io).
CARGO_FUZZ_VERSION=0.13.2
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/fuzz

skip_or_fail() {
    if [ -n "${CI:-}" ]; then
        echo "fuzz: FAILED: $1" >&2
        exit 1
    fi
    echo "fuzz: SKIPPED: $1"
    exit 0
}

[ "$SECS" -gt 0 ] || skip_or_fail "NODEPROBE_FUZZ_SECONDS=0"
cargo +nightly --version >/dev/null 2>&1 || skip_or_fail "no nightly Rust toolchain (rustup toolchain install nightly)"
t0=$SECONDS
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
    cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
    echo "fuzz: cargo-fuzz installed in $((SECONDS - t0)) s"
fi

t1=$SECONDS
echo "== building the fuzz targets (nightly, sanitizer-coverage, debug assertions)"
(cd probes && cargo +nightly fuzz build -s none --debug-assertions --target-dir "$TARGET_DIR")
BIN=$TARGET_DIR/$(rustc +nightly -vV | sed -n 's/^host: //p')/release
echo "fuzz: targets built in $((SECONDS - t1)) s"

if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cd probes && cargo fuzz list)
fi

WORK=$(mktemp -d /tmp/nodeprobe-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
CORPUS=${NODEPROBE_FUZZ_CORPUS:-$WORK/corpus}
ARTIFACTS=$ROOT/target/fuzz-artifacts

# Run one target; its log in $WORK/<target>.log, exit status in $WORK/<target>.rc.
run_target() {
    local t=$1 seeds=probes/fuzz/seeds/$1
    mkdir -p "$CORPUS/$t" "$WORK/art/$t" "$WORK/tmp/$t"
    local dirs=("$CORPUS/$t")
    [ -d "$seeds" ] && dirs+=("$seeds")
    local rc=0
    TMPDIR=$WORK/tmp/$t "$BIN/$t" -max_total_time="$SECS" -seed="$SEED" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$WORK/art/$t/" "${dirs[@]}" \
        >"$WORK/$t.log" 2>&1 || rc=$?
    echo "$rc" >"$WORK/$t.rc"
}

t2=$SECONDS
echo "== fuzzing ${#TARGETS[@]} targets, $SECS s each, $JOBS at a time, seed $SEED"
running=0
for t in "${TARGETS[@]}"; do
    [ -x "$BIN/$t" ] || { echo "fuzz: no target $t" >&2; exit 2; }
    run_target "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

failed=()
printf '%-18s %12s %8s %8s  %s\n' target executions exec/s corpus result
for t in "${TARGETS[@]}"; do
    log=$WORK/$t.log
    fstat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    rc=$(cat "$WORK/$t.rc")
    corpus=$(find "$CORPUS/$t" -type f | wc -l)
    if [ "$rc" = 0 ]; then
        result=ok
    else
        result="FAILED (exit $rc)"
        failed+=("$t")
    fi
    printf '%-18s %12s %8s %8s  %s\n' "$t" "$(fstat number_of_executed_units)" \
        "$(fstat average_exec_per_sec)" "$corpus" "$result"
done
echo "fuzz: ran $((SECONDS - t2)) s; whole step $((SECONDS - t0)) s"

for t in "${failed[@]}"; do
    echo
    echo "================ fuzz target $t FAILED ================"
    # the panic or sanitizer report (with the top of its backtrace), then libFuzzer's summary
    awk '/panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer/ { p = 1 } p && n < 40 { print; n++ }' "$WORK/$t.log"
    grep -E '^SUMMARY|^MS: |Test unit written' "$WORK/$t.log" || tail -20 "$WORK/$t.log"
    mkdir -p "$ARTIFACTS/$t"
    for f in "$WORK/art/$t"/*; do
        [ -f "$f" ] || continue
        cp "$f" "$ARTIFACTS/$t/"
        echo "--- reproducer $(basename "$f") ($(stat -c %s "$f") bytes), kept as $ARTIFACTS/$t/$(basename "$f")"
        echo "--- bytes (hex):"
        od -A d -t x1z -v "$f" | head -64
        echo "--- base64 (to recreate it: base64 -d > repro):"
        base64 -w 76 "$f" | head -200
        echo "--- run it: cd probes && cargo +nightly fuzz run -s none -a $t $ARTIFACTS/$t/$(basename "$f")"
    done
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: FAILED: ${failed[*]}" >&2; exit 1; }
echo "fuzz: all ${#TARGETS[@]} targets ok"
