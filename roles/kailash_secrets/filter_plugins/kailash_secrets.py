"""Filters of the kailash_secrets role: one view of the secret stores, rotation state, verifiers.

A stack's secrets live in up to two kinds of store, each a flat YAML map ``name: value``:

* the control node's ``<kailash_secrets_dir>/secrets.yml`` (git-ignored, per checkout), and
* the copy kept with the stack on every Docker host (``kailash_secrets_host_dir``, root only),
  which is what another checkout, laptop or CI runner finds when it has none of its own.

The reserved key ``kailash_rotation`` of a store records a rotation (playbooks/rotate_secrets.yml):

.. code-block:: yaml

    kailash_rotation:
      pending: [postgresql_password]          # rotated in the stores, not yet everywhere live
      previous: {postgresql_password: <old>}  # the values before it (to authenticate, to resume)
      started: 1795947000                     # unix time
      jwt_previous:                           # old JWT secrets the app still accepts
        - {secret: <old>, until: 1796033400}

``kailash_secrets_reconcile`` merges the stores into one state or names the secrets on which
they disagree. A difference is not a conflict when a pending rotation explains it (the store
that has the rotation holds the new value, the other one still the previous value: a run that
stopped between writing the two stores). Every function is pure; ``FilterModule.filters()``
exposes them to Ansible.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import os
import secrets
import string
from collections.abc import Iterable, Mapping
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # unit tests without Ansible
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment]

RESERVED = "kailash_rotation"


def _rotation_of(data: Mapping[str, Any] | None) -> dict[str, Any]:
    raw = (data or {}).get(RESERVED) or {}
    if not isinstance(raw, Mapping):
        raise AnsibleFilterError(f"{RESERVED} must be a mapping, got {type(raw).__name__}")
    return {
        "pending": sorted(str(n) for n in raw.get("pending") or []),
        "previous": dict(raw.get("previous") or {}),
        "started": int(raw.get("started") or 0),
        "jwt_previous": [dict(e) for e in raw.get("jwt_previous") or []],
    }


def _secrets_of(data: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (data or {}).items() if k != RESERVED}


def _merge_jwt_previous(lists: Iterable[list[dict]], now: int | None) -> list[dict]:
    """Union by secret (the latest ``until`` wins), expired entries dropped, oldest first."""
    best: dict[str, int] = {}
    for entries in lists:
        for entry in entries:
            secret, until = str(entry.get("secret", "")), int(entry.get("until") or 0)
            if secret and (now is None or until > now):
                best[secret] = max(until, best.get(secret, 0))
    return [{"secret": s, "until": u} for s, u in sorted(best.items(), key=lambda kv: kv[1])]


def reconcile(stores: list[Mapping[str, Any]], now: int | None = None,
              prefer: str = "") -> dict[str, Any]:
    """One state from the stores, or the conflicts between them.

    ``stores``: ``[{"where": <text>, "data": <mapping or None>, "kind": "control"|"host"}]``
    (``data`` None: that store does not exist). ``prefer`` ("control" or "host") settles
    conflicts deliberately in favour of that kind of store.

    Returns ``{"secrets", "rotation", "conflicts": [{"name", "where": [...]}], "found": [...]}``.
    """
    present = [s for s in stores if s.get("data") is not None]
    for s in present:
        if not isinstance(s["data"], Mapping):
            raise AnsibleFilterError(f"{s['where']}: not a YAML mapping of secret names to values")
    if prefer and prefer not in ("control", "host"):
        raise AnsibleFilterError(f"prefer must be control, host or empty, got {prefer!r}")
    rotations = {id(s): _rotation_of(s["data"]) for s in present}
    names = sorted({k for s in present for k in _secrets_of(s["data"])})
    values: dict[str, Any] = {}
    conflicts: list[dict[str, Any]] = []
    for name in names:
        seen = [(s, s["data"][name]) for s in present if name in s["data"]]
        distinct = {repr(v) for _, v in seen}
        if len(distinct) == 1:
            values[name] = seen[0][1]
            continue
        # explained by a pending rotation: its store has the new value, the others the previous
        chosen = []
        for s, new in seen:
            rot = rotations[id(s)]
            if name in rot["pending"] and name in rot["previous"]:
                old = rot["previous"][name]
                if all(v in (new, old) for _, v in seen):
                    chosen.append(new)
        if chosen and len({repr(v) for v in chosen}) == 1:
            values[name] = chosen[0]
            continue
        preferred = [v for s, v in seen if prefer and s.get("kind") == prefer]
        if preferred:
            values[name] = preferred[0]
            continue
        conflicts.append({"name": name, "where": [s["where"] for s, _ in seen]})

    pending = sorted({n for r in rotations.values() for n in r["pending"]})
    previous: dict[str, Any] = {}
    for s in present:
        for name, old in rotations[id(s)]["previous"].items():
            disagree = name in previous and previous[name] != old
            if disagree and not (prefer and s.get("kind") == prefer):
                conflicts.append({"name": f"{RESERVED}.previous.{name}",
                                  "where": [x["where"] for x in present]})
                continue
            previous[name] = old
    started = [r["started"] for r in rotations.values() if r["pending"] and r["started"]]
    rotation = {
        "pending": pending,
        "previous": {k: v for k, v in previous.items() if k in pending},
        "started": min(started) if started else 0,
        "jwt_previous": _merge_jwt_previous((r["jwt_previous"] for r in rotations.values()), now),
    }
    return {"secrets": values, "rotation": rotation, "conflicts": conflicts,
            "found": [s["where"] for s in present]}


def rotate(state: Mapping[str, Any], names: list[str], fresh: Mapping[str, str], now: int,
           jwt_grace: int, jwt_name: str = "nexus_jwt_secret") -> dict[str, Any]:
    """Start a rotation of ``names`` with the ``fresh`` values; resume a pending one instead.

    The previous values are kept (to authenticate against services that still have them,
    and to resume after a failure); an old JWT secret is accepted until ``now + jwt_grace``.
    """
    out = copy.deepcopy(dict(state))
    rot = out.setdefault("rotation", {"pending": [], "previous": {}, "started": 0,
                                      "jwt_previous": []})
    if rot.get("pending"):
        out["resumed"] = True
        return out
    unknown = sorted(set(names) - set(out["secrets"]))
    if unknown:
        raise AnsibleFilterError(f"cannot rotate secrets that do not exist: {', '.join(unknown)}")
    missing = sorted(n for n in names if not fresh.get(n))
    if missing:
        raise AnsibleFilterError(f"no new value for: {', '.join(missing)}")
    rot["pending"] = sorted(set(names))
    rot["previous"] = {n: out["secrets"][n] for n in rot["pending"]}
    rot["started"] = int(now)
    for n in rot["pending"]:
        out["secrets"][n] = fresh[n]
    if jwt_name in rot["pending"]:
        kept = [e for e in rot.get("jwt_previous") or []
                if e["secret"] not in (rot["previous"][jwt_name], fresh[jwt_name])]
        rot["jwt_previous"] = _merge_jwt_previous(
            [kept, [{"secret": rot["previous"][jwt_name], "until": int(now) + int(jwt_grace)}]],
            int(now))
    out["resumed"] = False
    return out


def finish(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state once a rotation is live everywhere: no pending names, no previous values."""
    out = copy.deepcopy(dict(state))
    rot = out.setdefault("rotation", {})
    rot.update({"pending": [], "previous": {}, "started": 0})
    rot.setdefault("jwt_previous", [])
    out.pop("resumed", None)
    return out


