#!/usr/bin/env bash
# Incident response from the command line, as an operator would run it:
# import-log of an nginx node -> incident open -> scope (table/CSV/JSON/HTML; the HTML
# report opened in headless Chromium: it renders the totals with no console errors) ->
# notify through a real SMTP server -> acknowledgement link served by `patchgate serve`
# -> notify status -> call-list.
# Usage: respond_cli_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup respond "$1"
export PATCHGATE_STORE="sqlite://$work/store.db"
unset PATCHGATE_PASSPHRASE

# Customers.
"$pg" org add Contoso --tier premier --account-manager "Ann Example <ann@vendor.example>" --phone "+1 555 0100" \
  --contact sec@contoso.example --contact cso@contoso.example >/dev/null
"$pg" org add Globex --tier gold --account-manager "Bo Example <bo@vendor.example>" --contact soc@globex.example >/dev/null
"$pg" org add Initech --tier standard --contact it@initech.example >/dev/null
for u in alice:Contoso carol:Contoso bob:Globex ian:Initech; do "$pg" user add "${u#*:}" "${u%%:*}" >/dev/null 2>&1; done

# An nginx node's access log (the node patchgate did not run).
sha=$(printf 'x%.0s' {1..64} | tr x a)
cat > "$work/access.log" <<LOG
203.0.113.1 - alice [23/Nov/2026:09:00:00 +0000] "GET /targets/office/$sha.setup.exe HTTP/1.1" 200 300000 "-" "curl/8"
203.0.113.2 - carol [23/Nov/2026:10:30:00 +0000] "GET /targets/office/$sha.setup.exe HTTP/1.1" 200 300000 "-" "curl/8"
203.0.113.3 - bob [23/Nov/2026:11:00:00 +0000] "GET /targets/mail/$sha.patch.bin HTTP/1.1" 200 1000 "-" "curl/8"
203.0.113.3 - bob [23/Nov/2026:11:05:00 +0000] "GET /targets/mail/$sha.patch.bin HTTP/1.1" 403 0 "-" "curl/8"
203.0.113.4 - ian [22/Nov/2026:11:00:00 +0000] "GET /targets/office/$sha.setup.exe HTTP/1.1" 200 300000 "-" "curl/8"
203.0.113.5 - mallory [23/Nov/2026:12:00:00 +0000] "GET /targets/office/$sha.setup.exe HTTP/1.1" 200 300000 "-" "curl/8"
not a log line at all
203.0.113.1 - alice [23/Nov/2026:09:01:00 +0000] "GET /metadata/timestamp.json HTTP/1.1" 200 500 "-" "curl/8"
LOG
"$pg" import-log --node legacy-1 --format nginx-combined "$work/access.log" > "$work/out"
grep -q "5 downloads imported" "$work/out"
grep -q "line 7:" "$work/out"
grep -q "1 unknown users" "$work/out"
"$pg" import-log --node legacy-1 --format nginx-combined "$work/access.log" | grep -q "0 downloads imported, 5 already imported"
ok "import-log: counts, bad line numbers, unknown users flagged, re-import adds nothing"

id=$("$pg" incident open --node legacy-1 --from 2026-11-23T00:00:00Z --to 2026-11-23T23:59:59Z --cause "file infector (FunLove)")
[[ "$id" =~ ^[0-9]+$ ]] || { echo "FAIL: incident open printed '$id'"; exit 1; }
"$pg" incident list | grep -q "FunLove"
"$pg" incident show "$id" | grep -q "legacy-1"
ok "incident open prints the id alone; list and show"

"$pg" incident scope "$id" > "$work/scope.txt"
grep -q "4 downloads of 2 files by 4 users in 3 organisations" "$work/scope.txt"  # Contoso, Globex, (unknown user)
refute grep -q "ian" "$work/scope.txt"   # outside the window
"$pg" incident scope --node legacy-1 --from 2026-11-23T00:00:00+01:00 --to 2026-11-23T10:00:00Z --csv > "$work/scope.csv"
[[ $(tail -n +2 "$work/scope.csv" | wc -l) -eq 1 ]]
"$pg" incident scope "$id" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["totals"]["downloads"]==4, d["totals"]'
"$pg" incident scope "$id" --html "$work/report.html" >/dev/null
ok "incident scope: table, CSV, JSON, HTML with the same totals"

