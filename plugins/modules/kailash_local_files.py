#!/usr/bin/python
"""Ansible module kailash_local_files: its documentation (the work is done by the action
plugin of the same name, plugins/action/kailash_local_files.py, in the controller's process)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kailash_local_files
short_description: Write files on the control node without a module round trip
description:
  - Ensures directories and text files on the control node (reports, notes next to the
    checkout), in the controller's own process. It is an action plugin; no module is sent
    or run, which saves the 0.3 to 0.5 s a module run costs.
  - A file is rewritten only when its content differs, atomically (a temporary file in the
    same directory, then renamed over the old one); a mode alone is fixed in place.
  - Directories are created with their parents; the mode applies to the named directory.
  - Always acts on the control node, whatever the task's host or C(delegate_to).
  - Supports check mode (reports what would change, changes nothing).
version_added: "1.0.0"
author:
  - kailash-deploy
options:
  directories:
    description: Directories to ensure, in order.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Path on the control node.
        type: path
        required: true
      mode:
        description: Octal mode as a string, for example V('0755').
        type: str
        required: true
  files:
    description: Files to ensure, in order (their directories must exist or be listed).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Path on the control node.
        type: path
        required: true
      content:
        description: The whole text of the file, written as UTF-8 (no newline is added).
        type: str
        required: true
      mode:
        description: Octal mode as a string, for example V('0644').
        type: str
        required: true
notes:
  - Not for secrets that must not touch the control node's disk unencrypted. Nothing is
    diffed or logged, but the files are written as given.
seealso:
  - module: kailash_files
"""

EXAMPLES = r"""
- name: Write the reports on the control node
  kailash_local_files:
    directories:
      - {path: "{{ playbook_dir }}/../reports", mode: "0755"}
    files:
      - path: "{{ playbook_dir }}/../reports/health.json"
        content: "{{ report | to_nice_json }}\n"
        mode: "0644"
"""

RETURN = r"""
changed_paths:
  description: The directories and files that were (or in check mode would be) changed.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def main() -> None:
    """Run as a module (only when the action plugin is not found): refuse clearly."""
    module = AnsibleModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": []},
            "files": {"type": "list", "elements": "dict", "default": []},
        },
        supports_check_mode=True,
    )
    module.fail_json(msg="kailash_local_files runs as an action plugin on the control node: "
                         "add plugins/action to action_plugins (ansible.cfg does)")


if __name__ == "__main__":
    main()
