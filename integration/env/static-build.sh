#!/bin/bash
# Build the static release binary the image ships (deploy/Dockerfile): x86_64 musl when the
# Rust musl target and musl-tools can be had, else glibc with crt-static (also fully static;
# nodeprobe uses no NSS). Prints the binary's path on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
MUSL=x86_64-unknown-linux-musl
if ! command -v x86_64-linux-musl-gcc >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends musl-tools >/dev/null 2>&1 || true
fi
if command -v x86_64-linux-musl-gcc >/dev/null &&
   { rustup target list --installed 2>/dev/null | grep -qx "$MUSL" || timeout 180 rustup target add "$MUSL" >&2; }; then
  cargo build --release --locked --target "$MUSL" --bin nodeprobe >&2
  echo "$PWD/target/$MUSL/release/nodeprobe"
else
  echo "static-build: musl target unavailable; building glibc static (crt-static)" >&2
  GNU=x86_64-unknown-linux-gnu
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$GNU" --bin nodeprobe >&2
  echo "$PWD/target/$GNU/release/nodeprobe"
fi