if command -v chromium >/dev/null; then
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --user-data-dir="$work/chrome" \
    --enable-logging=stderr --v=0 --dump-dom "file://$work/report.html" > "$work/dom.html" 2> "$work/chrome.log" || true
  grep -q "4 downloads of 2 files by 4 users in 3 organisations" "$work/dom.html" \
    || { echo "FAIL: Chromium did not render the totals"; tail -20 "$work/chrome.log"; exit 1; }
  grep -q "<circle" "$work/dom.html"
  if grep -E "CONSOLE|Uncaught" "$work/chrome.log" | grep -qiE "error|uncaught"; then
    echo "FAIL: console errors in the report"; grep -E "CONSOLE|Uncaught" "$work/chrome.log"; exit 1
  fi
  ok "the HTML report renders in headless Chromium with its totals and timeline, no console errors"
else
  [[ -n "${CI:-}" ]] && { echo "FAIL: chromium missing in CI"; exit 1; }
  echo "SKIP: chromium not installed (scripts/deps.sh installs it)"
fi

# Notify through a real SMTP server; acknowledge through patchgate serve.
smtp_port=$(free_port)
/usr/bin/python3 "$here/smtp_sink.py" "$work/mail" "$smtp_port" > "$work/smtp.out" &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$work/smtp.out" 2>/dev/null && break; sleep 0.1; done
serve_port=$(free_port)
"$pg" init "$work/repo" --insecure-plaintext-keys >/dev/null
"$pg" serve --repo "$work/repo" --listen "127.0.0.1:$serve_port" > "$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$serve_port/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
"$pg" notify incident "$id" --smtp "smtp://127.0.0.1:$smtp_port" --from "PSIRT <psirt@vendor.example>" \
  --ack-base-url "http://127.0.0.1:$serve_port" > "$work/notify.out"
grep -q "2 organisations: 2 sent now" "$work/notify.out"
[[ $(ls "$work/mail" | wc -l) -eq 2 ]]
refute grep -l "Initech" "$work/mail"/* >/dev/null 2>&1
"$pg" notify incident "$id" --smtp "smtp://127.0.0.1:$smtp_port" --from "PSIRT <psirt@vendor.example>" | grep -q "0 sent now, 2 sent before"
[[ $(ls "$work/mail" | wc -l) -eq 2 ]]
ok "notify: one message per affected organisation, none to others, idempotent"

contoso=$(grep -l "Dear Contoso" "$work/mail"/*)
grep -q "Cc: ann@vendor.example" "$contoso"
grep -q "by user alice" "$contoso"
grep -q "by user carol" "$contoso"
refute grep -q "by user bob" "$contoso"
link=$(grep -o "http://127.0.0.1:$serve_port/ack/[0-9a-f]*" "$contoso")
# A GET (what a mail link scanner does) shows the confirm page and acknowledges nothing.
[[ $(curl -s -o "$work/confirm.html" -w '%{http_code}' "$link") == 200 ]]
grep -q '<form method="post"' "$work/confirm.html"
"$pg" notify call-list "$id" --older-than 0s --csv | grep -q "^Contoso,"   # still not acknowledged
# The deliberate POST acknowledges, once; a repeat is harmless.
[[ $(curl -s -X POST -o /dev/null -w '%{http_code}' "$link") == 200 ]]
[[ $(curl -s -X POST -o /dev/null -w '%{http_code}' "$link") == 200 ]]
[[ $(curl -s -X POST -o "$work/404" -w '%{http_code}' "http://127.0.0.1:$serve_port/ack/0000deadbeef") == 404 ]]
[[ "$(cat "$work/404")" == "not found" ]]
"$pg" notify status "$id" | grep "Contoso" | grep -q "2026-"
ok "the Contoso message lists exactly its downloads, copies its account manager; the ack link works once; unknown tokens 404"

"$pg" notify call-list "$id" --older-than 0s --csv > "$work/calls.csv"
grep -q "^Globex," "$work/calls.csv"
refute grep -q "^Contoso," "$work/calls.csv"
"$pg" notify call-list "$id" --older-than 4h --csv | tail -n +2 | grep -q . && { echo "FAIL: call list not empty before 4h"; exit 1; } || true
ok "call-list names who has not acknowledged (Globex), not who has (Contoso)"

set +e; "$pg" incident scope 999999 >/dev/null 2>&1; rc=$?; set -e
[[ $rc -ne 0 ]]
set +e; "$pg" incident open --node x --from yesterday --to 2026-11-23T00:00:00Z --cause c >/dev/null 2>&1; rc=$?; set -e
[[ $rc -eq 2 ]]
ok "bad input: unknown incident and bad times are refused with clear errors"
harness_done respond-cli
