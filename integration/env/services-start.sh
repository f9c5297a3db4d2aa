#!/bin/bash
# Install (Debian packages) and start the real components the integration tests use, each
# private to $NODEPROBE_IT_BASE (default /tmp/nodeprobe-it): systemd --user on a private bus
# with fake time-daemon/runtime units, containerd with CRI, dockerd sharing it, a chrony
# pair that never touches the clock, MariaDB, and etcd + kube-apiserver when the Kubernetes binaries
# are cached (kube-build.sh). Writes $BASE/services.env for the tests.
# Idempotent: a previous run is stopped first. Stop with services-stop.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${NODEPROBE_IT_BASE:-/tmp/nodeprobe-it}
T0=$(date +%s%N)
log() { echo "[services $(( ($(date +%s%N) - T0) / 1000000 ))ms] $*"; }

# apt never starts services here (chronyd would discipline the clock, dockerd would grab /run).
[ -x /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
need=()
for p in containerd docker.io runc chrony dbus-daemon dbus-user-session systemd systemd-journal-remote iproute2 util-linux curl python3 libcap2-bin tzdata mariadb-server mariadb-client; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
# Prometheus and promtool (2.42) for the monitoring tests (integration/env/prometheus-start.sh).
dpkg -s prometheus >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
log "packages ready"

"$HERE/services-stop.sh" >/dev/null 2>&1 || true
mkdir -p "$BASE"; chmod 755 "$BASE"
ENV="$BASE/services.env"; : > "$ENV"

BUS=$("$HERE/systemd-start.sh" "$BASE/sd" "nodeprobe-it-sd-$(basename "$BASE")")
U="$BASE/sd/systemd/user"
for u in chronyd chrony ntpd ntp systemd-timesyncd containerd docker; do
  printf '[Unit]\nDescription=fake %s for nodeprobe tests\n[Service]\nExecStart=/bin/sleep infinity\n' "$u" > "$U/$u.service"
done
busctl --timeout=10 --address="$BUS" call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager Reload
{ echo "NODEPROBE_IT_SYSTEMD_BUS=$BUS"; echo "NODEPROBE_IT_SYSTEMD_UNIT_DIR=$U"; } >> "$ENV"
log "systemd --user: $BUS"

CTRD=$("$HERE/containerd-start.sh" "$BASE/containerd")
{ echo "NODEPROBE_IT_CONTAINERD_SOCK=$CTRD"; echo "NODEPROBE_IT_CONTAINERD_CNI_DIR=$BASE/containerd/cni-conf"; } >> "$ENV"
log "containerd: $CTRD"

DOCK=$("$HERE/dockerd-start.sh" "$BASE/docker" "$CTRD")
echo "NODEPROBE_IT_DOCKER_SOCK=$DOCK" >> "$ENV"
log "dockerd: $DOCK"

CHR=$("$HERE/chrony-start.sh" "$BASE/chrony")
echo "NODEPROBE_IT_CHRONY_SOCK=$CHR" >> "$ENV"
log "chrony: $CHR"

# MariaDB for the eventer's MySQL sink (private socket, 127.0.0.1, its own data directory).
"$HERE/mariadb-start.sh" "$BASE/mariadb" >> "$ENV"
log "mariadb: 127.0.0.1:$(cat "$BASE/mariadb/port")"
# A real control plane (etcd + kube-apiserver, RBAC), when kube-build.sh filled the cache.
KBIN=${NODEPROBE_KUBE_CACHE:-/var/cache/nodeprobe-it/kube-v1.20.2}/bin
if [ -x "$KBIN/kube-apiserver" ] && [ -x "$KBIN/etcd" ]; then
  "$HERE/kube-start.sh" "$BASE/kube" "$KBIN" >/dev/null
  cat "$BASE/kube/kube.env" >> "$ENV"
  log "kube-apiserver: $(grep NODEPROBE_IT_KUBE_SERVER "$BASE/kube/kube.env" | cut -d= -f2)"
else
  log "no Kubernetes binaries in $KBIN (integration/env/kube-build.sh builds them): no API server"
fi
echo "NODEPROBE_IT_ENV_DIR=$HERE" >> "$ENV"
cat "$ENV"
log "all services up"
