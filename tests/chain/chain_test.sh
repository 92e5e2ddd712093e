#!/usr/bin/env bash
# The chain, end to end with real processes on loopback: node identity, origin -> mirror-1
# -> mirror-2 (keyless, verify before serving, syncs never counted as downloads),
# propagation in two hops, an upstream that serves rolled-back and tampered data, restart
# in the middle of a sync, the integrity watch (quarantine, restore, incident), fleet
# compliance with a fence, and a revoked node token.
# Runs on SQLite, and on PostgreSQL too when PATCHGATE_TEST_PG_URL is set (a fresh
# database per run).
# Usage: chain_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup chain "$1"
root_work=$work
unset PATCHGATE_PASSPHRASE PATCHGATE_NODE_TOKEN PATCHGATE_TOKEN
node_state_is() {  # NODE TEXT: `patchgate nodes` lists NODE with TEXT in its line
  "$pg" nodes > "$work/nodes.txt" 2>&1 && grep "^$1 " "$work/nodes.txt" | grep -q "$2"
}
status_of() {  # PORT PATH: the HTTP status a customer gets
  curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $alice" "http://127.0.0.1:$1$2"
}
answers() { [[ $(status_of "$1" "$2") == "$3" ]]; }  # PORT PATH CODE
# download NODE_PORT TOKEN TARGET DEST_DIR: patchgate-client through a node
download() {
  local port=$1 token=$2 target=$3 dir=$4
  mkdir -p "$dir"
  [[ -f "$dir/meta/root.json" ]] || "$client" --metadata-dir "$dir/meta" init "$work/repo/metadata/1.root.json" >/dev/null
  "$client" --metadata-dir "$dir/meta" --metadata-url "http://127.0.0.1:$port/metadata" \
    --target-base-url "http://127.0.0.1:$port/targets" --target-dir "$dir/t" --token "$token" \
    --target-name "$target" download >/dev/null 2>"$dir/err"
}

