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
#     - the floor: the same index query (Store::VisitScopeDownloads, what the scope runs,
#       each row seen in place and nothing kept) timed inside one process with the store
#       already open and the heap the command uses (huge pages, core/heap_huge_pages.h)
#       (bench/scope_bench floor, 7 runs), and beside it the scope's grouping and table;
#     each with the CPU time per command: patchgate's own, and on PostgreSQL the server's
#     (a fresh server process per command: most of the wall time on a loaded machine);
#     - what no command can go below on this machine, measured the same way: an empty process
#       (/bin/true), and on PostgreSQL a C program that only loads libpq, connects with the
#       store's parameters, runs SELECT 1 and disconnects (bench/pq_floor.c);
#     and once, what the machine charges for a page fault, a copy-on-write fault and a system
#     call (bench/fault_probe.c), the kernel work that dominates a short command's start;
#  4. PostgreSQL, when `pgbouncer` is installed: an extra row per window, not the headline,
#     through a PgBouncer the bench starts (transaction pooling, one server process kept
#     warm between commands): what a deployment with a pooler gets.
# Every command's exit status and output are checked (the totals line or the number of CSV
# rows must be the expected count); a failed run aborts the bench.
# SCOPE_BENCH_KEEP=DIR (SQLite only): the generated store is kept as DIR/scope-DOWNLOADS-DAYS.db
# and, when it is there already, reused instead of generated again (minutes at 10M rows);
# the trail is then the one the script generated before, re-checked by the same counts.
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
trap '[[ -s $work/pg/bouncer/pgbouncer.pid ]] && kill "$(cat "$work/pg/bouncer/pgbouncer.pid")" 2>/dev/null; bash "$root/tests/pg/pg.sh" stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"' EXIT

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peers: $(sqlite3 --version | cut -d' ' -f1 | sed 's/^/SQLite /') (library and shell), $(/usr/lib/postgresql/15/bin/postgres --version)"
echo "patchgate: $("$pg" --version), $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown commit)"
echo "trail: about $downloads served downloads over $days days and 20 nodes, generated in SQL"
cc -O2 -o "$work/fault_probe" "$root/bench/fault_probe.c"
cc -O2 -I"$(pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)" -o "$work/pq_floor" "$root/bench/pq_floor.c" -lpq
read -r anon_us cow_us sys_us < <("$work/fault_probe")
echo "machine's kernel costs (CPU time, bench/fault_probe.c): first write to a fresh 4 KiB page $anon_us us, copy-on-write fault $cow_us us, system call $sys_us us"

# time_cli LABEL EXPECTED_ROWS MODE CMD...: 11 fresh processes; MODE table checks the totals
# line, csv the number of data rows, list the exit status and the header line, one that the
# output is "1" (pq_floor's SELECT 1), exit the exit status alone. Prints the
# wall time (median, min) and the CPU time per command: patchgate's own (user + system, its
# page faults beside), and, with PostgreSQL (SERVER_PID set: the postmaster), the server's:
# the postmaster's reaped children (each command's server process) plus the live children
# (a pooler's warm server processes, the background processes) and the postmaster's own
# (forking), plus the pooler's when there is one (SERVER_PID "postmaster pooler"), in
# 10 ms clock ticks summed over the 11 runs.
time_cli() {
  python3 - "$@" <<'PY'
import os, statistics, sys, time
label, expected, mode, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
server = os.environ.get("SERVER_PID", "").split()
def server_ticks():
    def fields(pid):
        with open(f"/proc/{pid}/stat") as f: return f.read().rsplit(")", 1)[1].split()
    total = 0
    for top in server:
        f = fields(top)
        total += sum(int(x) for x in f[11:15])  # utime + stime (its own, e.g. forking), cutime + cstime (ended children)
        for pid in os.listdir("/proc"):
            if not pid.isdigit(): continue
            try:
                c = fields(pid)
                if c[1] == top: total += int(c[11]) + int(c[12])  # a live child's utime + stime
            except (OSError, IndexError): pass
    return total
def run(cmd):
    # posix_spawn (no copy of this Python process to fault in) and wait4: the rusage of the
    # command alone. Returns exit status, stdout, stderr, rusage.
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.posix_spawnp(cmd[0], cmd, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2),
        (os.POSIX_SPAWN_CLOSE, out_r), (os.POSIX_SPAWN_CLOSE, err_r)])
    os.close(out_w); os.close(err_w)
    with os.fdopen(out_r, "rb") as o, os.fdopen(err_r, "rb") as e:
        out = o.read(); err = e.read()
    _, status, ru = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), out, err, ru
