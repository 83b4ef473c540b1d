"""``POST /hooks/email/inbound``: raw MIME from the mail system (replies, bounces, auto-replies)."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from litestar import Controller, Request, post
from litestar.di import NamedDependency, Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.errors import BadRequest, Forbidden, PayloadTooLarge
from libs.openapi import problems
from libs.queue import PendingJobs
from libs.security import PUBLIC
from services.campaign.inbound.deps import provide_inbound, push
from services.campaign.inbound.email.service import receive
from services.campaign.inbound.events import Context, Effects


def _email_authorized(request: Request[Any, Any, Any], body: bytes, ctx: Context) -> bool:
    secret = ctx.settings.inbound_email_secret
    if secret is None:
        return False
    key = secret.get_secret_value()
    shared = request.headers.get("x-inbound-secret")
    if shared is not None:
        return hmac.compare_digest(shared.encode(), key.encode())
    signature = request.headers.get("x-inbound-signature", "")
    fields = dict(part.strip().partition("=")[::2] for part in signature.split(",") if "=" in part)
    timestamp, given = fields.get("t", ""), fields.get("v1", "")
    if not timestamp.isdigit() or not given:
        return False
    if abs(time.time() - int(timestamp)) > ctx.settings.inbound_signature_tolerance:
        return False
    expected = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


class EmailHooksController(Controller):
    """Raw MIME from the mail system: replies, bounces and auto-replies."""

    path = "/hooks/email"
    opt = PUBLIC
    tags = ["inbound"]
    dependencies = {"inbound": Provide(provide_inbound)}

    @post(
        "/inbound",
        operation_id="ReceiveInboundEmail",
        responses=problems(400, 403, 413, s403="The inbound secret or signature is missing or wrong."),
        status_code=202,
    )
    async def inbound_email(
        self,
        request: Request[Any, Any, Any],
        system_session: NamedDependency[AsyncSession],
        jobs: NamedDependency[PendingJobs],
        inbound: NamedDependency[Context],
    ) -> dict[str, str]:
        """Accept one raw email (message/rfc822), authenticated by the shared secret or its HMAC."""
        body = await request.body()
        if len(body) > inbound.settings.inbound_email_max_bytes:
            raise PayloadTooLarge("The email is too large.")
        if not _email_authorized(request, body, inbound):
            raise Forbidden("The inbound email secret or signature is missing or wrong.")
        effects = Effects()
        outcome = await system_session.run_sync(lambda s: receive(s, inbound, effects, body))
        if outcome.status == "malformed" or outcome.kind is None:
            raise BadRequest(f"Not a readable email: {outcome.error}")
        push(jobs, effects)
        answer = {"status": outcome.status, "kind": outcome.kind.value}
        if outcome.event_id is not None:
            answer["event_id"] = str(outcome.event_id)
        return answer
