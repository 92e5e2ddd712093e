#!/usr/bin/env bash
# wrk against `patchgate serve` (bearer auth, audit on SQLite, verification on) and
# against nginx serving the same files from the same directory with its access log on,
# in one run: 1 KiB, 1 MiB and 50 MiB targets at 64 connections and at 1. Prints req/s,
# MB/s, p99 and the ratios. Usage: bench/serve_bench.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
secs=${2:-5}
pg="$build/src/cli/patchgate"
work=$(mktemp -d /tmp/pg-servebench.XXXXXX)
chmod 755 "$work"
server= ngx=
trap '[[ -n "$server" ]] && kill $server; [[ -n "$ngx" ]] && kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT
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
p1=$(free_port); p2=$(free_port)
"$pg" serve --repo "$work/repo" --listen "127.0.0.1:$p1" --node-name bench >"$work/serve.log" 2>&1 &
server=$!
cat > "$work/nginx.conf" <<NGX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log $work/nginx-access.log combined;
  sendfile on; tcp_nopush on; keepalive_requests 100000;
  server { listen 127.0.0.1:$p2; root $work/repo; }
}
NGX
nginx -c "$work/nginx.conf" -g 'daemon off;' &
ngx=$!
sleep 1
curl -fsS "http://127.0.0.1:$p1/healthz" >/dev/null
sha() { sha256sum "$1" | cut -c1-64; }
declare -A url=([1KiB]="bench/$(sha "$work/small.bin").small.bin" [1MiB]="bench/$(sha "$work/medium.bin").medium.bin"
                [50MiB]="bench/$(sha "$work/large.bin").large.bin")
run() {  # run URL CONNS -> "req/s MB/s p99ms"
  wrk -t"$(( $2 > 1 ? 2 : 1 ))" -c"$2" -d"${secs}s" --latency -H "Authorization: Bearer $token" "$1" 2>&1 | python3 -c '
import re, sys
t = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
tr = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", t)
mbs = float(tr.group(1)) * {"B": 1e-6, "KB": 1.024e-3, "MB": 1.048576, "GB": 1073.741824}[tr.group(2)]
p = re.search(r"99%\s+([\d.]+)(\w+)", t)
p99 = float(p.group(1)) * {"us": 1e-3, "ms": 1, "s": 1000, "m": 60000}[p.group(2)]
print(f"{rps:.0f} {mbs:.1f} {p99:.2f}")'
}
printf "%-6s %5s | %12s %10s %9s | %12s %10s %9s | %7s\n" size conns "pg req/s" "pg MB/s" "pg p99ms" "nginx req/s" "nginx MB/s" "ngx p99ms" ratio
for size in 1KiB 1MiB 50MiB; do
  for c in 64 1; do
    read -r a b c1 <<<"$(run "http://127.0.0.1:$p1/targets/${url[$size]}" "$c")"
    read -r x y z <<<"$(run "http://127.0.0.1:$p2/targets/${url[$size]}" "$c")"
    printf "%-6s %5s | %12s %10s %9s | %12s %10s %9s | %6.2fx\n" "$size" "$c" "$a" "$b" "$c1" "$x" "$y" "$z" \
      "$(python3 -c "print($a/$x)")"
  done
done
kill -TERM $server; wait $server 2>/dev/null || true; server=
records=$("$pg" downloads --node bench --csv | tail -n +2 | wc -l)
echo "audit records written by patchgate serve during the run: $records"
