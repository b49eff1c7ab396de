"""``socflow user create|list|disable|enable|passwd``: local accounts for the web UI (``socflow.users``).

A password is read from a hidden prompt (asked twice) or, with ``--password-stdin``, from the first line
of standard input; never from the command line, where it would land in shell history and ``ps``.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from socflow import users
from socflow.auth import Role
from socflow.cli_output import console, emit_json, err, json_option, row_json
from socflow.db import make_engine, session_factory
from socflow.errors import SocflowError
from socflow.settings import get_settings

app = typer.Typer(help="Web UI user accounts: create, list, disable, enable, passwd.", no_args_is_help=True)

password_stdin_option = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
]


def _factory() -> sessionmaker[Session]:
    return session_factory(make_engine(get_settings().database.url))


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def _fail(exc: SocflowError) -> typer.Exit:
    err.print(f"error: {exc}", markup=False)
    return typer.Exit(1)


@app.command("create")
def user_create(
    username: Annotated[str, typer.Argument(help="The login name.")],
    role: Annotated[Role, typer.Option("--role", help="ingest, analyst, engineer or admin.")] = Role.analyst,
    password_stdin: password_stdin_option = False,
) -> None:
    """Create a local account with a password (argon2 hash stored)."""
    password = _password(password_stdin)
    try:
        with _factory()() as session, session.begin():
            row = users.create_user(session, username, role, password)
            user_id = row.id
    except SocflowError as exc:
        raise _fail(exc) from exc
    console.print(f"user {user_id} {username} ({role.value}) created", markup=False)


@app.command("list")
def user_list(as_json: json_option = False) -> None:
    """List accounts (local and single sign-on; never the password hashes)."""
    with _factory()() as session:
        rows = users.list_users(session)
        if as_json:
            emit_json([row_json(u, exclude=("password_hash",)) for u in rows])
            return

        def fmt(d: datetime | None) -> str:
            return d.strftime("%Y-%m-%d %H:%M") if d else "-"

        table = Table("id", "username", "role", "sign-in", "created", "disabled", "last login", title="users")
        for u in rows:
            kind = "sso" if u.oidc_subject is not None else "password"
            table.add_row(
                str(u.id),
                u.username,
                u.role,
                kind,
                fmt(u.created_at),
                fmt(u.disabled_at),
                fmt(u.last_login_at),
            )
    console.print(table)


@app.command("disable")
def user_disable(username: str) -> None:
    """Disable an account: it cannot sign in, and its open web sessions end at once."""
    try:
        with _factory()() as session, session.begin():
            users.disable_user(session, username)
    except SocflowError as exc:
        raise _fail(exc) from exc
    console.print(f"user {username} disabled", markup=False)


@app.command("enable")
def user_enable(username: str) -> None:
    """Enable a disabled account again."""
    try:
        with _factory()() as session, session.begin():
            users.enable_user(session, username)
    except SocflowError as exc:
        raise _fail(exc) from exc
    console.print(f"user {username} enabled", markup=False)


@app.command("passwd")
def user_passwd(username: str, password_stdin: password_stdin_option = False) -> None:
    """Set a new password for a local account (its open web sessions end)."""
    password = _password(password_stdin)
    try:
        with _factory()() as session, session.begin():
            users.set_password(session, username, password)
    except SocflowError as exc:
        raise _fail(exc) from exc
    console.print(f"password of {username} changed", markup=False)
