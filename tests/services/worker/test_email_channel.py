"""The email adapter against the loopback SMTP server: required elements, reuse, and every fault class."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.worker.channels.email import OutgoingEmail, SmtpAccount, SmtpTransaction, SmtpTransport, build_email
from services.worker.channels.outcome import Outcome
from tests.support.smtp import SmtpServer, silent_server, unused_port

EMAIL = OutgoingEmail(
    message_id="6f1c0c5e-0000-4000-8000-000000000001",
    from_address="sam@acme.example",
    from_name="Sam\r\nBcc: victim@evil.example",
    to_address="ada@engines.example",
    subject="Idea for Engines\r\nBcc: victim@evil.example\x00",
    body="Hi Ada,\n\nA short note.\n.\nStill here.",
    postal_address="1 Main St, Springfield, IL 62701, USA",
    unsubscribe_url="https://t.example/u/token123",
    brand_name="Acme",
)


@pytest.fixture
def smtp() -> SmtpServer:
    with SmtpServer() as server:
        yield server  # type: ignore[misc]


def account(server: SmtpServer) -> SmtpAccount:
    return SmtpAccount(server.host, server.port)


def send(transport: SmtpTransport, server: SmtpServer, email: OutgoingEmail = EMAIL):  # type: ignore[no-untyped-def]
    return transport.send(account(server), build_email(email), mail_from=email.from_address, rcpt_to=email.to_address)


def test_accepted_message_carries_every_required_element(smtp: SmtpServer) -> None:
    transport = SmtpTransport(timeout=5)
    result = send(transport, smtp)
    transport.close()
    assert result.outcome is Outcome.SENT
    [received] = smtp.messages
    msg = received.parsed()
    assert received.rcpt_tos == ["ada@engines.example"]
    assert msg["Message-ID"] == f"<{EMAIL.message_id}@acme.example>"
    assert (
        msg["List-Unsubscribe"]
        == "<https://t.example/u/token123>, <mailto:unsubscribe@acme.example?subject=unsubscribe>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Header injection attempts are flattened into one harmless line.
    assert msg["Bcc"] is None
    assert "\n" not in msg["Subject"]
    assert "\x00" not in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for part in (text, html):
        assert "1 Main St, Springfield, IL 62701, USA" in part
        assert "https://t.example/u/token123" in part
    assert "\r\n.\r\nStill here." in text  # a lone dot line survives SMTP dot-stuffing


def test_list_unsubscribe_is_written_as_uris_never_encoded_words(smtp: SmtpServer) -> None:
    long_url = "https://t.example/u/" + "WyJ1IiwiNmYxYzBjNWUwMDAwNDAwMDgwMDAwMDAwMDAwMDAwMDEiXQ" * 2
    transport = SmtpTransport(timeout=5)
    assert send(transport, smtp, replace(EMAIL, unsubscribe_url=long_url)).outcome is Outcome.SENT
    transport.close()
    [received] = smtp.messages
    raw = received.data.replace(b"\r\n", b"\n")
    # A receiver reads the raw field: one URI per line, folded between them (RFC 2369, RFC 8058).
    mailto = "<mailto:unsubscribe@acme.example?subject=unsubscribe>"
    assert f"\nList-Unsubscribe: <{long_url}>,\n {mailto}\nList-Unsubscribe-Post:".encode() in raw
    assert received.parsed()["List-Unsubscribe"] == f"<{long_url}>, {mailto}"


def test_non_ascii_and_long_headers_are_encoded_and_folded(smtp: SmtpServer) -> None:
    email = replace(
        EMAIL,
        from_name="Zoë Ünïcode, the sender with a display name long enough to need folding",
        subject="Idée pour Engines: " + "a subject line that goes on and on " * 4,
        body="Bonjour Ada — un mot.\n\nLine with trailing space \nEnd",
        reply_to="replies@acme.example",
    )
    transport = SmtpTransport(timeout=5)
    assert send(transport, smtp, email).outcome is Outcome.SENT
    transport.close()
    [received] = smtp.messages
    head = received.data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    msg = received.parsed()
    assert msg["From"].addresses[0].display_name == email.from_name
    assert msg["From"].addresses[0].addr_spec == "sam@acme.example"
    assert msg["Subject"] == email.subject.strip()
    assert msg["Reply-To"] == "replies@acme.example"
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith("Bonjour Ada — un mot.\n\nLine with trailing space \nEnd\n")
    assert "\n-- \nAcme, 1 Main St, Springfield, IL 62701, USA\n" in text
    assert "Bonjour Ada — un mot.</p>" in msg.get_body(("html",)).get_content()


def test_connection_is_reused_per_sender(smtp: SmtpServer) -> None:
    transport = SmtpTransport(timeout=5)
    for _ in range(3):
        assert send(transport, smtp).outcome is Outcome.SENT
    transport.close()
    assert len(smtp.messages) == 3
    assert smtp.connections == 1


def test_451_is_retryable_and_then_succeeds(smtp: SmtpServer) -> None:
    smtp.reply_at("RCPT", "451 4.3.0 Try again later")
    transport = SmtpTransport(timeout=5)
    first = send(transport, smtp)
    assert (first.outcome, first.code) == (Outcome.RETRY, "smtp_451")
    assert smtp.messages == []
    assert send(transport, smtp).outcome is Outcome.SENT
    transport.close()
    assert len(smtp.messages) == 1


def test_550_is_permanent_with_the_reason(smtp: SmtpServer) -> None:
    smtp.reply_at("RCPT", "550 5.1.1 No such user")
    transport = SmtpTransport(timeout=5)
    result = send(transport, smtp)
    transport.close()
    assert (result.outcome, result.code) == (Outcome.PERMANENT, "smtp_550")
    assert result.detail is not None
    assert "No such user" in result.detail
    assert smtp.messages == []


def test_452_at_data_end_is_retryable(smtp: SmtpServer) -> None:
    smtp.reply_at("DATA", "452 4.3.1 Insufficient storage")
    transport = SmtpTransport(timeout=5)
    result = send(transport, smtp)
    transport.close()
    assert (result.outcome, result.code) == (Outcome.RETRY, "smtp_452")
    assert smtp.messages == []


def test_connection_dropped_after_the_final_dot_is_unknown(smtp: SmtpServer) -> None:
    smtp.drop_after_data()
    transport = SmtpTransport(timeout=5)
    result = send(transport, smtp)
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "smtp_lost_after_data")
    assert len(smtp.messages) == 1  # it did arrive: resending would duplicate it
    # The broken connection is not reused: the next message opens a fresh one.
    assert send(transport, smtp).outcome is Outcome.SENT
    transport.close()
    assert smtp.connections == 2


def test_a_transaction_opened_up_to_data_and_aborted_delivers_nothing(smtp: SmtpServer) -> None:
    transport = SmtpTransport(timeout=5)
    opened = transport.begin(account(smtp), mail_from=EMAIL.from_address, rcpt_to=EMAIL.to_address)
    assert isinstance(opened, SmtpTransaction)  # the server said 354 and waits for the content
    opened.abort()
    opened.abort()  # idempotent
    # The server never saw the final ".": nothing was delivered, and the next send uses a fresh connection.
    assert send(transport, smtp).outcome is Outcome.SENT
    transport.close()
    assert [m.rcpt_tos for m in smtp.messages] == [["ada@engines.example"]]
    assert smtp.connections == 2


def test_an_envelope_refused_before_data_leaves_the_transport_free(smtp: SmtpServer) -> None:
    smtp.reply_at("RCPT", "550 5.1.1 No such user")
    transport = SmtpTransport(timeout=5)
    refused = transport.begin(account(smtp), mail_from=EMAIL.from_address, rcpt_to=EMAIL.to_address)
    assert not isinstance(refused, SmtpTransaction)
    assert (refused.outcome, refused.code) == (Outcome.PERMANENT, "smtp_550")
    assert send(transport, smtp).outcome is Outcome.SENT  # would block forever if begin kept the transport busy
    transport.close()
    assert smtp.connections == 1


def test_connection_refused_is_retryable() -> None:
    transport = SmtpTransport(timeout=2)
    result = transport.send(
        SmtpAccount("127.0.0.1", unused_port()),
        build_email(EMAIL),
        mail_from=EMAIL.from_address,
        rcpt_to=EMAIL.to_address,
    )
    assert (result.outcome, result.code) == (Outcome.RETRY, "smtp_connect")


def test_silent_server_times_out_before_handoff() -> None:
    transport = SmtpTransport(timeout=0.5)
    with silent_server() as port:
        result = transport.send(
            SmtpAccount("127.0.0.1", port), build_email(EMAIL), mail_from=EMAIL.from_address, rcpt_to=EMAIL.to_address
        )
    assert result.outcome is Outcome.RETRY


def test_auth_failure_is_permanent() -> None:
    with SmtpServer(credentials={"bot@acme.example": "right"}) as server:
        transport = SmtpTransport(timeout=5)
        result = transport.send(
            SmtpAccount(server.host, server.port, username="bot@acme.example", password="wrong"),
            build_email(EMAIL),
            mail_from=EMAIL.from_address,
            rcpt_to=EMAIL.to_address,
        )
    assert (result.outcome, result.code) == (Outcome.PERMANENT, "smtp_535")


def test_stale_kept_connection_is_replaced_before_handoff(smtp: SmtpServer) -> None:
    transport = SmtpTransport(timeout=5)
    assert send(transport, smtp).outcome is Outcome.SENT
    for conn in transport._connections.values():
        conn.sock.close()  # the server or a NAT dropped the idle connection
    assert send(transport, smtp).outcome is Outcome.SENT
    transport.close()
    assert len(smtp.messages) == 2


def test_the_footer_ends_each_sentence_and_keeps_the_link_apart(smtp: SmtpServer) -> None:
    transport = SmtpTransport(timeout=5)
    wording = "Reply STOP or unsubscribe below and we won't write again."
    for opt_out in (wording, "Reply STOP or unsubscribe below and we won't write again", None):
        assert send(transport, smtp, replace(EMAIL, opt_out_text=opt_out)).outcome is Outcome.SENT
    transport.close()
    for received in smtp.messages:
        msg = received.parsed()
        text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
        footer = text.split("\n-- \n", 1)[1].strip().splitlines()
        assert footer[0] == "Acme, 1 Main St, Springfield, IL 62701, USA"
        assert footer[1].endswith((".", "?", "!")), footer
        assert ".:" not in text
        assert "?:" not in text
        assert footer[2] == "Unsubscribe: https://t.example/u/token123"
        markup = msg.get_body(("html",)).get_content()
        assert ".:" not in markup
        assert '<a href="https://t.example/u/token123">Unsubscribe</a>' in markup
        assert footer[1].replace("'", "&#x27;") in markup
    first, second, default = (
        m.parsed().get_body(("plain",)).get_content().replace("\r\n", "\n") for m in smtp.messages
    )
    assert f"\n{wording}\n" in first
    assert f"\n{wording}\n" in second  # the missing period is added
    assert "\nNot interested? Use the link below to unsubscribe.\n" in default


def test_every_part_names_its_charset_once(smtp: SmtpServer) -> None:
    transport = SmtpTransport(timeout=5)
    assert send(transport, smtp).outcome is Outcome.SENT
    transport.close()
    [received] = smtp.messages
    raw = received.data.decode("ascii")
    types = [line for line in raw.splitlines() if line.lower().startswith("content-type: text/")]
    assert types == ['Content-Type: text/plain; charset="utf-8"', 'Content-Type: text/html; charset="utf-8"']


def test_a_sent_email_is_known_by_its_message_id_not_the_smtp_reply(smtp: SmtpServer) -> None:
    transport = SmtpTransport(timeout=5)
    result = send(transport, smtp)
    opened = transport.begin(account(smtp), mail_from=EMAIL.from_address, rcpt_to=EMAIL.to_address)
    assert isinstance(opened, SmtpTransaction)
    other = replace(
        EMAIL, message_id="6f1c0c5e-0000-4000-8000-000000000002", from_address="sam@a-much-longer-domain-name.example"
    )
    second = opened.finish(build_email(other))
    transport.close()
    assert result.outcome is Outcome.SENT
    assert result.provider_id == f"<{EMAIL.message_id}@acme.example>"
    assert second.provider_id == "<6f1c0c5e-0000-4000-8000-000000000002@a-much-longer-domain-name.example>"
    assert [m.parsed()["Message-ID"] for m in smtp.messages] == [result.provider_id, second.provider_id]


def test_a_follow_up_carries_in_reply_to_and_references(smtp: SmtpServer) -> None:
    thread = ("<a@acme.example>", "<b@acme.example>", "<c@acme.example>")
    transport = SmtpTransport(timeout=5)
    assert send(transport, smtp, replace(EMAIL, references=thread)).outcome is Outcome.SENT
    assert send(transport, smtp).outcome is Outcome.SENT
    transport.close()
    follow_up, first = (m.parsed() for m in smtp.messages)
    assert follow_up["In-Reply-To"] == "<c@acme.example>"
    assert follow_up["References"].split() == list(thread)
    assert first["In-Reply-To"] is None
    assert first["References"] is None
