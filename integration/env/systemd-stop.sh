#!/bin/bash
# Stop the manager started by systemd-start.sh and remove its cgroups. Usage: DIR CGROUP_NAME
D=$1 CG=$2
. "$(dirname "$0")/lib.sh"
np_stop_pid "$D/systemd.pid" 200
for h in /sys/fs/cgroup/*/; do
  d="${h%/}/$CG"; [ -d "$d" ] || continue
  find "$d" -name cgroup.procs | while read -r f; do for p in $(cat "$f"); do echo "$p" > "${h%/}/cgroup.procs" 2>/dev/null; done; done
  find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
done
rm -rf --one-file-system "$D"
