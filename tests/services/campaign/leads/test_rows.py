"""The row parser and the CSV reader under fuzzing, the email fast path, and formula neutralisation."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import string

import phonenumbers
import phonenumbers.timezone
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.suppression import InvalidContact
from services.campaign.leads.contact import ContactValidator
from services.campaign.leads.csvfile import FileRejected, csv_line, detect_format, neutralise, open_rows
from services.campaign.leads.rows import HeaderError, RowError, RowParser, build_column_map

HEADER = ["email", "phone", "first_name", "company", "timezone", "consent_sms", "notes"]
PARSER = RowParser(build_column_map(HEADER), ContactValidator("US"))
cells = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from('\x00\udc81,;"\r\n\t=+-@'),
    max_size=60,
)


@given(st.lists(cells, max_size=10))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_the_row_parser_never_raises_anything_but_a_row_error(row: list[str]) -> None:
    reason = ""
    try:
        parsed = PARSER.parse(2, row)
    except RowError as exc:
        reason, parsed = str(exc), None
    if parsed is None:
        assert reason
    else:
        assert parsed.email or parsed.phone
        assert "\x00" not in (parsed.first_name or "") + (parsed.company or "")


@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None)
def test_the_file_reader_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    try:
        fmt = detect_format(data)
        _, records = open_rows(io.BytesIO(data), fmt)
        rows = list(records)
    except FileRejected:
        return
    try:
        parser = RowParser(
            build_column_map(rows[0]) if isinstance(rows[0], list) else PARSER.columns, ContactValidator()
        )
    except HeaderError:
        return
    for number, record in enumerate(rows[1:], start=2):
        if isinstance(record, list):
            with contextlib.suppress(RowError):
                parser.parse(number, record)


local = st.text(
    alphabet=st.sampled_from(string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-.éüßøÅñ")
    | st.characters(min_codepoint=0x80, max_codepoint=0x2FFF),
    min_size=1,
    max_size=70,
) | st.sampled_from(["Postmaster", "ABUSE", "José.García", "e\u0301te", "a..b", ".a", "a."])
domain = st.text(alphabet=string.ascii_letters + string.digits + "-.é", min_size=1, max_size=40) | st.sampled_from(
    ["example.com", "EXAMPLE.com", "xn--bcher-kva.de", "bücher.de", "localhost", "a.test", "b.invalid"]
)


@given(local, domain)
@settings(max_examples=1500, deadline=None)
def test_the_email_fast_path_agrees_with_email_validator(user: str, host: str) -> None:
    address = f"{user}@{host}"
    try:
        expected = validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        expected = None
    try:
        got = ContactValidator().email(address)[0]
    except InvalidContact:
        got = None
    assert got == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1+1", "'+1+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("plain", "plain"),
        (None, ""),
        (42, "42"),
    ],
)
def test_neutralise(value: object, expected: str) -> None:
    assert neutralise(value) == expected


def test_csv_line_quotes_per_rfc_4180_after_neutralising() -> None:
    line = csv_line(['=1,"2"', "a\r\nb", "ok"])
    assert line.endswith("\r\n")
    assert next(csv.reader(io.StringIO(line))) == ['\'=1,"2"', "a\r\nb", "ok"]


def test_header_rules() -> None:
    with pytest.raises(HeaderError, match="more than once"):
        build_column_map(["Email", "email"])
    with pytest.raises(HeaderError, match="email or a phone"):
        build_column_map(["name"])
    with pytest.raises(HeaderError, match="Unknown target"):
        build_column_map(["a", "b"], {"a": "email", "b": "salary"})
    columns = build_column_map(["\ufeffE-mail", "Mobile Phone", "Extra", "Skip"], {"Skip": "ignore"})
    assert columns.fields == {"email": 0, "phone": 1}
    assert columns.custom == ((2, "Extra"),)


def test_phone_validation_and_time_zone_inference() -> None:
    v = ContactValidator("GB")
    assert v.phone("020 7946 0958") == ("+442079460958", "Europe/London")
    assert v.phone("+1 800 555 0199")[1] is None  # toll-free: no single zone
    with pytest.raises(InvalidContact):
        v.phone("+1 555")


SHARED = ContactValidator("FR")  # one cache across examples, as in an import


@given(st.from_regex(r"\+1[2-9][0-9]{9}", fullmatch=True) | st.sampled_from(["+12125550100", "+18005550199"]))
@settings(max_examples=1500, deadline=None)
def test_the_nanp_fast_path_agrees_with_phonenumbers(raw: str) -> None:
    number = phonenumbers.parse(raw, "US")
    valid = phonenumbers.is_valid_number(number)
    try:
        e164, zone = SHARED.phone(raw)
    except InvalidContact:
        assert not valid
        return
    assert valid
    assert e164 == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    zones = phonenumbers.timezone.time_zones_for_number(number)
    if len(zones) == 1 and zones[0] != "Etc/Unknown":
        assert zone == zones[0]
    # Otherwise phonenumbers only knows the country (a non-geographic type such as a Bermuda
    # mobile); the area code's single zone, when the data has one, is kept.


def test_the_compiled_nanp_patterns_agree_with_phonenumbers_across_every_area_code() -> None:
    validator = ContactValidator("US")
    checked = valid_seen = 0
    for area in range(200, 1000):
        for exchange in range(200, 1000, 53):
            for line in ("0100", "4567", "9999"):
                raw = f"+1{area}{exchange}{line}"
                number = phonenumbers.parse(raw, "US")
                expected = phonenumbers.is_valid_number(number)
                try:
                    got = validator.phone(raw)[0] == raw
                except InvalidContact:
                    got = False
                assert got == expected, raw
                checked += 1
                valid_seen += expected
    assert checked == 800 * 16 * 3
    assert 0 < valid_seen < checked  # both answers were exercised


@given(st.dictionaries(st.sampled_from(["industry", "size", 'note "q"', "é"]), cells, max_size=4))
@settings(max_examples=400, deadline=None)
def test_custom_fields_are_the_json_of_the_non_blank_cells(extra: dict[str, str]) -> None:
    header = ["email", *extra]
    parser = RowParser(build_column_map(header), ContactValidator("US"))
    try:
        row = parser.parse(2, ["ann@example.com", *extra.values()])
    except RowError:
        return
    values = {k: v.replace("\x00", "").strip() for k, v in extra.items()}  # NUL bytes are dropped
    assert json.loads(row.custom_fields) == {k: v for k, v in values.items() if v}
