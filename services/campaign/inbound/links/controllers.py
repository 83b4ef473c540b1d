"""``/u``, ``/o`` and ``/c``: the signed per-message links (public; the token is the authentication)."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qs

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Redirect
from sqlmodel.ext.asyncio.session import AsyncSession

from libs.errors import BadRequest, NotFound
from libs.links import InvalidLink, LinkClaims, LinkKind, verify_link
from libs.optout import as_sentence
from libs.queue import PendingJobs
from libs.security import PUBLIC
from services.campaign.inbound.deps import provide_inbound, push
from services.campaign.inbound.events import Context, Effects
from services.campaign.inbound.links import service

PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
ONE_CLICK = "List-Unsubscribe=One-Click"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
INVALID = "This link is not valid."


def _claims(token: str, kind: LinkKind, ctx: Context) -> LinkClaims:
    try:
        return verify_link(ctx.settings.secret_key.get_secret_value(), token, kind)
    except InvalidLink as exc:
        raise NotFound(INVALID) from exc


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


def _no_longer(brand: str) -> str:
    """The page's promise, naming the brand (escaped: its name is the customer's text)."""
    if not brand.strip():
        return "You will no longer receive these emails."
    return html.escape(as_sentence(f"You will no longer receive email from {brand}"))


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
        recipient = await system_session.run_sync(lambda s: service.recipient(s, claims.message_id))
        if recipient is None:
            raise NotFound(INVALID)
        form = (
            f"<h1>Unsubscribe</h1><p>Stop emails to {html.escape(_mask(recipient.email))}? "
            f"{_no_longer(recipient.brand)}</p>"
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
        if (
            parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).get("List-Unsubscribe", [""])[0]
            != "One-Click"
        ):
            raise BadRequest(f"The body must be {ONE_CLICK}.")
        effects = Effects()
        recipient = await system_session.run_sync(
            lambda s: service.unsubscribe(s, inbound, effects, message_id=claims.message_id, one_click=True)
        )
        if recipient is None:
            raise NotFound(INVALID)
        push(jobs, effects)
        return _page("Unsubscribed", f"<h1>You are unsubscribed</h1><p>{_no_longer(recipient.brand)}</p>")

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
            raise NotFound(INVALID)
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
            raise NotFound(INVALID)
        effects = Effects()
        position = claims.url_index
        url = await system_session.run_sync(
            lambda s: service.resolve_click(s, effects, message_id=claims.message_id, position=position)
        )
        if url is None:
            raise NotFound(INVALID)
        push(jobs, effects)
        return Redirect(url, status_code=302, headers=NO_STORE)
