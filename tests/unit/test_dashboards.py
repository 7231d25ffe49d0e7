"""The Grafana dashboards as code (issue #13, "Dashboards"), offline. Grafana itself cannot
be installed here (../shared/ENVIRONMENT.md, "Monitoring"), so what is checked is the JSON:

- the generator (roles/grafana_dashboards/files/kailash_dashboards, grafanalib) rebuilds the
  committed roles/grafana_dashboards/files/generated/*.json byte for byte, and the board
  modules and the committed files are the same set (one file per board, named by its uid);
- per dashboard: a uid, the `kailash` tag, unique panel ids, a gridPos on every panel and
  no two panels overlapping, a `datasource` variable of type datasource/prometheus, the
  datasource `${datasource}` on every panel, every target and every query variable, a unit
  on every panel that shows numbers, unique refIds per panel;
- every query (targets and label_values() selectors; Grafana's $__rate_interval and friends
  substituted by a duration) parses with promql-parser;
- every metric name a query uses appears in a real scrape of the pinned exporters
  (tests/monitoring/fixtures/*.prom) or is Prometheus' own (up, ALERTS) or is listed, with
  its reason, in the one NOT_BUILT list tests/unit/test_monitoring_rules.py keeps for the
  rules too.

Not checked here: how Grafana renders the panels (no Grafana), the provisioning role
(tests/integration/test_grafana_provisioning.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import promql_parser
import pytest
from dashboard_queries import GENERATED, dashboard_files, panels, queries, variable_selector
from test_monitoring_rules import NOT_BUILT, PROMETHEUS_SYNTHETIC, fixture_metrics, metric_names

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "roles" / "grafana_dashboards" / "files"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# the five dashboards issue #13 asks for
EXPECTED = {"kailash-overview", "kailash-api", "kailash-datastores", "kailash-workers",
            "kailash-backups"}  # fmt: skip
# panel types that show a number and so need a unit
NUMERIC = {"timeseries", "stat", "gauge", "bargauge"}


@pytest.fixture(scope="module")
def build():
    sys.path.insert(0, str(GENERATOR))
    try:
        from kailash_dashboards import build as module
    finally:
        sys.path.remove(str(GENERATOR))
    return module


def boards() -> list[tuple[str, dict]]:
    return [(p.name, json.loads(p.read_text())) for p in dashboard_files()]


BOARDS = boards()
IDS = [name for name, _ in BOARDS]


def test_generated_json_is_committed_and_current(build, tmp_path):
    rendered = build.render_all()
    committed = {p.name: p.read_text() for p in dashboard_files()}
    assert set(rendered) == set(committed), (
        "board modules and committed files differ: run "
        "`cd roles/grafana_dashboards/files && python -m kailash_dashboards`"
    )
    stale = sorted(name for name in rendered if rendered[name] != committed[name])
    assert not stale, (
        f"committed JSON is not the generator's output: {stale} (regenerate: cd "
        "roles/grafana_dashboards/files && ../../../.venv/bin/python -m kailash_dashboards)"
    )
    # the writer itself, into a fresh directory: byte-identical files, nothing else
    written = build.write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(committed)
    for path in written:
        assert path.read_bytes() == (GENERATED / path.name).read_bytes()


def test_the_five_dashboards():
    assert {board["uid"] for _, board in BOARDS} == EXPECTED
    for name, board in BOARDS:
        assert name == f"{board['uid']}.json"
        assert "kailash" in board["tags"]
        assert board["title"].startswith("Kailash / ")
        assert board["id"] is None, f"{name}: id must be null (Grafana assigns it)"


@pytest.mark.parametrize(("name", "board"), BOARDS, ids=IDS)
def test_panel_ids_unique_and_layout(name, board):
    ids = [p["id"] for p in panels(board)]
    assert all(isinstance(i, int) and i > 0 for i in ids), ids
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"{name}: duplicate panel ids {duplicates}"
    cells: dict[tuple[int, int], int] = {}
    for p in panels(board):
        pos = p["gridPos"]
        assert pos and pos["w"] > 0 and pos["h"] > 0 and pos["x"] + pos["w"] <= 24, (p["id"], pos)
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                other = cells.setdefault((x, y), p["id"])
                assert other == p["id"], f"{name}: panels {other} and {p['id']} overlap"


@pytest.mark.parametrize(("name", "board"), BOARDS, ids=IDS)
def test_datasource_everywhere(name, board):
    variables = {v["name"]: v for v in board["templating"]["list"]}
    ds = variables.get("datasource")
    assert ds and ds["type"] == "datasource" and ds["query"] == "prometheus", ds
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, f"{name}: variable {var['name']}"
    for p in panels(board):
        where = f"{name}: panel {p['id']} {p['title']!r}"
        assert p["datasource"] == DATASOURCE, where
        if p["type"] == "row":
            continue
        assert p["targets"], f"{where} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), f"{where}: refIds {refs}"
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE, f"{where} target {t['refId']}"
            assert t["expr"].strip(), f"{where} target {t['refId']} is empty"
        if p["type"] in NUMERIC:
            unit = p["fieldConfig"]["defaults"].get("unit")
            assert unit, f"{where}: no unit"
        assert p.get("description"), f"{where}: no description"


ALL_QUERIES = queries()


@pytest.mark.parametrize(("where", "expr"), ALL_QUERIES, ids=[w for w, _ in ALL_QUERIES])
def test_query_parses(where, expr):
    try:
        promql_parser.parse(expr)
    except Exception as exc:  # promql-parser raises ValueError with the position
        pytest.fail(f"{where}: {expr!r} does not parse: {exc}")


def test_interval_variables_substituted():
    assert "$__" not in "".join(expr for _, expr in ALL_QUERIES)
    assert variable_selector({"name": "x", "query": 'label_values(up{job="a,b"}, job)'}) == (
        'up{job="a,b"}'
    )


def test_dashboard_metrics_appear_in_real_scrapes():
    found = fixture_metrics()
    used: dict[str, set[str]] = {}
    for where, expr in ALL_QUERIES:
        for metric in metric_names(promql_parser.parse(expr)):
            used.setdefault(metric, set()).add(where)
    missing = {
        metric: sorted(where)
        for metric, where in used.items()
        if metric not in found and metric not in PROMETHEUS_SYNTHETIC and metric not in NOT_BUILT
    }
    assert not missing, f"in no fixture scrape and not in NOT_BUILT (a typo?): {missing}"
    # the dashboards read the API's, the containers' and the backups' metrics at all
    for metric in ("nexus_http_requests_total", "nexus_http_request_duration_seconds_bucket",
                   "container_memory_working_set_bytes", "container_cpu_usage_seconds_total",
                   "kailash_restore_drill_passed", "pg_up", "redis_up"):  # fmt: skip
        assert metric in used, f"no dashboard query uses {metric}"
