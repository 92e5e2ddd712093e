#!/usr/bin/env bash
# Regenerates clamav-testfiles.hsb from Debian's clamav-testfiles package.
set -euo pipefail
cd "$(dirname "$0")"
for f in /usr/share/clamav-testfiles/*; do
  echo "$(sha256sum "$f" | cut -c1-64):$(stat -c %s "$f"):Patchgate.Test.ClamAVTestFile.$(basename "$f" | tr -c 'A-Za-z0-9.\n' '_')"
done > clamav-testfiles.hsb
