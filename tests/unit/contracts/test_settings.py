"""Each service's settings: defaults, limits, origins, and wrong values refused by name."""

from __future__ import annotations

import pytest

from nodedrop.api.settings import ApiSettings
from nodedrop.notifier.settings import NotifierSettings
from nodedrop.platform.settings import EnvSettings, SettingsError
from nodedrop.runner.settings import RunnerSettings
from nodedrop.scheduler.settings import SchedulerSettings

SERVICES: list[type[EnvSettings]] = [
    ApiSettings,
    SchedulerSettings,
    RunnerSettings,
    NotifierSettings,
]


def test_limit_defaults_and_overrides() -> None:
    default = ApiSettings.from_env({})
    assert (
        default.max_body_bytes,
        default.max_workflow_nodes,
        default.max_input_items,
        default.max_expression_length,
    ) == (8 * 1024 * 1024, 2000, 10_000, 10_000)
    changed = ApiSettings.from_env(
        {
            "NODEDROP_MAX_BODY_BYTES": "100",
            "NODEDROP_MAX_WORKFLOW_NODES": "5",
            "NODEDROP_MAX_INPUT_ITEMS": "7",
            "NODEDROP_MAX_EXPRESSION_LENGTH": "50",
        }
    )
    assert (
        changed.max_body_bytes,
        changed.max_workflow_nodes,
        changed.max_input_items,
        changed.max_expression_length,
    ) == (100, 5, 7, 50)


def test_default_origins_are_the_servers_own_base_urls() -> None:
    local = NotifierSettings.from_env({"NODEDROP_PORT": "9000"}).websocket_origins
    assert "http://127.0.0.1:9000" in local
    assert "http://localhost:9000" in local
    assert "http://evil.example:9000" not in local
    named = NotifierSettings.from_env({"NODEDROP_HOST": "flows.internal", "NODEDROP_PORT": "80"})
    assert named.websocket_origins == {"http://flows.internal:80", "https://flows.internal:80"}


def test_configured_origins_replace_the_default() -> None:
    settings = NotifierSettings.from_env(
        {"NODEDROP_ALLOWED_ORIGINS": "https://ui.example/, http://a:1"}
    )
    assert settings.websocket_origins == {"https://ui.example", "http://a:1"}


@pytest.mark.parametrize(
    ("settings", "variable", "value", "says"),
    [
        (ApiSettings, "NODEDROP_PORT", "abc", "valid integer"),
        (ApiSettings, "NODEDROP_PORT", "99999", "less than or equal to 65535"),
        (NotifierSettings, "NODEDROP_NOTIFIER_PORT", "0", "greater than or equal to 1"),
        (ApiSettings, "NODEDROP_MAX_WORKFLOW_NODES", "-5", "greater than or equal to 1"),
        (ApiSettings, "NODEDROP_MAX_WORKFLOW_NODES", "5001", "less than or equal to 5000"),
        (ApiSettings, "NODEDROP_MAX_EXPRESSION_LENGTH", "10001", "less than or equal to 10000"),
        (ApiSettings, "NODEDROP_LOG_FORMAT", "xml", "'text' or 'json'"),
        (ApiSettings, "NODEDROP_OTEL_EXPORTER", "zipkin", "none, console, otlp or jsonl:PATH"),
        (SchedulerSettings, "NODEDROP_SCHEDULE_GRACE_S", "-1", "greater than or equal to 0"),
        (SchedulerSettings, "NODEDROP_SCHEDULER_SNAPSHOT_INTERVAL_S", "nan", "finite number"),
        (SchedulerSettings, "NODEDROP_MAX_CONCURRENT_PER_USER", "-1", "greater than or equal"),
        (SchedulerSettings, "NODEDROP_MAX_RUNNING_NODES_PER_USER", "-1", "greater than or equal"),
        (SchedulerSettings, "NODEDROP_MAX_RUNNING_NODES_PER_USER", "two", "valid integer"),
        (SchedulerSettings, "NODEDROP_LEASE_S", "0", "greater than 0"),
        (SchedulerSettings, "NODEDROP_PARTITIONS", "257", "less than or equal to 256"),
        (SchedulerSettings, "NODEDROP_STREAM_REPLICAS", "6", "less than or equal to 5"),
        (SchedulerSettings, "NODEDROP_DUPLICATE_WINDOW_S", "0", "greater than 0"),
        (SchedulerSettings, "NODEDROP_EVENT_LOOP", "trio", "'uvloop' or 'asyncio'"),
        (RunnerSettings, "NODEDROP_RUNNER_CONCURRENCY", "1.5", "valid integer"),
        (RunnerSettings, "NODEDROP_HTTP_ALLOW_PRIVATE", "maybe", "valid boolean"),
        (RunnerSettings, "NODEDROP_RUNNER_GRACE_S", "0", "greater than 0"),
        (RunnerSettings, "NODEDROP_RUNNER_HEARTBEAT_S", "-1", "greater than 0"),
        (RunnerSettings, "NODEDROP_RUNNER_PROCESSES", "0", "greater than or equal to 1"),
        (RunnerSettings, "NODEDROP_RUNNER_PROCESS_MEMORY_MB", "lots", "valid integer"),
        (RunnerSettings, "NODEDROP_RUNNER_ACK_WAIT_S", "inf", "finite number"),
        (NotifierSettings, "NODEDROP_PROJECTION_LINGER_MS", "-1", "greater than or equal to 0"),
        (NotifierSettings, "NODEDROP_RETENTION_DAYS", "a month", "valid number"),
        (NotifierSettings, "NODEDROP_PRUNE_INTERVAL_S", "0", "greater than 0"),
    ],
)
def test_a_wrong_setting_is_refused_naming_the_variable(
    settings: type[EnvSettings], variable: str, value: str, says: str
) -> None:
    with pytest.raises(SettingsError, match=variable) as refused:
        settings.from_env({variable: value})
    message = str(refused.value)
    assert message.startswith(f"{variable}: ")
    assert says in message
    assert repr(value) in message
    assert "\n" not in message


