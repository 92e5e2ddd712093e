#!/usr/bin/env bash
# Text from outside is data, never a weapon (issue 9, point 2) and a finished download is
# never shown as unfinished (point 6), end to end on a real server and a SQLite store:
#  - a download with a hostile User-Agent (bytes that are not UTF-8, a terminal escape, a
#    spreadsheet formula) is recorded; `downloads` right after it shows "completing", never
#    "in_progress", then "complete";
#  - bytes written into the store by hand (as an older version or another tool could) never
#    break an output: every --json/--csv/--html/table output of downloads, org list, nodes,
#    incident list/show/scope, notify status/call-list exits 0 with valid UTF-8, JSON that
#    parses, CSV whose cells no spreadsheet evaluates, tables without control bytes;
#  - an old record never finished stays "in_progress" (unfinished).
# Usage: text_safety_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup text "$1"
server=
at_exit '[[ -n "$server" ]] && { kill "$server"; wait "$server"; }'
export PATCHGATE_PASSPHRASE=text-test PATCHGATE_STORE="sqlite://$work/store.db"
db="$work/store.db"
"$pg" init "$work/repo" >/dev/null
echo "hello, text" > "$work/setup.exe"
"$pg" publish "$work/repo" --product office "$work/setup.exe" >/dev/null
"$pg" org add Contoso --tier premier --account-manager "Ann Example <ann@vendor.example>" --phone "+1 555 0100" \
  --contact sec@contoso.example >/dev/null
token=$("$pg" user add Contoso alice 2>/dev/null)
"$pg" grant Contoso office >/dev/null
sha=$(sha256sum "$work/setup.exe" | cut -c1-64)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Completions wait up to 8 s in the server's batch: the window a user can run `downloads` in.
"$pg" serve --repo "$work/repo" --listen "127.0.0.1:$port" --node-name edge --audit-finish-ms 8000 \
  >>"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done

# Checks on outputs (python: strict UTF-8, JSON parse, CSV parse, no formula cell, no control byte).
check() {  # check KIND FILE
  python3 - "$1" "$2" <<'PY'
import csv, io, json, sys
kind, path = sys.argv[1], sys.argv[2]
raw = open(path, 'rb').read()
try:
    text = raw.decode('utf-8')  # strict
except UnicodeDecodeError as e:
    sys.exit(f"{path}: not UTF-8: {e}")
if kind == 'json':
    json.loads(text)
elif kind == 'csv':
    rows = list(csv.reader(io.StringIO(text, newline='')))
    if len(rows) < 2: sys.exit(f"{path}: no data rows")
    width = len(rows[0])
    for r in rows:
        if len(r) != width: sys.exit(f"{path}: row of {len(r)} cells, header has {width}: {r}")
        for c in r:
            if c[:1] in ('=', '+', '-', '@', '\t', '\r') or c[:1] in ('\uff1d', '\uff0b', '\uff0d', '\uff20'):
                sys.exit(f"{path}: a spreadsheet would evaluate cell {c!r}")
elif kind in ('table', 'html'):
    bad = [ch for ch in text if (ord(ch) < 0x20 and ch != '\n') or 0x7f <= ord(ch) <= 0x9f or ch in '\u202e\u202d\u2066\u2067\u2068']
    if kind == 'table' and bad: sys.exit(f"{path}: control characters reach the terminal: {bad[:5]!r}")
PY
}
run() {  # run KIND OUTFILE CMD...: exit 0 and a sound output
  local kind=$1 out=$2; shift 2
  set +e; "$@" >"$out" 2>"$work/err"; local rc=$?; set -e
  [[ $rc -eq 0 ]] || { cat "$work/err"; fail "$* -> exit $rc (want 0)"; }
  check "$kind" "$out" || fail "$* printed an unsound $kind output"
}

# 1. A hostile User-Agent, and `downloads` right after the download.
# (control characters are refused by the HTTP parser itself; bytes 0x80-0xFF are obs-text)
ua=$'=HYPERLINK("http://evil.example")\xff\xfe \xe2\x82'
code=$(curl -s -o "$work/got" -w '%{http_code}' -A "$ua" -H "Authorization: Bearer $token" \
  "http://127.0.0.1:$port/targets/office/$sha.setup.exe")
