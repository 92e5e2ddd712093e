#!/usr/bin/env bash
# The main job, on the embedded default store (SQLite): create a TUF repository, scan and
# publish sample updates, serve them, create an organisation and a user with an
# entitlement, download with patchgate-client, and print the audit trail.
# Usage: bash scripts/demo.sh     (installs dependencies and builds first)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [[ -z "${PATCHGATE_DEMO_NO_BUILD:-}" ]]; then
  bash scripts/deps.sh
  bash scripts/build.sh release
fi

pg="$root/build/src/cli/patchgate"
client="$root/build/src/client/patchgate-client"
work=$(mktemp -d /tmp/patchgate-demo.XXXXXX)
server_pid=
cleanup() { [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# Demo only: a passphrase from the environment. In production root keys stay offline and
# the passphrase is typed at a prompt or read from --passphrase-file.
export PATCHGATE_PASSPHRASE="demo-passphrase-$(date +%s)"
export PATCHGATE_STORE="sqlite://$work/patchgate.db"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "patchgate init $work/repo"
"$pg" init "$work/repo"

step "sample updates: two builds of 'office', one of 'mail'"
mkdir -p "$work/updates"
head -c 300000 /dev/urandom > "$work/updates/office-2.1-setup.bin"
printf 'Release notes for office 2.1\n' > "$work/updates/office-2.1-notes.txt"
head -c 120000 /dev/urandom > "$work/updates/mail-7.0-patch.bin"

step "patchgate publish (scanned by ClamAV with the project's test signatures, then signed)"
"$pg" publish "$work/repo" --product office --version 2.1 --signatures "$root/tests/data/signatures" \
  "$work/updates/office-2.1-setup.bin" "$work/updates/office-2.1-notes.txt"
"$pg" publish "$work/repo" --product mail --version 7.0 --signatures "$root/tests/data/signatures" \
  "$work/updates/mail-7.0-patch.bin"

step "an infected file is refused at the gate (EICAR test string)"
printf 'X5O!P%%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' > "$work/updates/eicar.com"
set +e
"$pg" publish "$work/repo" --product office --version 2.1 --signatures "$root/tests/data/signatures" \
  "$work/updates/eicar.com"
echo "exit code: $? (3 = infected, quarantined, nothing published)"
set -e

step "patchgate verify"
"$pg" verify "$work/repo"

step "organisation, user and entitlement"
"$pg" org add Contoso --tier premier --account-manager "Ann Example <ann@vendor.example>" \
  --phone "+1 555 0100" --contact security@contoso.example
token=$("$pg" user add Contoso alice | tail -1 | awk '{print $NF}')
"$pg" grant Contoso office
"$pg" org list

step "patchgate serve on 127.0.0.1 (SQLite audit store)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$pg" serve --repo "$work/repo" --listen "127.0.0.1:$port" --node-name origin >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

step "patchgate-client: trust the root, refresh, download office/office-2.1-setup.bin"
"$client" --metadata-dir "$work/client/metadata" init "$work/repo/metadata/1.root.json"
"$client" --metadata-dir "$work/client/metadata" --metadata-url "http://127.0.0.1:$port/metadata" \
  --token "$token" --target-name office/office-2.1-setup.bin --target-base-url "http://127.0.0.1:$port/targets" \
  --target-dir "$work/client/targets" download
ls -l "$work/client/targets"
cmp "$work/client/targets/office%2Foffice-2.1-setup.bin" "$work/updates/office-2.1-setup.bin" && echo "downloaded bytes match the published file"

step "a product alice's organisation is not entitled to is refused"
set +e
"$client" --metadata-dir "$work/client/metadata" --metadata-url "http://127.0.0.1:$port/metadata" \
  --token "$token" --target-name mail/mail-7.0-patch.bin --target-base-url "http://127.0.0.1:$port/targets" \
  --target-dir "$work/client/targets" download
echo "exit code: $? (the server answered 403: Contoso is not entitled to mail)"
set -e

step "the audit trail (patchgate downloads)"
"$pg" downloads
echo
echo "demo files are in $work"
