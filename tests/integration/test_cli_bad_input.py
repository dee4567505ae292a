"""Bad input to the commands that need the warehouse: a usage error (exit 2) with the reason,
and nothing written."""

from __future__ import annotations

import psycopg
import pytest

from tests.cli_run import run_cli

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("revision", ["nonsense", "+1", " "])
def test_db_upgrade_to_an_unknown_revision(warehouse_env, monkeypatch, capsys, revision):
    """Alembic's CommandError was a traceback and exit 1."""
    code, out = run_cli(monkeypatch, capsys, ["db", "upgrade", "--revision", revision])
    assert code == 2 and "Invalid value for --revision" in out


@pytest.mark.parametrize("email", ["admin", "", "a b@example.com", "@example.com"])
def test_create_admin_refuses_what_is_no_email_address(warehouse_env, monkeypatch, capsys, email):
    """`--email admin` created an account that could never sign in (the API refuses the
    address at login)."""
    argv = ["users", "create-admin", "--email", email, "--generate-password", "--tenant", "t"]
    code, out = run_cli(monkeypatch, capsys, argv)
    assert code == 2 and "not an e-mail address" in out
    with psycopg.connect(warehouse_env) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0
