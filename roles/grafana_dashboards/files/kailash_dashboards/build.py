"""Discover the boards, render them to JSON text, write them."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

from grafanalib._gen import DashboardEncoder

from . import boards


def board_modules() -> list:
    """Every module of the boards package (sorted by name); each defines UID and build()."""
    names = sorted(m.name for m in pkgutil.iter_modules(boards.__path__))
    return [importlib.import_module(f"{boards.__name__}.{name}") for name in names]


def render(module) -> str:
    """The board's JSON text: Grafana's dashboard model, keys sorted, stable."""
    board = module.build()
    if board.uid != module.UID:
        raise ValueError(f"{module.__name__}: uid {board.uid!r} is not UID {module.UID!r}")
    data = json.loads(json.dumps(board.to_json_data(), cls=DashboardEncoder))
    return json.dumps(data, sort_keys=True, indent=2) + "\n"


def render_all() -> dict[str, str]:
    """{file name: JSON text}; the file name is the board's uid."""
    out: dict[str, str] = {}
    for module in board_modules():
        name = f"{module.UID}.json"
        if name in out:
            raise ValueError(f"two boards with uid {module.UID}")
        out[name] = render(module)
    return out


def write_all(out_dir: Path) -> list[Path]:
    """Write every board into out_dir and remove JSON files of boards that no longer exist."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered = render_all()
    for stale in sorted(out_dir.glob("*.json")):
        if stale.name not in rendered:
            stale.unlink()
    paths = []
    for name, text in sorted(rendered.items()):
        path = out_dir / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        paths.append(path)
    return paths
