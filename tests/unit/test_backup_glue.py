"""Unit tests (no service, no Docker) of the backup modules' options datastores and
datastore_secrets (plugins/module_utils/kailash_backup/ansible_glue.py): how the playbooks,
which name no datastore, hand each datastore its connection settings (issue #12)."""

from __future__ import annotations

import pytest

from kailash_testlib import load_backup_core


@pytest.fixture(scope="module")
def kb():
    return load_backup_core()


def params(**over):
    base = {
        "backup_root": "/b",
        "project": "p",
        "backend": "docker",
        "services": ["postgresql", "redis"],
        "encryption_key": None,
        "docker_cli": "docker",
        "datastores": {},
        "datastore_secrets": {},
        "postgresql": {},
        "redis": {},
        "chromadb": {},
        "neo4j": {},
    }
    base.update(over)
    return base


def test_datastores_and_their_secrets_merge_and_the_own_option_wins(kb) -> None:
    s = kb.settings_from_params(
        params(
            datastores={
                "postgresql": {"user": "u", "port": "5433", "database": "d"},
                "redis": {"port": 6379},
            },
            datastore_secrets={"postgresql": {"password": "pw"}, "redis": {"password": "rpw"}},
            redis={"port": 6380, "user": None},
        )
    )
    assert s.datastores["postgresql"] == {
        "user": "u",
        "port": 5433,
        "database": "d",
        "password": "pw",
    }
    assert s.datastores["redis"] == {"port": 6380, "password": "rpw"}
    assert s.datastores["chromadb"] == {} and s.datastores["neo4j"] == {}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"datastores": {"memcached": {"port": 1}}}, "datastores: unknown datastore 'memcached'"),
        (
            {"datastores": {"redis": {"password": "x"}}},
            "datastores.redis: unknown or misplaced key(s) password",
        ),
        (
            {"datastore_secrets": {"redis": {"port": 1}}},
            "datastore_secrets.redis: unknown or misplaced key(s) port",
        ),
        ({"datastores": {"redis": {"port": "six"}}}, "datastores.redis: "),
        ({"datastores": {"redis": "6379"}}, "datastores.redis: a mapping of settings, got str"),
        ({"datastores": ["redis"]}, "datastores: a mapping datastore -> settings, got list"),
    ],
)
def test_bad_datastores_fail_naming_the_option_and_key(kb, over, message) -> None:
    with pytest.raises(kb.BackupError) as err:
        kb.settings_from_params(params(**over))
    assert message in str(err.value)


def test_a_password_put_with_the_plain_settings_is_refused_without_showing_it(kb) -> None:
    with pytest.raises(kb.BackupError) as err:
        kb.settings_from_params(params(datastores={"redis": {"port": 1, "password": "s3cr3t"}}))
    assert "datastores.redis" in str(err.value) and "password" in str(err.value)
    assert "s3cr3t" not in str(err.value)
