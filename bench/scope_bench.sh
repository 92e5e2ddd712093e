#!/usr/bin/env bash
# Incident scope over a large audit trail, timed as users run it, on SQLite and on
# PostgreSQL (a throwaway server with default settings). Prints figures.
#   bench/scope_bench.sh [BUILD_DIR] [DOWNLOADS=10000000] [DAYS=30] [LOG_LINES=0] [ENGINES="sqlite postgresql"]
# For each engine:
#  1. creates the store with `patchgate` (every migration), then generates DOWNLOADS served
#     records in SQL (generate_series; the indexes and triggers of the downloads table are
#     dropped for the load and re-created exactly as the migrations wrote them, and the
#     per-node bounds are computed once, as the triggers would have kept them); 20 nodes,
#     DAYS days, 200 organisations with one user each; PostgreSQL is then VACUUM ANALYZEd
#     once, as autovacuum does on a live server;
#  2. two windows: the seed incident (node 7, one day, thinned to about 170 downloads) and a
#     busy node-day (node 3, DOWNLOADS / (20 x DAYS) downloads). The expected row count of each
#     is counted by a plain SQL overlap query, independent of patchgate's query;
#  3. times, each as a fresh process (median and min of 11):
#     - `patchgate incident list` (process start + store open + one tiny query);
#     - the whole command `patchgate incident scope --node N --from T1 --to T2 --store URL`,
#       table output and --csv;
#     - the floor: the same index query (Store::QueryDownloads, what the scope runs) timed
#       inside one process with the store already open and the heap the command uses
#       (huge pages, core/heap_huge_pages.h) (bench/scope_bench floor, 7 runs).
# Every command's exit status and output are checked (the totals line or the number of CSV
# rows must be the expected count); a failed run aborts the bench.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
downloads=${2:-10000000}
days=${3:-30}
lines=${4:-0}
engines=${5:-sqlite postgresql}
pg="$build/src/cli/patchgate"
work=$(mktemp -d /tmp/pg-scopebench.XXXXXX)
chmod 755 "$work"
trap 'bash "$root/tests/pg/pg.sh" stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"' EXIT

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peers: $(sqlite3 --version | cut -d' ' -f1 | sed 's/^/SQLite /') (library and shell), $(/usr/lib/postgresql/15/bin/postgres --version)"
echo "patchgate: $("$pg" --version), $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown commit)"
echo "trail: about $downloads served downloads over $days days and 20 nodes, generated in SQL"

# time_cli LABEL EXPECTED_ROWS MODE CMD...: 11 fresh processes; MODE table checks the totals
# line, csv the number of data rows, list the exit status and the header line.
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
    if mode == "list" and not out.startswith("ID "):
        sys.exit(f"FAILED: no incident list header from: {' '.join(cmd)}\n{out[:200]}")
print(f"  {label}: median {statistics.median(times):.1f} ms, min {min(times):.1f} ms (11 fresh processes)")
PY
}

t0=1790000000000000
day=86400000000
seed_from=$((t0 + 10 * day)); seed_to=$((seed_from + day))
busy_from=$((t0 + 12 * day)); busy_to=$((busy_from + day))
rfc() { date -u -d "@$(($1 / 1000000))" +%Y-%m-%dT%H:%M:%SZ; }

# The generated rows, as one INSERT ... SELECT over `$1` (the engine's series of integers
# named value). Node and user are spread by multiplicative hashing; five-second downloads.
generate_sql() {
  local series=$1 spacing=$((days * day / downloads)) thin=$((downloads / (20 * days) / 170 > 1 ? downloads / (20 * days) / 170 : 1))
  cat <<SQL
INSERT INTO organisations (id, name, tier, am_name, am_email, am_phone, contacts, webhook_url, created_at)
  SELECT 1000000 + value, 'bench-org-' || value, 'gold', 'AM ' || (value % 17), 'am' || (value % 17) || '@vendor.example',
         '+44 20 7946 0' || (100 + value % 17), 'security@org' || value || '.example', '', 0 FROM $(series_of 0 199);
INSERT INTO users (id, org_id, username, token_hash, created_at)
  SELECT 1000000 + value, 1000000 + value, 'bench-u-' || value, 'bench-token-' || value, 0 FROM $(series_of 0 199);
INSERT INTO downloads (started_at, ended_at, node, user_id, username, org_id, target_path, sha256, range_header,
                       bytes_sent, outcome, remote_addr, user_agent, source, http_status, import_key)
  SELECT st, st + 5000000, 'bench-node-' || nd, 1000000 + u, 'bench-u-' || u, 1000000 + u,
         'product' || (h % 40) || '/update-' || (h / 40 % 30000) || '.msp',
         '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', '', 1000, 'complete',
         '198.51.100.' || (value % 250), 'patchgate-client/1.0', 'served', 200, 'gen-' || value
  FROM (SELECT value, $t0 + value * $spacing + (value * 7919 % 1000000) AS st,
               (value * 2654435761 % 4294967291) % 20 AS nd, (value * 40503 % 1000003) % 200 AS u,
               value * 69069 % 2147483647 AS h
        FROM $series) g
  WHERE NOT (nd = 7 AND st BETWEEN $seed_from - 5000000 AND $seed_to AND value % $thin <> 0);
SQL
}

