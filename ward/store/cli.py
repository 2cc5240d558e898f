"""`ward alarms|history|stats|users|db`: query and administer the store from a shell.

Changes made here are audited with the actor ``cli:<OS user>`` (or ``--actor``) and source "cli".

The database URL comes from ``--db`` or $WARD_DB_URL (default sqlite:///./ward.db); `ward db retain
--config` takes it from the ward config unless ``--db`` is given. Times accept
ISO-8601 (a time without an offset is taken as UTC here, for convenience at the shell), "now", and
relative forms such as "-24h", "-7d", "-30m", "-90s".
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence

import typer

FORMATS = ("table", "csv", "json")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
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
    if v.startswith("-") and _DURATION.match(v[1:]):
        return now - parse_duration(v[1:], "time")
    try:
        t = datetime.fromisoformat(v.replace("Z", "+00:00") if v.endswith("Z") else v)
    except ValueError:
        raise typer.BadParameter(f"bad time {value!r}: use ISO-8601 (2026-01-31T08:00:00+01:00), "
                                 "'now', or relative like -24h, -7d, -30m") from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def parse_duration(value: str, what: str = "duration") -> timedelta:
    """'90d', '24h', '30m', '45s', '2w' into a timedelta (for --last and --expires-in)."""
    m = _DURATION.match(value.strip())
    if not m or float(m.group(1)) <= 0:
        raise typer.BadParameter(f"bad {what} {value!r}: use a positive number and a unit, like 90d, 24h, 30m, 2w")
    return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})


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


def open_store(db: str | None, actor: str | None = None) -> Any:
    """The store, auditing what it changes as ``cli:<OS user>`` (or ``actor``), source "cli"."""
    from ward.store.audit import AuditSource, cli_actor
    from ward.store.repository import Store

    try:
        return Store(db, actor=cli_actor(actor), source=AuditSource.CLI)
    except ValueError as exc:
        fail(str(exc))


ActorOpt = typer.Option(None, "--actor", help="Who makes the change, for the audit log (default: cli:<OS user>).")


def fail(msg: str) -> NoReturn:
    """Print ``msg`` as an error and exit with status 2 (bad input or a refused change)."""
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
        store = open_store(db)
        try:
            rows = store.list_alarms(bed=bed, since=parse_time(since), until=parse_time(until),
                                     tier=tier or None, verdict=verdict or None, limit=limit, offset=offset)
        except ValueError as exc:  # StoreError and bad times
            fail(str(exc))
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
        store = open_store(db)
        try:
            rows = store.history(bed, parse_time(since), parse_time(until), resolution)  # type: ignore[arg-type]
        except ValueError as exc:  # StoreError and bad times
            fail(str(exc))
        _emit([p.as_dict() for p in rows], fmt, ("t", "p_max", "p_mean", "n", "accumulator"))

    @app.command("stats")
    def stats(since: str = typer.Option("-24h", help="Start (ISO-8601 or -7d)."),
              until: Optional[str] = typer.Option(None, help="End (default now)."),
              fmt: str = typer.Option("table", "--format", help="table, csv or json."),
              db: Optional[str] = DbOpt) -> None:
        """Per bed: alarms, verdict counts, hours monitored, hours offline."""
        _check_format(fmt)
        store = open_store(db)
        try:
            rows = store.stats(parse_time(since), parse_time(until))  # type: ignore[arg-type]
        except ValueError as exc:  # StoreError and bad times
            fail(str(exc))
        _emit([r.as_dict() for r in rows], fmt,
              ("bed", "alarms", "by_tier", "verdicts", "hours_monitored", "hours_offline"))

    users = typer.Typer(help="Manage dashboard/API users.", no_args_is_help=True)
    app.add_typer(users, name="users")
    _register_passwd(users)

    @users.command("add")
    def users_add(username: str, role: str = typer.Option("viewer", help="viewer, clinician or admin."),
                  password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True,
                                               help="Prompted when omitted (keep it out of shell history)."),
                  permanent: bool = typer.Option(
                      False, "--permanent",
                      help="The password is the user's own (at least 12 characters, e.g. they typed it "
                           "themselves): no change asked at their first login."),
                  actor: Optional[str] = ActorOpt, db: Optional[str] = DbOpt) -> None:
        """Create a user (audited). The password is a temporary one (at least 8 characters) unless
        --permanent: the user chooses their own at their first dashboard login, and the API refuses it
        until then."""
        from ward.security import check_password_policy

        store = open_store(db, actor)
        try:
            if permanent:
                check_password_policy(username, password)
            u = store.create_user(username, password, role, must_change_password=not permanent)
        except ValueError as exc:  # StoreError, PasswordPolicyError
            fail(str(exc))
        typer.echo(f"created user {u.username} ({u.role})" + ("" if permanent else ": temporary password, they choose "
                                                                                  "their own at their first dashboard login"))

    @users.command("list")
    def users_list(fmt: str = typer.Option("table", "--format"), db: Optional[str] = DbOpt) -> None:
        """List users (service: an account the ward itself uses, e.g. the dashboard's API token)."""
        _check_format(fmt)
        rows = [{"username": u.username, "role": u.role, "disabled": u.disabled, "service": u.service,
                 "created_at": u.created_at.isoformat()} for u in open_store(db).list_users()]
        _emit(rows, fmt, ("username", "role", "disabled", "service", "created_at"))

    @users.command("disable")
    def users_disable(username: str, actor: Optional[str] = ActorOpt, db: Optional[str] = DbOpt) -> None:
        """Disable a user (they can no longer log in or use tokens; the API refuses them at once)."""
        try:
            open_store(db, actor).disable_user(username)
        except ValueError as exc:  # StoreError and bad times
            fail(str(exc))
        typer.echo(f"disabled user {username}")

    @users.command("set-role")
    def users_set_role(username: str, role: str = typer.Argument(..., help="viewer, clinician or admin."),
                       actor: Optional[str] = ActorOpt, db: Optional[str] = DbOpt) -> None:
        """Change a user's role (audited with the old and the new role)."""
        try:
            u = open_store(db, actor).set_role(username, role)
        except ValueError as exc:  # StoreError
            fail(str(exc))
        typer.echo(f"user {u.username} is now {u.role}")

    @users.command("token")
    def users_token(username: str, name: Optional[str] = typer.Option(None, help="What the token is for."),
                    expires_in: str = typer.Option("90d", "--expires-in",
                                                   help="Lifetime, e.g. 30d, 12h, 2w (at most 366 days)."),
                    actor: Optional[str] = ActorOpt, db: Optional[str] = DbOpt) -> None:
        """Create an API token, printed once (only its hash is stored).

        The token goes to stdout; its id and expiry to stderr (list with `ward users tokens`, revoke
        with `ward users revoke-token ID`)."""
        lifetime = parse_duration(expires_in, "--expires-in")
        try:
            issued = open_store(db, actor).issue_token(username, name, expires_in=lifetime)
        except ValueError as exc:  # StoreError
            fail(str(exc))
        rec = issued.record
        typer.echo(issued.token)
        typer.echo(f"token id {rec.id} for {rec.username}, expires {rec.expires_at.isoformat()}; "
                   f"revoke with `ward users revoke-token {rec.id}`", err=True)

    @users.command("tokens")
    def users_tokens(username: Optional[str] = typer.Argument(None, help="Only this user's tokens."),
                     active: bool = typer.Option(False, "--active", help="Leave out revoked tokens."),
                     fmt: str = typer.Option("table", "--format", help="table, csv or json."),
                     db: Optional[str] = DbOpt) -> None:
        """List API tokens by id (never the token): user, name, state, created, expires, last used, revoked."""
        _check_format(fmt)
        try:
            rows = open_store(db).list_tokens(username, include_revoked=not active)
        except ValueError as exc:  # StoreError
            fail(str(exc))
        _emit([r.as_dict() for r in rows], fmt,
              ("id", "user", "name", "state", "created", "expires", "last_used", "revoked"))

    @users.command("revoke-token")
    def users_revoke_token(token_id: int = typer.Argument(..., help="The token's id (`ward users tokens`)."),
                           actor: Optional[str] = ActorOpt, db: Optional[str] = DbOpt) -> None:
        """Revoke an API token by id (audited); the API refuses it from the next request on."""
        try:
            done = open_store(db, actor).revoke_token(token_id)
        except ValueError as exc:  # StoreError
            fail(str(exc))
        typer.echo(f"revoked token {token_id}" if done else f"token {token_id} was already revoked")

    dbg = typer.Typer(help="Schema migrations and retention.", no_args_is_help=True)
    app.add_typer(dbg, name="db")

    @dbg.command("upgrade")
    def db_upgrade(revision: str = typer.Option("head"), db: Optional[str] = DbOpt) -> None:
        """Apply Alembic migrations up to REVISION (default head)."""
        from ward.store.engine import upgrade

        try:
            rev = upgrade(db, revision)
        except ValueError as exc:
            fail(str(exc))
        typer.echo(f"database at revision {rev}")

    @dbg.command("current")
    def db_current(db: Optional[str] = DbOpt) -> None:
        """Show the database's schema revision and the code's head."""
        from ward.store.engine import current_revision, head_revision, make_engine

        try:
            cur = current_revision(make_engine(db))
        except ValueError as exc:
            fail(str(exc))
        head = head_revision()
        typer.echo(f"current: {cur or '(empty)'}  head: {head}  {'up to date' if cur == head else 'BEHIND'}")

    @dbg.command("retain")
    def db_retain(config: Optional[Path] = typer.Option(
                      None, "--config", help="Ward config (YAML or Serve config): its retention section and "
                                             "database.url. Without it, the ward's default policy."),
                  raw_samples_days: Optional[str] = _days_option("raw 1 s samples"),
                  rollups_days: Optional[str] = _days_option("minute rollups"),
                  alarms_days: Optional[str] = _days_option("ended, acknowledged alarms"),
                  health_days: Optional[str] = _days_option("camera health events"),
                  audit_days: Optional[str] = _days_option("the audit log"),
                  allow_short: bool = typer.Option(
                      False, "--allow-short-clinical-retention",
                      help="Allow alarms/audit retention below the 6-year floor for clinical records."),
                  dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be deleted."),
                  fmt: str = typer.Option("table", "--format", help="table, csv or json."),
                  db: Optional[str] = DbOpt) -> None:
        """Delete rows older than the retention policy allows (the coordinator also does this on its
        schedule); prints rows deleted per table, or with --dry-run the rows that would be."""
        _check_format(fmt)
        flags = {"raw_samples_days": raw_samples_days, "rollups_days": rollups_days, "alarms_days": alarms_days,
                 "health_days": health_days, "audit_days": audit_days}
        policy, cfg = _retention_from(config, flags, allow_short)
        store = open_store(db or _config_db_url(cfg))
        try:
            counts = store.count_retention(policy) if dry_run else store.apply_retention(policy)
        except ValueError as exc:  # StoreError
            fail(str(exc))
        action = "would delete" if dry_run else "deleted"
        _emit([{"table": t, "keep_days": _days_text(getattr(policy, f)), "rows": counts[t], "action": action}
               for t, f in _RETENTION_FIELDS if t in counts], fmt, ("table", "keep_days", "rows", "action"))


# table reported by the store -> the policy field that governs it (CLI output order)
_RETENTION_FIELDS = (("probability_samples", "raw_samples_days"), ("bed_latest", "raw_samples_days"),
                     ("minute_rollups", "rollups_days"), ("alarms", "alarms_days"),
                     ("camera_health_events", "health_days"), ("audit_log", "audit_days"))


def _days_option(what: str) -> Any:
    return typer.Option(None, help=f"Days to keep {what}: a whole number, or 'forever' (overrides --config).")


def _days_text(days: int | None) -> str:
    return "forever" if days is None else str(days)


def _parse_days(flag: str, value: str) -> int | None:
    v = value.strip().lower()
    if v in ("forever", "none", "null"):
        return None
    if not v.isdigit():
        raise typer.BadParameter(f"{flag}: bad number of days {value!r}: use a whole number of days, or 'forever'")
    return int(v)


def _config_db_url(cfg: Any) -> str | None:
    """The ward config's database URL, resolved only when needed (url_env / url_file); None without one."""
    if cfg is None:
        return None
    try:
        return str(cfg.database.url)
    except ValueError as exc:  # ConfigError: the variable or file is missing
        fail(str(exc))


def _retention_from(config: Path | None, flags: dict[str, str | None], allow_short: bool) -> tuple[Any, Any]:
    """The policy (the config's retention section, overridden by flags) and the ward config (or None)."""
    from pydantic import ValidationError

    from ward.config import ConfigError, RetentionConfig, format_validation_error, load_ward_config

    base: dict[str, Any] = {}
    cfg = None
    if config is not None:
        try:
            cfg = load_ward_config(config, validate_paths=False)
        except ConfigError as exc:
            fail(str(exc))
        base = cfg.retention.model_dump()
    for name, value in flags.items():
        if value is not None:
            base[name] = _parse_days("--" + name.replace("_", "-"), value)
    if allow_short:
        base["allow_short_clinical_retention"] = True
    try:
        return RetentionConfig(**base), cfg
    except ValidationError as exc:
        problems = format_validation_error(exc, RetentionConfig)
        fail("bad retention policy: " + "; ".join(problems)
             + " (on the command line a key such as alarms_days is the flag --alarms-days)")


# ------------------------------------------------------------------------------------ ward users passwd
def _register_passwd(users: typer.Typer) -> None:
    """`ward users passwd NAME [--temporary]`: the way to change a password from a shell (the one-time
    admin password included), and to reset a forgotten one."""

    @users.command("passwd")
    def users_passwd(username: str,
                     password: str = typer.Option(..., prompt="New password", hide_input=True, confirmation_prompt=True,
                                                  help="Prompted when omitted (keep it out of shell history)."),
                     temporary: bool = typer.Option(
                         False, "--temporary",
                         help="The user must choose their own password at their next dashboard login (use it "
                              "when you set someone else's password; at least 8 characters)."),
                     db: Optional[str] = DbOpt) -> None:
        """Set USERNAME's password: at least 12 characters (8 with --temporary), never the user name.
        Ends their dashboard sessions; audited as user.password (never the password)."""
        from ward.store.audit import AuditSource, cli_actor

        store = open_store(db)
        try:
            store.set_password(username, password, temporary=temporary, actor=cli_actor(), source=AuditSource.CLI)
        except ValueError as exc:  # StoreError: unknown user, service account, policy
            fail(str(exc))
        typer.echo(f"password of {username} changed" + (": temporary, they choose their own at the next "
                                                        "dashboard login" if temporary else ""))
