"""`ward alarms|history|stats|users|db`: query and administer the store from a shell.

The database URL comes from ``--db`` or $WARD_DB_URL (default sqlite:///./ward.db). Times accept
ISO-8601 (a time without an offset is taken as UTC here, for convenience at the shell), "now", and
relative forms such as "-24h", "-7d", "-30m", "-90s".
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Sequence

import typer

FORMATS = ("table", "csv", "json")
_REL = re.compile(r"^-(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

DbOpt = typer.Option(None, "--db", help="Database URL (default: $WARD_DB_URL or sqlite:///./ward.db).")


def parse_time(value: str | None, now: datetime | None = None) -> datetime | None:
    """ISO-8601, 'now' or a relative '-24h' / '-7d' / '-30m' / '-90s' / '-2w' into aware UTC."""
    if value is None:
        return None
    now = now or datetime.now(timezone.utc)
    v = value.strip()
    if v.lower() == "now":
        return now
    m = _REL.match(v)
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00") if v.endswith("Z") else v)
    except ValueError:
        raise typer.BadParameter(f"bad time {value!r}: use ISO-8601 (2026-01-31T08:00:00+01:00), "
                                 "'now', or relative like -24h, -7d, -30m") from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise typer.BadParameter(f"bad format {fmt!r}: use one of {', '.join(FORMATS)}")
    return fmt


def _emit(rows: Sequence[dict[str, Any]], fmt: str, columns: Sequence[str]) -> None:
    if fmt == "json":
        typer.echo(json.dumps(list(rows), indent=1, default=str))
        return
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(r.get(k)) for k in columns})
        typer.echo(buf.getvalue(), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for r in rows:
        table.add_row(*(_cell(r.get(c)) for c in columns))
    Console(width=200).print(table)
    if not rows:
        typer.echo("(no rows)")


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return " ".join(f"{k}={x}" for k, x in v.items())
    return str(v)


def _store(db: str | None) -> Any:
    from ward.store.repository import Store

    try:
        return Store(db)
    except ValueError as exc:
        _fail(str(exc))


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Add the store's commands to the root `ward` app."""

    @app.command("alarms")
    def alarms(bed: Optional[str] = typer.Option(None, help="Bed key, e.g. bed-07."),
               since: Optional[str] = typer.Option(None, help="Start (ISO-8601 or -24h, -7d)."),
               until: Optional[str] = typer.Option(None, help="End (exclusive)."),
               tier: Optional[list[str]] = typer.Option(None, help="alarm / review / technical (repeatable)."),
               verdict: Optional[list[str]] = typer.Option(None, help="true / false / unsure / none (repeatable)."),
               fmt: str = typer.Option("table", "--format", help="table, csv or json."),
               limit: int = typer.Option(100, min=1, max=100_000), offset: int = typer.Option(0, min=0),
               db: Optional[str] = DbOpt) -> None:
        """List alarms (newest first) with their latest verdict."""
        _check_format(fmt)
        store = _store(db)
        try:
            rows = store.list_alarms(bed=bed, since=parse_time(since), until=parse_time(until),
                                     tier=tier or None, verdict=verdict or None, limit=limit, offset=offset)
        except ValueError as exc:  # StoreError and bad times
            _fail(str(exc))
        _emit([r.as_dict() for r in rows], fmt,
              ("id", "bed", "tier", "start", "end", "peak", "state", "acknowledged", "verdict", "reason"))

    @app.command("history")
    def history(bed: str = typer.Option(..., help="Bed key."),
                since: str = typer.Option(..., help="Start (ISO-8601 or -24h)."),
                until: Optional[str] = typer.Option(None, help="End (exclusive, default now)."),
                resolution: str = typer.Option("1m", help="1s (raw samples), 1m or 1h (rollups)."),
                fmt: str = typer.Option("table", "--format", help="table, csv or json."),
                db: Optional[str] = DbOpt) -> None:
        """A bed's risk timeline."""
        _check_format(fmt)
        store = _store(db)
        try:
            rows = store.history(bed, parse_time(since), parse_time(until), resolution)  # type: ignore[arg-type]
        except ValueError as exc:  # StoreError and bad times
            _fail(str(exc))
        _emit([p.as_dict() for p in rows], fmt, ("t", "p_max", "p_mean", "n", "accumulator"))

    @app.command("stats")
    def stats(since: str = typer.Option("-24h", help="Start (ISO-8601 or -7d)."),
              until: Optional[str] = typer.Option(None, help="End (default now)."),
              fmt: str = typer.Option("table", "--format", help="table, csv or json."),
              db: Optional[str] = DbOpt) -> None:
        """Per bed: alarms, verdict counts, hours monitored, hours offline."""
        _check_format(fmt)
        store = _store(db)
        try:
            rows = store.stats(parse_time(since), parse_time(until))  # type: ignore[arg-type]
        except ValueError as exc:  # StoreError and bad times
            _fail(str(exc))
        _emit([r.as_dict() for r in rows], fmt,
              ("bed", "alarms", "by_tier", "verdicts", "hours_monitored", "hours_offline"))

    users = typer.Typer(help="Manage dashboard/API users.", no_args_is_help=True)
    app.add_typer(users, name="users")

    @users.command("add")
    def users_add(username: str, role: str = typer.Option("viewer", help="viewer, clinician or admin."),
                  password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True,
                                               help="Prompted when omitted (keep it out of shell history)."),
                  db: Optional[str] = DbOpt) -> None:
        """Create a user."""
        store = _store(db)
        try:
            u = store.create_user(username, password, role)
        except ValueError as exc:  # StoreError and bad times
            _fail(str(exc))
        typer.echo(f"created user {u.username} ({u.role})")

    @users.command("list")
    def users_list(fmt: str = typer.Option("table", "--format"), db: Optional[str] = DbOpt) -> None:
        """List users (service: an account the ward itself uses, e.g. the dashboard's API token)."""
        _check_format(fmt)
        rows = [{"username": u.username, "role": u.role, "disabled": u.disabled, "service": u.service,
                 "created_at": u.created_at.isoformat()} for u in _store(db).list_users()]
        _emit(rows, fmt, ("username", "role", "disabled", "service", "created_at"))

    @users.command("disable")
    def users_disable(username: str, db: Optional[str] = DbOpt) -> None:
        """Disable a user (they can no longer log in or use tokens)."""
        try:
            _store(db).disable_user(username)
        except ValueError as exc:  # StoreError and bad times
            _fail(str(exc))
        typer.echo(f"disabled user {username}")

    @users.command("token")
    def users_token(username: str, name: Optional[str] = typer.Option(None), db: Optional[str] = DbOpt) -> None:
        """Create an API token (printed once; only its hash is stored)."""
        try:
            typer.echo(_store(db).create_token(username, name))
        except ValueError as exc:  # StoreError and bad times
            _fail(str(exc))

    dbg = typer.Typer(help="Schema migrations.", no_args_is_help=True)
    app.add_typer(dbg, name="db")

    @dbg.command("upgrade")
    def db_upgrade(revision: str = typer.Option("head"), db: Optional[str] = DbOpt) -> None:
        """Apply Alembic migrations up to REVISION (default head)."""
        from ward.store.engine import upgrade

        try:
            rev = upgrade(db, revision)
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(f"database at revision {rev}")

    @dbg.command("current")
    def db_current(db: Optional[str] = DbOpt) -> None:
        """Show the database's schema revision and the code's head."""
        from ward.store.engine import current_revision, head_revision, make_engine

        try:
            cur = current_revision(make_engine(db))
        except ValueError as exc:
            _fail(str(exc))
        head = head_revision()
        typer.echo(f"current: {cur or '(empty)'}  head: {head}  {'up to date' if cur == head else 'BEHIND'}")
