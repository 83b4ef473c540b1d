"""Inbound routes: Twilio callbacks, inbound email, tracked links (public, verified) and customer webhooks."""

from __future__ import annotations

import html
import uuid
from typing import Any

import sqlalchemy as sa
import structlog
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Redirect
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from libs import jobs as registry
from libs.errors import BadRequest, Forbidden, NotFound
from libs.links import InvalidLink, LinkClaims, LinkKind, verify_link
from libs.openapi import problems
from libs.optout import as_sentence
from libs.queue import PendingJobs
from libs.security import PUBLIC
from services.campaign.inbound import erased, service
from services.campaign.inbound import repository as repo
from services.campaign.inbound.deps import provide_inbound, push
from services.campaign.inbound.email.controllers import EmailHooksController
from services.campaign.inbound.events import Context, Effects
from services.campaign.inbound.twilio import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    FormParams,
    find_signing_org,
    parse_form,
    public_url,
)

log = structlog.get_logger(__name__)

TWIML = "application/xml"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
ONE_CLICK = "List-Unsubscribe=One-Click"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _twiml(message: str | None) -> Response[str]:
    if not message:
        return Response(EMPTY_TWIML, media_type=TWIML)
    from twilio.twiml.messaging_response import MessagingResponse

    reply = MessagingResponse()
    reply.message(message)
    return Response(str(reply), media_type=TWIML)


# --------------------------------------------------------------------------- Twilio


