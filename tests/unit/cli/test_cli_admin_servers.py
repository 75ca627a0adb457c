"""Where the operator commands find NATS, and as whom they connect (nodedrop.cli.admin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodedrop.cli import admin, main, settings
from nodedrop.platform import natsauth

PASSWORD = "s3cret-PW-4711"


def test_own_servers_with_credentials_as_variables(tmp_path: Path) -> None:
    natsauth.ensure_passwords(settings.nats_credentials_path(tmp_path))  # not used: own server
    found = admin.servers(
        {
            "NODEDROP_DATA_DIR": str(tmp_path),
            "NODEDROP_NATS_URL": "nats://n1:4222, nats://n2:4222",
            "NODEDROP_NATS_USER": "admin",
            "NODEDROP_NATS_PASSWORD": PASSWORD,
        }
    )
    assert found.nats.servers == ("nats://n1:4222", "nats://n2:4222")
    assert (found.nats.user, found.nats.password) == ("admin", PASSWORD)
    assert found.nats_url == "nats://n1:4222"


def test_the_embedded_server_as_its_admin(tmp_path: Path) -> None:
    passwords, _ = natsauth.ensure_passwords(settings.nats_credentials_path(tmp_path))
    found = admin.servers({"NODEDROP_DATA_DIR": str(tmp_path), "NODEDROP_NATS_PORT": "4299"})
    assert found.nats.servers == ("nats://127.0.0.1:4299",)
    assert (found.nats.user, found.nats.password) == ("admin", passwords["admin"])


def test_the_embedded_server_with_other_credentials(tmp_path: Path) -> None:
    natsauth.ensure_passwords(settings.nats_credentials_path(tmp_path))
    found = admin.servers({"NODEDROP_DATA_DIR": str(tmp_path), "NODEDROP_NATS_TOKEN": "tok"})
    assert (found.nats.user, found.nats.token) == (None, "tok")


def test_the_embedded_server_without_credentials_file(tmp_path: Path) -> None:
    found = admin.servers({"NODEDROP_DATA_DIR": str(tmp_path)})
    assert found.nats.servers == (f"nats://127.0.0.1:{settings.DEFAULT_NATS_PORT}",)
    assert not found.nats.has_credentials


def test_a_wrong_nats_setting_is_a_setting_error(tmp_path: Path) -> None:
    with pytest.raises(settings.SettingError, match=r"NODEDROP_NATS_URL: .* has credentials"):
        admin.servers({"NODEDROP_NATS_URL": f"nats://admin:{PASSWORD}@n1:4222"})
    with pytest.raises(settings.SettingError, match="NODEDROP_NATS_PASSWORD is set"):
        admin.servers({"NODEDROP_DATA_DIR": str(tmp_path), "NODEDROP_NATS_PASSWORD": PASSWORD})


def test_audit_names_a_wrong_nats_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NODEDROP_NATS_URL", f"nats://admin:{PASSWORD}@n1:4222")
    with pytest.raises(SystemExit) as exit_:
        main.main(["audit", "some-execution"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "NODEDROP_NATS_URL" in err
    assert PASSWORD not in err
