#!/usr/bin/env bash
# The admin CLI shapes (a contract for scripts outside the project) and their exit codes:
# org add/list, user add/revoke, grant, downloads (table/CSV/JSON, filters), nodes; the README's
# exit codes (2 bad input, 5 unusable store, 6 duplicate); names checked by core/names; a
# download record not finished yet shown as "completing" only while it is fresh.
# Runs on SQLite, and on PostgreSQL too when PATCHGATE_TEST_PG_URL is set.
# Usage: admin_cli_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup admin "$1"

sql() {  # sql STORE_URL STATEMENTS: raw SQL with the engine's own client
  if [[ "$1" == sqlite://* ]]; then sqlite3 "${1#sqlite://}" "$2"; else psql -q "$1" -c "$2" >/dev/null; fi
}

run_suite() {  # run_suite STORE_URL LABEL
  local store=$1 s=$2$RANDOM
  expect_rc 0 "$pg" org add "Contoso$s" --tier premier --account-manager "Ann Example <ann@vendor.example>" \
    --phone "+1 555 0100" --contact sec@contoso.example --contact cso@contoso.example --store "$store"
  expect_rc 6 "$pg" org add "Contoso$s" --tier gold --store "$store"
  grep -q "already exists" "$work/err"
  expect_rc 2 "$pg" org add $'Bad\xff'"$s" --tier gold --store "$store"
  expect_rc 2 "$pg" org add $'Bad\e[2J'"$s" --tier gold --store "$store"
  refute grep -q $'\e' "$work/err"
  expect_rc 2 "$pg" org add "Bad$s " --tier gold --store "$store"
  expect_rc 2 "$pg" org add "$(printf 'o%.0s' $(seq 201))" --tier gold --store "$store"
  expect_rc 2 "$pg" org add "Bad$s" --tier gold --phone $'+1\a' --store "$store"
  expect_rc 2 "$pg" org add "Bad$s" --tier platinum --store "$store"
  expect_rc 2 "$pg" org add "Bad$s" --tier gold --account-manager "no address" --store "$store"
  expect_rc 2 "$pg" org add "Bad$s" --tier gold --contact not-an-email --store "$store"
  expect_rc 0 "$pg" org list --json --store "$store"
  python3 -c "import json,sys; d=json.load(open('$work/out')); o=[x for x in d if x['name']=='Contoso$s'][0]; assert o['account_manager_email']=='ann@vendor.example' and len(o['contacts'])==2, o"
  expect_rc 0 "$pg" user add "Contoso$s" "alice$s" --store "$store"
  token=$(cat "$work/out")
  [[ "$token" =~ ^pgt_[0-9a-f]{48}$ ]] || { echo "FAIL: token '$token'"; exit 1; }
  refute grep -q "$token" "$work/err"
  expect_rc 1 "$pg" user add "Nowhere$s" "bob$s" --store "$store"
  expect_rc 6 "$pg" user add "Contoso$s" "alice$s" --store "$store"
  grep -q "already exists" "$work/err"
  expect_rc 2 "$pg" user add "Contoso$s" "bob $s" --store "$store"
  expect_rc 2 "$pg" user add "Contoso$s" "bob:$s" --store "$store"
  expect_rc 2 "$pg" user add "Contoso$s" $'bob\xc3'"$s" --store "$store"
  expect_rc 0 "$pg" grant "Contoso$s" office --store "$store"
  expect_rc 0 "$pg" grant "Contoso$s" office --store "$store"
  expect_rc 1 "$pg" grant "Nowhere$s" office --store "$store"
  for bad in "office." ".." "_x" "a/b" "of fice" "caf"$'\xc3\xa9' "$(printf 'p%.0s' $(seq 65))"; do
    expect_rc 2 "$pg" grant "Contoso$s" "$bad" --store "$store"
    grep -q "can never be published" "$work/err"
  done
  expect_rc 0 "$pg" user revoke "alice$s" --store "$store"
  expect_rc 1 "$pg" user revoke "ghost$s" --store "$store"
  expect_rc 0 "$pg" downloads --org "Contoso$s" --store "$store"
  grep -q "0 download(s)" "$work/out"
  expect_rc 0 "$pg" downloads --since 2026-01-01T00:00:00Z --until 2026-01-02T00:00:00+02:00 --csv --store "$store"
  head -1 "$work/out" | grep -q "^id,started_at,ended_at,node,user,organisation,target,sha256"
  expect_rc 0 "$pg" downloads --json --user "alice$s" --store "$store"
  python3 -c "import json; assert json.load(open('$work/out')) == []"
  expect_rc 2 "$pg" downloads --since yesterday --store "$store"
  expect_rc 2 "$pg" downloads --csv --json --store "$store"
  expect_rc 0 "$pg" nodes --store "$store"
  expect_rc 0 "$pg" nodes --json --store "$store"
  # A served record not finished yet: "completing" while fresh, "in_progress" once old.
  local now=$(( $(date +%s) * 1000000 )) node="edge$s"
  sql "$store" "INSERT INTO downloads (started_at, node, user_id, username, org_id, target_path, outcome, source)
    SELECT $now, '$node', id, username, org_id, 'office/new.exe', 'in_progress', 'served' FROM users WHERE username = 'alice$s';
    INSERT INTO downloads (started_at, node, user_id, username, org_id, target_path, outcome, source)
    SELECT $(( now - 3600 * 1000000 )), '$node', id, username, org_id, 'office/old.exe', 'in_progress', 'served'
    FROM users WHERE username = 'alice$s';"
  expect_rc 0 "$pg" downloads --node "$node" --json --store "$store"
  python3 -c "import json; d={x['target']: x['outcome'] for x in json.load(open('$work/out'))}; assert d == {'office/new.exe': 'completing', 'office/old.exe': 'in_progress'}, d"
  expect_rc 0 "$pg" downloads --node "$node" --csv --store "$store"
  grep -q "office/new.exe,.*,completing," "$work/out"
  grep -q "office/old.exe,.*,in_progress," "$work/out"
  expect_rc 0 "$pg" downloads --node "$node" --store "$store"
  grep -q "1 completing: started under 60 s ago" "$work/out"
  ok "admin CLI on $2"
}

run_suite "sqlite://$work/store.db" sqlite
expect_rc 2 "$pg" org list --store "mysql://nowhere"
expect_rc 5 "$pg" org list --store "sqlite:///nonexistent-dir/x/y.db"
expect_rc 5 "$pg" org list --store "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
grep -q "cannot reach PostgreSQL" "$work/err"
echo "this is a text file, not a database" > "$work/notadb.db"
expect_rc 5 "$pg" org list --store "sqlite://$work/notadb.db"
grep -q "not an SQLite database" "$work/err"
cmp -s "$work/notadb.db" <(echo "this is a text file, not a database") || { echo "FAIL: the file was changed"; exit 1; }
ok "unusable stores exit 2 (bad URL) or 5 (unreachable, not a database) with a message"
if [[ -n "${PATCHGATE_TEST_PG_URL:-}" ]]; then
  run_suite "$PATCHGATE_TEST_PG_URL" postgresql
else
  echo "SKIP: PostgreSQL run (PATCHGATE_TEST_PG_URL not set; scripts/test.sh sets it)"
fi
harness_done admin-cli
