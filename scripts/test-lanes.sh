#!/usr/bin/env bash
# The stack suites of `make test` in two lanes at once: two pytest processes, each with its
# own set of Compose projects, so nothing one lane deploys is touched by the other.
#
#   lane day2:  tests/day2 (the default project `kailash`, one session-scoped stack), the
#               static catalogue check (tests/integration/test_config_catalog.py) and the
#               sixth service (tests/integration/test_sixth_service.py, project kailash-six)
#   lane stacks: tests/backup (project kailash-bk-ci), the integration modules that
#               deploy their own projects (kailash-it, kailash-e2e, kailash-hp) and the
#               host suite (tests/integration/test_dev_host.py)
# The lanes are balanced by their measured durations (.test-lanes/*.log, 15 slowest).
#
# Why not pytest-xdist --dist loadgroup: with pytest 9.2 its xdist_group markers are
# silently ignored (xdist 3.8 renames nodeids through Item._nodeid, which pytest 9.2 no
# longer reads), so tests of one module ran in both workers against the same project.
# Explicit lanes cannot fall apart that way.
#
# Output streams live, each line prefixed with its lane; full logs stay in .test-lanes/.
# Exit status: non-zero when any lane failed (both always run to the end).
set -uo pipefail

cd "$(dirname "$0")/.."
logs=.test-lanes
rm -rf "$logs" && mkdir -p "$logs"

LANE_DAY2=(tests/day2 tests/integration/test_config_catalog.py tests/integration/test_sixth_service.py)
LANE_STACKS=(tests/backup tests/integration/test_dev_stack.py tests/integration/test_app_stack.py
             tests/integration/test_health_playbook.py tests/integration/test_dev_host.py
             tests/integration/test_monitoring_stack.py tests/integration/test_grafana_provisioning.py
             tests/integration/test_monitoring_app.py
             tests/integration/test_monitoring_exporters.py)

# every module under tests/integration, tests/backup, tests/day2 must be in exactly one lane
mapfile -t all < <(find tests/integration tests/backup tests/day2 -name 'test_*.py' | sort)
missing=()
for module in "${all[@]}"; do
  covered=false
  for entry in "${LANE_DAY2[@]}" "${LANE_STACKS[@]}"; do
    [[ "$module" == "$entry" || "$module" == "$entry"/* ]] && covered=true
  done
  $covered || missing+=("$module")
done
if ((${#missing[@]})); then
  echo "scripts/test-lanes.sh: modules in no lane: ${missing[*]}" >&2
  exit 2
fi

run_lane() {
  local name=$1
  shift
  local start=$SECONDS
  pytest -q -p no:cacheprovider --durations=15 "$@" 2>&1 | tee "$logs/$name.log" \
    | sed -u "s/^/[$name] /"
  local rc=${PIPESTATUS[0]}
  echo "$rc $((SECONDS - start))" > "$logs/$name.rc"
}

run_lane day2 "${LANE_DAY2[@]}" &
run_lane stacks "${LANE_STACKS[@]}" &
wait

status=0
echo
for name in day2 stacks; do
  read -r rc secs < "$logs/$name.rc" || { rc=1; secs=?; }
  printf 'lane %-6s rc=%s  %ss  %s\n' "$name" "$rc" "$secs" "$(tail -n 1 "$logs/$name.log")"
  [[ "$rc" == 0 ]] || status=1
done
# a failing lane's failures again at the very end, where a log's tail shows them
for name in day2 stacks; do
  read -r rc _ < "$logs/$name.rc" 2>/dev/null || rc=1
  [[ "$rc" == 0 ]] && continue
  echo
  echo "lane $name failed:"
  grep -E '^(FAILED|ERROR) ' "$logs/$name.log" | cut -c1-600 | sed "s/^/  /"
done
exit "$status"
