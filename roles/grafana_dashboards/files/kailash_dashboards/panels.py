"""Shared building blocks of the boards: the datasource variable, panels and targets that
always carry the datasource, sensible defaults, and a grid layout. Names no service."""

from __future__ import annotations

from grafanalib.core import (
    Dashboard,
    DashboardLink,
    GridPos,
    RowPanel,
    Stat,
    Table,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

# Every panel and target queries the Prometheus the user picks in the `datasource` variable.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's JSON model as of Grafana 10/11 (the panels below are written in that model, so
# Grafana runs none of its old-schema migrations on them).
SCHEMA_VERSION = 39
TAG = "kailash"
GRID_WIDTH = 24


def datasource_variable() -> Template:
    return Template(
        name="datasource",
        label="Prometheus",
        type="datasource",
        query="prometheus",
        default="",
        refresh=1,
    )


def query_variable(
    name: str, label: str, query: str, *, include_all: bool = True, regex: str | None = None
) -> Template:
    """A variable filled from Prometheus (label_values(...)), multi-select with All by default;
    `regex` filters the values Grafana offers."""
    variable = Template(
        name=name,
        label=label,
        query=query,
        dataSource=DATASOURCE,
        includeAll=include_all,
        multi=include_all,
        allValue=".*" if include_all else None,
        regex=regex,
        refresh=2,  # on time range change
    )
    if include_all:  # Grafana's own model of a multi-value variable set to All
        variable._current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> Target:
    return Target(
        expr=expr,
        legendFormat=legend,
        refId=ref,
        datasource=DATASOURCE,
        instant=instant,
        format="table" if instant else "time_series",
        intervalFactor=1,
        step=None,
    )


def targets(queries: list[tuple[str, str]]) -> list[Target]:
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]


def steps(*pairs: tuple[str, float | None]) -> list[dict]:
    """Threshold steps: ("green", None) is the base colour."""
    return [{"color": color, "value": value} for color, value in pairs]


def timeseries(
    title: str,
    queries: list[tuple[str, str]],
    unit: str,
    description: str,
    *,
    width: int = 12,
    height: int = 8,
    thresholds: list[dict] | None = None,
    max_value: int | None = None,
    stacked: bool = False,
    axis_label: str = "",
) -> TimeSeries:
    panel = TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=targets(queries),
        unit=unit,
        axisLabel=axis_label,
        valueMin=0,
        valueMax=max_value,
        fillOpacity=10,
        legendDisplayMode="table" if len(queries) > 1 else "list",
        legendCalcs=["lastNotNull", "max"],
        tooltipMode="multi",
        tooltipSort="desc",
        stacking={"mode": "normal" if stacked else "none", "group": "A"},
        maxDataPoints=None,  # Grafana's default: one point per pixel
        thresholds=thresholds or steps(("green", None)),
        thresholdsStyleMode="line" if thresholds else "off",
        gridPos=GridPos(h=height, w=width, x=0, y=0),
    )
    return panel


def stat(
    title: str,
    expr: str,
    unit: str,
    description: str,
    *,
    thresholds: list[dict] | None = None,
    mappings: list[dict] | None = None,
    width: int = 4,
    height: int = 4,
    no_value: str = "no data",
) -> Stat:
    return Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[target(expr)],
        format=unit,
        reduceCalc="lastNotNull",
        graphMode="none",
        colorMode="background",
        thresholds=thresholds or steps(("green", None)),
        mappings=mappings or [],
        noValue=no_value,
        maxDataPoints=None,
        gridPos=GridPos(h=height, w=width, x=0, y=0),
    )


def table(title: str, expr: str, description: str, *, width: int = 24, height: int = 8) -> Table:
    return Table(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[target(expr, instant=True)],
        transformations=[
            {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}
        ],
        gridPos=GridPos(h=height, w=width, x=0, y=0),
    )


def value_text(mapping: dict[str, tuple[str, str]]) -> list[dict]:
    """Value mappings for a stat: {"1": ("passed", "green")}."""
    return [
        {
            "type": "value",
            "options": {
                value: {"text": text, "color": color, "index": i}
                for i, (value, (text, color)) in enumerate(sorted(mapping.items()))
            },
        }
    ]


def layout(sections: list[tuple[str, list]]) -> list:
    """Grafana's flat panel list: per section a row header, then its panels placed left to
    right, wrapping at the grid width (each panel keeps the width and height it was built
    with)."""
    flat: list = []
    y = 0
    for title, panels in sections:
        flat.append(
            RowPanel(title=title, dataSource=DATASOURCE, gridPos=GridPos(h=1, w=24, x=0, y=y))
        )
        y += 1
        x, row_height = 0, 0
        for panel in panels:
            pos = panel.gridPos
            if x + pos.w > GRID_WIDTH:
                x, y, row_height = 0, y + row_height, 0
            panel.gridPos = GridPos(h=pos.h, w=pos.w, x=x, y=y)
            flat.append(panel)
            x += pos.w
            row_height = max(row_height, pos.h)
        y += row_height
    return flat


def dashboard(
    uid: str,
    title: str,
    description: str,
    sections: list[tuple[str, list]],
    *,
    variables: list[Template] | None = None,
    time_from: str = "now-6h",
) -> Dashboard:
    return Dashboard(
        uid=uid,
        title=title,
        description=description,
        tags=[TAG],
        timezone="utc",
        refresh="30s",
        schemaVersion=SCHEMA_VERSION,
        graphTooltip=1,  # shared crosshair
        editable=True,
        time=Time(time_from, "now"),
        templating=Templating(list=[datasource_variable(), *(variables or [])]),
        links=[
            DashboardLink(
                title="Kailash",
                type="dashboards",
                tags=[TAG],
                asDropdown=True,
                includeVars=True,
                keepTime=True,
            )
        ],
        panels=layout(sections),
    ).auto_panel_ids()
