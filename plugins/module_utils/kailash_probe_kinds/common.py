"""What the probe kinds share: ``Kind`` (one kind's entry in the registry), the lazy import
of a driver (``MissingLibrary``, ``_library``) and the option checks of an address."""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from ansible.module_utils.kailash_probe import Deadline, Outcome


class MissingLibrary(Exception):
    """A driver a kind needs is not installed: ``library`` names it, ``trace`` says why."""

    def __init__(self, library: str, trace: str):
        super().__init__(library)
        self.library, self.trace = library, trace


def _library(name: str, label: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingLibrary(label, traceback.format_exc()) from exc


def _port_errors(params: Mapping[str, Any]) -> list[str]:
    port = params["port"]
    return [] if 0 < port < 65536 else [f"port must be 1-65535, got {port}"]


def _url_errors(params: Mapping[str, Any], key: str, schemes: tuple[str, ...],
                form: str) -> list[str]:
    url = urlsplit(params[key])
    if url.scheme in schemes and url.hostname:
        return []
    return [f"{key} must be {form}, got {params[key]!r}"]


class Kind(NamedTuple):
    spec: dict[str, dict[str, Any]]
    facts: dict[str, Any]
    make_check: Callable[[dict[str, Any]], Callable[[Deadline], Outcome]]
    errors: Callable[[Mapping[str, Any]], list[str]]
    library: Callable[[], Any] | None = None
