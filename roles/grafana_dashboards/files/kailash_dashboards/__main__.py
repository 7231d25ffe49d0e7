"""Write every board's JSON: ``python -m kailash_dashboards [OUT_DIR]`` from
roles/grafana_dashboards/files (default OUT_DIR: ./generated). Deterministic output (sorted
keys, two-space indent, trailing newline): the committed files are this output."""

from __future__ import annotations

import sys
from pathlib import Path

from . import build

if __name__ == "__main__":
    default = Path(__file__).resolve().parent.parent / "generated"
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    for path in build.write_all(out):
        print(path)
