#!/usr/bin/env bash
# `patchgate serve` (bearer auth, entitlement, audit on SQLite, hash-while-send on) against
# nginx (access_log on) serving the same files from the same directory, in one run.
# Prints figures; never a pass/fail on speed. Any failed request aborts the benchmark.
#   - timestamp.json with a token at 64 connections; 1 KiB at 64 and at 1; 1 MiB at 64;
#     50 MiB at 8; TLS 1 MiB at 64 (both with TLS)
#   - fdatasync latency on the store's disk and the c=1 bound 1/(fdatasync + nginx time/req)
#   - 10,000 idle keep-alive connections: server RSS, wrk rate meanwhile, /healthz answers
#   - a 2,000-connection slowloris: wrk rate meanwhile, /healthz answers
#   (idle and slowloris connections come from 127.0.0.2, .3, ...: 1,000 per source address)
# Usage: [IDLE_CONNS=10000] [SLOWLORIS_CONNS=2000] [HOLD_PAIRS=4] [HOLD_SECS=3] [ROWS="ts 1KiB@64 ..."] bench/serve_bench.sh [BUILD_DIR] [SECONDS_PER_RUN]  (default 5)
#   ROWS picks the wrk rows to run (default all: ts 1KiB@64 1KiB@1 1MiB@64 50MiB@8 tls); IDLE_CONNS=0 or
#   SLOWLORIS_CONNS=0 skips that connection test (for short runs while working on one case); HOLD_PAIRS
#   unloaded/loaded window pairs of HOLD_SECS seconds each are measured per connection test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
secs=${2:-5}
pg="$build/src/cli/patchgate"
work=$(mktemp -d /tmp/pg-servebench.XXXXXX)
chmod 755 "$work"
server= ngx= holders=()
cleanup() {
  for h in "${holders[@]}"; do kill "$h" 2>/dev/null || true; done
  [[ -n "$server" ]] && kill "$server" 2>/dev/null
  [[ -n "$ngx" ]] && kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
die() { echo "ABORT: $*" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || true
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
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p1=$(free_port); p2=$(free_port); p3=$(free_port); p4=$(free_port)
"$pg" serve --repo "$work/repo" --listen "127.0.0.1:$p1" --node-name bench --max-connections 20000 >"$work/serve.log" 2>&1 &
server=$!
"$pg" serve --repo "$work/repo" --listen "127.0.0.1:$p3" --node-name bench-tls --tls-cert "$work/cert.pem" \
  --tls-key "$work/key.pem" >"$work/serve-tls.log" 2>&1 &
server_tls=$!
holders+=("$server_tls")
cat > "$work/nginx.conf" <<NGX
worker_processes 2;
worker_rlimit_nofile 65536;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 16384; }
http {
  access_log $work/nginx-access.log combined;
  sendfile on; tcp_nopush on; keepalive_requests 100000; keepalive_timeout 120s;
  server { listen 127.0.0.1:$p2; root $work/repo; }
  server { listen 127.0.0.1:$p4 ssl; root $work/repo;
           ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem; }
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
run() {  # run URL CONNS [SECONDS] -> "req/s MB/s p99ms"; aborts on any error or non-2xx
  wrk -t"$(( $2 > 1 ? 2 : 1 ))" -c"$2" -d"${3:-$secs}s" --latency -H "Authorization: Bearer $token" "$1" \
    > "$work/wrk.out" 2>&1 || die "wrk failed on $1"
  python3 - "$work/wrk.out" "$1" <<'PY' || exit 1
import re, sys
t = open(sys.argv[1]).read()
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
err = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
if bad or (err and sum(int(x) for x in err.groups()[:3]) > 0):
    sys.stderr.write(f"ABORT: failed requests against {sys.argv[2]}:\n{t}\n"); sys.exit(1)
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
tr = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", t)
mbs = float(tr.group(1)) * {"B": 1e-6, "KB": 1.024e-3, "MB": 1.048576, "GB": 1073.741824}[tr.group(2)]
p = re.search(r"99%\s+([\d.]+)(\w+)", t)
p99 = float(p.group(1)) * {"us": 1e-3, "ms": 1, "s": 1000, "m": 60000}[p.group(2)]
print(f"{rps:.0f} {mbs:.1f} {p99:.2f}")
PY
}
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
healthz_ok() {  # healthz_ok PORT N -> how many of N /healthz answered within 2 s
  local ok=0
  for _ in $(seq "$2"); do curl -fsS --max-time 2 "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && ok=$((ok + 1)); sleep 0.2; done
  echo "$ok"
}

printf "%-16s %5s | %10s %9s %9s | %10s %9s %9s | %6s\n" case conns "pg req/s" "pg MB/s" "pg p99ms" \
  "ngx req/s" "ngx MB/s" "ngx p99" ratio
rows=" ${ROWS:-ts 1KiB@64 1KiB@1 1MiB@64 50MiB@8 tls} "
row() {  # row LABEL CONNS PG_URL NGINX_URL [KEY]; runs only when KEY (default LABEL@CONNS) is in $rows
  local a b c x y z
  [[ "$rows" == *" ${5:-$1@$2} "* ]] || return 0
  read -r a b c <<<"$(run "$3" "$2")"
  read -r x y z <<<"$(run "$4" "$2")"
  printf "%-16s %5s | %10s %9s %9s | %10s %9s %9s | %5.2fx\n" "$1" "$2" "$a" "$b" "$c" "$x" "$y" "$z" \
    "$(python3 -c "print($a/$x)")"
  last_ngx_rps=$x last_pg_rps=$a
}
row "timestamp+token" 64 "http://127.0.0.1:$p1/${url[ts]}" "http://127.0.0.1:$p2/${url[ts]}" ts
row "1KiB" 64 "http://127.0.0.1:$p1/${url[1KiB]}" "http://127.0.0.1:$p2/${url[1KiB]}"
last_pg_rps= last_ngx_rps=
row "1KiB" 1 "http://127.0.0.1:$p1/${url[1KiB]}" "http://127.0.0.1:$p2/${url[1KiB]}"
c1_pg=$last_pg_rps c1_ngx=$last_ngx_rps
row "1MiB" 64 "http://127.0.0.1:$p1/${url[1MiB]}" "http://127.0.0.1:$p2/${url[1MiB]}"
row "50MiB" 8 "http://127.0.0.1:$p1/${url[50MiB]}" "http://127.0.0.1:$p2/${url[50MiB]}"
row "TLS 1MiB" 64 "https://127.0.0.1:$p3/${url[1MiB]}" "https://127.0.0.1:$p4/${url[1MiB]}" tls
# Targets up to --verified-memory-max-file-mb (default 64, so the 50 MiB one too) are read
# and verified once, by one request, and then sent from verified memory.
echo "verified-memory loads in the run: $(curl -fsS "http://127.0.0.1:$p1/metrics" | awk '/^patchgate_verify_loads_total/ {l=$2}
  /^patchgate_verify_load_waits_total/ {w=$2} END {print l " (one per file), " w " requests waited for one"}')"

# fdatasync latency on the store's disk, and the one-connection bound it sets.
fsync_ms=$(python3 - "$work" <<'PY'
import os, sys, time
p = os.path.join(sys.argv[1], "fsync.probe")
fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
ts = []
for i in range(200):
    os.pwrite(fd, b"x" * 4096, (i % 16) * 4096)
    t = time.perf_counter(); os.fdatasync(fd); ts.append(time.perf_counter() - t)
os.close(fd); os.unlink(p)
ts.sort(); print(f"{ts[len(ts)//2] * 1000:.3f}")
PY
)
if [[ -z "$c1_pg" ]]; then
  echo "fdatasync median on the store's disk: ${fsync_ms} ms (the 1KiB@1 row did not run: no c=1 bound)"
else
bound=$(python3 -c "print(f'{1 / ($fsync_ms / 1000 + 1 / $c1_ngx):.0f}')")
echo "fdatasync median on the store's disk: ${fsync_ms} ms; c=1 bound 1/(fdatasync + nginx time/req) = $bound req/s;" \
     "patchgate c=1: $c1_pg req/s = $(python3 -c "print(f'{$c1_pg / $bound:.2f}')")x of the bound"
fi

# 10,000 idle keep-alive connections (each sent one request and then waits), then a
# 2,000-connection slowloris (heads dribbled a byte a second; a connection the server drops
# at its header deadline is opened again at once, as an attacker would). The connections
# come from 127.0.0.2, .3, ... (1,000 per source address), as many clients would.
# Like for like: the same server process, the same file and the same holder process measure
# 1KiB@64 in windows that alternate unloaded (no held connection) and loaded (the N held):
# U L, L U, U L, ... (HOLD_PAIRS pairs, HOLD_SECS each, after a warm-up). Every window is printed; the verdict is
# the median loaded rate over the median unloaded one (and each pair's own ratio, since the
# machine's load drifts between pairs), and the server's CPU per request in each window (what
# holding the connections costs the server, whatever else runs on the machine). /healthz is
# asked while the connections are held.
hold() {  # hold PORT N MODE: a holder waiting for "open"/"close" on $work/ctl-MODE; state in $work/hold-MODE
  mkfifo "$work/ctl-$3"
  python3 - "$1" "$2" "$3" "$work/hold-$3" "$work/ctl-$3" <<'PY' &
import os, selectors, socket, sys, time
port, n, mode, out, ctl = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def src(i): return ("127.0.0.%d" % (2 + i // 1000), 0)
def open_one(i):
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=src(i))
    if mode == "idle":
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n")
        s.recv(4096)
    else:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
    s.setblocking(False)
    return s
sel = selectors.DefaultSelector()  # epoll: an idle holder costs nothing until the server closes one
cfd = os.open(ctl, os.O_RDWR | os.O_NONBLOCK)  # read-write: no EOF when the script's writes end
sel.register(cfd, selectors.EVENT_READ, "ctl")
socks, failed, holding, seq, reopened = {}, 0, False, 0, 0
def report():
    tmp = out + ".tmp"
    with open(tmp, "w") as f: f.write(f"{seq} {len(socks)} {failed} {reopened}\n")
    os.replace(tmp, out)
def add(i):
    global failed
    try:
        socks[i] = open_one(i)
        sel.register(socks[i], selectors.EVENT_READ, i)
    except OSError:
        failed += 1
report()
next_drip = time.monotonic() + 1
while True:
    # Idle holders only wait (a timeout of 0 here once spun a whole core of this 2-core
    # machine, and the rate "kept under 10,000 idle" measured the spinning holder).
    wait = max(0, next_drip - time.monotonic()) if mode != "idle" and holding else None
    for key, _ in sel.select(timeout=wait):
        if key.data == "ctl":
            for cmd in os.read(cfd, 4096).decode().split():
                if cmd == "open":
                    failed, reopened = 0, 0
                    for i in range(n): add(i)
                    holding = True
                elif cmd == "close":
                    holding = False
                    for s in socks.values():
                        sel.unregister(s)
                        s.close()
                    socks.clear()
                seq += 1
                report()
            continue
        i = key.data
        try: data = key.fileobj.recv(4096)
        except BlockingIOError: continue
        except OSError: data = b""
        if data: continue  # e.g. a 408 before the close
        sel.unregister(key.fileobj); key.fileobj.close(); del socks[i]
        if mode != "idle" and holding:  # the attacker opens it again at once
            reopened += 1
            add(i)
    if mode != "idle" and holding and time.monotonic() >= next_drip:
        next_drip = time.monotonic() + 1
        for s in list(socks.values()):
            try: s.send(b"X")
            except OSError: pass
PY
  holders+=($!)
}
hold_cmd() {  # hold_cmd MODE open|close -> waits until the holder has done it (60 s at most)
  local before now
  before=$(cut -d' ' -f1 "$work/hold-$1")
  echo "$2" > "$work/ctl-$1"
  for _ in $(seq 600); do
    now=$(cut -d' ' -f1 "$work/hold-$1" 2>/dev/null || echo "$before")
    [[ "$now" -gt "$before" ]] && return 0
    sleep 0.1
  done
  die "$1: the holder did not $2 its connections within 60 s"
}
clk=$(getconf CLK_TCK)
server_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }  # user + system, all threads
open_at_server() { curl -fsS "http://127.0.0.1:$p1/metrics" | awk '/^patchgate_connections_open/ {print $2}'; }
pairs=${HOLD_PAIRS:-4} hsecs=${HOLD_SECS:-3}
echo "server RSS before the connection tests: $(rss_mb "$server") MB"
for mode in "idle:${IDLE_CONNS:-10000}" "slowloris:${SLOWLORIS_CONNS:-2000}"; do
  m=${mode%%:*} n=${mode##*:}
  [[ "$n" -gt 0 ]] || continue
  rm -f "$work/hold-$m" "$work/ctl-$m"
  hold "$p1" "$n" "$m"
  for _ in $(seq 100); do [[ -s "$work/hold-$m" ]] && break; sleep 0.1; done
  [[ -s "$work/hold-$m" ]] || die "$m: the holder did not start"
  unloaded=() loaded=() ucpu=() lcpu=() hz_ok=0 hz_n=0 rss_max=0 held_min=$n
  window() {  # one 1KiB@64 run -> w_rps (req/s) and w_cpu (server CPU per request, us); aborts on errors
    local t0 t1
    t0=$(server_ticks)
    w_rps=$(run "http://127.0.0.1:$p1/${url[1KiB]}" 64 "$hsecs" | cut -d' ' -f1)
    t1=$(server_ticks)
    w_cpu=$(python3 -c "print(f'{($t1 - $t0) / $clk * 1e6 / ($w_rps * $hsecs):.0f}')")
  }
  unloaded_window() {  # the holder holds nothing, and the server has let its connections go
    for _ in $(seq 100); do [[ "$(open_at_server)" -le 1 ]] && break; sleep 0.1; done
    window
    u=$w_rps uc=$w_cpu
  }
  loaded_window() {
    hold_cmd "$m" open
    read -r _ opened failed _ < "$work/hold-$m"
    sleep 1
    held=$(( $(open_at_server) - 1 ))  # less the /metrics request itself
    [[ "$held" -lt "$held_min" ]] && held_min=$held
    window
    l=$w_rps lc=$w_cpu
    r=$(rss_mb "$server")
    [[ "$r" -gt "$rss_max" ]] && rss_max=$r
    h=$(healthz_ok "$p1" 5)
    hz_ok=$((hz_ok + h)) hz_n=$((hz_n + 5))
    read -r _ _ _ reopened < "$work/hold-$m"
    hold_cmd "$m" close
  }
  run "http://127.0.0.1:$p1/${url[1KiB]}" 64 1 >/dev/null  # warm-up, not counted
  for pair in $(seq "$pairs"); do
    # U L, then L U, ...: a load on the machine that drifts during the run weighs on both sides.
    if (( pair % 2 )); then unloaded_window; loaded_window; else loaded_window; unloaded_window; fi
    unloaded+=("$u") loaded+=("$l") ucpu+=("$uc") lcpu+=("$lc")
    printf "  %-9s pair %d (%s): unloaded %6s req/s %4s us/req | %5s held at the server (%s opened, %s refused, %s reopened) %6s req/s %4s us/req (%.2fx); RSS %s MB; /healthz %s/5\n" \
      "$m" "$pair" "$( (( pair % 2 )) && echo "U then L" || echo "L then U")" "$u" "$uc" "$held" "$opened" "$failed" "$reopened" \
      "$l" "$lc" "$(python3 -c "print($l / $u)")" "$r" "$h"
  done
  python3 - "$m" "$n" "${unloaded[*]}" "${loaded[*]}" "$rss_max" "$hz_ok" "$hz_n" "$held_min" "$(ls /proc/$server/task | wc -l)" \
    "${ucpu[*]}" "${lcpu[*]}" <<'PY'
import statistics as st, sys
m, n, u, l = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
rss, hz, hzn, held, thr = sys.argv[5:10]
uc, lc = [float(x) for x in sys.argv[10].split()], [float(x) for x in sys.argv[11].split()]
per = sorted(b / a for a, b in zip(u, l))
print(f"{m} x{n}: 1KiB@64 median {st.median(l):.0f} req/s held vs {st.median(u):.0f} unloaded = {st.median(l) / st.median(u):.2f}x "
      f"(pair ratios {min(per):.2f}-{max(per):.2f}, median {st.median(per):.2f}); server CPU per request median "
      f"{st.median(lc):.0f} us held vs {st.median(uc):.0f} us unloaded; at least {held} held at the server; "
      f"RSS max {rss} MB; threads {thr}; /healthz answered {hz}/{hzn}")
PY
  kill "${holders[-1]}" 2>/dev/null || true
  unset 'holders[-1]'
  sleep 1
done

kill -TERM "$server"; wait "$server" 2>/dev/null || true; server=
records=$("$pg" downloads --node bench --csv | tail -n +2 | wc -l)
echo "audit records written by patchgate serve (plain) during the run: $records"
