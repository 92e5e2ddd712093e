#!/usr/bin/env bash
# Installs everything patchgate needs to build and test on Debian 12 (as root), and the
# npm test peers pinned by their lockfiles. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # toolchain
  g++ cmake ninja-build pkg-config clang libclang-rt-14-dev git ca-certificates
  libgtest-dev libgmock-dev libbenchmark-dev
  # libraries
  libssl-dev libcurl4-openssl-dev nlohmann-json3-dev libcli11-dev libspdlog-dev
  libsqlite3-dev sqlite3 libpq-dev libboost1.81-dev libclamav-dev libgpgme-dev
  # real peers used by the tests and benchmarks
  clamav clamav-daemon clamdscan clamav-testfiles postgresql-15 pgbouncer python3 python3-aiosmtpd nginx wrk zip unzip
  chromium procps curl util-linux gnupg wget eatmydata
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian postgresql and clamav-daemon packages may start servers of their own; the tests
# and benchmarks run their own throwaway ones (bench/scan_bench.sh starts clamd itself) and
# do not need them.

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "deps: installing nodejs and npm"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

# npm test peers, each pinned by its package-lock.json.
while IFS= read -r lock; do
  dir=$(dirname "$lock")
  echo "deps: npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
done < <(find tests -name package-lock.json -not -path '*/node_modules/*' | sort)