class TwilioHooksController(Controller):
    """Twilio status callbacks and inbound texts, signed with the organization's Auth Token."""

    path = "/hooks/twilio"
    opt = PUBLIC
    tags = ["inbound"]
    dependencies = {"inbound": Provide(provide_inbound)}

    async def _verified(
        self, request: Request[Any, Any, Any], session: AsyncSession, ctx: Context
    ) -> tuple[uuid.UUID, FormParams]:
        body = await request.body()
        params = parse_form(body)
        account_sid = params.first("AccountSid") or ""
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not account_sid or not signature:
            raise Forbidden("The request is not signed by Twilio.")
        url = public_url(
            headers=request.headers,
            scheme=request.scope.get("scheme", "http"),
            host=request.headers.get("host"),
            raw_path=request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
            query_string=request.scope.get("query_string", b"").decode("latin-1"),
            base_url=ctx.settings.public_base_url,
        )
        credentials = await session.run_sync(lambda s: repo.twilio_credentials(s, account_sid))
        org_id = find_signing_org(
            credentials,
            box=ctx.box,
            url=url,
            params=params,
            signature=signature,
            settings_header=request.headers.get(SIGNATURE_SETTINGS_HEADER),
        )
        if org_id is None:
            log.warning("twilio_signature_invalid", path=request.url.path)
            raise Forbidden("The Twilio signature does not match this request.")
        return org_id, params

    async def _store(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        *,
        org_id: uuid.UUID,
        source: str,
        params: FormParams,
        dedupe_key: str,
        is_erased: bool = False,
    ) -> uuid.UUID | None:
        query = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
        payload = {"params": params.flat(), "query": query}
        if is_erased:
            payload = erased.twilio_payload(params.flat(), query)
        token = request.headers.get(IDEMPOTENCY_HEADER)
        return await session.run_sync(
            lambda s: repo.insert_event(
                s, org_id=org_id, source=source, dedupe_key=dedupe_key, payload=payload, idempotency_token=token
            )
        )

    async def _erased(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        ctx: Context,
        *,
        org_id: uuid.UUID,
        params: FormParams,
        channels: tuple[str, ...] | None,
    ) -> bool:
        """Whether the callback or text is about an erased person (then it is stored without personal data)."""
        query = {k: v for k, v in request.query_params.items() if isinstance(v, str)}
        first = {name: params.first(name) for name in params}
        return await session.run_sync(
            lambda s: erased.twilio_erased(
                s, ctx.suppression_key, org_id=org_id, params=first, query=query, channels=channels
            )
        )

    async def _status(
        self, request: Request[Any, Any, Any], session: AsyncSession, jobs: PendingJobs, ctx: Context, *, call: bool
    ) -> Response[str]:
        org_id, params = await self._verified(request, session, ctx)
        sid_name, status_name = ("CallSid", "CallStatus") if call else ("MessageSid", "MessageStatus")
        sid = params.first(sid_name) or params.first("SmsSid") or ""
        status = params.first(status_name) or params.first("SmsStatus") or ""
        if not sid:
            raise BadRequest(f"{sid_name} is missing.")
        key = f"{sid}:{status}:{params.first('AnsweredBy') or ''}" if call else f"{sid}:{status}"
        source = "twilio_call_status" if call else "twilio_message_status"
        channels = ("voicemail",) if call else ("sms",)
        is_erased = await self._erased(request, session, ctx, org_id=org_id, params=params, channels=channels)
        event_id = await self._store(
            request, session, org_id=org_id, source=source, params=params, dedupe_key=key, is_erased=is_erased
        )
        if is_erased:
            log.info("twilio_callback_erased_lead", event_id=str(event_id) if event_id else None, source=source)
        if event_id is not None:
            jobs.add(registry.PROCESS_TWILIO_STATUS.spec(str(event_id), job_id=f"inbound-{event_id}"))
        return Response(EMPTY_TWIML, media_type=TWIML)

    @post(
        "/messages/status",
        operation_id="ReceiveTwilioMessageStatus",
        responses=problems(400, 403, s403="The request is not signed by Twilio."),
        status_code=200,
    )
    async def message_status(
        self,
        request: Request[Any, Any, Any],
        system_session: NamedDependency[AsyncSession],
        jobs: NamedDependency[PendingJobs],
        inbound: NamedDependency[Context],
    ) -> Response[str]:
        """Receive a Twilio message status callback."""
        return await self._status(request, system_session, jobs, inbound, call=False)

    @post(
        "/calls/status",
        operation_id="ReceiveTwilioCallStatus",
        responses=problems(400, 403, s403="The request is not signed by Twilio."),
        status_code=200,
    )
    async def call_status(
        self,
        request: Request[Any, Any, Any],
        system_session: NamedDependency[AsyncSession],
        jobs: NamedDependency[PendingJobs],
        inbound: NamedDependency[Context],
    ) -> Response[str]:
        """Receive a Twilio call status callback (with ``AnsweredBy``)."""
        return await self._status(request, system_session, jobs, inbound, call=True)

    @post(
        "/sms/inbound",
        operation_id="ReceiveTwilioSms",
        responses=problems(400, 403, s403="The request is not signed by Twilio."),
        status_code=200,
    )
    async def sms_inbound(
        self,
        request: Request[Any, Any, Any],
        system_session: NamedDependency[AsyncSession],
        jobs: NamedDependency[PendingJobs],
        inbound: NamedDependency[Context],
    ) -> Response[str]:
        """Receive an inbound text: opt-out, opt-in and help act at once; replies go to the queue."""
        org_id, params = await self._verified(request, system_session, inbound)
        sid = params.first("MessageSid") or params.first("SmsSid") or ""
        if not sid:
            raise BadRequest("MessageSid is missing.")
        is_erased = await self._erased(request, system_session, inbound, org_id=org_id, params=params, channels=None)
        event_id = await self._store(
            request,
            system_session,
            org_id=org_id,
            source="twilio_sms",
            params=params,
            dedupe_key=sid,
            is_erased=is_erased,
        )
        if event_id is None:
            return _twiml(None)
        if is_erased:
            body, to = params.first("Body") or "", params.first("To")
            answer = await system_session.run_sync(
                lambda s: service.handle_erased_sms(s, event_id=event_id, org_id=org_id, body=body, to=to)
            )
            log.info("sms_inbound", event_id=str(event_id), outcome=answer.outcome, erased=True)
            return _twiml(answer.reply)
        effects = Effects()
        answer = await system_session.run_sync(
            lambda s: service.handle_sms(s, inbound, effects, event_id=event_id, org_id=org_id)
        )
        push(jobs, effects)
        log.info("sms_inbound", event_id=str(event_id), outcome=answer.outcome)
        return _twiml(answer.reply)


# --------------------------------------------------------------------------- links


def _claims(token: str, kind: LinkKind, ctx: Context) -> LinkClaims:
    try:
        return verify_link(ctx.settings.secret_key.get_secret_value(), token, kind)
    except InvalidLink as exc:
        raise NotFound("This link is not valid.") from exc


def _mask(email: str | None) -> str:
    if not email or "@" not in email:
        return "your address"
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def _page(title: str, body: str) -> Response[str]:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem">'
        f"{body}</body></html>"
    )
    headers = {
        **NO_STORE,
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    }
    # Litestar adds "; charset=utf-8" to every text/* media type itself.
    return Response(document, media_type="text/html", headers=headers)


