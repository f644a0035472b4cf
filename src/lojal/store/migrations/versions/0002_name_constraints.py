"""Name the unique constraints a pre-migration SQLite store left unnamed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

`create_all` without a naming convention left SQLite's UNIQUE constraints nameless, and a later
migration cannot drop or change a constraint it cannot name. Tables holding one are copied (batch
mode) with the names of `NAMING_CONVENTION`. PostgreSQL named them itself, with the same names.
"""
from alembic import op
import sqlalchemy as sa

from lojal.store.schema import NAMING_CONVENTION

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or op.get_context().as_sql:  # `--sql` cannot inspect a SQLite file
        return
    inspector = sa.inspect(bind)
    for table in inspector.get_table_names():
        if any(uq["name"] is None for uq in inspector.get_unique_constraints(table)):
            with op.batch_alter_table(table, recreate="always", naming_convention=NAMING_CONVENTION):
                pass


def downgrade() -> None:
    pass  # the names do no harm
