"""Workers: the Celery queues and tasks (prometheus-exporter-celery's names:
celery_queue_length, celery_worker_up, celery_task_{succeeded,failed}_total, the
celery_task_runtime histogram) and the worker containers against their limits."""

from __future__ import annotations

from ..panels import dashboard, query_variable, stat, steps, timeseries

UID = "kailash-workers"
RATE = "[$__rate_interval]"
QUEUE = 'queue_name=~"$queue"'
OK = f"sum by (name) (rate(celery_task_succeeded_total{{{QUEUE}}}{RATE}))"
FAILED = f"sum by (name) (rate(celery_task_failed_total{{{QUEUE}}}{RATE}))"
CONTAINER = 'name=~"$container"'
BACKLOG = steps(("green", None), ("orange", 100))


def runtime(q: float) -> str:
    return (
        f"histogram_quantile({q}, sum by (le, name) "
        f"(rate(celery_task_runtime_bucket{{{QUEUE}}}{RATE})))"
    )


def build():
    queues = [
        stat(
            "Workers up",
            "sum(celery_worker_up)",
            "none",
            "Workers that sent a heartbeat recently.",
            thresholds=steps(("red", None), ("green", 1)),
        ),
        stat(
            "Backlog",
            f"sum(celery_queue_length{{{QUEUE}}})",
            "none",
            "Messages waiting in the broker's queues; alert CeleryBacklog above 100 for 10 "
            "minutes.",
            thresholds=BACKLOG,
        ),
        timeseries(
            "Queue length",
            [(f"max by (queue_name) (celery_queue_length{{{QUEUE}}})", "{{queue_name}}")],
            "short",
            "Messages waiting per queue.",
            width=8,
            height=8,
            thresholds=BACKLOG,
        ),
        timeseries(
            "Workers",
            [("max by (hostname) (celery_worker_up)", "{{hostname}}")],
            "none",
            "1 per worker that sent a heartbeat within the exporter's timeout.",
            width=8,
            height=8,
            max_value=1,
        ),
    ]
    tasks = [
        timeseries(
            "Tasks finished",
            [
                (f"sum(rate(celery_task_succeeded_total{{{QUEUE}}}{RATE}))", "succeeded"),
                (f"sum(rate(celery_task_failed_total{{{QUEUE}}}{RATE}))", "failed"),
            ],
            "ops",
            "Tasks per second by outcome.",
            width=8,
        ),
        timeseries(
            "Failure share by task",
            [(f"{FAILED} / ({OK} + {FAILED})", "{{name}}")],
            "percentunit",
            "Failed over finished tasks per task name.",
            width=8,
            max_value=1,
            thresholds=steps(("green", None), ("orange", 0.05)),
        ),
        timeseries(
            "Runtime by task",
            [(runtime(0.5), "p50 {{name}}"), (runtime(0.95), "p95 {{name}}")],
            "s",
            "Task runtime percentiles per task name (succeeded tasks).",
            width=8,
        ),
    ]
    containers = [
        timeseries(
            "Memory against the limit",
            [
                (
                    f"container_memory_working_set_bytes{{{CONTAINER}}}"
                    f" / (container_spec_memory_limit_bytes{{{CONTAINER}}} > 0)",
                    "{{name}}{{container}}",
                )
            ],
            "percentunit",
            "Working set over the memory limit of the worker containers (alert "
            "MemoryUsageHigh above 85 %).",
            max_value=1,
            thresholds=steps(("green", None), ("red", 0.85)),
        ),
        timeseries(
            "CPU",
            [
                (
                    "sum by (name, container) "
                    f"(rate(container_cpu_usage_seconds_total{{{CONTAINER}}}{RATE}))",
                    "{{name}}{{container}}",
                )
            ],
            "short",
            "CPU time per second (1 = one core) of the worker containers.",
            axis_label="cores",
        ),
    ]
    return dashboard(
        UID,
        "Kailash / Workers",
        "Celery queues, tasks and the worker containers.",
        [("Queues", queues), ("Tasks", tasks), ("Worker containers", containers)],
        variables=[
            query_variable("queue", "Queue", "label_values(celery_queue_length, queue_name)"),
            query_variable(
                "container",
                "Container",
                "label_values(container_memory_working_set_bytes, name)",
                regex="/worker/",
            ),
        ],
    )
