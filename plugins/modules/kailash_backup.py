#!/usr/bin/python
"""Ansible module kailash_backup: one backup set of the Kailash datastores."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kailash_backup
short_description: Back up the Kailash datastores into one checksummed, atomically promoted set
description:
  - Runs each datastore's native tool and writes one directory per run under O(backup_root)
    with every artefact and a C(manifest.json) (server and tool versions, sizes, sha256 of
    every file, timings, content counts).
  - PostgreSQL - C(pg_dumpall --globals-only) and C(pg_dump -Fc) per database, in the
    server's container. Redis - C(BGSAVE) as the admin ACL user, waits for it (C(LASTSAVE),
    C(INFO persistence)), copies the RDB. ChromaDB - stops the server for the copy of its
    persistent directory (SQLite and segment files, consistent), starts it again. Neo4j 5
    community - C(neo4j-admin database dump) in a maintenance window (the server is
    stopped, dumped, started and checked).
  - The set is written under a temporary name (C(.partial-...)) and renamed into place only
    when every service succeeded and every file was re-read and checksummed. A failed run
    removes its partial directory and never touches an earlier set.
  - Retention after a successful run - keep the newest O(keep_last) sets, plus the newest set
    of each of the last O(keep_daily) days and O(keep_weekly) ISO weeks.
version_added: "0.1.0"
author:
  - Kailash platform team
options:
  compress:
    description:
      - Gzip (level 1) every artefact except PostgreSQL's custom-format dumps, which
        C(pg_dump -Fc) compresses already.
    type: bool
    default: false
  label:
    description: Free text stored in the manifest (e.g. C(before-upgrade)).
    type: str
    default: ""
  keep_last:
    description: Newest sets always kept.
    type: int
    default: 7
  keep_daily:
    description: Days (with sets) whose newest set is kept.
    type: int
    default: 7
  keep_weekly:
    description: ISO weeks (with sets) whose newest set is kept.
    type: int
    default: 4
extends_documentation_fragment:
  - kailash_backup
  - action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Finds the services, plans the set name and the retention; writes, stops and dumps nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: kailash_restore
  - module: kailash_restore_drill
"""

EXAMPLES = r"""
- name: Back up the dev stack, encrypted
  kailash_backup:
    backup_root: /var/backups/kailash/kailash
    project: kailash
    encryption_key: "{{ lookup('ansible.builtin.file', kailash_secrets_dir ~ '/backup.key') }}"
    compress: true
    postgresql:
      user: kailash_user
      password: "{{ postgresql_password }}"
    redis:
      user: kailash-admin
      password: "{{ redis_admin_password }}"
  register: backup

- name: Show the set
  ansible.builtin.debug:
    msg: "{{ backup.set }}: {{ backup.totals.files }} files, {{ backup.totals.bytes }} bytes"
"""

RETURN = r"""
set:
  description: Name of the set (its directory under O(backup_root)).
  returned: always
  type: str
  sample: 20261126T141502Z
path:
  description: Path of the promoted set (in check mode, where it would be).
  returned: always
  type: str
  sample: /var/backups/kailash/kailash/20261126T141502Z
services:
  description: Services backed up (or that would be).
  returned: always
  type: list
  elements: str
  sample: [chromadb, postgresql, redis]
not_deployed:
  description: Services asked for that have no container (e.g. Neo4j without an image).
  returned: always
  type: list
  elements: str
  sample: [neo4j]
deleted:
  description: Older sets removed by the retention (in check mode RV(would_delete)).
  returned: success and not check mode
  type: list
  elements: str
would_delete:
  description: Sets the retention would remove.
  returned: check mode
  type: list
  elements: str
duration_s:
  description: Seconds the run took.
  returned: success and not check mode
  type: float
  sample: 15.98
totals:
  description: Files and bytes of the set.
  returned: success and not check mode
  type: dict
  sample: {files: 4, bytes: 1464853}
manifest:
  description: The set's manifest.json (counts per service under C(services.<name>.counts)).
  returned: success and not check mode
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.kailash_backup import (  # noqa: E402
    BackupError,
    backup,
    backup_argument_spec,
    settings_from_params,
)

ARGUMENT_SPEC = backup_argument_spec(
    {
        "compress": {"type": "bool", "default": False},
        "label": {"type": "str", "default": ""},
        "keep_last": {"type": "int", "default": 7},
        "keep_daily": {"type": "int", "default": 7},
        "keep_weekly": {"type": "int", "default": 4},
    }
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    if p["keep_last"] < 1 or p["keep_daily"] < 0 or p["keep_weekly"] < 0:
        module.fail_json(msg="keep_last must be >= 1, keep_daily and keep_weekly >= 0")
    try:
        settings = settings_from_params(
            p,
            compress=p["compress"],
            label=p["label"],
            keep_last=p["keep_last"],
            keep_daily=p["keep_daily"],
            keep_weekly=p["keep_weekly"],
        )
        result = backup(settings, check_mode=module.check_mode)
    except BackupError as exc:
        module.fail_json(msg=f"backup failed, no set promoted: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
