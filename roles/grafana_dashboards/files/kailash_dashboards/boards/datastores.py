"""Datastores: PostgreSQL (postgres_exporter 0.11), Redis (redis_exporter 1.45), and the
blackbox probes that stand in for ChromaDB (no metrics) and Neo4j Community (no Prometheus
endpoint)."""

from __future__ import annotations

from ..panels import dashboard, query_variable, stat, steps, timeseries, value_text

UID = "kailash-datastores"
RATE = "[$__rate_interval]"
UP_DOWN = value_text({"0": ("down", "red"), "1": ("up", "green")})
PG_RATIO = (
    "sum by (instance, server) (pg_stat_activity_count)"
    " / max by (instance, server) (pg_settings_max_connections)"
)
REDIS_RATIO = "redis_memory_used_bytes / (redis_memory_max_bytes > 0)"


def build():
    postgresql = [
        stat(
            "PostgreSQL",
            "min(pg_up)",
            "none",
            "pg_up: the PostgreSQL exporter reaches PostgreSQL (alert ServiceDown after 1 minute).",
            mappings=UP_DOWN,
            thresholds=steps(("red", None), ("green", 1)),
        ),
        stat(
            "Connections used",
            f"max({PG_RATIO})",
            "percentunit",
            "Backends over max_connections, aggregated per server first (the labels differ); "
            "alert DatabaseConnectionHigh above 80 %.",
            thresholds=steps(("green", None), ("orange", 0.8)),
        ),
        timeseries(
            "Connections by state",
            [("sum by (state) (pg_stat_activity_count)", "{{state}}")],
            "short",
            "Backends per state (active, idle, idle in transaction, ...).",
            width=8,
            height=8,
            stacked=True,
        ),
        timeseries(
            "Connections against max_connections",
            [(PG_RATIO, "{{server}}")],
            "percentunit",
            "The DatabaseConnectionHigh ratio over time.",
            width=8,
            height=8,
            max_value=1,
            thresholds=steps(("green", None), ("orange", 0.8)),
        ),
        timeseries(
            "Transactions",
            [
                (f"sum(rate(pg_stat_database_xact_commit{RATE}))", "commits"),
                (f"sum(rate(pg_stat_database_xact_rollback{RATE}))", "rollbacks"),
                (f"sum(rate(pg_stat_database_deadlocks{RATE}))", "deadlocks"),
            ],
            "ops",
            "Commits, rollbacks and deadlocks per second over every database.",
        ),
        timeseries(
            "Cache hit ratio",
            [
                (
                    f"sum by (datname) (rate(pg_stat_database_blks_hit{RATE}))"
                    f" / (sum by (datname) (rate(pg_stat_database_blks_hit{RATE}))"
                    f" + sum by (datname) (rate(pg_stat_database_blks_read{RATE})))",
                    "{{datname}}",
                )
            ],
            "percentunit",
            "Blocks found in shared buffers over blocks requested.",
            width=8,
            max_value=1,
        ),
        timeseries(
            "Database size",
            [("pg_database_size_bytes", "{{datname}}")],
            "bytes",
            "On-disk size per database.",
            width=8,
        ),
        timeseries(
            "Longest transaction",
            [("max by (datname) (pg_stat_activity_max_tx_duration)", "{{datname}}")],
            "s",
            "Age of the oldest open transaction per database (vacuum cannot pass it).",
            width=8,
        ),
    ]
    redis = [
        stat(
            "Redis",
            "min(redis_up)",
            "none",
            "redis_up: the Redis exporter reaches Redis (alert ServiceDown after 1 minute).",
            mappings=UP_DOWN,
            thresholds=steps(("red", None), ("green", 1)),
        ),
        stat(
            "Memory of maxmemory",
            f"max({REDIS_RATIO})",
            "percentunit",
            "used_memory over maxmemory (no value without maxmemory); alert RedisMemoryHigh "
            "above 90 %.",
            thresholds=steps(("green", None), ("orange", 0.9)),
            no_value="no maxmemory",
        ),
        timeseries(
            "Memory",
            [
                ("redis_memory_used_bytes", "used {{instance}}"),
                ("redis_memory_max_bytes > 0", "maxmemory {{instance}}"),
            ],
            "bytes",
            "Used memory and the maxmemory limit.",
            width=8,
            height=8,
        ),
        timeseries(
            "Commands",
            [(f"sum by (instance) (rate(redis_commands_processed_total{RATE}))", "{{instance}}")],
            "ops",
            "Commands processed per second.",
            width=8,
            height=8,
        ),
        timeseries(
            "Clients",
            [
                ("redis_connected_clients", "connected {{instance}}"),
                ("redis_blocked_clients", "blocked {{instance}}"),
            ],
            "short",
            "Connected clients and clients blocked in BLPOP and friends (the Celery workers).",
        ),
        timeseries(
            "Keyspace hit ratio",
            [
                (
                    f"rate(redis_keyspace_hits_total{RATE})"
                    f" / (rate(redis_keyspace_hits_total{RATE})"
                    f" + rate(redis_keyspace_misses_total{RATE}))",
                    "{{instance}}",
                )
            ],
            "percentunit",
            "Lookups that found their key.",
            width=8,
            max_value=1,
        ),
        timeseries(
            "Evicted and expired keys",
            [
                (f"rate(redis_evicted_keys_total{RATE})", "evicted {{instance}}"),
                (f"rate(redis_expired_keys_total{RATE})", "expired {{instance}}"),
            ],
            "ops",
            "Evictions mean maxmemory was reached.",
            width=8,
        ),
        timeseries(
            "Keys per database",
            [("sum by (db) (redis_db_keys)", "{{db}}")],
            "short",
            "Keys per logical database.",
            width=8,
        ),
    ]
    probes = [
        timeseries(
            "Probe result",
            [('probe_success{job=~"$probe_job"}', "{{job}} {{instance}}")],
            "none",
            "1 when the blackbox probe succeeds (ChromaDB's heartbeat over HTTP, Neo4j's Bolt "
            "port over TCP): neither exports its own metrics here.",
            max_value=1,
        ),
        timeseries(
            "Probe duration",
            [('probe_duration_seconds{job=~"$probe_job"}', "{{job}} {{instance}}")],
            "s",
            "Time the probe took end to end.",
        ),
    ]
    return dashboard(
        UID,
        "Kailash / Datastores",
        "PostgreSQL and Redis from their exporters; ChromaDB and Neo4j by blackbox probes.",
        [
            ("PostgreSQL", postgresql),
            ("Redis", redis),
            ("ChromaDB and Neo4j (blackbox probes)", probes),
        ],
        variables=[query_variable("probe_job", "Probe job", "label_values(probe_success, job)")],
    )
