"""A minimal Redis (RESP2) client and the health rules of kailash_redis_probe.

Standard library only, so the probe needs no driver on the host that runs it.
Every read is bounded by the caller's Deadline.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from ansible.module_utils.kailash_probe import DEGRADED, UP, Deadline


class RespProtocolError(Exception):
    """The peer does not speak RESP (or closed the connection mid-reply)."""


class RespReplyError(Exception):
    """An error reply (``-CODE message``) from the server."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text
        self.code = text.split(" ", 1)[0] if text else ""


def encode_command(*args: str | bytes) -> bytes:
    """A command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode("utf-8") if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RespClient:
    """One connection; ``command`` returns the decoded reply or raises RespReplyError."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self.sock = sock
        self.deadline = deadline
        self.buffer = b""

    def _fill(self) -> None:
        self.deadline.arm(self.sock)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RespProtocolError("connection closed by the server")
        self.buffer += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > 1 << 16:
                raise RespProtocolError("reply line too long: not a Redis server?")
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _exact(self, size: int) -> bytes:
        while len(self.buffer) < size + 2:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size + 2:]
        return data

    def _reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return RespReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exact(size).decode("utf-8", "replace")
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise RespProtocolError(f"unexpected reply {line[:40]!r}: not a Redis server?")

    def command(self, *args: str | bytes) -> Any:
        self.deadline.arm(self.sock)
        self.sock.sendall(encode_command(*args))
        reply = self._reply()
        if isinstance(reply, RespReplyError):
            raise reply
        return reply


def parse_info(text: str) -> dict[str, str]:
    """``INFO`` output as a flat dict (section headers and blank lines dropped)."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        info[key.strip()] = value.strip()
    return info


def _int(info: Mapping[str, str], key: str) -> int | None:
    try:
        return int(info[key])
    except (KeyError, ValueError):
        return None


def redis_health(info: Mapping[str, str], ping_loading: bool = False) -> tuple[str, str | None]:
    """(status, reason): loading and replicas without a working master link are degraded."""
    if ping_loading or info.get("loading") == "1" or info.get("async_loading") == "1":
        done = info.get("loading_loaded_perc")
        return DEGRADED, "loading the dataset in memory" + (f" ({done}% done)" if done else "")
    if info.get("role") == "slave":
        master = f"{info.get('master_host', '?')}:{info.get('master_port', '?')}"
        link = info.get("master_link_status", "unknown")
        if link != "up":
            return DEGRADED, f"replica: link to master {master} is {link}"
        if info.get("master_sync_in_progress") == "1":
            return DEGRADED, f"replica: full sync with master {master} in progress"
    return UP, None


def redis_facts(info: Mapping[str, str], loading: bool = False) -> dict[str, Any]:
    """The service specifics the probe returns, from ``INFO``."""
    role = info.get("role")
    return {
        "role": role,
        "loading": loading or info.get("loading") == "1" or info.get("async_loading") == "1",
        "master_link_status": info.get("master_link_status") if role == "slave" else None,
        "connected_clients": _int(info, "connected_clients"),
        "memory_used": _int(info, "used_memory"),
        "maxmemory": _int(info, "maxmemory"),
        "maxmemory_policy": info.get("maxmemory_policy"),
    }
