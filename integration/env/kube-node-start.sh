#!/bin/bash
# A real node for the control plane of kube-start.sh: kube-controller-manager (DaemonSet and
# ServiceAccount token controllers) and kube-scheduler, plus a kubelet v1.20.2 that registers
# this machine as Node NAME and runs its pods on a private containerd 1.6 through the CRI
# (v1alpha2), with the cache's pause image as the pod sandbox. Everything lives under DIR.
#
# The kubelet is made harmless for a shared machine:
#   - host-global sysctls: it sets vm.overcommit_memory, vm.panic_on_oom, kernel.panic,
#     kernel.panic_on_oops and kernel.keys.root_max{keys,bytes} at start. It and its
#     containerd run in a private mount namespace where those /proc/sys entries are regular
#     files bind-mounted over them: its writes land there, the host keeps its values;
#   - cgroups: its own cgroup root /nodeprobe-it-kubelet-NAME (pods under
#     …/kubepods/{burstable,besteffort}/pod<uid>; the kubepods tree the OOM tests create at
#     the top level is not its); the kubelet and containerd themselves run in …/node;
#   - fixed host paths: /var/log/pods and /var/log/containers are private directories in
#     that namespace (the empty mount points are created on the host once and left, as on any
#     node); root dir, certificates and volume plugins under DIR; device plugins off (their
#     socket path is the fixed /var/lib/kubelet/device-plugins);
#   - no iptables chains, no image GC, evictions only when nearly out of memory/disk,
#     swap allowed; every port on 127.0.0.1 and chosen free.
# Stop with kube-node-stop.sh DIR: everything by PID and cgroup, then DIR is removed.
#
# Usage: kube-node-start.sh DIR NAME   with NODEPROBE_IT_KUBE_DIR, NODEPROBE_IT_KUBE_BIN and
#        NODEPROBE_IT_KUBE_SERVER set (services.env). Prints the containerd socket.
set -euo pipefail
D=$1 NODE=$2
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
K=${NODEPROBE_IT_KUBE_DIR:?} B=${NODEPROBE_IT_KUBE_BIN:?} SERVER=${NODEPROBE_IT_KUBE_SERVER:?}
T0=$(np_ms)
CG=nodeprobe-it-kubelet-$NODE
mkdir -p "$D/pki" "$D/root" "$D/volume-plugins" "$D/sysctl" "$D/log/pods" "$D/log/containers"
echo "$CG" > "$D/cgroup"
KC="$B/kubectl --kubeconfig $K/admin.kubeconfig"

# --- the kubelet's credentials: a client certificate system:node:NAME (Node authorizer) ---
openssl genrsa -out "$D/pki/kubelet-client.key" 2048 2>/dev/null
openssl req -new -key "$D/pki/kubelet-client.key" -out "$D/pki/kubelet-client.csr" \
  -subj "/O=system:nodes/CN=system:node:$NODE" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' > "$D/pki/client.ext"
openssl x509 -req -in "$D/pki/kubelet-client.csr" -CA "$K/pki/ca.crt" -CAkey "$K/pki/ca.key" \
  -CAcreateserial -out "$D/pki/kubelet-client.crt" -days 2 -extfile "$D/pki/client.ext" 2>/dev/null
cat > "$D/kubelet.kubeconfig" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: nodeprobe-it
  cluster: {server: "$SERVER", certificate-authority: "$K/pki/ca.crt"}
users:
- name: kubelet
  user: {client-certificate: "$D/pki/kubelet-client.crt", client-key: "$D/pki/kubelet-client.key"}
contexts:
- name: kubelet
  context: {cluster: nodeprobe-it, user: kubelet}
current-context: kubelet
KCFG

# --- cgroups: the kubelet's root (every hierarchy) and a leaf for its own processes ----------
for h in /sys/fs/cgroup/*/; do
  h=${h%/}
  [ -e "$h/cgroup.procs" ] || continue
  for c in "$h/$CG" "$h/$CG/node"; do
    mkdir -p "$c"
    if [ -e "$c/cpuset.cpus" ]; then   # a cpuset cgroup starts empty: inherit the parent's
      cat "$(dirname "$c")/cpuset.cpus" > "$c/cpuset.cpus"
      cat "$(dirname "$c")/cpuset.mems" > "$c/cpuset.mems"
    fi
  done
done
join() { # move this shell into CG/node everywhere
  for h in /sys/fs/cgroup/*/; do
    h=${h%/}; [ -e "$h/$CG/node/cgroup.procs" ] && echo "$1" > "$h/$CG/node/cgroup.procs"
  done
}

# --- controllers -------------------------------------------------------------------------
(
  join $BASHPID
  exec "$B/kube-controller-manager" --kubeconfig="$K/controller-manager.kubeconfig" \
    --controllers=daemonset,serviceaccount-token,serviceaccount --use-service-account-credentials=true \
    --service-account-private-key-file="$K/pki/sa.key" --root-ca-file="$K/pki/ca.crt" \
    --leader-elect=false --port=0 --secure-port=0 --profiling=false
) > "$D/controller-manager.log" 2>&1 < /dev/null &
echo $! > "$D/controller-manager.pid"
(
  join $BASHPID
  exec "$B/kube-scheduler" --kubeconfig="$K/scheduler.kubeconfig" \
    --leader-elect=false --port=0 --secure-port=0 --profiling=false
) > "$D/scheduler.log" 2>&1 < /dev/null &
echo $! > "$D/scheduler.pid"

