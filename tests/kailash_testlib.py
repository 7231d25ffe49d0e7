"""Helpers shared by the integration tests (a module of its own: tests/health has
its own conftest.py, and two modules named ``conftest`` cannot both be imported)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def load_backup_core():
    """plugins/module_utils/kailash_backup/ (the backup core, a package), loaded once by file
    path as ``kailash_backup_core``: by name, ``kailash_backup`` may resolve to the Ansible
    module of plugins/modules (tests/health puts that directory on sys.path). Its
    submodules load as ``kailash_backup_core.<name>`` (the package imports them relatively)."""
    import importlib.util

    name = "kailash_backup_core"
    if name not in sys.modules:
        package = ROOT / "plugins" / "module_utils" / "kailash_backup"
        spec = importlib.util.spec_from_file_location(
            name, package / "__init__.py", submodule_search_locations=[str(package)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before exec: its submodules and dataclasses look it up
        spec.loader.exec_module(module)
    module = sys.modules[name]
    assert hasattr(module, "verify_set"), module.__file__
    return module


@dataclass
class PlaybookRun:
    rc: int
    output: str

    def recap(self) -> dict[str, int]:
        """Sum of the PLAY RECAP counters over all hosts."""
        totals: dict[str, int] = {}
        for line in self.output.split("PLAY RECAP")[-1].splitlines():
            for key, value in re.findall(r"(\w+)=(\d+)", line):
                totals[key] = totals.get(key, 0) + int(value)
        return totals


def run_playbook(playbook: str, *args: str, extra: dict | None = None,
                 inventory: str = "inventories/local", timeout: int = 900,
                 root: Path = ROOT, env: dict | None = None) -> PlaybookRun:
    """``ansible-playbook`` in the project at ``root`` (this checkout, or a copy of it)."""
    cmd = [str(BIN / "ansible-playbook"), "-i", inventory, playbook, *args]
    if extra is not None:
        cmd += ["-e", json.dumps(extra)]
    env = dict(os.environ, ANSIBLE_CONFIG=str(root / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", PATH=f"{BIN}:{os.environ.get('PATH', '')}", **(env or {}))
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return PlaybookRun(proc.returncode, proc.stdout + proc.stderr)


def redis_cli(container: str, password: str, *args: str, db: int = 0,
              stdin: bytes | None = None, user: str = "kailash-admin") -> str:
    """redis-cli in a stack's Redis container as ``user`` (the password goes through the
    environment, never onto a command line)."""
    proc = subprocess.run(
        ["docker", "exec", "-i", "-e", "REDISCLI_AUTH", container, "redis-cli", "--user", user,
         "--no-auth-warning", "-n", str(db), *args],
        input=stdin, capture_output=True, check=True, timeout=600,
        env={**os.environ, "REDISCLI_AUTH": password},
    )
    return proc.stdout.decode().strip()


def resp(*parts: str) -> bytes:
    """One command in Redis's wire protocol (for redis-cli --pipe)."""
    return (f"*{len(parts)}\r\n" + "".join(f"${len(p)}\r\n{p}\r\n" for p in parts)).encode()


def mcp_sdk_session(url: str, tool: str, arguments: dict) -> tuple:
    """initialize, tools/list and one tools/call with the official MCP Python SDK's
    WebSocket client (``mcp.client.websocket``; the SDK validates every result against
    the MCP schema). Returns the SDK's (InitializeResult, ListToolsResult, CallToolResult)."""
    import asyncio
    import warnings
    from datetime import timedelta

    from mcp import ClientSession
    from mcp.client.websocket import websocket_client

    async def session() -> tuple:
        async with websocket_client(url) as (read, write), ClientSession(
                read, write, read_timeout_seconds=timedelta(seconds=30)) as client:
            init = await client.initialize()
            tools = await client.list_tools()
            call = await client.call_tool(tool, arguments)
            return init, tools, call

    with warnings.catch_warnings():  # the SDK deprecates its WebSocket transport (mcp 2.0)
        warnings.simplefilter("ignore", DeprecationWarning)
        return asyncio.run(asyncio.wait_for(session(), timeout=90))


def wait_for(what: str, check, timeout: float = 90, step: float = 0.5):
    """``check()``'s first truthy result, polled every ``step`` seconds; connection errors
    (a container still starting: OSError, which requests' errors are too) count as not yet.
    AssertionError naming ``what`` and the last answer after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")

