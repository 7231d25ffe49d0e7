#!/usr/bin/env bash
# Run `molecule test -s <scenario>` for every scenario given, MOLECULE_JOBS at a time
# (default 3: each scenario is its own Compose project / container, so they do not
# collide). Each log goes to .molecule-logs/<scenario>.log and is printed when the
# scenario ends; exit status is non-zero when any scenario failed, naming it.
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=${MOLECULE_JOBS:-3}
logs=.molecule-logs
rm -rf "$logs" && mkdir -p "$logs"

run_one() {
  local s=$1 start rc
  start=$(date +%s)
  molecule test -s "$s" >"$logs/$s.log" 2>&1
  rc=$?
  {
    echo "=== molecule test -s $s: rc=$rc in $(( $(date +%s) - start ))s"
    if [ "$rc" = 0 ]; then tail -n 25 "$logs/$s.log"; else cat "$logs/$s.log"; fi
  } | flock "$logs/.print" cat
  [ "$rc" = 0 ] || touch "$logs/$s.failed"
}
export -f run_one
export logs

printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {}
failed=$(cd "$logs" && ls -- *.failed 2>/dev/null | sed 's/\.failed$//' | xargs)
if [ -n "$failed" ]; then
  echo "molecule: FAILED scenarios: $failed (logs in $logs/)" >&2
  exit 1
fi
echo "molecule: all $# scenarios passed"
