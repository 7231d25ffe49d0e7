"""``python3 -m kailash_backup ...``: the command line (cli.main)."""

from __future__ import annotations

import sys

from .cli import main

# the usage line names the core as it did when it was the single file kailash_backup.py
sys.exit(main(prog="kailash_backup.py"))
