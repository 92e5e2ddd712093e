#!/usr/bin/env bash
# patchgate-client cold refresh + one download, as a whole process (wall time, CPU time
# and peak RSS of the client process alone: bench/rusage_run.c), against:
#   flat:   a repository made by @tufjs/models (another TUF implementation) whose top-level
#           targets.json lists 30,000 targets flat (~5.4 MB, canonical JSON on disk);
#   binned: our own layout (`patchgate publish` of 30,000 files: product role + hash bins);
# and, in the same run on the same flat repository and nginx, tuf-js 6.0.2 (and python-tuf
# when Debian's python3-tuf is installed). Everything is served by nginx on 127.0.0.1.
# Goals (#12): flat <= 60 ms wall and <= 25 MB peak RSS; binned <= 20 ms.
# CPU time (user + system) is printed beside the wall time: on a shared machine it is the
# figure that load stretches least. Every failed command aborts the run (a peer that runs past its time limit is
# reported as such). Prints figures; not a test.
# Usage: bench/client_refresh_bench.sh [BUILD_DIR] [RUNS] [TARGETS]
#   env TUFJS_TIMEOUT (s, default 60): time limit of the tuf-js run on the flat repository.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
runs=${2:-5}
count=${3:-30000}
tufjs_timeout=${TUFJS_TIMEOUT:-60}
pg="$build/src/cli/patchgate"
client="$build/src/client/patchgate-client"
export PATCHGATE_SIGNATURES="$root/tests/data/signatures"
unset PATCHGATE_PASSPHRASE
work=$(mktemp -d /tmp/pg-clientbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"

start_nginx() {  # start_nginx DIR -> $port
  local ngx="$work/nginx.$RANDOM"
  mkdir -p "$ngx/tmp"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$ngx/nginx.conf" <<NGX
worker_processes 1;
pid $ngx/nginx.pid;
error_log $ngx/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $ngx/tmp/body; proxy_temp_path $ngx/tmp/proxy; fastcgi_temp_path $ngx/tmp/fcgi;
  uwsgi_temp_path $ngx/tmp/uwsgi; scgi_temp_path $ngx/tmp/scgi;
  default_type application/octet-stream;
  sendfile on;
  server { listen 127.0.0.1:$port; root $1; }
}
NGX
  chmod -R a+rX "$1"
  nginx -p "$ngx" -c "$ngx/nginx.conf" -e "$ngx/error.log" -g 'daemon off;' &
  pids+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0; sleep 0.05; done
  echo "nginx did not start"; cat "$ngx/error.log"; exit 1
}

