"""SMS and voicemail drops through the Twilio REST API, with explicit timeouts and classified outcomes.

twilio-python has no timeout and no retries by default; the client here has both set
(timeout explicit, retries zero: our job decides what may be retried). HTTP 429 is never
processed by Twilio and is safe to retry; any other 4xx is Twilio's final answer; a 5xx or a
timeout after the request left may have created the message or call, so it is ``UNKNOWN``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import structlog

from services.worker.channels.outcome import SendResult

if TYPE_CHECKING:
    from twilio.rest import Client

log = structlog.get_logger(__name__)

# Twilio error codes that mean the number itself is unusable or opted out.
INVALID_NUMBER_CODES = frozenset({21211, 21214, 21217, 21401, 21407, 21408, 21421, 21614})
OPTED_OUT_CODES = frozenset({21610})


@dataclass(frozen=True, slots=True)
class TwilioAccount:
    """An organization's Twilio account; the token is already decrypted."""

    account_sid: str
    auth_token: str


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """One text message."""

    message_id: str
    to: str
    body: str
    status_callback: str
    from_number: str | None = None
    messaging_service_sid: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingVoicemail:
    """One voicemail drop: a script spoken with ``voice``, or a recorded ``audio_url``."""

    message_id: str
    to: str
    from_number: str | None
    """The sender's caller id (``None`` as the sender row has it: Twilio refuses the call)."""
    script: str
    status_callback: str
    voice: str | None = None
    audio_url: str | None = None


def make_client(account: TwilioAccount, *, timeout: float, base_url: str | None = None) -> Client:
    """Build a Twilio client with an explicit timeout and no hidden retries (twilio is imported on first use)."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.http.response import Response
    from twilio.rest import Client

    class _OriginHttpClient(TwilioHttpClient):
        """Twilio's own HTTP client with the API origin replaced (tests, egress proxies)."""

        def __init__(self, base_url: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            parts = urlsplit(base_url)
            self._scheme, self._netloc = parts.scheme, parts.netloc

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
            parts = urlsplit(url)
            url = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, parts.fragment))
            return super().request(method, url, *args, **kwargs)

    http: TwilioHttpClient = (
        _OriginHttpClient(base_url, timeout=timeout, max_retries=0)
        if base_url
        else TwilioHttpClient(timeout=timeout, max_retries=0)
    )
    return Client(account.account_sid, account.auth_token, http_client=http)


def voicemail_twiml(drop: OutgoingVoicemail) -> str:
    """TwiML that plays the recorded audio, or speaks the script, once the beep has passed."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    if drop.audio_url:
        response.play(drop.audio_url)
    else:
        response.say(drop.script, voice=drop.voice or "Polly.Joanna")
    response.hangup()
    return str(response)


def send_sms(client: Client, sms: OutgoingSms) -> SendResult:
    """Create one message through the Messages API."""
    params: dict[str, Any] = {"to": sms.to, "body": sms.body, "status_callback": sms.status_callback}
    if sms.messaging_service_sid:
        params["messaging_service_sid"] = sms.messaging_service_sid
    else:
        params["from_"] = sms.from_number
    return _classified(lambda: client.messages.create(**params).sid)


def send_voicemail(client: Client, drop: OutgoingVoicemail) -> SendResult:
    """Place one call that waits for the answering machine's beep, then plays the drop."""
    return _classified(
        lambda: (
            client.calls.create(
                to=drop.to,
                from_=drop.from_number,
                twiml=voicemail_twiml(drop),
                machine_detection="DetectMessageEnd",
                machine_detection_timeout=30,
                status_callback=drop.status_callback,
                status_callback_event=["initiated", "answered", "completed"],
            ).sid
        )
    )


def _classified(call: Any) -> SendResult:
    import requests
    from twilio.base.exceptions import TwilioException, TwilioRestException

    try:
        sid = call()
    except TwilioRestException as exc:
        code = f"twilio_{exc.code or exc.status}"
        detail = f"{exc.status} {exc.code or ''} {exc.msg}".strip()
        if exc.status == 429:
            return SendResult.retry(code, detail)
        if 400 <= exc.status < 500:
            return SendResult.permanent(code, detail)
        return SendResult.unknown(code, detail)
    except (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError) as exc:
        return SendResult.retry("twilio_connect", f"{type(exc).__name__}: {exc}")
    except requests.exceptions.ConnectionError as exc:
        if _never_connected(exc):
            return SendResult.retry("twilio_connect", f"{type(exc).__name__}: {exc}")
        return SendResult.unknown("twilio_connection_lost", f"{type(exc).__name__}: {exc}")
    except requests.exceptions.Timeout as exc:
        return SendResult.unknown("twilio_timeout", f"{type(exc).__name__}: {exc}")
    except (requests.exceptions.RequestException, TwilioException, ValueError, KeyError) as exc:
        # The request went out; an unreadable answer does not prove it was refused.
        return SendResult.unknown("twilio_bad_response", f"{type(exc).__name__}: {exc}")
    if not sid:
        return SendResult.unknown("twilio_no_sid", "Twilio answered without a sid")
    return SendResult.sent(str(sid))


def _never_connected(exc: BaseException) -> bool:
    """Whether the error chain shows the TCP connection was never established."""
    from urllib3.exceptions import NewConnectionError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NewConnectionError | ConnectionRefusedError):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            current = reason
            continue
        for arg in getattr(current, "args", ()):
            if isinstance(arg, BaseException) and id(arg) not in seen:
                current = arg
                break
        else:
            current = current.__cause__ or current.__context__
    return False
