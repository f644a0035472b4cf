"""Baseline: the store as Lojal created it before migrations (`metadata.create_all`).

Revision ID: 0001
Revises:
Create Date: 2026-11-30

A store created before migrations existed has these tables but no `alembic_version` table;
`lojal db upgrade` recognises it, records it at this revision and upgrades it from here, rows kept.
Constraint names follow `lojal.store.schema.NAMING_CONVENTION` (PostgreSQL's own choices).
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("first_name", sa.String(100), nullable=False),
        sa.Column("locale", sa.String(5), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("consent_email", sa.Boolean(), nullable=False),
        sa.Column("consent_at", sa.DateTime(), nullable=True),
        sa.Column("consent_source", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("customers_pkey")),
        sa.UniqueConstraint("email", name=op.f("customers_email_key")),
    )
    op.create_table(
        "products",
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("price", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("image_url", sa.String(500), nullable=True),
        sa.Column("product_url", sa.String(500), nullable=True),
        sa.Column("in_stock", sa.Boolean(), nullable=False),
        sa.Column("margin", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("sku", name=op.f("products_pkey")),
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("placed_at", sa.DateTime(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.customer_id"], name=op.f("orders_customer_id_fkey")),
        sa.PrimaryKeyConstraint("order_id", name=op.f("orders_pkey")),
    )
    op.create_index("ix_orders_customer_placed", "orders", ["customer_id", "placed_at"])
    op.create_index("ix_orders_placed", "orders", ["placed_at"])
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.order_id"], name=op.f("order_lines_order_id_fkey")),
        sa.ForeignKeyConstraint(["sku"], ["products.sku"], name=op.f("order_lines_sku_fkey")),
        sa.PrimaryKeyConstraint("order_id", "line_no", name=op.f("order_lines_pkey")),
    )
    op.create_table(
        "suppressions",
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("email", name=op.f("suppressions_pkey")),
    )
    op.create_table(
        "send_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("occasion_key", sa.String(128), nullable=False),
        sa.Column("run_date", sa.Date(), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("planned_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("send_ledger_pkey")),
        sa.UniqueConstraint("campaign_id", "customer_id", "occasion_key", name="uq_ledger_occasion"),
        sa.UniqueConstraint("message_id", name=op.f("send_ledger_message_id_key")),
    )
    op.create_index("ix_ledger_run", "send_ledger", ["run_date", "campaign_id", "state"])
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_date", sa.Date(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("runs_pkey")),
    )


def downgrade() -> None:
    for table in ("runs", "send_ledger", "suppressions", "order_lines", "orders", "products", "customers"):
        op.drop_table(table)
