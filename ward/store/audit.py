"""The audit log's vocabulary: every action and source a row may carry, and who the actor is.

One list, used by every writer (store, API, dashboard, CLI, coordinator), so that a reader (``ward
audit --action``, the admin page) can filter by a known action and a typo in a writer fails loudly
(:meth:`Store.audit <ward.store.audit_log.AuditStore.audit>` refuses an action not listed here) instead of
silently leaving a gap in the trail. Adding an action: add a member here and a line to the "Audit
log" section of docs/security.md.

Each row has an actor (``username`` column: the person, ``cli:<os user>``, or ``ward`` for the ward
itself), a source (where it happened) and a JSON detail that never holds a secret (no passwords,
tokens, token hashes or frames).
"""

from __future__ import annotations

import getpass
from enum import StrEnum

__all__ = ["AuditAction", "AuditSource", "MAX_AUDIT_LIMIT", "SYSTEM_ACTOR", "TOKEN_ACTIONS", "USER_ACTIONS", "check_action",
           "cli_actor"]


class AuditAction(StrEnum):
    """Every action an audit row may record (the stored value is the string)."""

    LOGIN = "login"                      # a successful login (API: once per credential and replica)
    LOGIN_FAILED = "login.failed"        # wrong password, unknown user or unknown token
    LOGIN_REFUSED = "login.refused"      # refused without checking: rate-limited (API 429, dashboard lockout)
    LOGOUT = "logout"                    # dashboard "Log out"
    SESSION_EXPIRED = "session.expired"  # a dashboard session ended by its idle/absolute limit
    ACKNOWLEDGE = "acknowledge"          # a verdict on an alarm
    EXPORT_CSV = "export.csv"            # the dashboard's audited CSV exports (History page)
    TOKEN_CREATE = "token.create"        # an API token was made (detail: token_id, owner, name, expires_at)
    TOKEN_REVOKE = "token.revoke"        # revoked by id, or replaced by a newer token of the same name
    TOKEN_REFUSED = "token.refused"      # an expired or revoked token (or a disabled owner's) was presented
    USER_CREATE = "user.create"          # an account was made (detail: username, role, service)
    USER_BOOTSTRAP = "user.bootstrap"    # the first-start admin account (how its password was set)
    USER_ROLE = "user.role"              # role change (detail: username, old, new)
    USER_DISABLE = "user.disable"        # account disabled
    USER_PASSWORD = "user.password"      # password changed or reset (detail: username; never the password)
    RULE_OVERRIDE = "rule.override"      # a bed's live rule override set or reset (ward.store.rules)
    RETENTION = "retention"              # a retention run (policy and rows deleted per table)


class AuditSource(StrEnum):
    """Where an audited action happened."""

    API = "api"
    DASHBOARD = "dashboard"
    CLI = "cli"
    WARD = "ward"  # the ward itself: first start, service accounts, scheduled retention


SYSTEM_ACTOR = "ward"  # the actor of what the ward does by itself
MAX_AUDIT_LIMIT = 10_000  # audit rows one read returns (LIMIT in SQL)

USER_ACTIONS = frozenset({AuditAction.USER_CREATE, AuditAction.USER_BOOTSTRAP, AuditAction.USER_ROLE,
                          AuditAction.USER_DISABLE, AuditAction.USER_PASSWORD})
TOKEN_ACTIONS = frozenset({AuditAction.TOKEN_CREATE, AuditAction.TOKEN_REVOKE, AuditAction.TOKEN_REFUSED})


def check_action(action: str) -> AuditAction:
    """``action`` as an :class:`AuditAction`; ValueError naming the known actions otherwise."""
    try:
        return AuditAction(action)
    except ValueError:
        known = ", ".join(a.value for a in AuditAction)
        raise ValueError(f"unknown audit action {action!r}: use one of {known} "
                         "(new actions are added to ward.store.audit.AuditAction)") from None


def cli_actor(explicit: str | None = None) -> str:
    """The actor of a command-line change: ``explicit`` (``--actor``) or ``cli:<OS user>``.

    The OS user is what the host's own login records can confirm; ``--actor`` is for a person acting
    through a shared service account (e.g. ``--actor dr.smith``), and is recorded as given."""
    if explicit is not None:
        name = explicit.strip()
        if not name or len(name) > 64 or not name.isprintable():
            raise ValueError(f"bad --actor {explicit!r}: use 1-64 printable characters (who is making the change)")
        return name
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry / no login name (some containers)
        user = "unknown"
    return f"cli:{user}"[:64]
