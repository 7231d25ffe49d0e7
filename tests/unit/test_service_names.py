"""No service name outside the service roles (issue #12): the cross-cutting code (playbooks/,
plugins/, and every role that is not a service role) may not name a service as a literal,
except in the registry (roles/kailash/defaults/main.yml's kailash_services and
roles/kailash/vars/main.yml's kailash__known_services).

What counts as a literal: a string in a YAML file (keys and values, Jinja included; comments
are not read), the text of a Jinja template outside its comments (``{# #}`` and lines that
start with ``#``), a string constant of a Python file other than a docstring or a plugin's
ansible-doc text (``DOCUMENTATION``, ``EXAMPLES``, ``RETURN``: documentation, whose examples
may name real services). A plugin that is one service's implementation, by its file name
(the backup core's ``datastores/<svc>.py``, a probe kind's ``kailash_<svc>_probe.py``: the
registry's entries), may name that service, and no other. A name is a
service role's (``redis``, ``postgres_exporter``) or its Compose spelling
(``postgres-exporter``), as a whole word or the head of a hyphenated one (``nexus-api``, one
of the service's workloads): ``redis_port`` is a variable, not the name.

A word that is a service's name and also another tool's vocabulary (Grafana's datasource
plugin id ``prometheus``) is exempt where FOREIGN says so, as that exact literal only.

tests/unit/service_names_pending.yml listed the files that still named services while the
refactor was under way; it is empty now and may only shrink: a new file or a new name fails.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
REGISTRY = {"roles/kailash/defaults/main.yml", "roles/kailash/vars/main.yml"}
SERVICES = yaml.safe_load((REPO / "roles/kailash/vars/main.yml").read_text())[
    "kailash__known_services"
]
ANSIBLE_DOC = {"DOCUMENTATION", "EXAMPLES", "RETURN"}
PENDING_FILE = Path(__file__).with_name("service_names_pending.yml")
# A service's name that is also another tool's vocabulary, where the file means the latter:
# file -> {the exact literal (a whole string, or a template's whole line): why}. Nothing else
# in that file is exempt, not even another literal with the same word.
FOREIGN = {
    "roles/grafana_dashboards/files/kailash_dashboards/panels.py": {
        "prometheus": "Grafana's datasource plugin id (the panels' datasource type, the "
        "datasource variable's query): any Prometheus-compatible source, not the role",
    },
    "roles/grafana_dashboards/templates/datasource.yaml.j2": {
        "    type: prometheus": "Grafana's datasource plugin id of the provisioned datasource",
    },
}


def _pattern(services: list[str]) -> re.Pattern[str]:
    names = set(services) | {s.replace("_", "-") for s in services}
    alternatives = "|".join(sorted(map(re.escape, names), key=len, reverse=True))
    # a following "-" counts: nexus-api, chromadb-server name the service's own workloads
    return re.compile(rf"(?<![A-Za-z0-9_.\-/])({alternatives})(?![A-Za-z0-9_])")


def _yaml_strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _yaml_strings(key)
            yield from _yaml_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _yaml_strings(value)
    elif isinstance(node, str):
        yield node


def _python_strings(text: str):
    tree = ast.parse(text)
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):  # fmt: skip
            docstrings.add(id(body[0].value))
    # a plugin's ansible-doc text (DOCUMENTATION, EXAMPLES, RETURN) is documentation too
    for node in ast.walk(tree):  # module level, or a doc fragment's class attributes
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)):
            continue
        if any(isinstance(t, ast.Name) and t.id in ANSIBLE_DOC for t in node.targets):
            docstrings.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:  # fmt: skip
            yield node.value


def _template_text(text: str) -> list[str]:
    text = re.sub(r"\{#.*?#\}", "", text, flags=re.S)
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


def literals(path: Path) -> list[str]:
    """The literals of one file (empty for a kind of file that is not read)."""
    text = path.read_text(errors="replace")
    if path.suffix in (".yml", ".yaml"):
        return list(_yaml_strings(yaml.safe_load(text)))
    if path.suffix == ".py":
        return list(_python_strings(text))
    if path.suffix == ".j2":
        return _template_text(text)
    return []


def names_in(
    path: Path, pattern: re.Pattern[str], exempt: frozenset[str] = frozenset()
) -> set[str]:
    """The service names in the literals of a file, but for the exact literals ``exempt``."""
    return {
        m.group(1) for s in literals(path) if s not in exempt for m in pattern.finditer(s)
    }  # fmt: skip


def cross_cutting_files(root: Path = REPO) -> list[Path]:
    files = [p for d in ("playbooks", "plugins") for p in (root / d).rglob("*")]
    for role in (root / "roles").iterdir():
        if role.name not in SERVICES:
            files += role.rglob("*")
    return sorted(
        p for p in files
        if p.is_file() and "__pycache__" not in p.parts
        and str(p.relative_to(root)) not in REGISTRY
    )  # fmt: skip


def own_service(path: Path) -> str | None:
    """The service a plugin file is the implementation of, by its name: one datastore's class
    of the backup core's registry (``datastores/redis.py``), one probe kind's module
    (``kailash_redis_probe.py``). Such a file may name its own service (a registry entry),
    no other."""
    match = re.fullmatch(r"(?:kailash_)?(.+?)(?:_probe)?", path.stem)
    name = match.group(1) if match else ""
    return name if name in SERVICES and path.suffix == ".py" else None


def foreign_names(path: Path, pattern: re.Pattern[str], root: Path = REPO) -> set[str]:
    """The service names a file has, but for its own service's (own_service) and the other
    tools' vocabulary it means (FOREIGN)."""
    key = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    return names_in(path, pattern, frozenset(FOREIGN.get(key, {}))) - {own_service(path)}


