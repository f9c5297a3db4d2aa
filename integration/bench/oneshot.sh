#!/bin/bash
# Benchmark: wall time of `nodeprobe --oneshot` for a probe set (default inodes,pid-pressure),
# and proof that it starts no other program. Usage: integration/bench/oneshot.sh [PROBES]
# Needs hyperfine and strace (Debian packages; installed if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
PROBES=${1:-inodes,pid-pressure}
# With the test services running (integration/env/services-start.sh), point the D-Bus and
# runtime probes at them so they do real work.
EXTRA=()
if [ -f /tmp/nodeprobe-it/services.env ]; then
  . /tmp/nodeprobe-it/services.env
  export DBUS_SYSTEM_BUS_ADDRESS=$NODEPROBE_IT_SYSTEMD_BUS
  EXTRA=(--containerd-socket "$NODEPROBE_IT_CONTAINERD_SOCK" --docker-socket "$NODEPROBE_IT_DOCKER_SOCK")
fi
for p in hyperfine strace; do
  command -v "$p" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
cargo build --release --bin nodeprobe -q
BIN=target/release/nodeprobe
echo "binary: $BIN ($(stat -c %s "$BIN") bytes)"
"$BIN" --oneshot --probes "$PROBES" "${EXTRA[@]}" || true
hyperfine -N --warmup 20 --runs 200 -i --export-json /tmp/nodeprobe-bench-oneshot.json \
  "$BIN --oneshot --output json --probes $PROBES ${EXTRA[*]}"
python3 - <<'PY'
import json
r = json.load(open("/tmp/nodeprobe-bench-oneshot.json"))["results"][0]
t = sorted(r["times"])
print("oneshot wall: mean %.2f ms, median %.2f ms, p95 %.2f ms, max %.2f ms" % (
    r["mean"]*1e3, r["median"]*1e3, t[int(len(t)*0.95)]*1e3, t[-1]*1e3))
PY
execs=$(strace -f -qq -e trace=execve -o /dev/stdout "$BIN" --oneshot --output json --probes "$PROBES" 2>/dev/null | grep -c 'execve(' || true)
echo "programs started by nodeprobe (execve calls after its own): $((execs - 1))"

# Concurrency: a run takes no longer than its slowest probe plus a small overhead.
python3 - "$BIN" "$PROBES" "${EXTRA[@]}" <<'PY'
import json, subprocess, sys, time
binary, probes, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
over = []
for _ in range(50):
    t0 = time.perf_counter()
    out = subprocess.run([binary, "--oneshot", "--output", "json", "--probes", probes] + extra,
                         capture_output=True, text=True).stdout
    wall = (time.perf_counter() - t0) * 1e3
    slowest = max((r["duration_ms"] for r in json.loads(out)["results"]), default=0)
    over.append(wall - slowest)
over.sort()
print("wall minus slowest probe over 50 runs: median %.2f ms, p95 %.2f ms, max %.2f ms"
      % (over[len(over)//2], over[int(len(over)*0.95)], over[-1]))
PY