def test_every_wrong_setting_is_named_at_once_and_blank_ones_are_unset() -> None:
    with pytest.raises(ValueError, match=r"NODEDROP_PORT.*NODEDROP_MAX_INPUT_ITEMS"):
        ApiSettings.from_env({"NODEDROP_PORT": "x", "NODEDROP_MAX_INPUT_ITEMS": "0"})
    blank = ApiSettings.from_env({"NODEDROP_PORT": "  ", "NODEDROP_ADMIN_TOKEN": ""})
    assert (blank.port, blank.admin_token) == (8000, None)
    assert RunnerSettings.from_env({"NODEDROP_HTTP_ALLOW_PRIVATE": "yes"}).http_allow_private
    assert ApiSettings.from_env({"NODEDROP_LOG_FORMAT": " JSON "}).log_format == "json"


@pytest.mark.parametrize("settings", SERVICES)
def test_a_service_started_with_a_wrong_setting_exits_with_one_line(
    settings: type[EnvSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODEDROP_PARTITIONS", "eighty")
    with pytest.raises(SystemExit) as stopped:
        settings.load()
    assert str(stopped.value).startswith("configuration: NODEDROP_PARTITIONS:")
    assert "\n" not in str(stopped.value)


@pytest.mark.parametrize(
    ("settings", "variable", "value"),
    [
        (ApiSettings, "NODEDROP_DATABASE_URL", "postgresql://u:hunter2@db/x?port=abc"),
        (ApiSettings, "NODEDROP_NOTIFIER_URL", "http://u:hunter2@notifier:8001"),
        (NotifierSettings, "NODEDROP_ADMIN_TOKEN", "hunter2"),
        (RunnerSettings, "NODEDROP_NATS_PASSWORD", "hunter2"),
        (RunnerSettings, "NODEDROP_NATS_TOKEN", "hunter2"),
    ],
)
def test_secrets_are_never_echoed(settings: type[EnvSettings], variable: str, value: str) -> None:
    # Each of these is wrong with the NATS URL given (two ways to authenticate, a password
    # without a user, a malformed URL) or shows in the repr: the value never does.
    env = {
        variable: value,
        "NODEDROP_NATS_URL": "nats://127.0.0.1:4222",
        "NODEDROP_NATS_USER": "api" if variable == "NODEDROP_NATS_TOKEN" else "",
    }
    try:
        shown = repr(settings.from_env(env))
    except SettingsError as error:
        shown = str(error)
    assert "hunter2" not in shown


def test_a_password_is_taken_as_given_and_other_values_stripped() -> None:
    settings = RunnerSettings.from_env(
        {
            "NODEDROP_NATS_URL": " nats://127.0.0.1:4222 ",
            "NODEDROP_NATS_USER": " runner ",
            "NODEDROP_NATS_PASSWORD": " p w ",
        }
    )
    nats = settings.nats_settings()
    assert (nats.servers, nats.user, nats.password) == (
        ("nats://127.0.0.1:4222",),
        "runner",
        " p w ",
    )


def test_the_runners_process_settings() -> None:
    settings = RunnerSettings.from_env(
        {"NODEDROP_RUNNER_PROCESSES": "2", "NODEDROP_RUNNER_PROCESS_MEMORY_MB": "512"}
    )
    assert settings.runner_processes == 2
    assert settings.process_memory_limit_bytes == 512 * 1024 * 1024


def test_the_streams_follow_the_common_settings() -> None:
    streams = SchedulerSettings.from_env(
        {
            "NODEDROP_PARTITIONS": "4",
            "NODEDROP_STREAM_REPLICAS": "3",
            "NODEDROP_RUNNER_ACK_WAIT_S": "4",
            "NODEDROP_DUPLICATE_WINDOW_S": "10",
        }
    ).streams
    assert (streams.layout.partitions, streams.replicas) == (4, 3)
    assert (streams.runner_ack_wait_s, streams.duplicate_window_s) == (4.0, 10.0)
