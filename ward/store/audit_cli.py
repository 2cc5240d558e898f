"""`ward audit`: read the audit log from a shell, newest first.

Filters by time (``--since`` ISO-8601 / -24h, or ``--last 24h``), action (known actions only: see
ward.store.audit.AuditAction), actor and source; at most ``--limit`` rows are read (LIMIT in SQL, so
a query over years of rows stays cheap). A rich table for people, ``--json`` (one object per line)
for scripts and SIEM ingestion.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional, Sequence

import typer

from ward.store.audit import MAX_AUDIT_LIMIT, AuditAction
from ward.store.cli import DbOpt, fail, open_store, parse_duration, parse_time


def _detail_text(detail: dict[str, Any] | None) -> str:
    return json.dumps(detail, sort_keys=True, default=str, separators=(",", ":")) if detail else ""


def print_audit(rows: Sequence[Any], as_json: bool) -> None:
    """Rows as JSON lines, or as a table (an empty result says so on stderr)."""
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r.as_dict(), default=str, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("at (UTC)", "user", "action", "source", "detail")
    for r in rows:
        table.add_row(r.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"), r.username or "", r.action,
                      r.source or "", _detail_text(r.detail))
    Console(width=200).print(table)
    if not rows:
        typer.echo("(no audit rows match)", err=True)


def _window(since: str | None, last: str | None, now: datetime) -> datetime | None:
    if since is not None and last is not None:
        raise typer.BadParameter("give --since or --last, not both")
    if last is not None:
        return now - parse_duration(last, "--last")
    return parse_time(since, now)


def register(app: typer.Typer) -> None:
    """Add `ward audit` to the root app."""

    @app.command("audit")
    def audit(since: Optional[str] = typer.Option(None, help="From (ISO-8601, or relative like -24h, -7d)."),
              last: Optional[str] = typer.Option(None, "--last", help="The last 24h, 7d, 30m, ... (instead of --since)."),
              until: Optional[str] = typer.Option(None, help="Until (exclusive; ISO-8601 or relative)."),
              action: Optional[list[str]] = typer.Option(
                  None, "--action", help="Only this action (repeatable): " + ", ".join(a.value for a in AuditAction)),
              user: Optional[str] = typer.Option(None, "--user", help="Only rows by this actor (a user name, "
                                                                        "cli:<OS user>, ward)."),
              source: Optional[str] = typer.Option(None, "--source", help="Only api, dashboard, cli or ward."),
              limit: int = typer.Option(100, min=1, max=MAX_AUDIT_LIMIT, help="At most this many rows."),
              as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
              db: Optional[str] = DbOpt) -> None:
        """Print the audit log, newest first: who did what, when, from where."""
        now = datetime.now(timezone.utc)
        start = _window(since, last, now)
        store = open_store(db)
        try:
            rows = store.audit_log(since=start, until=parse_time(until, now), user=user, action=action or None,
                                   source=source, limit=limit)
        except ValueError as exc:  # StoreError: unknown action, inverted range
            fail(str(exc))
        print_audit(rows, as_json)
