"""The values the docs promise, pinned as literals (issue 21, item 5).

Other tests import their constants, so they follow any change of one: ``MAX_RUNNER_LOST_ATTEMPTS``
went from 3 to 30 and every unit test still passed. Each test here states a documented value as
a literal, where the doc gives it, and checks it through the behaviour where that is cheap (the
constant alone otherwise): changing one of these values fails here, and must change its doc too.
"""

from __future__ import annotations

from typing import Any

import pytest

from nodedrop.contracts.codec import MAX_MESSAGE_BYTES
from nodedrop.contracts.errors import RUNNER_LOST
from nodedrop.contracts.events import ErrorInfo
from nodedrop.contracts.expressions import limits as expression_limits
from nodedrop.contracts.failures import FailurePolicy, failure_outcome
from nodedrop.contracts.jsonlimits import too_deep
from nodedrop.contracts.routing import SLOTS, Layout, slot_of
from nodedrop.contracts.workflow import MAX_NODES, RetryPolicy
from nodedrop.platform.datastore import OFFLOAD_THRESHOLD
from nodedrop.platform.jetstream import StreamSettings
from nodedrop.platform.leases import DEFAULT_LEASE_S
from nodedrop.scheduler.core.rules import NODE_TIMEOUT_GRACE_MS

LOST = ErrorInfo(type=RUNNER_LOST, message="the runner went away", retryable=True)


def test_a_node_is_made_again_after_at_most_3_lost_runners() -> None:
    # docs/architecture.md, "Runner lost": "At most 3 per node (`MAX_RUNNER_LOST_ATTEMPTS`): a
    # further `RunnerLost` is an ordinary failure". docs/nodes.md: "after 3 of them for one node".
    policy = FailurePolicy()  # max_attempts 1: no retry of its own
    outcomes = [failure_outcome(policy, lost + 1, lost, LOST) for lost in range(5)]
    assert outcomes == ["again", "again", "again", "failed", "failed"]
    # With retries left, the 4th lost runner counts against them like any retryable failure.
    assert failure_outcome(FailurePolicy(max_attempts=2), 4, 3, LOST) == "retry"
    # Listed as non-retryable: fails at once, not even once made again.
    strict = FailurePolicy(non_retryable_errors=frozenset({RUNNER_LOST}))
    assert failure_outcome(strict, 1, 0, LOST) == "failed"


def test_the_retry_policy_defaults_are_the_documented_ones() -> None:
    # docs/nodes.md: `max_attempts` (default 1, which counts the first attempt: no retry),
    # `initial_interval_ms` (1000), `backoff_coefficient` (2.0, at least 1), `max_interval_ms`
    # (default 100 times the initial interval).
    policy = RetryPolicy()
    assert policy.max_attempts == 1
    assert policy.initial_interval_ms == 1000
    assert policy.backoff_coefficient == 2.0
    assert policy.max_interval_ms is None
    assert policy.effective_max_interval_ms == 100_000
    assert RetryPolicy(initial_interval_ms=7).effective_max_interval_ms == 700
    with pytest.raises(ValueError, match="backoff_coefficient"):
        RetryPolicy(backoff_coefficient=0.5)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=101)


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        # delay before attempt n+1 = min(initial x coefficient^(n-1), max) (docs/nodes.md)
        ({}, [1000, 2000, 4000, 8000, 16000, 32000, 64000, 100000, 100000]),
        ({"initial_interval_ms": 500, "backoff_coefficient": 3.0}, [500, 1500, 4500, 13500]),
        ({"initial_interval_ms": 100, "max_interval_ms": 250}, [100, 200, 250, 250]),
        ({"initial_interval_ms": 0}, [0, 0, 0]),
        ({"backoff_coefficient": 1.0}, [1000, 1000, 1000]),
    ],
)
def test_the_backoff_follows_the_documented_formula(
    policy: dict[str, Any], delays: list[int]
) -> None:
    retry = RetryPolicy(**policy)
    assert [retry.delay_ms(n) for n in range(1, len(delays) + 1)] == delays


def test_the_node_timeout_backstop_fires_2_s_after_the_timeout() -> None:
    # docs/architecture.md: "the node-timeout backstop (`timeout_ms` + 2 s after `NodeStarted`)".
    assert NODE_TIMEOUT_GRACE_MS == 2000


def test_json_documents_nest_at_most_64_levels() -> None:
    # docs/api.md, "Limits": "Depth: 64 levels of arrays and objects (`{}` is one level)".
    def nested(levels: int) -> object:
        value: object = {}
        for _ in range(levels - 1):
            value = [value]
        return value

    assert too_deep(nested(64)) is None
    assert too_deep(nested(65)) is not None


def test_the_api_limits_default_to_the_documented_values() -> None:
    # docs/operations.md, "Configuration", and docs/api.md, "Limits".
    from nodedrop.api.settings import ApiSettings

    config = ApiSettings.from_env({})
    assert config.max_body_bytes == 8 * 1024 * 1024 == 8_388_608  # 8 MiB
    assert config.max_workflow_nodes == 2000
    assert config.max_input_items == 10_000
    assert config.max_expression_length == 10_000
    assert MAX_NODES == 5000  # "2000 (at most 5000)"


