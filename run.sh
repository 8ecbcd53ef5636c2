#!/usr/bin/env bash
# Builds ioasis and boots the test guest. Arguments, if any, are passed to ioasis instead.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/deps.sh
bash scripts/build.sh build >&2
if (($#)); then
  exec build/vmm/ioasis "$@"
fi
exec build/vmm/ioasis --kernel build/guest-images/testguest/testguest.elf --cmdline "test=boot" \
  --memory size=256M --serial stdio
