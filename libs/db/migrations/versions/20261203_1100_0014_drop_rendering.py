"""Messages: drop the ``rendering`` status, which nothing writes any more.

The worker claims a message straight from ``queued`` (or a due ``held``) to ``sending``; the
``rendering`` state of an earlier design was only still read by the ticker's repair pass. Any
row left in it has not been handed to a provider, so it goes back to ``queued`` (the repair
pass enqueues it again and the worker's conditional claim sends it once), and the status CHECK
constraint stops accepting it. The downgrade widens the constraint again (rows stay ``queued``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 11:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_WITH_RENDERING = (
    "status IN ('queued', 'rendering', 'sending', 'sent', 'delivered', 'failed', 'bounced', 'unknown', "
    "'held', 'skipped')"
)
_WITHOUT_RENDERING = (
    "status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'bounced', 'unknown', 'held', 'skipped')"
)


def upgrade() -> None:
    op.execute("UPDATE messages SET status = 'queued', updated_at = now() WHERE status = 'rendering'")
    op.drop_constraint(op.f("ck_messages_status"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_status"), "messages", _WITHOUT_RENDERING)


def downgrade() -> None:
    op.drop_constraint(op.f("ck_messages_status"), "messages", type_="check")
    op.create_check_constraint(op.f("ck_messages_status"), "messages", _WITH_RENDERING)
