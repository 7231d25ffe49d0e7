"""PostgreSQL: pg_dumpall --globals-only + pg_dump -Fc per database, pg_restore."""

from __future__ import annotations

import glob
import os
import shutil
import uuid
from typing import TYPE_CHECKING, Any

from ..artefacts import Ctx, read_artefact
from ..common import BackupError, version_tuple
from ..targets import LocalTarget, _wait
from .base import Datastore

if TYPE_CHECKING:
    from ..drills import Drill, LocalDrill


class Postgres(Datastore):
    """pg_dump -Fc per database + pg_dumpall --globals-only, pg_restore: in the server's
    container (same version)."""

    service = "postgresql"
    data_service = "postgresql"

    def _env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.conf.get("password") or ""}

    def _conn(self, db: str | None = None) -> list[str]:
        args = [
            "-h",
            self.conf.get("host") or self.conf.get("socket_dir", "/var/run/postgresql"),
            "-p",
            str(self.conf.get("port", 5432)),
            "-U",
            self.conf.get("user", "postgres"),
        ]
        return args + (["-d", db] if db else [])

    def psql(self, sql: str, db: str | None = None, check: bool = True) -> str:
        res = self.t.run(
            [
                "psql",
                "-X",
                "-qAt",
                "-v",
                "ON_ERROR_STOP=1",
                *self._conn(db or self.conf.get("database", "postgres")),
                "-c",
                sql,
            ],
            env=self._env(),
            timeout=600,
            what="psql",
            check=check,
        )
        return res.text.strip()

    def ready(self) -> bool:
        return self.psql("SELECT 1", "postgres", check=False) == "1"

    def databases(self) -> list[str]:
        out = self.psql(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
            "AND datname <> 'postgres' ORDER BY 1"
        )
        wanted = self.conf.get("databases") or []
        dbs = [d for d in out.splitlines() if d]
        return [d for d in dbs if not wanted or d in wanted]

    def versions(self) -> dict[str, Any]:
        server = self.psql("SHOW server_version")
        tool = self.t.run(["pg_dump", "--version"], timeout=30).text.strip()
        return {
            "server_version": server.split()[0],
            "server_version_full": server,
            "tool_versions": {"pg_dump": tool},
        }

    def table_counts(self, db: str) -> dict[str, int]:
        tables = self.psql(
            "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1", db
        )
        names = [t for t in tables.splitlines() if t]
        if not names:
            return {}
        sql = " UNION ALL ".join(
            f"SELECT '{n.replace(chr(39), chr(39) * 2)}', count(*) FROM {n}" for n in names
        )
        out = self.psql(sql, db)
        return {
            line.rsplit("|", 1)[0]: int(line.rsplit("|", 1)[1]) for line in out.splitlines() if line
        }

    def counts(self) -> dict[str, Any]:
        return {db: self.table_counts(db) for db in self.databases()}

    def backup(self, ctx: Ctx) -> dict[str, Any]:
        conn = self._conn()
        ctx.write_stream(
            "postgresql/globals.sql",
            "globals",
            lambda w: self.t.run(
                ["pg_dumpall", "--globals-only", *conn],
                env=self._env(),
                sink=w,
                what="pg_dumpall --globals-only",
            ),
        )
        dbs = self.databases()
        if not dbs:
            raise BackupError("postgresql: no database to back up")
        counts = {}
        for db in dbs:
            counts[db] = self.table_counts(db)
            ctx.write_stream(
                f"postgresql/{db}.dump",
                "pg_dump",
                lambda w, db=db: self.t.run(
                    ["pg_dump", "-Fc", *self._conn(db)],
                    env=self._env(),
                    sink=w,
                    what=f"pg_dump of {db}",
                ),
                compress=False,
            )  # -Fc is compressed already
        return {"counts": counts, "databases": dbs}

    def restore(self, set_dir, section, secret):
        env = self._env()
        details = {}
        for entry in section["files"]:
            if entry["kind"] == "globals" and self.conf.get("restore_globals", True):
                # existing roles report "already exists" and are kept: no ON_ERROR_STOP here.
                # The role we log in as keeps this deployment's password (its secrets may
                # differ from the set's): its CREATE/ALTER ROLE lines are left out.
                text = b"".join(read_artefact(set_dir, entry, secret)).decode("utf-8")
                me = self.conf.get("user", "postgres")
                names = {me, '"' + me.replace('"', '""') + '"'}
                kept = [
                    line
                    for line in text.splitlines()
                    if not any(
                        line.startswith(f"{verb} ROLE {n} ") or line.startswith(f"{verb} ROLE {n};")
                        for verb in ("CREATE", "ALTER")
                        for n in names
                    )
                ]
                self.t.run(
                    ["psql", "-X", "-q", *self._conn("postgres")],
                    env=env,
                    stdin=["\n".join(kept).encode("utf-8") + b"\n"],
                    what="psql (globals)",
                )
        for db in section["details"]["databases"]:
            entry = next(
                e for e in section["files"] if e["path"].startswith(f"postgresql/{db}.dump")
            )
            quoted = '"' + db.replace('"', '""') + '"'
            self.psql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)", "postgres")
            self.t.run(
                [
                    "pg_restore",
                    "--create",
                    "--exit-on-error",
                    "--no-password",
                    *self._conn("postgres"),
                ],
                env=env,
                stdin=read_artefact(set_dir, entry, secret),
                what=f"pg_restore of {db}",
            )
            # no ANALYZE here (pg_restore does none either): autovacuum analyzes the new tables
            details[db] = "restored"
        return details

    @classmethod
    def drill_docker(
        cls, drill: Drill, section: dict[str, Any], conf: dict[str, Any], image: str
    ) -> Datastore:
        """A throwaway server of the image (its entrypoint's init), the set restored."""
        conf.update(
            user=conf.get("user", "kailash_user"),
            password="drill-" + uuid.uuid4().hex,
            database="postgres",
            restore_globals=False,
        )
        # explicit server options: the built image's entrypoint needs at least one
        target = drill.container(
            cls.service,
            image,
            ["postgres", "-c", "max_connections=50"],
            env={
                "POSTGRES_USER": conf["user"],
                "POSTGRES_PASSWORD": conf["password"],
                "POSTGRES_DB": "postgres",
                "PGDATA": "/var/lib/postgresql/data/pgdata",
            },
            user="70:70",
            volume_path="/var/lib/postgresql/data",
            tmpfs=["/var/run/postgresql:uid=70,gid=70,mode=0775"],
        )
        handler = cls(target, conf)
        # the entrypoint's socket-only init server (listen_addresses '') stops once:
        # ready = the final server answers (as the role's healthcheck decides)
        _wait(
            lambda: (
                handler.psql(
                    "SELECT 1 WHERE current_setting('listen_addresses') <> ''",
                    "postgres",
                    check=False,
                )
                == "1"
            ),
            120,
            "drill PostgreSQL did not start",
            target,
        )
        handler.restore(drill.set_dir, section, drill.s.encryption_key)
        return handler

    @staticmethod
    def _pg_bin(conf: dict[str, Any]) -> str:
        if conf.get("pg_bin_dir"):
            return conf["pg_bin_dir"]
        found = shutil.which("initdb")
        if found:
            return os.path.dirname(found)
        dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version_tuple)
        if not dirs:
            raise BackupError("postgresql: no initdb/pg_ctl (postgresql server package) here")
        return os.path.dirname(dirs[-1])

    @classmethod
    def drill_local(
        cls, drill: LocalDrill, section: dict[str, Any], conf: dict[str, Any]
    ) -> Datastore:
        """``initdb`` + ``pg_ctl`` in the drill's scratch directory, listening on a Unix
        socket in a private directory only (no TCP, trust auth for this user)."""
        user = conf.get("user", "kailash_user")
        bindir = cls._pg_bin(conf)
        data = os.path.join(drill.work, "pgdata")
        sock = os.path.join(drill.sockets, "pg")
        os.makedirs(sock, mode=0o700)
        target = LocalTarget("drill-postgresql")
        target.run(
            [
                os.path.join(bindir, "initdb"),
                "-D",
                data,
                "-U",
                user,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            env={"LC_ALL": "C.UTF-8"},
            timeout=300,
            what="initdb (drill)",
        )
        opts = (
            f"-c listen_addresses='' -k {sock} -p 5432 -c max_connections=20 "
            "-c shared_buffers=32MB -c fsync=off -c full_page_writes=off"
        )
        ctl = os.path.join(bindir, "pg_ctl")
        # set before the start: a start that fails half-way may leave a postmaster behind
        drill.stops.append(([ctl, "-D", data, "-m", "immediate", "-w", "stop"], "pg_ctl stop"))
        target.run(
            [
                ctl,
                "-D",
                data,
                "-o",
                opts,
                "-l",
                os.path.join(drill.work, "pg.log"),
                "-w",
                "-t",
                "120",
                "start",
            ],
            timeout=180,
            what="pg_ctl start (drill)",
        )
        handler = cls(
            target,
            {
                **{k: v for k, v in conf.items() if k in ("databases",)},
                "host": sock,
                "port": 5432,
                "user": user,
                "database": "postgres",
                "restore_globals": False,
            },
        )
        handler.restore(drill.set_dir, section, drill.s.encryption_key)
        return handler
