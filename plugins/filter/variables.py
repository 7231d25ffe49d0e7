"""Unknown variables: a setting the user spelled wrong is refused, not silently ignored.

``edge_tls_days: forever`` used to deploy with rc 0: no role has such a variable, so
Ansible ignored it. ``kailash_unknown_variables`` names every variable the user set (in
the inventory or with ``-e``) whose name has a role's prefix but that appears nowhere in
this project's roles, playbooks and test playbooks, with the closest known names; a
setting that was replaced by another (``REPLACED``) is refused naming its replacement.
"""

from __future__ import annotations

import difflib
import re
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_WORD = re.compile(r"\b[a-z][a-z0-9_]*\b")

# Settings that were removed in favour of another: setting the old name is refused with
# the name to set instead (whatever the project's files still mention).
REPLACED = {
    # one backup retention for both targets (issue #12)
    "kailash_k8s_backup_keep_last": "kailash_backup_keep_last",
    "kailash_k8s_backup_keep_daily": "kailash_backup_keep_daily",
    "kailash_k8s_backup_keep_weekly": "kailash_backup_keep_weekly",
}


@cache
def _known_names(root: str = str(ROOT)) -> frozenset[str]:
    """Every identifier in the project's roles, playbooks, test playbooks and site.yml."""
    base = Path(root)
    files = [base / "site.yml"]
    for folder in ("roles", "playbooks"):
        files += [p for p in (base / folder).rglob("*")
                  if p.is_file() and p.suffix in (".yml", ".yaml", ".j2", ".py", ".md")]
    # the test playbooks (not the tests' Python, which spells wrong names on purpose)
    for folder in ("tests", "molecule"):
        files += [p for p in (base / folder).rglob("*") if p.suffix in (".yml", ".yaml")]
    names: set[str] = set()
    for path in files:
        if path.is_file():
            names.update(_WORD.findall(path.read_text(errors="replace")))
    return frozenset(names)


def kailash_unknown_variables(names: Any, prefixes: Any, root: str = str(ROOT)) -> list[str]:
    """Errors for the variables in ``names`` that start with one of ``prefixes`` + ``_``
    (not a role-internal one with ``__`` in it) and that the project does not know."""
    known = _known_names(root)
    pattern = re.compile(rf"^({'|'.join(re.escape(p) for p in prefixes)})_(?!_)")
    errors = []
    for name in sorted(set(names)):
        if name in REPLACED:
            errors.append(
                f"{name} is no longer a setting of this project (it would be ignored): "
                f"it was replaced by {REPLACED[name]}, set that instead"
            )
            continue
        match = pattern.match(str(name))
        if not match or name in known or "__" in name:  # <role>__x: internal facts
            continue
        family = sorted(k for k in known if k.startswith(match.group(1) + "_") and "__" not in k)
        close = difflib.get_close_matches(name, family, n=3, cutoff=0.6)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else (f"see roles/{match.group(1)}/defaults/main.yml for its settings")
        )
        errors.append(f"{name} is not a setting of this project (it would be ignored): {hint}")
    return errors


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kailash_unknown_variables": kailash_unknown_variables}
