"""Who may do what: users, roles, password hashes, and the check that guards every write.

Two roles. Editors upload, generate, approve, edit and delete; viewers (product managers reviewing
segments) read everything and change nothing. The check lives here and in ``Store.transaction``,
which refuses a viewer, so a hidden or disabled button in a page is a courtesy, not the defence.

Where the users come from is the app's secrets file (``.streamlit/secrets.toml``), read by the
pages and handed to :func:`auth_config` as a plain mapping (core never imports streamlit):

* ``[auth]`` (Streamlit's own section) configured → OpenID Connect through ``st.login``; the
  ``[marketlab] editors`` / ``viewers`` lists say who is let in, and as what;
* else ``[marketlab.users.<name>]`` tables with ``password_hash`` and ``role`` → a local login
  form (``python -m core user add NAME --role ROLE`` writes one);
* else nobody is asked: the server listens on 127.0.0.1 and whoever reaches it is the one local
  editor — the pages refuse to run that way on any other address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.errors import ConfigError, MarketLabError


class Role(StrEnum):
    EDITOR = "editor"
    VIEWER = "viewer"


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    how: str = "local"  # "oidc", "password", or "local" (no login configured: the CLI, a 127.0.0.1 server)

    @property
    def can_edit(self) -> bool:
        return self.role is Role.EDITOR


LOCAL_EDITOR = User("local user", Role.EDITOR, "local")


class AccessDenied(MarketLabError):
    default_title = "Viewers can look but not change"


class LoginFailed(MarketLabError):
    default_title = "Could not sign in"


def require_editor(user: User, action: str) -> None:
    """Raise AccessDenied unless ``user`` is an editor; ``action`` completes "… is for editors"."""
    if not user.can_edit:
        raise AccessDenied(f"{user.name} is signed in as a viewer, and {action} is for editors. "
                           "Ask an editor, or an administrator to change your role.")


# ---------------------------------------------------------------- password hashes

# scrypt from the standard library: memory-hard, on OWASP's list, and no extra dependency to pin.
# Parameters travel inside each hash, so raising them later keeps old hashes valid.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_SALT_BYTES, _KEY_BYTES = 16, 32
_PREFIX = "scrypt"
MIN_PASSWORD_CHARS = 10


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p,
                          maxmem=2 * 128 * n * r * p, dklen=_KEY_BYTES)


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$key`` (base64): a fresh random salt per call."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"A password needs at least {MIN_PASSWORD_CHARS} characters.", title="Password too short")
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"{_PREFIX}${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _PREFIX:
        raise ValueError("not a MarketLab scrypt hash")
    n, r, p = (int(x) for x in parts[1:4])
    # Bounds keep a tampered secrets file from asking for gigabytes per login.
    if not (2**10 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("scrypt parameters out of range")
    salt, key = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("salt or key too short")
    return n, r, p, salt, key


def check_hash(encoded: str) -> None:
    """Raise ValueError if ``encoded`` is not a hash this module can verify."""
    _parse_hash(encoded)


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches; compared in constant time. A malformed hash never matches."""
    try:
        n, r, p, salt, key = _parse_hash(encoded)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), key)


# A real hash to check unknown names against, so "no such user" costs what "wrong password" costs
# and response times don't tell which names exist. Made on first use: scrypt is not free at import.
_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


# ---------------------------------------------------------------- the secrets file

USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True)
class LocalAccount:
    name: str
    role: Role
    password_hash: str


def parse_role(value: object, where: str) -> Role:
    try:
        return Role(str(value).strip().lower())
    except ValueError:
        raise ConfigError(f"{where}: role must be 'editor' or 'viewer', not {value!r}.",
                          title="The user list in the secrets file is invalid") from None


def parse_accounts(section: Mapping[str, Any]) -> dict[str, LocalAccount]:
    """``[marketlab.users]`` → accounts by lower-cased name; any malformed entry is a ConfigError."""
    accounts: dict[str, LocalAccount] = {}
    for name, entry in section.items():
        where = f"[marketlab.users.{name}]"
        if not USER_NAME.match(str(name)):
            raise ConfigError(f"{where}: a user name is 1–64 letters, digits, '_', '.', '@' or '-'.",
                              title="The user list in the secrets file is invalid")
        if not isinstance(entry, Mapping) or "password_hash" not in entry or "role" not in entry:
            raise ConfigError(f"{where} needs password_hash and role (python -m core user add writes both).",
                              title="The user list in the secrets file is invalid")
        encoded = str(entry["password_hash"])
        try:
            check_hash(encoded)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{where}: password_hash is not a MarketLab hash ({e}); "
                              "write it with python -m core user add.",
                              title="The user list in the secrets file is invalid") from None
        key = str(name).lower()
        if key in accounts:
            raise ConfigError(f"{where}: the name appears twice (names are not case-sensitive).",
                              title="The user list in the secrets file is invalid")
        accounts[key] = LocalAccount(str(name), parse_role(entry["role"], where), encoded)
    return accounts


