#!/usr/bin/env bash
# Installs what a Berth host needs from Debian's archive when it is missing, and
# builds native/ (berth-runtime, berth-shim, berth-spawner). Idempotent: a second run installs
# nothing and rebuilds nothing that is up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  redis-server            # the cluster store (all-in-one and tests)
  docker-registry         # the local OCI registry (all-in-one and tests)
  containernetworking-plugins iptables iproute2  # task networking
  busybox-static          # example images and test bundles
  runc                    # the reference runtime, and a drop-in for berth-runtime
  conmon                  # the reference monitor for the shim benchmark
  libseccomp-dev pkg-config build-essential      # building native/
  musl-tools              # a static musl berth-shim: an idle shim under 1 MiB of RSS
  zstd                    # zstd-compressed image layers
  attr                    # setfattr: image layers with xattrs and opaque directories
  ca-certificates
)
# What only the test suite and the benchmarks use: the side-by-side reference
# (docker), the compose deployment test, the browser and Prometheus tests, and
# the load generators of the function benchmark (wrk closed-loop, hey paced).
if [ "${BERTH_SETUP_TESTS:-0}" = 1 ]; then
  packages+=(docker.io docker-compose chromium prometheus wrk hey)
fi

missing=()
for p in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != "installed" ]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "berth setup: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "berth setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

make -s -C native
