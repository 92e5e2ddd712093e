#!/usr/bin/env bash
# Scan throughput and memory, like for like (prints; not a test):
#   bench/scan_bench.sh [BUILD_DIR] [CORPUS_MB=1000] [JOBS=cores] [HASH_SIGS=500000]
# One corpus (4 KiB-20 MiB: executables, text, random data, a few zips, and one EICAR file),
# one signature directory (the project's test signatures plus HASH_SIGS generated MD5
# hash signatures, since the official databases cannot be downloaded here), the same
# parallelism JOBS for everyone:
#   1. `patchgate scan --scan-jobs JOBS`: one worker process, one engine, JOBS threads;
#   2. JOBS clamscan processes, each given its share of the same files (balanced by size);
#   3. clamd started here on a local socket with MaxThreads JOBS and the same signature
#      directory, driven by `clamdscan --multiscan` (its engine loaded before timing; the
#      time from its start to its first answer is measured too). Compared like for like
#      both ways: with the engine load on both sides (patchgate's whole command vs clamd's
#      load + multiscan) and without it on either side (patchgate's scan phase, as it times
#      it, vs clamdscan against the loaded clamd);
#   4. patchgate's rescan with its verdict cache vs its own uncached scan.
# Every command's exit status and output are checked: each must report exactly the one
# EICAR file as infected and every other file as clean, or the bench aborts. Peak total
# RSS of each side's processes is sampled every 20 ms from /proc.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
mb=${2:-1000}
jobs=${3:-$(nproc)}
nsigs=${4:-500000}
pg="$build/src/cli/patchgate"
work=$(mktemp -d /tmp/pg-scanbench.XXXXXX)
clamd_pid=
cleanup() {
  [[ -n "$clamd_pid" ]] && kill "$clamd_pid" 2>/dev/null && wait "$clamd_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "BENCH FAILED: $*" >&2; exit 1; }

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peers: $(clamscan --version | cut -d/ -f1) (clamscan), $(clamd --version | cut -d/ -f1) (clamd), $(clamdscan --version 2>/dev/null | cut -d/ -f1) (clamdscan); patchgate's worker links libclamav $(pkg-config --modversion libclamav)"
echo "parallelism: $jobs for every side"
echo "engine options, the same on every side: MaxFileSize 512M, MaxScanSize 2048M, MaxRecursion 32, MaxFiles 100000;"
echo "  all matches (--allmatch), heuristic alerts on (limits exceeded, encrypted archives/documents, broken executables),"
echo "  every parser on, phishing signatures and URL checks and bytecode as loaded by default (CL_DB_STDOPT / clamd's defaults);"
echo "  libclamav's in-engine clean-file cache is on everywhere and cold at the start of every timed run (fresh processes, clamd"
echo "  freshly started); patchgate's own verdict cache is off (no --store) in every timed comparison"

# Signatures: the test set plus generated MD5 hash signatures (hash:size:name).
mkdir -p "$work/sigs"
cp "$root"/tests/data/signatures/* "$work/sigs/"
python3 - "$work/sigs/generated.hdb" "$nsigs" <<'PY'
import random, sys
r = random.Random(5)
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"{r.getrandbits(128):032x}:{r.randrange(1000, 50_000_000)}:Bench.Generated.Hash{i}\n")
PY
echo "signatures: $(ls "$work/sigs" | wc -l) files, $nsigs generated hash signatures + the test set ($(du -sh "$work/sigs" | cut -f1))"

python3 - "$work/corpus" "$mb" <<'PY'
import os, random, shutil, sys, glob, zipfile
d, target = sys.argv[1], int(sys.argv[2]) * 1000 * 1000
os.makedirs(d); r = random.Random(11)
elves = [p for p in sorted(glob.glob("/usr/bin/*")) if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) > 4096][:400]
words = open("/usr/share/dict/words").read().split() if os.path.exists("/usr/share/dict/words") else ["patch", "update", "vendor", "release", "security", "fix"]
with open(f"{d}/eicar.com", "w") as f:
    f.write("X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
total = i = 0
while total < target:
    kind = i % 4
    size = int(min(20 * 2**20, max(4096, r.lognormvariate(12.5, 1.6))))
    p = f"{d}/f{i:05d}"
    if kind == 0 and elves:
        src = r.choice(elves); shutil.copyfile(src, p + ".elf")
        p += ".elf"
    elif kind == 1:
        with open(p + ".txt", "w") as f:
            n = 0
            while n < size:
                line = " ".join(r.choice(words) for _ in range(12)) + "\n"; f.write(line); n += len(line)
        p += ".txt"
    elif kind == 2 and i % 40 == 2:
        with zipfile.ZipFile(p + ".zip", "w", zipfile.ZIP_DEFLATED) as z:
            for k in range(5): z.writestr(f"part{k}.bin", r.randbytes(size // 5))
        p += ".zip"
    else:
        with open(p + ".bin", "wb") as f: f.write(r.randbytes(size))
        p += ".bin"
    total += os.path.getsize(p); i += 1
print(f"corpus: {i + 1} files (one of them EICAR), {total/1e6:.0f} MB")
PY
nfiles=$(find "$work/corpus" -type f | wc -l)
sync

# run.py OUT -- CMD...: runs CMD, samples the summed RSS of CMD's process tree (plus the
# pids in $EXTRA_PIDS and their children) every 20 ms; writes "rc seconds peak_mb cpu_seconds"
# to OUT (cpu: user+system time of CMD and its children, plus what the $EXTRA_PIDS used meanwhile;
# on a shared, loaded machine it moves less than the wall time).
cat >"$work/run.py" <<'PY'
import os, resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[3:]
extra = [int(p) for p in os.environ.get("EXTRA_PIDS", "").split()]
def children():
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f: ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except OSError: pass
    return kids
def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"): return int(line.split()[1])
    except OSError: pass
    return 0
def tree_rss(roots):
    kids, seen, todo, total = children(), set(), list(roots), 0
    while todo:
        p = todo.pop()
        if p in seen: continue
        seen.add(p); total += rss(p); todo += kids.get(p, [])
    return total
def cpu_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f: fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError: return 0.0
extra_cpu0 = sum(cpu_of(p) for p in extra)
t = time.perf_counter()
proc = subprocess.Popen(cmd, stdout=open(out + ".stdout", "w"), stderr=open(out + ".stderr", "w"))
peak = 0
while proc.poll() is None:
    peak = max(peak, tree_rss([proc.pid] + extra))
    time.sleep(0.02)
secs = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime + sum(cpu_of(p) for p in extra) - extra_cpu0
open(out, "w").write(f"{proc.returncode} {secs:.3f} {peak / 1024:.0f} {cpu:.2f}\n")
PY
run() { local name=$1; shift; python3 "$work/run.py" "$work/$name" -- "$@"; read -r rc secs peak cpu <"$work/$name"; }

# 1. patchgate: one worker process, one shared engine, $jobs threads.
run ours "$pg" scan "$work/corpus" --signatures "$work/sigs" --scan-jobs "$jobs" --json
((rc == 3)) || fail "patchgate scan exited $rc (3 = infected expected): $(tail -3 "$work/ours.stderr")"
python3 - "$work/ours.stdout" "$nfiles" <<'PY' || fail "patchgate scan output"
import json, sys
d = json.load(open(sys.argv[1])); files = d["files"]
bad = [f for f in files if f["verdict"] not in ("clean", "infected")]
inf = [f["path"] for f in files if f["verdict"] == "infected"]
assert len(files) == int(sys.argv[2]), f"{len(files)} files scanned"
assert not bad and inf and all(p.endswith("/eicar.com") for p in inf) and len(inf) == 1, (bad[:3], inf)
PY
ours_s=$secs ours_mb=$peak ours_cpu=$cpu
# Its own phases, as it timed them: the worker's engine load, then the scan (from the
# worker's ready line to the last verdict).
phases=$(python3 - "$work/ours.stdout" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{d['engine_load_seconds']:.3f} {d['scan_seconds']:.3f}")
PY
) || fail "patchgate scan --json did not report its engine load and scan times"
read -r ours_load_s ours_scan_s <<<"$phases"
run ours_start "$pg" scan "$work/corpus/eicar.com" --signatures "$work/sigs" --scan-jobs "$jobs"
((rc == 3)) || fail "patchgate scan of one file exited $rc"
start_s=$secs
echo
echo "patchgate scan, $jobs threads sharing one engine: ${ours_s} s for $nfiles files, peak RSS of its processes ${ours_mb} MB"
echo "  (includes starting the worker and loading the signatures: ${start_s} s for a one-file scan; inside this run the"
echo "  worker timed its engine load at ${ours_load_s} s and patchgate timed the scan itself at ${ours_scan_s} s)"

# 2. $jobs clamscan processes, each with its share of the files (greedy by size).
python3 - "$work/corpus" "$jobs" "$work/list" <<'PY'
import os, sys
d, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
files = sorted((os.path.getsize(os.path.join(d, f)), os.path.join(d, f)) for f in os.listdir(d))[::-1]
loads, lists = [0] * n, [[] for _ in range(n)]
for size, p in files:
    i = loads.index(min(loads)); loads[i] += size; lists[i].append(p)
for i, l in enumerate(lists): open(f"{out}{i}", "w").write("\n".join(l) + "\n")
PY
cat >"$work/clamscans.sh" <<EOF
#!/usr/bin/env bash
pids=()
for i in \$(seq 0 $((jobs - 1))); do
  clamscan --database="$work/sigs" --no-summary --allmatch --alert-encrypted=yes --alert-exceeds-max=yes \
    --alert-broken=yes --max-filesize=512M --max-scansize=2048M --max-recursion=32 --max-files=100000 -f "$work/list\$i" >"$work/clamscan\$i.out" 2>&1 &
  pids+=(\$!)
done
rc=0
for p in "\${pids[@]}"; do wait \$p; r=\$?; ((r > rc)) && rc=\$r; done
exit \$rc
EOF
run theirs bash "$work/clamscans.sh"
((rc == 1)) || fail "clamscan exited $rc (1 = a virus found expected): $(tail -3 "$work"/clamscan*.out)"
found=$(cat "$work"/clamscan*.out | grep -c ' FOUND$' || true)
okc=$(cat "$work"/clamscan*.out | grep -c ': OK$' || true)
((okc == nfiles - 1)) && grep -q 'eicar.com: .* FOUND$' "$work"/clamscan*.out || fail "clamscan reported $okc OK and $found FOUND lines for $nfiles files"
theirs_s=$secs theirs_mb=$peak theirs_cpu=$cpu
echo "$jobs clamscan processes on the same files: ${theirs_s} s, peak RSS of the $jobs processes ${theirs_mb} MB (each loads its own engine)"

# 3. clamd with $jobs threads, same signatures, on a local socket; clamdscan --multiscan.
cat >"$work/clamd.conf" <<EOF
LocalSocket $work/clamd.sock
DatabaseDirectory $work/sigs
TemporaryDirectory $work
LogFile $work/clamd.log
PidFile $work/clamd.pid
Foreground yes
MaxThreads $jobs
MaxFileSize 512M
MaxScanSize 2048M
MaxRecursion 32
MaxFiles 100000
AlertEncrypted yes
AlertExceedsMax yes
AlertBrokenExecutables yes
SelfCheck 0
EOF
[[ $(id -u) -eq 0 ]] && echo "User root" >>"$work/clamd.conf"
clamd_t0=$(date +%s.%N)
clamd -c "$work/clamd.conf" >"$work/clamd.out" 2>&1 &
clamd_pid=$!
for _ in $(seq 1 3000); do
  [[ -S "$work/clamd.sock" ]] && clamdscan -c "$work/clamd.conf" --ping 1 >/dev/null 2>&1 && break
  kill -0 "$clamd_pid" 2>/dev/null || fail "clamd did not start: $(tail -5 "$work/clamd.out" "$work/clamd.log")"
  sleep 0.04
done
clamdscan -c "$work/clamd.conf" --ping 1 >/dev/null || fail "clamd does not answer on $work/clamd.sock"
clamd_load_s=$(python3 -c "import time; print(f'{time.time() - $clamd_t0:.2f}')")
idle_mb=$(( $(awk '/VmRSS/ {print $2}' /proc/$clamd_pid/status) / 1024 ))
clamd_load_cpu=$(python3 -c "import os; f = open('/proc/$clamd_pid/stat').read().rsplit(')', 1)[1].split(); print(f'{(int(f[11]) + int(f[12])) / os.sysconf(\"SC_CLK_TCK\"):.2f}')")
EXTRA_PIDS=$clamd_pid run clamd clamdscan -c "$work/clamd.conf" --multiscan --no-summary --allmatch "$work/corpus"
((rc == 1)) || fail "clamdscan exited $rc (1 = a virus found expected): $(tail -3 "$work/clamd.stdout" "$work/clamd.stderr")"
found=$(grep -c ' FOUND$' "$work/clamd.stdout" || true)
((found >= 1)) && grep -q 'eicar.com: .* FOUND$' "$work/clamd.stdout" && ! grep -v 'eicar.com' "$work/clamd.stdout" | grep -q 'FOUND$\|ERROR$' \
  || fail "clamdscan output: $(grep -v ': OK$' "$work/clamd.stdout" | head -5)"
clamd_s=$secs clamd_mb=$peak clamd_cpu=$cpu
echo "clamd ($jobs threads, engine already loaded: ${clamd_load_s} s from start to its first answer, ${idle_mb} MB idle) + clamdscan --multiscan: ${clamd_s} s, peak RSS of clamd and clamdscan ${clamd_mb} MB"
kill "$clamd_pid" && wait "$clamd_pid" 2>/dev/null || true
clamd_pid=

# 4. Rescan with the verdict cache (same files, same signatures).
run fill "$pg" scan "$work/corpus" --signatures "$work/sigs" --scan-jobs "$jobs" --store "sqlite://$work/cache.db"
((rc == 3)) || fail "patchgate scan with a store exited $rc"
uncached_s=$secs
run cached "$pg" scan "$work/corpus" --signatures "$work/sigs" --scan-jobs "$jobs" --store "sqlite://$work/cache.db"
((rc == 3)) || fail "patchgate cached rescan exited $rc"
n_cached=$(grep -c '(cached verdict)' "$work/cached.stdout" || true)
((n_cached == nfiles - 1)) || fail "the rescan took $n_cached verdicts from the cache, expected $((nfiles - 1)) (all but the infected one)"
cached_s=$secs

r() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared: compare only figures from the same run)"
echo "== same files, same signatures, parallelism $jobs"
echo "patchgate vs $jobs clamscan processes: $(r "$theirs_s" "$ours_s")x faster (${ours_s} s vs ${theirs_s} s; both include loading the engine)"
clamd_cold_s=$(python3 -c "print(f'{$clamd_load_s + $clamd_s:.3f}')")
echo "patchgate vs clamd, like for like WITH the engine load on both sides (a scan that starts with no engine in memory):"
echo "  $(r "$clamd_cold_s" "$ours_s")x faster: the whole 'patchgate scan' command ${ours_s} s vs clamd from its start to its first answer"
echo "  (${clamd_load_s} s, polled every 40 ms) plus clamdscan --multiscan (${clamd_s} s) = ${clamd_cold_s} s"
echo "patchgate vs clamd, like for like WITHOUT the engine load on either side (engines already in memory, as a node that"
echo "  keeps its scanner loaded): $(r "$clamd_s" "$ours_scan_s")x faster: patchgate's scan ${ours_scan_s} s (timed inside patchgate, from its"
echo "  worker's ready line to the last verdict) vs clamdscan --multiscan ${clamd_s} s (the whole clamdscan process, clamd loaded before)"
echo "not like for like, for reference: the whole patchgate command (engine load inside) vs clamd with its engine loaded"
echo "  before timing: $(r "$clamd_s" "$ours_s")x (${ours_s} s vs ${clamd_s} s)"
echo "engine load alone: patchgate's worker ${ours_load_s} s (as it timed it; ${start_s} s for a whole one-file scan command),"
echo "  clamd ${clamd_load_s} s from its start to its first answer"
echo "CPU time (user+system, all processes of each side; steadier than wall time on a loaded machine): patchgate ${ours_cpu} s (engine load included), clamd + clamdscan ${clamd_cpu} s (engine loaded before), $jobs clamscan ${theirs_cpu} s"
echo "  clamd needs $(r "$clamd_cpu" "$ours_cpu")x patchgate's CPU time for the same work; $jobs clamscan need $(r "$theirs_cpu" "$ours_cpu")x"
echo "  with clamd's engine load counted too (${clamd_load_cpu} s of CPU from its start to its first answer), like for like:"
echo "  clamd needs $(r "$(python3 -c "print($clamd_cpu + $clamd_load_cpu)")" "$ours_cpu")x patchgate's CPU time"
echo "peak RSS: patchgate ${ours_mb} MB vs clamd + clamdscan ${clamd_mb} MB ($(r "$ours_mb" "$clamd_mb")x clamd's) vs $jobs clamscan ${theirs_mb} MB"
echo "cached rescan vs patchgate's own uncached scan (same files, same signatures): ${cached_s} s vs ${uncached_s} s, $(r "$uncached_s" "$cached_s")x (the cache skips the engine; it hashes every file)"
