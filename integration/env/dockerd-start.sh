#!/bin/bash
# A private dockerd with all state under DIR, on DIR/docker.sock; no bridge, no iptables.
# Usage: dockerd-start.sh DIR [CONTAINERD_SOCK]  -> prints the socket path
set -euo pipefail
D=$1; CTRD=${2:-}
mkdir -p "$D/data" "$D/exec"
extra=(); [ -n "$CTRD" ] && extra+=(--containerd "$CTRD")
dockerd --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/dockerd.pid" \
  -H "unix://$D/docker.sock" --iptables=false --ip6tables=false --ip-masq=false --bridge=none \
  "${extra[@]}" > "$D/dockerd.log" 2>&1 < /dev/null &
echo $! > "$D/dockerd.bgpid"
for _ in $(seq 1 400); do
  [ "$(curl -s -m 2 --unix-socket "$D/docker.sock" http://x/_ping 2>/dev/null)" = OK ] && { echo "$D/docker.sock"; exit 0; }
  kill -0 "$(cat "$D/dockerd.bgpid")" 2>/dev/null || break
  sleep 0.05
done
echo "dockerd did not come up; log:" >&2; tail -30 "$D/dockerd.log" >&2; exit 1
