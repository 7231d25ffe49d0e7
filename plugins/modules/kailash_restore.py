#!/usr/bin/python
"""Ansible module kailash_restore: verify a backup set, then restore it into the stack."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kailash_restore
short_description: Verify a Kailash backup set and restore it into the running datastores
description:
  - First verifies the whole set without touching anything - the manifest, the size and
    sha256 of every file, the encryption key's fingerprint, and that each server's version
    can take the set. A corrupt, truncated or mismatched set is refused with an error naming
    the file, and the running data stays as it was.
  - Then restores each service - PostgreSQL with C(pg_restore --create) in the server's
    container (each database dropped with C(FORCE) and recreated; globals replayed first),
    Redis by stopping it and placing the RDB (with AOF enabled - the RDB is loaded by a
    temporary server with AOF off, AOF is turned on there, which rewrites it, and the real
    server starts from that), ChromaDB into its stopped server's persistent directory,
    Neo4j with C(neo4j-admin database load) while it is stopped.
  - Finally compares every content count with the manifest (RV(ok), RV(failures)).
version_added: "0.1.0"
author:
  - Kailash platform team
options:
  set:
    description: Set to restore - its name under O(backup_root), a path, or V(latest).
    type: str
    default: latest
  verify_only:
    description: Only verify the set (checksums, key, versions); change nothing.
    type: bool
    default: false
extends_documentation_fragment:
  - kailash_backup
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details: Verifies the set completely (read-only) and reports what would be restored.
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: kailash_backup
  - module: kailash_restore_drill
"""

EXAMPLES = r"""
- name: Restore the latest set
  kailash_restore:
    backup_root: /var/backups/kailash/kailash
    project: kailash
    postgresql: {user: kailash_user, password: "{{ postgresql_password }}"}
    redis: {user: kailash-admin, password: "{{ redis_admin_password }}"}
  register: restored
  failed_when: not restored.ok

- name: Only check a set
  kailash_restore:
    backup_root: /var/backups/kailash/kailash
    set: 20261126T141502Z
    verify_only: true
"""

RETURN = r"""
set:
  description: Name of the set.
  returned: always
  type: str
  sample: 20261126T141502Z
path:
  description: Its path.
  returned: always
  type: str
verified:
  description: The set passed verification (always true in a successful result).
  returned: always
  type: bool
ok:
  description: Every restored service's counts match the manifest.
  returned: when restored
  type: bool
failures:
  description: One line per service whose counts differ.
  returned: when restored
  type: list
  elements: str
services:
  description:
    - Per service - C(counts) found after the restore, C(counts_match), C(differences),
      C(duration_s), C(address) (its IP on the data network, for a probe).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.kailash_backup import (  # noqa: E402
    BackupError,
    backup_argument_spec,
    restore,
    settings_from_params,
)

ARGUMENT_SPEC = backup_argument_spec(
    {
        "set": {"type": "str", "default": "latest"},
        "verify_only": {"type": "bool", "default": False},
    }
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    try:
        result = restore(
            settings_from_params(p),
            p["set"],
            check_mode=module.check_mode,
            verify_only=p["verify_only"],
        )
    except BackupError as exc:
        module.fail_json(msg=f"restore refused or failed: {exc}")
    if module.check_mode:
        result["changed"] = True
    module.exit_json(**result)


if __name__ == "__main__":
    main()
