#!/bin/bash
# Stop what kube-start.sh DIR started (by PID: the API server first, then etcd) and remove DIR.
D=$1
. "$(dirname "$0")/lib.sh"
[ -d "$D" ] || exit 0
np_stop_pid "$D/apiserver.pid" 200
np_stop_pid "$D/etcd.pid" 200
rm -rf --one-file-system "$D"
