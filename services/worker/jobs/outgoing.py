"""What goes out on each channel: the message a provider gets, and how the send is opened.

``build`` picks the channel's builder; each builds the provider's message from the loaded row
and the written draft (tracked links, unsubscribe and open URLs, the thread's references for
email; the sign-off and opt-out for SMS; the script and status callback for voicemail), and
the send on the organization's account (its SMTP server or Twilio) or on the development
sinks (the SMTP sink, the local recorder) when it has none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import cast

from libs.compose import sms_text, voicemail_script
from libs.links import open_url, track_links, unsubscribe_url
from services.worker.channels.email import OutgoingEmail, SmtpAccount, build_email
from services.worker.channels.outcome import SendResult
from services.worker.channels.twilio import OutgoingSms, OutgoingVoicemail, send_sms, send_voicemail
from services.worker.jobs.context import Context
from services.worker.ledger import LoadedRow
from services.worker.personalize import Draft

STATUS_CALLBACK = {"sms": "/hooks/twilio/messages/status", "voicemail": "/hooks/twilio/calls/status"}
"""The campaign service's Twilio status routes; ``?message_id=`` finds a message whose sid is not recorded yet."""
_MESSAGE_ID = re.compile(r"<[^<>@\s]+@[^<>@\s]+>")


@dataclass
class Outgoing:
    """A message ready to hand off: what the claim writes and what the provider gets."""

    subject: str | None
    body: str
    variant: str | None
    urls: list[str]
    send: Callable[[], SendResult]
    begin: Callable[[], Handoff | SendResult] | None = None
    """Email: the part of the send before the hand-off (SMTP up to DATA), run while the claim commits."""


@dataclass
class Handoff:
    """A send opened up to its hand-off: ``finish`` hands the message to the provider, ``abort`` gives it up."""

    finish: Callable[[], SendResult]
    abort: Callable[[], None] = lambda: None

    @classmethod
    def failed(cls, result: SendResult) -> Handoff:
        """A send that failed before any hand-off (connection refused, SMTP 4xx/5xx to the envelope)."""
        return cls(lambda: result)


def build(ctx: Context, row: LoadedRow, draft: Draft, variant: str | None) -> Outgoing:
    """Build what goes out for ``row`` on its channel."""
    builders = {"email": email, "sms": sms}
    return builders.get(row.channel, voicemail)(ctx, row, draft, variant)


def _urls(ctx: Context) -> tuple[str, str]:
    return ctx.settings.public_base_url.rstrip("/"), ctx.settings.secret_key.get_secret_value()


def email(ctx: Context, row: LoadedRow, draft: Draft, variant: str | None) -> Outgoing:
    """An email with tracked links, unsubscribe and open URLs, threaded on the enrollment's earlier emails."""
    base, secret = _urls(ctx)
    tracked, urls = track_links(secret, base, row.id, draft.body)
    mail = OutgoingEmail(
        message_id=str(row.id),
        from_address=cast(str, row.from_address),  # as the sender has it (the channel cleans a missing one)
        from_name=row.from_name,
        reply_to=row.reply_to,
        to_address=_gated(row.email),
        subject=draft.subject or row.brand_name,
        body=tracked,
        postal_address=row.postal_address or "",
        unsubscribe_url=unsubscribe_url(secret, base, row.id),
        open_url=open_url(secret, base, row.id),
        brand_name=row.brand_name,
        opt_out_text=row.opt_out_email,
    )
    mail = replace(mail, references=_thread(row, mail.domain))
    account = _account(ctx, row)
    message = build_email(mail)

    def begin() -> Handoff | SendResult:
        opened = ctx.smtp.begin(account, mail_from=mail.from_address, rcpt_to=mail.to_address)
        return opened if isinstance(opened, SendResult) else Handoff(lambda: opened.finish(message), opened.abort)

    return Outgoing(
        draft.subject,
        draft.body,
        variant,
        urls,
        lambda: ctx.smtp.send(account, message, mail_from=mail.from_address, rcpt_to=mail.to_address),
        begin,
    )


