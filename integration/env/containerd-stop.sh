#!/bin/bash
# Stop the containerd of containerd-start.sh DIR, its shims and mounts; remove DIR.
D=$1
. "$(dirname "$0")/lib.sh"
np_stop_pid "$D/containerd.pid"
for s in $(pgrep -f -- "-address $D/containerd.sock"); do kill -TERM "$s" 2>/dev/null; done
np_umount_under "$D"
rm -rf --one-file-system "$D"
