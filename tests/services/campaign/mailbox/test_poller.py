"""The mailbox poller against a real dovecot: IDLE pickup, exactly once across a kill, UIDVALIDITY, bad logins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from redis import Redis
from sqlalchemy import Engine

from libs.crypto import SecretBox
from libs.db.session import system_session
from libs.queue import QueueName, get_queue
from services.campaign.mailbox.poller import Poller
from tests.services.campaign.mailbox.conftest import PASSWORD, Mailroom, mail_env, make_mailroom, wait_for
from tests.support.imap import DovecotServer

ROOT = Path(__file__).resolve().parents[4]


def queued_job_ids(redis: Redis) -> list[str]:
    return list(get_queue(QueueName.INBOUND, redis).get_job_ids())


def test_new_mail_while_idle_is_stored_within_seconds(
    mailroom: Mailroom, start_poller: Callable[..., Poller], redis: Redis
) -> None:
    poller = start_poller(mail_poll_interval=600.0)  # a poll would come far too late: only IDLE can be this fast
    wait_for(lambda: (mailroom.mailbox() or {}).get("last_polled_at"))
    time.sleep(0.5)  # the reader is in IDLE now
    sent = time.monotonic()
    mailroom.imap.append("jane@acme.example", mailroom.reply(1))
    wait_for(lambda: mailroom.events() == 1, timeout=10)
    elapsed = time.monotonic() - sent
    print(f"IDLE pickup: {elapsed:.2f} s")
    assert elapsed < 5
    row = mailroom.mailbox()
    assert row["last_uid"] == 1
    assert row["lease_owner"] == poller.owner
    event_id = mailroom.count("SELECT id FROM inbound_events WHERE message_id = :m", m=mailroom.messages[0])
    assert queued_job_ids(redis) == [f"inbound-{event_id}"]


def test_a_server_without_idle_is_polled(
    imap_no_idle: DovecotServer, engine: Engine, box: SecretBox, start_poller: Callable[..., Poller]
) -> None:
    room = make_mailroom(imap_no_idle, engine, box)
    start_poller()
    wait_for(lambda: (room.mailbox() or {}).get("last_polled_at"))
    imap_no_idle.append("jane@acme.example", room.reply(1), room.reply(2, to=1))
    wait_for(lambda: room.events() == 2, timeout=10)
    assert room.mailbox()["last_uid"] == 2


def _poller(database_url: str, redis_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **mail_env(database_url, redis_url), "SDR_LOG_JSON": "true"}
    return subprocess.Popen(  # a real process, so that it can be killed without a chance to clean up
        [sys.executable, "-m", "libs.cli", "mail"], cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def _fed_uids(log: Path) -> list[int]:
    uids = []
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "mailbox_message":
            uids.append(int(entry["uid"]))
    return uids


def test_a_poller_killed_mid_burst_and_restarted_stores_each_of_200_messages_once(
    mailroom: Mailroom, database_url: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    burst = [mailroom.reply(n, to=n) for n in range(200)]
    mailroom.imap.append_all("jane@acme.example", burst[:100])
    first = _poller(database_url, redis_url, tmp_path / "first.log")
    try:
        mailroom.imap.append_all("jane@acme.example", burst[100:])
        wait_for(lambda: mailroom.events() >= 40, timeout=60)
    finally:
        first.send_signal(signal.SIGKILL)  # no chance to give the lease back or finish a transaction
        first.wait(timeout=10)
    cut = mailroom.mailbox()["last_uid"]
    stored_before = mailroom.events()
    assert 40 <= cut < 200, cut
    assert stored_before == cut  # the cursor and the events moved together
    second = _poller(database_url, redis_url, tmp_path / "second.log")
    try:
        wait_for(lambda: mailroom.mailbox()["last_uid"] == 200, timeout=90)
        time.sleep(1.0)  # anything fed twice would show up now
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    assert mailroom.events() == 200
    assert mailroom.count("SELECT count(DISTINCT dedupe_key) FROM inbound_events WHERE source = 'email'") == 200
    resumed = _fed_uids(tmp_path / "second.log")
    assert resumed == list(range(cut + 1, 201))  # resumed after the cursor: nothing skipped, nothing re-read
    events = mailroom.count("SELECT array_agg('inbound-' || id::text) FROM inbound_events")
    jobs = queued_job_ids(redis)
    assert len(jobs) == len(set(jobs))
    assert set(jobs) == set(events)
    mailbox = mailroom.mailbox()
    assert mailbox["lease_owner"] is None  # the clean stop gave the lease back


def test_a_new_uidvalidity_starts_the_cursor_over_and_dedupe_keeps_each_email_once(
    imap: DovecotServer, engine: Engine, box: SecretBox, start_poller: Callable[..., Poller]
) -> None:
    first_validity = imap.recreate_folder("jane@acme.example", "Replies")
    room = make_mailroom(imap, engine, box, folder="Replies")
    imap.append("jane@acme.example", room.reply(1), room.reply(2, to=1), room.reply(3, to=2), folder="Replies")
    poller = start_poller()
    wait_for(lambda: room.events() == 3)
    wait_for(lambda: (room.mailbox() or {}).get("last_uid") == 3)
    assert room.mailbox()["uidvalidity"] == first_validity
    poller.close()
    wait_for(lambda: room.mailbox()["lease_owner"] is None)

    second_validity = imap.recreate_folder("jane@acme.example", "Replies")
    assert second_validity != first_validity
    # The recreated folder holds one email already stored and two new ones.
    imap.append("jane@acme.example", room.reply(2, to=1), room.reply(4), room.reply(5, to=1), folder="Replies")
    start_poller()
    wait_for(lambda: room.mailbox()["uidvalidity"] == second_validity and room.mailbox()["last_uid"] == 3)
    assert room.events() == 5


def test_a_refused_login_pauses_the_mailbox_with_the_reason_and_is_not_retried(
    imap: DovecotServer, engine: Engine, box: SecretBox, start_poller: Callable[..., Poller]
) -> None:
    room = make_mailroom(imap, engine, box, password="not-the-password")
    poller = start_poller()
    paused = wait_for(lambda: (row := room.mailbox()) and row["state"] == "paused" and row)
    assert "AUTHENTICATIONFAILED" in paused["paused_reason"]
    assert "not-the-password" not in paused["paused_reason"]
    assert paused["paused_at"] is not None
    assert paused["lease_owner"] is None
    time.sleep(2.0)  # several discovery passes
    assert imap.log().count("auth failed") == 1
    assert not any(thread.is_alive() for thread in poller.readers.values())
    assert room.mailbox()["state"] == "paused"


def test_the_job_of_the_last_stored_email_is_queued_again_when_it_was_lost(
    mailroom: Mailroom, start_poller: Callable[..., Poller], redis: Redis
) -> None:
    mailroom.imap.append("jane@acme.example", mailroom.reply(1), mailroom.reply(2, to=1))
    poller = start_poller()
    wait_for(lambda: (mailroom.mailbox() or {}).get("last_uid") == 2)
    poller.close()
    wait_for(lambda: mailroom.mailbox()["lease_owner"] is None)
    last_event = mailroom.mailbox()["last_event_id"]
    assert last_event is not None
    redis.flushdb()  # as if the poller had died between the commit and the enqueue
    start_poller()
    wait_for(lambda: queued_job_ids(redis))
    assert queued_job_ids(redis) == [f"inbound-{last_event}"]
    assert mailroom.events() == 2


def test_a_mailbox_on_a_private_address_is_paused_when_private_hosts_are_not_allowed(
    mailroom: Mailroom, start_poller: Callable[..., Poller]
) -> None:
    start_poller(mail_allow_private_hosts=False)
    paused = wait_for(lambda: (row := mailroom.mailbox()) and row["state"] == "paused" and row)
    assert "not public (loopback)" in paused["paused_reason"]
    assert "auth failed" not in mailroom.imap.log()
    assert mailroom.events() == 0


def test_a_resumed_mailbox_is_read_again_with_its_new_password(
    imap: DovecotServer, engine: Engine, box: SecretBox, start_poller: Callable[..., Poller]
) -> None:
    room = make_mailroom(imap, engine, box, password="not-the-password")
    start_poller()
    wait_for(lambda: (row := room.mailbox()) and row["state"] == "paused")
    imap.append("jane@acme.example", room.reply(1))
    time.sleep(1.0)
    assert room.events() == 0  # paused: nobody reads it
    with system_session(engine) as s:  # what a new password and POST .../mailbox/resume leave in the tables
        s.execute(
            sa.text("UPDATE senders SET imap_password_encrypted = :p WHERE id = :s"),
            {"p": box.encrypt(PASSWORD), "s": room.sender_id},
        )
        s.execute(
            sa.text("UPDATE mailboxes SET state = 'active', paused_reason = NULL WHERE sender_id = :s"),
            {"s": room.sender_id},
        )
    wait_for(lambda: room.events() == 1)
    assert room.mailbox()["last_error"] is None


def test_mail_about_none_of_our_messages_moves_the_cursor_and_stores_nothing(
    mailroom: Mailroom, start_poller: Callable[..., Poller]
) -> None:
    newsletter = b"From: news@example.org\r\nSubject: Weekly\r\nMessage-ID: <n1@example.org>\r\n\r\nHello.\r\n"
    mailroom.imap.append("jane@acme.example", newsletter, mailroom.reply(2))
    start_poller()
    wait_for(lambda: (mailroom.mailbox() or {}).get("last_uid") == 2)
    assert mailroom.events() == 1
    assert mailroom.count("SELECT dedupe_key FROM inbound_events").startswith("<reply-2@example.com>")


def test_two_pollers_share_a_mailbox_by_lease_and_store_each_email_once(
    mailroom: Mailroom, start_poller: Callable[..., Poller]
) -> None:
    mailroom.imap.append_all("jane@acme.example", [mailroom.reply(n, to=n) for n in range(30)])
    first, second = start_poller(), start_poller()
    wait_for(lambda: (mailroom.mailbox() or {}).get("last_uid") == 30)
    owner = mailroom.mailbox()["lease_owner"]
    assert owner in (first.owner, second.owner)
    reading = [p for p in (first, second) if any(t.is_alive() for t in p.readers.values())]
    assert [p.owner for p in reading] == [owner]  # the other one never took the leased mailbox
    mailroom.imap.append("jane@acme.example", mailroom.reply(99))
    wait_for(lambda: mailroom.events() == 31)
    assert mailroom.mailbox()["lease_owner"] == owner
