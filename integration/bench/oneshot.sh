#!/bin/bash
# Benchmark: wall time of `nodeprobe --oneshot` for a probe set (default inodes,pid-pressure),
# proof that it starts no other program, and what the kernel-log pass (on by default) adds:
# the same run with --oneshot-logs=false, and with a rule file whose lookback covers the whole
# ring (every record the ring holds is matched), on this machine's real ring.
# Usage: integration/bench/oneshot.sh [PROBES]
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

# The kernel-log pass: off, on (default rules, lookback 5m), on over the whole ring.
RULES=$(mktemp -d /tmp/nodeprobe-bench-rules.XXXXXX)
trap 'rm -rf "$RULES"' EXIT
sed 's/"lookback": "5m"/"lookback": "87600h"/' probes/rules/kernel-monitor.json >"$RULES/kernel-monitor.json"
OFF="$BIN --oneshot --output json --probes $PROBES --oneshot-logs=false ${EXTRA[*]}"
ON="$BIN --oneshot --output json --probes $PROBES ${EXTRA[*]}"
ALL="$BIN --oneshot --output json --probes $PROBES --log-monitors $RULES/kernel-monitor.json ${EXTRA[*]}"
hyperfine -N --warmup 20 --runs 300 -i --export-json /tmp/nodeprobe-bench-oneshot-logs.json "$OFF" "$ON" "$ALL" >/dev/null
$ALL >"$RULES/all.json" || true
python3 - "$RULES/all.json" <<'PY'
import ctypes, json, os, sys
r = json.load(open("/tmp/nodeprobe-bench-oneshot-logs.json"))["results"]
med = [x["median"] * 1e3 for x in r]
names = ["--oneshot-logs=false", "--oneshot (lookback 5m)", "--oneshot (whole ring)"]
for n, x in zip(names, r):
    t = sorted(x["times"])
    print("%-26s mean %.2f ms, median %.2f ms, p95 %.2f ms" % (n, x["mean"]*1e3, x["median"]*1e3, t[int(len(t)*0.95)]*1e3))
src = json.load(open(sys.argv[1]))["log_sources"][0]
n = src["records_read"]
print("kernel log: %d records in the ring, read via %s; scan of them all: %d ms in the report" % (n, src["read"], src["duration_ms"]))
print("added by the log pass (median): lookback 5m %+.2f ms, whole ring %+.2f ms" % (med[1]-med[0], med[2]-med[0]))
# the ring's capacity in records: log_buf_len bytes of text, one descriptor per 32 bytes
size = ctypes.CDLL(None).klogctl(10, None, 0)
fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
text = 0; count = 0
while True:
    try:
        rec = os.read(fd, 16384)
    except BlockingIOError:
        break
    except BrokenPipeError:
        continue
    count += 1; text += len(rec.split(b";", 1)[-1].split(b"\n", 1)[0])
os.close(fd)
if count:
    full = min(size // max(1, text // count), size // 32)
    print("ring %d KiB, %d records now, average message %d bytes: a full ring holds ~%d records"
          % (size // 1024, count, text // count, full))
print("a full ring's cost, without flooding this one: cargo run --release -p probes --example oneshot_scan_bench")
PY
