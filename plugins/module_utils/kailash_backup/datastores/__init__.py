"""The datastores: one module each, and the registry (service name -> class).

Every datastore-specific step (backup, restore, both drills, how counts compare, which
Compose service holds the data, whether the network mode can back it up, its own CLI
switches) is a method or attribute of its class; the rest of the core looks the class up
here and never switches on a service name.
"""

from __future__ import annotations

from typing import Any

from ..common import BackupError
from ..targets import DockerTarget, LocalTarget, Target
from .base import Datastore
from .chromadb import Chroma
from .neo4j import Neo4j
from .postgresql import Postgres
from .redis import Redis

REGISTRY: dict[str, type[Datastore]] = {
    cls.service: cls for cls in (Postgres, Redis, Chroma, Neo4j)
}
HANDLERS = REGISTRY  # the former name
SERVICES = tuple(REGISTRY)
# Compose service that holds the data (chromadb: the server, not the gate)
DATA_SERVICE = {name: cls.data_service for name, cls in REGISTRY.items()}
# network mode: the datastores a pod can back up without their volumes
NETWORK_SERVICES = tuple(name for name, cls in REGISTRY.items() if cls.network_refusal is None)


def handler_class(service: str) -> type[Datastore]:
    try:
        return REGISTRY[service]
    except KeyError:
        raise BackupError(f"unknown service {service!r} (known: {', '.join(SERVICES)})") from None


def compare_counts(expected: Any, actual: Any, service: str, exact: bool = True) -> list[str]:
    """Differences between the counts recorded in the manifest and those found."""
    return handler_class(service).compare_counts(expected, actual, exact)


def make_target(
    service: str, conf: dict[str, Any], backend: str, project: str | None, docker: str = "docker"
) -> Target | None:
    """The target of one service, or None when it is not deployed."""
    if backend == "local":
        return LocalTarget(
            service,
            conf.get("stop_command"),
            conf.get("start_command"),
            conf.get("health_command"),
            address=conf.get("host"),
        )
    if conf.get("container"):
        return DockerTarget(conf["container"], docker)
    return DockerTarget.find(project or "kailash", REGISTRY[service].data_service, docker)
