#!/usr/bin/env bash
# Builds and runs the whole test suite. --quick skips tests labelled slow and the sanitizer runs.
set -euo pipefail
cd "$(dirname "$0")"
quick=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    *) echo "usage: ./test.sh [--quick]" >&2; exit 2 ;;
  esac
done

bash scripts/deps.sh
bash scripts/check-format.sh
bash scripts/build.sh build

if ((!quick)); then
  # The IOAS lookup path takes no global lock: its tests run again under ThreadSanitizer.
  bash scripts/sanitized-test.sh thread iommu/iommu_test --gtest_brief=1
  # vfio-user peers that die, stall or lie, and DMA racing unmaps, under ASan and UBSan: nothing
  # outside mapped memory is touched.
  bash scripts/sanitized-test.sh address devices/vfio/vfio_user_test --gtest_brief=1
  # Everything that parses untrusted bytes, fuzzed with ASan and UBSan for a bounded time.
  bash fuzz/run.sh "${IOASIS_FUZZ_SECONDS:-30}"
fi

# ctest last, so its summary closes the output.
ctest_args=(--test-dir build --output-on-failure -j 2 --timeout 600)
((quick)) && ctest_args+=(-LE slow)
ctest "${ctest_args[@]}"
