#!/usr/bin/env bash
# Builds the IOASID manager tests with ThreadSanitizer in build-tsan and runs them. The lookup
# path takes no global lock, so this is where a data race between device threads and map/unmap
# would show. Usage: iommu/tsan.sh [gtest args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/build-tsan"
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S "$root" -B "$dir" -G Ninja -DIOASIS_SANITIZE=thread -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$dir" --target iommu_test -j "$(nproc)"
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" "$dir/iommu/iommu_test" "$@"
