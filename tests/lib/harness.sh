# The footing every whole-program test stands on (sourced, never run on its own):
#   . "$(dirname "$0")/../lib/harness.sh"
#   harness_setup NAME BUILD_DIR
# gives
#   - strict mode (errexit, nounset, pipefail) and an ERR trap, so a command that stops a
#     test names its script, line and exit code (errexit alone exits without a word);
#   - here (the test's own folder), build, pg (the patchgate binary), client
#     (patchgate-client), data (tests/data) and PATCHGATE_SIGNATURES (the test signatures);
#   - work: a fresh folder /tmp/pg-NAME.XXXXXX (mode 755, so a dropped-privilege process can
#     read it), removed at exit whatever the outcome;
#   - pids: add every background process the test starts; at exit each is sent TERM, then
#     waited for. A test that needs more cleanup registers it with at_exit (run first);
#   - ok, fail, expect_rc, refute, free_port, now_ms, wait_log, wait_http, eventually,
#     start_bg, stop_pid;
#   - harness_done LABEL as the script's last step (prints "LABEL: N passed, 0 failed") and
#     harness_skip REASON for a test that cannot run here. A script that exits 0 without one
#     of them FAILS: a step that ended the script early never passes silently.
set -euo pipefail
set -E
trap 'harness_err=$?; [[ $- == *e* ]] && echo "FAIL: ${BASH_SOURCE[0]##*/} line $LINENO: \"$BASH_COMMAND\" exited $harness_err" >&2' ERR

harness_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pids=()
harness_passed=0  # not `pass`: a test's own variable of that name would shadow it
harness_finished=0
work=
harness_work=
harness_exit_hooks=()

harness_setup() {  # harness_setup NAME BUILD_DIR
  here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
  build=$(cd "$2" && pwd)
  pg="$build/src/cli/patchgate"
  client="$build/src/client/patchgate-client"
  data="$harness_lib/../data"
  export PATCHGATE_SIGNATURES="$data/signatures"
  work=$(mktemp -d "/tmp/pg-$1.XXXXXX")
  harness_work=$work  # removed at exit even if the test points $work elsewhere
  chmod 755 "$work"
  trap harness_cleanup EXIT
}

at_exit() { harness_exit_hooks+=("$*"); }

harness_cleanup() {
  local rc=$? hook p
  set +e
  trap - ERR  # clean-up steps may fail; they neither report nor change the outcome
  for hook in "${harness_exit_hooks[@]}"; do eval "$hook" 2>/dev/null; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [[ -n "$harness_work" ]] && { chmod -R u+rwx "$harness_work" 2>/dev/null; rm -rf "$harness_work"; }
  if [[ $rc -eq 0 && $harness_finished -ne 1 ]]; then
    echo "FAIL: ${0##*/} ended without reaching harness_done (after $harness_passed passed steps)"
    rc=1
  fi
  exit "$rc"
}

harness_done() { echo "$1: $harness_passed passed, 0 failed"; harness_finished=1; }
harness_skip() { echo "SKIP: $*"; harness_finished=1; exit 0; }

ok() { echo "ok: $*"; harness_passed=$((harness_passed + 1)); }
fail() { echo "FAIL: $*"; exit 1; }

# expect_rc WANT CMD...: runs CMD with its output in $work/out and $work/err; any other exit
# code fails the test and shows both.
expect_rc() {
  local want=$1 rc
  shift
  set +e
  "$@" >"$work/out" 2>"$work/err"
  rc=$?
  set -e
  [[ $rc -eq $want ]] || { echo "FAIL: $* -> exit $rc, want $want"; cat "$work/out" "$work/err"; exit 1; }
}

# refute CMD...: CMD must fail.
refute() { if "$@"; then echo "FAIL: expected this to fail: $*"; exit 1; fi; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

# wait_log FILE PATTERN [SECONDS=20]: until PATTERN appears in FILE; on time-out shows its tail.
wait_log() {
  local deadline=$(($(now_ms) + ${3:-20} * 1000))
  until grep -q "$2" "$1" 2>/dev/null; do
    (($(now_ms) > deadline)) && { echo "--- $1"; tail -20 "$1"; fail "timed out waiting for '$2' in $1"; }
    sleep 0.05
  done
}

# wait_http URL [SECONDS=20]: until URL answers 2xx (e.g. /healthz of a server just started).
wait_http() {
  local deadline=$(($(now_ms) + ${2:-20} * 1000))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    (($(now_ms) > deadline)) && fail "timed out waiting for $1 to answer"
    sleep 0.05
  done
}

# eventually SECONDS CMD...: true once CMD succeeds, retried every 0.1 s; false after SECONDS.
# States that depend on heartbeats and polls are waited for, never slept for: a loaded CI
# machine stretches every interval.
eventually() {
  local deadline=$(($(now_ms) + $1 * 1000))
  shift
  until "$@"; do
    (($(now_ms) > deadline)) && return 1
    sleep 0.1
  done
}

# start_bg LOG CMD...: CMD in the background with its output in LOG; its id is added to
# pids and left in $last_pid.
start_bg() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
}

# stop_pid PID: TERM, then wait for it to end.
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
