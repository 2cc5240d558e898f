"""ward.security: who may log in, and what never leaks. The ward's small security mechanisms.

- :mod:`~ward.security.login`: the one login flow (rate limit, one password or token check,
  temporary passwords, audit) used by the API and the dashboard alike.
- :mod:`~ward.security.limiter`: failed-login counting with temporary lockout.
- :mod:`~ward.security.passwords`: scrypt hashing and the policy for new passwords.
- :mod:`~ward.security.redaction`: no password, token or frame in a log.

It imports no other ward module (the store is reached through the small protocol in ``login``), so
the store can hash with it and the API and the dashboard can log in with it.
"""

from __future__ import annotations

from ward.security.limiter import LoginDecision, LoginLimiter
from ward.security.login import LoginFlow, LoginResult
from ward.security.passwords import (LEGACY_SCRYPT, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS,
                                     MIN_TEMPORARY_PASSWORD_CHARS, OWASP_SCRYPT, TEST_SCRYPT, PasswordCheck,
                                     PasswordHasher, PasswordPolicyError, ScryptParams, check_password_policy,
                                     password_hasher, use_test_password_params)
from ward.security.redaction import MASK, RedactingFilter, install_log_redaction, redact

__all__ = ["LEGACY_SCRYPT", "MASK", "MAX_PASSWORD_CHARS", "MIN_PASSWORD_CHARS", "MIN_TEMPORARY_PASSWORD_CHARS",
           "OWASP_SCRYPT", "TEST_SCRYPT", "LoginDecision", "LoginFlow", "LoginLimiter", "LoginResult",
           "PasswordCheck", "PasswordHasher", "PasswordPolicyError", "RedactingFilter", "ScryptParams",
           "check_password_policy", "install_log_redaction", "password_hasher", "redact",
           "use_test_password_params"]
