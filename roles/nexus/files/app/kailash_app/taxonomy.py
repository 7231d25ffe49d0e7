"""The bundled sample taxonomy (data/taxonomy.json) and tree helpers."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "taxonomy.json"


@lru_cache(maxsize=1)
def load() -> dict:
    doc = json.loads(DATA.read_text(encoding="utf-8"))
    by_code = {c["code"]: c for c in doc["categories"]}
    children: dict[str, list[str]] = {}
    for c in doc["categories"]:
        if c["parent"]:
            children.setdefault(c["parent"], []).append(c["code"])
    return {"version": doc["version"], "categories": doc["categories"],
            "by_code": by_code, "children": children}


def categories() -> list[dict]:
    return load()["categories"]


def commodities() -> list[dict]:
    return [c for c in categories() if c["level"] == "commodity"]


def document(cat: dict) -> str:
    """Text embedded for a category: title (twice, it matters most) + description."""
    return f"{cat['title']} {cat['title']} {cat['description']}"


def path(code: str) -> list[dict]:
    """Ancestors from the segment down to the category itself."""
    by_code = load()["by_code"]
    out = []
    cur = by_code.get(code)
    while cur is not None:
        out.append(cur)
        cur = by_code.get(cur["parent"]) if cur["parent"] else None
    return list(reversed(out))


def _brief(cat: dict, relation: str) -> dict:
    return {"code": cat["code"], "title": cat["title"], "level": cat["level"],
            "relation": relation}


def related(code: str, limit: int = 10) -> list[dict] | None:
    """Siblings, parent and children of ``code`` from the bundled tree; None if unknown."""
    tax = load()
    cat = tax["by_code"].get(code)
    if cat is None:
        return None
    out = []
    if cat["parent"]:
        out.append(_brief(tax["by_code"][cat["parent"]], "parent"))
        for sib in tax["children"].get(cat["parent"], []):
            if sib != code:
                out.append(_brief(tax["by_code"][sib], "sibling"))
    for child in tax["children"].get(code, []):
        out.append(_brief(tax["by_code"][child], "child"))
    return out[:limit]
