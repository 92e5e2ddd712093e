#!/usr/bin/env bash
# #9 point 2: hostile connections send User-Agent and Range headers that are not UTF-8
# (stray bytes, a cut multi-byte character, a 256-byte cut through one) while a victim
# downloads: every victim download succeeds, every record is valid UTF-8, and
# `patchgate downloads --json` reads them. On SQLite, and on PostgreSQL when
# PATCHGATE_TEST_PG_URL is set (scripts/test.sh sets it).
# Usage: hostile_text_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup hostile "$1"
server=
at_exit '[[ -n "$server" ]] && kill "$server"'
unset PATCHGATE_PASSPHRASE

run() {  # run STORE_URL LABEL
  export PATCHGATE_STORE="$1"
  rm -rf "$work/repo" "$work/repo.root-keys"
  "$pg" init "$work/repo" --insecure-plaintext-keys >/dev/null
  head -c 50000 /dev/urandom > "$work/f.bin"
  "$pg" publish "$work/repo" --product p --insecure-plaintext-keys "$work/f.bin" >/dev/null
  local org="Org$$x$RANDOM$RANDOM" node="hostile-$$-$RANDOM$RANDOM"
  "$pg" org add "$org" --tier gold >/dev/null
  local token victim
  token=$("$pg" user add "$org" "h$RANDOM$RANDOM" 2>/dev/null)
  victim=$("$pg" user add "$org" "v$RANDOM$RANDOM" 2>/dev/null)
  "$pg" grant "$org" p >/dev/null
  local url_path="/targets/p/$(sha256sum "$work/f.bin" | cut -c1-64).f.bin"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$pg" serve --repo "$work/repo" --listen "127.0.0.1:$port" --node-name "$node" --audit-finish-ms 20 \
    >"$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do grep -q "listening" "$work/serve.log" && break; sleep 0.05; done
  python3 - "$port" "$token" "$victim" "$url_path" <<'PY'
import socket, sys, threading
port, token, victim, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
hostile_values = [
    (b"evil\xff\xfe\xfd", b"bytes=0-9\xc3"),
    (b"x" * 254 + "\u20ac".encode(), b"bytes=\xe2\x82"),          # 256-byte cut inside a character
    (b"\xc0\xaf\xed\xa0\x80 surrogate", b"bytes=\xff-\xfe"),
    ("\u00e9".encode()[:1] * 300, b"bytes=1-2\x80"),
]
def request(tok, ua, rng, close=False):
    h = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + tok.encode() + b"\r\n"
    if ua is not None: h += b"User-Agent: " + ua + b"\r\n"
    if rng is not None: h += b"Range: " + rng + b"\r\n"
    return h + (b"Connection: close\r\n" if close else b"") + b"\r\n"
def read_response(f):
    status = f.readline()
    length = 0
    while True:
        line = f.readline()
        if line in (b"\r\n", b""): break
        if line.lower().startswith(b"content-length:"): length = int(line.split(b":")[1])
    f.read(length)
    return int(status.split()[1]) if status else 0
stop = False
hostile_sent = [0]
def hostile(i):
    ua, rng = hostile_values[i]
    while not stop:
        try:
            s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
            for _ in range(20):
                if stop: break
                s.sendall(request(token, ua, rng)); read_response(f); hostile_sent[0] += 1
            s.close()
        except OSError:
            pass
threads = [threading.Thread(target=hostile, args=(i,)) for i in range(4)]
for t in threads: t.start()
ok = bad = 0
s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
for i in range(300):
    s.sendall(request(victim, b"victim/1.0", None))
    code = read_response(f)
    if code == 200: ok += 1
    else:
        bad += 1
        s.close(); s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
stop = True
for t in threads: t.join()
print(f"victim: {ok} ok, {bad} failed; hostile requests: {hostile_sent[0]}")
sys.exit(0 if bad == 0 and ok == 300 and hostile_sent[0] > 0 else 1)
PY
  kill -TERM "$server"; wait "$server" 2>/dev/null || true; server=
  "$pg" downloads --node "$node" --json > "$work/rows.json"
  python3 - "$work/rows.json" <<'PY'
import json, sys
raw = open(sys.argv[1], "rb").read()
raw.decode("utf-8")  # strict: the output is valid UTF-8
rows = json.loads(raw)
uas = {r["user_agent"] for r in rows}
assert "evil\\xFF\\xFE\\xFD" in uas, uas
assert all(len(r["user_agent"].encode()) <= 256 for r in rows)
assert any(r["range"] == "bytes=0-9\\xC3" for r in rows)
print(f"{len(rows)} records, all valid UTF-8, hostile bytes escaped")
PY
  ok "$2"
}

run "sqlite://$work/store.db" "SQLite"
if [[ -n "${PATCHGATE_TEST_PG_URL:-}" ]]; then
  run "$PATCHGATE_TEST_PG_URL" "PostgreSQL"
else
  echo "SKIP: PostgreSQL (PATCHGATE_TEST_PG_URL not set; scripts/test.sh sets it)"
fi
harness_done hostile-text
