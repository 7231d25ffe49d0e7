"""Exec backends: where a datastore's commands run (``DockerTarget``, ``LocalTarget``)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .common import CHUNK, BackupError, one_line


@dataclass
class Result:
    rc: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


class CommandFailed(BackupError):
    pass


def _run_process(
    argv: list[str],
    env: dict[str, str] | None,
    stdin: Iterable[bytes] | None,
    sink: Callable[[bytes], None] | None,
    timeout: float | None,
    what: str,
    check: bool,
) -> Result:
    """Run argv; stream stdout into ``sink`` (or collect it); stdin from an iterable."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    deadline = None if timeout is None else time.monotonic() + timeout
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out_file:
        proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
            argv,
            env=full_env,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if sink is not None else out_file,
            stderr=err,
        )
        try:
            if stdin is not None:
                try:
                    for block in stdin:
                        proc.stdin.write(block)
                        if deadline and time.monotonic() > deadline:
                            raise CommandFailed(f"{what}: timed out after {timeout:g} s")
                except BrokenPipeError:
                    pass
                finally:
                    with contextlib.suppress(BrokenPipeError):
                        proc.stdin.close()
            if sink is not None:
                while True:
                    block = proc.stdout.read(CHUNK)
                    if not block:
                        break
                    sink(block)
                    if deadline and time.monotonic() > deadline:
                        raise CommandFailed(f"{what}: timed out after {timeout:g} s")
            rc = proc.wait(
                timeout=None if deadline is None else max(1, deadline - time.monotonic())
            )
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err.seek(0)
        stderr = err.read()
        out_file.seek(0)
        stdout = out_file.read() if sink is None else b""
    if check and rc != 0:
        raise CommandFailed(f"{what} failed (exit {rc}): {one_line(stderr or stdout)}")
    return Result(rc, stdout, stderr)


class Target:
    """Where one datastore's commands run. Subclasses: DockerTarget, LocalTarget."""

    backend = "abstract"
    name = "?"

    def run(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stdin: Iterable[bytes] | None = None,
        sink: Callable[[bytes], None] | None = None,
        timeout: float | None = None,
        what: str | None = None,
        check: bool = True,
    ) -> Result:
        raise NotImplementedError

    def run_offline(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stdin: Iterable[bytes] | None = None,
        sink: Callable[[bytes], None] | None = None,
        timeout: float | None = None,
        what: str | None = None,
        check: bool = True,
    ) -> Result:
        """Run argv with the service's data present but the service stopped."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def wait_healthy(self, timeout: float) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "name": self.name}


class DockerTarget(Target):
    """A datastore in a Docker container (Compose service or a drill's throwaway)."""

    backend = "docker"

    def __init__(self, container: str, docker: str = "docker") -> None:
        self.name = container
        self.docker = docker
        self._inspect: dict[str, Any] | None = None

    @classmethod
    def find(cls, project: str, service: str, docker: str = "docker") -> DockerTarget | None:
        res = _run_process(
            [
                docker,
                "ps",
                "-a",
                "--filter",
                f"label=com.docker.compose.project={project}",
                "--filter",
                f"label=com.docker.compose.service={service}",
                "--format",
                "{{.Names}}",
            ],
            None,
            None,
            None,
            30,
            f"docker ps ({project}/{service})",
            True,
        )
        names = sorted(res.text.split())
        return cls(names[0], docker) if names else None

    def inspect(self, refresh: bool = False) -> dict[str, Any]:
        if self._inspect is None or refresh:
            res = _run_process(
                [self.docker, "inspect", self.name],
                None,
                None,
                None,
                30,
                f"docker inspect {self.name}",
                True,
            )
            self._inspect = json.loads(res.stdout)[0]
        return self._inspect

    @property
    def image(self) -> str:
        return self.inspect()["Config"]["Image"]

    @property
    def user(self) -> str:
        return self.inspect()["Config"].get("User") or ""

    def running(self) -> bool:
        return bool(self.inspect(refresh=True)["State"].get("Running"))

    def address(self, network_suffix: str = "_data") -> str | None:
        nets = (self.inspect(refresh=True).get("NetworkSettings") or {}).get("Networks") or {}
        for name, net in nets.items():
            if name.endswith(network_suffix) and net.get("IPAddress"):
                return net["IPAddress"]
        return next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), None)

    def run(self, argv, *, env=None, stdin=None, sink=None, timeout=None, what=None, check=True):
        cmd = [self.docker, "exec"] + (["-i"] if stdin is not None else [])
        for key in env or {}:
            cmd += ["-e", key]  # value from our environment: never on a command line
        cmd += [self.name, *argv]
        return _run_process(
            cmd, env, stdin, sink, timeout, what or f"{argv[0]} in {self.name}", check
        )

    def run_offline(
        self,
        argv,
        *,
        env=None,
        stdin=None,
        sink=None,
        timeout=None,
        what=None,
        check=True,
        extra: list[str] | None = None,
    ):
        helper = f"{self.name}-bk-helper-{uuid.uuid4().hex[:8]}"
        cmd = [
            self.docker,
            "run",
            "--rm",
            "--name",
            helper,
            "--network",
            "none",
            "--volumes-from",
            self.name,
            "--entrypoint",
            argv[0],
        ]
        if stdin is not None:
            cmd.append("-i")
        if self.user:
            cmd += ["--user", self.user]
        for key in env or {}:
            cmd += ["-e", key]
        cmd += list(extra or [])
        cmd += [self.image, *argv[1:]]
        return _run_process(
            cmd, env, stdin, sink, timeout, what or f"{argv[0]} (helper of {self.name})", check
        )

    stop_signal: str | None = None
    _policy: str | None = None

    def stop(self) -> None:
        if self.stop_signal:
            # a server that ignores SIGTERM (Chroma's) gets its own signal; the restart
            # policy is off meanwhile, or Docker would start it again at once
            policy = (self.inspect(refresh=True)["HostConfig"].get("RestartPolicy") or {}).get(
                "Name"
            )
            if policy and policy != "no":
                _run_process(
                    [self.docker, "update", "--restart", "no", self.name],
                    None,
                    None,
                    None,
                    60,
                    f"docker update {self.name}",
                    True,
                )
                self._policy = policy
            _run_process(
                [self.docker, "kill", "-s", self.stop_signal, self.name],
                None,
                None,
                None,
                60,
                f"docker kill -s {self.stop_signal} {self.name}",
                False,
            )
            with contextlib.suppress(CommandFailed, subprocess.TimeoutExpired):
                _run_process(
                    [self.docker, "wait", self.name],
                    None,
                    None,
                    None,
                    60,
                    f"docker wait {self.name}",
                    True,
                )
        _run_process(
            [self.docker, "stop", "-t", "60", self.name],
            None,
            None,
            None,
            180,
            f"docker stop {self.name}",
            True,
        )

    def start(self) -> None:
        if self._policy:
            _run_process(
                [self.docker, "update", "--restart", self._policy, self.name],
                None,
                None,
                None,
                60,
                f"docker update {self.name}",
                True,
            )
            self._policy = None
        _run_process(
            [self.docker, "start", self.name],
            None,
            None,
            None,
            120,
            f"docker start {self.name}",
            True,
        )

    def wait_healthy(self, timeout: float, running_only: bool = False) -> None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.inspect(refresh=True)["State"]
            health = (state.get("Health") or {}).get("Status")
            if state.get("Running") and (running_only or health in (None, "healthy")):
                return
            if time.monotonic() > deadline:
                raise BackupError(
                    f"{self.name} not healthy after {timeout:g} s "
                    f"(state {state.get('Status')}, health {health})"
                )
            time.sleep(0.5)

    def describe(self):
        return {"backend": self.backend, "name": self.name, "image": self.image}


