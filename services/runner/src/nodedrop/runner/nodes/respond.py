"""``respond_to_webhook``: the answer of a webhook whose trigger has ``respond: via_node``.

The node does not talk to the caller: it records the answer as its output on the ``response``
port (``[{"status", "headers", "body"}]``), in its ``NodeSucceeded`` event, and the api that
holds the caller's request answers from that event. Its items go on unchanged on ``main``, so
the execution goes on after it. Expressions are rendered with the first input item (``{}``
without one).
"""

from __future__ import annotations

import re
from typing import Any

from nodedrop.contracts.items import MAIN_PORT, PortItems
from nodedrop.contracts.nodetypes import (
    RESPOND_TO_WEBHOOK_TYPE,
    RESPONSE_PORT,
    RespondToWebhookParameters,
    passthrough_items,
)
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.builtins import parse_parameters
from nodedrop.runner.nodes.flow import rendered

#: An HTTP header name (RFC 9110 token).
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
#: Headers the api sets itself or that describe the connection: a node cannot set them.
RESERVED_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "x-nodedrop-execution-id"}
)


class RespondToWebhookNode:
    type = RESPOND_TO_WEBHOOK_TYPE
    # Recording an answer is harmless to repeat: only the api answers, once.
    side_effect_free = True

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        chosen = parse_parameters(RespondToWebhookParameters, parameters)
        items = passthrough_items(node_input)
        first = items[0] if items else {}
        status = _status(rendered(chosen.status, ctx, first))
        headers = {
            name: _header_value(name, rendered(value, ctx, first))
            for name, value in chosen.headers.items()
        }
        body = items if chosen.body is None else rendered(chosen.body, ctx, first)
        answer = {"status": status, "headers": headers, "body": body}
        return {MAIN_PORT: items, RESPONSE_PORT: [answer]}


def _status(value: Any) -> int:
    text = str(value).strip() if not isinstance(value, bool) else ""
    if not text.isdigit() or not 200 <= int(text) <= 599:
        raise NodeError(
            "InvalidParameters",
            f"status must be an HTTP status from 200 to 599, not {value!r}",
            retryable=False,
        )
    return int(text)


def _header_value(name: str, value: Any) -> str:
    if not _HEADER_NAME.match(name) or name.lower() in RESERVED_HEADERS:
        raise NodeError(
            "InvalidParameters", f"{name!r} is not a header the node may set", retryable=False
        )
    text = value if isinstance(value, str) else str(value)
    if any(c in text for c in "\r\n\x00"):
        raise NodeError(
            "InvalidParameters", f"header {name!r} holds a line break or NUL", retryable=False
        )
    return text
