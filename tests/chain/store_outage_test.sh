#!/usr/bin/env bash
# A chain whose store goes away: origin -> mirror-1 on PostgreSQL, then the database is
# stopped. Customers of the mirror get 503 (never an unrecorded byte), the mirror keeps its
# snapshot, and once the database is back it serves (recorded) and syncs again.
# Needs PATCHGATE_TEST_PG_URL and PATCHGATE_TEST_PG_DIR (scripts/test.sh sets them); stops
# and restarts that server, so it runs serially.
# Usage: store_outage_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
if [[ -z "${PATCHGATE_TEST_PG_URL:-}" || -z "${PATCHGATE_TEST_PG_DIR:-}" ]]; then
  harness_skip "store outage (PATCHGATE_TEST_PG_URL / PATCHGATE_TEST_PG_DIR not set; scripts/test.sh sets them)"
fi
harness_setup chainout "$1"
at_exit 'bash "$here/../pg/pg.sh" restart-stopped "$PATCHGATE_TEST_PG_DIR" >/dev/null'
unset PATCHGATE_PASSPHRASE PATCHGATE_NODE_TOKEN
fail() { echo "FAIL: $*"; tail -n 5 "$work/m1.log"; tail -n 5 "$work/origin.log"; exit 1; }
cd "$work"
hostport=${PATCHGATE_TEST_PG_URL#postgresql://*@}
hostport=${hostport%%/*}
db="outage_$$_$(date +%s)"
/usr/lib/postgresql/15/bin/createdb -h "${hostport%:*}" -p "${hostport#*:}" -U postgres "$db"
export PATCHGATE_STORE="postgresql://postgres@$hostport/$db"

"$pg" init repo --insecure-plaintext-keys >/dev/null 2>&1
head -c 40000 /dev/urandom > tool.exe
"$pg" publish repo --product office --insecure-plaintext-keys tool.exe >/dev/null 2>&1
"$pg" org add Contoso --tier premier >/dev/null
"$pg" grant Contoso office >/dev/null
token=$("$pg" user add Contoso alice 2>/dev/null)
p0=$(free_port); p1=$(free_port)
t1=$("$pg" node add mirror-1 --upstream "http://127.0.0.1:$p0" 2>/dev/null)
"$pg" serve --repo repo --listen "127.0.0.1:$p0" > origin.log 2>&1 & pids+=($!)
wait_log origin.log listening
"$pg" mirror --upstream "http://127.0.0.1:$p0" --root repo/metadata/1.root.json --data m1 --node-name mirror-1 \
  --listen "127.0.0.1:$p1" --node-token "$t1" > m1.log 2>&1 & pids+=($!)
wait_log m1.log listening
url="http://127.0.0.1:$p1/targets/office/$(sha256sum < tool.exe | cut -c1-64).tool.exe"
code=$(curl -s -o before -w '%{http_code}' -H "Authorization: Bearer $token" "$url")
[[ $code == 200 ]] && cmp -s before tool.exe || fail "before the outage: $code"

bash "$here/../pg/pg.sh" stop "$PATCHGATE_TEST_PG_DIR"
sleep 1.5  # past the token cache
code=$(curl -s -o during -w '%{http_code}' -H "Authorization: Bearer $token" "$url")
head -c 30000 /dev/urandom > tool2.exe  # the origin cannot publish into the store either; the mirror's pulls fail
bash "$here/../pg/pg.sh" restart-stopped "$PATCHGATE_TEST_PG_DIR"
[[ $code == 503 ]] || fail "during the outage the mirror answered $code"
if cmp -s during tool.exe; then fail "the mirror served a byte unrecorded"; fi
# Each store connection learns of the restart on its next use (that request is refused, 503)
# and reconnects: allow a few attempts.
for _ in 1 2 3 4 5 6; do
  sleep 0.5
  code=$(curl -s -o after -w '%{http_code}' -H "Authorization: Bearer $token" "$url")
  [[ $code == 200 ]] && break
done
[[ $code == 200 ]] && cmp -s after tool.exe || fail "after the outage: $code"
n=$("$pg" downloads --node mirror-1 --csv | tail -n +2 | wc -l)
[[ $n -eq 2 ]] || fail "$n download records on mirror-1, want 2 (before and after)"
"$pg" publish repo --product office --insecure-plaintext-keys tool2.exe >/dev/null 2>&1
for _ in $(seq 100); do cmp -s repo/metadata/timestamp.json m1/metadata/timestamp.json && break; sleep 0.05; done
cmp -s repo/metadata/timestamp.json m1/metadata/timestamp.json || fail "the mirror did not sync after the outage"
echo "ok: store stopped -> the mirror answers 503 and serves nothing unrecorded; back -> serves (recorded) and syncs again"
harness_done store-outage