class LinksController(Controller):
    """Signed per-message links: unsubscribe (RFC 8058), open pixel, click redirect."""

    path = "/"
    opt = PUBLIC
    tags = ["inbound"]
    dependencies = {"inbound": Provide(provide_inbound)}

    @get("/u/{token:str}", operation_id="ShowUnsubscribe")
    async def show_unsubscribe(
        self, token: FromPath[str], system_session: NamedDependency[AsyncSession], inbound: NamedDependency[Context]
    ) -> Response[str]:
        """Show the unsubscribe confirmation page (GET changes nothing: link scanners only GET)."""
        claims = _claims(token, LinkKind.UNSUBSCRIBE, inbound)
        recipient = await system_session.run_sync(lambda s: _recipient(s, claims.message_id))
        if recipient is None:
            raise NotFound("This link is not valid.")
        email, brand = recipient
        form = (
            f"<h1>Unsubscribe</h1><p>Stop emails to {html.escape(_mask(email))}? {_no_longer(brand)}</p>"
            '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        return _page("Unsubscribe", form)

    @post("/u/{token:str}", operation_id="Unsubscribe", status_code=200)
    async def unsubscribe(
        self,
        token: FromPath[str],
        request: Request[Any, Any, Any],
        system_session: NamedDependency[AsyncSession],
        jobs: NamedDependency[PendingJobs],
        inbound: NamedDependency[Context],
    ) -> Response[str]:
        """Unsubscribe at once (RFC 8058 one-click POST: body ``List-Unsubscribe=One-Click``)."""
        claims = _claims(token, LinkKind.UNSUBSCRIBE, inbound)
        body = (await request.body())[:4096]
        if parse_form(body).first("List-Unsubscribe") != "One-Click":
            raise BadRequest(f"The body must be {ONE_CLICK}.")
        effects = Effects()
        found = await system_session.run_sync(
            lambda s: service.unsubscribe(s, inbound, effects, message_id=claims.message_id, one_click=True)
        )
        if not found:
            raise NotFound("This link is not valid.")
        push(jobs, effects)
        recipient = await system_session.run_sync(lambda s: _recipient(s, claims.message_id))
        brand = recipient[1] if recipient is not None else ""
        return _page("Unsubscribed", f"<h1>You are unsubscribed</h1><p>{_no_longer(brand)}</p>")

    @get("/o/{token:str}", operation_id="TrackOpen")
    async def open_pixel(
        self,
        token: FromPath[str],
        system_session: NamedDependency[AsyncSession],
        jobs: NamedDependency[PendingJobs],
        inbound: NamedDependency[Context],
    ) -> Response[bytes]:
        """Serve the 1x1 open pixel and record the first open."""
        claims = _claims(token, LinkKind.OPEN, inbound)
        effects = Effects()
        found = await system_session.run_sync(lambda s: service.record_open(s, effects, message_id=claims.message_id))
        if not found:
            raise NotFound("This link is not valid.")
        push(jobs, effects)
        return Response(PIXEL, media_type="image/gif", headers=NO_STORE)

    @get("/c/{token:str}", operation_id="FollowLink", status_code=302)
    async def click(
        self,
        token: FromPath[str],
        system_session: NamedDependency[AsyncSession],
        jobs: NamedDependency[PendingJobs],
        inbound: NamedDependency[Context],
    ) -> Redirect:
        """Redirect to the URL the message carried at the token's position (never anywhere else)."""
        claims = _claims(token, LinkKind.CLICK, inbound)
        if claims.url_index is None or claims.url_index < 0:
            raise NotFound("This link is not valid.")
        effects = Effects()
        position = claims.url_index
        url = await system_session.run_sync(
            lambda s: service.resolve_click(s, effects, message_id=claims.message_id, position=position)
        )
        if url is None:
            raise NotFound("This link is not valid.")
        push(jobs, effects)
        return Redirect(url, status_code=302, headers=NO_STORE)


def _recipient(session: Session, message_id: uuid.UUID) -> tuple[str, str] | None:
    """The address a message went to and the name of the brand that sent it ("" when gone), or None."""
    stmt = (
        sa.select(repo.LEADS.c.email, repo.BRANDS.c.name)
        .select_from(
            repo.MESSAGES.outerjoin(
                repo.LEADS,
                (repo.LEADS.c.id == repo.MESSAGES.c.lead_id) & (repo.LEADS.c.org_id == repo.MESSAGES.c.org_id),
            )
            .outerjoin(repo.CAMPAIGNS, repo.CAMPAIGNS.c.id == repo.MESSAGES.c.campaign_id)
            .outerjoin(
                repo.BRANDS,
                (repo.BRANDS.c.id == repo.CAMPAIGNS.c.brand_id) & (repo.BRANDS.c.org_id == repo.MESSAGES.c.org_id),
            )
        )
        .where(repo.MESSAGES.c.id == message_id)
    )
    row = session.execute(stmt).first()
    return None if row is None else (row.email or "", row.name or "")


def _no_longer(brand: str) -> str:
    """The page's promise, naming the brand (escaped: its name is the customer's text)."""
    if not brand.strip():
        return "You will no longer receive these emails."
    return html.escape(as_sentence(f"You will no longer receive email from {brand}"))


INBOUND_CONTROLLERS = [TwilioHooksController, EmailHooksController, LinksController]
"""Every controller of the inbound part, mounted by ``services.campaign.app``."""