# run_cost OUT CMD...: wall us, CPU us and peak RSS KB of CMD into OUT; CMD's exit status.
cc -O2 -o "$work/rusage_run" "$root/bench/rusage_run.c"
run_cost() { "$work/rusage_run" "$@"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# measure NAME BASE_URL ROOT TARGET: median wall ms, median CPU ms and max peak RSS over
# $runs cold runs (a fresh metadata directory holding only the trusted root each time).
measure() {
  local name=$1 base=$2 rootfile=$3 target=$4 walls=() cpus=() rss=0 wall cpu kb
  for _ in $(seq "$runs"); do
    rm -rf "$work/c"
    "$client" --metadata-dir "$work/c/meta" init "$rootfile" >/dev/null
    run_cost "$work/cost" "$client" --metadata-dir "$work/c/meta" --metadata-url "$base/metadata" \
      --target-name "$target" --target-base-url "$base/targets" --target-dir "$work/c/t" download
    read -r wall cpu kb < "$work/cost"
    [[ -s "$work/c/t/$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$target")" ]] \
      || { echo "patchgate-client stored no $target"; exit 1; }
    walls+=("$wall")
    cpus+=("$cpu")
    (( kb > rss )) && rss=$kb
  done
  local mwall mcpu
  mwall=$(printf '%s\n' "${walls[@]}" | median)
  mcpu=$(printf '%s\n' "${cpus[@]}" | median)
  printf '%-8s patchgate-client cold refresh + 1 download: median %6.1f ms wall (of %d runs; min %.1f), %5.1f ms CPU, peak RSS %5.1f MB\n' \
    "$name" "$(echo "$mwall / 1000" | bc -l)" "$runs" "$(printf '%s\n' "${walls[@]}" | sort -n | head -1 | awk '{print $1/1000}')" \
    "$(echo "$mcpu / 1000" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
  eval "${name}_ms=$(echo "$mwall / 1000" | bc -l)"
  eval "${name}_cpu=$(echo "$mcpu / 1000" | bc -l)"
  eval "${name}_mb=$(echo "$rss / 1024" | bc -l)"
}

echo "== what is compared"
echo "patchgate-client (this build) refreshing from cold (only the trusted root.json on disk) and downloading one"
echo "target, as a whole process, against nginx on 127.0.0.1 serving the repository directory; then tuf-js on the"
echo "same flat repository through the same nginx. Machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)."
echo "peers: $(nginx -v 2>&1), node $(node --version), tuf-js $(node -p 'require(process.argv[1]).version' \
  "$root/tests/interop/node_modules/tuf-js/package.json"), @tufjs/models $(node -p 'require(process.argv[1]).version' \
  "$root/tests/interop/node_modules/@tufjs/models/package.json") (builds the flat repository)"
echo "patchgate-client's HTTP: its own HTTP/1.1 fetcher for http:// (libcurl, loaded on demand, only for https:// and proxies)"
# How the client binary measured here was linked (what its every start maps and relocates).
dyn=$(readelf -d "$client")
echo "patchgate-client binary: loads $(grep NEEDED <<<"$dyn" | sed 's/.*\[\(.*\)\]/\1/' | paste -sd' ')" \
  "($(grep -q 'NEEDED.*libcrypto' <<<"$dyn" && echo 'libcrypto shared' || echo 'libcrypto linked in')," \
  "$(grep -q 'Flags:.*PIE' <<<"$dyn" && echo 'position-independent (ASLR)' || echo 'NOT position-independent')," \
  "$(grep -q '(RELR)' <<<"$dyn" && echo 'packed relative relocations' || echo 'RELA relocations')," \
  "$(grep -q 'BIND_NOW' <<<"$dyn" && echo 'full RELRO' || echo 'lazy binding'))"
echo "== building repositories"
head -c 1500 /dev/urandom > "$work/update-000042.msp"
t0=$(date +%s%N)
node "$root/tests/interop/make_flat_repo.mjs" "$work/flat" "$count" catalogue/update-000042.msp "$work/update-000042.msp" \
  > "$work/flat.json"
python3 -c 'import json,sys; n=json.load(open(sys.argv[1]))["targets_json_bytes"]; print("flat (@tufjs/models): %s targets in one targets.json of %.2f MB, built in %s ms" % (sys.argv[2], n/1e6, sys.argv[3]))' \
  "$work/flat.json" "$count" "$(( ($(date +%s%N) - t0) / 1000000 ))"
python3 - "$work/in" "$count" <<'PY'
import os, sys, random
d = sys.argv[1]; os.makedirs(d); r = random.Random(7)
for i in range(int(sys.argv[2])):
    with open(f"{d}/update-{i:06d}.msp", "wb") as f: f.write(r.randbytes(r.randint(200, 2000)))
PY
t0=$(date +%s%N)
"$pg" init "$work/binned" --insecure-plaintext-keys >/dev/null
(cd "$work/in" && find . -type f -print0 | xargs -0 -n 10000 "$pg" publish "$work/binned" --product catalogue \
   --insecure-plaintext-keys >/dev/null)
echo "binned (patchgate publish, scan gate on): $count targets in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

echo "== patchgate-client (whole process, nginx on loopback)"
start_nginx "$work/flat"; flat_port=$port
measure flat "http://127.0.0.1:$flat_port" "$work/flat/metadata/1.root.json" catalogue/update-000042.msp
start_nginx "$work/binned"; binned_port=$port
measure binned "http://127.0.0.1:$binned_port" "$work/binned/metadata/1.root.json" catalogue/update-000042.msp

echo "== tuf-js on the flat repository (same run, same nginx; time limit ${tufjs_timeout} s)"
rm -rf "$work/tufjs"
rc=0
/usr/bin/time -f '%e %M' -o "$work/time" timeout "$tufjs_timeout" node "$root/tests/interop/tufjs_client.mjs" \
  "http://127.0.0.1:$flat_port/metadata" "http://127.0.0.1:$flat_port/targets" "$work/flat/metadata/1.root.json" \
  "$work/tufjs" catalogue/update-000042.msp > "$work/tufjs.json" || rc=$?
if (( rc == 124 )); then
  echo "tuf-js   did NOT finish within ${tufjs_timeout} s (its @tufjs/models Targets.fromJSON copies the whole targets map"
  echo "         once per entry: quadratic or worse in the number of targets; not a failure of the repository)"
elif (( rc != 0 )); then
  echo "tuf-js failed (exit $rc)"; cat "$work/tufjs.json"; exit 1
else
  read -r secs kb < "$work/time"
  python3 - "$work/tufjs.json" "$secs" "$kb" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"tuf-js   refresh {d['refresh_ms']:.1f} ms + lookup/download {d['lookup_download_ms']:.1f} ms in-process; "
      f"process {float(sys.argv[2])*1000:.0f} ms wall, peak RSS {int(sys.argv[3])/1024:.1f} MB")
PY
fi

echo "== python-tuf"
if python3 -c 'import tuf.ngclient' 2>/dev/null; then
  echo "python-tuf is installed but this script has no runner for it yet: not run"
else
  echo "python-tuf: not run (python3 has no tuf module; Debian: $(apt-cache policy python3-tuf 2>/dev/null | grep -m1 Candidate || echo 'no python3-tuf package in this archive'))"
fi

echo "== goals (#12)"
verdict() { if (( $(echo "$1" | bc -l) )); then echo met; else echo "NOT met"; fi; }
printf 'flat   <= 60 ms wall: %.1f ms (%s; CPU %.1f ms); <= 25 MB peak: %.1f MB (%s)\n' "$flat_ms" \
  "$(verdict "$flat_ms <= 60")" "$flat_cpu" "$flat_mb" "$(verdict "$flat_mb <= 25")"
printf 'binned <= 20 ms wall: %.1f ms (%s; CPU %.1f ms)\n' "$binned_ms" "$(verdict "$binned_ms <= 20")" "$binned_cpu"
echo "(wall times on a shared machine are pessimistic: load average now $(cut -d' ' -f1-3 /proc/loadavg))"
