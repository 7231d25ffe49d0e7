"""Backups: the backup's and the restore drill's textfile metrics (node_exporter's textfile
collector): age of the last good backup, the last drill's result, age and duration."""

from __future__ import annotations

from ..panels import dashboard, query_variable, stat, steps, timeseries, value_text

UID = "kailash-backups"
PROJECT = 'project=~"$project"'
DAY = 86400
BACKUP_AGE = steps(("green", None), ("red", 26 * 3600))
DRILL_AGE = steps(("green", None), ("red", 8 * DAY))


def build():
    backups = [
        stat(
            "Since the last good backup",
            f"time() - max(kailash_backup_last_success_timestamp_seconds{{{PROJECT}}})",
            "s",
            "Age of the newest backup set that completed; alert BackupTooOld above 26 hours "
            "(daily backups plus 2 hours).",
            thresholds=BACKUP_AGE,
            width=6,
        ),
        timeseries(
            "Backup age by project",
            [
                (
                    f"time() - kailash_backup_last_success_timestamp_seconds{{{PROJECT}}}",
                    "{{project}}",
                )
            ],
            "s",
            "Age of the last good backup over time (a saw tooth while backups run daily).",
            width=18,
            height=4,
            thresholds=BACKUP_AGE,
        ),
    ]
    drills = [
        stat(
            "Last restore drill",
            f"min(kailash_restore_drill_passed{{{PROJECT}}})",
            "none",
            "Whether the last drill (restore into throwaway containers, verify) passed; alert "
            "RestoreDrillFailed when not.",
            mappings=value_text({"0": ("failed", "red"), "1": ("passed", "green")}),
            thresholds=steps(("red", None), ("green", 1)),
            width=6,
        ),
        stat(
            "Since the last passed drill",
            f"time() - max(kailash_restore_drill_last_success_timestamp_seconds{{{PROJECT}}})",
            "s",
            "Drills run weekly; alert RestoreDrillStale above 8 days.",
            thresholds=DRILL_AGE,
            width=6,
        ),
        stat(
            "Last drill duration",
            f"max(kailash_restore_drill_duration_seconds{{{PROJECT}}})",
            "s",
            "How long the last drill took (an upper bound for a real restore of the same set).",
            width=6,
        ),
        stat(
            "Textfile errors",
            "max(node_textfile_scrape_error)",
            "none",
            "1 when the node exporter could not read a textfile (then the values above are stale).",
            thresholds=steps(("green", None), ("red", 1)),
            mappings=value_text({"0": ("none", "green"), "1": ("error", "red")}),
            width=6,
        ),
        timeseries(
            "Drill result by project",
            [(f"kailash_restore_drill_passed{{{PROJECT}}}", "{{project}}")],
            "none",
            "1 passed, 0 failed.",
            max_value=1,
        ),
        timeseries(
            "Drill duration by project",
            [(f"kailash_restore_drill_duration_seconds{{{PROJECT}}}", "{{project}}")],
            "s",
            "Duration of each project's last drill.",
        ),
        timeseries(
            "Textfile age",
            [("time() - node_textfile_mtime_seconds", "{{file}}")],
            "s",
            "Time since each textfile was last written (the backup and the drill write theirs "
            "when they finish).",
            width=24,
        ),
    ]
    return dashboard(
        UID,
        "Kailash / Backups",
        "Backup freshness and restore drills from the textfile collector.",
        [("Backups", backups), ("Restore drills", drills)],
        variables=[
            query_variable(
                "project", "Project", "label_values(kailash_restore_drill_passed, project)"
            )
        ],
        time_from="now-30d",
    )
