"""The local user list in the secrets file: add, remove, list (``python -m core user …``).

Each user is one ``[marketlab.users.NAME]`` table with ``password_hash`` and ``role``. The
standard library reads TOML but does not write it, and the file may hold other sections
(``[auth]``, a database password) that must survive byte for byte, so users are edited as
whole tables of lines, and the result is parsed again before it replaces the file.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from pathlib import Path

from core.access import USER_NAME, LocalAccount, hash_password, parse_accounts, parse_role
from core.errors import ConfigError

DEFAULT_SECRETS = Path(".streamlit") / "secrets.toml"
_HEADER = re.compile(r"^\s*\[")


def _read(path: Path) -> tuple[str, dict]:
    if not path.exists():
        return "", {}
    text = path.read_text(encoding="utf-8")
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML ({e}); fix it first.", title="The secrets file could not be read") from None


def _accounts(data: dict) -> dict[str, LocalAccount]:
    return parse_accounts((data.get("marketlab") or {}).get("users") or {})


def list_accounts(path: Path = DEFAULT_SECRETS) -> list[LocalAccount]:
    _, data = _read(path)
    return sorted(_accounts(data).values(), key=lambda a: a.name.lower())


def _check_name(name: str) -> str:
    if not USER_NAME.match(name or ""):
        raise ConfigError("A user name is 1–64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit.",
                          title="Invalid user name")
    return name


def _table_span(lines: list[str], name: str) -> tuple[int, int] | None:
    """Lines [start, end) of ``[marketlab.users.NAME]`` as this module writes it; None when absent."""
    header = re.compile(rf'^\s*\[\s*marketlab\s*\.\s*users\s*\.\s*(?:"{re.escape(name)}"|{re.escape(name)})\s*\]\s*(#.*)?$',
                        re.IGNORECASE)
    for i, line in enumerate(lines):
        if header.match(line):
            end = next((j for j in range(i + 1, len(lines)) if _HEADER.match(lines[j])), len(lines))
            return i, end
    return None


def _existing_span(lines: list[str], account: LocalAccount, path: Path) -> tuple[int, int]:
    span = _table_span(lines, account.name)
    if span is None:
        raise ConfigError(f"{account.name} is defined in {path} in a form this command does not edit; change it by hand.",
                          title="User not editable")
    return span


def _write(path: Path, text: str) -> None:
    """Replace the file in one step, readable by its owner only (it holds password hashes)."""
    tomllib.loads(text)  # never write a file the app could not read
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secrets-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_account(name: str, role: str, password: str, path: Path = DEFAULT_SECRETS, *, replace: bool = False) -> LocalAccount:
    """Add (or with ``replace``, reset) a user; the password is stored only as a salted scrypt hash."""
    _check_name(name)
    role_ = parse_role(role, "--role")
    text, data = _read(path)
    lines = text.splitlines(keepends=True)
    existing = _accounts(data).get(name.lower())
    if existing is not None:
        if not replace:
            raise ConfigError(f"{name} is already in {path}; use --replace to set a new password or role.",
                              title="User exists")
        start, end = _existing_span(lines, existing, path)
        del lines[start:end]
    account = LocalAccount(name, role_, hash_password(password))
    block = f'[marketlab.users."{name}"]\npassword_hash = "{account.password_hash}"\nrole = "{role_.value}"\n'
    body = "".join(lines)
    if body and not body.endswith("\n"):
        body += "\n"
    _write(path, body + ("\n" if body.strip() else "") + block)  # _write parses the result before replacing the file
    return account


def remove_account(name: str, path: Path = DEFAULT_SECRETS) -> None:
    _check_name(name)
    text, data = _read(path)
    existing = _accounts(data).get(name.lower())
    if existing is None:
        raise ConfigError(f"No user {name} in {path}.", title="Unknown user")
    lines = text.splitlines(keepends=True)
    start, end = _existing_span(lines, existing, path)
    del lines[start:end]
    _write(path, "".join(lines))
