#!/usr/bin/env bash
# Builds one configuration: release (default), asan or fuzz. Usage: scripts/build.sh [release|asan|fuzz]
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-release}
jobs=${PATCHGATE_JOBS:-$(nproc)}
case "$config" in
  release)
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    ninja -C build -j "$jobs" ;;
  asan)
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPATCHGATE_SANITIZE=ON \
      -DPATCHGATE_BENCH=OFF >/dev/null
    ninja -C build-asan -j "$jobs" ;;
  fuzz)
    CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DPATCHGATE_FUZZ=ON -DPATCHGATE_BENCH=OFF >/dev/null
    ninja -C build-fuzz -j "$jobs" fuzzers ;;
  *) echo "usage: $0 [release|asan|fuzz]" >&2; exit 2 ;;
esac
