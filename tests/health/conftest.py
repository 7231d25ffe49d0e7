"""Fixtures for the probe module tests: real servers and a runner that executes the
modules through Ansible (``ansible localhost -m kailash_*_probe``, JSON callback).

Servers live for the session; see services.py for how each one is provided.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import services
from harness import BOLT_PASSWORD, PG_PASSWORD, REDIS_DEFAULT_PASSWORD, REDIS_PASSWORD, ROOT


@pytest.fixture(scope="session")
def probe_code() -> Any:
    """The modules as Python modules (in-process), module_utils resolved as Ansible does."""
    import ansible.module_utils

    utils = str(ROOT / "plugins" / "module_utils")
    if utils not in ansible.module_utils.__path__:
        ansible.module_utils.__path__.append(utils)
    sys.path.insert(0, str(ROOT / "plugins" / "modules"))

    class Loader:
        def __getattr__(self, name: str) -> Any:
            if (ROOT / "plugins" / "module_utils" / f"{name}.py").exists():
                return importlib.import_module(f"ansible.module_utils.{name}")
            return importlib.import_module(name)

    return Loader()


def fixture_server(factory):
    try:
        return factory()
    except services.Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def silent() -> Iterator[services.SilentServer]:
    server = services.SilentServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_backend() -> str:
    return fixture_server(lambda: services.pick_backend(
        services.REDIS_IMAGE, services.local_redis_server() is not None))


@pytest.fixture(scope="session")
def redis(redis_backend: str) -> Iterator[services.RedisServer]:
    """A Redis with an ACL user ``probe``, a default-user password and a maxmemory."""
    with services.workdir("redis") as tmp:
        server = services.RedisServer(redis_backend, tmp, [
            "--requirepass", REDIS_DEFAULT_PASSWORD, "--maxmemory", "64mb",
            "--user", "probe", "on", f">{REDIS_PASSWORD}", "~*", "+@all"])
        yield server
        server.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[services.PostgresServer]:
    backend = fixture_server(lambda: services.pick_backend(
        services.POSTGRES_IMAGE, services.local_postgres_bindir() is not None))
    with services.workdir("postgresql") as tmp:
        server = services.PostgresServer(backend, tmp, PG_PASSWORD, max_connections=40)
        yield server
        server.close()


@pytest.fixture(scope="session")
def chroma() -> Iterator[services.ChromaServer]:
    with services.workdir("chroma") as tmp:
        server = fixture_server(lambda: services.ChromaServer(tmp))
        yield server
        server.close()


@pytest.fixture(scope="session")
def bolt() -> Iterator[services.BoltStandIn]:
    with services.workdir("bolt") as tmp:
        server = fixture_server(lambda: services.BoltStandIn(tmp, BOLT_PASSWORD))
        yield server
        server.close()


@pytest.fixture(scope="session")
def pki() -> Iterator[services.Pki]:
    with services.workdir("pki") as tmp:
        yield services.Pki(tmp)


@pytest.fixture(scope="session")
def web(pki: services.Pki) -> Iterator[dict[str, services.WebServer]]:
    servers = {"http": services.WebServer(), "valid": services.WebServer(pki.valid),
               "expired": services.WebServer(pki.expired),
               "other_ca": services.WebServer(pki.other_ca),
               "wrong_host": services.WebServer(pki.wrong_host)}
    yield servers
    for server in servers.values():
        server.close()
