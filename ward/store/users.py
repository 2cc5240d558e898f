"""Accounts: users and their roles, passwords (scrypt, policy, changes) and API tokens.

Every change to an account is audited in the transaction that makes it (``user.*``, ``token.*``);
the store never keeps a secret it can avoid: passwords as scrypt hashes (:mod:`ward.security` holds
the hasher and the policy), tokens as SHA-256 hashes shown once. Writes run without a read before
them in their transaction: on SQLite a read-then-write transaction fails at once ("database is
locked", no busy wait) when the coordinator's 1 s flush commits in between. Dashboard sessions are
:mod:`ward.store.sessions`; they are ended here when a password changes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from sqlalchemy import delete, insert, select, update
from sqlalchemy import exc as sa_exc

from ward.security import PasswordCheck, PasswordPolicyError, check_password_policy, password_hasher
from ward.store.audit import SYSTEM_ACTOR, USER_ACTIONS, AuditAction, AuditSource
from ward.store.audit_log import AuditStore, audit_insert, check_audit_action
from ward.store.engine import setup_lock
from ward.store.models import ROLES, ApiToken, DashboardSession, User
from ward.store.records import (IssuedToken, PasswordLogin, StoreError, TokenCheck, TokenRecord, UserRecord,
                                check_choice, check_utc)


def check_new_user(username: str, password: str, role: str = "viewer") -> None:
    """Raise StoreError unless an account could be made of these (name, role, and an initial password
    of at least 8 characters: it is temporary unless its owner chose it; see check_password_policy)."""
    check_choice(role, ROLES, "role")
    if not username or len(username) > 64 or not username.isprintable() or " " in username:
        raise StoreError(f"bad username {username!r}: 1-64 printable characters, no spaces")
    _check_password(username, password, temporary=True)


def _check_password(username: str, password: str, *, temporary: bool) -> None:
    """ward.security's password policy, as a StoreError."""
    try:
        check_password_policy(username, password, temporary=temporary)
    except PasswordPolicyError as exc:
        raise StoreError(str(exc)) from None


def hash_password(password: str) -> str:
    """scrypt hash with the process's parameters (OWASP's N=2^17, r=8, p=1; ward.security)."""
    return password_hasher().hash(password)


def _verify_password(password: str, stored: str | None) -> PasswordCheck:
    """Exactly one scrypt computation whether or not ``stored`` exists (no user-name timing oracle);
    ``needs_rehash`` when the stored hash has weaker parameters than the current ones."""
    return password_hasher().verify(password, stored)


# The columns of a UserRecord, in its field order (also selected with a session by ward.store.sessions)
USER_COLUMNS = (User.id, User.username, User.role, User.disabled, User.created_at, User.service,
                User.must_change_password)
DEFAULT_TOKEN_TTL = timedelta(days=90)  # a person's token, unless asked otherwise
MAX_TOKEN_TTL = timedelta(days=366)  # the longest a person's token may live: a yearly renewal at least
TOKEN_TOUCH_S = 300.0  # last_used_at is written at most this often per token (not once per request)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _credential_fingerprint(password_hash: str) -> str:
    """Changes whenever the password does; reveals nothing usable (a hash of a salted scrypt hash)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()


def _token_expiry(expires_in: timedelta | None, user: UserRecord, now: datetime) -> datetime | None:
    """When a new token of ``user`` expires: people's tokens always do, within MAX_TOKEN_TTL."""
    if expires_in is None:
        if not user.service:
            raise StoreError(f"tokens of people must expire: give {user.username!r}'s token a lifetime of at "
                             f"most {MAX_TOKEN_TTL.days} days (e.g. --expires-in 90d)")
        return None
    if not isinstance(expires_in, timedelta) or not timedelta(0) < expires_in <= MAX_TOKEN_TTL:
        raise StoreError(f"bad token lifetime {expires_in!r}: use more than 0 s and at most "
                         f"{MAX_TOKEN_TTL.days} days")
    return now + expires_in


def _token_select() -> Any:
    return select(ApiToken.id, User.username, ApiToken.name, ApiToken.created_at, ApiToken.expires_at,
                  ApiToken.last_used_at, ApiToken.revoked, ApiToken.revoked_at).join(User, ApiToken.user_id == User.id)


