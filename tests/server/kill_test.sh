#!/usr/bin/env bash
# kill -9 of `patchgate serve` in the middle of many downloads, then restart: every
# download whose first byte reached a client is on the record. Then SIGTERM drains
# in-flight downloads and completes their records.
# Usage: kill_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup servekill "$1"
server=
clients=()  # the curl processes this script started, by id
at_exit '[[ -n "$server" ]] && kill -9 "$server"; for c in "${clients[@]}"; do kill "$c"; done'
export PATCHGATE_PASSPHRASE=kill-test PATCHGATE_STORE="sqlite://$work/store.db"
"$pg" init "$work/repo" >/dev/null
head -c $((8 * 1024 * 1024)) /dev/urandom > "$work/big.bin"
"$pg" publish "$work/repo" --product office "$work/big.bin" >/dev/null
"$pg" org add Contoso --tier premier >/dev/null
token=$("$pg" user add Contoso alice 2>/dev/null)
"$pg" grant Contoso office >/dev/null
sha=$(sha256sum "$work/big.bin" | cut -c1-64)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_server() {
  "$pg" serve --repo "$work/repo" --listen "127.0.0.1:$port" --node-name edge >>"$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server did not start"; cat "$work/serve.log"; exit 1
}
start_server
n=24
for i in $(seq $n); do
  curl -s -o "$work/dl-$i" --limit-rate 2M -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/targets/office/$sha.big.bin" &
  clients+=($!)
done
sleep 1.5
kill -9 "$server"
wait "$server" 2>/dev/null || true
server=
sleep 0.3
received=0
for i in $(seq $n); do [[ -s "$work/dl-$i" ]] && received=$((received + 1)); done
start_server
records=$("$pg" downloads --node edge --csv | tail -n +2 | wc -l)
echo "clients that received bytes before kill -9: $received; download records: $records"
[[ $received -gt 0 ]] || { echo "FAIL: no download was in flight at the kill"; exit 1; }
[[ $records -ge $received ]] || { echo "FAIL: $((received - records)) downloads sent bytes without a record"; exit 1; }

# SIGTERM drains: in-flight downloads finish and their records are completed.
for i in $(seq 4); do
  curl -s -o "$work/drain-$i" --limit-rate 16M -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/targets/office/$sha.big.bin" &
  clients+=($!)
done
for _ in $(seq 100); do  # until every client is receiving
  n=0; for i in $(seq 4); do [[ -s "$work/drain-$i" ]] && n=$((n + 1)); done
  [[ $n -eq 4 ]] && break; sleep 0.02
done
kill -TERM "$server"
wait "$server" 2>/dev/null || true
server=
wait
for i in $(seq 4); do cmp -s "$work/drain-$i" "$work/big.bin" || { echo "FAIL: drain-$i incomplete"; exit 1; }; done
complete=$("$pg" downloads --node edge --csv | grep -c ',complete,' || true)
[[ $complete -ge 4 ]] || { echo "FAIL: drained downloads not completed in the record ($complete)"; exit 1; }

# SIGTERM with downloads that cannot finish within --drain-seconds: new connections are
# refused at once, and every cut download is completed in the record as aborted with the
# bytes really sent (never left in_progress with 0 bytes). The file is larger than what
# loopback socket buffers absorb, so slow clients really are mid-transfer at the cut.
head -c $((48 * 1024 * 1024)) /dev/urandom > "$work/huge.bin"
"$pg" publish "$work/repo" --product office "$work/huge.bin" >/dev/null
huge_sha=$(sha256sum "$work/huge.bin" | cut -c1-64)
"$pg" serve --repo "$work/repo" --listen "127.0.0.1:$port" --node-name cut --drain-seconds 1 \
  --audit-finish-ms 0 >>"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
for i in $(seq 3); do
  curl -s -o "$work/cut-$i" --limit-rate 1M -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/targets/office/$huge_sha.huge.bin" &
  clients+=($!)
done
for _ in $(seq 200); do  # until every client is receiving
  n=0; for i in $(seq 3); do [[ -s "$work/cut-$i" ]] && n=$((n + 1)); done
  [[ $n -eq 3 ]] && break; sleep 0.02
done
kill -TERM "$server"
sleep 0.3
t0=$(date +%s%N)
code=0
curl -s -o /dev/null --max-time 3 "http://127.0.0.1:$port/healthz" || code=$?
t1=$(date +%s%N)
[[ $code -eq 7 ]] || { echo "FAIL: a new connection during the drain was not refused (curl exit $code)"; exit 1; }
echo "a new connection during the drain was refused in $(( (t1 - t0) / 1000000 )) ms"
wait "$server" 2>/dev/null || true
server=
wait
"$pg" downloads --node cut --json > "$work/cut.json"
python3 - "$work/cut.json" "$work" <<'PY' || exit 1
import json, os, sys
rows = json.load(open(sys.argv[1]))
got = sorted(os.path.getsize(os.path.join(sys.argv[2], f"cut-{i}")) for i in range(1, 4))
bad = [r for r in rows if r["outcome"] != "aborted" or r["bytes"] == 0 or r["ended_at"] == ""]
if len(rows) != 3 or bad:
    print("FAIL: cut downloads not completed as aborted with their bytes:", rows); sys.exit(1)
sent = sorted(r["bytes"] for r in rows)
# Each record counts the bytes handed to the kernel: at least what its client received
# (a cut connection may lose what was still in flight), and less than the whole file.
size = 48 * 1024 * 1024
if any(s < g or s >= size for s, g in zip(sent, got)):
    print("FAIL: bytes in the record", sent, "vs bytes received", got); sys.exit(1)
print("ok: drain cut 3 downloads, recorded as aborted with", sent, "bytes")
PY
harness_done serve-kill
