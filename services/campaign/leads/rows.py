"""Map CSV columns to lead fields and turn one CSV record into a lead row or a rejection reason."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from libs.suppression import InvalidContact
from services.campaign.leads.contact import ContactValidator, normalize_timezone
from services.campaign.leads.csvfile import LINE_TOO_LONG

MAX_COLUMNS = 200
MAX_HEADER_NAME = 200
MAX_TEXT = 200
MAX_CUSTOM_VALUE = 2000
TEXT_FIELDS = ("first_name", "last_name", "company", "title")
FIELDS = (
    "email",
    "phone",
    *TEXT_FIELDS,
    "timezone",
    "consent_email",
    "consent_sms",
    "consent_voice",
    "consent_source",
)
"""Lead fields a column can be mapped to; anything else becomes a custom field (or is ignored)."""
IGNORE = "ignore"
CUSTOM_PREFIX = "custom:"

_SYNONYMS: dict[str, str] = {
    **dict.fromkeys(("email", "emailaddress", "mail", "workemail", "businessemail", "courriel"), "email"),
    **dict.fromkeys(
        ("phone", "phonenumber", "mobile", "mobilephone", "cell", "cellphone", "tel", "telephone", "sms"), "phone"
    ),
    **dict.fromkeys(("firstname", "first", "givenname", "forename", "prenom"), "first_name"),
    **dict.fromkeys(("lastname", "last", "surname", "familyname", "nom"), "last_name"),
    **dict.fromkeys(("company", "companyname", "organization", "organisation", "account", "employer"), "company"),
    **dict.fromkeys(("title", "jobtitle", "position", "role"), "title"),
    **dict.fromkeys(("timezone", "tz", "timezonename"), "timezone"),
    **dict.fromkeys(("consentemail", "emailconsent", "emailoptin"), "consent_email"),
    **dict.fromkeys(("consentsms", "smsconsent", "smsoptin"), "consent_sms"),
    **dict.fromkeys(("consentvoice", "voiceconsent", "consentvoicemail", "voicemailconsent"), "consent_voice"),
    **dict.fromkeys(("consentsource",), "consent_source"),
}
_TRUE = frozenset({"1", "y", "yes", "true", "t", "x", "on", "oui", "ja", "si", "sí"})
_FALSE = frozenset({"", "0", "n", "no", "false", "f", "off", "non", "nein"})
_SUSPECT = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]+")
_UNCLEAN = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_to_json = json.JSONEncoder(ensure_ascii=False).encode


class HeaderError(ValueError):
    """The header row cannot be used; ``errors`` are field errors for a 422."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(e["message"] for e in errors))
        self.errors = errors


