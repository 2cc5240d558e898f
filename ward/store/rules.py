"""Per-bed live rule overrides: admins set them on the dashboard, the coordinator applies them.

Why a table of its own (``bed_rule_overrides``, one row per change) and not a key of the bed's camera
config: the coordinator rewrites the camera config at every start (an override kept there was lost at
each restart); typed columns hold exactly the fields that may change live; the newest row per bed is
one cheap indexed read for the coordinator's poll; and the rows themselves are the history (who,
when, the values; the previous row is the "old"), kept apart from the audit log, which retention
prunes after ``audit_days``.

The configured rule (the ward config's ``rules:`` and the bed's own ``rules``) is recorded by the
coordinator in the bed's camera config under ``rules`` (:func:`configured_layers`), so the dashboard
and :func:`set_rule_override` know what an override is merged into without the ward config file. All
merging and validation is :func:`ward.config.effective_rule`.

Every change is checked against the acting user's account as it is in the database at that moment
(a user disabled or demoted since logging in cannot change a rule) and written in one transaction
with its ``rule.override`` audit row (bed, old, new).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from sqlalchemy import Connection, func, insert, select

from ward.config import LIVE_RULE_FIELDS, EffectiveRule, RuleConfig, RuleOverride, effective_rule
from ward.store.audit import AuditAction
from ward.store.audit_log import audit_insert
from ward.store.models import Bed, BedCameraConfig, BedRuleOverride, User
from ward.store.records import StoreError, check_utc
from ward.store.repository import Store

log = logging.getLogger("ward.store")

OVERRIDE_ROLES = ("admin",)   # who may change a bed's rule
RULES_KEY = "rules"           # camera-config key holding the configured rule layers
AUDIT_ACTION = AuditAction.RULE_OVERRIDE.value  # the one list of actions: ward.store.audit
_O = BedRuleOverride.__table__


class OverrideDenied(StoreError):
    """The acting user may not change rules (unknown, disabled, a service account, or not an admin)."""


@dataclass(frozen=True, slots=True)
class RuleOverrideRecord:
    """One change of a bed's override: the values set (empty = reset to the configured rule), when, by whom."""

    bed: str
    override: RuleOverride
    at: datetime
    username: str
    source: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"values": self.override.values(), "at": self.at.isoformat(), "by": self.username,
                "source": self.source}


@dataclass(frozen=True, slots=True)
class BedRuleInfo:
    """What the dashboard knows of a bed's rule: the effective rule computed from the configured
    layers and the current override, and whether the ward has recorded its configured layers."""

    bed: str
    effective: EffectiveRule
    configured: RuleConfig          # the rule without the override (what a reset returns to)
    override: RuleOverrideRecord | None
    config_known: bool  # False: the ward never recorded its rules for this bed (defaults assumed)


def camera_rules(ward_rules: Mapping[str, Any], bed_rules: Mapping[str, Any]) -> dict[str, Any]:
    """The value the coordinator stores under the camera config's ``rules`` key."""
    return {"ward": dict(ward_rules), "bed": dict(bed_rules)}


