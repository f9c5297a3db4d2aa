#!/bin/bash
# A real Kubernetes control plane for the tests: etcd 3.4 and kube-apiserver v1.20.2 (from the
# cache kube-build.sh fills) on free loopback ports, everything under DIR:
#   - RBAC and Node authorization; admission as a cluster has it, plus NodeRestriction;
#   - a private CA (DIR/pki/ca.{crt,key}) that signs the API server's serving certificate
#     (127.0.0.1, 10.0.0.1, kubernetes.default.svc…) and verifies client certificates (kubelets);
#   - service-account tokens: signing key DIR/pki/sa.key, issuer, so TokenRequest works and a
#     kube-controller-manager can mint the legacy token secrets;
#   - static bearer tokens (DIR/pki/tokens.csv) for the admin (system:masters), the
#     controller manager and the scheduler.
# Writes DIR/kube.env (NODEPROBE_IT_KUBECONFIG, NODEPROBE_IT_KUBE_SERVER, NODEPROBE_IT_KUBE_BIN,
# NODEPROBE_IT_KUBE_DIR) and prints the admin kubeconfig's path. Stop with kube-stop.sh DIR.
# Usage: kube-start.sh DIR BIN_DIR
set -euo pipefail
D=$1 B=$2
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
T0=$(np_ms)
mkdir -p "$D/pki" "$D/etcd" "$D/apiserver"; chmod 700 "$D/pki" "$D/etcd"

# --- credentials -----------------------------------------------------------------------
P="$D/pki"
openssl genrsa -out "$P/ca.key" 2048 2>/dev/null
openssl req -x509 -new -key "$P/ca.key" -out "$P/ca.crt" -days 7 -subj "/CN=nodeprobe-it-kube-ca" 2>/dev/null
openssl genrsa -out "$P/apiserver.key" 2048 2>/dev/null
openssl req -new -key "$P/apiserver.key" -out "$P/apiserver.csr" -subj "/CN=kube-apiserver" 2>/dev/null
printf '%s\n' "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
  "extendedKeyUsage=serverAuth" "keyUsage=digitalSignature,keyEncipherment" > "$P/apiserver.ext"
openssl x509 -req -in "$P/apiserver.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
  -out "$P/apiserver.crt" -days 7 -extfile "$P/apiserver.ext" 2>/dev/null
openssl genrsa -out "$P/sa.key" 2048 2>/dev/null
openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
tok() { openssl rand -hex 16; }
ADMIN=$(tok) KCM=$(tok) SCHED=$(tok)
{ echo "$ADMIN,nodeprobe-it-admin,nodeprobe-it-admin,system:masters"
  echo "$KCM,system:kube-controller-manager,system:kube-controller-manager"
  echo "$SCHED,system:kube-scheduler,system:kube-scheduler"; } > "$P/tokens.csv"
chmod 600 "$P"/*.key "$P/tokens.csv"

API_PORT=$(np_free_port) ETCD_PORT=$(np_free_port) ETCD_PEER=$(np_free_port)
SERVER="https://127.0.0.1:$API_PORT"
kubeconfig() { # kubeconfig FILE USER TOKEN
  cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: nodeprobe-it
  cluster: {server: "$SERVER", certificate-authority: "$P/ca.crt"}
users:
- name: $2
  user: {token: "$3"}
contexts:
- name: $2
  context: {cluster: nodeprobe-it, user: $2}
current-context: $2
KC
  chmod 600 "$1"
}
kubeconfig "$D/admin.kubeconfig" nodeprobe-it-admin "$ADMIN"
kubeconfig "$D/controller-manager.kubeconfig" system:kube-controller-manager "$KCM"
kubeconfig "$D/scheduler.kubeconfig" system:kube-scheduler "$SCHED"

# --- etcd ------------------------------------------------------------------------------
"$B/etcd" --name nodeprobe-it --data-dir "$D/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "nodeprobe-it=http://127.0.0.1:$ETCD_PEER" --listen-metrics-urls "" \
  > "$D/etcd.log" 2>&1 < /dev/null &
echo $! > "$D/etcd.pid"
T1=$(np_ms)
np_wait 300 0.05 curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" ||
  { echo "etcd did not come up; log:" >&2; tail -20 "$D/etcd.log" >&2; exit 1; }
T2=$(np_ms)

# --- kube-apiserver --------------------------------------------------------------------
# --endpoint-reconciler-type=none: the `kubernetes` Service keeps no endpoints (nothing routes
# 10.0.0.1 here anyway; pods get KUBERNETES_SERVICE_HOST/PORT of the loopback address instead).
"$B/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --cert-dir="$D/apiserver" --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --client-ca-file="$P/ca.crt" --token-auth-file="$P/tokens.csv" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none \
  --allow-privileged=true --profiling=false --event-ttl=1h \
  > "$D/apiserver.log" 2>&1 < /dev/null &
echo $! > "$D/apiserver.pid"
ready() { [ "$(curl -s --max-time 2 --cacert "$P/ca.crt" -H "Authorization: Bearer $ADMIN" "$SERVER/readyz")" = ok ]; }
for _ in $(seq 1 1200); do
  ready && break
  kill -0 "$(cat "$D/apiserver.pid")" 2>/dev/null || break
  sleep 0.05
done
ready || { echo "kube-apiserver did not become ready; log:" >&2; tail -30 "$D/apiserver.log" >&2; exit 1; }
T3=$(np_ms)
cat > "$D/kube.env" <<ENV
NODEPROBE_IT_KUBECONFIG=$D/admin.kubeconfig
NODEPROBE_IT_KUBE_SERVER=$SERVER
NODEPROBE_IT_KUBE_BIN=$B
NODEPROBE_IT_KUBE_DIR=$D
ENV
echo "kube: etcd ready in $((T2 - T1)) ms, kube-apiserver /readyz in $((T3 - T2)) ms (total $((T3 - T0)) ms with credentials)" >&2
echo "$D/admin.kubeconfig"
