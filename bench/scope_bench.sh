#!/usr/bin/env bash
# Incident scope over a large audit trail and access-log import speed, on SQLite and on
# PostgreSQL (a throwaway server, default settings). Prints figures; takes minutes.
#   bench/scope_bench.sh [BUILD_DIR] [DOWNLOADS=10000000] [LOG_LINES=1000000]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
downloads=${2:-10000000}
lines=${3:-1000000}
work=$(mktemp -d /tmp/pg-scopebench.XXXXXX)
chmod 755 "$work"
trap 'bash "$root/tests/pg/pg.sh" stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"' EXIT
"$build/bench/scope_bench" "sqlite://$work/scope.db" "$downloads" "$lines"
echo "sqlite: database size $(du -sh "$work"/scope.db* | awk '{s=s" "$1} END {print s}')"
rm -f "$work"/scope.db*
url=$(bash "$root/tests/pg/pg.sh" start "$work/pg")
"$build/bench/scope_bench" "$url" "$downloads" "$lines"
