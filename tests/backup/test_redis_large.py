"""Issue #11 item 2: every path that loads a Redis RDB and then reads it waits until the load
is complete, shown with a dataset big enough (1.1 million keys in three databases, some with
a long TTL; about a second to load) that a read during the load is certain, not a matter of
luck:

* restore.yml with AOF on (this stack): the temporary ``redis-server --appendonly no`` that
  loads the RDB before the AOF is rebuilt, then the real server loading that AOF;
* the docker drill's throwaway Redis container;
* the local drill (the Kubernetes CronJob's) restoring into a ``redis-server`` process, run
  here in a container of the stack's own Redis image (its redis-server and python3).

The keys go into databases 4-6, which nothing else of these tests uses, and the sets into a
backup root of their own; both are removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess

import pytest
from backup_env import BACKUP_VARS, PROJECT, WORK

from kailash_testlib import ROOT, resp, run_playbook
from kailash_testlib import redis_cli as stack_redis_cli

REDIS = f"{PROJECT}-redis-1"
ROOT_LARGE = WORK / "large-sets"
VARS = {**BACKUP_VARS, "kailash_backup_root": str(ROOT_LARGE), "kailash_backup_services": ["redis"]}
TTL = 7 * 86400  # long: nothing of it expires during the test
# db -> (keys without a TTL, keys with one)
DATASET = {4: (1_000_000, 5_000), 5: (60_000, 1_000), 6: (40_000, 500)}
EXPECTED = {f"db{db}": {"keys": p + t, "expires": t} for db, (p, t) in DATASET.items()}


def redis_cli(secrets: dict, *args: str, db: int = 0, stdin: bytes | None = None) -> str:
    return stack_redis_cli(REDIS, secrets["redis_admin_password"], *args, db=db, stdin=stdin)


def keyspace(secrets: dict) -> dict[str, dict[str, int]]:
    out = {}
    for line in redis_cli(secrets, "INFO", "keyspace").splitlines():
        if line.startswith("db"):
            db, fields = line.split(":", 1)
            values = dict(f.split("=") for f in fields.split(","))
            out[db] = {"keys": int(values["keys"]), "expires": int(values["expires"])}
    return out


@pytest.fixture(scope="module")
def large_set(secrets):
    """The dataset loaded, one set of it made by backup.yml (Redis only), its manifest."""
    for db, (plain, with_ttl) in DATASET.items():
        cmds = [resp("FLUSHDB")]
        cmds += [resp("SET", f"large:{i}", str(i)) for i in range(plain)]
        cmds += [resp("SET", f"large:ttl:{i}", str(i), "EX", str(TTL)) for i in range(with_ttl)]
        out = redis_cli(secrets, "--pipe", db=db, stdin=b"".join(cmds))
        assert "errors: 0" in out, out[-500:]
    live = keyspace(secrets)
    assert {db: live.get(db) for db in EXPECTED} == EXPECTED
    shutil.rmtree(ROOT_LARGE, ignore_errors=True)
    run = run_playbook("playbooks/backup.yml", extra=VARS)
    assert run.rc == 0, run.output[-4000:]
    (set_dir,) = [p for p in ROOT_LARGE.iterdir() if (p / "manifest.json").is_file()]
    manifest = json.loads((set_dir / "manifest.json").read_text())
    assert manifest["services"]["redis"]["counts"] == live
    yield {"dir": set_dir, "manifest": manifest, "live": live}
    for db in DATASET:  # a failed restore may have left Redis stopped: best effort
        with contextlib.suppress(subprocess.CalledProcessError):
            redis_cli(secrets, "FLUSHDB", db=db)
    shutil.rmtree(ROOT_LARGE, ignore_errors=True)


@pytest.mark.docker
@pytest.mark.slow
def test_restore_with_aof_waits_for_the_temporary_and_the_real_server(large_set, secrets):
    """restore.yml after the dataset is lost: every key back, the TTL keys with their TTL,
    counts exact; the real server starts from the rebuilt AOF (not from the RDB)."""
    for db in DATASET:
        redis_cli(secrets, "FLUSHDB", db=db)
    run = run_playbook("playbooks/restore.yml", extra=VARS)
    assert run.rc == 0, run.output[-4000:]
    assert keyspace(secrets) == large_set["live"]
    assert "aof_enabled:1" in redis_cli(secrets, "INFO", "persistence")
    for db, (plain, with_ttl) in DATASET.items():
        assert redis_cli(secrets, "GET", f"large:{plain - 1}", db=db) == str(plain - 1)
        assert redis_cli(secrets, "TTL", f"large:{plain - 1}", db=db) == "-1"
        ttl = int(redis_cli(secrets, "TTL", f"large:ttl:{with_ttl - 1}", db=db))
        assert TTL - 600 < ttl <= TTL, (db, ttl)


@pytest.mark.docker
@pytest.mark.slow
def test_docker_drill_counts_every_key(large_set, kb, settings):
    report = kb.drill(settings(backup_root=str(ROOT_LARGE), services=["redis"]), "latest")
    redis = report["services"]["redis"]
    assert report["passed"], redis
    assert redis["counts"] == large_set["manifest"]["services"]["redis"]["counts"]


@pytest.mark.docker
@pytest.mark.slow
def test_local_drill_counts_every_key(large_set):
    """The local backend's drill (LocalDrill: a redis-server process on a private socket),
    in a container of the stack's Redis image: python3 + the core + its redis-server."""
    image = json.loads(
        subprocess.run(["docker", "inspect", REDIS], capture_output=True, check=True).stdout
    )[0]["Config"]["Image"]
    script = (
        "import json, sys; sys.path.insert(0, '/core'); import kailash_backup as kb; "
        "s = kb.Settings(backup_root='/sets', project='large', backend='local', "
        "services=['redis'], work_dir='/tmp/drill'); "
        f"print(json.dumps(kb.drill(s, {large_set['dir'].name!r})))"
    )
    proc = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "0:0",
            "-v",
            f"{ROOT_LARGE}:/sets:ro",
            "-v",
            f"{ROOT / 'plugins' / 'module_utils'}:/core:ro",
            image,
            "python3",
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    redis = report["services"]["redis"]
    assert report["backend"] == "local" and report["passed"], redis
    assert redis["counts"] == large_set["manifest"]["services"]["redis"]["counts"]


