#!/usr/bin/env bash
# Server CPU per request: `patchgate serve` (bearer auth, entitlement, audit on SQLite,
# verification on) against nginx (access_log on), same files, same run. CPU time is read
# from /proc (user + system, every thread of the server; master + workers of nginx) around
# each wrk run, so the figure holds on a loaded machine where req/s do not.
# Usage: [PG=BINARY] [ROWS="1KiB@64 1KiB@1 ts@64 1MiB@64 50MiB@8 tls1MiB@64"] [PERF=record|stat] bench/serve_cpu.sh [BUILD_DIR] [SECONDS_PER_RUN]
#   tls1MiB: the 1 MiB target over TLS (a second `patchgate serve` with --tls-cert, nginx with ssl);
#   not in the default rows.
#   PERF=record also records `perf record -g` of patchgate during each row (from after the row's
#   first request, which loads and verifies the file), PERF=stat counts its context switches
#   and system calls per request (files left in $PERF_DIR, default /tmp/pg-serve-cpu-perf).
#   "wrk us/req" is the client's own CPU per request (user + system of wrk).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
secs=${2:-5}
pg="$build/src/cli/patchgate"
serve_bin="${PG:-$pg}"  # PG=/path/to/patchgate: serve with another build (before/after)
work=$(mktemp -d /tmp/pg-servecpu.XXXXXX)
chmod 755 "$work"
server= server_tls= ngx=
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null
  [[ -n "$server_tls" ]] && kill "$server_tls" 2>/dev/null
  [[ -n "$ngx" ]] && kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