[[ "$code" == 200 ]] || fail "download answered $code"
cmp -s "$work/got" "$work/setup.exe" || fail "downloaded bytes differ"
run json "$work/dl.json" "$pg" downloads --json
run csv "$work/dl.csv" "$pg" downloads --csv
run table "$work/dl.txt" "$pg" downloads
python3 - "$work/dl.json" <<'PY' || fail "downloads --json right after the download"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d) == 1, d
assert d[0]['outcome'] == 'completing', f"a finished download shown as {d[0]['outcome']!r}"
ua = d[0]['user_agent']
assert ua.startswith('=HYPERLINK') and ua.endswith('\\xFF\\xFE \\xE2\\x82'), ua
PY
grep -q "completing" "$work/dl.txt" || fail "table does not say completing: $(cat "$work/dl.txt")"
grep -q "in_progress" "$work/dl.txt" && fail "table shows the finished download as in_progress"
grep -q "'=HYPERLINK" "$work/dl.csv" || fail "CSV User-Agent not neutralised: $(cat "$work/dl.csv")"
echo "ok: right after a download it shows as completing; hostile User-Agent stored escaped, neutralised in CSV"
for _ in $(seq 200); do
  "$pg" downloads --json >"$work/dl.json"
  python3 -c "import json,sys; sys.exit(0 if json.load(open('$work/dl.json'))[0]['outcome']=='complete' else 1)" && break
  sleep 0.1
done
python3 -c "import json; d=json.load(open('$work/dl.json'))[0]; assert d['outcome']=='complete' and d['bytes']==12, d" \
  || fail "the download was not completed: $(cat "$work/dl.json")"
echo "ok: then complete with its bytes"
kill "$server"; wait "$server" 2>/dev/null || true; server=

# 2. Bytes that are not UTF-8 (and control characters) written into the store by hand.
now=$(( $(date +%s) * 1000000 ))
old=$(( now - 7200 * 1000000 ))
sqlite3 "$db" <<SQL
INSERT INTO organisations (name, tier, am_name, am_email, am_phone, contacts, webhook_url, created_at)
  VALUES (CAST(X'4576696CFF1B5B324A' AS TEXT), CAST(X'676F6C64FE' AS TEXT), CAST(X'3D636D647C272F432063616C6327' AS TEXT),
          CAST(X'6140622EC0' AS TEXT), CAST(X'2B31E282' AS TEXT), CAST(X'2D7365634065FF' AS TEXT), '', $now);
INSERT INTO users (org_id, username, token_hash, created_at)
  SELECT id, CAST(X'626F62FF9B' AS TEXT), 'h-bob', $now FROM organisations WHERE tier = CAST(X'676F6C64FE' AS TEXT);
INSERT INTO downloads (started_at, ended_at, node, user_id, username, org_id, target_path, sha256, range_header,
                       bytes_sent, outcome, remote_addr, user_agent, source)
  SELECT $old, NULL, 'edge', u.id, u.username, u.org_id, CAST(X'6F66666963652F40FF2E657865' AS TEXT),
         CAST(X'ABCD' AS TEXT), CAST(X'62797465733D30FF' AS TEXT), 0, 'in_progress', CAST(X'3132372E302E302EFF' AS TEXT),
         CAST(X'2D2D61FF1B5D303B7469746C6507' AS TEXT), 'served' FROM users u WHERE u.token_hash = 'h-bob';
INSERT INTO nodes (name, role, upstream, last_heartbeat, compliance_json, state)
  VALUES (CAST(X'6E6F6465FF' AS TEXT), 'mirror', CAST(X'1B5B33316D' AS TEXT), $now, CAST(X'7B2278223A22FF227D' AS TEXT), 'ok');
SQL
python3 - "$db" <<'PY'  # what sqlite3 stored really is not UTF-8
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.text_factory = bytes
ua = c.execute("SELECT user_agent FROM downloads WHERE username = CAST(X'626F62FF9B' AS TEXT)").fetchone()[0]
assert b'\xff' in ua, ua
PY
from=$(date -u -d "@$(( old / 1000000 - 60 ))" +%Y-%m-%dT%H:%M:%SZ)
to=$(date -u -d "@$(( now / 1000000 + 60 ))" +%Y-%m-%dT%H:%M:%SZ)
id=$("$pg" incident open --node edge --from "$from" --to "$to" --cause $'file infector \xff\x1b[2J')
run json "$work/o1" "$pg" downloads --json
run csv "$work/o2" "$pg" downloads --csv
run table "$work/o3" "$pg" downloads
run json "$work/o4" "$pg" org list --json
run table "$work/o5" "$pg" org list
run json "$work/o6" "$pg" nodes --json
run table "$work/o7" "$pg" nodes
run table "$work/o8" "$pg" incident list
run table "$work/o9" "$pg" incident show "$id"
run json "$work/o10" "$pg" incident scope "$id" --json
run csv "$work/o11" "$pg" incident scope "$id" --csv
run table "$work/o12" "$pg" incident scope "$id"
run table "$work/o13" "$pg" incident scope "$id" --html "$work/report.html"
check html "$work/report.html" || fail "HTML report is not UTF-8"
run csv "$work/o14" "$pg" notify call-list "$id" --older-than 0s --csv
run table "$work/o15" "$pg" notify call-list "$id" --older-than 0s
run table "$work/o16" "$pg" notify status "$id"
# An advisory whose stored texts carry escape sequences and a bidi override (another tool
# wrote them; the CLI refuses such input).
adv=$("$pg" advisory new --product office --title "plain title" --summary "line one" 2>"$work/err") \
  || { cat "$work/err"; fail "advisory new failed"; }
