#!/usr/bin/env bash
# Audit records/s on SQLite and on PostgreSQL (a throwaway server). Prints figures.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
work=$(mktemp -d /tmp/pg-auditbench.XXXXXX)
trap 'bash "$root/tests/pg/pg.sh" stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"' EXIT
"$build/bench/audit_bench" "sqlite://$work/audit.db" 3000
url=$(bash "$root/tests/pg/pg.sh" start "$work/pg")
"$build/bench/audit_bench" "$url" 3000
