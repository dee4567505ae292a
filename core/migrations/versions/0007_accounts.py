"""accounts: users, roles, refresh tokens, audit log (issue 9 part 1)

The `users` table of 0001 was never written to: it is recreated with text user ids, one
account per e-mail address within a tenant, store scope, MFA and lockout columns.
`refresh_tokens` holds hashed rotating refresh tokens grouped in families (one family per
login session) for reuse detection. `audit_log` keeps its document columns (kind = action,
subject_id = target, payload = details) and gains who / from where / outcome columns.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("now()")


def upgrade() -> None:
    op.drop_table("users")
    op.create_table(
        "users",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),  # stored lower-cased
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("store_ids", postgresql.ARRAY(sa.Text()), nullable=True),  # NULL: all stores
        sa.Column("hashed_password", sa.Text(), nullable=False),
        sa.Column("mfa_secret", sa.Text(), nullable=True),  # encrypted (accounts/secrets.py)
        sa.Column("mfa_enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "recovery_code_hashes",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
        sa.Column("failed_logins", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name=op.f("pk_users")),
        sa.UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
        sa.CheckConstraint(
            "role IN ('super_admin', 'tenant_admin', 'store_manager', 'analyst', "
            "'sales_associate')",
            name="ck_users_role",
        ),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.Text(), nullable=False),  # sha256 hex of the token
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("family_id", sa.Text(), nullable=False),  # = the session id
        sa.Column("issued_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),  # used once
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_refresh_tokens")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.user_id"],
            name="fk_refresh_tokens_user",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family_id"])
    op.create_index("ix_refresh_tokens_user", "refresh_tokens", ["tenant_id", "user_id"])

    op.add_column("audit_log", sa.Column("actor_id", sa.Text(), nullable=True))
    op.add_column("audit_log", sa.Column("actor_role", sa.Text(), nullable=True))
    op.add_column("audit_log", sa.Column("outcome", sa.Text(), nullable=True))
    op.add_column("audit_log", sa.Column("ip", sa.Text(), nullable=True))
    op.add_column("audit_log", sa.Column("user_agent", sa.Text(), nullable=True))
    op.add_column("audit_log", sa.Column("request_id", sa.Text(), nullable=True))
    op.create_index("ix_audit_log_tenant_created", "audit_log", ["tenant_id", "created_at"])
    op.create_index("ix_audit_log_tenant_actor", "audit_log", ["tenant_id", "actor_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_tenant_actor", table_name="audit_log")
    op.drop_index("ix_audit_log_tenant_created", table_name="audit_log")
    for column in ("request_id", "user_agent", "ip", "outcome", "actor_role", "actor_id"):
        op.drop_column("audit_log", column)
    op.drop_index("ix_refresh_tokens_user", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_family", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_table("users")
    op.create_table(
        "users",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), server_default="analyst", nullable=False),
        sa.Column("hashed_password", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name=op.f("pk_users")),
    )
