#!/usr/bin/python
"""Ansible module kailash_restore_drill: restore a set into throwaway containers and compare."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kailash_restore_drill
short_description: Restore drill - a Kailash backup set into throwaway containers, never the stack
description:
  - Verifies the set (manifest, size and sha256 of every file, key), then restores each
    service into a throwaway container of the service's own image (C(<project>-drill-<service>),
    no network, its own volume), compares the content counts with the manifest and removes
    the containers and volumes again.
  - Records the outcome where monitoring reads it - a JSON report
    (C(<report_dir>/restore-drill-<project>.json), with C(last_success_at)) and a Prometheus
    textfile (C(<textfile_dir>/kailash_restore_drill_<project>.prom)) with
    C(kailash_restore_drill_last_success_timestamp_seconds), C(kailash_restore_drill_passed)
    and C(kailash_restore_drill_duration_seconds).
  - A failed drill is data (RV(passed=false)), not a task failure; decide with C(failed_when).
version_added: "0.1.0"
author:
  - Kailash platform team
options:
  set:
    description: Set to drill - its name under O(backup_root), a path, or V(latest).
    type: str
    default: latest
  report_dir:
    description: Directory of the JSON report (none written when unset).
    type: path
  textfile_dir:
    description: Directory of the Prometheus node-exporter textfile collector (none when unset).
    type: path
  keep_containers:
    description: Leave the throwaway containers and volumes for inspection.
    type: bool
    default: false
extends_documentation_fragment:
  - kailash_backup
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Verifies the set's checksums only; starts no container and writes no report.
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: kailash_backup
  - module: kailash_restore
"""

EXAMPLES = r"""
- name: Drill the latest set
  kailash_restore_drill:
    backup_root: /var/backups/kailash/kailash
    project: kailash
    report_dir: /var/lib/kailash/reports
    textfile_dir: /var/lib/prometheus/node-exporter
  register: drill
  failed_when: not drill.passed
"""

RETURN = r"""
passed:
  description: Checksums verified and every service restored with matching counts.
  returned: always
  type: bool
set:
  description: Name of the set drilled.
  returned: when a set was found
  type: str
checksums_ok:
  description: Every file matched its size and sha256.
  returned: always
  type: bool
error:
  description: Why the set could not be drilled at all (missing, corrupt, wrong key).
  returned: when the set failed verification
  type: str
services:
  description:
    - Per service - C(passed), C(counts), C(differences), C(duration_s), C(image), or C(error).
  returned: always
  type: dict
last_success_at:
  description: Time of the last passed drill (this one when it passed).
  returned: when report_dir is set
  type: str
duration_s:
  description: Seconds the drill took.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.kailash_backup import (  # noqa: E402
    BackupError,
    backup_argument_spec,
    drill,
    settings_from_params,
)

ARGUMENT_SPEC = backup_argument_spec(
    {
        "set": {"type": "str", "default": "latest"},
        "report_dir": {"type": "path"},
        "textfile_dir": {"type": "path"},
        "keep_containers": {"type": "bool", "default": False},
    }
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    if p["backend"] != "docker":
        module.fail_json(msg="restore drills start throwaway containers: backend must be docker")
    try:
        result = drill(
            settings_from_params(p),
            p["set"],
            report_dir=p["report_dir"],
            textfile_dir=p["textfile_dir"],
            check_mode=module.check_mode,
            keep=p["keep_containers"],
        )
    except BackupError as exc:
        module.fail_json(msg=f"restore drill could not run: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
