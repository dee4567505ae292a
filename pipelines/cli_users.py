"""`retailpulse users …`: the first admin of a tenant, and an access token for scripts."""

from __future__ import annotations

import json
import secrets
import sys
from typing import Annotated

import typer

from pipelines.console import console
from pipelines.options import TenantOpt

app = typer.Typer(
    help="Accounts: create a tenant's first admin, get an access token.",
    no_args_is_help=True,
)

EmailOpt = Annotated[str, typer.Option("--email", help="The account's e-mail address.")]
PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (for scripts).",
    ),
]


def _password(from_stdin: bool, *, confirm: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise typer.BadParameter("no password on standard input", param_hint="--password-stdin")
        return line
    if not sys.stdin.isatty():
        raise typer.BadParameter(
            "no terminal to ask for the password: pass --password-stdin (or "
            "--generate-password for create-admin)",
            param_hint="--password-stdin",
        )
    return typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)


@app.command("create-admin")
def create_admin_cmd(
    email: EmailOpt,
    tenant: TenantOpt = None,
    super_admin: Annotated[
        bool,
        typer.Option(
            "--super", help="A super admin: may act on every tenant (X-Tenant-ID header)."
        ),
    ] = False,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    password_stdin: PasswordStdinOpt = False,
    generate_password: Annotated[
        bool,
        typer.Option("--generate-password", help="Make up a strong password and print it once."),
    ] = False,
) -> int:
    """Create a tenant's first admin account (the API registers further users).

    The password is asked for (hidden, twice), read with --password-stdin, or made up with
    --generate-password. Prints how to get an access token.
    """
    from accounts.jobs import create_admin
    from accounts.users import check_email
    from core.errors import ValidationFailed
    from core.settings import get_settings

    try:  # before the password is asked for
        check_email(email)
    except ValidationFailed as exc:
        raise typer.BadParameter(exc.message, param_hint="--email") from None
    password = (
        secrets.token_urlsafe(18) if generate_password else _password(password_stdin, confirm=True)
    )
    user = create_admin(
        email=email, password=password, tenant=tenant, super_admin=super_admin, name=name
    )
    s = get_settings()
    console.print(
        f"created {user.role} [bold]{user.email}[/] in tenant [bold]{user.tenant_id}[/] "
        f"(user id {user.user_id})"
    )
    if generate_password:
        console.print(f"password (shown once): [bold]{password}[/]")
    base = f"http://{s.api_host}:{s.api_port}"
    console.print(
        "get an access token:\n"
        f"  retailpulse users token --email {user.email} --tenant {user.tenant_id}\n"
        "or over HTTP:\n"
        f"  curl -s -X POST {base}/api/v1/users/login -H 'Content-Type: application/json' "
        f"-H 'X-Tenant-ID: {user.tenant_id}' "
        f'-d \'{{"email": "{user.email}", "password": "…"}}\'\n'
        "then send it as `Authorization: Bearer <accessToken>` (or use Authorize on "
        f"{base}/docs)."
    )
    return 0


@app.command("token")
def token_cmd(
    email: EmailOpt,
    tenant: TenantOpt = None,
    password_stdin: PasswordStdinOpt = False,
    otp: Annotated[
        str | None, typer.Option(help="The authenticator's code, for an account with MFA.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the whole token pair as JSON.")
    ] = False,
) -> int:
    """Sign in and print an access token (15 minutes) on standard output, e.g.
    `TOKEN=$(echo "$PW" | retailpulse users token --email a@b.c --password-stdin)`."""
    from accounts.jobs import issue_token

    pair = issue_token(
        email=email, password=_password(password_stdin, confirm=False), tenant=tenant, otp=otp
    )
    if as_json:
        print(json.dumps({k: v for k, v in pair.public().items() if k != "user"}))
    else:
        print(pair.access_token)
    return 0
