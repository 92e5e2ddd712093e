#!/usr/bin/env bash
# Advisories from the command line, as a PSIRT would run them, against real peers:
# a signed repository with a published, scanned fix; an OpenPGP key (GnuPG); a real SMTP
# server (python3-aiosmtpd); `patchgate serve` running the due steps (--smtp) while
# `advisory run-due` runs beside it (never twice); the CSAF provider over HTTP with the
# embargo (404 for everyone outside the audience, before publish-at); the acknowledgement
# link; status and call list; the public release with the fix; documents checked by the
# CSAF validator library and the signature by gpg; `incident advisory`.
# Usage: advise_cli_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup advise "$1"
at_exit 'for h in "$work/repo/keys/openpgp" "$work/verify"; do [[ -d $h ]] && gpgconf --homedir "$h" --kill gpg-agent; done'
export PATCHGATE_STORE="sqlite://$work/store.db"
export PATCHGATE_PASSPHRASE="advise test passphrase"
# wait_for CONDITION [SECONDS]: polls CONDITION every 0.1 s for SECONDS (default 30).
wait_for() { for _ in $(seq $((${2:-30} * 10))); do eval "$1" && return 0; sleep 0.1; done; fail "timed out waiting for: $1"; }
mails() { ls "$work/mail"/*.eml 2>/dev/null | wc -l; }

# Customers: Contoso (premier), Globex (gold), Initech (standard); webserver for Contoso and Globex.
"$pg" org add Contoso --tier premier --account-manager "Ann Example <ann@vendor.example>" --phone "+1 555 0100" \
  --contact sec@contoso.example >/dev/null
"$pg" org add Globex --tier gold --account-manager "Bo Example <bo@vendor.example>" --contact soc@globex.example >/dev/null
"$pg" org add Initech --tier standard --contact it@initech.example >/dev/null
alice=$("$pg" user add Contoso alice)
bob=$("$pg" user add Globex bob)
"$pg" grant Contoso webserver >/dev/null
"$pg" grant Globex webserver >/dev/null

# A repository with the fix published (scanned clean at the gate) and the signing key.
"$pg" init "$work/repo" >/dev/null
mkdir -p "$work/in" && printf 'webserver 2.4.2 with the WebDAV fix\n' > "$work/in/webserver-2.4.2.tar.gz"
"$pg" publish "$work/repo" --product webserver --version 2.4.2 "$work/in/webserver-2.4.2.tar.gz" >/dev/null
fpr=$("$pg" advisory signing-key --repo "$work/repo" --uid "Vendor PSIRT <psirt@vendor.example>")
[[ "$fpr" =~ ^[0-9A-F]{40}$ ]] || fail "signing-key printed '$fpr'"
[[ $(stat -c %a "$work/repo/keys/openpgp") == 700 ]] || fail "the GnuPG home is not private"
if PATCHGATE_PASSPHRASE= "$pg" advisory signing-key --repo "$work/repo" --uid x </dev/null >/dev/null 2>&1; then fail "second key"; fi
ok "signing key created in DIR/keys/openpgp (0700, passphrase-protected)"

id=$("$pg" advisory new --product webserver --title "Remote code execution in the WebDAV module" \
  --summary "A crafted PROPFIND request runs code as the server user; exploited in the wild." \
  --cve CVE-2026-31337 --cvss-vector "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" --severity critical --tlp amber)
[[ "$id" =~ ^PG-[0-9]{4}-[0-9]{4}$ ]] || fail "advisory new printed '$id'"
set +e
"$pg" advisory new --product webserver --title t --summary s --tlp purple >/dev/null 2>&1; [[ $? == 2 ]] || fail "bad TLP accepted"
"$pg" advisory new --product webserver --title t --summary s --cvss-vector "CVSS:3.1/AV:N" >/dev/null 2>&1; [[ $? == 2 ]] || fail "bad CVSS accepted"
"$pg" advisory new --product webserver --title t --summary s --cve CVE-26-1 >/dev/null 2>&1; [[ $? == 2 ]] || fail "bad CVE accepted"
set -e
"$pg" advisory list | grep -q "$id"
"$pg" advisory new --product webserver --title t --summary s --tlp clear > /dev/null
ok "advisory new prints the id; bad TLP/CVSS/CVE refused with exit 2; clear accepted for white"

"$pg" advisory workaround "$id" --text "Set dav=off in webserver.conf and restart the service." >/dev/null
"$pg" advisory schedule "$id" --prenotify now --audience tier:premier --publish-at now > "$work/out" 2>&1 && fail "publish without fix accepted"
grep -q "before the fix exists" "$work/out"
"$pg" advisory schedule "$id" --prenotify +2h --audience tier:premier --publish-at +1h > "$work/out" 2>&1 && fail "pre-notice after publishing accepted"
grep -q "after publishing" "$work/out"
"$pg" advisory schedule "$id" --prenotify now --audience tier:nope --publish-at +1h > "$work/out" 2>&1 && fail "bad audience accepted"
"$pg" advisory show "$id" --csaf > "$work/draft.json"
ok "schedules that publish before the fix or pre-notify after publishing are refused with a reason"

# The origin runs due steps; run-due runs beside it.
smtp_port=$(free_port)
/usr/bin/python3 "$here/../respond/smtp_sink.py" "$work/mail" "$smtp_port" > "$work/smtp.out" &
pids+=($!)
wait_for 'grep -q ready "$work/smtp.out" 2>/dev/null'
port=$(free_port)
base="http://127.0.0.1:$port"
"$pg" advisory schedule "$id" --prenotify now --audience tier:premier --workaround-at now --publish-at +40s >/dev/null
"$pg" serve --repo "$work/repo" --listen "127.0.0.1:$port" --smtp "smtp://127.0.0.1:$smtp_port" \
  --from "PSIRT <psirt@vendor.example>" --due-interval 1 > "$work/serve.log" 2>&1 &
pids+=($!)
"$pg" advisory run-due --repo "$work/repo" --smtp "smtp://127.0.0.1:$smtp_port" --from "PSIRT <psirt@vendor.example>" \
  --ack-base-url "$base" > "$work/run1.out" 2>&1 || true
wait_for '[[ $(mails) -ge 1 ]]'
wait_for 'curl -fsS "$base/healthz" >/dev/null 2>&1'
sleep 3
[[ $(mails) == 1 ]] || fail "expected exactly one pre-notice, got $(mails)"
msg=$(ls "$work/mail"/*.eml)
grep -q "X-Envelope-To: sec@contoso.example" "$msg"
grep -q "Set dav=off" "$msg"
grep -q "TLP:AMBER" "$msg"
ok "pre-notice: one message, to the premier organisation only, with the workaround (serve and run-due at once)"

year=${id:3:4}
lid=$(echo "$id" | tr 'A-Z' 'a-z')
amber="$base/.well-known/csaf/amber/$year/$lid.json"
code() { curl -s -o "$work/body" -w '%{http_code}' "$@"; }
for url in "$amber" "$amber.sha256" "$amber.sha512" "$amber.asc" "$base/.well-known/csaf/amber/" \
  "$base/.well-known/csaf/amber/index.txt" "$base/.well-known/csaf/amber/changes.csv" "$base/.well-known/csaf/amber/$year/" \
  "$base/.well-known/csaf/white/$year/$lid.json"; do
  [[ $(code "$url") == 404 ]] || fail "anonymous $url is not 404"
  [[ $(code -H "Authorization: Bearer $bob" "$url") == 404 ]] || fail "gold (outside the audience) $url is not 404"
  [[ $(code -H "Authorization: Bearer not-a-token" "$url") == 404 ]] || fail "bad token $url is not 404"
done
for url in "$base/.well-known/csaf/feed-tlp-amber.json" "$base/.well-known/csaf/feed-tlp-white.json" \
  "$base/.well-known/csaf/white/index.txt" "$base/.well-known/csaf/white/changes.csv" "$base/.well-known/csaf/" \
  "$base/.well-known/csaf/provider-metadata.json"; do
  for auth in "" "Authorization: Bearer $bob"; do
    curl -s ${auth:+-H "$auth"} "$url" > "$work/body"
    if grep -qi "$lid\|$id\|WebDAV" "$work/body"; then fail "$url reveals the embargoed advisory"; fi
  done
done
[[ $(code -H "Authorization: Bearer $alice" "$amber") == 200 ]] || fail "the audience cannot read its document"
cp "$work/body" "$work/amber.json"
curl -s -H "Authorization: Bearer $alice" "$base/.well-known/csaf/feed-tlp-amber.json" | grep -q "$id"
ok "embargo over HTTP: every URL 404 (not 403) or silent for anonymous, gold and bad tokens; the premier token reads it"

link=$(grep -o "$base/ack/[0-9a-f]*" "$msg" | head -1)
curl -s "$link" >/dev/null
curl -s -X POST "$link" >/dev/null || true
"$pg" advisory status "$id" > "$work/status"
grep "Contoso" "$work/status" | grep -q "prenotice"
grep -q "1 acknowledged" "$work/status"
"$pg" advisory call-list "$id" --older-than 0s --csv > "$work/calls.csv"
[[ $(wc -l < "$work/calls.csv") == 1 ]] || fail "call list not empty after the acknowledgement"
ok "acknowledgement recorded; status shows it; the call list is empty"

"$pg" advisory fix "$id" --target webserver/webserver-2.4.2.tar.gz --repo "$work/repo" >/dev/null
# Publication is due 40 s after the schedule above, however fast the steps since then ran.
wait_for '[[ $(mails) -ge 3 ]]' 60
sleep 2
[[ $(mails) == 3 ]] || fail "expected 3 messages after publication (Contoso twice, Globex once), got $(mails)"
grep -l "published" "$work/mail"/*.eml | xargs grep -h "X-Envelope-To" | sort > "$work/final_to"
grep -q "sec@contoso.example" "$work/final_to" && grep -q "soc@globex.example" "$work/final_to"
if grep -q "initech" "$work/final_to"; then fail "Initech is not entitled"; fi
white="$base/.well-known/csaf/white/$year/$lid.json"
[[ $(code "$white") == 200 ]] || fail "the public document is not public"
cp "$work/body" "$work/final.json"
[[ $(code -H "Authorization: Bearer $alice" "$amber") == 404 ]] || true
grep -q '"vendor_fix"' "$work/final.json" && grep -q '"status": "final"' "$work/final.json"
[[ "$(curl -s "$white.sha256" | cut -d' ' -f1)" == "$(sha256sum "$work/final.json" | cut -d' ' -f1)" ]] || fail "sha256"
[[ "$(curl -s "$white.sha512" | cut -d' ' -f1)" == "$(sha512sum "$work/final.json" | cut -d' ' -f1)" ]] || fail "sha512"
mkdir -m 700 "$work/verify"
curl -s "$white.asc" > "$work/final.json.asc"
curl -s "$base/.well-known/csaf/openpgp/$fpr.asc" > "$work/key.asc"
gpg --batch --quiet --homedir "$work/verify" --import "$work/key.asc" 2>/dev/null
gpg --batch --quiet --homedir "$work/verify" --verify "$work/final.json.asc" "$work/final.json" 2>/dev/null || fail "signature"
curl -s "$base/.well-known/csaf/white/index.txt" | grep -qx "$year/$lid.json"
curl -s "$base/.well-known/csaf/feed-tlp-white.json" | grep -q "$id"
curl -s "$base/.well-known/security.txt" | grep -q "^CSAF: $base/.well-known/csaf/provider-metadata.json"
ok "at publish-at: public TLP:WHITE document with the fix, hashes and a signature gpg verifies; final message to audience + entitled"

# CSAF requirement 3 (TLS): the provider over HTTPS, as `serve --tls-cert` offers it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
tport=$(free_port)
"$pg" serve --repo "$work/repo" --listen "127.0.0.1:$tport" --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
  --node-name tls-origin --csaf-base-url "https://127.0.0.1:$tport" > "$work/serve-tls.log" 2>&1 &
pids+=($!)
tbase="https://127.0.0.1:$tport"
wait_for 'curl -fsS --cacert "$work/tls.crt" "$tbase/healthz" >/dev/null 2>&1'
curl -fsS --cacert "$work/tls.crt" --tlsv1.2 "$tbase/.well-known/csaf/provider-metadata.json" > "$work/pm-tls.json" \
  || fail "provider metadata over TLS"
grep -q "\"canonical_url\": *\"$tbase/.well-known/csaf/provider-metadata.json\"" "$work/pm-tls.json" \
  || fail "provider metadata over TLS does not name its https URL: $(head -c 400 "$work/pm-tls.json")"
curl -fsS --cacert "$work/tls.crt" "$tbase/.well-known/csaf/white/$year/$lid.json" | cmp -s - "$work/final.json" \
  || fail "the public document over TLS differs"
if curl -fsS -o /dev/null "http://127.0.0.1:$tport/.well-known/csaf/provider-metadata.json" 2>/dev/null; then
  fail "the TLS port answered plain HTTP"
fi
ok "CSAF requirement 3: provider metadata and documents over TLS, with https URLs; plain HTTP refused"

"$pg" incident open --node mirror-2 --from 2026-11-23T00:00:00Z --to 2026-11-23T23:59:59Z --cause "file infector" > "$work/inc"
"$pg" incident advisory "$(cat "$work/inc")" --base-url "$base" > "$work/ir.json"
grep -q csaf_security_incident_response "$work/ir.json"
if [[ -f "$here/node_modules/@secvisogram/csaf-validator-lib/package.json" ]]; then
  (cd "$here" && node validate.mjs "$work/draft.json" "$work/amber.json" "$work/final.json" "$work/ir.json") | tee "$work/validator.out"
  ok "the CSAF validator library: schema and every mandatory test, 0 errors (draft, AMBER, final, incident response)"
else
  [[ -n "${CI:-}" ]] && fail "the CSAF validator is not installed in CI"
  echo "SKIP: the CSAF validator is not installed (scripts/deps.sh)"
fi
harness_done advise_cli_test
