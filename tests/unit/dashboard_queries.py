"""The PromQL of the committed Grafana dashboards (roles/grafana_dashboards/files/generated),
shared by tests/unit/test_dashboards.py and tests/unit/test_monitoring_rules.py (which keeps
the one list of metric names whose producer is not built yet, NOT_BUILT, and must know
every name the dashboards use as well as the rules)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "roles" / "grafana_dashboards" / "files" / "generated"

# Grafana's built-in interval variables are not PromQL: substituted with a duration of the
# kind Grafana would put there before a query is parsed. Dashboard variables ($job, ...) only
# appear inside label matcher strings, where they are plain text to PromQL.
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def dashboard_files() -> list[Path]:
    return sorted(GENERATED.glob("*.json"))


def panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def promql(expr: str) -> str:
    for var, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(var, value)
    return expr


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every target of every panel and every query variable's
    label_values() selector."""
    out: list[tuple[str, str]] = []
    for path in dashboard_files():
        board = json.loads(path.read_text())
        for panel in panels(board):
            for t in panel.get("targets", []):
                where = f"{path.name}: panel {panel['id']} {panel['title']!r} {t['refId']}"
                out.append((where, promql(t["expr"])))
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                out.append((f"{path.name}: variable {var['name']}", variable_selector(var)))
    return out


def variable_selector(var: dict) -> str:
    """label_values(SELECTOR, label) -> SELECTOR (the part that is PromQL)."""
    query = var["query"]
    inner = query.removeprefix("label_values(").removesuffix(")")
    if inner == query:
        raise ValueError(f"variable {var['name']}: not label_values(...): {query}")
    selector, _, _label = inner.rpartition(",")
    return promql(selector.strip())
