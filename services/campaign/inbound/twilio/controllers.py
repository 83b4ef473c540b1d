"""``/hooks/twilio``: status callbacks and inbound texts; each request is one hop into its sync entry."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency, Provide
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.openapi import problems
from libs.queue import PendingJobs
from libs.security import PUBLIC
from services.campaign.inbound.deps import provide_inbound, push
from services.campaign.inbound.events import Context, Effects
from services.campaign.inbound.twilio import sms, status
from services.campaign.inbound.twilio.hook import TwilioHook
from services.campaign.inbound.twilio.signature import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    parse_form,
    public_url,
)

TWIML = "application/xml"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
UNSIGNED = problems(400, 403, s403="The request is not signed by Twilio.")


def _twiml(message: str | None) -> Response[str]:
    if not message:
        return Response(EMPTY_TWIML, media_type=TWIML)
    from twilio.twiml.messaging_response import MessagingResponse

    reply = MessagingResponse()
    reply.message(message)
    return Response(str(reply), media_type=TWIML)


async def _hook(request: Request[Any, Any, Any], ctx: Context) -> TwilioHook:
    """What the signature covers and the rules read, taken from the request as it came."""
    url = public_url(
        headers=request.headers,
        scheme=request.scope.get("scheme", "http"),
        host=request.headers.get("host"),
        raw_path=request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
        query_string=request.scope.get("query_string", b"").decode("latin-1"),
        base_url=ctx.settings.public_base_url,
    )
    return TwilioHook(
        params=parse_form(await request.body()),
        query={k: v for k, v in request.query_params.items() if isinstance(v, str)},
        url=url,
        path=request.url.path,
        signature=request.headers.get(SIGNATURE_HEADER, ""),
        settings_header=request.headers.get(SIGNATURE_SETTINGS_HEADER),
        idempotency_token=request.headers.get(IDEMPOTENCY_HEADER),
    )


class TwilioHooksController(Controller):
    """Twilio status callbacks and inbound texts, signed with the organization's Auth Token."""

    path = "/hooks/twilio"
    opt = PUBLIC
    tags = ["inbound"]
    dependencies = {"inbound": Provide(provide_inbound)}

    async def _status(
        self, request: Request[Any, Any, Any], session: AsyncSession, jobs: PendingJobs, ctx: Context, *, call: bool
    ) -> Response[str]:
        hook = await _hook(request, ctx)
        effects = Effects()
        await session.run_sync(lambda s: status.receive(s, ctx, effects, hook, call=call))
        push(jobs, effects)
        return _twiml(None)

    @post("/messages/status", operation_id="ReceiveTwilioMessageStatus", responses=UNSIGNED, status_code=200)
    async def message_status(
        self,
        request: Request[Any, Any, Any],
        system_session: NamedDependency[AsyncSession],
        jobs: NamedDependency[PendingJobs],
        inbound: NamedDependency[Context],
    ) -> Response[str]:
        """Receive a Twilio message status callback."""
        return await self._status(request, system_session, jobs, inbound, call=False)

    @post("/calls/status", operation_id="ReceiveTwilioCallStatus", responses=UNSIGNED, status_code=200)
    async def call_status(
        self,
        request: Request[Any, Any, Any],
        system_session: NamedDependency[AsyncSession],
        jobs: NamedDependency[PendingJobs],
        inbound: NamedDependency[Context],
    ) -> Response[str]:
        """Receive a Twilio call status callback (with ``AnsweredBy``)."""
        return await self._status(request, system_session, jobs, inbound, call=True)

    @post("/sms/inbound", operation_id="ReceiveTwilioSms", responses=UNSIGNED, status_code=200)
    async def sms_inbound(
        self,
        request: Request[Any, Any, Any],
        system_session: NamedDependency[AsyncSession],
        jobs: NamedDependency[PendingJobs],
        inbound: NamedDependency[Context],
    ) -> Response[str]:
        """Receive an inbound text: opt-out, opt-in and help act at once; replies go to the queue."""
        hook = await _hook(request, inbound)
        effects = Effects()
        answer = await system_session.run_sync(lambda s: sms.receive(s, inbound, effects, hook))
        push(jobs, effects)
        return _twiml(answer.reply)
