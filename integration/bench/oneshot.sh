#!/bin/bash
# Benchmark: wall time of `nodeprobe --oneshot` for a probe set (default inodes,pid-pressure),
# and proof that it starts no other program. Usage: integration/bench/oneshot.sh [PROBES]
# Needs hyperfine and strace (Debian packages; installed if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
PROBES=${1:-inodes,pid-pressure}
for p in hyperfine strace; do
  command -v "$p" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
cargo build --release --bin nodeprobe -q
BIN=target/release/nodeprobe
echo "binary: $BIN ($(stat -c %s "$BIN") bytes)"
"$BIN" --oneshot --probes "$PROBES" || true
hyperfine -N --warmup 20 --runs 200 -i --export-json /tmp/nodeprobe-bench-oneshot.json \
  "$BIN --oneshot --output json --probes $PROBES"
python3 - <<'PY'
import json
r = json.load(open("/tmp/nodeprobe-bench-oneshot.json"))["results"][0]
t = sorted(r["times"])
print("oneshot wall: mean %.2f ms, median %.2f ms, p95 %.2f ms, max %.2f ms" % (
    r["mean"]*1e3, r["median"]*1e3, t[int(len(t)*0.95)]*1e3, t[-1]*1e3))
PY
execs=$(strace -f -qq -e trace=execve -o /dev/stdout "$BIN" --oneshot --output json --probes "$PROBES" 2>/dev/null | grep -c 'execve(' || true)
echo "programs started by nodeprobe (execve calls after its own): $((execs - 1))"