@pytest.fixture(scope="module")
def found() -> dict[str, set[str]]:
    pattern = _pattern(SERVICES)
    out = {}
    for path in cross_cutting_files():
        names = foreign_names(path, pattern)
        if names:
            out[str(path.relative_to(REPO))] = names
    return out


@pytest.fixture(scope="module")
def pending() -> dict[str, set[str]]:
    return {k: set(v) for k, v in (yaml.safe_load(PENDING_FILE.read_text()) or {}).items()}


def test_no_new_service_name_outside_the_service_roles(found, pending) -> None:
    extra = {f: n - pending.get(f, set()) for f, n in found.items()}
    new = {f: sorted(n) for f, n in extra.items() if n}
    assert new == {}, (
        "service names outside the service roles (move the code into the service's role, "
        f"or loop over the planned services): {new}"
    )


def test_the_pending_list_only_shrinks(found, pending) -> None:
    gone = {f: n - found.get(f, set()) for f, n in pending.items()}
    stale = {f: sorted(n) for f, n in gone.items() if n}
    assert stale == {}, f"no longer named there: remove from {PENDING_FILE.name}: {stale}"


def test_a_service_s_own_plugin_may_name_it_and_no_other() -> None:
    assert own_service(Path("plugins/module_utils/kailash_backup/datastores/redis.py")) == "redis"
    assert own_service(Path("plugins/modules/kailash_neo4j_probe.py")) == "neo4j"
    assert own_service(Path("plugins/module_utils/kailash_backup/cli.py")) is None
    assert own_service(Path("plugins/modules/kailash_http_probe.py")) is None
    assert own_service(Path("roles/kailash_backup/tasks/redis.yml")) is None



def test_the_own_plugin_rule_still_catches_another_service(tmp_path) -> None:
    plugin = tmp_path / "redis.py"
    plugin.write_text('SERVICE = "redis"\nOTHER = "postgresql"\n')
    assert foreign_names(plugin, _pattern(SERVICES)) == {"postgresql"}


def test_the_scan_reads_literals_not_comments(tmp_path) -> None:
    """The scanner can fail: a literal is found in each kind of file, a comment is not."""
    pattern = _pattern(["redis", "postgres_exporter", "nexus"])
    cases = {
        "a.yml": ("# redis in a comment\nx: [redis_port, '{{ redis__conf }}']\n", set()),
        "b.yml": ("x:\n  - name: redis\n", {"redis"}),
        "c.yaml.j2": (
            "{# redis #}\n# redis\nhost: {{ 'postgres-exporter' }}\n",
            {"postgres-exporter"},
        ),
        "d.py": ('"""redis"""\nX = "postgres_exporter"\n# redis\n', {"postgres_exporter"}),
        "e.yml": ("x: [nexus-api, kailash/redis-ops, redis_user]\n", {"nexus"}),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        assert names_in(path, pattern) == expected, name


def test_foreign_vocabulary_is_exempt_only_as_the_exact_literal(tmp_path) -> None:
    """FOREIGN exempts a whole literal in its file only: the same word in another literal of
    that file, or the same literal in another file, is still a service name."""
    pattern = _pattern(SERVICES)
    root = tmp_path
    panels = root / "roles/grafana_dashboards/files/kailash_dashboards/panels.py"
    panels.parent.mkdir(parents=True)
    panels.write_text('A = "prometheus"\nB = "the prometheus role"\n')
    assert foreign_names(panels, pattern, root) == {"prometheus"}  # B's, not A's
    panels.write_text('A = "prometheus"\n')
    assert foreign_names(panels, pattern, root) == set()
    other = root / "roles/grafana_dashboards/files/kailash_dashboards/other.py"
    other.write_text('A = "prometheus"\n')
    assert foreign_names(other, pattern, root) == {"prometheus"}
    for key in FOREIGN:
        assert (REPO / key).is_file(), f"FOREIGN names a file that is gone: {key}"
