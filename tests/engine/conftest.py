"""The engine tests use the day-2 helpers (the default project, as a user runs it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "day2"))