times, cpu, faults = [], 0.0, 0
s0 = server_ticks()
for i in range(11):
    t = time.perf_counter()
    code, stdout, stderr, ru = run(cmd)
    times.append((time.perf_counter() - t) * 1000)
    cpu += (ru.ru_utime + ru.ru_stime) * 1000 / 11
    faults += ru.ru_minflt
    if code != 0:
        sys.exit(f"FAILED (exit {code}): {' '.join(cmd)}\n{stderr.decode(errors='replace')}")
    out = stdout.decode(errors="replace")
    if mode == "table" and f"\n{expected} downloads of " not in out:
        sys.exit(f"FAILED: expected {expected} downloads in the totals line of: {' '.join(cmd)}\n{out[-400:]}")
    if mode == "csv" and out.count("\n") != expected + 1:
        sys.exit(f"FAILED: expected {expected} CSV rows, got {out.count(chr(10)) - 1}: {' '.join(cmd)}")
    if mode == "one" and out != "1\n":
        sys.exit(f"FAILED: expected 1 from: {' '.join(cmd)}\n{out[:200]}")
    if mode == "list" and not out.startswith("ID "):
        sys.exit(f"FAILED: no incident list header from: {' '.join(cmd)}\n{out[:200]}")
s1 = server_ticks()
faults /= 11
line = f"  {label}: median {statistics.median(times):.1f} ms, min {min(times):.1f} ms (11 fresh processes)"
line += f"; CPU per command: patchgate {cpu:.1f} ms ({faults:.0f} page faults)"
if server: line += f", server {(s1 - s0) * 1000 / os.sysconf('SC_CLK_TCK') / 11:.1f} ms"
print(line)
PY
}

