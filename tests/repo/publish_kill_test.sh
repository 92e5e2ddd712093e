#!/usr/bin/env bash
# `kill -9` at any point of `patchgate publish` leaves a repository that `patchgate verify`
# accepts and a client can use. Also checks the CLI's exit codes on bad input.
# Usage: publish_kill_test.sh BUILD_DIR [ITERATIONS]
. "$(dirname "$0")/../lib/harness.sh"
harness_setup kill "$1"
iterations=${2:-25}
server=
at_exit '[[ -n "$server" ]] && kill "$server"'
export PATCHGATE_PASSPHRASE=kill-test

"$pg" init "$work/repo" --bins-threshold 40 --bin-bits 3 >/dev/null
mkdir -p "$work/in"
# Time one uninterrupted publish so the kills spread over the whole of it (scan, copy,
# sign, snapshot, timestamp rename) and some land after it has finished.
for j in $(seq 12); do head -c $((RANDOM * 8)) /dev/urandom > "$work/in/warm-$j.bin"; done
t0=$(date +%s%N)
"$pg" publish "$work/repo" --product p0 "$work"/in/* >/dev/null
span_ms=$(( ($(date +%s%N) - t0) * 12 / 10 / 1000000 + 1 ))
killed=0
for i in $(seq "$iterations"); do
  rm -rf "$work/in"/*
  for j in $(seq 12); do head -c $((RANDOM * 8)) /dev/urandom > "$work/in/f-$i-$j.bin"; done
  "$pg" publish "$work/repo" --product p$((i % 3)) "$work"/in/* >/dev/null 2>&1 &
  pid=$!
  delay_ms=$((RANDOM % span_ms))
  sleep "$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))"
  kill -9 "$pid" 2>/dev/null || true
  rc=0; wait "$pid" 2>/dev/null || rc=$?
  [[ $rc -eq 137 ]] && killed=$((killed + 1))
  if ! "$pg" verify "$work/repo" > "$work/verify.log" 2>&1; then
    echo "FAIL: after kill -9 in iteration $i, verify reports:"; cat "$work/verify.log"; exit 1
  fi
done
echo "killed $killed of $iterations publishes mid-way (the rest had finished; one publish takes ~$((span_ms * 10 / 12)) ms); verify accepted the repository every time"
[[ $killed -gt 0 ]] || { echo "FAIL: no publish was interrupted; the test proves nothing"; exit 1; }

# A client can use the repository afterwards.
rm -f "$work/port"
python3 "$here/../tools/static_server.py" "$work/repo" --port-file "$work/port" >/dev/null 2>&1 &
server=$!
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
port=$(cat "$work/port")
echo "after the storm" > "$work/final.txt"
"$pg" publish "$work/repo" --product final "$work/final.txt" >/dev/null
"$client" --metadata-dir "$work/c/meta" init "$work/repo/metadata/1.root.json"
"$client" --metadata-dir "$work/c/meta" --metadata-url "http://127.0.0.1:$port/metadata" \
  --target-name final/final.txt --target-base-url "http://127.0.0.1:$port/targets" --target-dir "$work/c/t" download >/dev/null
cmp "$work/c/t/final%2Ffinal.txt" "$work/final.txt"

# Exit codes and messages on bad input; nothing changes.
before=$(cd "$work/repo/metadata" && sha256sum * | sha256sum)
echo "other bytes" > "$work/final.txt"
set +e
"$pg" publish "$work/repo" --product final "$work/final.txt" 2>"$work/err"; rc=$?
set -e
[[ $rc -eq 6 ]] || { echo "FAIL: conflict exit code $rc, want 6"; exit 1; }
grep -q -- "--replace" "$work/err"
set +e
PATCHGATE_PASSPHRASE=wrong "$pg" publish "$work/repo" --product final --replace "$work/final.txt" 2>"$work/err"; rc=$?
set -e
[[ $rc -eq 5 ]] || { echo "FAIL: wrong passphrase exit code $rc, want 5"; cat "$work/err"; exit 1; }
set +e
"$pg" publish "$work/repo" --product final "$work/missing.bin" 2>"$work/err"; rc=$?
set -e
[[ $rc -eq 2 ]] || { echo "FAIL: missing file exit code $rc, want 2"; exit 1; }
after=$(cd "$work/repo/metadata" && sha256sum * | sha256sum)
[[ "$before" == "$after" ]] || { echo "FAIL: a refused publish changed metadata"; exit 1; }
harness_done publish-kill
