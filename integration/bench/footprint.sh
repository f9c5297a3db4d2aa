#!/bin/bash
# Footprint benchmark (issue 6): static binary size, image root size, and the daemon's RSS,
# CPU per minute and child processes after 60 s with every probe and the default log
# monitors enabled, against the fake API server. Run as root.
# Usage: integration/bench/footprint.sh [SECONDS]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-60}
BIN=$(bash integration/env/static-build.sh)
echo "static binary: $BIN"
echo "  size: $(stat -c %s "$BIN") bytes ($(numfmt --to=iec-i --suffix=B "$(stat -c %s "$BIN")"))"
echo "  ldd: $(ldd "$BIN" 2>&1 | tr -d '\t' | head -1)"
# The image's root holds the binary alone (deploy/Dockerfile: FROM scratch + COPY).
ROOT=$(mktemp -d /tmp/nodeprobe-image-root.XXXX)
install -m 0755 "$BIN" "$ROOT/nodeprobe"
echo "  image root: $(du -sb "$ROOT" | cut -f1) bytes, $(find "$ROOT" -type f | wc -l) file(s)"
rm -rf "$ROOT"
# Use the test services when they run, so the D-Bus and runtime probes do real work.
if [ -f /tmp/nodeprobe-it/services.env ]; then set -a; . /tmp/nodeprobe-it/services.env; set +a; fi
NODEPROBE_BIN="$BIN" NODEPROBE_FOOTPRINT_SECS="$SECS" \
  cargo test -q -p nodeprobe-integration --test footprint -- --ignored --nocapture 2>&1 |
  grep -E "VmRSS|RssAnon|test result"
