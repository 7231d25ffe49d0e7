"""The alert rules, their promtool unit tests, runbooks and the Alertmanager config (issue #13),
offline. What is exercised here:

- the real promtool/amtool of the pinned Debian bookworm packages, fetched once per session by
  scripts/monitoring-tools.sh into .tools/monitoring/bin (apt-get download + dpkg-deb -x; a
  machine without apt fails these tests with the script's message, they never skip);
- ``promtool check rules`` on every rule file the roles declare (globbed: a new role's
  roles/<role>/files/prometheus/rules.yml is picked up without editing this file) and
  ``promtool test rules`` on tests/monitoring/rules/*.test.yml;
- the metadata every alert must carry (severity, summary, description, runbook_url naming an
  existing docs/runbooks/<Alert>.md), and that the promtool tests hold a positive and a
  negative case for every alert of every rule file;
- roles/alertmanager's template rendered with plain Jinja2 from its defaults (and with a
  custom webhook URL), checked by ``amtool check-config`` and routed by ``amtool config
  routes test`` for each severity;
- every metric name a rule expression uses (parsed with promql-parser) against real scrapes of
  the pinned exporters (tests/monitoring/fixtures/*.prom, taken by
  scripts/capture-metric-fixtures.py). Metrics whose producer the project has not built yet
  are listed in NOT_BUILT with the reason; such names cannot be checked against a scrape
  here, and the list must shrink as producers (and their fixtures) arrive.

Not exercised here: a running Prometheus/Alertmanager, real notifications, the scrape config.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import jinja2
import promql_parser
import pytest
import yaml
from dashboard_queries import queries as dashboard_queries

ROOT = Path(__file__).resolve().parents[2]
TOOLS_SCRIPT = ROOT / "scripts" / "monitoring-tools.sh"
RULE_FILES = sorted(ROOT.glob("roles/*/files/prometheus/rules.yml")) + sorted(
    ROOT.glob("roles/prometheus/files/rules/*.yml")
)
TEST_FILES = sorted((ROOT / "tests" / "monitoring" / "rules").glob("*.test.yml"))
FIXTURES = ROOT / "tests" / "monitoring" / "fixtures"
AM_ROLE = ROOT / "roles" / "alertmanager"
SEVERITIES = {"critical", "warning", "none"}

# Alerts that cannot have a negative promtool case, with the reason.
NO_NEGATIVE_CASE = {"Watchdog": "always firing by design (vector(1))"}

# Series Prometheus itself makes (no exporter serves them).
PROMETHEUS_SYNTHETIC = {
    "up": "set by Prometheus for every scrape target",
    "ALERTS": "written by Prometheus' rule evaluation",
}

# Metric names the rules use whose producer the project does not build yet: they cannot be
# checked against a real scrape. Remove an entry when its producer and fixture arrive.
NOT_BUILT = {
    "kailash_backup_last_success_timestamp_seconds": "producer not built yet (issue #13): "
    "the backup does not write a textfile yet (the restore drill does)",
    # used by the dashboards only (roles/grafana_dashboards, tests/unit/test_dashboards.py)
}

# fixture file -> the Debian package whose pinned version must have produced it
FIXTURE_PACKAGES = {
    "postgres_exporter": "prometheus-postgres-exporter",
    "redis_exporter": "prometheus-redis-exporter",
    "nginx_exporter": "prometheus-nginx-exporter",
    "node_exporter": "prometheus-node-exporter",
    "blackbox_http": "prometheus-blackbox-exporter",
    "blackbox_tcp": "prometheus-blackbox-exporter",
    "blackbox_tls": "prometheus-blackbox-exporter",
    # scripts/capture-exporter-fixtures.py (the edge's exporters, the blackbox tls module)
    "mtail_edge": "mtail",
    "nginx_exporter_edge": "prometheus-nginx-exporter",
    "blackbox_tls_edge": "prometheus-blackbox-exporter",
}

# fixture file -> (requirements file, the pinned PyPI packages its header must name)
FIXTURE_PIP_PACKAGES = {
    "nexus_app": ("roles/nexus/files/requirements.txt", ("kailash-nexus", "prometheus_client")),
    "celery_exporter": (
        "roles/celery_exporter/files/requirements.txt",
        ("celery", "kombu", "prometheus_client"),
    ),
}


@pytest.fixture(scope="session")
def tools() -> Path:
    """scripts/monitoring-tools.sh once per session; its bin directory."""
    proc = subprocess.run(
        [str(TOOLS_SCRIPT)], capture_output=True, text=True, check=False, timeout=600
    )
    if proc.returncode != 0:
        pytest.fail(
            "scripts/monitoring-tools.sh could not provide promtool/amtool (it needs apt-get "
            f"and dpkg-deb and the pinned Debian packages on the apt mirror):\n{proc.stderr}"
        )
    return Path(proc.stdout.strip().splitlines()[-1])


def run_tool(tool: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(tool), *args], capture_output=True, text=True, check=False)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def alerts_of(path: Path) -> list[dict]:
    doc = yaml.safe_load(path.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def all_alerts() -> list[tuple[Path, dict]]:
    return [(path, rule) for path in RULE_FILES for rule in alerts_of(path)]


def test_rule_files_found():
    # the generic file and at least the datastore roles' own files
    names = {rel(p) for p in RULE_FILES}
    assert "roles/prometheus/files/rules/platform.yml" in names, names
    assert "roles/postgresql/files/prometheus/rules.yml" in names, names
    assert TEST_FILES, "no tests/monitoring/rules/*.test.yml"


@pytest.mark.parametrize("path", RULE_FILES, ids=rel)
def test_promtool_check_rules(tools, path):
    proc = run_tool(tools / "promtool", "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.parametrize("path", TEST_FILES, ids=rel)
def test_promtool_test_rules(tools, path):
    proc = run_tool(tools / "promtool", "test", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "FAILED" not in proc.stdout


@pytest.mark.parametrize(
    ("path", "rule"), all_alerts(), ids=[f"{rel(p)}:{r['alert']}" for p, r in all_alerts()]
)
def test_alert_metadata_and_runbook(path, rule):
    name = rule["alert"]
    assert rule.get("labels", {}).get("severity") in SEVERITIES, (name, rule.get("labels"))
    ann = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert str(ann.get(key, "")).strip(), f"{rel(path)}: {name} has no {key}"
    assert ann["runbook_url"] == f"docs/runbooks/{name}.md", ann["runbook_url"]
    runbook = ROOT / ann["runbook_url"]
    assert runbook.is_file(), f"{name}: runbook {ann['runbook_url']} missing"
    text = runbook.read_text()
    assert text.startswith(f"# {name}\n"), f"{runbook} does not start with its alert's name"
    for part in ("**Meaning.**", "**Confirm.**", "**Act.**"):
        assert part in text, f"{runbook}: no {part} section"


def test_no_runbook_without_an_alert():
    names = {rule["alert"] for _, rule in all_alerts()}
    runbooks = {p.stem for p in (ROOT / "docs" / "runbooks").glob("*.md")} - {"README"}
    assert runbooks <= names, f"runbooks of no alert: {sorted(runbooks - names)}"


def test_every_alert_has_positive_and_negative_cases():
    """Per rule file and alert: some test file that loads that rule file expects the alert
    (positive) and expects it absent at some time (negative: exp_alerts empty)."""
    seen: dict[tuple[Path, str], set[str]] = {}
    for test_file in TEST_FILES:
        doc = yaml.safe_load(test_file.read_text())
        rule_files = [(test_file.parent / r).resolve() for r in doc["rule_files"]]
        for r in rule_files:
            assert r.is_file(), f"{rel(test_file)}: rule file {r} missing"
        for case in doc["tests"]:
            for art in case.get("alert_rule_test", []):
                kind = "positive" if art.get("exp_alerts") else "negative"
                for r in rule_files:
                    seen.setdefault((r, art["alertname"]), set()).add(kind)
    missing = []
    for path, rule in all_alerts():
        kinds = seen.get((path.resolve(), rule["alert"]), set())
        wanted = {"positive"} if rule["alert"] in NO_NEGATIVE_CASE else {"positive", "negative"}
        if not wanted <= kinds:
            missing.append(f"{rel(path)}: {rule['alert']} lacks {sorted(wanted - kinds)}")
    assert not missing, "\n".join(missing)


# --- Alertmanager -------------------------------------------------------------------------


def render_alertmanager(**overrides) -> str:
    defaults = yaml.safe_load((AM_ROLE / "defaults" / "main.yml").read_text())
    env = jinja2.Environment(  # Ansible's template settings: trim_blocks, strict undefined
        loader=jinja2.FileSystemLoader(str(AM_ROLE / "templates")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template("alertmanager.yml.j2").render(**{**defaults, **overrides})


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "alertmanager_webhook_url": "https://hooks.example.com/alertmanager?team=ops&x=1",
            "alertmanager_webhook_send_resolved": False,
            "alertmanager_heartbeat_url": "https://heartbeat.example.com/ping/abc",
        },
    ],
    ids=["defaults", "custom-webhook"],
)
def test_alertmanager_config(tools, tmp_path, overrides):
    text = render_alertmanager(**overrides)
    config = tmp_path / "alertmanager.yml"
    config.write_text(text)
    proc = run_tool(tools / "amtool", "check-config", str(config))
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr

    doc = yaml.safe_load(text)
    receivers = {r["name"]: r for r in doc["receivers"]}
    defaults = yaml.safe_load((AM_ROLE / "defaults" / "main.yml").read_text())
    url = overrides.get("alertmanager_webhook_url", defaults["alertmanager_webhook_url"])
    if url:
        hook = receivers["webhook"]["webhook_configs"][0]
        assert hook["url"] == url
        assert hook["send_resolved"] is overrides.get("alertmanager_webhook_send_resolved", True)
    else:  # the default: nobody is notified (no placeholder address that fails every time)
        assert "webhook_configs" not in receivers["webhook"], receivers["webhook"]
    heartbeat = overrides.get("alertmanager_heartbeat_url")
    if heartbeat:
        assert receivers["heartbeat"]["webhook_configs"][0]["url"] == heartbeat
    else:
        assert "webhook_configs" not in receivers["heartbeat"], "heartbeat must drop, not page"

    expected = {"critical": "webhook", "warning": "webhook", "none": "heartbeat"}
    for severity, receiver in expected.items():
        proc = run_tool(
            tools / "amtool", "config", "routes", "test", f"--config.file={config}",
            f"--verify.receivers={receiver}", f"severity={severity}", "alertname=Test",
        )  # fmt: skip
        assert proc.returncode == 0, f"severity={severity}: {proc.stdout}{proc.stderr}"
        assert proc.stdout.strip() == receiver, (severity, proc.stdout)
    # the Watchdog as the rules declare it reaches the heartbeat, never the webhook
    watchdog = next(r for _, r in all_alerts() if r["alert"] == "Watchdog")
    proc = run_tool(
        tools / "amtool", "config", "routes", "test", f"--config.file={config}",
        "alertname=Watchdog", f"severity={watchdog['labels']['severity']}",
    )  # fmt: skip
    assert proc.stdout.strip() == "heartbeat", proc.stdout


# --- metric names against real scrapes ----------------------------------------------------


def metric_names(node) -> set[str]:
    """Every metric name a PromQL expression selects (promql-parser's AST)."""
    if isinstance(node, promql_parser.VectorSelector):
        names = {node.name} if node.name else set()
        for m in node.matchers.matchers:
            if m.name == "__name__":
                names.add(m.value)
        return names
    if isinstance(node, promql_parser.MatrixSelector):
        return metric_names(node.vector_selector)
    if isinstance(node, promql_parser.BinaryExpr):
        return metric_names(node.lhs) | metric_names(node.rhs)
    if isinstance(node, promql_parser.AggregateExpr):
        return metric_names(node.expr) | (metric_names(node.param) if node.param else set())
    if isinstance(node, promql_parser.Call):
        return set().union(*(metric_names(a) for a in node.args)) if node.args else set()
    wrappers = (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)
    if isinstance(node, wrappers):
        return metric_names(node.expr)
    if isinstance(node, (promql_parser.NumberLiteral, promql_parser.StringLiteral)):
        return set()
    raise AssertionError(f"unknown PromQL node {type(node).__name__}: {node}")


def test_metric_name_parser():
    expr = promql_parser.parse(
        'sum by (le) (rate(a_bucket{job="x", le="+Inf"}[5m])) / on (i) (b > 0) or vector(1)'
        ' and time() - {__name__="c"} offset 5m + max_over_time(d[1h:5m])'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d"}


def rule_metrics() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for path, rule in all_alerts():
        for name in metric_names(promql_parser.parse(rule["expr"])):
            used.setdefault(name, set()).add(f"{rel(path)}:{rule['alert']}")
    return used


def fixture_metrics() -> dict[str, set[str]]:
    """Names in the captured scrapes: every sample's name (histograms' _bucket/_sum/_count
    as sampled) and every # TYPE'd family name."""
    found: dict[str, set[str]] = {}
    for path in sorted(FIXTURES.glob("*.prom")):
        for line in path.read_text().splitlines():
            if line.startswith("# TYPE "):
                name = line.split()[2]
            elif line and not line.startswith("#"):
                name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            else:
                continue
            found.setdefault(name, set()).add(path.stem)
    return found


def pinned_versions() -> dict[str, str]:
    text = TOOLS_SCRIPT.read_text()
    return dict(re.findall(r'^\s*"([a-z-]+)=([^"]+)"$', text, re.MULTILINE))


def test_fixtures_come_from_the_pinned_exporters():
    pins = pinned_versions()
    assert set(FIXTURE_PACKAGES.values()) <= set(pins), pins
    for stem, package in FIXTURE_PACKAGES.items():
        path = FIXTURES / f"{stem}.prom"
        assert path.is_file(), f"{path} missing: run scripts/capture-metric-fixtures.py"
        header = path.read_text().splitlines()[0]
        upstream = pins[package].split("-")[0].split("+")[0]  # 0.11.1-3+b5 -> 0.11.1
        assert upstream in header, f"{path.name} was not captured with {package} {pins[package]}"


@pytest.mark.parametrize("stem", sorted(FIXTURE_PIP_PACKAGES))
def test_fixtures_come_from_the_pinned_pip_packages(stem):
    requirements, packages = FIXTURE_PIP_PACKAGES[stem]
    pins = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)$", (ROOT / requirements).read_text(),
                   re.MULTILINE)
    )
    path = FIXTURES / f"{stem}.prom"
    assert path.is_file(), f"{path} missing: run scripts/capture-metric-fixtures.py"
    header = path.read_text().splitlines()[0]
    for package in packages:
        assert f"{package} {pins[package]}" in header, f"{path.name}: not {package} {pins[package]}"


def test_rule_metrics_appear_in_real_scrapes():
    used = rule_metrics()
    found = fixture_metrics()
    missing = {
        name: sorted(where)
        for name, where in used.items()
        if name not in found and name not in PROMETHEUS_SYNTHETIC and name not in NOT_BUILT
    }
    assert not missing, f"in no fixture scrape (a typo, another exporter version?): {missing}"


def test_not_built_list_only_holds_unscraped_names():
    found = fixture_metrics()
    used = set(rule_metrics()) | {  # the dashboards share this list (test_dashboards.py)
        name for _, expr in dashboard_queries() for name in metric_names(promql_parser.parse(expr))
    }
    scraped = sorted(set(NOT_BUILT) & set(found))
    assert not scraped, f"now in a fixture scrape, remove from NOT_BUILT: {scraped}"
    unused = sorted(set(NOT_BUILT) - used)
    assert not unused, f"NOT_BUILT names no rule or dashboard uses any more: {unused}"
