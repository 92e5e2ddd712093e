#!/usr/bin/env bash
# Scan throughput (prints; not a test): a ~1 GB corpus (4 KiB–20 MiB: executables, text,
# random data, a few zips); `patchgate scan` vs `clamscan --database=<same dir>` in one run;
# then a rescan with the verdict cache and unchanged signatures.
# Usage: bench/scan_bench.sh [BUILD_DIR] [CORPUS_MB]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
mb=${2:-1000}
pg="$build/src/cli/patchgate"
sigs="$root/tests/data/signatures"
work=$(mktemp -d /tmp/pg-scanbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 - "$work/corpus" "$mb" <<'PY'
import os, random, shutil, sys, glob, zipfile
d, target = sys.argv[1], int(sys.argv[2]) * 1000 * 1000
os.makedirs(d); r = random.Random(11)
elves = [p for p in glob.glob("/usr/bin/*") if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) > 4096][:400]
words = open("/usr/share/dict/words").read().split() if os.path.exists("/usr/share/dict/words") else ["patch", "update", "vendor", "release", "security", "fix"]
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
print(f"corpus: {i} files, {total/1e6:.0f} MB")
PY
sync
t() { local s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; echo "$(date +%s.%N) - $s" | bc; }
ours=$(t "$pg" scan "$work/corpus" --signatures "$sigs")
theirs=$(t clamscan --database="$sigs" -r --no-summary "$work/corpus")
echo "patchgate scan: ${ours}s   clamscan: ${theirs}s   speed-up: $(python3 -c "print(f'{$theirs/$ours:.2f}x')")"
t "$pg" scan "$work/corpus" --signatures "$sigs" --store "sqlite://$work/cache.db" >/dev/null
cached=$(t "$pg" scan "$work/corpus" --signatures "$sigs" --store "sqlite://$work/cache.db")
echo "rescan with unchanged signatures (verdict cache): ${cached}s   vs clamscan: $(python3 -c "print(f'{$theirs/$cached:.1f}x')") faster"