def test_the_other_settings_default_to_the_documented_values() -> None:
    # docs/operations.md, "Configuration".
    from nodedrop.api.settings import ApiSettings
    from nodedrop.runner.settings import RunnerSettings
    from nodedrop.scheduler.settings import SchedulerSettings

    config = ApiSettings.from_env({})
    assert (config.port, config.notifier_port) == (8000, 8001)
    assert RunnerSettings.from_env({}).runner_concurrency == 64
    scheduler = SchedulerSettings.from_env({})
    assert scheduler.schedule_grace_s == 300
    assert scheduler.scheduler_snapshot_interval_s == 5
    assert DEFAULT_LEASE_S == scheduler.lease_s == 10  # NODEDROP_LEASE_S
    streams = StreamSettings.from_env({})
    assert streams.runner_ack_wait_s == 15  # NODEDROP_RUNNER_ACK_WAIT_S
    assert streams.duplicate_window_s == 120  # "2-minute duplicate window"
    assert streams.replicas == 1  # NODEDROP_STREAM_REPLICAS
    # docs/architecture.md, "Dead letters": "the runners' consumer: 5; the scheduler's: 10".
    assert (streams.runner_max_deliver, streams.scheduler_max_deliver) == (5, 10)


def test_the_runner_and_notifier_defaults_are_the_documented_ones() -> None:
    from nodedrop.notifier.settings import NotifierSettings
    from nodedrop.runner.settings import RunnerSettings
    from nodedrop.runner.worker import DEFAULT_GRACE_S

    runner = RunnerSettings.from_env({})
    assert DEFAULT_GRACE_S == runner.runner_grace_s == 8  # NODEDROP_RUNNER_GRACE_S
    assert (runner.runner_processes, runner.process_memory_limit_bytes) == (None, None)
    notifier = NotifierSettings.from_env({})
    assert notifier.linger_s == 0.020  # NODEDROP_PROJECTION_LINGER_MS 20
    assert (notifier.retention.days, notifier.retention.interval_s) == (30, 3600)
    assert notifier.lease_s == 10


def test_the_log_has_one_partition_of_256_slots_by_default() -> None:
    # docs/operations.md: `NODEDROP_PARTITIONS` 1, "(1 to 256)"; docs/architecture.md: slots.
    assert Layout.from_env({}).partitions == 1
    assert StreamSettings.from_env({}).layout.partitions == 1
    assert SLOTS == 256
    assert {slot_of(f"ex-{i}") for i in range(5000)} == set(range(256))
    assert Layout(256).partitions == 256
    for wrong in (0, 257):
        with pytest.raises(ValueError, match="from 1 to 256"):
            Layout(wrong)
    # Four partitions of 64 slots each.
    assert [len(Layout(4).slots(p)) for p in range(4)] == [64, 64, 64, 64]


def test_message_and_offload_sizes_are_the_documented_ones() -> None:
    # docs/api.md: "A node output larger than 256 KiB (as JSON) does not travel in events".
    assert OFFLOAD_THRESHOLD == 256 * 1024
    # The message limit the streams are made with (8 MiB; docs/architecture.md).
    assert MAX_MESSAGE_BYTES == 8 * 1024 * 1024


def test_the_expression_work_budget_is_the_documented_one() -> None:
    # docs/nodes.md, "Work budget": 100,000 steps per item's rendering, 10,000,000 per attempt.
    assert expression_limits.MAX_STEPS == 100_000
    assert expression_limits.MAX_ATTEMPT_STEPS == 10_000_000
    # "capped (1 MB, 100,000 elements) before they are built"
    assert expression_limits.MAX_STRING_LENGTH == 1_000_000
    assert expression_limits.MAX_ITEMS == 100_000


def test_the_concurrency_limits_are_the_documented_ones() -> None:
    # docs/operations.md: NODEDROP_MAX_CONCURRENT_PER_USER unset (no limit), 0 the same;
    # docs/nodes.md: settings.max_concurrent 1 to 1,000; docs/architecture.md: tried every
    # 0.5 s, a full set pruned at most every 5 s.
    from nodedrop.contracts.workflow import MAX_CONCURRENT, Settings
    from nodedrop.scheduler.admission import KvGate
    from nodedrop.scheduler.service import ADMISSION_INTERVAL_S
    from nodedrop.scheduler.settings import SchedulerSettings

    def per_user(env: dict[str, str]) -> int | None:
        return SchedulerSettings.from_env(env).max_concurrent_per_user

    assert per_user({}) is None
    assert per_user({"NODEDROP_MAX_CONCURRENT_PER_USER": "0"}) is None
    assert per_user({"NODEDROP_MAX_CONCURRENT_PER_USER": "3"}) == 3
    with pytest.raises(ValueError, match="NODEDROP_MAX_CONCURRENT_PER_USER"):
        per_user({"NODEDROP_MAX_CONCURRENT_PER_USER": "-1"})
    # NODEDROP_MAX_RUNNING_NODES_PER_USER: unset (no cap), 0 the same.
    share = "NODEDROP_MAX_RUNNING_NODES_PER_USER"
    assert SchedulerSettings.from_env({}).max_running_nodes_per_user is None
    assert SchedulerSettings.from_env({share: "0"}).max_running_nodes_per_user is None
    assert SchedulerSettings.from_env({share: "4"}).max_running_nodes_per_user == 4
    assert MAX_CONCURRENT == 1000
    assert Settings(max_concurrent=1000).max_concurrent == 1000
    for wrong in (0, 1001, "2", True):
        with pytest.raises(ValueError, match="max_concurrent"):
            Settings.model_validate({"max_concurrent": wrong})
    assert ADMISSION_INTERVAL_S == 0.5
    assert (KvGate.__init__.__kwdefaults__ or {})["prune_every_s"] == 5.0
