#!/bin/bash
# MySQL sink benchmark (issue 11): upserts/s into the test environment's MariaDB with
# batching and with one statement per Event (kube-eventer's way), and the eventer's RSS and
# CPU idle and at 1,000 Events/min. Needs the real kube-apiserver and MariaDB of the test
# environment (integration/env/services-start.sh). Uses the static release binary, or
# $NODEPROBE_BIN.
# Usage: integration/bench/eventer-mysql.sh   (NODEPROBE_BENCH_EVENTS=20000 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=${NODEPROBE_IT_BASE:-/tmp/nodeprobe-it}
if [ -z "${NODEPROBE_IT_KUBECONFIG:-}" ] && [ -f "$BASE/services.env" ]; then set -a; . "$BASE/services.env"; set +a; fi
: "${NODEPROBE_IT_KUBECONFIG:?a real kube-apiserver is needed (integration/env/services-start.sh)}"
: "${NODEPROBE_IT_MYSQL_PORT:?MariaDB is needed (integration/env/services-start.sh)}"
BIN=${NODEPROBE_BIN:-$(bash integration/env/static-build.sh)}
echo "binary: $BIN ($(stat -c %s "$BIN") bytes)"
NODEPROBE_BIN="$BIN" cargo test -q -p nodeprobe-integration --test eventer_mysql_bench -- --ignored --nocapture 2>&1 | grep -E "^BENCH|test result"
