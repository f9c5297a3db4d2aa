#!/bin/bash
# prometheus-start.sh DIR PORT: run Debian's Prometheus (2.42) by hand on 127.0.0.1:PORT with
# DIR/prometheus.yml (written by the caller; rule files next to it) and its data in DIR/data.
# Installs the `prometheus` package when missing (apt never starts its service here: see
# services-start.sh). Prints the base URL once /-/ready answers; the PID is in
# DIR/prometheus.pid, the log in DIR/prometheus.log. Stop with prometheus-stop.sh DIR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
DIR=$1 PORT=$2
if ! [ -x /usr/bin/prometheus ] || ! [ -x /usr/bin/promtool ]; then
  [ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends prometheus >/dev/null
fi
[ -f "$DIR/prometheus.yml" ] || { echo "prometheus-start.sh: $DIR/prometheus.yml missing" >&2; exit 1; }
"$HERE/prometheus-stop.sh" "$DIR"
mkdir -p "$DIR/data"
/usr/bin/prometheus --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" \
  --web.listen-address="127.0.0.1:$PORT" --log.level=warn \
  >"$DIR/prometheus.log" 2>&1 </dev/null &
echo $! > "$DIR/prometheus.pid"
if ! np_wait 200 0.05 curl -sf --max-time 2 "http://127.0.0.1:$PORT/-/ready"; then
  echo "prometheus did not become ready on 127.0.0.1:$PORT:" >&2
  cat "$DIR/prometheus.log" >&2
  np_stop_pid "$DIR/prometheus.pid"
  exit 1
fi
echo "http://127.0.0.1:$PORT"
