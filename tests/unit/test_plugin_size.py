"""No Python function over 80 lines in plugins/ (issue #12, "Size"): a longer one is split
into helpers that can be read and tested on their own."""

from __future__ import annotations

import ast
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
LIMIT = 80


def long_functions(root: Path = PLUGINS) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > LIMIT:
                    where = f"{path.relative_to(root.parent)}:{node.lineno}"
                    out.append(f"{where} {node.name} ({lines} lines)")
    return out


def test_no_plugin_function_over_80_lines() -> None:
    assert long_functions() == []


def test_the_check_sees_a_long_function(tmp_path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "long.py").write_text(f"def long():\n{body}\n")
    (tmp_path / "short.py").write_text("def short():\n    return 1\n")
    assert [f.split(" ", 1)[1] for f in long_functions(tmp_path)] == [f"long ({LIMIT + 1} lines)"]
