#!/bin/bash
# Stop what kube-node-start.sh DIR started: the kubelet (by PID), the controllers, containerd
# and its shims, then every process left in the kubelet's cgroup tree (pods), remove the
# cgroups bottom-up and DIR. The private mount namespace goes away with its last process.
D=$1
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
[ -d "$D" ] || exit 0
np_stop_pid "$D/kubelet.pid" 200
np_stop_pid "$D/controller-manager.pid" &
np_stop_pid "$D/scheduler.pid" &
wait
[ -d "$D/containerd" ] && "$HERE/containerd-stop.sh" "$D/containerd"
CG=$(cat "$D/cgroup" 2>/dev/null)
if [ -n "$CG" ]; then
  for _ in $(seq 1 50); do
    left=$(find /sys/fs/cgroup/*/"$CG" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
    [ -z "$left" ] && break
    for p in $left; do kill -KILL "$p" 2>/dev/null; done
    sleep 0.1
  done
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$CG" ] || continue
    find "$h$CG" -depth -type d -exec rmdir {} + 2>/dev/null
    for _ in $(seq 1 20); do [ -d "$h$CG" ] || break; find "$h$CG" -depth -type d -exec rmdir {} + 2>/dev/null; sleep 0.1; done
  done
fi
rm -rf --one-file-system "$D"
