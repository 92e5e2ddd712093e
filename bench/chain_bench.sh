#!/usr/bin/env bash
# Chain figures (prints; not a test), all in one run on loopback:
#  1. initial sync of a TARGETS-target repository (~MB megabytes) by `patchgate mirror`
#     (verify metadata, fetch every target by hash, verify, syncfs, switch) against
#     `curl --parallel` (one process, the same number of transfers as the mirror,
#     keep-alive) and `wget -i` (one connection), pulling the same files from the same
#     origin with a node token. Each puller writes into a fresh directory and nothing is
#     deleted between the timed runs (on this ext4 without a journal, creating files just
#     after deleting thousands costs every puller a scan of recently freed inodes). Each
#     timed run starts with nothing dirty in the page cache (`sync` first): the writeback
#     of an earlier puller's gigabyte (due 30 s after it was written, or forced by the
#     mirror's syncfs, which syncs the whole file system) is not charged to the next one;
#     the mirror still writes its own files back to disk before it switches, curl does not;
#  2. propagation: a publish on the origin until it is servable on mirror-2 (two hops,
#     default --sync-interval): mirror-2's timestamp.json is the origin's AND a customer
#     download of the new target through mirror-2 returns its bytes;
#  3. watch detection latency: a write to a served file until the incident's detected_at.
# Usage: bench/chain_bench.sh [BUILD_DIR] [TARGETS=30000] [MB=1000] [PARALLEL=8]
# The generated repository is kept in $PATCHGATE_BENCH_CACHE (default
# /tmp/pg-chainbench-cache) and reused by the next run with the same TARGETS and MB; its
# one-time publish (every file through the scan gate) runs under eatmydata when present
# (the publish's fsyncs are not what this bench measures). GENERATE_ONLY=1: stop once the
# repository is cached. SYNC_ONLY=1: stop after the initial-sync figures (no wget, no chain
# of two, no propagation, no watch). MIRROR_WRAP="perf record -g -o FILE": run the timed mirror under it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
targets=${2:-30000}
mb=${3:-1000}
par=${4:-8}
pg="$build/src/cli/patchgate"
export PATCHGATE_SIGNATURES="$root/tests/data/signatures"
work=$(mktemp -d /tmp/pg-chainbench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
unset PATCHGATE_PASSPHRASE PATCHGATE_NODE_TOKEN
export PATCHGATE_STORE="sqlite://$work/store.db"
cd "$work"
now_ms() { date +%s%3N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_log() {  # FILE PATTERN [SECONDS]: a process that died or never says it aborts the bench
  local deadline=$(($(now_ms) + ${3:-600} * 1000))
  until grep -q "$2" "$1" 2>/dev/null; do
    if (($(now_ms) > deadline)); then echo "--- $1"; tail -20 "$1"; echo "timed out waiting for '$2'"; exit 1; fi
    sleep 0.02
  done
}
started() { pids+=("$1"); }
log_ms() { grep -o "\"msg\":\"$2\".*" "$1" | grep -o '"ms":"[0-9]*"' | head -1 | grep -o '[0-9]*'; }

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(uname -sr)"
echo "== versions: $("$pg" --version 2>/dev/null || echo patchgate); $(curl --version | head -1 | cut -d' ' -f1-2); $(wget --version | head -1 | cut -d' ' -f1-3)"

cache=${PATCHGATE_BENCH_CACHE:-/tmp/pg-chainbench-cache}/repo-$targets-$mb
if [[ ! -f $cache/done ]]; then
  echo "== building a repository of $targets targets, about $mb MB (once; kept in $cache)"
  rm -rf "$cache"
  mkdir -p "$cache"
  t0=$(now_ms)
  python3 - "$cache/files" "$targets" "$mb" <<'PY'
import os, random, sys
d, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d)
r = random.Random(5)
mean = mb * 1_000_000 // n
for i in range(n):
    size = max(512, int(r.expovariate(1 / mean)))
    with open(f"{d}/update-{i:06d}.bin", "wb") as f:
        f.write(r.randbytes(size))
PY
  quick=()
  command -v eatmydata >/dev/null && quick=(eatmydata)
  (cd "$cache" && "$pg" init repo --insecure-plaintext-keys >/dev/null 2>&1)
  (cd "$cache" && find files -type f -print0 | sort -z | xargs -0 -n 10000 "${quick[@]}" "$pg" publish repo \
    --product catalogue --insecure-plaintext-keys >/dev/null)
  rm -rf "$cache/files"
  sync -f "$cache"
  touch "$cache/done"
  echo "   generated and published in $(( $(now_ms) - t0 )) ms${quick:+ (publish under eatmydata)}"
fi
if [[ -n ${GENERATE_ONLY:-} ]]; then echo "== repository cached in $cache"; exit 0; fi
cp -a "$cache/repo" repo
"$pg" verify repo >/dev/null
bytes=$(find repo/targets -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
nfiles=$(find repo/targets -type f | wc -l)
echo "== repository: $nfiles targets, $bytes bytes, $(ls repo/metadata | wc -l) metadata files"

p0=$(free_port); p1=$(free_port); p2=$(free_port)
t1=$("$pg" node add mirror-1 --upstream "http://127.0.0.1:$p0" 2>/dev/null)
t2=$("$pg" node add mirror-2 --upstream "http://127.0.0.1:$p1" 2>/dev/null)
tb=$("$pg" node add bench --upstream "http://127.0.0.1:$p0" 2>/dev/null)
"$pg" org add Bench --tier premier >/dev/null
"$pg" grant Bench catalogue >/dev/null
customer=$("$pg" user add Bench alice 2>/dev/null)
"$pg" serve --repo repo --listen "127.0.0.1:$p0" > origin.log 2>&1 &
started $!
origin_pid=$!
cpu_s() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$1/stat"; }  # user+system seconds of a running process
wait_log origin.log listening 120

# The same files, the same server, the same token: the reference pullers.
find repo/targets -type f | sed "s#^repo/#http://127.0.0.1:$p0/#" > urls.txt
awk '{printf "url = \"%s\"\noutput = \"%d\"\n", $0, NR}' urls.txt > curl.cfg
pull_curl() {  # DIR: every file, or the bench stops
  mkdir -p "$1"
  (cd "$1" && /usr/bin/time -f "%U %S" -o ../cpu-$1.txt curl -s --no-progress-meter --fail --parallel --parallel-max "$par" \
    -H "Authorization: Bearer $tb" -K ../curl.cfg)
  local got
  got=$(find "$1" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
  [[ $got == "$bytes" ]] || { echo "curl got $got bytes, expected $bytes"; exit 1; }
}
# Warm the origin's verification cache and the page cache once, so every puller meets the same server state.
pull_curl warm
settle() { sync; sleep 1; }  # nothing dirty left by the run before (see the header)
settle
o0=$(cpu_s "$origin_pid")
t0=$(now_ms); pull_curl curl-a; curl_a=$(( $(now_ms) - t0 ))
origin_curl=$(python3 -c "print(f'{$(cpu_s "$origin_pid") - $o0:.2f}')")
wget_ms=999999999
if [[ -z ${SYNC_ONLY:-} ]]; then
  mkdir -p wget-out
  settle
  t0=$(now_ms)
  wget -q -x -nH -P wget-out --header "Authorization: Bearer $tb" -i urls.txt
  wget_ms=$(( $(now_ms) - t0 ))
  [[ $(find wget-out -type f | wc -l) == "$nfiles" ]] || { echo "wget did not get every file"; exit 1; }
fi

settle
o0=$(cpu_s "$origin_pid")
t0=$(now_ms)
${MIRROR_WRAP:-} "$pg" mirror --upstream "http://127.0.0.1:$p0" --root repo/metadata/1.root.json --data m1 --node-name mirror-1 \
  --listen "127.0.0.1:$p1" --node-token "$t1" --parallel "$par" > m1.log 2>&1 &
started $!
m1_pid=$!
wait_log m1.log "switched to a new snapshot"
mirror_ms=$(( $(now_ms) - t0 ))
mirror_cpu=$(cpu_s "$m1_pid")
origin_mirror=$(python3 -c "print(f'{$(cpu_s "$origin_pid") - $o0:.2f}')")
wait_log m1.log listening
settle
t0=$(now_ms); pull_curl curl-b; curl_b=$(( $(now_ms) - t0 ))
"$pg" verify m1 >/dev/null && echo "mirror-1 verifies (every target hashed against the signed metadata)"
mbps() { python3 -c "print(f'{$1/1e6/($2/1000):.1f} MB/s')"; }
curl_ms=$(( curl_a < curl_b ? curl_a : curl_b ))
echo "== initial sync of $nfiles targets ($bytes bytes), parallelism $par on both sides:"
echo "  patchgate mirror --parallel $par (verify metadata, fetch by hash, verify, syncfs, switch): $mirror_ms ms, $(mbps "$bytes" "$mirror_ms")"
echo "    of which: metadata verified at $(log_ms m1.log 'sync: metadata verified') ms, targets fetched+verified at" \
     "$(log_ms m1.log 'sync: targets fetched and verified') ms, synced to disk at $(log_ms m1.log 'sync: synced to disk') ms," \
     "switched at $(log_ms m1.log 'mirror switched to a new snapshot') ms (from the first poll; the rest is process start)"
echo "  curl --parallel --parallel-max $par (same files, same server; before / after the mirror): $curl_a / $curl_b ms, best $(mbps "$bytes" "$curl_ms") (no verification, no fsync)"
[[ -n ${SYNC_ONLY:-} ]] || echo "  wget -i (one connection): $wget_ms ms, $(mbps "$bytes" "$wget_ms")"
read -r cu cs < cpu-curl-a.txt
echo "  CPU seconds (user+system; wall ratios move with the load of a shared machine): patchgate mirror $mirror_cpu" \
     "(process start to switch; origin serving it $origin_mirror); curl $(python3 -c "print(f'{$cu + $cs:.2f}')") (origin serving it $origin_curl)"
best=$(( curl_ms < wget_ms ? curl_ms : wget_ms ))
python3 -c "print(f'  patchgate mirror throughput / best reference = {$best/$mirror_ms:.2f}x (goal >= 0.8x)')"
if [[ -n ${SYNC_ONLY:-} ]]; then echo "== load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"; exit 0; fi

"$pg" mirror --upstream "http://127.0.0.1:$p1" --root repo/metadata/1.root.json --data m2 --node-name mirror-2 \
  --listen "127.0.0.1:$p2" --node-token "$t2" --watch --verify-interval 3600 > m2.log 2>&1 &
started $!
wait_log m2.log "integrity watch started"

echo "== propagation origin -> mirror-1 -> mirror-2 (default --sync-interval), 5 publishes"
for i in 1 2 3 4 5; do
  head -c 100000 /dev/urandom > "new$i.bin"
  sha=$(sha256sum < "new$i.bin" | cut -c1-64)
  "$pg" publish repo --product catalogue --insecure-plaintext-keys "new$i.bin" >/dev/null 2>&1
  t0=$(now_ms)
  # What a client sees: mirror-2 answering with the new timestamp.json (a node serves the one
  # its loaded catalogue came from, so it never names a target the node cannot serve yet).
  until curl -s -o served-ts.json -H "Authorization: Bearer $customer" "http://127.0.0.1:$p2/metadata/timestamp.json" &&
        cmp -s repo/metadata/timestamp.json served-ts.json; do
    (($(now_ms) - t0 > 60000)) && { echo "no propagation in 60 s"; tail -5 m1.log m2.log; exit 1; }
    sleep 0.01
  done
  t_meta=$(( $(now_ms) - t0 ))
  curl -s --fail -o "got$i.bin" -H "Authorization: Bearer $customer" "http://127.0.0.1:$p2/targets/catalogue/$sha.new$i.bin"
  cmp -s "got$i.bin" "new$i.bin" || { echo "mirror-2 served other bytes"; exit 1; }
  echo "  publish $i: timestamp on mirror-2 after $t_meta ms; servable (customer download of it done) after $(( $(now_ms) - t0 )) ms"
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
if len(lat) < 20:
    print(f"  only {len(lat)}/20 changes detected"); sys.exit(1)
print(f"  {len(lat)}/20 detected; median {statistics.median(lat):.1f} ms, max {lat[-1]:.1f} ms (goal < 1000 ms)")
PY
echo "== load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