@dataclass(frozen=True)
class RoleRules:
    """Who an OpenID Connect login lets in: e-mail addresses, or ``@domain`` for a whole domain."""

    editors: tuple[str, ...] = ()
    viewers: tuple[str, ...] = ()

    def role_for(self, email: str | None) -> Role | None:
        """The role of a signed-in address; None if neither list admits it. Editors win over viewers."""
        if not email or "@" not in email:
            return None
        email = email.strip().lower()
        domain = "@" + email.rsplit("@", 1)[1]
        for role, entries in ((Role.EDITOR, self.editors), (Role.VIEWER, self.viewers)):
            if email in entries or domain in entries:
                return role
        return None


def _addresses(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"[marketlab] {where} must be a list of addresses, e.g. [\"ana@example.com\", \"@example.com\"].",
                          title="The secrets file is invalid")
    out = tuple(str(v).strip().lower() for v in value)
    bad = [v for v in out if "@" not in v]
    if bad:
        raise ConfigError(f"[marketlab] {where}: {bad[0]!r} is neither an address nor an @domain.",
                          title="The secrets file is invalid")
    return out


@dataclass(frozen=True)
class AuthConfig:
    mode: str  # "oidc", "password" or "none"
    accounts: dict[str, LocalAccount] = field(default_factory=dict)
    rules: RoleRules = RoleRules()
    provider: str | None = None  # the [auth.<provider>] name st.login takes; None for a bare [auth]

    @property
    def required(self) -> bool:
        return self.mode != "none"


def _oidc_provider(auth: Mapping[str, Any]) -> tuple[bool, str | None]:
    if "client_id" in auth or "server_metadata_url" in auth:
        return True, None
    named = [k for k, v in auth.items() if isinstance(v, Mapping)]
    return (True, named[0]) if named else (False, None)


def auth_config(secrets_: Mapping[str, Any]) -> AuthConfig:
    """The sign-in mode a secrets mapping asks for (see the module docstring for the layout)."""
    ours = secrets_.get("marketlab") or {}
    if not isinstance(ours, Mapping):
        raise ConfigError("[marketlab] must be a table.", title="The secrets file is invalid")
    auth = secrets_.get("auth")
    if isinstance(auth, Mapping):
        configured, provider = _oidc_provider(auth)
        if configured:
            rules = RoleRules(_addresses(ours.get("editors"), "editors"), _addresses(ours.get("viewers"), "viewers"))
            if not rules.editors and not rules.viewers:
                raise ConfigError("[auth] is set, but [marketlab] lists neither editors nor viewers, so nobody "
                                  "could be let in. Add e.g. editors = [\"you@example.com\"].",
                                  title="The secrets file is invalid")
            return AuthConfig("oidc", rules=rules, provider=provider)
    users = ours.get("users")
    if users:
        if not isinstance(users, Mapping):
            raise ConfigError("[marketlab.users] must hold one table per user.", title="The secrets file is invalid")
        return AuthConfig("password", accounts=parse_accounts(users))
    return AuthConfig("none")


# ---------------------------------------------------------------- signing in with a password


class LoginGuard:
    """Checks name + password and slows down guessing: after MAX_FAILURES wrong tries for a name
    within WINDOW_S, that name is refused until the window has passed (correct password or not)."""

    MAX_FAILURES = 5
    WINDOW_S = 15 * 60

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(key, []) if now - t < self.WINDOW_S]
        self._failures[key] = times
        return times

    def sign_in(self, accounts: Mapping[str, LocalAccount], name: str, password: str) -> User:
        key = (name or "").strip().lower()
        now = self._clock()
        with self._lock:
            recent = self._recent(key, now)
            if len(recent) >= self.MAX_FAILURES:
                wait_min = max(1, round((self.WINDOW_S - (now - recent[0])) / 60))
                raise LoginFailed(f"Too many wrong passwords for this name. Try again in about {wait_min} min.")
        account = accounts.get(key)
        ok = verify_password(password or "", account.password_hash if account else _dummy_hash())
        if account is None or not ok:
            with self._lock:
                self._failures.setdefault(key, []).append(now)
            raise LoginFailed("Wrong name or password.")
        with self._lock:
            self._failures.pop(key, None)
        return User(account.name, account.role, "password")
