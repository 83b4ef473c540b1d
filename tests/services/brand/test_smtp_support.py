"""The loopback SMTP server other tests lean on: it records, authenticates and fails on cue."""

from __future__ import annotations

import smtplib
import time

import pytest

from tests.support.smtp import SmtpServer, silent_server, unused_port

MESSAGE = b"From: bot@acme.test\r\nTo: lead@example.test\r\nSubject: hi\r\n\r\nhello\r\n"


def test_records_envelope_raw_data_and_login() -> None:
    with SmtpServer(credentials={"bot@acme.test": "s3cret-pass"}) as smtp:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
            client.login("bot@acme.test", "s3cret-pass")
            client.sendmail("bot@acme.test", ["lead@example.test"], MESSAGE)
        [message] = smtp.wait_for_messages(1)
    assert message.mail_from == "bot@acme.test"
    assert message.rcpt_tos == ["lead@example.test"]
    assert message.data.replace(b"\r\n", b"\n") == MESSAGE.replace(b"\r\n", b"\n")
    assert message.login == "bot@acme.test"
    assert message.parsed()["Subject"] == "hi"
    assert [(a.login, a.success) for a in smtp.auth_attempts] == [("bot@acme.test", True)]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_wrong_or_refused_logins_get_535(mechanism: str) -> None:
    with SmtpServer(credentials={"u": "right"}) as smtp, smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
        client.ehlo()
        client.user, client.password = "u", "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
        assert refused.value.smtp_code == 535
    with SmtpServer(credentials={"u": "right"}, refuse_logins=True) as smtp:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client, pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("u", "right")
        assert smtp.auth_attempts[0].success is False


def test_scripted_replies_apply_the_given_number_of_times() -> None:
    with SmtpServer() as smtp, smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
        smtp.reply_at("RCPT", "550 5.1.1 No such user")
        smtp.reply_at("DATA", "451 4.3.0 Try again later")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("a@acme.test", ["b@example.test"], MESSAGE)
        with pytest.raises(smtplib.SMTPDataError) as temp:
            client.sendmail("a@acme.test", ["b@example.test"], MESSAGE)
        assert temp.value.smtp_code == 451
        assert smtp.messages == []
        client.sendmail("a@acme.test", ["b@example.test"], MESSAGE)
        assert len(smtp.wait_for_messages(1)) == 1


def test_mail_stage_can_be_refused() -> None:
    with SmtpServer() as smtp, smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
        smtp.reply_at("MAIL", "451 4.7.0 Too busy", times=None)
        for _ in range(2):
            with pytest.raises(smtplib.SMTPSenderRefused):
                client.sendmail("a@acme.test", ["b@example.test"], MESSAGE)


def test_drop_after_data_keeps_the_message_but_the_client_never_hears_250() -> None:
    with SmtpServer() as smtp:
        smtp.drop_after_data()
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=5)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.sendmail("a@acme.test", ["b@example.test"], MESSAGE)
        client.close()
        assert len(smtp.wait_for_messages(1)) == 1


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_modes_with_a_trusted_self_signed_certificate(security: str) -> None:
    with SmtpServer(credentials={"u": "pw"}, security=security) as smtp:  # type: ignore[arg-type]
        if security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=5, context=smtp.client_ssl_context())
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=5)
            client.ehlo()
            assert not client.has_extn("auth")  # AUTH only after STARTTLS
            client.starttls(context=smtp.client_ssl_context())
        assert client.login("u", "pw")[0] == 235
        client.quit()


def test_servers_that_are_not_there_fail_fast() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.1", unused_port(), timeout=1)
    with silent_server() as port, pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        smtplib.SMTP("127.0.0.1", port, timeout=0.3)
    assert time.monotonic() - started < 3