class UserStore(AuditStore):
    """Users, passwords and API tokens (part of :class:`~ward.store.repository.Store`)."""

    def create_user(self, username: str, password: str, role: str = "viewer", *, service: bool = False,
                    actor: str | None = None, source: str | None = None,
                    must_change_password: bool = False) -> UserRecord:
        """Create an account; ``service=True`` marks one the ward itself uses (token login only).
        Audited as ``user.create`` by ``actor`` (default: this store's actor) in the same transaction.
        ``must_change_password``: the password is a temporary one someone else chose; the dashboard
        lets the user do nothing but choose their own at the first login."""
        check_new_user(username, password, role)
        password_hash = hash_password(password)  # slow on purpose: outside any transaction
        actor, source = self._who(actor, source)
        try:
            # Writes only, no read before them in the transaction: on SQLite a read-then-write
            # transaction fails at once ("database is locked", no busy wait) when another connection
            # (the coordinator's 1 s flush) commits in between.
            with self.engine.begin() as conn:
                conn.execute(insert(User).values(username=username, password_hash=password_hash, role=role,
                                                 disabled=False, service=service,
                                                 must_change_password=must_change_password,
                                                 created_at=datetime.now(timezone.utc)))
                conn.execute(audit_insert(AuditAction.USER_CREATE, actor, source,
                                          {"username": username, "role": role, "service": service}))
        except sa_exc.IntegrityError:  # the name is taken (unique)
            raise StoreError(f"user {username!r} already exists") from None
        return self._user(username)  # type: ignore[return-value]

    def _user(self, username: str) -> UserRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*USER_COLUMNS).where(User.username == username)).first()
        return UserRecord(*row) if row else None

    def get_user(self, username: str) -> UserRecord | None:
        """The account's current state (role, disabled), or None: re-read it before acting for a
        session that logged in earlier, since an admin may have changed or disabled it meanwhile."""
        return self._user(username)

    def _known_user(self, username: str) -> UserRecord:
        user = self._user(username)
        if user is None:
            raise StoreError(f"unknown user {username!r}: see `ward users list`")
        return user

    def list_users(self) -> list[UserRecord]:
        """Every account, service accounts included (see ``UserRecord.service``)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*USER_COLUMNS).order_by(User.username))
            return [UserRecord(*r) for r in rows]

    def has_people(self) -> bool:
        """Whether any person has an account (enabled or not); the ward's service accounts don't count."""
        with self.engine.connect() as conn:
            return conn.execute(select(User.id).where(User.service.is_(False)).limit(1)).first() is not None

    def create_first_admin(self, username: str, password: str, *,
                           must_change_password: bool = False) -> UserRecord | None:
        """Create ``username`` as admin if no person has an account yet; None if someone does.
        ``must_change_password`` for a generated one-time password.

        Check and insert run under the database's setup lock (:func:`~ward.store.engine.setup_lock`),
        so two starts at once (or a start racing ``ward users add``) never make two first admins."""
        with setup_lock(self.engine):
            if self.has_people():
                return None
            return self.create_user(username, password, role="admin", actor=SYSTEM_ACTOR, source=AuditSource.WARD,
                                    must_change_password=must_change_password)

    def ensure_service_user(self, username: str, role: str = "viewer") -> UserRecord:
        """The ward's service account ``username``, created when missing with a random password nobody
        knows (service accounts cannot log in with a password anyway). Refuses to take over a person's
        account of that name."""
        user = self._user(username)
        if user is None:
            try:
                return self.create_user(username, secrets.token_urlsafe(32), role, service=True,
                                        actor=SYSTEM_ACTOR, source=AuditSource.WARD)
            except StoreError:  # created concurrently by another replica
                user = self._user(username)
                assert user is not None
        if not user.service:
            raise StoreError(f"user {username!r} is a person's account, not a service account: rename it "
                             f"(the ward reserves {username!r} for itself)")
        return user

    def authenticate(self, username: str, password: str) -> UserRecord | None:
        """The user if the password matches and the account is enabled, else None (always None for
        service accounts: they use tokens)."""
        login = self.password_login(username, password)
        return login.user if login else None

    def password_login(self, username: str, password: str) -> PasswordLogin | None:
        """:meth:`authenticate` plus a fingerprint of the password hash that was checked, so a caller
        that remembers the login (the API's cache of scrypt checks) can ask :meth:`current_login`
        on each request whether it still stands, with one cheap read instead of scrypt."""
        with self.engine.connect() as conn:
            row = conn.execute(select(User.password_hash, User.disabled, User.service)
                               .where(User.username == username)).first()
        check = _verify_password(password, row[0] if row else None)  # one scrypt, known user or not
        if row is None or not check or row[1] or row[2]:
            return None
        stored = self._rehash(username, row[0], password) if check.needs_rehash else row[0]
        user = self._user(username)
        return PasswordLogin(user, _credential_fingerprint(stored)) if user else None

    def current_login(self, username: str, credential: str) -> UserRecord | None:
        """The user as now stored if the account is enabled, still a person's, and its password is
        unchanged since :meth:`password_login` gave ``credential``; else None (re-check the password)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(User.password_hash, *USER_COLUMNS).where(User.username == username)).first()
        if row is None:
            return None
        user = UserRecord(*row[1:])
        if user.disabled or user.service or not hmac.compare_digest(_credential_fingerprint(row[0]), credential):
            return None
        return user

    def disable_user(self, username: str, *, actor: str | None = None, source: str | None = None) -> None:
        """Disable an account (no login, no token); audited as ``user.disable`` in the same transaction."""
        actor, source = self._who(actor, source)
        with self.engine.begin() as conn:
            if conn.execute(update(User).where(User.username == username).values(disabled=True)).rowcount == 0:
                raise StoreError(f"unknown user {username!r}: see `ward users list`")
            conn.execute(audit_insert(AuditAction.USER_DISABLE, actor, source, {"username": username}))

    def set_role(self, username: str, role: str, *, actor: str | None = None, source: str | None = None) -> UserRecord:
        """Change a person's role; audited as ``user.role`` with the old and the new role. Service
        accounts keep the role the ward gives them."""
        check_choice(role, ROLES, "role")
        user = self._known_user(username)
        if user.service:
            raise StoreError(f"user {username!r} is a service account: the ward sets its role")
        actor, source = self._who(actor, source)
        with self.engine.begin() as conn:
            conn.execute(update(User).where(User.id == user.id).values(role=role))
            conn.execute(audit_insert(AuditAction.USER_ROLE, actor, source,
                                      {"username": username, "old": user.role, "new": role}))
        return self._known_user(username)

    def audit_user_change(self, action: AuditAction | str, username: str, *, actor: str, source: str,
                          detail: Mapping[str, Any] | None = None) -> None:
        """Audit a change to ``username``'s account made outside the store's own methods (e.g. a
        password change by the dashboard): a ``user.*`` action, the target in the detail, never a
        secret (a detail key naming a password, token or hash is refused)."""
        act = check_audit_action(action)
        if act not in USER_ACTIONS:
            raise StoreError(f"audit_user_change takes a user action ({', '.join(sorted(USER_ACTIONS))}), "
                             f"not {act.value!r}: use Store.audit")
        if not actor or not source:
            raise StoreError("audit_user_change needs the actor (who made the change) and the source")
        self.audit(act, user=actor, source=source, detail={"username": username, **(detail or {})})

    # --------------------------------------------------------------------------------- passwords
    def change_password(self, username: str, current: str, new: str, *, source: str,
                        keep_session: int | None = None) -> UserRecord:
        """A person replaces their own password. ``new`` must meet the policy (12+ characters, not the
        user name) and differ from ``current``, which must be right (one scrypt check). Clears
        ``must_change_password`` and ends the user's other dashboard sessions (all but
        ``keep_session``): whoever knew the old password is logged out. Audited as ``user.password``."""
        _check_password(username, new, temporary=False)
        if new == current:
            raise StoreError("the new password is the current one: choose a different password")
        with self.engine.connect() as conn:
            row = conn.execute(select(User.password_hash, User.disabled, User.service, User.must_change_password)
                               .where(User.username == username)).first()
        if row is None or not _verify_password(current, row[0]) or row[1] or row[2]:
            raise StoreError("the current password is wrong: password not changed")
        return self._store_password(username, hash_password(new), temporary=False, actor=username, source=source,
                                    keep_session=keep_session, detail={"forced": bool(row[3])})

    def set_password(self, username: str, new: str, *, temporary: bool, actor: str | None = None,
                     source: str | None = None) -> UserRecord:
        """Set ``username``'s password for them (an admin resetting a forgotten one, ``ward users
        passwd``). ``temporary``: they must replace it at their next dashboard login (at least 8
        characters); otherwise the full policy applies. Ends all of the user's dashboard sessions.
        Audited as ``user.password`` by ``actor``."""
        user = self._known_user(username)
        if user.service:
            raise StoreError(f"user {username!r} is a service account: it logs in with tokens, not a password")
        _check_password(username, new, temporary=temporary)
        return self._store_password(username, hash_password(new), temporary=temporary, actor=actor, source=source,
                                    keep_session=None, detail={})

    def _store_password(self, username: str, password_hash: str, *, temporary: bool, actor: str | None,
                        source: str | None, keep_session: int | None, detail: Mapping[str, Any]) -> UserRecord:
        """Write a new password hash, end the user's sessions (but ``keep_session``) and audit it, in
        one transaction (writes only, see create_user)."""
        actor, source = self._who(actor, source)
        sessions = delete(DashboardSession).where(
            DashboardSession.user_id.in_(select(User.id).where(User.username == username)))
        if keep_session is not None:
            sessions = sessions.where(DashboardSession.id != keep_session)
        with self.engine.begin() as conn:
            if conn.execute(update(User).where(User.username == username)
                            .values(password_hash=password_hash, must_change_password=temporary)).rowcount == 0:
                raise StoreError(f"unknown user {username!r}: see `ward users list`")
            conn.execute(sessions)
            conn.execute(audit_insert(AuditAction.USER_PASSWORD, actor, source,
                                      {"username": username, "temporary": temporary, **detail}))
        return self._known_user(username)

    def _rehash(self, username: str, old_hash: str, password: str) -> str:
        """Replace a hash made with weaker scrypt parameters after a successful login (the password is
        known only then); returns the hash now stored. Skipped if the password changed meanwhile."""
        new_hash = hash_password(password)
        with self.engine.begin() as conn:
            done = conn.execute(update(User).where(User.username == username, User.password_hash == old_hash)
                                .values(password_hash=new_hash)).rowcount
        return new_hash if done else old_hash

    # ------------------------------------------------------------------------------------ tokens
    def issue_token(self, username: str, name: str | None = None, *,
                    expires_in: timedelta | None = DEFAULT_TOKEN_TTL, replace: bool = False,
                    actor: str | None = None, source: str | None = None) -> IssuedToken:
        """A new API token for ``username`` (the plaintext, shown once, and its record); only its hash
        is stored. It expires ``expires_in`` from now (at most MAX_TOKEN_TTL); ``None`` (never) only
        for service accounts, whose token the ward replaces at every start.

        ``replace=True`` revokes the user's earlier tokens of the same ``name`` in the same transaction,
        so exactly one of them is valid (the ward's dashboard token is replaced at every start).
        Audited: ``token.create`` (and ``token.revoke`` for replaced ones), never with the token."""
        if name is not None and (len(name) > 64 or not name.isprintable()):
            raise StoreError(f"bad token name {name!r}: at most 64 printable characters")
        user = self._known_user(username)
        if user.disabled:
            raise StoreError(f"user {username!r} is disabled: no new tokens")
        now = datetime.now(timezone.utc)
        expires_at = _token_expiry(expires_in, user, now)
        actor, source = self._who(actor, source)
        token = "wt_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:  # writes only (see create_user)
            if replace:
                same_name = ApiToken.name.is_(None) if name is None else ApiToken.name == name
                old = list(conn.execute(update(ApiToken).where(ApiToken.user_id == user.id, same_name,
                                                               ApiToken.revoked.is_(False))
                                        .values(revoked=True, revoked_at=now).returning(ApiToken.id)).scalars())
                if old:
                    conn.execute(audit_insert(AuditAction.TOKEN_REVOKE, actor, source,
                                              {"token_ids": sorted(old), "username": username, "name": name,
                                               "reason": "replaced"}, at=now))
            token_id = conn.execute(insert(ApiToken).values(
                user_id=user.id, token_hash=_token_hash(token), name=name, created_at=now, revoked=False,
                expires_at=expires_at).returning(ApiToken.id)).scalar_one()
            conn.execute(audit_insert(AuditAction.TOKEN_CREATE, actor, source,
                                      {"token_id": token_id, "username": username, "name": name,
                                       "expires_at": expires_at.isoformat() if expires_at else None}, at=now))
        return IssuedToken(token, TokenRecord(token_id, username, name, now, expires_at, None, False, None))

    def create_token(self, username: str, name: str | None = None, *,
                     expires_in: timedelta | None = DEFAULT_TOKEN_TTL, replace: bool = False,
                     actor: str | None = None, source: str | None = None) -> str:
        """:meth:`issue_token`, returning only the plaintext token."""
        return self.issue_token(username, name, expires_in=expires_in, replace=replace, actor=actor,
                                source=source).token

    def check_token(self, token: str, now: datetime | None = None) -> TokenCheck:
        """What a presented token is: its user when it may be used now, else why not (unknown, revoked,
        expired, user disabled). One indexed read, plus a write of ``last_used_at`` at most every
        TOKEN_TOUCH_S per token."""
        now = check_utc(now, "now") if now else datetime.now(timezone.utc)
        with self.engine.connect() as conn:
            row = conn.execute(select(ApiToken.id, ApiToken.revoked, ApiToken.expires_at, ApiToken.last_used_at,
                                      *USER_COLUMNS).join(User, ApiToken.user_id == User.id)
                               .where(ApiToken.token_hash == _token_hash(token))).first()
        if row is None:
            return TokenCheck(None, refusal="unknown")
        token_id, revoked, expires_at, last_used = row[:4]
        user = UserRecord(*row[4:])
        refusal = ("revoked" if revoked else "expired" if expires_at is not None and expires_at <= now
                   else "user disabled" if user.disabled else None)
        if refusal is not None:
            return TokenCheck(None, token_id, user.username, refusal, expires_at)
        if last_used is None or (now - last_used).total_seconds() >= TOKEN_TOUCH_S:
            self._touch_token(token_id, now)
        return TokenCheck(user, token_id, user.username, None, expires_at)

    def _touch_token(self, token_id: int, now: datetime) -> None:
        """Record a token's use; best effort (a busy or failing write never refuses a valid token)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
        except sa_exc.OperationalError:
            pass

    def authenticate_token(self, token: str) -> UserRecord | None:
        """The token's user if it may be used now (see :meth:`check_token` for why not)."""
        return self.check_token(token).user

    def list_tokens(self, username: str | None = None, *, include_revoked: bool = True,
                    limit: int = 1000) -> list[TokenRecord]:
        """Tokens by id (oldest first), of one user or all; never the token or its hash."""
        if not 1 <= limit <= 100_000:
            raise StoreError(f"bad limit {limit}: use 1-100000")
        q = _token_select()
        if username is not None:
            q = q.where(User.id == self._known_user(username).id)
        if not include_revoked:
            q = q.where(ApiToken.revoked.is_(False))
        with self.engine.connect() as conn:
            return [TokenRecord(*r) for r in conn.execute(q.order_by(ApiToken.id).limit(limit))]

    def get_token(self, token_id: int) -> TokenRecord:
        with self.engine.connect() as conn:
            row = conn.execute(_token_select().where(ApiToken.id == token_id)).first()
        if row is None:
            raise StoreError(f"unknown token id {token_id}: see `ward users tokens`")
        return TokenRecord(*row)

    def revoke_token(self, token_id: int, *, actor: str | None = None, source: str | None = None) -> bool:
        """Revoke a token by its id (``ward users tokens``); no plaintext needed. True if it was revoked
        now (audited ``token.revoke``), False if it already was."""
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            raise StoreError(f"revoke_token takes the token's id (an integer, see `ward users tokens`), "
                             f"not {type(token_id).__name__}")
        rec = self.get_token(token_id)
        if rec.revoked:
            return False
        actor, source = self._who(actor, source)
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:
            n = conn.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked.is_(False))
                             .values(revoked=True, revoked_at=now)).rowcount
            if n:
                conn.execute(audit_insert(AuditAction.TOKEN_REVOKE, actor, source,
                                          {"token_ids": [token_id], "username": rec.username, "name": rec.name,
                                           "reason": "revoked"}, at=now))
        return n == 1

