#!/bin/bash
# Eventer benchmark (issue 10): latency Event created at the API -> body received by a local
# webhook (p50/p99), throughput of 10,000 Events through filters into a webhook that
# answers at once, and the eventer's RSS and child processes with 10,000 Events in the
# cluster. Needs the real kube-apiserver of the test environment (NODEPROBE_IT_KUBECONFIG,
# from integration/env/services-start.sh); uses the static release binary.
# Usage: integration/bench/eventer.sh   (NODEPROBE_BENCH_EVENTS=10000 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=${NODEPROBE_IT_BASE:-/tmp/nodeprobe-it}
if [ -z "${NODEPROBE_IT_KUBECONFIG:-}" ] && [ -f "$BASE/services.env" ]; then set -a; . "$BASE/services.env"; set +a; fi
: "${NODEPROBE_IT_KUBECONFIG:?a real kube-apiserver is needed (integration/env/services-start.sh)}"
BIN=$(bash integration/env/static-build.sh)
echo "static binary: $BIN ($(stat -c %s "$BIN") bytes)"
NODEPROBE_BIN="$BIN" cargo test -q -p nodeprobe-integration --test eventer_bench -- --ignored --nocapture 2>&1 | grep -E "^BENCH|test result"
