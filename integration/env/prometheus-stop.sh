#!/bin/bash
# prometheus-stop.sh DIR: stop the Prometheus prometheus-start.sh DIR started (by its PID).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
np_stop_pid "$1/prometheus.pid" 200
rm -f "$1/prometheus.pid"
