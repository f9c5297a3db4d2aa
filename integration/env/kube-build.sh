#!/bin/bash
# Build a REAL Kubernetes control plane and node once per machine, cached by version under
# $NODEPROBE_KUBE_CACHE (default /var/cache/nodeprobe-it/kube-v1.20.2):
#   kube-apiserver, kube-controller-manager,        built from Debian 12's `kubernetes` source
#   kube-scheduler, kubelet                          package with Debian's Go 1.19 (the scheduler
#                                                     binds the DaemonSet controller's pods);
#   etcd (3.4), kubectl (1.20)                         extracted from Debian's binary packages;
#   pause.tar                                          the kubelet's sandbox image, built from the
#                                                     tree's build/pause/linux/pause.c (static gcc)
#                                                     as an OCI archive: no registry anywhere.
# A later run with the cache present returns at once. Prints the cache's bin directory.
# Usage: kube-build.sh   (root; needs Debian's deb-src reachable the first time)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VERSION=v1.20.2
C=${NODEPROBE_KUBE_CACHE:-/var/cache/nodeprobe-it/kube-$VERSION}
B="$C/bin"
WANT=(kube-apiserver kube-controller-manager kube-scheduler kubelet etcd kubectl pause.tar)
have_all() { for f in "${WANT[@]}"; do [ -s "$B/$f" ] || return 1; done; }
if have_all; then echo "$B"; exit 0; fi
mkdir -p "$C"
# One build per machine: a second caller waits for the first and then finds the cache.
exec 9>"$C/.lock"
flock 9
if have_all; then echo "$B"; exit 0; fi

T0=$(date +%s)
W="$C/work"
mkdir -p "$B" "$W/apt/parts" "$W/apt/lists/partial" "$W/apt/cache/archives/partial"
cd "$W"
exec 3>&1 1>"$C/build.log" 2>&1   # everything below goes to the log; the result path to fd 3
echo "kube-build: started $(date -Is)"
need=()
for p in golang-go rsync openssl dpkg-dev gcc libc6-dev; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}"
fi
# deb-src entries derived from the machine's own Debian sources, in a private apt state: the
# machine's apt configuration is untouched.
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > apt/parts/debian-src.sources
else
  sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > apt/parts/debian-src.list
fi
APTO=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$W/apt/parts"
      -o "Dir::State::Lists=$W/apt/lists" -o "Dir::Cache=$W/apt/cache")
if [ ! -d k8s ]; then
  apt-get "${APTO[@]}" update -qq
  # Loose pin: a Debian point release may replace +deb12u1.
  apt-get "${APTO[@]}" source --download-only -qq kubernetes
  rm -rf k8s.tmp; dpkg-source -x kubernetes_*.dsc k8s.tmp >/dev/null
  apt-get download -qq etcd-server kubernetes-client golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev
  for f in *.deb; do dpkg -x "$f" root; done   # extract only: installing etcd-server would start a system etcd
  # The vendored reflect2 1.0.1 / json-iterator 1.1.10 segfault under Go >= 1.18 (first JSON
  # encode of a map): replace them with Debian's 1.0.2 / 1.1.12.
  G=root/usr/share/gocode/src/github.com
  for d in modern-go/reflect2 json-iterator/go; do
    find "k8s.tmp/vendor/github.com/$d" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
    cp "$G/$d"/*.go "k8s.tmp/vendor/github.com/$d/"; cp "$G/$d"/*.s "k8s.tmp/vendor/github.com/$d/" 2>/dev/null || true
    rm -f "k8s.tmp/vendor/github.com/$d"/*_test.go
  done
  mv k8s.tmp k8s
fi
# Copy, then rename: a running etcd/kubectl from an earlier cache keeps its file.
for f in etcd kubectl; do cp "root/usr/bin/$f" "$B/$f.tmp"; mv "$B/$f.tmp" "$B/$f"; done
echo "kube-build: sources ready after $(( $(date +%s) - T0 )) s"

# `make WHAT=` (not plain go build): it runs the generators in GOPATH mode, which needs this
# symlink. One make for the four commands shares the generators and the package cache.
cd k8s
mkdir -p .go/src/k8s.io; ln -sfn ../../.. .go/src/k8s.io/kubernetes
env GOPATH="$PWD/.go" HOME="$W" GOCACHE="$W/gocache" CGO_ENABLED=0 KUBE_GIT_VERSION=$VERSION KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 \
  KUBE_GIT_TREE_STATE=clean nice -n 10 make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet"
for f in kube-apiserver kube-controller-manager kube-scheduler kubelet; do cp "_output/bin/$f" "$B/$f.tmp"; mv "$B/$f.tmp" "$B/$f"; done
echo "kube-build: binaries after $(( $(date +%s) - T0 )) s"

# The pause image: the tree's pause.c, static, in a one-layer OCI archive (ctr imports it).
P="$W/pause"; rm -rf "$P"; mkdir -p "$P"
gcc -Os -static -o "$P/pause" build/pause/linux/pause.c -DVERSION=3.4.1-nodeprobe-it
strip "$P/pause"
python3 "$HERE/oci-image.py" "$P/pause.tar" k8s.gcr.io/pause:3.2 /pause 65535:65535 "$P/pause=/pause"
cp "$P/pause.tar" "$B/pause.tar.tmp"; mv "$B/pause.tar.tmp" "$B/pause.tar"
SECS=$(( $(date +%s) - T0 ))
echo "$SECS" > "$C/build-seconds"
echo "kube-build: done in $SECS s"
# The build tree is ~2.5 GB; keep only the binaries.
cd "$C"; rm -rf "$W"
exec 1>&3
echo "$B"
