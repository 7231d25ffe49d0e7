"""The static checks of plugins/filter/config_check.py and plugins/filter/variables.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FILTERS = Path(__file__).resolve().parents[2] / "plugins" / "filter"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"kailash_filter_{name}", FILTERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cc = _load("config_check")
variables = _load("variables")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"shared_buffers": "1GB", "work_mem": "4MB", "effective_cache_size": 524288}, []),
        ({"shared_buffers": "lots"}, ["postgresql_settings.shared_buffers must be an integer"]),
        ({"max_connections": "-3"}, ["postgresql_settings.max_connections '-3' is outside"]),
        ({"max_connections": 300000}, ["outside the valid range 1 .. 262143"]),
        ({"work_mem": "4XB"}, ["postgresql_settings.work_mem must be an integer"]),
        ({"checkpoint_timeout": "5min", "statement_timeout": "30s"}, []),
        ({"checkpoint_timeout": "10"}, ["checkpoint_timeout '10' is outside the valid range 30"]),
        ({"random_page_cost": 1.1, "jit": "off", "fsync": True}, []),
        ({"random_page_cost": "fast"}, ["random_page_cost must be a number"]),
        ({"jit": "maybe"}, ["jit must be a boolean"]),
        ({"jit": "of"}, []),  # PostgreSQL accepts unique prefixes of on/off (two letters)
        ({"huge_pages": "TRY"}, []),
        ({"huge_pages": "maybe"}, ["huge_pages must be one of off, on, try"]),
        ({"TimeZone": "UTC", "timezone": "Europe/Berlin", "DateStyle": "iso, mdy"}, []),
        ({"shared_bufers": "1GB"}, ["postgresql_settings.shared_bufers: PostgreSQL 15 has no"]),
        ({"pg_stat_statements.max": 5000}, []),  # extension settings: any value
        ({"work_mem": None}, ["must be a single value"]),
    ],
)
def test_postgresql_settings(settings: dict, expected: list[str]) -> None:
    errors = cc.kailash_pg_settings_errors(settings)
    assert len(errors) == len(expected), errors
    for error, text in zip(errors, expected, strict=True):
        assert text in error


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"maxmemory": "100mb", "maxmemory-policy": "allkeys-lfu", "appendonly": "yes"}, []),
        ({"maxmemory": "lots"}, ["redis_settings.maxmemory must be a number"]),
        ({"maxmemory-policy": "lru"}, ["redis_settings.maxmemory-policy must be one of"]),
        ({"appendonly": "maybe"}, ["redis_settings.appendonly must be yes or no"]),
        ({"appendonly": True, "hz": 50}, []),
        ({"maxmemorx": "1gb"}, ["redis_settings.maxmemorx: Redis 7.0 has no config directive"]),
        ({"hz": "1\nuser evil on"}, ["must be a single-line value"]),
    ],
)
def test_redis_settings(settings: dict, expected: list[str]) -> None:
    errors = cc.kailash_redis_settings_errors(settings)
    assert len(errors) == len(expected), errors
    for error, text in zip(errors, expected, strict=True):
        assert text in error


def test_subnets() -> None:
    ok = {"edge": "10.214.0.0/24", "app": "10.214.1.0/24", "data": "10.214.2.0/24"}
    assert cc.kailash_subnet_errors(ok) == []
    same = dict(ok, app="10.214.0.0/24")
    assert cc.kailash_subnet_errors(same) == [
        "kailash_networks.edge (10.214.0.0/24) overlaps kailash_networks.app (10.214.0.0/24)"
    ]
    assert (
        "must be a subnet in CIDR form" in cc.kailash_subnet_errors(dict(ok, data="10.1.2.3/24"))[0]
    )
    taken = [
        {"name": "Docker network bridge", "subnet": "10.214.0.0/16"},
        {"name": "host route via eth0", "subnet": "192.168.0.0/24"},
    ]
    errors = cc.kailash_subnet_errors(ok, taken)
    assert len(errors) == 3 and all("overlaps Docker network bridge" in e for e in errors)
    assert cc.kailash_subnet_errors(ok, [{"name": "x", "subnet": "fd00::/64"}]) == []


def test_rejection_names_the_variable_and_redacts_secrets() -> None:
    pg = (
        'LOG:  invalid value for parameter "TimeZone": "Mars/Olympus"\n'
        'LOG:  skipping missing configuration file "/tmp/postgresql.auto.conf"\n'
        'FATAL:  configuration file "/etc/postgresql/postgresql.conf" contains errors'
    )
    msg = cc.kailash_config_rejection(
        pg,
        "postgresql",
        "img",
        {"timezone": "postgresql_settings.timezone"},
        r'parameter "(\w+)"',
        ["postgresql.conf"],
    )
    assert "Set by: postgresql_settings.timezone." in msg
    assert "skipping missing" not in msg and "Mars/Olympus" in msg
    assert "nothing was changed" in msg
    redis = (
        "*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\n"
        "Reading the configuration file, at line 20\n"
        ">>> 'user kailash-admin on >s3cretPassw0rd #0123abcd ~* &* +@all bogus'\nError in user"
    )
    msg = cc.kailash_config_rejection(
        redis, "redis", "img", {"user": "redis_password"}, r">>> '(\S+)"
    )
    assert "s3cretPassw0rd" not in msg and "0123abcd" not in msg
    assert "Set by: redis_password." in msg and ">>> 'user kailash-admin on >***" in msg
    lib = 'FATAL:  could not access file "no_such_ext": No such file or directory'
    msg = cc.kailash_config_rejection(
        lib,
        "postgresql",
        "img",
        {},
        r'parameter "(\w+)"',
        [],
        {
            "postgresql_settings.shared_preload_libraries": "no_such_ext",
            "postgresql_settings.work_mem": "4MB",
        },
    )
    assert "Set by: postgresql_settings.shared_preload_libraries." in msg
    assert "work_mem" not in msg


def test_unknown_variables_are_named_with_the_closest_known_ones() -> None:
    names = [
        "edge_tls_days",
        "edge_cert_valid_days",
        "redis_memory_limt",
        "kailash_project",
        "postgresql__planned",
        "kailash_health__results",
        "ansible_host",
        "nexus_api_replicas",
    ]
    errors = variables.kailash_unknown_variables(
        names, ["edge", "redis", "kailash", "postgresql", "nexus"]
    )
    assert len(errors) == 2, errors
    assert errors[0].startswith("edge_tls_days is not a setting of this project")
    assert "edge_cert_valid_days" in errors[0]
    assert "did you mean redis_memory_limit" in errors[1]