def to_store(state: Mapping[str, Any]) -> dict[str, Any]:
    """What a store file holds: the secrets, plus the rotation record when there is one."""
    data = dict(state["secrets"])
    rot = state.get("rotation") or {}
    record = {k: rot[k] for k in ("pending", "previous", "started", "jwt_previous") if rot.get(k)}
    if record:
        data[RESERVED] = record
    return data


def jwt_accept_lines(rotation: Mapping[str, Any] | None, now: int) -> str:
    """Extra lines of the app's JWT secret file: ``<until> <secret>`` per previous secret
    still in its grace period (kailash_app.config reads them), each after a newline."""
    entries = _merge_jwt_previous([list((rotation or {}).get("jwt_previous") or [])], int(now))
    return "".join(f"\n{e['until']} {e['secret']}" for e in entries)


def file_plan(control: Mapping[str, str | None], hosts: list[Mapping[str, Any]],
              prefer: str = "") -> dict[str, Any]:
    """What to do with the files kept next to secrets.yml (the edge CA and certificate, ...).

    ``control``: ``{name: checksum or None}``; ``hosts``: ``[{"host", "where", "files":
    {name: checksum or None}}]``. Returns ``{"restore": {name: host}, "conflicts": [...]}``:
    files only a Docker host has are restored to the control node (from that host); files
    the control node has are kept on every host afterwards; different copies are a conflict
    unless ``prefer`` says which side wins.
    """
    restore: dict[str, str] = {}
    conflicts: list[dict[str, Any]] = []
    for name in sorted(set(control) | {n for h in hosts for n in h["files"]}):
        mine = control.get(name)
        theirs = [(h, h["files"].get(name)) for h in hosts if h["files"].get(name)]
        sums = {c for _, c in theirs}
        if mine is None and theirs:
            if len(sums) == 1 or prefer == "host":
                restore[name] = theirs[0][0]["host"]
            else:
                conflicts.append({"name": name, "where": [h["where"] for h, _ in theirs]})
        elif mine is not None and any(c != mine for c in sums):
            if prefer == "host":
                restore[name] = next(h["host"] for h, c in theirs if c != mine)
            elif prefer != "control":
                conflicts.append({"name": name, "where": ["control node"]
                                  + [h["where"] for h, c in theirs if c != mine]})
    return {"restore": restore, "conflicts": conflicts}


def random_secret(length: int) -> str:
    """A new secret: ``length`` characters of ``A-Z a-z 0-9`` from the system's CSPRNG (the
    alphabet of the ``password`` lookup used before; safe in URLs, nginx maps and YAML)."""
    length = int(length)
    if length < 16:
        raise AnsibleFilterError(f"a secret needs at least 16 characters, got {length}")
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def scram_sha256(password: str, salt: bytes | str | None = None, iterations: int = 4096) -> str:
    """A PostgreSQL SCRAM-SHA-256 verifier, so ALTER ROLE never carries the password itself
    (what ``psql``'s ``\\password`` sends). ``salt``: bytes, base64 text, or None (random)."""
    if not isinstance(password, str) or not password:
        raise AnsibleFilterError("scram_sha256 needs a non-empty password")
    if salt is None:
        raw_salt = os.urandom(16)
    elif isinstance(salt, bytes):
        raw_salt = salt
    else:
        raw_salt = base64.b64decode(salt)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), raw_salt, int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode("ascii")

    return f"SCRAM-SHA-256${int(iterations)}:{b64(raw_salt)}${b64(stored_key)}:{b64(server_key)}"


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "kailash_secrets_reconcile": reconcile,
            "kailash_secrets_rotate": rotate,
            "kailash_secrets_finish": finish,
            "kailash_secrets_to_store": to_store,
            "kailash_secrets_jwt_accept_lines": jwt_accept_lines,
            "kailash_secrets_file_plan": file_plan,
            "kailash_secrets_scram_sha256": scram_sha256,
            "kailash_secrets_random": random_secret,
        }
