#!/usr/bin/env bash
# Installs the Debian packages ioasis builds and tests with, when any is missing.
# Sourced by run.sh and test.sh; safe to run again.
set -euo pipefail

IOASIS_PACKAGES=(
  cmake ninja-build g++ pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libboost-dev libgtest-dev libgmock-dev libbenchmark-dev
  libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev libabsl-dev
  acpica-tools qemu-system-x86 clang libclang-rt-14-dev
  python3-grpcio python3-grpc-tools binutils zstd xz-utils cpio
)

missing=()
for p in "${IOASIS_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
