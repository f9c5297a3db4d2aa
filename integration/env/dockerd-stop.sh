#!/bin/bash
# Stop the dockerd of dockerd-start.sh DIR: remove its containers, mounts, cgroups, DIR.
D=$1
. "$(dirname "$0")/lib.sh"
S="$D/docker.sock"
if [ -S "$S" ]; then
  for id in $(curl -s -m 5 --unix-socket "$S" 'http://x/containers/json?all=1' | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4); do
    curl -s -m 10 -X DELETE --unix-socket "$S" "http://x/containers/$id?force=1" >/dev/null
  done
fi
np_stop_pid "$D/dockerd.bgpid" 200
np_umount_under "$D"
for h in /sys/fs/cgroup/*/docker; do [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null; done
rm -rf --one-file-system "$D"