def configured_layers(camera: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(ward rules, bed rules) recorded in a bed's camera config, or None when none were recorded."""
    rules = (camera or {}).get(RULES_KEY)
    if not isinstance(rules, Mapping):
        return None
    return dict(rules.get("ward") or {}), dict(rules.get("bed") or {})


def _record(bed: str, row: Any) -> RuleOverrideRecord:
    values = {f: getattr(row, f) for f in LIVE_RULE_FIELDS}
    return RuleOverrideRecord(bed, RuleOverride.model_construct(**values), row.valid_from, row.username, row.source)


def _camera_at(conn: Connection, bed_id: int, at: datetime | None) -> dict[str, Any] | None:
    q = select(BedCameraConfig.config).where(BedCameraConfig.bed_id == bed_id)
    if at is not None:
        q = q.where(BedCameraConfig.valid_from <= at)
    return conn.execute(q.order_by(BedCameraConfig.valid_from.desc(), BedCameraConfig.id.desc()).limit(1)).scalar()


def _override_at(conn: Connection, bed_id: int, at: datetime | None, before_id: int | None = None) -> Any:
    q = select(_O).where(_O.c.bed_id == bed_id)
    if at is not None:
        q = q.where(_O.c.valid_from <= at)
    if before_id is not None:
        q = q.where(_O.c.id < before_id)
    return conn.execute(q.order_by(_O.c.valid_from.desc(), _O.c.id.desc()).limit(1)).first()


def current_overrides(store: Store) -> dict[str, RuleOverrideRecord]:
    """The newest override row of every bed that ever had one (a reset is an empty override): the
    coordinator's poll, one small query whatever the history's length."""
    newest = select(func.max(_O.c.id)).group_by(_O.c.bed_id).scalar_subquery()
    q = select(Bed.key, _O).join(Bed, Bed.id == _O.c.bed_id).where(_O.c.id.in_(newest))
    with store.engine.connect() as conn:
        return {row.key: _record(row.key, row) for row in conn.execute(q)}


def override_history(store: Store, bed: str) -> list[RuleOverrideRecord]:
    """Every change of the bed's override, oldest first."""
    bed_id = store.bed_id(bed)
    with store.engine.connect() as conn:
        rows = conn.execute(select(_O).where(_O.c.bed_id == bed_id).order_by(_O.c.valid_from, _O.c.id))
        return [_record(bed, r) for r in rows]


def bed_rule(store: Store, bed: str, at: datetime | None = None) -> BedRuleInfo:
    """The bed's effective rule as of ``at`` (default: now), from the configured layers recorded in
    its camera config and its override, merged by :func:`ward.config.effective_rule`. When the stored
    override no longer fits the configuration (the ward config changed since), the configured rule
    is returned, as the coordinator runs it."""
    at = check_utc(at, "at") if at is not None else None
    bed_id = store.bed_id(bed)
    with store.engine.connect() as conn:
        layers = configured_layers(_camera_at(conn, bed_id, at))
        row = _override_at(conn, bed_id, at)
    record = _record(bed, row) if row is not None else None
    ward_rules, bed_rules = layers or ({}, {})
    configured = effective_rule(ward_rules, bed_rules)
    try:
        eff = effective_rule(ward_rules, bed_rules, record.override if record else None)
    except ValueError:
        eff = configured
    return BedRuleInfo(bed, eff, configured.config, record, layers is not None)


def _check_may_override(conn: Connection, user: str) -> None:
    """OverrideDenied unless ``user`` is, right now, an enabled person with a role in OVERRIDE_ROLES."""
    row = conn.execute(select(User.role, User.disabled, User.service).where(User.username == user)).first()
    if row is None:
        raise OverrideDenied(f"unknown user {user!r}: only an existing admin account can change a bed's rule")
    if row.disabled:
        raise OverrideDenied(f"user {user!r} is disabled and cannot change a bed's rule")
    if row.service:
        raise OverrideDenied(f"{user!r} is a service account; only a person's admin account can change a bed's rule")
    if row.role not in OVERRIDE_ROLES:
        raise OverrideDenied(f"user {user!r} has role {row.role!r}; changing a bed's rule needs "
                             f"{' or '.join(OVERRIDE_ROLES)}")


class _Unchanged(Exception):
    """Raised inside the transaction to roll back a change that changes nothing."""


def set_rule_override(store: Store, bed: str, override: RuleOverride | Mapping[str, Any] | None, *,
                      user: str, source: str | None = None) -> RuleOverrideRecord | None:
    """Set (or, with None / an empty override, reset) the bed's live rule override.

    Checked before anything is kept: the values (RuleError naming the field, via effective_rule over
    the bed's configured layers) and the user's current account (OverrideDenied). The override row
    and its ``rule.override`` audit row (bed, user, old, new) commit together. Returns the new
    record, or None when it equals the bed's current override (nothing written)."""
    new = RuleOverride.parse(override)
    if not user:
        raise StoreError("changing a bed's rule needs the acting user's name")
    bed_id = store.bed_id(bed)
    now = datetime.now(timezone.utc)
    try:
        with store.engine.begin() as conn:
            # The write comes first, so SQLite takes its write lock (waiting while the coordinator
            # commits) before any read of this transaction; see Store.create_user.
            new_id = conn.execute(insert(_O).values(bed_id=bed_id, valid_from=now, username=user, source=source,
                                                    **new.model_dump()).returning(_O.c.id)).scalar_one()
            _check_may_override(conn, user)
            prev = _override_at(conn, bed_id, None, before_id=new_id)
            old = _record(bed, prev).override if prev is not None else RuleOverride()
            if old.values() == new.values():
                raise _Unchanged
            ward_rules, bed_rules = configured_layers(_camera_at(conn, bed_id, None)) or ({}, {})
            eff = effective_rule(ward_rules, bed_rules, new)
            conn.execute(audit_insert(AuditAction.RULE_OVERRIDE, user, source, at=now, detail={
                "bed": bed, "old": old.values() or None, "new": new.values() or None,
                "effective": {f: getattr(eff.config, f) for f in LIVE_RULE_FIELDS}}))
    except _Unchanged:
        return None
    log.info("rule override of bed %s %s by %s: %s -> %s", bed, "set" if new.values() else "reset", user,
             old.values() or "none", new.values() or "none")
    return RuleOverrideRecord(bed, new, now, user, source)


__all__ = ["AUDIT_ACTION", "OVERRIDE_ROLES", "RULES_KEY", "BedRuleInfo", "OverrideDenied", "RuleOverrideRecord",
           "bed_rule", "camera_rules", "configured_layers", "current_overrides", "override_history",
           "set_rule_override"]
