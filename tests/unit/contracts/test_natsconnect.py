"""NATS connection settings from the environment (nodedrop.platform.natsconnect): the server
list, one way to authenticate, TLS files, and no secret in a repr or an error message."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import certifi
import nats
import pytest
from nats.aio.client import Client as NatsClient

from nodedrop.platform import natsconnect
from nodedrop.platform.natsconnect import NatsSettings
from nodedrop.runner.settings import RunnerSettings

URL = "NODEDROP_NATS_URL"
PASSWORD = "s3cret-PW-4711"
TOKEN = "t0ken-SECRET-0815"
#: What the stand-in for nats.connect returns (never connected).
CLIENT = NatsClient()


def settings(**env: str) -> NatsSettings:
    return NatsSettings.from_env({URL: "nats://127.0.0.1:4222", **env})


def refused(env: dict[str, str]) -> str:
    """The message of the ValueError ``env`` is refused with; it never holds a secret."""
    with pytest.raises(ValueError) as error:  # noqa: PT011 - the message is checked by the caller
        NatsSettings.from_env(env)
    message = str(error.value)
    assert PASSWORD not in message
    assert TOKEN not in message
    return message


@pytest.fixture
def nkeys(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if nats-py's nkeys extra were installed (only checked, not used, here)."""
    monkeypatch.setattr(natsconnect, "_nkeys_installed", lambda: True)


# ------------------------------------------------------------------ servers


def test_one_url() -> None:
    assert settings().servers == ("nats://127.0.0.1:4222",)


def test_a_comma_separated_list_with_spaces() -> None:
    value = " nats://n1:4222 ,nats://n2:4222,  tls://n3.example:4443 , "
    assert NatsSettings.from_env({URL: value}).servers == (
        "nats://n1:4222",
        "nats://n2:4222",
        "tls://n3.example:4443",
    )


@pytest.mark.parametrize(
    "url", ["nats://h", "tls://h:4443", "ws://h:8080", "wss://h/ws", "nats://[::1]:4222"]
)
def test_every_scheme_with_a_host_is_taken(url: str) -> None:
    assert NatsSettings.from_env({URL: url}).servers == (url,)


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:4222",
        "http://h:4222",
        "nats://",
        "nats://:4222",
        "nats://h:port",
        "nats://[::1",
        "nats://a:4222,http://b:4222",
    ],
)
def test_a_malformed_url_is_refused_naming_the_variable(url: str) -> None:
    message = refused({URL: url})
    assert message.startswith(f"{URL}: ")
    assert "nats://, tls://, ws:// or wss://" in message


def test_no_server_at_all() -> None:
    assert URL in refused({URL: " , "})
    assert refused({}) == f"{URL} is not set"
    assert NatsSettings.from_env({}, default_url="nats://127.0.0.1:4250").servers == (
        "nats://127.0.0.1:4250",
    )
    assert settings().servers == ("nats://127.0.0.1:4222",)  # the variable wins over a default


def test_websocket_and_other_urls_are_not_mixed() -> None:
    assert "mixes WebSocket" in refused({URL: "nats://a:4222,wss://b"})


@pytest.mark.parametrize(
    "url",
    [
        f"nats://runner:{PASSWORD}@n1:4222",
        f"nats://{TOKEN}@n1:4222",
        f"nats://n0:4222, tls://runner:{PASSWORD}@n1:4443",
        f"http://runner:{PASSWORD}@n1:4222",  # also with a wrong scheme
    ],
)
def test_credentials_in_a_url_are_refused_without_repeating_them(url: str) -> None:
    message = refused({URL: url})
    assert message.startswith(f"{URL}: ")
    assert "has credentials in it" in message
    assert "***@n1:4" in message
    assert "runner" not in message
    for variable in ("NODEDROP_NATS_USER", "NODEDROP_NATS_PASSWORD", "NODEDROP_NATS_TOKEN"):
        assert variable in message


# ------------------------------------------------------------------ credentials


def test_no_credentials() -> None:
    plain = settings()
    assert not plain.has_credentials
    assert plain.connect_options() == {
        "servers": ["nats://127.0.0.1:4222"],
        "user": None,
        "password": None,
        "token": None,
        "user_credentials": None,
        "nkeys_seed": None,
        "tls": None,
    }


def test_user_and_password_are_options_and_the_password_is_not_in_the_repr() -> None:
    # Not URL-safe: travels as an option, never inside a URL.
    password = f"{PASSWORD} @:/#%?"
    given = settings(NODEDROP_NATS_USER="runner", NODEDROP_NATS_PASSWORD=password)
    assert (given.user, given.password, given.has_credentials) == ("runner", password, True)
    options = given.connect_options()
    assert (options["user"], options["password"]) == ("runner", password)
    assert options["servers"] == ["nats://127.0.0.1:4222"]
    assert PASSWORD not in repr(given)
    assert "runner" in repr(given)