class RowError(ValueError):
    """A record that cannot become a lead; ``str()`` is the reason shown in the report."""


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which cell feeds which lead field, and which cells become custom fields."""

    width: int
    fields: dict[str, int]
    custom: tuple[tuple[int, str], ...]

    def as_json(self, header: list[str]) -> dict[str, str]:
        """The mapping actually used, header name to target (stored on the import for the record)."""
        out = {header[i]: name for name, i in self.fields.items()}
        out.update({header[i]: CUSTOM_PREFIX + key for i, key in self.custom})
        return out


def build_column_map(
    header: list[str], mapping: Mapping[str, str | None] | None = None, *, unmapped: str = "custom"
) -> ColumnMap:
    """Map ``header`` to lead fields; ``mapping`` (header name -> field, ``custom:<key>`` or ``ignore``) wins.

    Raises:
        HeaderError: too many or duplicate columns, unknown mapping targets, no email or phone column.
    """
    errors: list[dict[str, str]] = []
    names = [h.strip().removeprefix("\ufeff") for h in header]
    if len(names) > MAX_COLUMNS:
        raise HeaderError([{"field": "file", "message": f"The file has {len(names)} columns; at most {MAX_COLUMNS}."}])
    seen: dict[str, str] = {}
    for name in names:
        if _SUSPECT.search(name):
            errors.append({"field": "file", "message": "The header row has bytes that are not valid text."})
            break
        if len(name) > MAX_HEADER_NAME:
            errors.append({"field": "file", "message": "A column name is longer than 200 characters."})
        folded = name.casefold()
        if folded and folded in seen:
            errors.append({"field": "file", "message": f"The column {name!r} appears more than once."})
        seen[folded] = name
    given = {k.strip().casefold(): v for k, v in (mapping or {}).items()}
    for source in given:
        if source not in seen:
            errors.append({"field": "mapping", "message": f"The mapping names a column the file lacks: {source!r}."})
    fields: dict[str, int] = {}
    custom: list[tuple[int, str]] = []
    for index, name in enumerate(names):
        if not name:
            continue
        target = given.get(name.casefold(), _SYNONYMS.get(_key(name)))
        if target is None:
            target = IGNORE if unmapped == IGNORE else CUSTOM_PREFIX + name
        if target == IGNORE:
            continue
        if target.startswith(CUSTOM_PREFIX):
            key = target[len(CUSTOM_PREFIX) :].strip()[:100]
            if key:
                custom.append((index, key))
            continue
        if target not in FIELDS:
            errors.append({"field": "mapping", "message": f"Unknown target field {target!r} for column {name!r}."})
            continue
        if target in fields:
            errors.append({"field": "mapping", "message": f"Two columns map to {target!r}; keep one."})
            continue
        fields[target] = index
    if "email" not in fields and "phone" not in fields and not errors:
        errors.append({"field": "file", "message": "The file needs an email or a phone column (see `mapping`)."})
    if errors:
        raise HeaderError(errors)
    return ColumnMap(width=len(names), fields=fields, custom=tuple(custom))


class LeadRow(NamedTuple):
    """A valid record, normalised: also the row COPYed into the staging table, field for field."""

    row_number: int
    email: str | None
    email_normalized: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    timezone: str | None
    custom_fields: str
    consent_email: bool
    consent_sms: bool
    consent_voice: bool
    consent_source: str | None
    timezone_inferred: str | None = None

    @property
    def key(self) -> str:
        """Identity inside an organization: the normalised email, else the phone."""
        return self.email_normalized or f"tel:{self.phone}"


def _flag(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RowError(f"{name}: {value[:40]!r} is not yes or no.")


def _text(value: str, name: str, limit: int = MAX_TEXT) -> str | None:
    text = _CONTROL.sub(" ", value).strip() if _CONTROL.search(value) else value.strip()
    if len(text) > limit:
        raise RowError(f"{name} is longer than {limit} characters.")
    return text or None


class RowParser:
    """Turn CSV records into :class:`LeadRow` objects or raise :class:`RowError` with a reason.

    Most records of a real file are clean text; one search over the whole record decides that,
    and a clean record then skips every per-cell check for control characters and bad bytes.
    """

    def __init__(self, columns: ColumnMap, validator: ContactValidator) -> None:
        self.columns = columns
        self.validator = validator
        width = columns.width

        def index(name: str) -> int:  # an unmapped field reads the (blank) cell past the last column
            return columns.fields.get(name, width)

        self._email, self._phone, self._tz = index("email"), index("phone"), index("timezone")
        self._texts = tuple((name, index(name)) for name in TEXT_FIELDS)
        self._flags = tuple(
            (name, index(name)) if name in columns.fields else None
            for name in ("consent_email", "consent_sms", "consent_voice")
        )
        self._source = columns.fields.get("consent_source")
        self._custom = tuple((i, key, json.dumps(key, ensure_ascii=False)) for i, key in columns.custom)
        self._padding = [[""] * (width + 1 - n) for n in range(width + 1)]

    def parse(self, row_number: int, cells: list[str]) -> LeadRow:
        """Validate and normalise one record."""
        if _UNCLEAN.search("".join(cells)) is not None:
            return self._parse(row_number, self._cleaned(cells), clean=False)
        return self._parse(row_number, cells, clean=True)

    @staticmethod
    def _cleaned(cells: list[str]) -> list[str]:
        joined = "\x1f".join(cells)
        if _SUSPECT.search(joined):
            if LINE_TOO_LONG in joined:
                raise RowError("The line is longer than 1 MB.")
            if any("\ud800" <= ch <= "\udfff" for ch in joined):
                raise RowError("The row has bytes that are not valid UTF-8 or Windows-1252 text.")
            return [c.replace("\x00", "") for c in cells]
        return cells

    def _parse(self, row_number: int, cells: list[str], *, clean: bool) -> LeadRow:
        count = len(cells)
        width = self.columns.width
        if count > width:
            if any(c.strip() for c in cells[width:]):
                raise RowError(f"The row has {count} cells but the header has {width} columns.")
        else:
            cells = cells + self._padding[count]
        email = email_normalized = phone = tz = inferred = None
        raw_email, raw_phone = cells[self._email].strip(), cells[self._phone].strip()
        if not raw_email and not raw_phone:
            raise RowError("The row has neither an email nor a phone.")
        try:
            if raw_email:
                email, email_normalized = self.validator.email(raw_email)
        except InvalidContact as exc:
            raise RowError(f"email: {exc}") from exc
        try:
            if raw_phone:
                phone, inferred = self.validator.phone(raw_phone)
        except InvalidContact as exc:
            raise RowError(f"phone: {exc}") from exc
        if raw_tz := cells[self._tz].strip():
            try:
                tz = normalize_timezone(raw_tz)
            except InvalidContact as exc:
                raise RowError(f"timezone: {exc}") from exc
        if clean:
            texts: list[str | None] = []
            for name, index in self._texts:
                text = cells[index].strip()
                if len(text) > MAX_TEXT:
                    raise RowError(f"{name} is longer than {MAX_TEXT} characters.")
                texts.append(text or None)
        else:
            texts = [_text(cells[index], name) for name, index in self._texts]
        custom = "{}"
        if self._custom:
            parts: list[str] = []
            plain = clean
            for index, key, key_json in self._custom:
                if index < count and (value := cells[index].strip()):
                    if len(value) > MAX_CUSTOM_VALUE:
                        raise RowError(f"{key} is longer than {MAX_CUSTOM_VALUE} characters.")
                    if plain and ('"' in value or "\\" in value):
                        plain = False
                    parts.append(f'{key_json}: "{value}"' if plain else "")
                    parts.append(key)
                    parts.append(value)
            if parts:
                # A clean value without quotes or backslashes is its own JSON string body.
                custom = (
                    "{" + ", ".join(parts[0::3]) + "}"
                    if plain
                    else _to_json(dict(zip(parts[1::3], parts[2::3], strict=True)))
                )
        consent = [False if f is None else _flag(cells[f[1]], f[0]) for f in self._flags]
        return LeadRow(
            row_number,
            email,
            email_normalized,
            phone,
            texts[0],
            texts[1],
            texts[2],
            texts[3],
            tz,
            custom,
            consent[0],
            consent[1],
            consent[2],
            _text(cells[self._source], "consent_source") if self._source is not None else None,
            inferred,
        )
