#!/usr/bin/env bash
# Builds one test binary with a sanitizer, in a build tree of its own (build-thread,
# build-address), and runs it. Usage: scripts/sanitized-test.sh thread|address DIR/TARGET [args...]
# e.g. scripts/sanitized-test.sh thread iommu/iommu_test --gtest_brief=1
set -euo pipefail
kind=$1
test=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/build-$kind"
case "$kind" in
  thread) sanitize=thread ;;
  address) sanitize="address;undefined" ;;
  *) echo "sanitizer must be thread or address" >&2; exit 2 ;;
esac
if [ ! -f "$dir/build.ninja" ]; then
  cmake -S "$root" -B "$dir" -G Ninja "-DIOASIS_SANITIZE=$sanitize" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$dir" --target "$(basename "$test")" -j "$(nproc)"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=1 abort_on_error=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1 ${UBSAN_OPTIONS:-}"
"$dir/$test" "$@"