for engine in $engines; do
  echo
  echo "== $engine"
  if [[ $engine == sqlite ]]; then
    url="sqlite://$work/scope.db"
    series_of() { echo "generate_series($1, $2)"; }
    q() { sqlite3 -batch -bail "$work/scope.db" "$@"; }
  else
    url=$(bash "$root/tests/pg/pg.sh" start "$work/pg")
    series_of() { echo "generate_series($1::bigint, $2) AS s(value)"; }
    q() { psql "$url" -qAt -v ON_ERROR_STOP=1 -c "$@"; }
  fi
  "$pg" incident list --store "$url" >/dev/null  # creates the store: every migration
  start=$(date +%s.%N)
  if [[ $engine == sqlite ]]; then
    ddl=$(q "SELECT sql || ';' FROM sqlite_master WHERE tbl_name = 'downloads' AND type IN ('index', 'trigger') AND sql IS NOT NULL")
    drops=$(q "SELECT 'DROP ' || type || ' ' || name || ';' FROM sqlite_master WHERE tbl_name = 'downloads' AND type IN ('index', 'trigger') AND sql IS NOT NULL")
    q "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; $drops BEGIN; $(generate_sql "$(series_of 0 $((downloads + 16500)))") COMMIT;
       $ddl INSERT INTO download_bounds SELECT node, MAX(ended_at - started_at) FROM downloads WHERE ended_at IS NOT NULL GROUP BY node;" >/dev/null
  else
    ddl=$(q "SELECT indexdef || ';' FROM pg_indexes WHERE tablename = 'downloads' AND indexname NOT IN
             (SELECT conname FROM pg_constraint WHERE conrelid = 'downloads'::regclass)
             UNION ALL SELECT pg_get_triggerdef(oid) || ';' FROM pg_trigger WHERE tgrelid = 'downloads'::regclass AND NOT tgisinternal")
    drops=$(q "SELECT 'DROP INDEX ' || indexname || ';' FROM pg_indexes WHERE tablename = 'downloads' AND indexname NOT IN
               (SELECT conname FROM pg_constraint WHERE conrelid = 'downloads'::regclass)
               UNION ALL SELECT 'DROP TRIGGER ' || tgname || ' ON downloads;' FROM pg_trigger WHERE tgrelid = 'downloads'::regclass AND NOT tgisinternal")
    q "$drops $(generate_sql "$(series_of 0 $((downloads + 16500)))") $ddl
       INSERT INTO download_bounds SELECT node, MAX(ended_at - started_at) FROM downloads WHERE ended_at IS NOT NULL GROUP BY node;"
    q "VACUUM ANALYZE downloads"
  fi
  total=$(q "SELECT COUNT(*) FROM downloads")
  echo "  generated $total download records in $(python3 -c "import time; print(f'{time.time() - $start:.0f}')") s (indexes and triggers re-created after the load)"
  [[ $(q "SELECT COUNT(*) FROM download_bounds") == 20 ]] || { echo "FAILED: no bound for each of the 20 nodes"; exit 1; }
  time_cli "process start + store open + one tiny query (patchgate incident list)" 0 list "$pg" incident list --store "$url"
  for window in "seed 7 $seed_from $seed_to" "busy 3 $busy_from $busy_to"; do
    read -r kind n from to <<<"$window"
    node="bench-node-$n"
    expected=$(q "SELECT COUNT(*) FROM downloads WHERE node = '$node' AND started_at <= $to AND ended_at >= $from")
    ((expected > 0)) || { echo "FAILED: the $kind window is empty"; exit 1; }
    echo " $kind window: node $node, $(rfc "$from") to $(rfc "$to"), $expected downloads in scope (plain SQL count), of $total"
    time_cli "whole command, table output" "$expected" table \
      "$pg" incident scope --node "$node" --from "$(rfc "$from")" --to "$(rfc "$to")" --store "$url"
    time_cli "whole command, --csv" "$expected" csv \
      "$pg" incident scope --node "$node" --from "$(rfc "$from")" --to "$(rfc "$to")" --store "$url" --csv
    read -r med min < <("$build/bench/scope_bench" floor "$url" "$node" "$(rfc "$from")" "$(rfc "$to")" "$expected")
    echo "  floor, the bare index query in one process with the store open (and the command's huge-page heap): median $med ms, min $min ms (7 runs)"
  done
  if ((lines > 0)); then "$build/bench/scope_bench" import "$url" "$lines"; fi
  if [[ $engine == sqlite ]]; then
    echo "  database size: $(du -ch "$work"/scope.db* | tail -1 | cut -f1)"
    rm -f "$work"/scope.db*
  else
    echo "  database size: $(q "SELECT pg_size_pretty(pg_database_size(current_database()))")"
    bash "$root/tests/pg/pg.sh" stop "$work/pg"
  fi
done
