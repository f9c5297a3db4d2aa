#!/bin/bash
# Two chronyd that never touch the system clock (-x): a local-stratum server on
# 127.0.0.1:PORT and a client synced to it, with a private command socket. Prints that socket.
set -euo pipefail
D=$1; PORT=${NODEPROBE_IT_CHRONY_PORT:-11123}
mkdir -p "$D/srv" "$D/cli"; chmod 700 "$D" "$D/srv" "$D/cli"
printf '%s\n' "port $PORT" "bindaddress 127.0.0.1" "allow 127.0.0.1" "local stratum 8" "cmdport 0" \
  "bindcmdaddress $D/srv/chronyd.sock" "pidfile $D/srv/chronyd.pid" "driftfile $D/srv/drift" > "$D/srv/chrony.conf"
printf '%s\n' "server 127.0.0.1 port $PORT iburst minpoll -2 maxpoll 0" "port 0" "cmdport 0" \
  "bindcmdaddress $D/cli/chronyd.sock" "pidfile $D/cli/chronyd.pid" "driftfile $D/cli/drift" > "$D/cli/chrony.conf"
for r in srv cli; do
  chronyd -x -d -u root -f "$D/$r/chrony.conf" > "$D/$r/log" 2>&1 < /dev/null & echo $! > "$D/$r/bgpid"
done
for _ in $(seq 1 100); do [ -S "$D/cli/chronyd.sock" ] && { echo "$D/cli/chronyd.sock"; exit 0; }; sleep 0.05; done
echo "chronyd did not come up" >&2; cat "$D"/*/log >&2; exit 1
