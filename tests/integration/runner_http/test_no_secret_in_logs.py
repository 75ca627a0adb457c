"""What the http_request node sends is logged by httpx (at INFO when debugging): with the
services' redaction the URL's user info and query values never reach the log."""

from __future__ import annotations

import logging

import pytest

from nodedrop.platform.logsetup import install_redaction
from nodedrop.runner.nodes.api import NodeContext
from nodedrop.runner.nodes.http_request import HttpRequestNode

from .server import Running

pytestmark = pytest.mark.integration


async def test_a_request_with_credentials_in_its_url_logs_none_of_them(
    server: Running, node: HttpRequestNode, caplog: pytest.LogCaptureFixture
) -> None:
    install_redaction()
    url = server.url("/echo").replace("http://", "http://u:pw-SECRET@") + "?api_key=k-SECRET"
    with caplog.at_level(logging.DEBUG):
        output = await node.run(
            NodeContext("exec-1", "fetch", 1),
            {"main": [{}]},
            {"url": url, "query": {"token": "t-SECRET"}},
        )
    assert output["main"][0]["status"] == 200
    [seen] = server.app.seen
    assert seen.query["api_key"] == ["k-SECRET"]  # the secrets were sent, to the server only
    requests = [r for r in caplog.records if r.name == "httpx"]
    assert requests, "httpx logged no request line: the check would prove nothing"
    assert "/echo?api_key=***&token=***" in requests[0].getMessage()
    assert "SECRET" not in caplog.text
