"""Filters of roles/grafana_dashboards: which dashboards differ from what Grafana holds, and
a readable message for a failed API call (the token never appears: it is sent in a header,
which uri's results do not echo)."""

from __future__ import annotations

from typing import Any

# keys Grafana sets itself on save; the rest of the dashboard JSON is stored as posted
GRAFANA_OWNED = ("id", "version")


def _normalised(dashboard: dict) -> dict:
    return {k: v for k, v in (dashboard or {}).items() if k not in GRAFANA_OWNED}


def grafana_dashboards_pending(results: list[dict], folder_uid: str) -> list[str]:
    """Uids of the dashboards to post, from the registered GET /api/dashboards/uid/<uid>
    loop: missing (404), in another folder, or with other JSON than ours."""
    pending = []
    for result in results:
        ours = result["item"]
        if result.get("status") != 200:
            pending.append(ours["uid"])
            continue
        body = result.get("json") or {}
        theirs = body.get("dashboard") or {}
        folder = (body.get("meta") or {}).get("folderUid", "")
        if folder != folder_uid or _normalised(theirs) != _normalised(ours):
            pending.append(ours["uid"])
    return pending


def grafana_dashboards_error(result: dict[str, Any], method: str, url: str) -> str:
    """'<METHOD> <url> answered HTTP <status>: <Grafana's message>' with a hint for the
    usual causes."""
    status = result.get("status", -1)
    body = result.get("json") if isinstance(result.get("json"), dict) else {}
    detail = body.get("message") or result.get("msg") or "no message"
    hint = {
        -1: "no answer: check grafana_url and that the target host can reach it",
        401: "the token was refused: check grafana_api_token",
        403: "the token lacks permission: give its service account the Editor or Admin role",
    }.get(status, "")
    text = f"{method} {url} answered HTTP {status}: {detail}"
    return f"{text} ({hint})" if hint else text


class FilterModule:
    def filters(self):
        return {
            "grafana_dashboards_pending": grafana_dashboards_pending,
            "grafana_dashboards_error": grafana_dashboards_error,
        }