# INFO persistence of a Redis 7.0.15 in the middle of loading an RDB (as read by the old
# wait's first redis-cli call: it matched "loading:0" in "async_loading:0")
INFO_LOADING = (
    "# Persistence\r\nloading:1\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\n"
    "loading_start_time:1795947000\r\nloading_loaded_perc:18.41\r\n"
    "rdb_last_load_keys_loaded:89408\r\n"
)
INFO_LOADED = (
    "# Persistence\r\nloading:0\r\nasync_loading:0\r\nrdb_last_load_keys_loaded:107003\r\n"
)


@pytest.mark.parametrize(
    ("info", "ping", "ready"),
    [
        (INFO_LOADING, "LOADING Redis is loading the dataset in memory", False),
        (INFO_LOADED.replace("async_loading:0", "async_loading:1"), "PONG", False),
        (INFO_LOADED, "LOADING Redis is loading the dataset in memory", False),
        ("Could not connect to Redis at 127.0.0.1:6379: Connection refused", "", False),
        ("", "", False),
        (INFO_LOADED, "PONG", True),
    ],
    ids=["mid-load", "async-load", "ping-refused", "not-listening", "no-reply", "loaded"],
)
def test_loaded_means_loading_0_exactly_and_pong(kb, info, ping, ready):
    """Pure logic: the wait of every path that loads an RDB (redis_loaded)."""
    replies = {"INFO": info, "PING": ping}
    assert kb.redis_loaded(lambda *args: replies[args[0]]) is ready
