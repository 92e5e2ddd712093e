#!/usr/bin/env bash
# Pre-notice to ORGS organisations through a local SMTP server (tests/respond/smtp_sink.py,
# python3-aiosmtpd, writing every message to disk), PARALLEL reused SMTP connections.
# Prints messages/s (SQLite store).
#   bench/advise_bench.sh [BUILD_DIR] [ORGS=10000] [PARALLEL=8]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
orgs=${2:-10000}
parallel=${3:-8}
work=$(mktemp -d /tmp/pg-advbench.XXXXXX)
sink=
trap '[[ -n $sink ]] && kill $sink 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 "$root/tests/respond/smtp_sink.py" "$work/mail" "$port" > "$work/smtp.out" &
sink=$!
for _ in $(seq 100); do grep -q ready "$work/smtp.out" 2>/dev/null && break; sleep 0.1; done
"$build/bench/advise_bench" "sqlite://$work/store.db" "smtp://127.0.0.1:$port" "$orgs" "$parallel"
echo "messages on disk at the SMTP server: $(ls "$work/mail" | wc -l)"
