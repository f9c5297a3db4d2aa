#!/bin/bash
# The test command (README): installs what the tests need (Debian packages), starts the real
# components on private sockets, checks formatting and lints, builds, runs every test, and
# stops the components again. Run as root on a fresh Debian 12 machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVD=integration/env
export NODEPROBE_IT_BASE=${NODEPROBE_IT_BASE:-/tmp/nodeprobe-it}

T_START=$(date +%s)
# The real Kubernetes binaries (kube-apiserver, kubelet, …; built once per machine and cached,
# the first time ~6-8 min on 2 cores): in the background while cargo checks and builds.
KUBE_BUILD_OUT=$(mktemp /tmp/nodeprobe-kube-build.XXXX)
setsid bash "$ENVD/kube-build.sh" > "$KUBE_BUILD_OUT" 2>&1 < /dev/null &
KUBE_BUILD=$!   # its own process group: stopped with its make/go children on exit
trap 'kill -- -$KUBE_BUILD 2>/dev/null || true; bash "$ENVD/services-stop.sh" >/dev/null 2>&1' EXIT

# Manifest schema validator (PyPI), in a private venv.
VENV=/tmp/nodeprobe-it-venv
[ -x "$VENV/bin/kubernetes-validate" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q kubernetes-validate; }
export NODEPROBE_KUBE_VALIDATE="$VENV/bin/kubernetes-validate"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build"
cargo build --workspace --bins
echo "== static release build (the image's binary)"
NODEPROBE_STATIC_BIN=$(bash "$ENVD/static-build.sh")
export NODEPROBE_STATIC_BIN
ls -l "$NODEPROBE_STATIC_BIN"
echo "== Kubernetes binaries"
if wait $KUBE_BUILD; then
  echo "kube-build: $(tail -1 "$KUBE_BUILD_OUT") ready $(( $(date +%s) - T_START )) s after the start"
else
  echo "kube-build failed:"; cat "$KUBE_BUILD_OUT"
  tail -30 "${NODEPROBE_KUBE_CACHE:-/var/cache/nodeprobe-it/kube-v1.20.2}/build.log" 2>/dev/null
fi
rm -f "$KUBE_BUILD_OUT"
echo "== services"
bash "$ENVD/services-start.sh"
set -a; . "$NODEPROBE_IT_BASE/services.env"; set +a

echo "== cargo test"
# In CI the machine is ours: also run the one test that overruns the (global) kernel ring.
export NODEPROBE_IT_KMSG_FLOOD=${NODEPROBE_IT_KMSG_FLOOD:-${CI:+1}}
# Test binaries run one after another; kmsg/cgroup tests serialise themselves inside theirs.
LOG=$(mktemp /tmp/nodeprobe-test-log.XXXX)
rc=0
cargo test --workspace --all-targets --no-fail-fast -- --test-threads=2 2>&1 | tee "$LOG" || rc=$?
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
     END { printf "nodeprobe: %d passed, %d failed, %d skipped\n", p, f, g }' "$LOG"
rm -f "$LOG"
# Every fuzz target for a bounded time (30 s each; NODEPROBE_FUZZ_SECONDS), after the tests.
echo "== fuzz"
bash integration/fuzz.sh || rc=$?
exit "$rc"
