"""secretbox: AES-GCM sealing under NODEDROP_SECRET_KEY; every failure is an error, never
garbage, and no message or repr carries a key."""

from __future__ import annotations

import pytest

from nodedrop.platform.db.credentials import open_secret, seal_secret
from nodedrop.platform.secretbox import (
    DecryptError,
    SecretKey,
    SecretKeyError,
    opens_check,
    sealed_check,
)


def test_a_sealed_value_opens_under_its_key_and_context_only() -> None:
    key = SecretKey.generate()
    sealed = key.seal(b"hunter2", "credential:a")
    assert b"hunter2" not in sealed
    assert key.open(sealed, "credential:a") == b"hunter2"
    with pytest.raises(DecryptError):
        key.open(sealed, "credential:b")  # copied into another row
    with pytest.raises(DecryptError):
        SecretKey.generate().open(sealed, "credential:a")


def test_every_seal_differs_and_a_changed_byte_is_refused() -> None:
    key = SecretKey.generate()
    first, second = key.seal(b"x", "c"), key.seal(b"x", "c")
    assert first != second  # a fresh nonce each time
    for index in range(len(first)):
        tampered = bytearray(first)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptError):
            key.open(bytes(tampered), "c")
    with pytest.raises(DecryptError):
        key.open(first[:10], "c")


def test_a_key_round_trips_through_its_text_and_hides_in_its_repr() -> None:
    key = SecretKey.generate()
    again = SecretKey.parse(key.text())
    assert again == key
    assert again.open(key.seal(b"v", "c"), "c") == b"v"
    assert SecretKey.parse(key.text().rstrip("=")) == key  # padding optional
    for shown in (repr(key), str(key), f"{key}"):
        assert key.text() not in shown
        assert key.fingerprint in shown


@pytest.mark.parametrize("text", ["", "not base64 !!", "c2hvcnQ=", "A" * 100])
def test_a_malformed_key_is_refused_naming_the_setting_not_the_value(text: str) -> None:
    with pytest.raises(SecretKeyError, match="NODEDROP_SECRET_KEY") as error:
        SecretKey.parse(text)
    if text:
        assert text not in str(error.value)


def test_the_check_value_tells_the_right_key_from_another() -> None:
    key = SecretKey.generate()
    check = sealed_check(key)
    assert opens_check(key, check)
    assert not opens_check(SecretKey.generate(), check)
    assert not opens_check(key, b"garbage")


def test_a_credentials_secret_is_bound_to_its_id() -> None:
    key = SecretKey.generate()
    sealed = seal_secret(key, "cred-1", {"token": "t0k3n"})
    assert open_secret(key, "cred-1", sealed) == {"token": "t0k3n"}
    with pytest.raises(DecryptError):
        open_secret(key, "cred-2", sealed)


def test_the_settings_refuse_a_malformed_key_naming_the_variable_not_the_value() -> None:
    from nodedrop.platform.settings import SecretKeySettings, SettingsError

    key = SecretKey.generate()
    assert SecretKeySettings.from_env({"NODEDROP_SECRET_KEY": key.text()}).credentials_key == key
    assert SecretKeySettings.from_env({}).credentials_key is None
    with pytest.raises(SettingsError, match="NODEDROP_SECRET_KEY") as error:
        SecretKeySettings.from_env({"NODEDROP_SECRET_KEY": "c2hvcnQtYnV0LXNlY3JldA"})
    assert "c2hvcnQtYnV0LXNlY3JldA" not in str(error.value)
    assert key.text() not in repr(SecretKeySettings.from_env({"NODEDROP_SECRET_KEY": key.text()}))
