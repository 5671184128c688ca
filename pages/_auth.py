"""Sign-in for the pages: who is using this session, and the gate every page run passes first.

The rules (modes, roles, hashes) are core/access.py; this module only draws the sign-in screen
and keeps the signed-in user in the session. Core enforces the roles whatever is drawn here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from core.access import LOCAL_EDITOR, AuthConfig, LoginFailed, LoginGuard, Role, User, auth_config
from core.errors import ConfigError

_USER = "_marketlab_user"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
NOBODY = User("nobody", Role.VIEWER, "none")  # what a page acts as if it ever ran before a sign-in


@st.cache_resource
def _login_guard() -> LoginGuard:
    """One per server: failed tries are counted across sessions (a new tab gets no fresh tries)."""
    return LoginGuard()


def _secrets() -> Mapping[str, Any]:
    if st.secrets.load_if_toml_exists():
        return st.secrets.to_dict()
    # Streamlit treats an unreadable secrets file like a missing one. For sign-in that would turn a
    # typo into "no login at all", so a file that exists but does not parse stops the app instead.
    for name in st.get_option("secrets.files") or ():
        path = Path(name)
        if path.is_file():
            try:
                tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                raise ConfigError(f"{path} is not valid TOML ({e}). Nobody is let in until it is fixed.",
                                  title="The secrets file could not be read") from None
    return {}


def auth_settings() -> AuthConfig:
    return auth_config(_secrets())


def current_user() -> User:
    """Who this session acts as; the local editor when no sign-in is configured."""
    user = st.session_state.get(_USER)
    if user is not None:
        return user
    return LOCAL_EDITOR if not auth_settings().required else NOBODY


def _listening_address() -> str:
    return str(st.get_option("server.address") or "")


def _sign_in_form(config: AuthConfig) -> None:
    st.title("Sign in to MarketLab")
    with st.form("sign_in", clear_on_submit=True, width=420):  # the password leaves the session once used
        name = st.text_input("Name", key="sign_in_name", autocomplete="username")
        password = st.text_input("Password", type="password", key="sign_in_password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            st.session_state[_USER] = _login_guard().sign_in(config.accounts, name, password)
        except LoginFailed as e:
            st.error(e.msg)
        else:
            st.rerun()
    st.caption("No account? Ask whoever runs this MarketLab: `python -m core user add NAME --role editor|viewer`.")


def _oidc_gate(config: AuthConfig) -> User | None:
    if not st.user.is_logged_in:
        st.title("Sign in to MarketLab")
        label = f"Sign in with {config.provider.title()}" if config.provider else "Sign in"
        if st.button(label, type="primary", key="sign_in_oidc"):
            st.login(config.provider) if config.provider else st.login()
        return None
    email = st.user.get("email")
    role = config.rules.role_for(email)
    if role is None:
        st.title("Sign in to MarketLab")
        st.error(f"{email or 'This account'} is not on this MarketLab's list of editors or viewers. "
                 "Ask whoever runs it to add you, or sign in with another account.")
        st.button("Sign out", key="sign_out_oidc", on_click=st.logout)
        return None
    return User(str(email), role, "oidc")


def sign_in_gate() -> User:
    """The signed-in user of this session; draws the sign-in screen and stops the run until there is one.

    Fails closed: an unreadable secrets file, or a server reachable from other machines with no
    sign-in configured, stops every page with a message saying what to fix.
    """
    config = auth_settings()  # a ConfigError propagates: the shell shows it and stops
    if config.mode == "none":
        address = _listening_address()
        if address not in LOOPBACK:
            raise ConfigError(
                f"This server listens on {address or 'every network interface'} but no sign-in is configured, so anyone "
                "who can reach it could change your data. Add users (python -m core user add NAME --role editor) or an "
                "[auth] section to .streamlit/secrets.toml, or listen on 127.0.0.1. See SECURITY.md.",
                title="Sign-in required on a shared address")
        st.session_state.pop(_USER, None)
        return LOCAL_EDITOR
    if config.mode == "oidc":
        user = _oidc_gate(config)
    else:
        user = st.session_state.get(_USER)
        account = config.accounts.get(user.name.lower()) if user is not None else None
        # Re-read every run: a user removed or made a viewer in the secrets file is so at their next click.
        user = User(account.name, account.role, "password") if account is not None else None
        if user is None:
            _sign_in_form(config)
    if user is None:
        st.session_state.pop(_USER, None)
        st.stop()
    st.session_state[_USER] = user
    return user


def sign_out(how: str) -> None:
    st.session_state.pop(_USER, None)
    if how == "oidc":  # st.user has no is_logged_in at all unless [auth] is configured
        st.logout()