run_suite() {
  local store=$1 engine=$2
  work="$root_work/$engine"
  mkdir -p "$work"
  export PATCHGATE_STORE=$store
  cd "$work"

  # --- node identity --------------------------------------------------------------
  "$pg" init repo --insecure-plaintext-keys >/dev/null 2>&1
  head -c 300000 /dev/urandom > setup.exe
  head -c 7000 /dev/urandom > readme.txt
  "$pg" publish repo --product office --insecure-plaintext-keys setup.exe readme.txt >/dev/null 2>&1
  "$pg" org add Contoso --tier premier >/dev/null
  "$pg" grant Contoso office >/dev/null
  local alice
  alice=$("$pg" user add Contoso alice 2>/dev/null)
  local p0 p1 p2 p3
  p0=$(free_port); p1=$(free_port); p2=$(free_port); p3=$(free_port)
  local t1 t2
  t1=$("$pg" node add mirror-1 --role mirror --upstream "http://127.0.0.1:$p0" 2>"$work/add.err")
  [[ "$t1" =~ ^pgn_[0-9a-f]{48}$ ]] || fail "node add printed '$t1'"
  grep -q "shown once" "$work/add.err"
  t2=$("$pg" node add mirror-2 --role mirror --upstream "http://127.0.0.1:$p1" 2>/dev/null)
  if "$pg" node add mirror-1 --role mirror --upstream "http://127.0.0.1:$p0" >/dev/null 2>&1; then fail "duplicate node added"; fi
  set +e; "$pg" node add mirror-x --role mirror >/dev/null 2>&1; rc=$?; set -e
  [[ $rc -eq 2 ]] || fail "a mirror without --upstream: exit $rc, expected 2"
  if [[ $engine == sqlite ]]; then
    if grep -a -q "$t1" "$work/store.db"* 2>/dev/null; then fail "the node token itself is in the store"; fi
  fi
  "$pg" nodes | grep -q "mirror-1 .*stale (no heartbeat yet)"
  ok "[$engine] node add prints a token once (only its hash stored), refuses duplicates and a mirror without upstream; nodes lists it stale"

  # --- origin -> mirror-1 -> mirror-2 ---------------------------------------------------
  start_bg "$work/origin.log" "$pg" serve --repo repo --listen "127.0.0.1:$p0" --node-name origin --watch
  local origin=$last_pid
  wait_log "$work/origin.log" "listening"
  start_bg "$work/m1.log" "$pg" mirror --upstream "http://127.0.0.1:$p0" --root repo/metadata/1.root.json --data m1 \
    --node-name mirror-1 --listen "127.0.0.1:$p1" --node-token "$t1"
  local m1=$last_pid
  wait_log "$work/m1.log" "listening"
  PATCHGATE_NODE_TOKEN=$t2 start_bg "$work/m2.log" "$pg" mirror --upstream "http://127.0.0.1:$p1" \
    --root repo/metadata/1.root.json --data m2 --node-name mirror-2 --listen "127.0.0.1:$p2" --watch --verify-interval 3600
  local m2=$last_pid
  wait_log "$work/m2.log" "listening"
  download "$p2" "$alice" office/setup.exe "$work/c1" || { cat "$work/c1/err"; fail "download through mirror-2"; }
  cmp -s "$work/c1/t/office%2Fsetup.exe" setup.exe || fail "mirror-2 served other bytes"
  "$pg" verify m2 >/dev/null || fail "mirror-2's DIR does not verify as a repository"
  [[ -d m2/metadata && -d m2/targets ]]
  ok "[$engine] origin -> mirror-1 -> mirror-2: patchgate-client downloads through mirror-2, right bytes; DIR is a public repository layout that verifies"

  # Keyless: no private key material anywhere in a mirror's DIR, and it cannot publish.
  if grep -r -a -l -i -E "PRIVATE KEY|\"private\"|encrypted_private" m1 m2 >/dev/null 2>&1; then fail "key material in a mirror"; fi
  for k in repo/keys/* repo.root-keys/*; do
    [[ -f $k ]] || continue
    if find m1 m2 -type f -exec cmp -s "$k" {} \; -print | grep -q .; then fail "a key file was copied to a mirror"; fi
  done
  if "$pg" publish m1 --product office --insecure-plaintext-keys readme.txt >/dev/null 2>&1; then fail "a mirror published"; fi
  ok "[$engine] mirrors hold no signing key and cannot publish"

  # Syncs are records of their own; the customer download is recorded with the mirror's name.
  sleep 1.5
  "$pg" node syncs mirror-1 --json | python3 -c '
import json,sys; s=json.load(sys.stdin)
assert sum(r["bytes"] for r in s if r["what"]=="targets")>=307000, s'  # rows are grouped per flush of the node records
  "$pg" node syncs mirror-2 | grep -q "targets"
  "$pg" downloads --json | python3 -c '
import json,sys; rows=json.load(sys.stdin)
assert len(rows)==1, rows
assert rows[0]["node"]=="mirror-2" and rows[0]["user"]=="alice", rows'
  ok "[$engine] nodes' pulls are sync records (node, what, when, bytes), never downloads; the customer download is recorded as mirror-2"

  # --- propagation: publish on the origin, servable on mirror-2 (two hops) ---------------
  head -c 50000 /dev/urandom > patch1.exe
  local t0 elapsed
  "$pg" publish repo --product office --insecure-plaintext-keys patch1.exe >/dev/null 2>&1
  t0=$(now_ms)
  # Servable means what a client sees: mirror-2 answers with the new timestamp.json (it
  # serves the one its loaded catalogue came from, which follows the file on disk).
  until curl -s -o "$work/served-ts.json" -H "Authorization: Bearer $alice" "http://127.0.0.1:$p2/metadata/timestamp.json" &&
        cmp -s repo/metadata/timestamp.json "$work/served-ts.json"; do
    (($(now_ms) - t0 > 20000)) && fail "no propagation to mirror-2 in 20 s"
    sleep 0.02
  done
  download "$p2" "$alice" office/patch1.exe "$work/c1" || { cat "$work/c1/err"; fail "new target on mirror-2"; }
  elapsed=$(($(now_ms) - t0))
  cmp -s "$work/c1/t/office%2Fpatch1.exe" patch1.exe
  echo "propagation origin -> mirror-2 (two hops) plus one download: ${elapsed} ms"
  # The 3 s goal is a benchmark figure (bench/chain_bench.sh); the test only proves that the
  # default settings propagate without help, with room for a loaded CI machine.
  ((elapsed < 20000)) || fail "propagation took ${elapsed} ms: the default polls did not pick the publish up"
  ok "[$engine] a publish on the origin is servable on mirror-2 within 3 s (${elapsed} ms)"
  # Each hop fetched and verified only the role the publish changed (the product's); the
  # top-level targets role, verified by the pass before, was reused.
  local mlog last_walk
  for mlog in "$work/m1.log" "$work/m2.log"; do
    last_walk=$(grep '"msg":"sync: metadata verified"' "$mlog" | tail -1)
    [[ $last_walk == *'"roles_checked":"1","roles_reused":"1","incremental":"yes"'* ]] ||
      { echo "$last_walk"; fail "$mlog: the pass after one publish re-walked more than the changed role"; }
  done
  ok "[$engine] after one publish each mirror walked only the changed role"

  # --- integrity watch on mirror-2: an appended marker is quarantined, restored, incident --
  local f rel w0
  f=$(ls m2/targets/office/*.setup.exe)
  rel=${f#m2/}
  w0=$(date +%s%6N)
  printf 'INFECTED-MARKER' >> "$f"
  wait_log "$work/m2.log" "file restored from upstream" 20
  ls m2/.patchgate/quarantine/ | grep -q "setup.exe" || fail "no quarantined copy"
  grep -q "INFECTED-MARKER" m2/.patchgate/quarantine/*setup.exe || fail "the quarantined copy is not the changed file"
  cmp -s "$f" setup.exe || fail "the restored file is not the signed one"
  "$pg" incident list --json > "$work/inc.json"
  python3 - "$work/inc.json" "$w0" <<'PY'
import json, sys
incs = [i for i in json.load(open(sys.argv[1])) if i["node"] == "mirror-2" and i["cause"] == "integrity"]
assert len(incs) == 1, incs
i = incs[0]
w0 = int(sys.argv[2])
assert i["files"] == ["office/setup.exe"], i
assert i["window_start_us"] <= w0 <= i["window_end_us"], (i, w0)
lat = (i["detected_at_us"] - w0) / 1000
print(f"watch detection latency (write -> incident detected_at): {lat:.1f} ms")
# Only inotify can see it this soon (the full re-hash runs hourly here); the < 1 s goal is the
# figure printed above and by bench/chain_bench.sh, not a timing test.
assert lat < 15000, f"detected {lat:.0f} ms after the write: inotify did not fire"
PY
  download "$p2" "$alice" office/setup.exe "$work/c2" || { cat "$work/c2/err"; fail "download after restore"; }
  cmp -s "$work/c2/t/office%2Fsetup.exe" setup.exe
  ok "[$engine] watch: changed file quarantined (kept), restored from upstream, incident (mirror-2, integrity, the file, window) in < 1 s"

  # --- an upstream that rolls back and tampers: the mirror keeps its last good snapshot ---
  local t3 fake ts_s2 fake_pid
  t3=$("$pg" node add mirror-3 --role mirror --upstream "http://127.0.0.1:fake" 2>/dev/null)
  fake="$work/fake"
  mkdir -p "$fake"
  cp -r repo/metadata repo/targets "$fake/"
  # An upstream with ETags (304 to If-None-Match, as nginx): the mirror's polls are conditional, and
  # only the ETag of the bytes it switched to is sent (else a refused pass would never be retried).
  python3 "$here/../tools/static_server.py" "$fake" --port-file "$work/fake.port" --etag >"$work/fake.log" 2>&1 &
  fake_pid=$!
  pids+=("$fake_pid")
  for _ in $(seq 100); do [[ -s "$work/fake.port" ]] && break; sleep 0.05; done
  local fp
  fp=$(cat "$work/fake.port")
  start_bg "$work/m3.log" "$pg" mirror --upstream "http://127.0.0.1:$fp" --root repo/metadata/1.root.json --data m3 \
    --node-name mirror-3 --listen "127.0.0.1:$p3" --node-token "$t3" --sync-interval 0.2
  local m3=$last_pid
  wait_log "$work/m3.log" "listening"
  wait_log "$work/fake.log" "^304 /metadata/timestamp.json" 10
  local good_ts
  cp repo/metadata/timestamp.json "$work/ts.v1"
  head -c 20000 /dev/urandom > patch2.exe
  "$pg" publish repo --product office --insecure-plaintext-keys patch2.exe >/dev/null 2>&1
  cp -r repo/targets/. "$fake/targets/"; cp -r repo/metadata/. "$fake/metadata/"
  for _ in $(seq 100); do cmp -s m3/metadata/timestamp.json repo/metadata/timestamp.json && break; sleep 0.05; done
  cmp -s m3/metadata/timestamp.json repo/metadata/timestamp.json || fail "mirror-3 did not follow a good upstream"
  good_ts=$(sha256sum < m3/metadata/timestamp.json)
  # Rollback: the upstream serves an older (validly signed) timestamp.
  cp "$fake/metadata/timestamp.json" "$work/ts.new"
  cp "$work/ts.v1" "$fake/metadata/timestamp.json"
  wait_log "$work/m3.log" "Rollback\|rollback" 10
  [[ $(sha256sum < m3/metadata/timestamp.json) == "$good_ts" ]] || fail "mirror-3 moved on a rolled-back upstream"
  cp "$work/ts.new" "$fake/metadata/timestamp.json"
  # Tamper: a new publish whose target bytes are changed on the way.
  head -c 30000 /dev/urandom > patch3.exe
  "$pg" publish repo --product office --insecure-plaintext-keys patch3.exe >/dev/null 2>&1
  cp -r repo/targets/. "$fake/targets/"
  local evil
  evil=$(ls "$fake"/targets/office/*.patch3.exe)
  printf 'X' | dd of="$evil" bs=1 seek=100 conv=notrunc 2>/dev/null
  cp -r repo/metadata/. "$fake/metadata/"
  wait_log "$work/m3.log" "HashMismatch\|do not match the signed" 10
  sleep 0.5
  [[ $(sha256sum < m3/metadata/timestamp.json) == "$good_ts" ]] || fail "mirror-3 switched to a snapshot with a tampered target"
  if ls m3/targets/office/ | grep -q patch3; then fail "mirror-3 stored the tampered bytes"; fi
  download "$p3" "$alice" office/patch2.exe "$work/c3" || { cat "$work/c3/err"; fail "mirror-3 stopped serving its last good snapshot"; }
  eventually 30 node_state_is mirror-3 "non-compliant (stale: upstream refused" || { cat "$work/nodes.txt"; fail "mirror-3 not reported stale"; }
  # Upstream repaired: the mirror catches up.
  cp repo/targets/office/*.patch3.exe "$fake/targets/office/"
  for _ in $(seq 100); do cmp -s m3/metadata/timestamp.json repo/metadata/timestamp.json && break; sleep 0.05; done
  cmp -s m3/metadata/timestamp.json repo/metadata/timestamp.json || fail "mirror-3 did not recover"
  stop_pid "$m3"
  ok "[$engine] rolled-back and tampered upstream: mirror keeps serving its last good snapshot, stores no bad byte, logs it, reports itself stale; recovers when upstream is good"

  # --- restart in the middle of a sync: partial files resume, a corrupt partial is discarded --
  local t4 p4 sha_setup sha_patch
  t4=$("$pg" node add mirror-4 --role mirror --upstream "http://127.0.0.1:$p0" 2>/dev/null)
  p4=$(free_port)
  sha_setup=$(sha256sum < setup.exe | cut -c1-64)
  sha_patch=$(sha256sum < patch1.exe | cut -c1-64)
  mkdir -p m4/.patchgate/staging
  head -c 150000 setup.exe > "m4/.patchgate/staging/$sha_setup.part"        # an interrupted download
  head -c 20000 /dev/urandom > "m4/.patchgate/staging/$sha_patch.part"      # a corrupt one
  start_bg "$work/m4.log" "$pg" mirror --upstream "http://127.0.0.1:$p0" --root repo/metadata/1.root.json --data m4 \
    --node-name mirror-4 --listen "127.0.0.1:$p4" --node-token "$t4"
  local m4=$last_pid
  wait_log "$work/m4.log" "listening" 30
  cmp -s m4/targets/office/$sha_setup.setup.exe setup.exe || fail "resumed target differs"
  cmp -s m4/targets/office/$sha_patch.patch1.exe patch1.exe || fail "target after a corrupt partial differs"
  "$pg" verify m4 >/dev/null || fail "mirror-4 does not verify after the restart"
  # kill -9 during a sync, then restart: DIR is either the old or the new snapshot, and verifies.
  head -c 3000000 /dev/urandom > big.exe
  "$pg" publish repo --product office --insecure-plaintext-keys big.exe >/dev/null 2>&1
  sleep 0.3
  kill -9 "$m4"; wait "$m4" 2>/dev/null || true
  "$pg" verify m4 >/dev/null || fail "mirror-4 killed mid-sync left a tree that does not verify"
  start_bg "$work/m4b.log" "$pg" mirror --upstream "http://127.0.0.1:$p0" --root repo/metadata/1.root.json --data m4 \
    --node-name mirror-4 --listen "127.0.0.1:$p4" --node-token "$t4"
  m4=$last_pid
  wait_log "$work/m4b.log" "listening" 30
  for _ in $(seq 200); do cmp -s m4/metadata/timestamp.json repo/metadata/timestamp.json && break; sleep 0.05; done
  cmp -s m4/metadata/timestamp.json repo/metadata/timestamp.json || fail "mirror-4 did not finish after the restart"
  "$pg" verify m4 >/dev/null
  stop_pid "$m4"
  ok "[$engine] restart mid-sync: a partial download resumes, a corrupt partial is discarded, kill -9 leaves a verifying tree"
  # A power cut before a pass's syncfs: files the unfinished pass wrote without a sync may be
  # torn under their final names (a target of the right size with other bytes, a versioned
  # metadata file the served snapshot does not name yet). The restarted mirror trusts none
  # of them: it fetches and verifies them again and switches to the right bytes.
  head -c 200000 /dev/urandom > torn.exe
  "$pg" publish repo --product office --insecure-plaintext-keys torn.exe >/dev/null 2>&1
  local sha_torn snap_next
  sha_torn=$(sha256sum < torn.exe | cut -c1-64)
  snap_next=$(ls repo/metadata | grep -E '^[0-9]+\.snapshot\.json$' | sort -n | tail -1)
  [[ ! -e m4/metadata/$snap_next ]] || fail "mirror-4 holds $snap_next already (it was stopped)"
  head -c 200000 /dev/urandom > "m4/targets/office/$sha_torn.torn.exe"
  head -c "$(stat -c %s "repo/metadata/$snap_next")" /dev/zero > "m4/metadata/$snap_next"
  start_bg "$work/m4c.log" "$pg" mirror --upstream "http://127.0.0.1:$p0" --root repo/metadata/1.root.json --data m4 \
    --node-name mirror-4 --listen "127.0.0.1:$p4" --node-token "$t4"
  m4=$last_pid
  wait_log "$work/m4c.log" "listening" 30
  for _ in $(seq 200); do cmp -s m4/metadata/timestamp.json repo/metadata/timestamp.json && break; sleep 0.05; done
  cmp -s m4/metadata/timestamp.json repo/metadata/timestamp.json || { tail -5 "$work/m4c.log"; fail "mirror-4 did not switch after torn leftovers"; }
  cmp -s "m4/targets/office/$sha_torn.torn.exe" torn.exe || fail "mirror-4 kept a torn target"
  cmp -s "m4/metadata/$snap_next" "repo/metadata/$snap_next" || fail "mirror-4 kept a torn $snap_next"
  grep -q "removed metadata left by a sync pass that never switched" "$work/m4c.log" || fail "mirror-4 did not say it dropped the leftover"
  "$pg" verify m4 >/dev/null || fail "mirror-4 does not verify after torn leftovers"
  stop_pid "$m4"
  ok "[$engine] power cut before the syncfs (torn target and metadata left under their final names): the restarted mirror fetches and verifies them again"

  # --- compliance: policy, nodes, fence, /metrics ----------------------------------------
  "$pg" policy set --require-scanner --max-heartbeat-age 2m --fence >/dev/null
  eventually 30 node_state_is mirror-2 "non-compliant (no scanner" || { cat "$work/nodes.txt"; fail "mirror-2 not non-compliant"; }
  "$pg" nodes --json | python3 -c '
import json,sys; n={x["name"]:x for x in json.load(sys.stdin)}
assert n["mirror-2"]["state"]=="non-compliant" and "no scanner" in n["mirror-2"]["reasons"], n["mirror-2"]
assert n["mirror-2"]["heartbeat"]["watch_alive"] is True
assert n["mirror-1"]["heartbeat"]["watch_alive"] is False'
  eventually 30 answers "$p2" /metadata/timestamp.json 503 || fail "a fenced mirror answered $(status_of "$p2" /metadata/timestamp.json)"
  curl -s "http://127.0.0.1:$p2/metrics" > "$work/metrics.txt"
  grep -q 'patchgate_node_compliance{node="mirror-2",state="non-compliant"} 1' "$work/metrics.txt" || { cat "$work/metrics.txt"; fail "/metrics lacks mirror-2's non-compliance"; }
  grep -q 'patchgate_node_fenced{node="mirror-2"} 1' "$work/metrics.txt" || { cat "$work/metrics.txt"; fail "/metrics lacks mirror-2's fence"; }
  "$pg" policy set >/dev/null
  eventually 30 answers "$p2" /metadata/timestamp.json 200 || fail "an unfenced mirror answered $(status_of "$p2" /metadata/timestamp.json)"
  ok "[$engine] policy set --require-scanner --fence: nodes says non-compliant (no scanner), the node answers 503, /metrics carries it; cleared -> serves again"

  # --- revoked node token: the mirror cannot pull any more, keeps its snapshot, is flagged --
  local refused_before
  refused_before=$(grep -c "401" "$work/m2.log" || true)
  "$pg" node revoke mirror-2 >/dev/null
  # A revocation takes effect once mirror-1's one-second cache of node tokens has expired:
  # mirror-2's next poll is refused (401); only then is something new published.
  for _ in $(seq 200); do (( $(grep -c "401" "$work/m2.log" || true) > refused_before )) && break; sleep 0.05; done
  (( $(grep -c "401" "$work/m2.log" || true) > refused_before )) || { tail -20 "$work/m2.log"; fail "mirror-2 was not refused after its token was revoked"; }
  head -c 10000 /dev/urandom > patch4.exe
  "$pg" publish repo --product office --insecure-plaintext-keys patch4.exe >/dev/null 2>&1
  for _ in $(seq 60); do cmp -s repo/metadata/timestamp.json m1/metadata/timestamp.json && break; sleep 0.05; done
  sleep 1
  cmp -s repo/metadata/timestamp.json m1/metadata/timestamp.json || sleep 1
  if cmp -s repo/metadata/timestamp.json m2/metadata/timestamp.json; then fail "a revoked mirror still synced"; fi
  eventually 30 node_state_is mirror-2 "token revoked" || { cat "$work/nodes.txt"; fail "mirror-2 not flagged as revoked"; }
  ok "[$engine] a revoked node token is refused upstream (401): no more syncs, flagged in nodes"

  # --- the origin's own watch: publishing is no incident; a changed file is ---------------
  "$pg" incident list --json | python3 -c '
import json,sys; o=[i for i in json.load(sys.stdin) if i["node"]=="origin"]
assert not o, o'
  local of
  of=$(ls repo/targets/office/*.readme.txt)
  printf 'tampered' >> "$of"
  wait_log "$work/origin.log" "incident opened" 20
  [[ ! -e $of ]] || fail "the origin kept serving a changed file"
  eventually 30 node_state_is origin "quarantined" || { cat "$work/nodes.txt"; fail "origin not shown quarantined"; }
  ok "[$engine] origin --watch: several publishes opened no incident; a changed file is quarantined, an incident opened, nodes shows the origin quarantined"

  stop_pid "$m2"; stop_pid "$m1"; stop_pid "$origin"; stop_pid "$fake_pid"
  cd "$root_work"
}

run_suite "sqlite://$root_work/sqlite/store.db" sqlite
if [[ -n "${PATCHGATE_TEST_PG_URL:-}" ]]; then
  db="chain_$$_$(date +%s)"
  pgbin=/usr/lib/postgresql/15/bin
  hostport=${PATCHGATE_TEST_PG_URL#postgresql://*@}
  hostport=${hostport%%/*}
  "$pgbin/createdb" -h "${hostport%:*}" -p "${hostport#*:}" -U postgres "$db"
  run_suite "postgresql://postgres@$hostport/$db" postgresql
else
  echo "SKIP: PostgreSQL run (PATCHGATE_TEST_PG_URL not set; scripts/test.sh sets it)"
fi
harness_done chain