python3 - "$db" "$adv" <<'PY'
import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
data = json.loads(c.execute("SELECT data FROM advisories WHERE id = ?", (sys.argv[2],)).fetchone()[0])
data['title'] = "Evil \x1b[2J\u202e title \x9b"
data['summary'] = "first line\nsecond \x1b]0;pwned\x07 line"
c.execute("UPDATE advisories SET data = ? WHERE id = ?", (json.dumps(data), sys.argv[2])); c.commit()
PY
run table "$work/o17" "$pg" advisory list
run table "$work/o18" "$pg" advisory show "$adv"
grep -q 'Evil \\x1B\[2J\\u{202E} title' "$work/o17" || grep -q 'Evil \\x1B\[2J' "$work/o17" \
  || fail "advisory list does not show the escaped title: $(cat -v "$work/o17")"
grep -q 'second \\x1B\]0;pwned\\x07 line' "$work/o18" || fail "advisory show does not show the escaped summary: $(cat -v "$work/o18")"
python3 - "$work" <<'PY' || fail "outputs lost or mangled the stored text"
import csv, json, sys
w = sys.argv[1]
dl = json.load(open(f"{w}/o1"))
bob = [d for d in dl if d['user'].startswith('bob')][0]
assert bob['user'] == 'bob\\xFF\\x9B' and bob['target'] == 'office/@\\xFF.exe', bob
assert bob['outcome'] == 'in_progress', f"an old unfinished record must stay unfinished: {bob['outcome']}"
orgs = {o['name']: o for o in json.load(open(f"{w}/o4"))}
assert 'Evil\\xFF\x1b[2J' in orgs, list(orgs)
nodes = json.load(open(f"{w}/o6"))
assert any(n['name'] == 'node\\xFF' for n in nodes), nodes
rows = list(csv.DictReader(open(f"{w}/o11", newline='')))
evil = [r for r in rows if r['organisation'].startswith('Evil')][0]
assert evil['account_manager'] == "'=cmd|'/C calc'", evil
calls = list(csv.DictReader(open(f"{w}/o14", newline='')))
evil = [r for r in calls if r['organisation'].startswith('Evil')][0]
assert evil['account_manager'] == "'=cmd|'/C calc'" and evil['phone'].startswith("'+1"), evil
assert evil['contacts'].startswith("'-sec"), evil
PY
grep -q 'in_progress' "$work/o3" || fail "the old unfinished record is not shown as in_progress"
echo "ok: every output survives bytes that are not UTF-8 already in the store; CSV cells neutralised"

# 3. Names and text typed on the command line.
expect_rc() { local want=$1; shift; set +e; "$@" >"$work/out" 2>"$work/err"; local rc=$?; set -e
  [[ $rc -eq $want ]] || { cat "$work/out" "$work/err"; fail "$* -> exit $rc, want $want"; }
  check table "$work/err" || fail "$* printed control characters in its error"; }
expect_rc 2 "$pg" org add $'Bad\xff' --tier gold
expect_rc 2 "$pg" org add $'Bad\x1b[2J' --tier gold
expect_rc 2 "$pg" org add " Padded" --tier gold
expect_rc 2 "$pg" user add Contoso $'mallory\xc0'
expect_rc 2 "$pg" user add Contoso $'mal\nlory'
expect_rc 2 "$pg" grant Contoso "office."
expect_rc 2 "$pg" grant Contoso "../etc"
expect_rc 1 "$pg" user revoke $'ghost\x1b[31m'
grep -q 'ghost\\x1B\[31m' "$work/err" || fail "error message does not show the escaped name: $(cat "$work/err")"
echo "ok: bad names refused (exit 2) with messages that carry no raw control bytes"
mkdir "$work/incoming"
echo "just text" > "$work/incoming/"$'evil\e[2J\xff.txt'
run table "$work/s1" "$pg" scan "$work/incoming"
grep -q 'evil\\x1B\[2J\\xFF.txt' "$work/s1" || fail "scan table does not show the escaped name: $(cat "$work/s1")"
run json "$work/s2" "$pg" scan "$work/incoming" --json
echo "ok: a file name with an escape sequence and a non-UTF-8 byte: scan table escaped, JSON sound"
harness_done text-safety
