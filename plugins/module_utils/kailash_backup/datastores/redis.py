"""Redis: BGSAVE (or redis-cli --rdb over the network) and the RDB; restored offline."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..artefacts import Ctx, read_artefact
from ..common import CHUNK, BackupError, one_line
from ..targets import CommandFailed, DockerTarget, LocalTarget, Target, _run_process, _wait
from .base import Datastore

if TYPE_CHECKING:
    from ..drills import Drill, LocalDrill


def info_fields(text: str) -> dict[str, str]:
    """Redis ``INFO`` output as {field: value}; section headers and other lines dropped."""
    return {
        name: value.strip()
        for name, sep, value in (line.partition(":") for line in text.splitlines())
        if sep and not name.startswith("#")
    }


def redis_loaded(cli: Callable[..., str]) -> bool:
    """True once a Redis server has loaded its whole dataset (RDB or AOF) and serves
    commands; ``cli(*args)`` runs one redis-cli command without raising and returns its output.

    * ``loading`` must read exactly 0: Redis 7.0 prints ``async_loading:0`` next to
      ``loading:1`` while it loads, so a substring test for "loading:0" passes in the middle
      of a load (the drill then counted 95030 of 107594 keys in db0 and none in db1/db3);
    * PING must answer PONG. A starting server handles clients only while it loads (between
      chunks of the file: INFO answers, PING gets -LOADING) or once it runs its normal event
      loop, i.e. after the load: a server that is not listening yet (connection refused,
      empty INFO), that answers -LOADING, or has not reached its event loop is not ready.
    """
    info = info_fields(cli("INFO", "persistence"))
    if info.get("loading") != "0" or info.get("async_loading", "0") != "0":
        return False
    return cli("PING") == "PONG"


def _load_only(data_dir: str, dbfile: str) -> list[str]:
    """redis-server options of a server that loads an RDB and persists nothing itself."""
    return ["--dir", data_dir, "--dbfilename", dbfile, "--appendonly", "no", "--save", ""]


class Redis(Datastore):
    """BGSAVE as the admin ACL user, copy the RDB; restore offline (AOF handled)."""

    service = "redis"
    data_service = "redis"

    def cli(
        self, *args: str, check: bool = True, target: Target | None = None, auth: bool = True
    ) -> str:
        cmd = ["redis-cli", *self._where()]
        env = None
        if auth and self.conf.get("password"):
            cmd += ["--user", self.conf.get("user", "kailash-admin"), "--no-auth-warning"]
            env = {"REDISCLI_AUTH": self.conf["password"]}
        res = (target or self.t).run(
            [*cmd, *args], env=env, timeout=60, what=f"redis-cli {args[0]}", check=check
        )
        out = res.text.strip()
        # LOADING: a server still loading its dataset refuses most commands
        if check and out.startswith(("ERR", "NOPERM", "WRONGPASS", "LOADING")):
            raise BackupError(f"redis: {args[0]} refused: {one_line(out)}")
        return out

    def _where(self) -> list[str]:
        if self.conf.get("socket"):
            return ["-s", self.conf["socket"]]
        host = ["-h", self.conf["host"]] if self.conf.get("host") else []
        return [*host, "-p", str(self.conf.get("port", 6379))]

    def ready(self) -> bool:
        """The dataset is loaded and the server serves commands (redis_loaded)."""
        return redis_loaded(lambda *args: self.cli(*args, check=False))

    def check_compatible(self, section: dict[str, Any]) -> None:
        if self.network:
            raise BackupError(
                "redis: an RDB can only be restored onto the server's data volume (stop the "
                "server, place dump.rdb, start it); over the network (backend local with a "
                "host) that is not possible: follow the Kubernetes restore procedure of "
                "docs/kubernetes.md"
            )
        super().check_compatible(section)

    def _backup_network(self, ctx: Ctx) -> dict[str, Any]:
        """``redis-cli --rdb``: the server forks (as for a replica's full sync, needs the
        admin ACL user: SYNC/REPLCONF) and streams a fresh RDB, staged in the partial set
        directory, then stored like a BGSAVE's dump.rdb."""
        before = self.counts()
        tmp = os.path.join(ctx.set_dir, f".redis-rdb-{os.getpid()}.tmp")
        env = None
        cmd = ["redis-cli", *self._where()]
        if self.conf.get("password"):
            cmd += ["--user", self.conf.get("user", "kailash-admin"), "--no-auth-warning"]
            env = {"REDISCLI_AUTH": self.conf["password"]}
        try:
            res = self.t.run(
                [*cmd, "--rdb", tmp],
                env=env,
                timeout=float(self.conf.get("save_timeout", 3600)),
                what="redis-cli --rdb",
                check=False,
            )
            if res.rc != 0 or not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
                raise BackupError(
                    f"redis: redis-cli --rdb failed (exit {res.rc}): "
                    f"{one_line(res.stderr + res.stdout, 400)} (needs the admin ACL user, "
                    "allowed SYNC and REPLCONF)"
                )
            with open(tmp, "rb") as fh:
                if fh.read(5) != b"REDIS":
                    raise BackupError("redis: redis-cli --rdb did not write an RDB file")

            def produce(w: Callable[[bytes], None]) -> None:
                with open(tmp, "rb") as fh:
                    while True:
                        block = fh.read(CHUNK)
                        if not block:
                            return
                        w(block)

            ctx.write_stream("redis/dump.rdb", "rdb", produce)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        after = self.counts()
        return {
            "counts": after,
            "counts_exact": before == after,
            "method": "redis-cli --rdb over the network (replication snapshot)",
            "host": self.conf["host"],
        }

    def info(self, section: str, **kw: Any) -> dict[str, str]:
        return info_fields(self.cli("INFO", section, **kw))

    def config(self, name: str) -> str:
        lines = self.cli("CONFIG", "GET", name).splitlines()
        return lines[1] if len(lines) > 1 else ""

    def versions(self):
        server = self.info("server")
        return {
            "server_version": server.get("redis_version", "").strip(),
            "tool_versions": {
                "redis-cli": self.t.run(["redis-cli", "--version"], timeout=30).text.strip()
            },
            "rdb_format": "RDB",
        }

    def counts(self, **kw: Any) -> dict[str, Any]:
        space = self.info("keyspace", **kw)
        out = {}
        for db, value in space.items():
            fields = dict(part.split("=") for part in value.strip().split(","))
            out[db] = {"keys": int(fields["keys"]), "expires": int(fields.get("expires", 0))}
        return out

    def backup(self, ctx: Ctx) -> dict[str, Any]:
        if self.network:
            return self._backup_network(ctx)
        before = self.counts()
        last = int(self.cli("LASTSAVE"))
        # Redis >= 7.0 counts completed saves (rdb_saves): no need to wait for LASTSAVE,
        # which has one-second resolution, to move
        saves = self.info("persistence").get("rdb_saves", "").strip()
        saves_before = int(saves) if saves.isdigit() else None
        if saves_before is None and int(time.time()) <= last:
            time.sleep(1.1)
        reply = self.cli("BGSAVE", "SCHEDULE", check=False)
        if "ERR" in reply or "NOPERM" in reply:
            raise BackupError(
                f"redis: BGSAVE refused: {one_line(reply)} "
                f"(needs the admin ACL user, not the application user)"
            )
        deadline = time.monotonic() + float(self.conf.get("save_timeout", 600))
        while True:
            pers = self.info("persistence")
            done = pers.get("rdb_bgsave_in_progress", "1").strip() == "0"
            if done and saves_before is not None:
                if int(pers.get("rdb_saves", "0").strip() or 0) > saves_before:
                    break
            elif done and int(self.cli("LASTSAVE")) > last:
                break
            if (
                pers.get("rdb_bgsave_in_progress", "").strip() == "0"
                and pers.get("rdb_last_bgsave_status", "").strip() == "err"
            ):
                raise BackupError("redis: BGSAVE failed (rdb_last_bgsave_status:err)")
            if time.monotonic() > deadline:
                raise BackupError("redis: BGSAVE did not finish in time")
            time.sleep(0.1)
        if self.info("persistence").get("rdb_last_bgsave_status", "").strip() != "ok":
            raise BackupError("redis: BGSAVE failed (rdb_last_bgsave_status not ok)")
        after = self.counts()
        path = os.path.join(self.config("dir") or "/data", self.config("dbfilename") or "dump.rdb")
        ctx.write_stream(
            "redis/dump.rdb",
            "rdb",
            lambda w: self.t.run(["cat", path], sink=w, what=f"copy of {path}"),
        )
        return {
            "counts": after,
            "counts_exact": before == after,
            "rdb_path": path,
            "appendonly": self.config("appendonly"),
        }

    def restore(self, set_dir, section, secret):
        data_dir = self.config("dir") or "/data"
        dbfile = self.config("dbfilename") or "dump.rdb"
        aof = self.config("appendonly") == "yes"
        aof_dir = self.config("appenddirname") or "appendonlydir"
        entry = section["files"][0]
        self.t.stop()
        try:
            self.t.run_offline(
                [
                    "sh",
                    "-c",
                    f'cat > "{data_dir}/.restore.rdb" && '
                    f'mv -f "{data_dir}/.restore.rdb" "{data_dir}/{dbfile}" && '
                    f'if [ -d "{data_dir}/{aof_dir}" ]; then '
                    f'rm -rf "{data_dir}/{aof_dir}.before-restore"; '
                    f'mv "{data_dir}/{aof_dir}" "{data_dir}/{aof_dir}.before-restore"; fi',
                ],
                stdin=read_artefact(set_dir, entry, secret),
                what="placing the RDB",
            )
            if aof:
                self._rebuild_aof(data_dir, dbfile)
        finally:
            self.t.start()
        return {"appendonly": aof}

    def _rebuild_aof(self, data_dir: str, dbfile: str) -> None:
        """An enabled AOF wins over the RDB at start: load the RDB with AOF off in a
        temporary server, turn AOF on there (it writes a fresh AOF from memory, i.e. a
        BGREWRITEAOF), shut it down, then the real server starts from that AOF."""
        if not isinstance(self.t, DockerTarget):
            raise BackupError(
                "redis: AOF rebuild on the local backend: start redis-server with "
                "--appendonly no, CONFIG SET appendonly yes, wait for the rewrite"
            )
        tmp = f"{self.t.name}-bk-aof-{uuid.uuid4().hex[:8]}"
        cmd = [
            self.t.docker,
            "run",
            "-d",
            "--rm",
            "--name",
            tmp,
            "--network",
            "none",
            "--volumes-from",
            self.t.name,
        ]
        if self.t.user:
            cmd += ["--user", self.t.user]
        cmd += [self.t.image, "redis-server", *_load_only(data_dir, dbfile), "--port", "6379"]
        _run_process(cmd, None, None, None, 60, "temporary redis-server", True)
        helper = DockerTarget(tmp, self.t.docker)
        temp = Redis(helper, {"port": 6379})
        try:
            deadline = time.monotonic() + 600
            # the whole RDB in memory first: the AOF is written from what is loaded
            _wait(temp.ready, 600, "redis: temporary server did not load the RDB", helper)
            temp.cli("CONFIG", "SET", "appendonly", "yes")
            while True:
                pers = temp.info("persistence")
                if pers.get("aof_last_bgrewrite_status") == "err":
                    raise BackupError("redis: AOF rewrite failed (aof_last_bgrewrite_status:err)")
                if (
                    pers.get("aof_rewrite_in_progress") == "0"
                    and pers.get("aof_rewrite_scheduled") == "0"
                    and pers.get("aof_enabled") == "1"
                ):
                    break
                if time.monotonic() > deadline:
                    raise BackupError("redis: AOF rewrite did not finish")
                time.sleep(0.3)
            helper.run(["redis-cli", "SHUTDOWN", "SAVE"], timeout=120, check=False)
        finally:
            _run_process([self.t.docker, "rm", "-f", tmp], None, None, None, 60, "rm", False)

    @classmethod
    def compare_counts(cls, expected: Any, actual: Any, exact: bool = True) -> list[str]:
        """Keys per database; keys with a TTL may expire between backup and restore."""
        diffs: list[str] = []
        for db, want in (expected or {}).items():
            have = (actual or {}).get(db, {"keys": 0})
            low = want["keys"] - want.get("expires", 0)
            if not low <= have["keys"] <= want["keys"] or (
                exact and not want.get("expires") and have["keys"] != want["keys"]
            ):
                diffs.append(f"redis {db}: {have['keys']} keys, manifest {want['keys']}")
        for db in set(actual or {}) - set(expected or {}):
            diffs.append(f"redis {db}: {actual[db]['keys']} keys, not in the manifest")
        return diffs

    @classmethod
    def drill_docker(
        cls, drill: Drill, section: dict[str, Any], conf: dict[str, Any], image: str
    ) -> Datastore:
        """The RDB placed in a throwaway container of the image, a redis-server loading it."""
        conf.update(password=None, port=6379)
        target = drill.container(
            cls.service, image, ["sleep", "infinity"], user="999:999", entrypoint=""
        )
        entry = section["files"][0]
        target.run(
            ["sh", "-c", "cat > /data/dump.rdb"],
            stdin=read_artefact(drill.set_dir, entry, drill.s.encryption_key),
            what="placing the RDB",
        )
        target.run(
            [
                "redis-server",
                *_load_only("/data", "dump.rdb"),
                "--port",
                "6379",
                "--daemonize",
                "yes",
            ],
            what="redis-server",
        )
        handler = cls(target, conf)
        _wait(handler.ready, 300, "drill Redis did not load the RDB", target)
        return handler

    @classmethod
    def drill_local(
        cls, drill: LocalDrill, section: dict[str, Any], conf: dict[str, Any]
    ) -> Datastore:
        """A ``redis-server`` on a private Unix socket loading the set's RDB."""
        rdir = os.path.join(drill.work, "redis")
        os.makedirs(rdir, mode=0o700)
        entry = section["files"][0]
        with open(os.path.join(rdir, "dump.rdb"), "wb") as fh:
            for block in read_artefact(drill.set_dir, entry, drill.s.encryption_key):
                fh.write(block)
        sock = os.path.join(drill.sockets, "redis.sock")
        log_path = os.path.join(drill.work, "redis.log")
        log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(  # noqa: S603 - argv list
            [
                "redis-server",
                "--port",
                "0",
                "--unixsocket",
                sock,
                "--unixsocketperm",
                "700",
                *_load_only(rdir, "dump.rdb"),
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        drill.procs.append(proc)
        handler = cls(LocalTarget("drill-redis"), {"socket": sock})

        def loaded() -> bool:
            if proc.poll() is not None:
                with open(log_path, "rb") as fh:
                    tail = fh.read()[-400:]
                raise BackupError(f"drill redis-server exited: {one_line(tail, 400)}")
            return os.path.exists(sock) and handler.ready()

        deadline = time.monotonic() + 600
        while True:
            try:
                if loaded():
                    break
            except CommandFailed:
                pass
            if time.monotonic() > deadline:
                raise BackupError("drill Redis did not load the RDB")
            time.sleep(0.3)
        return handler
