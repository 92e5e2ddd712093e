#!/usr/bin/env bash
# `patchgate scan`, `publish` and `rescan` against the real engine, as a user would run them:
# exit codes, an unreadable directory (run as an unprivileged user: root reads anything),
# an infected publish leaving every metadata byte as it was, and a rescan after a
# signature update finding a published target infected.
# Usage: scan_cli_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup scancli "$1"
sigs="$data/signatures"
export PATCHGATE_PASSPHRASE=scan-test

mkdir -p "$work/in"
cp /bin/true "$work/in/clean-true"
expect_rc 0 "$pg" scan "$work/in" --signatures "$sigs"; ok "clean tree exits 0"
printf 'X5O!P%%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' > "$work/in/eicar.com"
expect_rc 3 "$pg" scan "$work/in" --signatures "$sigs" --json
python3 -c "import json,sys; d=json.load(open('$work/out')); assert any(f['verdict']=='infected' for f in d['files'])"
ok "infected tree exits 3 with JSON detections"
rm "$work/in/eicar.com"
(cd "$work/in" && zip -q -P pw enc.zip clean-true)
expect_rc 4 "$pg" scan "$work/in" --signatures "$sigs"; ok "encrypted archive exits 4"
rm "$work/in/enc.zip"

# An unreadable directory, scanned by an unprivileged user.
mkdir -p "$work/in/locked" && echo secret > "$work/in/locked/file" && chmod 000 "$work/in/locked"
chmod -R o+rX "$work/in/clean-true" 2>/dev/null || true
if command -v setpriv >/dev/null && [[ $(id -u) -eq 0 ]]; then
  expect_rc 4 setpriv --reuid=65534 --regid=65534 --clear-groups "$pg" scan "$work/in" --signatures "$sigs"
  grep -q "cannot list directory" "$work/out"; ok "unreadable directory is reported, exit 4"
else
  expect_rc 4 "$pg" scan "$work/in" --signatures "$sigs"; ok "unreadable directory is reported, exit 4"
fi
chmod 755 "$work/in/locked"

# Publish: infected -> exit 3, quarantined, metadata byte-identical.
"$pg" init "$work/repo" >/dev/null
"$pg" publish "$work/repo" --product tools --signatures "$sigs" "$work/in/clean-true" >/dev/null
before=$(cd "$work/repo/metadata" && sha256sum * | sha256sum)
printf 'X5O!P%%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' > "$work/eicar.com"
expect_rc 3 "$pg" publish "$work/repo" --product tools --signatures "$sigs" "$work/eicar.com"
after=$(cd "$work/repo/metadata" && sha256sum * | sha256sum)
[[ "$before" == "$after" ]] || { echo "FAIL: metadata changed on an infected publish"; exit 1; }
ls "$work/repo/quarantine/"*.json >/dev/null
grep -q '"signature_version"' "$work/repo/quarantine/"*.json
ok "infected publish exits 3, quarantines with a report, leaves metadata byte-identical"
expect_rc 4 "$pg" publish "$work/repo" --product tools --signatures "$work/nonexistent" "$work/in/clean-true"
ok "publish without usable signatures exits 4"
grep -q '"scan"' "$work/repo/metadata/"*tools.json; ok "published target records its scan"

# Rescan after a signature update: a published file is now known bad.
mkdir -p "$work/newsigs" && cp "$sigs"/* "$work/newsigs/"
echo "published-then-found-bad" > "$work/laterbad.txt"
"$pg" publish "$work/repo" --product tools --signatures "$sigs" "$work/laterbad.txt" >/dev/null
printf 'Patchgate.Test.LateDetection:0:*:%s\n' "$(printf 'published-then-found-bad' | od -An -tx1 -v | tr -d ' \n')" > "$work/newsigs/late.ndb"
expect_rc 0 "$pg" rescan "$work/repo" --signatures "$sigs" --store "sqlite://$work/store.db"
expect_rc 0 "$pg" rescan "$work/repo" --signatures "$sigs" --store "sqlite://$work/store.db"
grep -q "from the cache" "$work/out"; ok "rescan with unchanged signatures uses cached verdicts"
expect_rc 3 "$pg" rescan "$work/repo" --signatures "$work/newsigs" --store "sqlite://$work/store.db"
grep -q "PUBLISHED TARGET FOUND INFECTED: tools/laterbad.txt" "$work/err"
ok "rescan after a signature update reports a published target as infected"
harness_done scan-cli