# start_pgbouncer PGDIR: a PgBouncer (Debian package pgbouncer) in front of the bench's
# server, on another loopback port; prints its URL. Transaction pooling keeps one server
# process warm between commands. It ignores the `options` startup parameter patchgate's
# store sends (PgBouncer cannot forward it) and sets the same session settings once per
# server connection (connect_query). Runs as the server's user when the bench runs as root
# (PgBouncer refuses root).
start_pgbouncer() {
  local dir=$1/bouncer port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$dir"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
patchgate = host=127.0.0.1 port=$(cat "$1/port") dbname=patchgate user=postgres connect_query='SET max_parallel_workers_per_gather = 0; SET client_min_messages = warning; SET jit = off'
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 2
ignore_startup_parameters = options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  echo '"postgres" ""' >"$dir/users.txt"
  if [[ $(id -u) -eq 0 ]]; then
    chown -R patchgate-pg "$dir"
    runuser -u patchgate-pg -- pgbouncer -d "$dir/pgbouncer.ini" >/dev/null
  else
    pgbouncer -d "$dir/pgbouncer.ini" >/dev/null
  fi
  for _ in $(seq 100); do [[ -s $dir/pgbouncer.pid ]] && break; sleep 0.1; done
  [[ -s $dir/pgbouncer.pid ]] || { echo "FAILED: pgbouncer did not start" >&2; cat "$dir/pgbouncer.log" >&2; exit 1; }
  echo "postgresql://postgres@127.0.0.1:$port/patchgate"
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
  unset SERVER_PID
  reused=
  if [[ $engine == sqlite ]]; then
    db="$work/scope.db"
    if [[ -n ${SCOPE_BENCH_KEEP:-} ]]; then
      mkdir -p "$SCOPE_BENCH_KEEP"
      db="$(cd "$SCOPE_BENCH_KEEP" && pwd)/scope-$downloads-$days.db"
      # Reused only when a generation finished (DB.complete), never a half-written one.
      if [[ -s $db && -e $db.complete ]]; then reused=1; else rm -f "$db" "$db"-wal "$db"-shm "$db".complete; fi
    fi
    url="sqlite://$db"
    series_of() { echo "generate_series($1, $2)"; }
    q() { sqlite3 -batch -bail "$db" "$@"; }
  else
    url=$(bash "$root/tests/pg/pg.sh" start "$work/pg")
    SERVER_PID=$(head -1 "$work/pg/db/postmaster.pid"); export SERVER_PID
    series_of() { echo "generate_series($1::bigint, $2) AS s(value)"; }
    q() { psql "$url" -qAt -v ON_ERROR_STOP=1 -c "$@"; }
  fi
  "$pg" incident list --store "$url" >/dev/null  # creates the store: every migration
  start=$(date +%s.%N)
  if [[ -n $reused ]]; then
    echo "  reusing the store generated before: $db (SCOPE_BENCH_KEEP)"
  elif [[ $engine == sqlite ]]; then
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
  [[ -n $reused ]] || echo "  generated $total download records in $(python3 -c "import time; print(f'{time.time() - $start:.0f}')") s (indexes and triggers re-created after the load)"
  [[ $(q "SELECT COUNT(*) FROM download_bounds") == 20 ]] || { echo "FAILED: no bound for each of the 20 nodes"; exit 1; }
  if [[ $engine == sqlite && -n ${SCOPE_BENCH_KEEP:-} ]]; then touch "$db.complete"; fi
  time_cli "floor: an empty process (/bin/true)" 0 exit /bin/true
  if [[ $engine == postgresql ]]; then
    time_cli "floor: a C program that only loads libpq, connects as the store does, runs SELECT 1, disconnects (bench/pq_floor.c)" \
      0 one "$work/pq_floor" "$url"
  fi
  time_cli "process start + store open + one tiny query (patchgate incident list)" 0 list "$pg" incident list --store "$url"
  bouncer_url=
  if [[ $engine == postgresql ]] && command -v pgbouncer >/dev/null; then
    bouncer_url=$(start_pgbouncer "$work/pg")
    "$pg" incident list --store "$bouncer_url" >/dev/null  # the pool's server process, started once
  fi
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
    read -r med min scope_med table_med < <("$build/bench/scope_bench" floor "$url" "$node" "$(rfc "$from")" "$(rfc "$to")" "$expected")
    echo "  floor, the bare index query (rows seen in place, nothing kept) in one process with the store open (and the command's huge-page heap): median $med ms, min $min ms (7 runs)"
    echo "    in the same process: the scope (query + grouping) median $scope_med ms, the table median $table_med ms"
    if [[ -n $bouncer_url ]]; then
      SERVER_PID="$SERVER_PID $(cat "$work/pg/bouncer/pgbouncer.pid")" time_cli \
        "extra row, a deployment with a pooler (not the headline): whole command through PgBouncer, table output" \
        "$expected" table "$pg" incident scope --node "$node" --from "$(rfc "$from")" --to "$(rfc "$to")" --store "$bouncer_url"
    fi
  done
  if [[ -n $bouncer_url ]]; then kill "$(cat "$work/pg/bouncer/pgbouncer.pid")"; fi
  if ((lines > 0)); then "$build/bench/scope_bench" import "$url" "$lines"; fi
  if [[ $engine == sqlite ]]; then
    echo "  database size: $(du -ch "$db"* | tail -1 | cut -f1)"
    [[ -n ${SCOPE_BENCH_KEEP:-} ]] || rm -f "$db" "$db"-wal "$db"-shm
  else
    echo "  database size: $(q "SELECT pg_size_pretty(pg_database_size(current_database()))")"
    bash "$root/tests/pg/pg.sh" stop "$work/pg"
  fi
done
