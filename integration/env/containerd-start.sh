#!/bin/bash
# A private containerd (CRI plugin on) with all state under DIR. Prints the socket path.
# NODEPROBE_CTRD_CRI_EXTRA: more settings (TOML lines) of the CRI plugin, for a kubelet.
set -euo pipefail
D=$1
mkdir -p "$D/root" "$D/state" "$D/cni-conf" "$D/cni-bin"
cat > "$D/config.toml" <<TOML
version = 2
root = "$D/root"
state = "$D/state"
[grpc]
  address = "$D/containerd.sock"
[ttrpc]
  address = "$D/containerd.sock.ttrpc"
[debug]
  address = "$D/debug.sock"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    disable_apparmor = true
    ${NODEPROBE_CTRD_CRI_EXTRA:-}
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$D/cni-bin"
      conf_dir = "$D/cni-conf"
  [plugins."io.containerd.internal.v1.opt"]
    path = "$D/opt"
TOML
containerd --config "$D/config.toml" > "$D/containerd.log" 2>&1 < /dev/null &
echo $! > "$D/containerd.pid"
for _ in $(seq 1 200); do
  timeout 2 ctr --address "$D/containerd.sock" version >/dev/null 2>&1 && { echo "$D/containerd.sock"; exit 0; }
  kill -0 "$(cat "$D/containerd.pid")" 2>/dev/null || break
  sleep 0.05
done
echo "containerd did not come up; log:" >&2; tail -20 "$D/containerd.log" >&2; exit 1