def test_a_token_is_an_option_and_not_in_the_repr() -> None:
    given = settings(NODEDROP_NATS_TOKEN=TOKEN)
    assert given.connect_options()["token"] == TOKEN
    assert TOKEN not in repr(given)
    assert TOKEN not in repr(RunnerSettings(nats_url="nats://h:1", nats_token=TOKEN))


def test_a_password_needs_a_user_and_a_user_a_password() -> None:
    message = refused({URL: "nats://h", "NODEDROP_NATS_PASSWORD": PASSWORD})
    assert "NODEDROP_NATS_PASSWORD is set but NODEDROP_NATS_USER is not" in message
    message = refused({URL: "nats://h", "NODEDROP_NATS_USER": "runner"})
    assert "NODEDROP_NATS_USER is set but NODEDROP_NATS_PASSWORD is not" in message


def test_empty_variables_count_as_unset() -> None:
    given = settings(NODEDROP_NATS_USER=" ", NODEDROP_NATS_PASSWORD="", NODEDROP_NATS_TOKEN="")
    assert not given.has_credentials


def test_creds_and_nkey_files(tmp_path: Path, nkeys: None) -> None:
    creds, seed = tmp_path / "svc.creds", tmp_path / "svc.nk"
    creds.write_text("-----BEGIN NATS USER JWT-----\n")
    seed.write_text("SUAEXAMPLE\n")
    with_creds = settings(NODEDROP_NATS_CREDS=str(creds))
    assert with_creds.creds_file == creds
    assert with_creds.connect_options()["user_credentials"] == str(creds)
    with_nkey = settings(NODEDROP_NATS_NKEY=str(seed))
    assert with_nkey.nkey_seed_file == seed
    assert with_nkey.connect_options()["nkeys_seed"] == str(seed)
    assert with_creds.has_credentials
    assert with_nkey.has_credentials


@pytest.mark.parametrize("variable", ["NODEDROP_NATS_CREDS", "NODEDROP_NATS_NKEY"])
def test_a_missing_creds_or_nkey_file_is_named(tmp_path: Path, nkeys: None, variable: str) -> None:
    missing = tmp_path / "nowhere"
    assert refused({URL: "nats://h", variable: str(missing)}) == (
        f"{variable}: no such file: {missing}"
    )


@pytest.mark.parametrize("variable", ["NODEDROP_NATS_CREDS", "NODEDROP_NATS_NKEY"])
def test_creds_and_nkey_need_the_nkeys_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setattr(natsconnect, "_nkeys_installed", lambda: False)
    (tmp_path / "f").write_text("x")
    message = refused({URL: "nats://h", variable: str(tmp_path / "f")})
    assert message.startswith(f"{variable} needs the Python package nkeys")


METHODS = {
    "NODEDROP_NATS_USER": {"NODEDROP_NATS_USER": "runner", "NODEDROP_NATS_PASSWORD": PASSWORD},
    "NODEDROP_NATS_TOKEN": {"NODEDROP_NATS_TOKEN": TOKEN},
    "NODEDROP_NATS_CREDS": {"NODEDROP_NATS_CREDS": "{dir}/svc.creds"},
    "NODEDROP_NATS_NKEY": {"NODEDROP_NATS_NKEY": "{dir}/svc.nk"},
}
PAIRS = [(a, b) for i, a in enumerate(METHODS) for b in list(METHODS)[i + 1 :]]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_two_ways_to_authenticate_are_refused_naming_both(
    tmp_path: Path, nkeys: None, first: str, second: str
) -> None:
    (tmp_path / "svc.creds").write_text("x")
    (tmp_path / "svc.nk").write_text("x")
    env = {URL: "nats://h"}
    for method in (first, second):
        env |= {k: v.format(dir=tmp_path) for k, v in METHODS[method].items()}
    message = refused(env)
    assert f"{first} and {second} are set" in message
    assert "choose one way to authenticate" in message


def test_all_ways_at_once_are_named(tmp_path: Path, nkeys: None) -> None:
    (tmp_path / "svc.creds").write_text("x")
    (tmp_path / "svc.nk").write_text("x")
    env = {URL: "nats://h"}
    for values in METHODS.values():
        env |= {k: v.format(dir=tmp_path) for k, v in values.items()}
    message = refused(env)
    assert all(variable in message for variable in METHODS)


# ------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def client_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key (made with openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "client.pem", directory / "client.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=client"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_without_tls_files_there_is_no_context() -> None:
    assert settings().ssl_context() is None


def test_a_ca_bundle_makes_a_verifying_context() -> None:
    given = settings(NODEDROP_NATS_TLS_CA=certifi.where())
    assert given.tls_ca_file == Path(certifi.where())
    context = given.ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert isinstance(given.connect_options()["tls"], ssl.SSLContext)


def test_a_client_certificate(client_certificate: tuple[Path, Path]) -> None:
    cert, key = client_certificate
    given = settings(NODEDROP_NATS_TLS_CERT=str(cert), NODEDROP_NATS_TLS_KEY=str(key))
    assert (given.tls_cert_file, given.tls_key_file) == (cert, key)
    assert isinstance(given.ssl_context(), ssl.SSLContext)


