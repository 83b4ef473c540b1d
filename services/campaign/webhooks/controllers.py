"""Customer webhook routes: endpoints that receive signed events, and their delivery log."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import anyio.to_thread
import sqlalchemy as sa
import structlog
from litestar import Controller, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.crypto import SecretBox
from libs.db.base import utcnow
from libs.db.models.inbound import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from libs.errors import Invalid, NotFound
from libs.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, keyset, make_page
from libs.scopes import Area, scope_area
from libs.security import Principal, Role, requires
from services.campaign.webhooks.schemas import (
    AttemptRead,
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)
from services.campaign.webhooks.settings import WebhookSettings, webhook_settings_from
from services.campaign.webhooks.signing import UnsafeUrl, check_url, new_secret

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class WebhookContext:
    """The settings and the box endpoint secrets are sealed with (built once per app)."""

    settings: WebhookSettings
    box: SecretBox


async def provide_webhooks(state: State) -> WebhookContext:
    """Dependency: the webhook routes' settings and box (the app's inbound settings when it has them)."""
    ctx = state.get("webhooks_context")
    if ctx is None:
        settings = state.get("inbound_settings") or webhook_settings_from(state.settings)
        ctx = WebhookContext(settings=settings, box=SecretBox.from_settings(settings))
        state.webhooks_context = ctx
    return ctx


def _read(row: WebhookEndpoint) -> WebhookRead:
    return WebhookRead(
        id=row.id,
        url=row.url,
        event_types=list(row.event_types),
        description=row.description,
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _checked_url(url: str, ctx: WebhookContext) -> str:
    try:
        await anyio.to_thread.run_sync(lambda: check_url(url, allow_private=ctx.settings.webhooks_allow_private))
    except UnsafeUrl as exc:
        raise Invalid(errors=[{"field": "url", "message": str(exc)}]) from exc
    return url


class WebhooksController(Controller):
    """Customer endpoints that receive signed events, and their delivery log."""

    path = "/api/webhooks"
    tags = ["webhooks"]
    opt = scope_area(Area.WEBHOOKS)
    dependencies = {"webhooks": Provide(provide_webhooks)}

    async def _get(self, session: AsyncSession, org_id: uuid.UUID, webhook_id: uuid.UUID) -> WebhookEndpoint:
        row = (
            await session.exec(
                select(WebhookEndpoint).where(WebhookEndpoint.org_id == org_id, WebhookEndpoint.id == webhook_id)
            )
        ).first()
        if row is None:
            raise NotFound("No such webhook endpoint.")
        return row

    @get("", guards=[requires(Role.MEMBER)], operation_id="ListWebhooks")
    async def list_webhooks(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
    ) -> Page[WebhookRead]:
        """List the organization's webhook endpoints, newest first."""
        query = select(WebhookEndpoint).where(WebhookEndpoint.org_id == principal.org_id)
        after = keyset(WebhookEndpoint, cursor)
        if after is not None:
            query = query.where(after)
        query = query.order_by(col(WebhookEndpoint.created_at).desc(), col(WebhookEndpoint.id).desc()).limit(limit + 1)
        rows = (await session.exec(query)).all()
        return make_page(rows, limit, _read)

    @post("", guards=[requires(Role.ADMIN)], operation_id="CreateWebhook", status_code=201)
    async def create_webhook(
        self,
        data: JSONBody[WebhookCreate],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        webhooks: NamedDependency[WebhookContext],
    ) -> WebhookCreated:
        """Create an endpoint; the answer carries its signing secret, shown this once."""
        url = await _checked_url(data.url, webhooks)
        secret = new_secret()
        row = WebhookEndpoint(
            org_id=principal.org_id,
            url=url,
            description=data.description,
            event_types=[t.value for t in data.event_types],
            secret_encrypted="",
        )
        row.secret_encrypted = webhooks.box.encrypt(secret, associated_data=row.id.bytes)
        session.add(row)
        await session.flush()
        log.info("webhook_created", webhook_id=str(row.id))
        return WebhookCreated(**_read(row).model_dump(), secret=secret)

    @get("/{webhook_id:uuid}", guards=[requires(Role.MEMBER)], operation_id="GetWebhook")
    async def get_webhook(
        self,
        webhook_id: FromPath[uuid.UUID],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
    ) -> WebhookRead:
        """Show one endpoint."""
        return _read(await self._get(session, principal.org_id, webhook_id))

    @patch("/{webhook_id:uuid}", guards=[requires(Role.ADMIN)], operation_id="UpdateWebhook")
    async def update_webhook(
        self,
        webhook_id: FromPath[uuid.UUID],
        data: JSONBody[WebhookUpdate],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        webhooks: NamedDependency[WebhookContext],
    ) -> WebhookRead:
        """Change an endpoint's URL, event types, description or active flag."""
        row = await self._get(session, principal.org_id, webhook_id)
        changes = data.model_dump(exclude_unset=True)
        if changes.get("url") is not None:
            row.url = await _checked_url(changes["url"], webhooks)
        if changes.get("event_types") is not None:
            row.event_types = [str(t) for t in changes["event_types"]]
        if "description" in changes:
            row.description = changes["description"]
        if changes.get("active") is not None:
            row.active = bool(changes["active"])
        row.updated_at = utcnow()
        session.add(row)
        await session.flush()
        return _read(row)

    @delete("/{webhook_id:uuid}", guards=[requires(Role.ADMIN)], operation_id="DeleteWebhook", status_code=204)
    async def delete_webhook(
        self,
        webhook_id: FromPath[uuid.UUID],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
    ) -> None:
        """Delete an endpoint and its delivery log."""
        row = await self._get(session, principal.org_id, webhook_id)
        await session.delete(row)
        await session.flush()

    @get("/{webhook_id:uuid}/deliveries", guards=[requires(Role.MEMBER)], operation_id="ListWebhookDeliveries")
    async def list_deliveries(
        self,
        webhook_id: FromPath[uuid.UUID],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        limit: FromQuery[Limit] = DEFAULT_LIMIT,
        cursor: FromQuery[Cursor] = None,
    ) -> Page[DeliveryRead]:
        """List the endpoint's deliveries, newest first, each with every attempt made."""
        endpoint = await self._get(session, principal.org_id, webhook_id)
        query = select(WebhookDelivery).where(
            WebhookDelivery.org_id == principal.org_id, WebhookDelivery.endpoint_id == endpoint.id
        )
        after = keyset(WebhookDelivery, cursor)
        if after is not None:
            query = query.where(after)
        query = query.order_by(col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc()).limit(limit + 1)
        rows = (await session.exec(query)).all()
        attempts = await _attempts(session, principal.org_id, [r.id for r in rows])

        def to_read(row: WebhookDelivery) -> DeliveryRead:
            return DeliveryRead(
                id=row.id,
                event_id=row.event_id,
                event_type=row.event_type,
                status=DeliveryStatus(row.status),
                attempts=row.attempts,
                next_attempt_at=row.next_attempt_at,
                last_status_code=row.last_status_code,
                last_error=row.last_error,
                created_at=row.created_at,
                delivered_at=row.delivered_at,
                payload=row.payload,
                attempt_log=attempts.get(row.id, []),
            )

        return make_page(rows, limit, to_read)


async def _attempts(
    session: AsyncSession, org_id: uuid.UUID, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AttemptRead]]:
    if not delivery_ids:
        return {}
    query = (
        select(WebhookAttempt)
        .where(WebhookAttempt.org_id == org_id, col(WebhookAttempt.delivery_id).in_(list(delivery_ids)))
        .order_by(sa.asc(col(WebhookAttempt.number)))
    )
    found: dict[uuid.UUID, list[AttemptRead]] = {}
    for row in (await session.exec(query)).all():
        found.setdefault(row.delivery_id, []).append(
            AttemptRead(
                number=row.number,
                started_at=row.started_at,
                duration_ms=row.duration_ms,
                status_code=row.status_code,
                error=row.error,
                response_excerpt=row.response_excerpt,
            )
        )
    return found


WEBHOOK_CONTROLLERS = [WebhooksController]
"""Every controller of the customer webhooks, mounted by ``services.campaign.app``."""
