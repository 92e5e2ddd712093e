#!/usr/bin/env bash
# patchgate-client cold refresh + one download, as a whole process (wall time and peak
# RSS from /usr/bin/time), against:
#   flat:   a repository made by @tufjs/models whose top-level targets.json lists 30,000
#           targets flat (~4.5 MB, canonical JSON on disk);
#   binned: our own layout (`patchgate publish` of 30,000 files: product role + hash bins);
# and tuf-js 6.0.2 on the flat repository, in the same run. Everything is served by nginx
# on 127.0.0.1 (static files). Goals (#12): flat <= 60 ms and <= 25 MB; binned <= 20 ms.
# Prints figures; not a test. Usage: bench/client_refresh_bench.sh [BUILD_DIR] [RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
runs=${2:-5}
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

# measure NAME BASE_URL ROOT TARGET: median wall ms and max peak RSS over $runs cold runs.
measure() {
  local name=$1 base=$2 rootfile=$3 target=$4 walls=() rss=0
  for i in $(seq "$runs"); do
    rm -rf "$work/c"
    "$client" --metadata-dir "$work/c/meta" init "$rootfile"
    /usr/bin/time -f '%e %M' -o "$work/time" "$client" --metadata-dir "$work/c/meta" --metadata-url "$base/metadata" \
      --target-name "$target" --target-base-url "$base/targets" --target-dir "$work/c/t" download >/dev/null
    read -r secs kb < "$work/time"
    # %e has 10 ms resolution: also time it ourselves.
    rm -rf "$work/c"; "$client" --metadata-dir "$work/c/meta" init "$rootfile"
    t0=$(date +%s%N)
    "$client" --metadata-dir "$work/c/meta" --metadata-url "$base/metadata" \
      --target-name "$target" --target-base-url "$base/targets" --target-dir "$work/c/t" download >/dev/null
    t1=$(date +%s%N)
    walls+=($(( (t1 - t0) / 1000 )))
    (( kb > rss )) && rss=$kb
  done
  local median
  median=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-8s cold refresh + 1 download: median %6.1f ms wall (of %d runs), peak RSS %5.1f MB\n' \
    "$name" "$(echo "$median / 1000" | bc -l)" "$runs" "$(echo "$rss / 1024" | bc -l)"
}

echo "== building repositories"
head -c 1500 /dev/urandom > "$work/update-000042.msp"
node "$root/tests/interop/make_flat_repo.mjs" "$work/flat" 30000 catalogue/update-000042.msp "$work/update-000042.msp" \
  | python3 -c 'import json,sys; print(f"flat (@tufjs/models): targets.json {json.load(sys.stdin)[\"targets_json_bytes\"]/1e6:.2f} MB")'
python3 - "$work/in" <<'PY'
import os, sys, random
d = sys.argv[1]; os.makedirs(d); r = random.Random(7)
for i in range(30000):
    with open(f"{d}/update-{i:06d}.msp", "wb") as f: f.write(r.randbytes(r.randint(200, 2000)))
PY
t0=$(date +%s%N)
"$pg" init "$work/binned" --insecure-plaintext-keys >/dev/null
(cd "$work/in" && find . -type f -print0 | xargs -0 -n 10000 "$pg" publish "$work/binned" --product catalogue \
   --insecure-plaintext-keys >/dev/null)
echo "binned (patchgate publish, scan gate on): 30,000 targets in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

echo "== patchgate-client (whole process, nginx on loopback)"
start_nginx "$work/flat"; flat_port=$port
measure flat "http://127.0.0.1:$flat_port" "$work/flat/metadata/1.root.json" catalogue/update-000042.msp
start_nginx "$work/binned"; binned_port=$port
measure binned "http://127.0.0.1:$binned_port" "$work/binned/metadata/1.root.json" catalogue/update-000042.msp

echo "== tuf-js 6.0.2 on the flat repository (same run, same server)"
rm -rf "$work/tufjs"
/usr/bin/time -f '%e %M' -o "$work/time" node "$root/tests/interop/tufjs_client.mjs" "http://127.0.0.1:$flat_port/metadata" \
  "http://127.0.0.1:$flat_port/targets" "$work/flat/metadata/1.root.json" "$work/tufjs" catalogue/update-000042.msp \
  > "$work/tufjs.json"
read -r secs kb < "$work/time"
python3 - "$work/tufjs.json" "$secs" "$kb" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"tuf-js   refresh {d['refresh_ms']:.1f} ms + lookup/download {d['lookup_download_ms']:.1f} ms in-process; "
      f"process {float(sys.argv[2])*1000:.0f} ms wall, peak RSS {int(sys.argv[3])/1024:.1f} MB")
PY
echo "goals: flat <= 60 ms and <= 25 MB; binned <= 20 ms"
