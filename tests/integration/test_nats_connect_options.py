"""nodedrop.platform.natsconnect against real nats-servers: a server list whose first server is
down, credentials given as connect options (not in a URL), and a token-authenticated server.

Each server listens on 127.0.0.1, on a free port, and is stopped at the end of the module.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nats.errors
import pytest

from nodedrop.embedded import EmbeddedNats
from nodedrop.embedded.postgres import free_port
from nodedrop.platform import natsauth, natsconnect
from nodedrop.platform.natsconnect import NatsSettings
from nodedrop.runner.settings import RunnerSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

#: Not URL-safe: it could not travel inside a server URL unescaped.
ADMIN_PASSWORD = f"{secrets.token_urlsafe(12)} @:/#%?"
TOKEN = secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def password_server() -> Iterator[EmbeddedNats]:
    """nats-server requiring nodedrop's users (as ``nodedrop up`` starts it)."""
    passwords = {**natsauth.generate_passwords(), natsauth.ADMIN: ADMIN_PASSWORD}
    with (
        tempfile.TemporaryDirectory(prefix="nodedrop-natsconnect-") as directory,
        EmbeddedNats(directory, port=0, passwords=passwords) as server,
    ):
        yield server


@pytest.fixture(scope="module")
def token_server() -> Iterator[EmbeddedNats]:
    """nats-server requiring a token."""
    with tempfile.TemporaryDirectory(prefix="nodedrop-natsconnect-token-") as directory:
        config = Path(directory) / "token.conf"
        config.write_text(
            f'host: 127.0.0.1\njetstream {{}}\nauthorization {{ token: "{TOKEN}" }}\n'
        )
        with EmbeddedNats(Path(directory) / "data", port=0, config=config) as server:
            yield server


def dead_url() -> str:
    """A URL where nothing listens."""
    return f"nats://127.0.0.1:{free_port()}"


async def test_the_first_server_dead_the_second_takes_the_credentials_as_options(
    password_server: EmbeddedNats,
) -> None:
    dead = dead_url()
    config = RunnerSettings.from_env(
        {
            "NODEDROP_NATS_URL": f"{dead}, {password_server.url}",
            "NODEDROP_NATS_USER": natsauth.ADMIN,
            "NODEDROP_NATS_PASSWORD": ADMIN_PASSWORD,
        }
    )
    assert config.nats_settings().servers[0] == dead
    errors: list[Exception] = []

    async def on_error(error: Exception) -> None:
        errors.append(error)

    nc = await natsconnect.connect(
        config.nats_settings(),
        name="nodedrop-test",
        dont_randomize=True,  # the dead one first
        connect_timeout=2,
        reconnect_time_wait=0.05,
        error_cb=on_error,
    )
    try:
        assert nc.is_connected
        assert nc.connected_url is not None
        assert nc.connected_url.port == password_server.port
        assert nc.connected_url.username is None  # not from a URL
        assert any(isinstance(error, OSError) for error in errors), errors  # tried the dead one
        reply = await nc.request("$JS.API.INFO", b"", timeout=5)  # the admin may do this
        assert b"account_info_response" in reply.data
    finally:
        await nc.close()


async def test_no_or_wrong_credentials_are_refused(password_server: EmbeddedNats) -> None:
    anonymous = NatsSettings.from_env({"NODEDROP_NATS_URL": password_server.url})
    wrong = NatsSettings.from_env(
        {
            "NODEDROP_NATS_URL": password_server.url,
            "NODEDROP_NATS_USER": natsauth.ADMIN,
            "NODEDROP_NATS_PASSWORD": "wrong",
        }
    )
    for settings in (anonymous, wrong):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await natsconnect.connect(settings, name="nodedrop-test", allow_reconnect=False)


async def test_a_token_server(token_server: EmbeddedNats) -> None:
    settings = NatsSettings.from_env(
        {"NODEDROP_NATS_URL": f"{dead_url()},{token_server.url}", "NODEDROP_NATS_TOKEN": TOKEN}
    )
    nc = await natsconnect.connect(
        settings,
        name="nodedrop-test",
        dont_randomize=True,
        connect_timeout=2,
        reconnect_time_wait=0.05,
        error_cb=_ignore,
    )
    try:
        assert nc.connected_url is not None
        assert nc.connected_url.port == token_server.port
        await nc.flush(timeout=5)
    finally:
        await nc.close()
    wrong = NatsSettings(servers=(token_server.url,), token="not-the-token")
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await natsconnect.connect(wrong, name="nodedrop-test", allow_reconnect=False)


async def _ignore(error: Exception) -> None:
    pass
