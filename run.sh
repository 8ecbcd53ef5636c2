#!/usr/bin/env bash
# Builds ioasis and shows it working: the test guest boots on the console (test=boot), then two
# vfio-user DMA engines share one address space behind the virtio-iommu while ioasisctl lists
# devices and address spaces (scripts/demo.sh). Arguments, if any, go to ioasis instead.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/deps.sh
bash scripts/build.sh build >&2
if (($#)); then
  exec build/vmm/ioasis "$@"
fi
echo "== ioasis --kernel testguest.elf --cmdline test=boot"
build/vmm/ioasis --kernel build/guest-images/testguest/testguest.elf --cmdline "test=boot" \
  --memory size=256M --serial stdio --log-level warn
echo
exec bash scripts/demo.sh build
