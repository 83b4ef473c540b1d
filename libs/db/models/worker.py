"""Tables the worker part of the system owns: the personalization audit trail (and its cache)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from libs.db.base import created_at_field, id_field, org_id_field


class Personalization(SQLModel, table=True):
    """What was asked of the writer for one message and what it answered: prompt, input, output, cost.

    Unique per (enrollment, step, prompt version): a retried job reuses the frozen output
    instead of asking the model again, so every attempt sends identical content.
    """

    __tablename__ = "personalizations"
    __table_args__ = (
        sa.UniqueConstraint("enrollment_id", "step_id", "prompt_version"),
        sa.CheckConstraint("source IN ('openai', 'local', 'fallback')", name="source"),
    )

    id: uuid.UUID = id_field()
    org_id: uuid.UUID = org_id_field()
    message_id: uuid.UUID = Field(foreign_key="messages.id", nullable=False, index=True, ondelete="CASCADE")
    enrollment_id: uuid.UUID = Field(foreign_key="enrollments.id", nullable=False, ondelete="CASCADE")
    step_id: uuid.UUID = Field(foreign_key="campaign_steps.id", nullable=False, ondelete="CASCADE")
    prompt_version: str = Field(max_length=32)
    channel: str = Field(max_length=16)
    source: str = Field(max_length=16)
    model: str = Field(max_length=100)
    prompt: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB, nullable=False)
    input: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB, nullable=False)
    output: dict[str, Any] | None = Field(default=None, sa_type=JSONB, nullable=True)
    content: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB, nullable=False)
    fallback_reason: str | None = Field(default=None, max_length=200)
    prompt_tokens: int = Field(default=0, nullable=False)
    completion_tokens: int = Field(default=0, nullable=False)
    cost_usd: Decimal = Field(default=Decimal(0), sa_type=sa.Numeric(12, 6), nullable=False)
    latency_ms: int = Field(default=0, nullable=False)
    created_at: datetime = created_at_field()