die() { echo "ABORT: $*" >&2; exit 1; }
export PATCHGATE_SIGNATURES="$root/tests/data/signatures" PATCHGATE_STORE="sqlite://$work/store.db"
unset PATCHGATE_PASSPHRASE
"$pg" init "$work/repo" --insecure-plaintext-keys >/dev/null
head -c 1024 /dev/urandom > "$work/small.bin"
head -c $((1024 * 1024)) /dev/urandom > "$work/medium.bin"
head -c $((50 * 1024 * 1024)) /dev/urandom > "$work/large.bin"
"$pg" publish "$work/repo" --product bench --insecure-plaintext-keys "$work/small.bin" "$work/medium.bin" "$work/large.bin" >/dev/null
"$pg" org add Bench --tier premier >/dev/null
token=$("$pg" user add Bench wrk 2>/dev/null)
"$pg" grant Bench bench >/dev/null
chmod -R o+rX "$work/repo"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1=$(free_port); p2=$(free_port); p3=$(free_port); p4=$(free_port)
"$serve_bin" serve --repo "$work/repo" --listen "127.0.0.1:$p1" --node-name bench ${SERVE_ARGS:-} >"$work/serve.log" 2>&1 &
server=$!
tls_rows=
[[ " ${ROWS:-} " == *" tls"* ]] && tls_rows=1
if [[ -n "$tls_rows" ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  "$serve_bin" serve --repo "$work/repo" --listen "127.0.0.1:$p3" --node-name bench-tls --tls-cert "$work/cert.pem" \
    --tls-key "$work/key.pem" ${SERVE_ARGS:-} >"$work/serve-tls.log" 2>&1 &
  server_tls=$!
  ngx_tls="server { listen 127.0.0.1:$p4 ssl; root $work/repo; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem; }"
fi
cat > "$work/nginx.conf" <<NGX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log $work/nginx-access.log combined;
  sendfile on; tcp_nopush on; keepalive_requests 100000; keepalive_timeout 120s;
  server { listen 127.0.0.1:$p2; root $work/repo; }
  ${ngx_tls:-}
}
NGX
nginx -c "$work/nginx.conf" -g 'daemon off;' &
ngx=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$p1/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
curl -fsS "http://127.0.0.1:$p1/healthz" >/dev/null || die "patchgate serve did not start"
sha() { sha256sum "$1" | cut -c1-64; }
declare -A url=([ts]="metadata/timestamp.json" [1KiB]="targets/bench/$(sha "$work/small.bin").small.bin"
                [1MiB]="targets/bench/$(sha "$work/medium.bin").medium.bin"
                [50MiB]="targets/bench/$(sha "$work/large.bin").large.bin")
url[tls1MiB]=${url[1MiB]}
ticks() {  # CPU clock ticks (user + system) of the given pids, all their threads
  local t=0 p
  for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo "$t"
}
hz=$(getconf CLK_TCK)
measure() {  # measure URL CONNS PERF_OUT PIDS... -> "req/s us-per-request wrk-us-per-request"
  local u=$1 c=$2 perf_out=$3
  shift 3
  # The first request loads and verifies the file (kept in memory): before the counted window.
  curl -kfsS -o /dev/null -H "Authorization: Bearer $token" "$u" || die "$u does not answer"
  local before after perfpid=
  if [[ -n "$perf_out" && "$PERF" == record ]]; then
    perf record -g -p "$(echo "$@" | tr ' ' ,)" -o "$perf_out.data" -- sleep "$secs" >/dev/null 2>&1 &
    perfpid=$!
  elif [[ -n "$perf_out" ]]; then
    perf stat -e task-clock,context-switches,raw_syscalls:sys_enter -p "$(echo "$@" | tr ' ' ,)" -o "$perf_out.stat" \
      -- sleep "$secs" >/dev/null 2>&1 &
    perfpid=$!
  fi
  before=$(ticks "$@")
  # wrk's own CPU too: on 2 cores a large body's rate is bound by the client's reads
  # (wrk reads 8 KiB at a time), so the server's share of the CPU moves it only as much as
  # it takes from wrk.
  local st w_before w_after
  read -r -a st < "/proc/$BASHPID/stat"  # children's CPU (cutime + cstime) so far, read with no fork
  w_before=$((st[15] + st[16]))
  wrk -t"$(( c > 1 ? 2 : 1 ))" -c"$c" -d"${secs}s" -H "Authorization: Bearer $token" "$u" > "$work/wrk.out" 2>&1 ||
    die "wrk failed on $u"
  read -r -a st < "/proc/$BASHPID/stat"
  w_after=$((st[15] + st[16]))
  after=$(ticks "$@")
  [[ -n "$perfpid" ]] && { wait "$perfpid" || true; }
  grep -q "Non-2xx" "$work/wrk.out" && die "failed requests against $u: $(cat "$work/wrk.out")"
  local n
  n=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  python3 -c "print(f'{$n / $secs:.0f} {($after - $before) / $hz * 1e6 / $n:.1f} {($w_after - $w_before) / $hz * 1e6 / $n:.0f}')"
}
ngx_pids() { echo "$ngx" $(pgrep -P "$ngx"); }
printf "%-8s %5s | %10s %12s %12s | %10s %12s %12s | %s\n" case conns "pg req/s" "pg us/req" "wrk us/req" "ngx req/s" \
  "ngx us/req" "wrk us/req" "cpu ratio pg/ngx"
for r in ${ROWS:-1KiB@64 1KiB@1 ts@64 1MiB@64 50MiB@8}; do
  name=${r%@*} conns=${r#*@}
  pg_url="http://127.0.0.1:$p1" ngx_url="http://127.0.0.1:$p2" pg_pid=$server
  if [[ "$name" == tls* ]]; then
    pg_url="https://127.0.0.1:$p3" ngx_url="https://127.0.0.1:$p4" pg_pid=$server_tls
    for _ in $(seq 100); do curl -kfsS "$pg_url/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
  fi
  perf_out=
  if [[ -n "${PERF:-}" ]]; then
    mkdir -p "${PERF_DIR:=/tmp/pg-serve-cpu-perf}"
    perf_out="$PERF_DIR/$r"
  fi
  read -r a b w1 <<<"$(measure "$pg_url/${url[$name]}" "$conns" "$perf_out" "$pg_pid")"
  if [[ "${PERF:-}" == stat ]]; then
    python3 - "$PERF_DIR/$r.stat" "$a" "$secs" <<'PY'
import re, sys
t = open(sys.argv[1]).read(); n = float(sys.argv[2]) * float(sys.argv[3])
cs = float(re.search(r"([\d,.]+)\s+context-switches", t).group(1).replace(",", ""))
sc = float(re.search(r"([\d,.]+)\s+raw_syscalls:sys_enter", t).group(1).replace(",", ""))
print(f"  patchgate per request: {cs / n:.2f} context switches, {sc / n:.2f} system calls")
PY
  fi
  read -r x y w2 <<<"$(measure "$ngx_url/${url[$name]}" "$conns" "" $(ngx_pids))"
  printf "%-8s %5s | %10s %12s %12s | %10s %12s %12s | %.2f\n" "$name" "$conns" "$a" "$b" "$w1" "$x" "$y" "$w2" \
    "$(python3 -c "print($b/$y)")"
done
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
