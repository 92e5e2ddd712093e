#!/usr/bin/env bash
# Chain figures (prints; not a test), all in one run on loopback:
#  1. initial sync of a TARGETS-target repository (~MB megabytes) by `patchgate mirror`
#     (verify metadata, fetch every target by hash in parallel, verify, switch) versus
#     `curl --parallel` (one process, 8 transfers, keep-alive) and `wget -i` (one
#     connection) pulling the same files from the same origin with the same node token;
#  2. propagation: a publish on the origin until it is servable on mirror-2 (two hops);
#  3. watch detection latency: a write to a served file until the incident's detected_at.
# Usage: bench/chain_bench.sh [BUILD_DIR] [TARGETS=30000] [MB=1000]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
targets=${2:-30000}
mb=${3:-1000}
pg="$build/src/cli/patchgate"
export PATCHGATE_SIGNATURES="$root/tests/data/signatures"
work=$(mktemp -d /tmp/pg-chainbench.XXXXXX)
chmod 755 "$work"
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null; done; for p in "${pids[@]}"; do wait $p 2>/dev/null; done; rm -rf "$work"' EXIT
unset PATCHGATE_PASSPHRASE PATCHGATE_NODE_TOKEN
export PATCHGATE_STORE="sqlite://$work/store.db"
cd "$work"
now_ms() { date +%s%3N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_log() { until grep -q "$2" "$1" 2>/dev/null; do sleep 0.02; done; }

echo "== building a repository of $targets targets, about $mb MB (the publish gate scans every file)"
python3 - files "$targets" "$mb" <<'PY'
import os, random, sys
d, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d)
r = random.Random(5)
mean = mb * 1_000_000 // n
for i in range(n):
    size = max(512, int(r.expovariate(1 / mean)))
    with open(f"{d}/update-{i:06d}.bin", "wb") as f:
        f.write(os.urandom(size))
PY
"$pg" init repo --insecure-plaintext-keys >/dev/null 2>&1
t0=$(now_ms)
find files -type f -print0 | xargs -0 -n 5000 "$pg" publish repo --product catalogue --insecure-plaintext-keys >/dev/null 2>&1
echo "published in $(( $(now_ms) - t0 )) ms; $(du -sb repo/targets | cut -f1) bytes of targets"
bytes=$(du -sb repo/targets | cut -f1)

p0=$(free_port); p1=$(free_port); p2=$(free_port)
t1=$("$pg" node add mirror-1 --upstream "http://127.0.0.1:$p0" 2>/dev/null)
t2=$("$pg" node add mirror-2 --upstream "http://127.0.0.1:$p1" 2>/dev/null)
tb=$("$pg" node add bench --upstream "http://127.0.0.1:$p0" 2>/dev/null)
"$pg" serve --repo repo --listen "127.0.0.1:$p0" > origin.log 2>&1 &
pids+=($!)
wait_log origin.log listening

# The same files, the same server, the same token: the reference pullers.
python3 - repo "$p0" > urls.txt <<'PY'
import json, os, sys
repo, port = sys.argv[1], sys.argv[2]
for dirpath, _, files in os.walk(os.path.join(repo, "targets")):
    for f in files:
        rel = os.path.relpath(os.path.join(dirpath, f), repo)
        print(f"http://127.0.0.1:{port}/{rel}")
PY
awk '{printf "url = \"%s\"\noutput = \"curl-out/%d\"\n", $0, NR}' urls.txt > curl.cfg
# Warm the origin's verification cache and the page cache once, so every puller meets the same server state.
mkdir -p curl-out
curl -s --parallel --parallel-max 8 -H "Authorization: Bearer $tb" -K curl.cfg
rm -rf curl-out; mkdir -p curl-out
t0=$(now_ms)
curl -s --parallel --parallel-max 8 -H "Authorization: Bearer $tb" -K curl.cfg
curl_ms=$(( $(now_ms) - t0 ))
got=$(du -sb curl-out | cut -f1)
rm -rf curl-out
mkdir -p wget-out
t0=$(now_ms)
wget -q -x -nH -P wget-out --header "Authorization: Bearer $tb" -i urls.txt
wget_ms=$(( $(now_ms) - t0 ))
rm -rf wget-out

t0=$(now_ms)
"$pg" mirror --upstream "http://127.0.0.1:$p0" --root repo/metadata/1.root.json --data m1 --node-name mirror-1 \
  --listen "127.0.0.1:$p1" --node-token "$t1" > m1.log 2>&1 &
pids+=($!)
wait_log m1.log "switched to a new snapshot"
mirror_ms=$(( $(now_ms) - t0 ))
wait_log m1.log listening
"$pg" verify m1 >/dev/null && echo "mirror-1 verifies"
mbps() { python3 -c "print(f'{$1/1e6/($2/1000):.1f} MB/s')"; }
echo "initial sync of $targets targets ($bytes bytes):"
echo "  patchgate mirror (verify metadata + fetch by hash, 8 parallel, verify, switch): $mirror_ms ms, $(mbps "$bytes" "$mirror_ms")"
echo "  curl --parallel --parallel-max 8 (same files, same server): $curl_ms ms, $(mbps "$got" "$curl_ms")"
echo "  wget -i (one connection): $wget_ms ms, $(mbps "$bytes" "$wget_ms")"
best=$(( curl_ms < wget_ms ? curl_ms : wget_ms ))
python3 -c "print(f'  patchgate mirror throughput / best reference = {$best/$mirror_ms:.2f}x (goal >= 0.8x)')"

"$pg" mirror --upstream "http://127.0.0.1:$p1" --root repo/metadata/1.root.json --data m2 --node-name mirror-2 \
  --listen "127.0.0.1:$p2" --node-token "$t2" --watch --verify-interval 3600 > m2.log 2>&1 &
pids+=($!)
wait_log m2.log "integrity watch started"

echo "== propagation origin -> mirror-1 -> mirror-2 (default --sync-interval), 5 publishes"
for i in 1 2 3 4 5; do
  head -c 100000 /dev/urandom > "new$i.bin"
  "$pg" publish repo --product catalogue --insecure-plaintext-keys "new$i.bin" >/dev/null 2>&1
  t0=$(now_ms)
  until cmp -s repo/metadata/timestamp.json m2/metadata/timestamp.json; do sleep 0.01; done
  echo "  publish $i: servable on mirror-2 after $(( $(now_ms) - t0 )) ms"
done

echo "== watch detection latency on mirror-2 (20 files changed one at a time)"
ls m2/targets/catalogue/ > all.txt; head -20 all.txt > victims.txt
: > writes.txt
while read -r f; do
  echo "targets/catalogue/$f $(date +%s%6N)" >> writes.txt
  printf 'MARK' >> "m2/targets/catalogue/$f"
  sleep 0.2
done < victims.txt
sleep 1
"$pg" incident list --json > incidents.json
python3 - incidents.json writes.txt <<'PY'
import json, statistics, sys
incs = [i for i in json.load(open(sys.argv[1])) if i["node"] == "mirror-2"]
lat = []
for line in open(sys.argv[2]):
    rel, at = line.split()
    name = rel.split("/", 2)[2].split(".", 1)[1]
    for i in incs:
        if any(f.endswith("/" + name) for f in i["files"]):
            lat.append((i["detected_at_us"] - int(at)) / 1000)
            break
lat.sort()
print(f"  {len(lat)}/20 detected; median {statistics.median(lat):.1f} ms, max {lat[-1]:.1f} ms (goal < 1000 ms)")
PY
