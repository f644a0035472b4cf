"""ledger rows keep made_from out of line on PostgreSQL

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 03:50:00

A storage parameter only: every row is kept. Delivery updates each ledger row at least twice
(claimed `sending`, settled); PostgreSQL writes a whole new row version each time. With
`toast_tuple_target = 128` the `made_from` JSON (kilobytes: file hashes and recommended items) of
rows inserted from now on is stored out of line, and a new row version points at it instead of
copying it. Rows already stored move out of line when rewritten (VACUUM FULL). SQLite: nothing.
"""
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE send_ledger SET (toast_tuple_target = 128)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE send_ledger RESET (toast_tuple_target)")
