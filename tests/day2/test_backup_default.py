"""Issue #11 item 2: the restore drill of the **default** stack (inventories/local, project
``kailash``, no extra variables) counts every Redis key of a large dataset.

The drill used to count the keys of its throwaway Redis while that server was still
loading the RDB (``"loading:0" in INFO persistence`` also matches ``async_loading:0``,
which Redis 7.0 prints during the load), and reported a failure the real restore did not
have (``redis db0: 95030 keys, manifest 107594; redis db1: 0 keys, manifest 2``).

The dataset is sized so that the drill's Redis needs about a second to load it (1.1
million keys, three databases, some with a long TTL): the reads of the old wait then land
in the middle of the load on every run, not only on a slow machine. Every key this test
adds carries the prefix ``kb-issue11:`` and is deleted afterwards, with the backup set it
made (a later ``restore.yml`` of "latest" must not bring them back).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml

from day2lib import PROJECT, deploy, secrets
from kailash_testlib import ROOT, resp
from kailash_testlib import redis_cli as stack_redis_cli

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REDIS = f"{PROJECT}-redis-1"
ADMIN = yaml.safe_load((ROOT / "roles/redis/defaults/main.yml").read_text())["redis_admin_user"]
BACKUP_ROOT = Path("/var/backups/kailash") / PROJECT
REPORT = Path("/var/lib/kailash/reports") / f"restore-drill-{PROJECT}.json"
PREFIX = "kb-issue11:"
TTL = 7 * 86400  # long: nothing of it expires during the test
# db -> (keys without a TTL, keys with one). db0 is the app's cache, db1 its Celery broker
# (left alone); 3 and 5 are not used by the app, so their counts are exactly these.
DATASET = {0: (1_000_000, 5_000), 3: (60_000, 1_000), 5: (40_000, 500)}


def redis_cli(*args: str, db: int = 0, stdin: bytes | None = None) -> str:
    """redis-cli in the default stack's Redis, as the admin user (password from the
    environment, never on a command line)."""
    return stack_redis_cli(REDIS, secrets()["redis_admin_password"], *args, db=db,
                             stdin=stdin, user=ADMIN)


def pipe(db: int, commands: list[bytes]) -> None:
    out = redis_cli("--pipe", db=db, stdin=b"".join(commands))
    assert "errors: 0" in out, out[-500:]


def load_dataset() -> None:
    for db, (plain, with_ttl) in DATASET.items():
        cmds = [resp("SET", f"{PREFIX}{db}:{i}", str(i)) for i in range(plain)]
        cmds += [
            resp("SET", f"{PREFIX}{db}:ttl:{i}", str(i), "EX", str(TTL)) for i in range(with_ttl)
        ]
        pipe(db, cmds)


def delete_dataset() -> None:
    for db, (plain, with_ttl) in DATASET.items():
        names = [f"{PREFIX}{db}:{i}" for i in range(plain)]
        names += [f"{PREFIX}{db}:ttl:{i}" for i in range(with_ttl)]
        pipe(db, [resp("UNLINK", *names[i : i + 1000]) for i in range(0, len(names), 1000)])


def keyspace() -> dict[str, dict[str, int]]:
    out = {}
    for line in redis_cli("INFO", "keyspace").splitlines():
        if line.startswith("db"):
            db, fields = line.split(":", 1)
            values = dict(f.split("=") for f in fields.split(","))
            out[db] = {"keys": int(values["keys"]), "expires": int(values["expires"])}
    return out


@pytest.fixture
def large_redis(default_stack):
    """1.1 million keys in db0, db3 and db5 of the default Redis; removed afterwards, with
    the backup sets the test made (it adds their names to the list)."""
    made: list[str] = []
    delete_dataset()  # leftovers of an interrupted run
    t0 = time.monotonic()
    load_dataset()
    print(
        f"loaded {sum(p + t for p, t in DATASET.values())} keys in "
        f"{time.monotonic() - t0:.1f} s: {keyspace()}"
    )
    yield made
    delete_dataset()
    for name in made:
        shutil.rmtree(BACKUP_ROOT / name, ignore_errors=True)
    for db in DATASET:
        cursor_and_keys = redis_cli("SCAN", "0", "MATCH", f"{PREFIX}*", "COUNT", "100000", db=db)
        assert cursor_and_keys.splitlines()[1:] == [], db


def test_drill_of_the_default_stack_counts_every_redis_key(large_redis):
    """backup.yml then restore_drill.yml, as a user runs them (no extra variables): the
    drill passes and finds, per database, exactly the keys and TTL keys of the manifest."""
    t0 = time.monotonic()
    run = deploy(playbook="playbooks/backup.yml")
    assert run.rc == 0, run.output[-4000:]
    name = re.search(rf"Wrote {BACKUP_ROOT}/(\w+)", run.output).group(1)
    large_redis.append(name)
    manifest = json.loads((BACKUP_ROOT / name / "manifest.json").read_text())
    counts = manifest["services"]["redis"]["counts"]
    for db, (plain, with_ttl) in DATASET.items():
        if db == 0:  # the app's cache may hold keys of its own
            assert counts["db0"]["keys"] >= plain + with_ttl
            assert counts["db0"]["expires"] >= with_ttl
        else:
            assert counts[f"db{db}"] == {"keys": plain + with_ttl, "expires": with_ttl}
    t1 = time.monotonic()
    run = deploy(playbook="playbooks/restore_drill.yml")
    print(f"backup.yml {t1 - t0:.1f} s, restore_drill.yml {time.monotonic() - t1:.1f} s")
    report = json.loads(REPORT.read_text())
    assert report["set"] == name
    redis = report["services"]["redis"]
    assert run.rc == 0 and report["passed"], (redis, run.output[-3000:])
    assert redis["differences"] == []
    # exact, not within the drill's tolerance for expired TTL keys (it would hide a partial
    # load): only the app's own cache keys in db0 may have expired since the backup
    for db, want in counts.items():
        have = redis["counts"][db]
        if db == "db0":
            others_with_ttl = want["expires"] - DATASET[0][1]
            assert want["keys"] - others_with_ttl <= have["keys"] <= want["keys"], have
        else:
            assert have == want, db