def test_tls_files_are_read_only_when_connecting(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    given = settings(NODEDROP_NATS_TLS_CA=str(bogus))  # only checked to exist
    with pytest.raises(ssl.SSLError):
        given.ssl_context()


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ("NODEDROP_NATS_TLS_CERT", "NODEDROP_NATS_TLS_KEY"),
        ("NODEDROP_NATS_TLS_KEY", "NODEDROP_NATS_TLS_CERT"),
    ],
)
def test_a_client_certificate_needs_its_key_and_the_key_its_certificate(
    tmp_path: Path, given: str, missing: str
) -> None:
    (tmp_path / "file.pem").write_text("x")
    message = refused({URL: "tls://h", given: str(tmp_path / "file.pem")})
    assert message == f"{given} is set but {missing} is not: a client certificate needs both"


@pytest.mark.parametrize(
    "variable", ["NODEDROP_NATS_TLS_CA", "NODEDROP_NATS_TLS_CERT", "NODEDROP_NATS_TLS_KEY"]
)
def test_a_missing_tls_file_is_named(tmp_path: Path, variable: str) -> None:
    (tmp_path / "there.pem").write_text("x")
    env = {
        URL: "tls://h",
        "NODEDROP_NATS_TLS_CERT": str(tmp_path / "there.pem"),
        "NODEDROP_NATS_TLS_KEY": str(tmp_path / "there.pem"),
        variable: str(tmp_path / "missing.pem"),
    }
    assert refused(env) == f"{variable}: no such file: {tmp_path / 'missing.pem'}"


# ------------------------------------------------------------------ connecting


@pytest.fixture
def connect_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    async def fake_connect(**options: Any) -> NatsClient:
        calls.append(options)
        return CLIENT

    monkeypatch.setattr(nats, "connect", fake_connect)
    return calls


async def test_connect_passes_servers_credentials_and_name(
    connect_calls: list[dict[str, Any]],
) -> None:
    given = NatsSettings.from_env(
        {
            URL: "nats://n1:4222,nats://n2:4222",
            "NODEDROP_NATS_USER": "scheduler",
            "NODEDROP_NATS_PASSWORD": PASSWORD,
        }
    )
    assert await natsconnect.connect(given, name="nodedrop-scheduler") is CLIENT
    (call,) = connect_calls
    assert call["servers"] == ["nats://n1:4222", "nats://n2:4222"]
    assert (call["user"], call["password"], call["token"]) == ("scheduler", PASSWORD, None)
    assert (call["user_credentials"], call["nkeys_seed"], call["tls"]) == (None, None, None)
    assert call["name"] == "nodedrop-scheduler"
    assert call["max_reconnect_attempts"] == -1


async def test_connect_options_win(connect_calls: list[dict[str, Any]]) -> None:
    await natsconnect.connect(
        settings(), name="nodedrop prune", max_reconnect_attempts=2, connect_timeout=5
    )
    (call,) = connect_calls
    assert (call["max_reconnect_attempts"], call["connect_timeout"]) == (2, 5)


def test_masked_lists_the_servers_for_a_log_line() -> None:
    assert natsconnect.masked(NatsSettings.from_env({URL: "nats://a:1, nats://b:2"})) == (
        "nats://a:1,nats://b:2"
    )
    direct = NatsSettings(servers=(f"nats://runner:{PASSWORD}@a:1",))  # tools may build one
    assert natsconnect.masked(direct) == "nats://runner:***@a:1"


def test_settings_need_a_server() -> None:
    with pytest.raises(ValueError, match="at least one server"):
        NatsSettings(servers=())


# ------------------------------------------------------------------ a service's settings


def test_a_services_settings_carry_the_nats_settings() -> None:
    settings = RunnerSettings.from_env(
        {
            URL: "nats://n1:4222, nats://n2:4222",
            "NODEDROP_NATS_USER": "api",
            "NODEDROP_NATS_PASSWORD": PASSWORD,
        }
    )
    nats = settings.nats_settings()
    assert nats.servers == ("nats://n1:4222", "nats://n2:4222")
    assert (nats.user, nats.password) == ("api", PASSWORD)
    assert PASSWORD not in repr(settings)


def test_settings_without_nats() -> None:
    settings = RunnerSettings.from_env(
        {"NODEDROP_NATS_USER": "api", "NODEDROP_NATS_PASSWORD": PASSWORD}
    )
    assert settings.nats_url is None
    with pytest.raises(ValueError, match="NODEDROP_NATS_URL is not set"):
        settings.nats_settings()


def test_settings_refuse_credentials_in_the_url() -> None:
    with pytest.raises(ValueError, match=r"NODEDROP_NATS_URL: .* has credentials in it") as error:
        RunnerSettings.from_env({URL: f"nats://api:{PASSWORD}@n1:4222"})
    assert PASSWORD not in str(error.value)


def test_settings_built_directly() -> None:
    # Tests and tools build settings from one URL.
    built = RunnerSettings(nats_url="nats://h:1")
    assert built.nats_settings() == NatsSettings(servers=("nats://h:1",))
