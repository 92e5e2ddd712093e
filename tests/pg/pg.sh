#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for the tests, run as a non-root user on 127.0.0.1.
#   pg.sh start DATADIR   -> prints the connection URL (postgresql://...)
#   pg.sh stop DATADIR    -> stops exactly that server
# Trust authentication on loopback only: the server holds test data and lives for one run.
set -euo pipefail
cmd=${1:?usage: pg.sh start|stop DATADIR}
data=${2:?usage: pg.sh start|stop DATADIR}
bin=/usr/lib/postgresql/15/bin
user=patchgate-pg
run() { if [[ $(id -u) -eq 0 ]]; then runuser -u "$user" -- "$@"; else "$@"; fi; }

case "$cmd" in
  start)
    if [[ $(id -u) -eq 0 ]] && ! id "$user" >/dev/null 2>&1; then
      useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
    fi
    # A server still running on DATADIR is stopped first: wiping its files under it would
    # leave it running on deleted data beside the new one.
    if [[ -f "$data/db/postmaster.pid" ]]; then
      run "$bin/pg_ctl" -D "$data/db" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$data"
    mkdir -p "$data"
    [[ $(id -u) -eq 0 ]] && chown "$user" "$data"
    # The data directory's parents must be traversable by the server's user.
    d=$(dirname "$data"); while [[ "$d" != "/" ]]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
    run "$bin/initdb" -D "$data/db" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$data/initdb.log" 2>&1 \
      || { cat "$data/initdb.log" >&2; exit 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    run "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=on -c max_connections=50" start >/dev/null \
      || { cat "$data/server.log" >&2; exit 1; }
    run "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres patchgate
    echo "$port" > "$data/port"
    echo "postgresql://postgres@127.0.0.1:$port/patchgate"
    ;;
  stop)
    [[ -d "$data/db" ]] || exit 0
    run "$bin/pg_ctl" -D "$data/db" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  restart-stopped)  # start again a server that was stopped (same port), for outage tests
    port=$(cat "$data/port")
    run "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $data" start >/dev/null
    ;;
  *) echo "usage: pg.sh start|stop DATADIR" >&2; exit 2 ;;
esac
