"""The platform's own tables: accounts and sessions' refresh tokens, the audit log, alerts,
reports and the integration API."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from core.schema.base import created_column, metadata, tenant_column
from core.schema.warehouse import customers

users = Table(
    "users",
    metadata,
    tenant_column(),
    # accounts/ (migration 0007): one account per e-mail address within a tenant
    Column("user_id", Text, nullable=False),
    Column("email", Text, nullable=False),  # lower-cased
    Column("name", Text),
    Column("role", Text, nullable=False),  # accounts/permissions.py ROLES
    Column("store_ids", ARRAY(Text)),  # NULL: every store of the tenant
    Column("hashed_password", Text, nullable=False),  # argon2id
    Column("mfa_secret", Text),  # TOTP secret, encrypted (accounts/secrets.py); never returned
    Column("mfa_enabled", Boolean, nullable=False, server_default=false()),
    Column(
        "recovery_code_hashes", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")
    ),
    Column("failed_logins", Integer, nullable=False, server_default=text("0")),
    Column("locked_until", DateTime(timezone=True)),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("last_login_at", DateTime(timezone=True)),
    Column("password_changed_at", DateTime(timezone=True)),
    created_column(),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "user_id"),
    UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
    CheckConstraint(
        "role IN ('super_admin', 'tenant_admin', 'store_manager', 'analyst', 'sales_associate')",
        name="ck_users_role",
    ),
)

# Rotating refresh tokens (hashed); a family is one login session (its id = the session id).
refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", Text, nullable=False),
    tenant_column(),
    Column("user_id", Text, nullable=False),
    Column("family_id", Text, nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("rotated_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoke_reason", Text),
    PrimaryKeyConstraint("token_hash"),
    ForeignKeyConstraint(
        ["tenant_id", "user_id"],
        ["users.tenant_id", "users.user_id"],
        name="fk_refresh_tokens_user",
        ondelete="CASCADE",
    ),
    Index("ix_refresh_tokens_family", "family_id"),
    Index("ix_refresh_tokens_user", "tenant_id", "user_id"),
)

# Authentication events and API writes (accounts/audit.py): kind = the action, subject_id = its
# target, payload = details; who (actor), from where (ip, user agent), outcome, when.
audit_log = Table(
    "audit_log",
    metadata,
    tenant_column(),
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("subject_id", Text),
    Column("payload", JSONB, nullable=False),
    created_column(),
    Column("actor_id", Text),
    Column("actor_role", Text),
    Column("outcome", Text),
    Column("ip", Text),
    Column("user_agent", Text),
    Column("request_id", Text),
    Index("ix_audit_log_tenant_kind", "tenant_id", "kind", "subject_id"),
    Index("ix_audit_log_tenant_created", "tenant_id", "created_at"),
    Index("ix_audit_log_tenant_actor", "tenant_id", "actor_id"),
)

# ----------------------------------------------------------------------------- alerts
# Rules, the alerts they raise and every notification attempt (alerts/; migration 0010).
# "Deduplicated while an alert stays open" is the partial unique index on
# (tenant_id, dedup_key) over the rows not yet resolved.

alert_rules = Table(
    "alert_rules",
    metadata,
    tenant_column(),
    Column("rule_id", BigInteger, nullable=False, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),  # threshold, anomaly, stockout, performance_drop
    Column("params", JSONB, nullable=False),
    Column("scope", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("severity", Text, nullable=False),  # info, warning, critical
    Column("channels", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("secret", Text, nullable=False),  # HMAC key of the rule's webhook signatures
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_by", Text),
    created_column(),
    Column("deleted_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("tenant_id", "rule_id"),
    CheckConstraint(
        "kind IN ('threshold', 'anomaly', 'stockout', 'performance_drop')",
        name="ck_alert_rules_kind",
    ),
    CheckConstraint("severity IN ('info', 'warning', 'critical')", name="ck_alert_rules_severity"),
)

alert_events = Table(
    "alert_events",
    metadata,
    tenant_column(),
    Column("alert_id", BigInteger, nullable=False, autoincrement=True),
    Column("rule_id", BigInteger, nullable=False),
    Column("dedup_key", Text, nullable=False),  # rule + subject
    Column("severity", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("subject", JSONB, nullable=False),  # e.g. {"store_id": "367"}
    Column("status", Text, nullable=False, server_default="active"),
    Column("triggered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledged_by", Text),
    Column("resolved_at", DateTime(timezone=True)),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    PrimaryKeyConstraint("tenant_id", "alert_id"),
    ForeignKeyConstraint(
        ["tenant_id", "rule_id"],
        ["alert_rules.tenant_id", "alert_rules.rule_id"],
        name="fk_alert_events_rule",
    ),
    CheckConstraint(
        "status IN ('active', 'acknowledged', 'resolved')", name="ck_alert_events_status"
    ),
    Index(
        "uq_alert_events_open_dedup",
        "tenant_id",
        "dedup_key",
        unique=True,
        postgresql_where=text("status <> 'resolved'"),
    ),
    Index("ix_alert_events_tenant_triggered", "tenant_id", "triggered_at"),
    Index(
        "ix_alert_events_open_rule",
        "tenant_id",
        "rule_id",
        postgresql_where=text("status <> 'resolved'"),
    ),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    tenant_column(),
    Column("delivery_id", BigInteger, primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, nullable=False),
    Column("channel", Text, nullable=False),  # webhook, email, kafka
    Column("target", Text, nullable=False),  # URL, address or topic
    Column("attempt", SmallInteger, nullable=False),
    Column("status", Text, nullable=False),  # sent, failed, skipped
    Column("response_code", Integer),
    Column("error", Text),  # the response excerpt or the exception, when not sent
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(
        ["tenant_id", "alert_id"],
        ["alert_events.tenant_id", "alert_events.alert_id"],
        name="fk_alert_deliveries_alert",
        ondelete="CASCADE",
    ),
    Index("ix_alert_deliveries_alert", "tenant_id", "alert_id"),
)

# ---------------------------------------------------------------------------------- reports
# Requested reports, their rendered files and their schedules (migration 0009; reports/).

reports = Table(
    "reports",
    metadata,
    tenant_column(),
    Column("report_id", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("format", Text, nullable=False),  # pdf, xlsx, csv, zip, json
    Column("status", Text, nullable=False, server_default="queued"),
    Column("error", Text),  # why a failed report failed
    Column("requested_by", Text),  # user id; NULL when auth is off or a schedule asked
    created_column(),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("size_bytes", BigInteger),
    Column("schedule_id", Text),
    CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="ck_reports_status"),
    PrimaryKeyConstraint("tenant_id", "report_id"),
    Index("ix_reports_tenant_created", "tenant_id", "created_at"),
    Index("ix_reports_queued", "created_at", postgresql_where=text("status = 'queued'")),
)

# The file bytes live in PostgreSQL so any API replica can serve a download; written in the
# transaction that marks the report done.
report_files = Table(
    "report_files",
    metadata,
    tenant_column(),
    Column("report_id", Text, nullable=False),
    Column("file_name", Text, nullable=False),
    Column("content_type", Text, nullable=False),
    Column("content", LargeBinary, nullable=False),
    created_column(),
    PrimaryKeyConstraint("tenant_id", "report_id"),
    ForeignKeyConstraint(
        ["tenant_id", "report_id"],
        ["reports.tenant_id", "reports.report_id"],
        name="fk_report_files_reports",
        ondelete="CASCADE",
    ),
)

report_schedules = Table(
    "report_schedules",
    metadata,
    tenant_column(),
    Column("schedule_id", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("params", JSONB, nullable=False),
    Column("format", Text, nullable=False),
    Column("cron", Text, nullable=False),  # five fields, validated with croniter
    Column("timezone", Text, nullable=False, server_default="UTC"),  # the cron's wall clock
    Column("next_run_at", DateTime(timezone=True), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("created_by", Text),
    created_column(),
    Column("last_run_at", DateTime(timezone=True)),
    Column("last_report_id", Text),
    PrimaryKeyConstraint("tenant_id", "schedule_id"),
    Index("ix_report_schedules_due", "next_run_at", postgresql_where=text("enabled")),
)

# ----------------------------------------------------------------------------- integrations
# The integration API (integrations/; migration 0011): every sync batch and its report, the
# tenant's outbound webhooks, and every delivery attempt. CRM syncs add contact and loyalty
# columns to `customers` (declared here so this block stays self-contained).

for _column in (
    Column("name", Text),
    Column("email", Text),
    Column("loyalty_tier", Text),
    Column("profile_updated_at", DateTime(timezone=True)),  # newest CRM record wins
):
    customers.append_column(_column)

sync_batches = Table(
    "sync_batches",
    metadata,
    tenant_column(),
    Column("sync_id", BigInteger, nullable=False, autoincrement=True),
    Column("source", Text, nullable=False),  # pos, inventory, crm
    Column("batch_id", Text, nullable=False),  # the caller's, or generated
    Column("status", Text, nullable=False),  # complete, partial, rejected
    Column("atomic", Boolean, nullable=False, server_default=false()),
    Column("received", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("duplicates", Integer, nullable=False),
    Column("stale", Integer, nullable=False, server_default=text("0")),
    Column("rules", JSONB, nullable=False, server_default=text("'{}'::jsonb")),  # rule → records
    Column("errors", JSONB, nullable=False, server_default=text("'[]'::jsonb")),  # a sample
    Column("created_by", Text),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "sync_id"),
    CheckConstraint("source IN ('pos', 'inventory', 'crm')", name="ck_sync_batches_source"),
    CheckConstraint("status IN ('complete', 'partial', 'rejected')", name="ck_sync_batches_status"),
    Index("ix_sync_batches_tenant_source", "tenant_id", "source", "received_at"),
)

webhooks = Table(
    "webhooks",
    metadata,
    tenant_column(),
    Column("webhook_id", BigInteger, nullable=False, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),  # integrations/webhooks.py EVENTS
    Column("secret", Text, nullable=False),  # HMAC-SHA256 key; returned once, at creation
    Column("description", Text),
    Column("created_by", Text),
    created_column(),
    Column("deleted_at", DateTime(timezone=True)),  # kept for its deliveries' history
    PrimaryKeyConstraint("tenant_id", "webhook_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    tenant_column(),
    Column("attempt_id", BigInteger, primary_key=True, autoincrement=True),
    Column("webhook_id", BigInteger, nullable=False),
    Column("delivery_id", Text, nullable=False),  # one event to one webhook; sent as a header
    Column("event", Text, nullable=False),
    Column("attempt", SmallInteger, nullable=False),
    Column("status", Text, nullable=False),  # sent, failed
    Column("response_code", Integer),
    Column("error", Text),
    Column("duration_ms", Float),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ForeignKeyConstraint(
        ["tenant_id", "webhook_id"],
        ["webhooks.tenant_id", "webhooks.webhook_id"],
        name="fk_webhook_deliveries_webhook",
        ondelete="CASCADE",
    ),
    Index("ix_webhook_deliveries_webhook", "tenant_id", "webhook_id", "at"),
)
