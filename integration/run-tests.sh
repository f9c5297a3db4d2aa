#!/bin/bash
# The test command (README): installs what the tests need (Debian packages), starts the real
# components on private sockets, checks formatting and lints, builds, runs every test, and
# stops the components again. Run as root on a fresh Debian 12 machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVD=integration/env
export NODEPROBE_IT_BASE=${NODEPROBE_IT_BASE:-/tmp/nodeprobe-it}

bash "$ENVD/services-start.sh"
trap 'bash "$ENVD/services-stop.sh"' EXIT
set -a; . "$NODEPROBE_IT_BASE/services.env"; set +a

# Manifest schema validator (PyPI), in a private venv.
VENV=/tmp/nodeprobe-it-venv
[ -x "$VENV/bin/kubernetes-validate" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q kubernetes-validate; }
export NODEPROBE_KUBE_VALIDATE="$VENV/bin/kubernetes-validate"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo build"
cargo build --workspace --bins
echo "== static release build (the image's binary)"
NODEPROBE_STATIC_BIN=$(bash "$ENVD/static-build.sh")
export NODEPROBE_STATIC_BIN
ls -l "$NODEPROBE_STATIC_BIN"
echo "== cargo test"
# Test binaries run one after another; kmsg/cgroup tests serialise themselves inside theirs.
cargo test --workspace --no-fail-fast -- --test-threads=2
