#!/usr/bin/env bash
# Soak: wrk at 256 connections over mixed sizes (1 KiB, 64 KiB, 1 MiB, timestamp.json)
# against `patchgate serve`, RSS sampled every 10 s. Prints errors (any aborts the soak),
# RSS at minute 2 and the maximum, and audit records against 200s served for targets.
# Usage: bench/soak.sh [BUILD_DIR] [SECONDS]   (default 600)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
secs=${2:-600}
pg="$build/src/cli/patchgate"
work=$(mktemp -d /tmp/pg-soak.XXXXXX)
server=
trap '[[ -n "$server" ]] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
export PATCHGATE_SIGNATURES="$root/tests/data/signatures" PATCHGATE_STORE="sqlite://$work/store.db"
unset PATCHGATE_PASSPHRASE
"$pg" init "$work/repo" --insecure-plaintext-keys >/dev/null
head -c 1024 /dev/urandom > "$work/a.bin"; head -c 65536 /dev/urandom > "$work/b.bin"
head -c $((1024 * 1024)) /dev/urandom > "$work/c.bin"
"$pg" publish "$work/repo" --product soak --insecure-plaintext-keys "$work/a.bin" "$work/b.bin" "$work/c.bin" >/dev/null
"$pg" org add Soak --tier gold >/dev/null
token=$("$pg" user add Soak wrk 2>/dev/null)
"$pg" grant Soak soak >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$pg" serve --repo "$work/repo" --listen "127.0.0.1:$port" --node-name soak --max-connections 4096 >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
sha() { sha256sum "$1" | cut -c1-64; }
cat > "$work/mix.lua" <<LUA
local paths = {"/targets/soak/$(sha "$work/a.bin").a.bin", "/targets/soak/$(sha "$work/a.bin").a.bin",
               "/targets/soak/$(sha "$work/b.bin").b.bin", "/targets/soak/$(sha "$work/c.bin").c.bin",
               "/metadata/timestamp.json"}
local i = 0
wrk.headers["Authorization"] = "Bearer $token"
request = function() i = i + 1; return wrk.format("GET", paths[(i % #paths) + 1]) end
LUA
( for t in $(seq 0 10 "$secs"); do
    awk -v t="$t" '/VmRSS/ {printf "%d %.1f\n", t, $2 / 1024}' "/proc/$server/status" 2>/dev/null; sleep 10
  done ) > "$work/rss.txt" &
sampler=$!
wrk -t2 -c256 -d"${secs}s" -s "$work/mix.lua" "http://127.0.0.1:$port/" > "$work/wrk.out" 2>&1 || { cat "$work/wrk.out"; echo "ABORT: wrk failed"; exit 1; }
kill "$sampler" 2>/dev/null || true
cat "$work/wrk.out"
if grep -qE "Non-2xx|Socket errors: connect [1-9]|read [1-9]|write [1-9]" "$work/wrk.out"; then echo "ABORT: errors during the soak"; exit 1; fi
served=$(grep -oE "[0-9]+ requests in" "$work/wrk.out" | cut -d' ' -f1)
targets=$(curl -fsS "http://127.0.0.1:$port/metrics" | awk '/^patchgate_downloads_total\{outcome="complete"\}/ {print $2}')
kill -TERM "$server"; wait "$server" 2>/dev/null || true; server=
records=$("$pg" downloads --node soak --csv | tail -n +2 | wc -l)
python3 - "$work/rss.txt" <<'PY'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
at2 = next((r for t, r in rows if t >= 120), rows[-1][1] if rows else 0)
mx = max((r for _, r in rows), default=0)
print(f"RSS: minute 2 (or last) {at2:.1f} MB, max {mx:.1f} MB ({(mx / at2 - 1) * 100 if at2 else 0:+.1f}%)")
PY
echo "requests: $served, of which target downloads served 200: $targets; audit records: $records" \
     "($([[ "$records" == "$targets" ]] && echo equal || echo DIFFERENT))"
