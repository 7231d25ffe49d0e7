"""Unit tests for the memory/CPU sizing filter plugin (plugins/filter/sizing.py)."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

FILTER_DIR = Path(__file__).resolve().parents[2] / "plugins" / "filter"
sys.path.insert(0, str(FILTER_DIR))

import sizing  # noqa: E402

KI = 1024
MI = 1024**2
GI = 1024**3
TI = 1024**4

Error = sizing.AnsibleFilterError


@contextmanager
def raises_naming(value: Any, *fragments: str) -> Iterator[pytest.ExceptionInfo[Exception]]:
    """Expect the plugin error; its message must quote ``value`` and contain ``fragments``."""
    with pytest.raises(Error) as excinfo:
        yield excinfo
    message = str(excinfo.value)
    assert repr(value) in message, message
    for fragment in fragments:
        assert fragment in message, message


# --------------------------------------------------------------------------- kailash_bytes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # plain byte counts
        (0, 0),
        (1, 1),
        (1048576, MI),
        (10 * TI, 10 * TI),
        ("0", 0),
        ("1048576", MI),
        ("  1048576  ", MI),
        (1536.9, 1536),
        (0.0, 0),
        # Kubernetes binary
        ("1Ki", KI),
        ("512Mi", 512 * MI),
        ("4Gi", 4 * GI),
        ("1Ti", TI),
        ("1.5Gi", 1536 * MI),
        ("0.5Mi", 512 * KI),
        ("1.1Ki", 1126),  # 1126.4 rounded down
        ("2.5", 2),  # fractional plain bytes rounded down
        # Kubernetes decimal SI
        ("1k", 1000),
        ("500M", 500 * 1000**2),
        ("2G", 2 * 1000**3),
        ("3T", 3 * 1000**4),
        ("1.5G", 1_500_000_000),
        # PostgreSQL (1024-based)
        ("64kB", 64 * KI),
        ("256MB", 256 * MI),
        ("1GB", GI),
        ("8TB", 8 * TI),
        # Redis (1024-based, case-insensitive)
        ("1kb", KI),
        ("100mb", 100 * MI),
        ("1gb", GI),
        ("1Gb", GI),
        ("1gB", GI),
        ("2KB", 2 * KI),
        # Neo4j / JVM (1024-based)
        ("2g", 2 * GI),
        ("512m", 512 * MI),
        ("1024K", MI),
        ("1t", TI),
    ],
)
def test_bytes_accepts(value: Any, expected: int) -> None:
    assert sizing.kailash_bytes(value) == expected
    assert type(sizing.kailash_bytes(value)) is int


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "invalid memory size"),
        ("   ", "invalid memory size"),
        (None, "invalid memory size"),
        (True, "invalid memory size"),
        (False, "invalid memory size"),
        (-1, "negative memory size"),
        (-0.5, "invalid memory size"),
        ("-1", "negative memory size"),
        ("-4Gi", "negative memory size"),
        ("4Gx", "unknown unit 'Gx'"),
        ("4gi", "unknown unit 'gi'"),
        ("4GiB", "unknown unit 'GiB'"),
        ("4B", "unknown unit 'B'"),
        ("Gi", "invalid memory size"),
        ("1.2.3Gi", "invalid memory size"),
        ("4 Gi", "invalid memory size"),
        (".5Gi", "invalid memory size"),
        ("1.Gi", "invalid memory size"),
        ("1e3", "invalid memory size"),
        ("+4Gi", "invalid memory size"),
        ("1.5GB", "decimal fraction"),
        ("1.5gb", "decimal fraction"),
        ("1.5g", "decimal fraction"),
        ("0.5K", "decimal fraction"),
        (float("nan"), "invalid memory size"),
        (float("inf"), "invalid memory size"),
        ([1], "invalid memory size"),
        ({"size": "4Gi"}, "invalid memory size"),
    ],
)
def test_bytes_rejects(value: Any, fragment: str) -> None:
    with raises_naming(value, fragment) as excinfo:
        sizing.kailash_bytes(value)
    # every rejection says what is accepted (or which units take fractions)
    assert "Ki/Mi/Gi/Ti" in str(excinfo.value)


def test_error_is_value_error_or_ansible_error() -> None:
    with pytest.raises(Error):
        sizing.kailash_bytes("nope")
    assert issubclass(Error, Exception)


def test_module_imports_without_ansible(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes "import ansible.errors" raise ImportError.
    monkeypatch.setitem(sys.modules, "ansible", None)
    monkeypatch.setitem(sys.modules, "ansible.errors", None)
    spec = importlib.util.spec_from_file_location("sizing_no_ansible", FILTER_DIR / "sizing.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert issubclass(module.AnsibleFilterError, ValueError)
    assert module.kailash_bytes("4Gi") == 4 * GI
    with pytest.raises(ValueError, match=re.escape("'4Gx'")):
        module.kailash_bytes("4Gx")


# ------------------------------------------------------------------------ output formats


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (1, "1"),
        (1000, "1000"),
        (1023, "1023"),
        (KI, "1Ki"),
        (1536, "1536"),
        (3 * KI, "3Ki"),
        (MI, "1Mi"),
        (1536 * MI, "1536Mi"),
        (4294967296, "4Gi"),
        (4 * GI, "4Gi"),
        (TI, "1Ti"),
        (1536 * GI, "1536Gi"),
        ("1.5Gi", "1536Mi"),
        ("2G", "1953125Ki"),
        ("1GB", "1Gi"),
    ],
)
def test_k8s_quantity(value: Any, expected: str) -> None:
    assert sizing.kailash_k8s_quantity(value) == expected
    assert sizing.kailash_bytes(expected) == sizing.kailash_bytes(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0kB"),
        (1000, "0kB"),
        (KI, "1kB"),
        (KI + 1, "1kB"),
        (1536, "1kB"),
        (64 * KI, "64kB"),
        (1536 * KI, "1536kB"),
        (9437184, "9MB"),
        (9437184 + 1023, "9MB"),
        (268435456, "256MB"),
        (1073741824, "1GB"),
        (1536 * MI, "1536MB"),
        (TI, "1TB"),
        (8 * TI, "8TB"),
        ("4Gi", "4GB"),
    ],
)
def test_pg_size(value: Any, expected: str) -> None:
    assert sizing.kailash_pg_size(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (1000, "1000"),
        (KI, "1k"),
        (512 * KI, "512k"),
        (1536, "1536"),
        (MI, "1m"),
        (MI + 1, "1m"),
        (MI + 512 * KI, "1m"),  # floored to MiB
        (512 * MI, "512m"),
        (1536 * MI, "1536m"),
        (2 * GI, "2g"),
        (2 * GI + 5, "2g"),
        (TI, "1024g"),
        ("4Gi", "4g"),
    ],
)
def test_jvm_size(value: Any, expected: str) -> None:
    assert sizing.kailash_jvm_size(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (1000, "1000"),
        (KI, "1kb"),
        (100 * KI, "100kb"),
        (MI, "1mb"),
        (MI + 512 * KI, "1mb"),
        (512 * MI, "512mb"),
        (GI, "1gb"),
        (GI + MI - 1, "1gb"),
        (1536 * MI, "1536mb"),
        (TI, "1024gb"),
        ("2Gi", "2gb"),
    ],
)
def test_redis_size(value: Any, expected: str) -> None:
    assert sizing.kailash_redis_size(value) == expected


@pytest.mark.parametrize(
    "func",
    [
        sizing.kailash_k8s_quantity,
        sizing.kailash_pg_size,
        sizing.kailash_jvm_size,
        sizing.kailash_redis_size,
    ],
)
@pytest.mark.parametrize("value", [-1, None, True, "4Gx", ""])
def test_formatters_reject_bad_sizes(func: Any, value: Any) -> None:
    with raises_naming(value):
        func(value)


@pytest.mark.parametrize("n", [KI, MI, 3 * MI, 4 * GI, 1536 * MI, 2 * TI])
def test_formatters_round_trip(n: int) -> None:
    assert sizing.kailash_bytes(sizing.kailash_k8s_quantity(n)) == n
    assert sizing.kailash_bytes(sizing.kailash_pg_size(n)) == n
    assert sizing.kailash_bytes(sizing.kailash_redis_size(n)) == n
    if n >= MI:  # below 1 MiB the JVM form uses 'k', which kailash_bytes reads as 1000
        assert sizing.kailash_bytes(sizing.kailash_jvm_size(n)) == n


# --------------------------------------------------------------------- kailash_pg_tuning

PG_FIXED = {
    "wal_buffers": "16MB",
    "min_wal_size": "1GB",
    "max_wal_size": "4GB",
    "checkpoint_completion_target": "0.9",
    "random_page_cost": "1.1",
    "effective_io_concurrency": "200",
}


def test_pg_tuning_document_defaults() -> None:
    """Architecture document: request 4Gi / limit 8Gi."""
    assert sizing.kailash_pg_tuning("4Gi", "8Gi") == {
        "shared_buffers": "1GB",
        "effective_cache_size": "4GB",
        "maintenance_work_mem": "256MB",
        "work_mem": "8MB",  # (8192 - 1024) MiB / (200 * 4) = 8.96 -> 8 MiB
        "max_connections": 200,
        **PG_FIXED,
    }


def test_pg_tuning_small_instance() -> None:
    assert sizing.kailash_pg_tuning("1Gi", "2Gi") == {
        "shared_buffers": "256MB",
        "effective_cache_size": "1GB",
        "maintenance_work_mem": "64MB",  # 2Gi / 32 = 64Mi
        "work_mem": "4MB",  # (2048 - 256) / 800 = 2.24 -> minimum 4 MiB
        "max_connections": 200,
        **PG_FIXED,
    }


@pytest.mark.parametrize(
    ("request_", "limit", "connections", "expected"),
    [
        # shared_buffers minimum 128MB
        ("256Mi", "256Mi", 200, {"shared_buffers": "128MB", "effective_cache_size": "128MB"}),
        ("300Mi", "1Gi", 200, {"shared_buffers": "128MB"}),
        # shared_buffers 25 % floored to MiB: 2049Mi / 4 = 512.25Mi -> 512MB
        ("2049Mi", "4Gi", 200, {"shared_buffers": "512MB"}),
        # effective_cache_size 50 % floored to MiB: 4097Mi / 2 = 2048.5 -> 2048MB = 2GB
        ("1Gi", "4097Mi", 200, {"effective_cache_size": "2GB"}),
        # maintenance_work_mem clamps
        ("256Mi", "1Gi", 200, {"maintenance_work_mem": "64MB"}),
        ("16Gi", "32Gi", 200, {"maintenance_work_mem": "1GB"}),
        ("16Gi", "64Gi", 200, {"maintenance_work_mem": "2GB"}),
        ("16Gi", "128Gi", 200, {"maintenance_work_mem": "2GB"}),
        ("1Gi", "3000Mi", 200, {"maintenance_work_mem": "93MB"}),  # 93.75 -> 93
        # work_mem uses max_connections: (8192 - 1024) / (50 * 4) = 35.84 -> 35MB
        ("4Gi", "8Gi", 50, {"work_mem": "35MB", "max_connections": 50}),
        ("4Gi", "8Gi", "100", {"work_mem": "17MB", "max_connections": 100}),
        ("4Gi", "8Gi", 1, {"work_mem": "1792MB", "max_connections": 1}),
        ("4Gi", "8Gi", 5000, {"work_mem": "4MB", "max_connections": 5000}),
        # any kailash_bytes form
        ("4096MB", "8GB", 200, {"shared_buffers": "1GB", "effective_cache_size": "4GB"}),
        (4 * GI, 8 * GI, 200, {"shared_buffers": "1GB", "effective_cache_size": "4GB"}),
        ("4g", "8g", 200, {"maintenance_work_mem": "256MB"}),
        ("4G", "8G", 200, {"shared_buffers": "953MB", "effective_cache_size": "3814MB"}),
    ],
)
def test_pg_tuning_rules(
    request_: Any, limit: Any, connections: Any, expected: dict[str, Any]
) -> None:
    result = sizing.kailash_pg_tuning(request_, limit, connections)
    assert {key: result[key] for key in expected} == expected
    assert {key: result[key] for key in PG_FIXED} == PG_FIXED


def test_pg_tuning_value_types() -> None:
    result = sizing.kailash_pg_tuning("4Gi", "8Gi")
    assert isinstance(result["max_connections"], int)
    assert all(isinstance(v, str) for k, v in result.items() if k != "max_connections")


@pytest.mark.parametrize(
    ("request_", "limit", "fragments"),
    [
        ("8Gi", "4Gi", ("memory request '8Gi' exceeds limit '4Gi'",)),
        ("4097Mi", "4Gi", ("memory request '4097Mi' exceeds limit '4Gi'",)),
        ("128Mi", "255Mi", ("memory limit '255Mi'", "256Mi")),
        ("64Mi", "128Mi", ("memory limit '128Mi'", "256Mi")),
        ("4Gx", "8Gi", ("'4Gx'",)),
        ("4Gi", None, ("None",)),
    ],
)
def test_pg_tuning_rejects_sizes(request_: Any, limit: Any, fragments: tuple[str, ...]) -> None:
    pattern = "(?s:.*)".join(re.escape(f) for f in fragments)
    with pytest.raises(Error, match=pattern):
        sizing.kailash_pg_tuning(request_, limit)


@pytest.mark.parametrize(
    "connections", [0, -5, True, False, None, "", "abc", "20.5", "-1", "0", 20.5, 200.0, [200]]
)
def test_pg_tuning_rejects_max_connections(connections: Any) -> None:
    with raises_naming(connections, "invalid max_connections", "integer >= 1"):
        sizing.kailash_pg_tuning("4Gi", "8Gi", connections)


# ------------------------------------------------------------------ kailash_neo4j_tuning


def test_neo4j_tuning_document_defaults() -> None:
    assert sizing.kailash_neo4j_tuning("4Gi", "8Gi") == {
        "heap_initial_size": "2g",
        "heap_max_size": "4g",
        "pagecache_size": "2g",
    }


@pytest.mark.parametrize(
    ("request_", "limit", "expected"),
    [
        ("1Gi", "1Gi", ("512m", "512m", "256m")),
        ("1Gi", "2Gi", ("512m", "1g", "512m")),
        ("3Gi", "6Gi", ("1536m", "3g", "1536m")),
        ("1025Mi", "1025Mi", ("512m", "512m", "256m")),  # 512.5 / 256.25 floored
        ("0", "1Gi", ("0", "512m", "256m")),
        ("2GB", "16g", ("1g", "8g", "4g")),
    ],
)
def test_neo4j_tuning_rules(request_: Any, limit: Any, expected: tuple[str, str, str]) -> None:
    result = sizing.kailash_neo4j_tuning(request_, limit)
    assert (result["heap_initial_size"], result["heap_max_size"], result["pagecache_size"]) == (
        expected
    )


@pytest.mark.parametrize(
    ("request_", "limit", "fragments"),
    [
        ("8Gi", "4Gi", ("memory request '8Gi' exceeds limit '4Gi'",)),
        ("512Mi", "1023Mi", ("memory limit '1023Mi'", "1Gi")),
        ("1G", "1G", ("memory limit '1G'", "1Gi")),
        ("bad", "4Gi", ("'bad'",)),
    ],
)
def test_neo4j_tuning_rejects(request_: Any, limit: Any, fragments: tuple[str, ...]) -> None:
    pattern = "(?s:.*)".join(re.escape(f) for f in fragments)
    with pytest.raises(Error, match=pattern):
        sizing.kailash_neo4j_tuning(request_, limit)


# --------------------------------------------------------------- kailash_redis_maxmemory


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("2Gi", "1gb"),  # the architecture document's value
        ("64Mi", "32mb"),
        ("1Gi", "512mb"),
        ("3Gi", "1536mb"),
        ("129Mi", "64mb"),  # 64.5 floored
        (4 * GI, "2gb"),
        ("2gb", "1gb"),
    ],
)
def test_redis_maxmemory(limit: Any, expected: str) -> None:
    assert sizing.kailash_redis_maxmemory(limit) == expected


@pytest.mark.parametrize(
    ("limit", "fragment"),
    [
        ("63Mi", "below the minimum 64Mi"),
        ("64M", "below the minimum 64Mi"),
        (0, "below the minimum 64Mi"),
        ("2Gx", "unknown unit"),
        (None, "invalid memory size"),
    ],
)
def test_redis_maxmemory_rejects(limit: Any, fragment: str) -> None:
    with raises_naming(limit, fragment):
        sizing.kailash_redis_maxmemory(limit)


# ----------------------------------------------------------------------------------- CPU


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1000m", 1000),
        ("500m", 500),
        ("1m", 1),
        ("0m", 0),
        ("2", 2000),
        ("0.5", 500),
        ("1.25", 1250),
        ("0.001", 1),
        ("1.500", 1500),
        ("1.5000", 1500),
        (" 250m ", 250),
        (2, 2000),
        (0, 0),
        (0.5, 500),
        (1.25, 1250),
        (4.0, 4000),
    ],
)
def test_cpu_millis(value: Any, expected: int) -> None:
    assert sizing.kailash_cpu_millis(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "invalid CPU quantity"),
        (None, "invalid CPU quantity"),
        (True, "invalid CPU quantity"),
        ("abc", "invalid CPU quantity"),
        ("2 cores", "invalid CPU quantity"),
        ("500M", "invalid CPU quantity"),
        ("m", "invalid CPU quantity"),
        ("1.2.3", "invalid CPU quantity"),
        ("-1", "invalid CPU quantity"),
        ("-500m", "invalid CPU quantity"),
        (-1, "negative CPU quantity"),
        (-0.5, "invalid CPU quantity"),
        (float("nan"), "invalid CPU quantity"),
        ("0.0005", "finer than 1m"),
        ("1.5m", "finer than 1m"),
        (0.0001, "finer than 1m"),
        (["1"], "invalid CPU quantity"),
    ],
)
def test_cpu_millis_rejects(value: Any, fragment: str) -> None:
    with raises_naming(value, fragment) as excinfo:
        sizing.kailash_cpu_millis(value)
    assert "millicores" in str(excinfo.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2000m", "2"),
        ("500m", "0.5"),
        ("1500m", "1.5"),
        ("1250m", "1.25"),
        ("1m", "0.001"),
        ("10m", "0.01"),
        ("0m", "0"),
        ("2", "2"),
        ("0.5", "0.5"),
        (4, "4"),
        (1.5, "1.5"),
        ("12345m", "12.345"),
    ],
)
def test_docker_cpus(value: Any, expected: str) -> None:
    assert sizing.kailash_docker_cpus(value) == expected


@pytest.mark.parametrize("value", ["2x", None, "-1", "0.0001"])
def test_docker_cpus_rejects(value: Any) -> None:
    with raises_naming(value):
        sizing.kailash_docker_cpus(value)


# --------------------------------------------------------------------------- FilterModule


def test_filter_module_exposes_all_filters() -> None:
    filters = sizing.FilterModule().filters()
    expected = {
        "kailash_bytes",
        "kailash_k8s_quantity",
        "kailash_pg_size",
        "kailash_jvm_size",
        "kailash_redis_size",
        "kailash_pg_tuning",
        "kailash_pg_memory_errors",
        "kailash_neo4j_tuning",
        "kailash_redis_maxmemory",
        "kailash_cpu_millis",
        "kailash_docker_cpus",
        "kailash_resource_errors",
    }
    assert set(filters) == expected
    for name, func in filters.items():
        assert func is getattr(sizing, name)
        assert callable(func)


# --- kailash_resource_errors: preflight messages that name the variable ----------


def test_resource_errors_clean():
    values = {
        "memory_request": "4Gi",
        "memory_limit": "8Gi",
        "cpu_request": "1000m",
        "cpu_limit": "2",
        "replicas": 3,
    }
    assert sizing.kailash_resource_errors(values, "postgresql") == []


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"memory_limit": "4Gx"}, "postgresql_memory_limit: "),
        (
            {"memory_request": "8Gi", "memory_limit": "4Gi"},
            "postgresql_memory_request ('8Gi') exceeds postgresql_memory_limit ('4Gi')",
        ),
        (
            {"cpu_request": "3", "cpu_limit": "2000m"},
            "postgresql_cpu_request ('3') exceeds postgresql_cpu_limit ('2000m')",
        ),
        ({"cpu_limit": "two"}, "postgresql_cpu_limit: "),
        ({"replicas": -1}, "postgresql_replicas must be a whole number >= 1, got -1"),
        ({"replicas": 0}, "postgresql_replicas must be a whole number >= 1, got 0"),
        ({"replicas": True}, "postgresql_replicas must be a whole number >= 1"),
        ({"memory_limit": 0}, "postgresql_memory_limit must be greater than 0"),
    ],
)
def test_resource_errors_name_the_variable(values, expected):
    errors = sizing.kailash_resource_errors(values, "postgresql")
    assert any(e.startswith(expected) or expected in e for e in errors), errors


def test_resource_errors_rejects_non_dict():
    assert sizing.kailash_resource_errors(["4Gi"], "redis") == [
        "redis: resources must be a dict, got list"
    ]


# --- kailash_pg_memory_errors: the postgresql role's preflight, same minimum as tuning ---


def test_pg_memory_errors_clean() -> None:
    assert (
        sizing.kailash_pg_memory_errors({"memory_limit": "8Gi", "shm_size": "256Mi"}, "postgresql")
        == []
    )
    # the minimum itself and a /dev/shm as large as the limit are allowed
    assert (
        sizing.kailash_pg_memory_errors(
            {"memory_limit": "256Mi", "shm_size": "256Mi"}, "postgresql"
        )
        == []
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"memory_limit": "255Mi", "shm_size": "64Mi"},
            ["postgresql_memory_limit must be at least 256Mi (got 255Mi)"],
        ),
        (
            {"memory_limit": "1Gi", "shm_size": "2Gi"},
            ["postgresql_shm_size (2Gi) must not exceed postgresql_memory_limit (1Gi)"],
        ),
        (
            {"memory_limit": "128Mi", "shm_size": "256Mi"},
            [
                "postgresql_memory_limit must be at least 256Mi (got 128Mi)",
                "postgresql_shm_size (256Mi) must not exceed postgresql_memory_limit (128Mi)",
            ],
        ),
        # malformed sizes are reported by kailash_resource_errors, not twice
        ({"memory_limit": "8Gx", "shm_size": "256Mi"}, []),
        (
            {"memory_limit": "128Mi", "shm_size": "lots"},
            ["postgresql_memory_limit must be at least 256Mi (got 128Mi)"],
        ),
        ({"shm_size": "256Mi"}, []),
    ],
    ids=["limit-too-small", "shm-over-limit", "both", "bad-limit", "bad-shm", "no-limit"],
)
def test_pg_memory_errors_name_the_variable(values: dict, expected: list[str]) -> None:
    assert sizing.kailash_pg_memory_errors(values, "postgresql") == expected


def test_pg_memory_errors_rejects_non_dict() -> None:
    assert sizing.kailash_pg_memory_errors("8Gi", "postgresql") == [
        "postgresql: sizes must be a dict, got str"
    ]


@pytest.mark.parametrize("limit", [sizing.PG_MIN_MEMORY_LIMIT - 1, sizing.PG_MIN_MEMORY_LIMIT])
def test_pg_preflight_and_tuning_share_the_minimum(limit: int) -> None:
    """The preflight refuses exactly the limits kailash_pg_tuning cannot size for."""
    refused = sizing.kailash_pg_memory_errors({"memory_limit": limit}, "postgresql") != []
    try:
        sizing.kailash_pg_tuning(limit, limit)
        tuned = True
    except Error:
        tuned = False
    assert refused is not tuned
    assert refused is (limit < 256 * MI)
