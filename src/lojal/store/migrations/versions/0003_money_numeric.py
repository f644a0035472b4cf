"""Money exact: products.price and order_lines.unit_price become NUMERIC(14, 4).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Four decimals keep every price a shop writes (and sub-cent unit prices of price lists); values
are converted in place, each row kept. On SQLite the tables are copied (batch mode).
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(14, 4, asdecimal=False)
COLUMNS = [("products", "price"), ("order_lines", "unit_price")]


def upgrade() -> None:
    for table, column in COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, existing_type=sa.Float(), type_=MONEY, existing_nullable=False,
                               postgresql_using=f"round({column}::numeric, 4)")


def downgrade() -> None:
    for table, column in COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, existing_type=MONEY, type_=sa.Float(), existing_nullable=False,
                               postgresql_using=f"{column}::double precision")
