"""SecretBox: AES-GCM tokens that name their key, refuse tampering and survive a key rotation."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from libs.crypto import SecretBox, SecretBoxError, last4
from libs.settings import CommonSettings


def test_round_trip_hides_the_plaintext() -> None:
    box = SecretBox(["k1"])
    token = box.encrypt("hunter2-password")
    assert "hunter2" not in token
    assert token.startswith(f"v1.{box.primary_kid}.")
    assert box.decrypt(token) == "hunter2-password"


def test_each_encryption_uses_a_fresh_nonce() -> None:
    box = SecretBox(["k1"])
    assert box.encrypt("same") != box.encrypt("same")


def test_unicode_and_empty_secrets_round_trip() -> None:
    box = SecretBox(["k1"])
    for secret in ("", "pässwörd ✓", "x" * 5000):
        assert box.decrypt(box.encrypt(secret)) == secret


def test_a_tampered_token_does_not_open() -> None:
    box = SecretBox(["k1"])
    version, kid, body = box.encrypt("secret-value").split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-1] ^= 0x01
    forged = f"{version}.{kid}.{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"
    with pytest.raises(SecretBoxError):
        box.decrypt(forged)


@pytest.mark.parametrize(
    "token", ["", "garbage", "v1.abc", "v2.x.y", "v1.00000000.AAAA", "v1.{kid}.!!!", "v1.{kid}.AAAA"]
)
def test_malformed_tokens_raise_our_error(token: str) -> None:
    box = SecretBox(["k1"])
    with pytest.raises(SecretBoxError):
        box.decrypt(token.replace("{kid}", box.primary_kid))


def test_another_key_cannot_open_a_token() -> None:
    token = SecretBox(["k1"]).encrypt("secret-value")
    with pytest.raises(SecretBoxError, match="does not hold"):
        SecretBox(["k2"]).decrypt(token)


def test_associated_data_binds_a_token_to_its_context() -> None:
    box = SecretBox(["k1"])
    token = box.encrypt("secret-value", associated_data=b"org-a")
    assert box.decrypt(token, associated_data=b"org-a") == "secret-value"
    with pytest.raises(SecretBoxError):
        box.decrypt(token, associated_data=b"org-b")


def test_rotation_opens_old_tokens_and_reseals_them_under_the_new_key() -> None:
    old = SecretBox(["old-key"])
    token = old.encrypt("twilio-auth-token")
    rotated_box = SecretBox(["new-key", "old-key"])
    assert rotated_box.decrypt(token) == "twilio-auth-token"
    assert rotated_box.needs_rotation(token)
    fresh = rotated_box.rotate(token)
    assert rotated_box.key_id(fresh) == rotated_box.primary_kid != old.primary_kid
    assert not rotated_box.needs_rotation(fresh)
    assert rotated_box.rotate(fresh) == fresh
    # Once the old key is dropped, only re-sealed tokens open.
    new_only = SecretBox(["new-key"])
    assert new_only.decrypt(fresh) == "twilio-auth-token"
    with pytest.raises(SecretBoxError):
        new_only.decrypt(token)


def test_key_ids_do_not_reveal_the_key() -> None:
    box = SecretBox(["a-very-secret-key"])
    assert len(box.primary_kid) == 8
    assert box.primary_kid not in b"a-very-secret-key".hex()


def test_from_settings_uses_secret_key_first_and_encryption_keys_for_old_tokens() -> None:
    token = SecretBox(["retired-1"]).encrypt("smtp-pass")
    settings = CommonSettings(secret_key=SecretStr("current"), encryption_keys=SecretStr(" retired-1 , retired-2 "))
    box = SecretBox.from_settings(settings)
    assert box.primary_kid == SecretBox(["current"]).primary_kid
    assert box.decrypt(token) == "smtp-pass"


def test_a_box_needs_a_non_empty_key() -> None:
    with pytest.raises(ValueError, match="at least one"):
        SecretBox([])
    with pytest.raises(ValueError, match="empty"):
        SecretBox([""])


def test_last4_shows_only_the_tail_of_long_secrets() -> None:
    assert last4("sk-abcdefghijkl1234") == "1234"
    assert last4("short") == ""
