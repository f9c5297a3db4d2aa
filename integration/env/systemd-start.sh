#!/bin/bash
# Real systemd as a --user manager (run as root) exposing org.freedesktop.systemd1 on a
# private bus DIR/bus; it never becomes PID 1 and never touches the host's /run.
# Usage: systemd-start.sh DIR CGROUP_NAME  -> prints the bus address
set -euo pipefail
D=$1 CG=$2
mkdir -p -m 700 "$D"; mkdir -p "$D/systemd/user" "$D/config/systemd/user"
export XDG_RUNTIME_DIR="$D" XDG_CONFIG_HOME="$D/config" XDG_DATA_HOME="$D/data" XDG_STATE_HOME="$D/state" XDG_CACHE_HOME="$D/cache"
export DBUS_SESSION_BUS_ADDRESS="unix:path=$D/bus"
(
  # Own cgroup first: from the root cgroup the manager would adopt every process on the host.
  for h in /sys/fs/cgroup/*/; do
    h=${h%/}; case "$h" in */cpuset) continue;; esac
    [ -e "$h/cgroup.procs" ] || continue
    mkdir -p "$h/$CG" && echo $BASHPID > "$h/$CG/cgroup.procs"
  done
  # systemd --user insists on /run/systemd/system: provide it in a private mount namespace only.
  exec unshare --mount --propagation private /bin/sh -c '
    mount -t tmpfs -o mode=755 nodeprobe-it-run-systemd /run/systemd &&
    mkdir -p /run/systemd/system &&
    exec /lib/systemd/systemd --user --log-target=console --log-level=notice'
) > "$D/systemd.log" 2>&1 < /dev/null &
echo $! > "$D/systemd.pid"
for _ in $(seq 1 200); do
  busctl --timeout=2 --address="$DBUS_SESSION_BUS_ADDRESS" get-property org.freedesktop.systemd1 /org/freedesktop/systemd1 \
    org.freedesktop.systemd1.Manager SystemState >/dev/null 2>&1 && { echo "$DBUS_SESSION_BUS_ADDRESS"; exit 0; }
  sleep 0.05
done
echo "systemd --user did not come up; log:" >&2; tail -20 "$D/systemd.log" >&2; exit 1
