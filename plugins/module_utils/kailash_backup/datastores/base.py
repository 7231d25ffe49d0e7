"""The datastore interface: what each datastore module implements (backup, restore, the
drill steps of both backends, how its content counts compare)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..artefacts import Ctx
from ..common import BackupError, version_tuple
from ..targets import DockerTarget, LocalTarget, Target, _wait

if TYPE_CHECKING:
    from ..drills import Drill, LocalDrill


class Datastore:
    """One datastore: its backup, restore and drill steps, registered by ``service`` name in
    datastores/__init__.py (REGISTRY); nothing outside the datastore modules switches on
    that name."""

    service = "?"
    # the Compose service that holds the data (make_target finds its container)
    data_service = "?"
    # why the network mode (backend local, a pod) cannot back it up; None: it can
    network_refusal: str | None = None
    # CLI switches of its own: (flag, conf key set to true, help)
    cli_flags: tuple[tuple[str, str, str], ...] = ()

    def __init__(self, target: Target, conf: dict[str, Any]) -> None:
        self.t = target
        self.conf = conf

    @property
    def network(self) -> bool:
        """Network mode: local tools talk to a server elsewhere (conf ``host``)."""
        return isinstance(self.t, LocalTarget) and bool(self.conf.get("host"))

    # each returns plain data for the manifest
    def versions(self) -> dict[str, Any]:
        raise NotImplementedError

    def counts(self) -> dict[str, Any]:
        raise NotImplementedError

    def backup(self, ctx: Ctx) -> dict[str, Any]:
        raise NotImplementedError

    def check_compatible(self, section: dict[str, Any]) -> None:
        """Refuse (BackupError) a set this server cannot take."""
        have = version_tuple(self.versions().get("server_version"))
        want = version_tuple(section.get("server_version"))
        if have[:1] != want[:1] or have < want[:2]:
            raise BackupError(
                f"{self.service}: set made with server {section.get('server_version')}, "
                f"this server is {self.versions().get('server_version')} (incompatible)"
            )

    def restore(self, set_dir: str, section: dict[str, Any], secret: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def ready(self) -> bool:
        """The service answers (its own check, quicker than Docker's health interval)."""
        return True

    def wait_ready(self, timeout: float = 120) -> None:
        if isinstance(self.t, DockerTarget):
            self.t.wait_healthy(timeout, running_only=True)
        else:
            self.t.wait_healthy(timeout)
        _wait(
            self.ready,
            timeout,
            f"{self.service} did not answer within {timeout:g} s after the start",
        )

    @classmethod
    def compare_counts(cls, expected: Any, actual: Any, exact: bool = True) -> list[str]:
        """Differences between the counts recorded in the manifest and those found."""
        diffs: list[str] = []

        def walk(prefix: str, want: Any, have: Any) -> None:
            if isinstance(want, dict):
                have = have if isinstance(have, dict) else {}
                for key in sorted(set(want) | set(have)):
                    walk(f"{prefix}/{key}", want.get(key), have.get(key))
            elif want != have:
                diffs.append(f"{prefix}: {have}, manifest {want}")

        walk(cls.service, expected, actual)
        return diffs

    @classmethod
    def drill_docker(
        cls, drill: Drill, section: dict[str, Any], conf: dict[str, Any], image: str
    ) -> Datastore | dict[str, Any]:
        """The docker drill's steps: restore ``section`` into throwaway containers of
        ``drill`` (``drill.container``, image ``image``); returns the handler whose counts
        are then compared, or the drill's finished entry."""
        raise BackupError(f"{cls.service}: the docker drill cannot restore it")

    @classmethod
    def drill_local(
        cls, drill: LocalDrill, section: dict[str, Any], conf: dict[str, Any]
    ) -> Datastore | dict[str, Any]:
        """The local drill's steps (throwaway processes in ``drill.work``); returns as
        drill_docker."""
        raise BackupError(
            f"{cls.service}: the local drill cannot restore it (use the docker drill)"
        )
