"""Field types that validate with real libraries: email-validator, phonenumbers, zoneinfo, URL parsing."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029]")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-f]{32}$")
_TWILIO_ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}$")
_TWILIO_AUTH_TOKEN = re.compile(r"^[0-9a-f]{32}$")
_OPENAI_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,99}$")
_VOICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _single_line(value: str) -> str:
    if _LINE_BREAK.search(value) or _CONTROL.search(value):
        raise ValueError("must be a single line without control characters")
    return value


def _multi_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value.replace("\r\n", "\n")


def _email(value: str) -> str:
    try:
        # Deliverability needs DNS; a sender's address is checked for form here and for real by verify.
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from exc


def _e164(value: str) -> str:
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number in international format (+ and country code)") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or not _HOSTNAME.match(parts.hostname.rstrip(".")):
        raise ValueError("not an http(s) URL with a host name")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    return value


def _https_url(value: str) -> str:
    if not value.lower().startswith("https://"):
        raise ValueError("must be an https URL")
    return _url(value)


def _timezone(value: str) -> str:
    if value not in _zones():
        raise ValueError("not an IANA time zone (e.g. America/New_York)")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("not an IANA time zone (e.g. America/New_York)") from exc
    return value


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
    return _ZONES


def _hostname(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        pass
    if not _HOSTNAME.match(value.rstrip(".")):
        raise ValueError("not a host name or IP address")
    return value.lower()


def _pattern(regex: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(f"not a valid {what}")
        return value

    return AfterValidator(check)


def _line(max_length: int, min_length: int = 0) -> object:
    return StringConstraints(min_length=min_length, max_length=max_length)


Stripped = BeforeValidator(_strip)

Name = Annotated[str, Stripped, _line(200, 1), AfterValidator(_single_line)]
ShortLine = Annotated[str, Stripped, _line(300, 1), AfterValidator(_single_line)]
Label = Annotated[str, Stripped, _line(200), AfterValidator(_single_line)]
Text500 = Annotated[str, Stripped, _line(500), AfterValidator(_multi_line)]
Text2000 = Annotated[str, Stripped, _line(2000), AfterValidator(_multi_line)]
SmsLine = Annotated[str, Stripped, _line(160), AfterValidator(_single_line)]
SmsOptOut = Annotated[str, Stripped, _line(300), AfterValidator(_single_line)]
EmailAddress = Annotated[str, Stripped, _line(320, 3), AfterValidator(_email)]
PhoneE164 = Annotated[str, Stripped, _line(32, 2), AfterValidator(_e164)]
WebUrl = Annotated[str, Stripped, _line(2048, 8), AfterValidator(_url)]
HttpsUrl = Annotated[str, Stripped, _line(2048, 9), AfterValidator(_https_url)]
TimeZoneName = Annotated[str, Stripped, _line(64, 1), AfterValidator(_timezone)]
HostName = Annotated[str, Stripped, _line(255, 1), AfterValidator(_hostname)]
Port = Annotated[int, Field(ge=1, le=65535)]
SmtpUsername = Annotated[str, _line(320, 1), AfterValidator(_single_line)]
SmtpPassword = Annotated[str, _line(512, 1), AfterValidator(_single_line)]
ImapFolder = Annotated[str, Stripped, _line(255, 1), AfterValidator(_single_line)]
MessagingServiceSid = Annotated[str, Stripped, _pattern(_MESSAGING_SERVICE_SID, "Twilio messaging service SID (MG…)")]
TwilioAccountSid = Annotated[str, Stripped, _pattern(_TWILIO_ACCOUNT_SID, "Twilio account SID (AC + 32 hex)")]
TwilioAuthToken = Annotated[str, Stripped, _pattern(_TWILIO_AUTH_TOKEN, "Twilio auth token (32 hex)")]
OpenAIKey = Annotated[str, Stripped, _line(300, 20), AfterValidator(_single_line)]
OpenAIModel = Annotated[str, Stripped, _pattern(_OPENAI_MODEL, "model name")]
TtsVoice = Annotated[str, Stripped, _pattern(_VOICE, "voice name (e.g. Polly.Joanna)")]
HourlyLimit = Annotated[int, Field(ge=1, le=10_000)]
DailyLimit = Annotated[int, Field(ge=1, le=100_000)]
ListItem = Annotated[str, Stripped, _line(300, 1), AfterValidator(_single_line)]
ProofPoints = Annotated[list[ListItem], Field(max_length=20)]
ForbiddenClaims = Annotated[list[ListItem], Field(max_length=50)]