class LocalTarget(Target):
    """The tools run here, as local processes (a Kubernetes pod / CronJob next to the data).

    Stopping and starting the service (restore, Neo4j's offline dump) is delegated to
    ``stop_command`` / ``start_command`` (e.g. ``kubectl scale --replicas=0 ...``) and
    health to ``health_command``; without them those operations are refused.
    """

    backend = "local"

    def __init__(
        self,
        name: str,
        stop_command: list[str] | None = None,
        start_command: list[str] | None = None,
        health_command: list[str] | None = None,
        address: str | None = None,
    ) -> None:
        self.name = name
        self.stop_command = stop_command
        self.start_command = start_command
        self.health_command = health_command
        self.address = address  # network mode: the server's host (None: tools next to the data)

    def describe(self) -> dict[str, Any]:
        out = {"backend": self.backend, "name": self.name}
        if self.address:
            out["host"] = self.address
        return out

    def run(self, argv, *, env=None, stdin=None, sink=None, timeout=None, what=None, check=True):
        return _run_process(list(argv), env, stdin, sink, timeout, what or argv[0], check)

    run_offline = run

    def _hook(self, cmd: list[str] | None, what: str) -> None:
        if not cmd:
            raise BackupError(
                f"{self.name}: the local backend needs a {what}_command to {what} "
                "the service (e.g. kubectl scale)"
            )
        _run_process(cmd, None, None, None, 600, f"{what} {self.name}", True)

    def stop(self) -> None:
        self._hook(self.stop_command, "stop")

    def start(self) -> None:
        self._hook(self.start_command, "start")

    def wait_healthy(self, timeout: float) -> None:
        if not self.health_command:
            return
        deadline = time.monotonic() + timeout
        while _run_process(self.health_command, None, None, None, 30, "health", False).rc != 0:
            if time.monotonic() > deadline:
                raise BackupError(f"{self.name} not healthy after {timeout:g} s")
            time.sleep(1)


def _wait(cond: Callable[[], bool], timeout: float, msg: str, target: Target | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if isinstance(target, DockerTarget) and not target.running():
            logs = _run_process(
                [target.docker, "logs", "--tail", "5", target.name],
                None,
                None,
                None,
                30,
                "docker logs",
                False,
            )
            raise BackupError(
                f"{msg}: container {target.name} exited: {one_line(logs.stderr + logs.stdout, 400)}"
            )
        try:
            if cond():
                return
        except BackupError:
            pass
        if time.monotonic() > deadline:
            raise BackupError(msg)
        time.sleep(0.5)
