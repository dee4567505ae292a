"""reports and report schedules (issue 9 part 4)

`reports`: one row per requested report (template, parameters, format, status queued →
running → done | failed, who asked, timings, size, the schedule that made it). The rendered
file lives in PostgreSQL (`report_files`, bytea) so any API replica can serve a download; a
file row is written in the same transaction that marks its report done, so a report is never
"done" with a half-written file. `report_schedules`: cron-like schedules that the platform's
scheduler claims with `SELECT … FOR UPDATE SKIP LOCKED` (reports/scheduler.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "reports",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("report_id", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="queued"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("schedule_id", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name="ck_reports_status"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "report_id", name=op.f("pk_reports")),
    )
    op.create_index("ix_reports_tenant_created", "reports", ["tenant_id", "created_at"])
    op.create_index(
        "ix_reports_queued",
        "reports",
        ["created_at"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_table(
        "report_files",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("report_id", sa.Text(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.PrimaryKeyConstraint("tenant_id", "report_id", name=op.f("pk_report_files")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "report_id"],
            ["reports.tenant_id", "reports.report_id"],
            name="fk_report_files_reports",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "report_schedules",
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("schedule_id", sa.Text(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("cron", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False, server_default="UTC"),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_report_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "schedule_id", name=op.f("pk_report_schedules")),
    )
    op.create_index(
        "ix_report_schedules_due",
        "report_schedules",
        ["next_run_at"],
        postgresql_where=sa.text("enabled"),
    )


def downgrade() -> None:
    op.drop_index("ix_report_schedules_due", table_name="report_schedules")
    op.drop_table("report_schedules")
    op.drop_table("report_files")
    op.drop_index("ix_reports_queued", table_name="reports")
    op.drop_index("ix_reports_tenant_created", table_name="reports")
    op.drop_table("reports")
