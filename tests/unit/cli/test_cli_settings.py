"""Where the command line finds its data directory, URL and key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from nodedrop.cli import settings


def test_the_admin_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    token, created = settings.ensure_admin_token(tmp_path)
    again, created_again = settings.ensure_admin_token(tmp_path)

    assert created
    assert not created_again
    assert token == again
    assert len(token) >= 40
    path = tmp_path / "admin_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == token


def test_an_empty_key_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "admin_token").write_text("")
    token, created = settings.ensure_admin_token(tmp_path)
    assert created
    assert settings.read_admin_token(tmp_path) == token


def test_the_client_key_comes_from_flag_then_environment_then_data_dir(tmp_path: Path) -> None:
    (tmp_path / "admin_token").write_text("from-file\n")
    env = {"NODEDROP_DATA_DIR": str(tmp_path)}

    assert settings.client_token(None, env) == "from-file"
    assert settings.client_token(None, {**env, "NODEDROP_ADMIN_TOKEN": "admin"}) == "admin"
    both = {**env, "NODEDROP_ADMIN_TOKEN": "admin", "NODEDROP_TOKEN": "user"}
    assert settings.client_token(None, both) == "user"
    assert settings.client_token("flag", both) == "flag"


def test_no_key_anywhere_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(settings.SettingError, match="--token"):
        settings.client_token(None, {"NODEDROP_DATA_DIR": str(tmp_path / "none")})


def test_url_and_data_dir_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert settings.client_url(None, {}) == "http://127.0.0.1:8000"
    assert settings.client_url(None, {"NODEDROP_URL": "http://h:1/"}) == "http://h:1"
    assert settings.client_url("http://x:2", {"NODEDROP_URL": "http://h:1"}) == "http://x:2"
    assert settings.data_dir({}) == tmp_path / ".nodedrop"
    assert settings.data_dir({"NODEDROP_DATA_DIR": "d"}) == tmp_path / "d"


def test_ports_are_checked() -> None:
    assert settings.UpSettings.read({}).pg_port == 5440
    assert settings.UpSettings.read({"NODEDROP_PG_PORT": "6000"}).pg_port == 6000
    with pytest.raises(settings.SettingError, match=r"NODEDROP_PG_PORT: .*valid integer"):
        settings.UpSettings.read({"NODEDROP_PG_PORT": "x"})
    with pytest.raises(settings.SettingError, match=r"NODEDROP_NATS_PORT: .*less than or equal"):
        settings.UpSettings.read({"NODEDROP_NATS_PORT": "70000"})
    with pytest.raises(settings.SettingError, match="NODEDROP_PORT"):
        settings.UpSettings.read({"NODEDROP_PORT": "abc"})
