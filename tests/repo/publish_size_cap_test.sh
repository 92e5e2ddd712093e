#!/usr/bin/env bash
# `patchgate publish --max-file-size N` refuses an input larger than N before copying it to
# the repository's staging folder (issue #9): a clear message naming the file, its size and
# the cap; nothing left in DIR/.staging or DIR/targets/, metadata unchanged. The input is a
# sparse 3 GiB file, so a copy would show as seconds of work and gigabytes written.
# Usage: publish_size_cap_test.sh BUILD_DIR
. "$(dirname "$0")/../lib/harness.sh"
harness_setup sizecap "$1"
unset PATCHGATE_PASSPHRASE
"$pg" init "$work/repo" --insecure-plaintext-keys >/dev/null
echo "small and clean" > "$work/ok.txt"
"$pg" publish "$work/repo" --product office --insecure-plaintext-keys "$work/ok.txt" >/dev/null
before=$(cd "$work/repo" && find metadata targets -type f -printf '%p %s\n' | sort | sha256sum)
truncate -s 3G "$work/huge.iso"
t0=$(date +%s%N)
set +e
"$pg" publish "$work/repo" --product office --max-file-size 1000000 --insecure-plaintext-keys "$work/huge.iso" \
  >"$work/out" 2>"$work/err"
rc=$?
set -e
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[[ $rc -ne 0 ]] || { echo "FAIL: an input over --max-file-size was published"; cat "$work/out"; exit 1; }
grep -q "huge.iso is 3221225472 bytes: refused before it was copied, over the gate's --max-file-size of 1000000 bytes" \
  "$work/err" || { echo "FAIL: unclear message"; cat "$work/err"; exit 1; }
left=$(find "$work/repo/.staging" -mindepth 1 2>/dev/null | wc -l)
[[ $left -eq 0 ]] || { echo "FAIL: $left entries left in .staging"; find "$work/repo/.staging"; exit 1; }
after=$(cd "$work/repo" && find metadata targets -type f -printf '%p %s\n' | sort | sha256sum)
[[ "$before" == "$after" ]] || { echo "FAIL: metadata or targets changed"; exit 1; }
ok "a 3 GiB input over --max-file-size 1000000 refused in $ms ms with exit $rc, nothing staged or published"
harness_done publish-size-cap
