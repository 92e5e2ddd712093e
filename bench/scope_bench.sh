#!/usr/bin/env bash
# Incident scope over a large audit trail, timed as users run it, on SQLite and on
# PostgreSQL (a throwaway server with default settings). Prints figures; takes minutes.
#   bench/scope_bench.sh [BUILD_DIR] [DOWNLOADS=10000000] [DAYS=30] [LOG_LINES=1000000] [ENGINES="sqlite postgresql"]
# For each engine: generates DOWNLOADS served records over DAYS days and 20 nodes, then for
# two windows (the seed incident: one node-day thinned to 170 downloads; a busy node-day:
# DOWNLOADS / (20 x DAYS) downloads) times
#   - the whole command, `patchgate incident scope --node N --from T1 --to T2 --store URL`,
#     each run a fresh process (start, store open, query, grouping, output), default table
#     output and --csv, median and min of 11 runs;
#   - the floor: the same index query inside one process with the store already open;
#   - `patchgate incident list` (process start + store open + one tiny query).
# Every command's exit status and output are checked (the row count must be the known
# one); a failed run aborts the bench. LOG_LINES > 0 also measures access-log import.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
downloads=${2:-10000000}
days=${3:-30}
lines=${4:-1000000}
engines=${5:-sqlite postgresql}
pg="$build/src/cli/patchgate"
work=$(mktemp -d /tmp/pg-scopebench.XXXXXX)
chmod 755 "$work"
trap 'bash "$root/tests/pg/pg.sh" stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"' EXIT

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peers: SQLite $(python3 -c 'import sqlite3; print(sqlite3.sqlite_version)') (library), $(/usr/lib/postgresql/15/bin/postgres --version)"
echo "trail: $downloads served downloads over $days days and 20 nodes, generated in time order"

# time_cli LABEL EXPECTED_ROWS MODE CMD...: 11 fresh processes; MODE table checks the totals
# line, csv the number of data rows, list only the exit status.
time_cli() {
  python3 - "$@" <<'PY'
import statistics, subprocess, sys, time
label, expected, mode, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
times = []
for i in range(11):
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    times.append((time.perf_counter() - t) * 1000)
    if r.returncode != 0:
        sys.exit(f"FAILED (exit {r.returncode}): {' '.join(cmd)}\n{r.stderr.decode(errors='replace')}")
    out = r.stdout.decode(errors="replace")
    if mode == "table" and f"\n{expected} downloads of " not in out:
        sys.exit(f"FAILED: expected {expected} downloads in the totals line of: {' '.join(cmd)}\n{out[-400:]}")
    if mode == "csv" and out.count("\n") != expected + 1:
        sys.exit(f"FAILED: expected {expected} CSV rows, got {out.count(chr(10)) - 1}: {' '.join(cmd)}")
print(f"  {label}: median {statistics.median(times):.1f} ms, min {min(times):.1f} ms (11 fresh processes)")
PY
}

for engine in $engines; do
  if [[ $engine == sqlite ]]; then
    url="sqlite://$work/scope.db"
  else
    url=$(bash "$root/tests/pg/pg.sh" start "$work/pg")
  fi
  echo
  echo "== $engine"
  "$build/bench/scope_bench" generate "$url" "$downloads" "$days" >"$work/windows"
  if [[ $engine == postgresql ]]; then
    # A live server's autovacuum analyses a table that grows; the bulk-loaded one is
    # analysed here once, as autovacuum would, so the planner knows its size.
    psql "$url" -qAtc "VACUUM ANALYZE downloads"
    echo "  (VACUUM ANALYZE run once after the load, as autovacuum does on a live server)"
  fi
  time_cli "process start + store open + one tiny query (patchgate incident list)" 0 list \
    "$pg" incident list --store "$url"
  while read -r kind node from to expected; do
    echo " $kind window: node $node, $from to $to, $expected downloads in scope, of $downloads"
    time_cli "whole command, table output" "$expected" table \
      "$pg" incident scope --node "$node" --from "$from" --to "$to" --store "$url"
    time_cli "whole command, --csv" "$expected" csv \
      "$pg" incident scope --node "$node" --from "$from" --to "$to" --store "$url" --csv
    read -r med min < <("$build/bench/scope_bench" floor "$url" "$node" "$from" "$to" "$expected")
    echo "  floor, the bare index query in one process with the store open: median $med ms, min $min ms (7 runs)"
  done <"$work/windows"
  if ((lines > 0)); then "$build/bench/scope_bench" import "$url" "$lines"; fi
  if [[ $engine == sqlite ]]; then
    echo "  database size: $(du -ch "$work"/scope.db* | tail -1 | cut -f1)"
    rm -f "$work"/scope.db*
  else
    echo "  database size: $(psql "$url" -qAtc "SELECT pg_size_pretty(pg_database_size(current_database()))")"
    bash "$root/tests/pg/pg.sh" stop "$work/pg"
  fi
done