# --- kubelet configuration ---------------------------------------------------------------
PORT=$(np_free_port) HEALTHZ=$(np_free_port)
# The node's InternalIP: the machine's first non-loopback IPv4 address (a kubelet refuses a
# loopback one); none → the kubelet's own choice.
NODE_IP=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -m1 -E '^[0-9]+\.' || true)
echo "$HEALTHZ" > "$D/healthz-port"
cat > "$D/kubelet.yaml" <<CFG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $HEALTHZ
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: "$K/pki/ca.crt"}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: /$CG
cgroupsPerQOS: true
enforceNodeAllocatable: [pods]
failSwapOn: false
makeIPTablesUtilChains: false
protectKernelDefaults: false
featureGates: {DevicePlugins: false}
volumePluginDir: "$D/volume-plugins"
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
# Post the node status every 10 s (not only on change / every 5 min), so the kubelet's own
# writes interleave with nodeprobe's.
nodeStatusUpdateFrequency: 10s
nodeStatusReportFrequency: 10s
CFG

# --- the private mount namespace: sysctls, log dirs, containerd, kubelet ---------------------
SYSCTLS="vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes"
for s in $SYSCTLS; do cat "/proc/sys/$s" > "$D/sysctl/${s//\//.}"; done
mkdir -p /var/log/pods /var/log/containers
(
  join $BASHPID
  exec unshare --mount --propagation private /bin/bash -c '
    set -e
    D=$1 B=$2 NODE=$3 HERE=$4 SYSCTLS=$5 NODE_IP=$6
    for s in $SYSCTLS; do mount --bind "$D/sysctl/${s//\//.}" "/proc/sys/$s"; done
    mount --bind "$D/log/pods" /var/log/pods
    mount --bind "$D/log/containers" /var/log/containers
    mkdir -p "$D/containerd/cni-conf"
    # A CNI configuration makes the runtime report NetworkReady (the pod uses the host network).
    echo "{\"cniVersion\":\"0.4.0\",\"name\":\"nodeprobe-it\",\"plugins\":[{\"type\":\"loopback\"}]}" \
      > "$D/containerd/cni-conf/10-nodeprobe-it.conflist"
    # The pause image of the cache is the pod sandbox. restrict_oom_score_adj: a process here
    # may not lower its oom_score_adj (no CAP_SYS_RESOURCE in this VM), and runc fails to
    # start a container whose spec asks for a negative one (the kubelet gives critical pods
    # -997, sandboxes -998); containerd then clamps it to its own (0).
    SOCK=$(NODEPROBE_CTRD_CRI_EXTRA="sandbox_image = \"k8s.gcr.io/pause:3.2\"
    restrict_oom_score_adj = true" bash "$HERE/containerd-start.sh" "$D/containerd")
    timeout 60 ctr --address "$SOCK" -n k8s.io images import "$B/pause.tar" >/dev/null
    echo "$SOCK" > "$D/containerd.sock.path"
    exec "$B/kubelet" --config="$D/kubelet.yaml" --kubeconfig="$D/kubelet.kubeconfig" \
      --root-dir="$D/root" --cert-dir="$D/pki" --hostname-override="$NODE" ${NODE_IP:+--node-ip=$NODE_IP} \
      --container-runtime=remote --container-runtime-endpoint="unix://$SOCK" \
      --pod-infra-container-image=k8s.gcr.io/pause:3.2 --v=2' \
    nodeprobe-it-kubelet "$D" "$B" "$NODE" "$HERE" "$SYSCTLS" "$NODE_IP"
) > "$D/kubelet.log" 2>&1 < /dev/null &
echo $! > "$D/kubelet.pid"

fail() { echo "kube-node: $1; logs in $D:" >&2; tail -15 "$D/kubelet.log" >&2; exit 1; }
for _ in $(seq 1 1200); do
  [ -s "$D/containerd.sock.path" ] && break
  kill -0 "$(cat "$D/kubelet.pid")" 2>/dev/null || fail "containerd did not start"
  sleep 0.05
done
[ -s "$D/containerd.sock.path" ] || fail "containerd did not start"
T1=$(np_ms)
for _ in $(seq 1 1200); do
  $KC get node "$NODE" >/dev/null 2>&1 && break
  kill -0 "$(cat "$D/kubelet.pid")" 2>/dev/null || fail "the kubelet exited"
  sleep 0.1
done
$KC get node "$NODE" >/dev/null 2>&1 || fail "Node $NODE was not registered"
T2=$(np_ms)
ready() { [ "$($KC get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; }
for _ in $(seq 1 1200); do
  ready && break
  kill -0 "$(cat "$D/kubelet.pid")" 2>/dev/null || fail "the kubelet exited"
  sleep 0.1
done
ready || fail "Node $NODE did not become Ready"
T3=$(np_ms)
echo "kube-node: containerd up in $((T1 - T0)) ms, Node registered $((T2 - T1)) ms later, Ready $((T3 - T2)) ms after that" >&2
cat "$D/containerd.sock.path"
