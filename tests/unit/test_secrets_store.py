"""Unit tests for the kailash_secrets filters (roles/kailash_secrets/filter_plugins) and the
app's side of a rotation (kailash_app.config / kailash_app.tokens: JWT grace period)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import sys
import time
from pathlib import Path

import jwt
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ks = _load("kailash_secrets_filters",
           ROOT / "roles" / "kailash_secrets" / "filter_plugins" / "kailash_secrets.py")
sys.path.insert(0, str(ROOT / "roles" / "nexus" / "files" / "app"))
from kailash_app import config, tokens  # noqa: E402

CONTROL, HOST = "control node: /c/secrets.yml", "docker: /h/secrets.yml"


def store(where: str, data: dict | None, kind: str) -> dict:
    return {"where": where, "data": data, "kind": kind}


# ------------------------------------------------------------------ reconcile
def test_one_store_is_taken_as_it_is():
    state = ks.reconcile([store(CONTROL, None, "control"), store(HOST, {"a": "x"}, "host")])
    assert state["secrets"] == {"a": "x"} and not state["conflicts"]
    assert state["found"] == [HOST]


def test_no_store_found():
    state = ks.reconcile([store(CONTROL, None, "control"), store(HOST, None, "host")])
    assert state["secrets"] == {} and state["found"] == []


def test_stores_are_merged_key_by_key():
    state = ks.reconcile([store(CONTROL, {"a": "x"}, "control"),
                          store(HOST, {"a": "x", "b": "y"}, "host")])
    assert state["secrets"] == {"a": "x", "b": "y"} and not state["conflicts"]


def test_different_values_are_a_conflict_naming_both_stores():
    state = ks.reconcile([store(CONTROL, {"a": "x", "b": "y"}, "control"),
                          store(HOST, {"a": "z", "b": "y"}, "host")])
    assert state["conflicts"] == [{"name": "a", "where": [CONTROL, HOST]}]


@pytest.mark.parametrize(("prefer", "value"), [("control", "x"), ("host", "z")])
def test_a_conflict_is_settled_only_deliberately(prefer, value):
    state = ks.reconcile([store(CONTROL, {"a": "x"}, "control"), store(HOST, {"a": "z"}, "host")],
                         prefer=prefer)
    assert state["secrets"] == {"a": value} and not state["conflicts"]


def test_a_pending_rotation_explains_a_store_written_before_the_other():
    rotated = {"a": "new", ks.RESERVED: {"pending": ["a"], "previous": {"a": "old"},
                                         "started": 5}}
    for control, host in ((rotated, {"a": "old"}), ({"a": "old"}, rotated)):
        state = ks.reconcile([store(CONTROL, control, "control"), store(HOST, host, "host")])
        assert state["secrets"] == {"a": "new"} and not state["conflicts"]
        assert state["rotation"]["pending"] == ["a"]
        assert state["rotation"]["previous"] == {"a": "old"}


def test_a_pending_rotation_does_not_explain_a_third_value():
    rotated = {"a": "new", ks.RESERVED: {"pending": ["a"], "previous": {"a": "old"}}}
    state = ks.reconcile([store(CONTROL, rotated, "control"), store(HOST, {"a": "other"}, "host")])
    assert [c["name"] for c in state["conflicts"]] == ["a"]


def test_not_a_mapping_is_refused():
    with pytest.raises(ks.AnsibleFilterError, match="not a YAML mapping"):
        ks.reconcile([store(CONTROL, ["a"], "control")])


# ------------------------------------------------------------------ rotate / finish
def test_rotate_keeps_the_previous_values_and_the_old_jwt_secret():
    state = ks.reconcile([store(CONTROL, {"a": "1", "nexus_jwt_secret": "j1", "b": "2"},
                                "control")])
    out = ks.rotate(state, ["a", "nexus_jwt_secret"], {"a": "A", "nexus_jwt_secret": "J"},
                    now=1000, jwt_grace=60)
    assert out["secrets"] == {"a": "A", "nexus_jwt_secret": "J", "b": "2"}
    assert out["rotation"]["pending"] == ["a", "nexus_jwt_secret"]
    assert out["rotation"]["previous"] == {"a": "1", "nexus_jwt_secret": "j1"}
    assert out["rotation"]["jwt_previous"] == [{"secret": "j1", "until": 1060}]
    assert out["resumed"] is False
    assert state["secrets"]["a"] == "1"  # the input is left alone


def test_rotate_resumes_a_pending_rotation_with_its_values():
    state = ks.reconcile([store(CONTROL, {"a": "A", ks.RESERVED: {"pending": ["a"],
                                                                   "previous": {"a": "1"}}},
                                "control")])
    out = ks.rotate(state, ["a"], {"a": "ANOTHER"}, now=1000, jwt_grace=60)
    assert out["secrets"]["a"] == "A" and out["resumed"] is True


def test_rotate_refuses_unknown_names():
    state = ks.reconcile([store(CONTROL, {"a": "1"}, "control")])
    with pytest.raises(ks.AnsibleFilterError, match="do not exist: b"):
        ks.rotate(state, ["b"], {"b": "B"}, now=1, jwt_grace=1)


def test_finish_and_store_content():
    state = ks.reconcile([store(CONTROL, {"nexus_jwt_secret": "j1"}, "control")])
    out = ks.finish(ks.rotate(state, ["nexus_jwt_secret"], {"nexus_jwt_secret": "J"},
                              now=1000, jwt_grace=60))
    data = ks.to_store(out)
    assert data == {"nexus_jwt_secret": "J",
                    ks.RESERVED: {"jwt_previous": [{"secret": "j1", "until": 1060}]}}
    # the next run reads it back: nothing pending, the grace entry until it expires
    again = ks.reconcile([store(CONTROL, data, "control")], now=1059)
    assert again["rotation"]["pending"] == [] and again["rotation"]["jwt_previous"]
    expired = ks.reconcile([store(CONTROL, data, "control")], now=1060)
    assert expired["rotation"]["jwt_previous"] == []
    plain = ks.finish(ks.reconcile([store(CONTROL, {"x": "1"}, "control")]))
    assert ks.to_store(plain) == {"x": "1"}


def test_jwt_accept_lines():
    rot = {"jwt_previous": [{"secret": "old", "until": 2000}, {"secret": "older", "until": 1500}]}
    assert ks.jwt_accept_lines(rot, 1400) == "\n1500 older\n2000 old"
    assert ks.jwt_accept_lines(rot, 1600) == "\n2000 old"
    assert ks.jwt_accept_lines({}, 0) == ""


# ------------------------------------------------------------------ files, helpers
def test_file_plan():
    hosts = [{"host": "h", "where": "h: /s", "files": {"edge/ca.key": "1", "backup.key": "9"}}]
    plan = ks.file_plan({"edge/ca.key": None, "backup.key": "9"}, hosts)
    assert plan == {"restore": {"edge/ca.key": "h"}, "conflicts": []}
    plan = ks.file_plan({"edge/ca.key": "2", "backup.key": "9"}, hosts)
    assert [c["name"] for c in plan["conflicts"]] == ["edge/ca.key"]
    plan = ks.file_plan({"edge/ca.key": "2", "backup.key": "9"}, hosts, prefer="host")
    assert plan == {"restore": {"edge/ca.key": "h"}, "conflicts": []}
    plan = ks.file_plan({"edge/ca.key": "2", "backup.key": "9"}, hosts, prefer="control")
    assert plan == {"restore": {}, "conflicts": []}


def test_random_secret():
    value = ks.random_secret(48)
    assert len(value) == 48 and value.isalnum() and value != ks.random_secret(48)
    with pytest.raises(ks.AnsibleFilterError):
        ks.random_secret(8)


def test_scram_verifier_matches_rfc_5802():
    """Recompute the verifier the way PostgreSQL checks a SCRAM-SHA-256 login."""
    verifier = ks.scram_sha256("s3cret-password", salt=b"0123456789abcdef")
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, server_key = keys.split(":")
    assert method == "SCRAM-SHA-256" and iterations == "4096"
    salted = hashlib.pbkdf2_hmac("sha256", b"s3cret-password", base64.b64decode(salt), 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert base64.b64decode(stored_key) == hashlib.sha256(client_key).digest()
    assert base64.b64decode(server_key) == hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert ks.scram_sha256("x") != ks.scram_sha256("x")  # a random salt each time


# ------------------------------------------------------------------ the app's JWT grace period
CURRENT = "c" * 40
OLD = "o" * 40


def test_secret_file_first_line_signs_the_others_are_accepted(tmp_path, monkeypatch):
    f = tmp_path / "jwt"
    f.write_text(f"{CURRENT}\n{int(time.time()) + 60} {OLD}\n0 {'n' * 40}\n99 short\n")
    monkeypatch.setenv("NEXUS_JWT_SECRET_FILE", str(f))
    monkeypatch.delenv("NEXUS_JWT_PREVIOUS_SECRETS", raising=False)
    monkeypatch.delenv("NEXUS_JWT_PREVIOUS_SECRETS_FILE", raising=False)
    assert config.jwt_secret() == CURRENT
    assert [s for s, _ in config.jwt_previous_secrets()] == [OLD, "n" * 40]


def test_verify_accepts_a_previous_secret_only_in_its_grace_period():
    old_token = tokens.issue(sub="u", secret=OLD)
    now = int(time.time())
    assert tokens.verify(old_token, CURRENT, previous=[(OLD, now + 60)])["sub"] == "u"
    with pytest.raises(jwt.InvalidSignatureError):
        tokens.verify(old_token, CURRENT, previous=[(OLD, now - 1)])
    with pytest.raises(jwt.InvalidSignatureError):
        tokens.verify(tokens.issue(secret="x" * 40), CURRENT, previous=[(OLD, 0)])


def test_resign_previous():
    old_token = tokens.issue(sub="u", ttl=60, secret=OLD)
    fresh = tokens.resign_previous(old_token, CURRENT, [OLD])
    claims = jwt.decode(fresh, CURRENT, algorithms=["HS256"])
    assert claims == jwt.decode(old_token, OLD, algorithms=["HS256"])
    assert tokens.resign_previous(tokens.issue(secret=CURRENT), CURRENT, [OLD]) is None
    assert tokens.resign_previous("not-a-token", CURRENT, [OLD]) is None
    expired = tokens.issue(ttl=-10, secret=OLD)
    assert tokens.resign_previous(expired, CURRENT, [OLD]) is None


@pytest.mark.parametrize("previous", [[(OLD, 0)], []])
def test_middleware_rewrites_only_previous_secret_tokens(previous):
    import asyncio

    seen = {}

    async def app(scope, receive, send):
        seen.update(dict(scope["headers"]))

    mw = tokens.AcceptPreviousSecrets(app, secret=CURRENT, previous=previous)
    old_token = tokens.issue(sub="u", secret=OLD)
    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {old_token}".encode())]}
    asyncio.run(mw(scope, None, None))
    token = seen[b"authorization"].decode()[7:]
    if previous:
        assert jwt.decode(token, CURRENT, algorithms=["HS256"])["sub"] == "u"
    else:
        assert token == old_token
