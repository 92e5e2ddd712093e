#!/usr/bin/env bash
# The test command: installs dependencies, builds the release, sanitizer and fuzz
# configurations once each, starts the servers the tests need (PostgreSQL 15 as a
# non-root user, on loopback) and stops them, runs every test, then each fuzz target briefly.
# Usage: scripts/test.sh          (everything)
#        FUZZ_SECONDS=30 (default) per fuzz target; SKIP_ASAN=1 / SKIP_FUZZ=1 to skip parts.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
fuzz_seconds=${FUZZ_SECONDS:-30}
export CTEST_OUTPUT_ON_FAILURE=1

bash scripts/deps.sh

pg_dir="$root/build/pgdata"
cleanup() {
  if [[ -n "${PATCHGATE_TEST_PG_URL:-}" ]]; then bash tests/pg/pg.sh stop "$pg_dir" || true; fi
}
trap cleanup EXIT

echo "== build (release)"
bash scripts/build.sh release

if [[ -f tests/pg/pg.sh ]]; then
  echo "== start PostgreSQL 15 (throwaway, loopback, non-root)"
  PATCHGATE_TEST_PG_URL=$(bash tests/pg/pg.sh start "$pg_dir")
  export PATCHGATE_TEST_PG_URL PATCHGATE_TEST_PG_DIR="$pg_dir"
  echo "   $PATCHGATE_TEST_PG_URL"
fi

failed=0
echo "== tests (release)"
ctest --test-dir build --timeout 600 -j 2 --output-on-failure || failed=1

if [[ -z "${SKIP_ASAN:-}" ]]; then
  echo "== build (ASan+UBSan)"
  bash scripts/build.sh asan
  echo "== tests (ASan+UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --timeout 900 -j 2 -LE 'slow|interop' --output-on-failure || failed=1
fi

if [[ -z "${SKIP_FUZZ:-}" ]]; then
  echo "== build (libFuzzer, clang)"
  bash scripts/build.sh fuzz
  for f in build-fuzz/fuzzers/*; do
    [[ -x "$f" ]] || continue
    name=$(basename "$f")
    corpus="build-fuzz/corpus/$name"
    mkdir -p "$corpus"
    seeds="fuzz/seeds/$name"
    echo "== fuzz $name for ${fuzz_seconds}s"
    if "$f" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
         "$corpus" $( [[ -d "$seeds" ]] && echo "$seeds" ) > "build-fuzz/$name.log" 2>&1; then
      grep -E 'stat::number_of_executed_units' "build-fuzz/$name.log" || true
    else
      echo "fuzz target $name FAILED:"; tail -40 "build-fuzz/$name.log"; failed=1
    fi
  done
fi

if ((failed)); then echo "TESTS FAILED"; exit 1; fi
echo "ALL TESTS PASSED"
