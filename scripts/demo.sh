#!/usr/bin/env bash
# The ./run.sh demo: two vfio-user DMA engines (one server process, two functions of one
# isolation group) behind the virtio-iommu. The test guest puts both endpoints in one domain,
# maps one buffer once and has both devices copy through it (test=dma-shared); while it holds
# that state, ioasisctl lists the devices and the address spaces over the API socket.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
work=$(mktemp -d /tmp/ioasis-demo.XXXXXX)
server_pid="" vmm_pid=""
cleanup() {
  local status=$?
  for pid in $vmm_pid $server_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

ctl() { "$build/api/ioasisctl" --api-socket "$work/api.sock" "$@"; }
wait_for() {  # wait_for FILE PATTERN SECONDS
  for _ in $(seq 1 $((${3} * 20))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "demo: timed out waiting for '$2' in $1" >&2
  return 1
}

echo "== vfio-user-dma-server: two functions in isolation group 1"
"$build/devices/vfio/vfio-user-dma-server" --socket "$work/dma.sock" --functions 2 --group 1 \
  --log-level warn &
server_pid=$!
for s in "$work/dma.sock" "$work/dma.sock.1"; do
  for _ in $(seq 1 100); do [ -S "$s" ] && break; sleep 0.05; done
done

echo "== ioasis --api-socket $work/api.sock"
"$build/vmm/ioasis" --api-socket "$work/api.sock" --log-level warn &
vmm_pid=$!
for _ in $(seq 1 100); do [ -S "$work/api.sock" ] && break; sleep 0.05; done

ctl create --kernel "$build/guest-images/testguest/testguest.elf" --memory 256M --iommu \
  --cmdline "test=dma-shared hold_ms=3000" --serial "file=$work/console.log"
ctl add-user-device --socket "$work/dma.sock" --iommu --id dma-a >/dev/null
ctl add-user-device --socket "$work/dma.sock.1" --iommu --id dma-b >/dev/null
ctl boot
wait_for "$work/console.log" "holding" 60

echo "== ioasisctl devices"
ctl devices
echo "== ioasisctl ioas list  (the guest's domain holds both DMA engines)"
ctl ioas list

wait_for "$work/console.log" "TESTGUEST" 60
echo "== guest console"
cat "$work/console.log"
echo "== ioasisctl info"
ctl info
grep -q "TESTGUEST PASS" "$work/console.log"
