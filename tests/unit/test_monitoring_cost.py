"""Unit tests for bench/monitoring_cost.py's pure parts: which containers are monitoring,
the aggregation into services, totals and shares, the table, and the cgroup reads (v1, v2)
on fake cgroup trees. The measurement itself runs against a deployed stack only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("monitoring_cost",
                                              ROOT / "bench" / "monitoring_cost.py")
mc = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(mc)
MIB = 1024 * 1024


@pytest.mark.parametrize(("service", "expected"), [
    ("prometheus", True),
    ("postgres-exporter", True),
    ("mtail", True),
    ("prometheus-sidecar", True),  # a role's extra service counts with it
    ("postgresql", False),
    ("redis", False),  # redis-exporter does not make redis monitoring
    ("nexus-api", False),
    ("edge", False),
    ("prometheusx", False),
])
def test_is_monitoring(service: str, expected: bool) -> None:
    assert mc.is_monitoring(service, mc.MONITORING) is expected


def test_monitoring_list_matches_the_roles() -> None:
    """Every listed service is a role kailash_services may name, and every such role that
    is an exporter, Prometheus, Alertmanager or mtail is listed (a new exporter role must be
    added to MONITORING)."""
    known = yaml.safe_load((ROOT / "roles" / "kailash" / "vars" / "main.yml").read_text())[
        "kailash__known_services"]
    listed = {m.replace("-", "_") for m in mc.MONITORING}
    assert listed <= set(known)
    expected = {r for r in known
                if r.endswith("_exporter") or r in ("prometheus", "alertmanager", "mtail")}
    assert listed == expected
    for role in listed:
        assert (ROOT / "roles" / role).is_dir(), role


def _containers() -> list[dict]:
    return [
        {"id": "p", "name": "k-prometheus-1", "service": "prometheus"},
        {"id": "x", "name": "k-redis-exporter-1", "service": "redis-exporter"},
        {"id": "a1", "name": "k-nexus-api-1", "service": "nexus-api"},
        {"id": "a2", "name": "k-nexus-api-2", "service": "nexus-api"},
        {"id": "r", "name": "k-redis-1", "service": "redis"},
    ]


def _mem(ws: float, usage: float | None = None, anon: float | None = None) -> dict:
    return {"working_set": ws * MIB, "usage": (usage or ws * 2) * MIB,
            "anon": (anon or ws / 2) * MIB}


def _raw() -> dict:
    return {
        "wall_s": 10.0,
        "cpu_s": {"p": 0.5, "x": 0.1, "a1": 2.0, "a2": 1.4, "r": 1.0},
        "samples": [
            {"p": _mem(40), "x": _mem(10), "a1": _mem(100), "a2": _mem(100), "r": _mem(10)},
            {"p": _mem(50), "x": _mem(10), "a1": _mem(120), "a2": _mem(100), "r": _mem(10)},
            # the prometheus peak and the API's fall in different samples
            {"p": _mem(60), "x": _mem(10), "a1": _mem(100), "a2": _mem(90), "r": _mem(10)},
        ],
    }


def test_summarise_totals_and_shares() -> None:
    s = mc.summarise(_containers(), mc.MONITORING, _raw())
    assert s["wall_s"] == 10.0 and s["samples"] == 3
    mon, rest, stack = s["monitoring"], s["rest"], s["stack"]
    assert mon["cores"] == pytest.approx(0.06)
    assert rest["cores"] == pytest.approx(0.44)
    assert stack["cores"] == pytest.approx(0.5)
    assert s["share"]["cpu"] == pytest.approx(0.12)
    # memory: mean and max of the per-sample sums (the max is not the sum of the maxima)
    assert mon["memory_mib"]["working_set"] == {"mean": 60.0, "max": 70.0}
    assert stack["memory_mib"]["working_set"]["mean"] == pytest.approx(
        (260 + 290 + 270) / 3, abs=0.05)
    assert stack["memory_mib"]["working_set"]["max"] == 290.0
    assert s["share"]["memory_working_set_mean"] == pytest.approx(60 / (820 / 3), abs=1e-4)
    assert s["share"]["memory_usage_mean"] == pytest.approx(60 / (820 / 3), abs=1e-4)
    assert mon["memory_mib"]["anon"]["mean"] == 30.0


def test_summarise_groups_replicas_by_service() -> None:
    s = mc.summarise(_containers(), mc.MONITORING, _raw())
    api = s["services"]["nexus-api"]
    assert api["replicas"] == 2 and api["monitoring"] is False
    assert api["cores"] == pytest.approx(0.34)
    assert api["memory_mib"]["working_set"] == {"mean": pytest.approx(203.3, abs=0.05),
                                                "max": 220.0}
    assert s["services"]["prometheus"]["monitoring"] is True
    assert set(s["containers"]) == {c["name"] for c in _containers()}
    assert s["containers"]["k-nexus-api-2"]["cores"] == pytest.approx(0.14)


def test_summarise_tolerates_a_container_that_went_away() -> None:
    raw = _raw()
    del raw["cpu_s"]["x"]
    for sample in raw["samples"][1:]:
        del sample["x"]
    s = mc.summarise(_containers(), mc.MONITORING, raw)
    assert s["services"]["redis-exporter"]["cores"] is None
    assert s["services"]["redis-exporter"]["memory_mib"]["working_set"]["mean"] == 10.0
    assert s["monitoring"]["cores"] == pytest.approx(0.05)
    assert s["monitoring"]["memory_mib"]["working_set"]["max"] == 60.0


def test_share_edge_cases() -> None:
    assert mc.share(None, 1.0) is None
    assert mc.share(1.0, 0.0) is None
    assert mc.share(1.0, None) is None
    assert mc.share(1.0, 4.0) == 0.25


def test_table_lists_monitoring_first_and_the_shares() -> None:
    s = mc.summarise(_containers(), mc.MONITORING, _raw())
    lines = mc.table({"idle": s, "load": s})
    assert lines[0].startswith("| service | mon | n | idle CPU mcores")
    assert [ln.split("|")[1].strip() for ln in lines[2:]] == [
        "prometheus", "redis-exporter", "nexus-api", "redis", "**monitoring**",
        "rest of the project", "**project**", "**share monitoring / project**"]
    assert lines[6].startswith("| **monitoring** |  |  | 60.0 | 60.0 / 70.0 | 30.0 |")
    assert lines[-1].startswith("| **share monitoring / project** |  |  | 12.0 % |")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v1_read(tmp_path: Path) -> None:
    cid = "abc"
    mem = tmp_path / "memory" / "docker" / cid
    _write(mem / "memory.usage_in_bytes", "3000\n")
    _write(mem / "memory.stat", "cache 1000\nrss 1800\ntotal_rss 1900\n"
           "total_inactive_file 500\n")
    _write(mem / "memory.limit_in_bytes", "9223372036854771712\n")
    _write(mem / "memory.soft_limit_in_bytes", "9223372036854771712\n")
    _write(tmp_path / "cpu" / "docker" / cid / "cpu.cfs_quota_us", "-1\n")
    _write(tmp_path / "cpu" / "docker" / cid / "cpu.cfs_period_us", "100000\n")
    _write(tmp_path / "cpuacct" / "docker" / cid / "cpuacct.usage", "2500000000\n")
    cg = mc.Cgroups(tmp_path)
    assert cg.v2 is False
    assert cg.read(cid) == {"cpu_s": 2.5, "working_set": 2500, "usage": 3000, "anon": 1900}
    assert cg.read("gone") is None


def test_cgroup_v2_read(tmp_path: Path) -> None:
    cid = "abc"
    _write(tmp_path / "cgroup.controllers", "cpu memory\n")
    d = tmp_path / "system.slice" / f"docker-{cid}.scope"
    _write(d / "memory.current", "4000\n")
    _write(d / "memory.stat", "anon 2100\nfile 1500\ninactive_file 600\n")
    _write(d / "memory.max", "max\n")
    _write(d / "cpu.max", "max 100000\n")
    _write(d / "cpu.stat", "usage_usec 1500000\nuser_usec 1000000\n")
    cg = mc.Cgroups(tmp_path)
    assert cg.v2 is True
    assert cg.read(cid) == {"cpu_s": 1.5, "working_set": 3400, "usage": 4000, "anon": 2100}
    assert cg.read_all([{"id": cid}, {"id": "gone"}]) == {cid: cg.read(cid)}


@pytest.mark.parametrize(("text", "expected"), [
    ("global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n", 15),
    ("global:\n  scrape_interval: '1m'\nscrape_configs:\n  - scrape_interval: 5s\n", 60),
    ("global:\n  scrape_interval: 500ms\n", 0.5),
    ("global: {}\n", None),
])
def test_parse_scrape_interval(text: str, expected: float | None) -> None:
    assert mc.parse_scrape_interval(text) == expected


def test_changes_names_recreated_and_new_containers() -> None:
    before = [{"id": "1", "name": "k-prometheus-1"}, {"id": "2", "name": "k-alertmanager-1"}]
    after = [{"id": "1", "name": "k-prometheus-1"}, {"id": "3", "name": "k-alertmanager-1"},
             {"id": "4", "name": "k-mtail-1"}]
    assert mc.changes(before, before) == []
    assert mc.changes(before, after) == [
        "k-alertmanager-1 went away", "k-alertmanager-1 started", "k-mtail-1 started"]
