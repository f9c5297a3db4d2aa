#!/bin/bash
# Stop everything services-start.sh started and remove its state.
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${NODEPROBE_IT_BASE:-/tmp/nodeprobe-it}
[ -d "$BASE" ] || exit 0
"$HERE/dockerd-stop.sh" "$BASE/docker"       # first: it uses containerd
"$HERE/containerd-stop.sh" "$BASE/containerd" &
"$HERE/chrony-stop.sh" "$BASE/chrony" &
"$HERE/mariadb-stop.sh" "$BASE/mariadb" &
"$HERE/kube-stop.sh" "$BASE/kube" &
"$HERE/systemd-stop.sh" "$BASE/sd" "nodeprobe-it-sd-$(basename "$BASE")" &
wait
rm -rf --one-file-system "$BASE"
