"""The limits of docs/security.md's table ("Limits"), pinned as literals (issue 21, item 5).

The tests of these limits import the constants (a log over ``MAX_LOG_LINES`` is cut, a stack
over ``MAX_STACK_CHARS`` is truncated, ...), so they follow any change of one and the documented
value is checked nowhere; others no test reads at all. Each test here states the table's value
as a literal: changing one of these constants fails here, and must change the table too.
"""

from __future__ import annotations

from nodedrop.contracts.codec import MAX_MESSAGE_BYTES
from nodedrop.contracts.codecheck import MAX_SOURCE_CHARS
from nodedrop.contracts.expressions import limits as expression_limits
from nodedrop.contracts.jsonlimits import MAX_JSON_DEPTH
from nodedrop.contracts.workflow import MAX_TIMEOUT_MS
from nodedrop.scheduler.core.rules import MAX_INPUT_BYTES

KIB = 1024
MIB = 1024 * KIB


def test_a_nodes_input_may_fill_a_message_but_64_kib() -> None:
    # "a node's gathered input: `InputTooLarge` (8 MiB - 64 KiB for the data)"; the scheduler
    # tests build inputs from MAX_INPUT_BYTES itself.
    assert MAX_MESSAGE_BYTES == 8 * MIB
    assert MAX_INPUT_BYTES == 8 * MIB - 64 * KIB == 8_323_072


def test_the_definition_limits_are_the_documented_ones() -> None:
    # "code node source | 100,000 characters"; "execution and node `timeout_ms` | 1 ms to
    # 31 days"; docs/api.md, "Limits": "Depth: 64 levels".
    assert MAX_SOURCE_CHARS == 100_000
    assert MAX_TIMEOUT_MS == 31 * 24 * 3600 * 1000 == 2_678_400_000
    assert MAX_JSON_DEPTH == 64


def test_the_expression_value_limits_are_the_documented_ones() -> None:
    # "expression length | 10,000 characters"; "integers 10,000 bits; nesting 100 (syntax) /
    # 200 (values)".
    assert expression_limits.MAX_EXPRESSION_LENGTH == 10_000
    assert expression_limits.MAX_INT_BITS == 10_000
    assert expression_limits.MAX_DEPTH == 100
    assert expression_limits.MAX_VALUE_DEPTH == 200


def test_the_runner_limits_are_the_documented_ones() -> None:
    from nodedrop.runner import attempt, credentials, isolation
    from nodedrop.runner.nodes import api, flow, oauth2
    from nodedrop.runner.sandbox import bootstrap, command

    # "log lines per attempt | 1,000 lines of at most 10,000 characters", for built-in nodes
    # and for the code node's sandbox alike.
    assert (api.MAX_LOG_LINES, api.MAX_LOG_CHARS) == (1000, 10_000)
    assert (bootstrap.MAX_LOG_LINES, bootstrap.MAX_LOG_CHARS) == (1000, 10_000)
    # "error text per attempt | message 10,000 characters, stack 32,000".
    assert (attempt.MAX_MESSAGE_CHARS, attempt.MAX_STACK_CHARS) == (10_000, 32_000)
    # "node output at all | 256 MiB of JSON"; "custom node worker's reply ... | 64 MiB".
    assert attempt.MAX_OUTPUT_BYTES == 256 * MIB
    assert isolation.DEFAULT_MAX_REPLY_BYTES == 64 * MIB
    # "secret values redacted ... | 4 characters or longer"; "OAuth2 token response | 1 MiB".
    assert credentials.MIN_REDACTED_CHARS == 4
    assert oauth2.MAX_TOKEN_RESPONSE_BYTES == MIB
    # "pause of a rendering built-in | every 5 ms of work".
    assert flow.SLICE_S == 0.005
    # "`RLIMIT_NPROC` 4,096 / ... / 256" open files.
    assert (command.MAX_USER_PROCESSES, command.MAX_OPEN_FILES) == (4096, 256)


def test_the_api_and_notifier_limits_are_the_documented_ones() -> None:
    from nodedrop.api import definitions, offload
    from nodedrop.api.routes import executions, webhooks
    from nodedrop.notifier import websocket
    from nodedrop.platform import apikeys, notifier_consumer

    # "definitions validated in a worker thread | more than 200 nodes + connections";
    # "bodies decoded and checked in a worker thread | more than 64 KiB".
    assert definitions.OFF_LOOP_ABOVE == 200
    assert offload.OFF_LOOP_BYTES == 64 * KIB
    # "webhook signature age | 300 s either way"; "API key cache / revocation | 2 s; open
    # sockets rechecked every 1 s".
    assert webhooks.SIGNATURE_TOLERANCE_S == 300
    assert (apikeys.CACHE_TTL_S, websocket.RECHECK_S) == (2.0, 1.0)
    # "`after_seq` | 0 to 2^64-1", in the api's `/events` and the notifier's WebSocket.
    assert executions.MAX_SEQ == websocket.MAX_SEQ == 2**64 - 1 == 18_446_744_073_709_551_615
    # "WebSocket client that takes no event | 30 s"; "notices kept per socket | one number ...;
    # events read in 4 MiB batches" (the one number: tests/integration/notifier).
    assert websocket.SEND_TIMEOUT_S == 30.0
    assert notifier_consumer.PULL_MAX_BYTES == 4 * MIB