def _account(ctx: Context, row: LoadedRow) -> SmtpAccount:
    """The sender's SMTP server (its password opened), else the development SMTP sink."""
    if not row.smtp_host:
        return SmtpAccount(ctx.settings.smtp_sink_host, ctx.settings.smtp_sink_port)
    if row.sender_auth_mode == "oauth2":  # its access token logs in (XOAUTH2), never a password
        return SmtpAccount(
            row.smtp_host, row.smtp_port or 587, row.smtp_security or "starttls", row.smtp_username, None, row.sender_id
        )
    password = ctx.box.decrypt(row.smtp_password_encrypted) if row.smtp_password_encrypted else None
    return SmtpAccount(
        row.smtp_host, row.smtp_port or 587, row.smtp_security or "starttls", row.smtp_username, password
    )


def sms(ctx: Context, row: LoadedRow, draft: Draft, variant: str | None) -> Outgoing:
    """A text with the sender's sign-off and opt-out, and its status callback."""
    base, _ = _urls(ctx)
    callback = f"{base}{STATUS_CALLBACK[row.channel]}?message_id={row.id}"
    text = sms_text(draft.body, row.sms_signoff, row.opt_out_sms)
    if row.twilio_sid and row.twilio_secret:
        to = _gated(row.phone)
        outgoing = OutgoingSms(str(row.id), to, text, callback, row.phone_number, row.messaging_service_sid)
        client = ctx.twilio(row.twilio_sid, row.twilio_secret)
        return Outgoing(None, text, variant, [], lambda: send_sms(client, outgoing))
    payload = {"to": row.phone, "from": row.phone_number, "body": text}
    return Outgoing(None, text, variant, [], lambda: ctx.recorder.record("sms", str(row.id), payload))


def voicemail(ctx: Context, row: LoadedRow, draft: Draft, variant: str | None) -> Outgoing:
    """A voicemail drop: the script (or the recorded audio) and its status callback."""
    base, _ = _urls(ctx)
    callback = f"{base}{STATUS_CALLBACK[row.channel]}?message_id={row.id}"
    drop = OutgoingVoicemail(
        str(row.id),
        _gated(row.phone),
        row.phone_number,
        voicemail_script(draft.body, row.opt_out_voicemail),
        callback,
        voice=row.tts_voice,
        audio_url=row.step_audio_url or row.sender_audio_url,
    )
    if row.twilio_sid and row.twilio_secret:
        client = ctx.twilio(row.twilio_sid, row.twilio_secret)
        return Outgoing(None, drop.script, variant, [], lambda: send_voicemail(client, drop))
    script = {"to": row.phone, "from": row.phone_number, "script": drop.script}
    return Outgoing(None, drop.script, variant, [], lambda: ctx.recorder.record("voicemail", str(row.id), script))


def _gated(value: str | None) -> str:
    """A recipient the gate made sure of (an email's address, a text's or a call's number) before any build."""
    assert value, "the gate skips a message without a recipient"
    return value


def _thread(row: LoadedRow, domain: str) -> tuple[str, ...]:
    """The Message-IDs a follow-up threads on: the enrollment's earlier emails sent from this sender's domain.

    Every email goes out as ``<{ledger id}@{sender domain}>`` and the ledger keeps that id; a row
    recorded before it did (or resolved by hand) holds no id, and gets the one it was sent with.
    An earlier email from another domain was another sender's: it is no part of this thread.
    """
    thread: list[str] = []
    for message_id, provider_id in zip(row.thread_message_ids or (), row.thread_provider_ids or (), strict=True):
        ref = provider_id if provider_id and _MESSAGE_ID.fullmatch(provider_id) else f"<{message_id}@{domain}>"
        if ref[:-1].rpartition("@")[2].lower() == domain.lower():
            thread.append(ref)
    return tuple(thread)
