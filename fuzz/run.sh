#!/bin/sh
# Builds the libFuzzer targets with clang, ASan and UBSan in build-fuzz and runs each for a
# bounded time. Usage: fuzz/run.sh [SECONDS_PER_TARGET] (default 60). Exits non-zero when a
# target crashes or a sanitizer reports; the reproducer is left in build-fuzz/fuzz/artifacts/.
set -eu
cd "$(dirname "$0")/.."
seconds="${1:-60}"
jobs="${FUZZ_JOBS:-2}"
build=build-fuzz

if [ ! -f "$build/build.ninja" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -G Ninja -DIOASIS_FUZZ=ON \
    -DIOASIS_SANITIZE="address;undefined" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
targets=$(sed -n 's/^ioasis_fuzz_target(\([a-z0-9_]*\) .*/\1/p' fuzz/CMakeLists.txt)
# shellcheck disable=SC2086
cmake --build "$build" --target $targets -j"$jobs"

mkdir -p "$build/fuzz/artifacts" "$build/fuzz/corpus"
status=0
for t in $targets; do
  mkdir -p "$build/fuzz/corpus/$t"
  echo "== $t for ${seconds}s"
  if ! UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$build/fuzz/$t" \
      -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix="$build/fuzz/artifacts/$t-" "$build/fuzz/corpus/$t"; then
    echo "== $t FAILED" >&2
    status=1
  fi
done
exit $status
