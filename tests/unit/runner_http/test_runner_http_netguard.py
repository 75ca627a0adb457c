"""The SSRF guard's address classification and resolution, and the idempotency key.

The resolver tests resolve numeric spellings only: the system resolver parses those itself, no
DNS query leaves the machine.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

import httpx
import pytest

from nodedrop.runner.netguard import (
    AddressRefusedError,
    NetGuard,
    SchemeRefusedError,
    check_scheme,
    refusal_reason,
    system_resolver,
)
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.http_request import HttpLimits, HttpRequestNode, idempotency_key

REFUSED = [
    # IPv4
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("169.254.0.1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", None),  # documentation (TEST-NET-1): any reason, but refused
    ("198.18.0.1", None),  # benchmarking
    # IPv6
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("2001::1", "Teredo"),
    ("2001:db8::1", None),  # documentation
    ("100::1", None),  # discard-only
    ("64:ff9b:1::1", "local-use NAT64"),
    # IPv4 inside IPv6: judged by the IPv4 address they reach
    ("::ffff:127.0.0.1", "loopback: embeds IPv4 127.0.0.1"),
    ("::ffff:7f00:1", "loopback: embeds IPv4 127.0.0.1"),
    ("::ffff:10.0.0.1", "private: embeds IPv4 10.0.0.1"),
    ("::ffff:169.254.169.254", "link-local: embeds IPv4 169.254.169.254"),
    ("::ffff:0.0.0.0", "unspecified: embeds IPv4 0.0.0.0"),
    ("::127.0.0.1", "IPv4-compatible"),  # deprecated: refused whatever it embeds
    ("::8.8.8.8", "IPv4-compatible"),
    ("64:ff9b::7f00:1", "loopback: embeds IPv4 127.0.0.1"),  # NAT64
    ("64:ff9b::a9fe:a9fe", "link-local: embeds IPv4 169.254.169.254"),
    ("64:ff9b::192.168.0.1", "private: embeds IPv4 192.168.0.1"),
    ("2002:7f00:1::1", "loopback: embeds IPv4 127.0.0.1"),  # 6to4
    ("2002:c0a8:101::1", "private: embeds IPv4 192.168.1.1"),
]

ALLOWED = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",  # just below 100.64/10
    "100.128.0.0",  # just above
    "172.15.255.255",  # just outside 172.16/12
    "172.32.0.0",
    "169.253.255.255",
    "11.0.0.1",
    "223.255.255.255",  # just below multicast
    "2606:2800:220:1:248:1893:25c8:1946",
    "2001:4860:4860::8888",
    "2a00:1450:4001:80b::200e",
    "::ffff:93.184.216.34",  # mapped public IPv4
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_non_public_addresses_are_refused(address: str, reason: str | None) -> None:
    found = refusal_reason(address)
    assert found is not None
    if reason is not None:
        assert found == reason


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal_reason(address) is None


# Every spelling a URL can use for an address, as the resolver normalises it.
SPELLINGS = [
    ("2130706433", "127.0.0.1"),  # decimal
    ("0x7f000001", "127.0.0.1"),  # hex
    ("017700000001", "127.0.0.1"),  # octal
    ("0177.0.0.1", "127.0.0.1"),  # octal part
    ("0x7f.1", "127.0.0.1"),  # hex part, short form
    ("127.1", "127.0.0.1"),  # short form
    ("0", "0.0.0.0"),
    ("2852039166", "169.254.169.254"),  # metadata, decimal
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
    ("0xa9fea9fe", "169.254.169.254"),
    ("012.1", "10.0.0.1"),
    ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
    ("::ffff:7f00:1", "::ffff:127.0.0.1"),
    ("64:ff9b::7f00:1", "64:ff9b::7f00:1"),
    ("0:0:0:0:0:0:0:1", "::1"),
]


@pytest.mark.parametrize(("host", "canonical"), SPELLINGS)
async def test_the_resolver_normalises_every_numeric_spelling(host: str, canonical: str) -> None:
    assert await system_resolver(host, 80) == [canonical]


@pytest.mark.parametrize(("host", "canonical"), SPELLINGS)
async def test_the_guard_refuses_every_numeric_spelling_of_a_private_address(
    host: str, canonical: str
) -> None:
    with pytest.raises(AddressRefusedError) as refused:
        await NetGuard().resolve(host, 80)
    assert refused.value.host == host
    assert refused.value.address == canonical
    assert host in str(refused.value)
    assert canonical in str(refused.value)


async def test_allow_private_lets_private_addresses_through() -> None:
    assert await NetGuard(allow_private=True).resolve("127.1", 80) == ["127.0.0.1"]


def fixed(*addresses: str) -> NetGuard:
    async def resolver(host: str, port: int) -> Sequence[str]:
        return addresses

    return NetGuard(resolver=resolver)


async def test_public_answers_are_returned_in_order() -> None:
    assert await fixed("2606:2800:220:1::1", "93.184.216.34").resolve("ok.test", 443) == [
        "2606:2800:220:1::1",
        "93.184.216.34",
    ]


async def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(AddressRefusedError) as refused:
        await fixed("93.184.216.34", "10.1.2.3").resolve("mixed.test", 80)
    assert refused.value.address == "10.1.2.3"
    assert "mixed.test" in str(refused.value)


async def test_an_empty_answer_is_a_resolution_failure() -> None:
    with pytest.raises(socket.gaierror):
        await fixed().resolve("nothing.test", 80)


@pytest.mark.parametrize("url", ["http://a.test/", "https://a.test/", "HTTPS://a.test/"])
def test_http_and_https_are_the_allowed_schemes(url: str) -> None:
    check_scheme(httpx.URL(url))


@pytest.mark.parametrize(
    "url", ["ftp://a.test/", "file:///etc/passwd", "gopher://a.test/", "ws://a.test/"]
)
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(SchemeRefusedError):
        check_scheme(httpx.URL(url))


# ---------------------------------------------------------------- idempotency key


def test_the_idempotency_key_is_stable_and_distinct() -> None:
    key = idempotency_key("exec-1", "fetch", 0)
    assert key == idempotency_key("exec-1", "fetch", 0)
    assert len(key) == 64
    assert int(key, 16) >= 0
    others = {
        idempotency_key("exec-1", "fetch", 1),
        idempotency_key("exec-1", "other", 0),
        idempotency_key("exec-2", "fetch", 0),
        # No ambiguity from joining the parts naively.
        idempotency_key("exec-1f", "etch", 0),
    }
    assert key not in others
    assert len(others) == 4


def test_every_attempt_of_an_item_sends_the_same_key() -> None:
    node = HttpRequestNode()
    parameters = {"url": "https://api.example.org/orders"}
    keys = [
        node.request_for(NodeContext("exec-1", "fetch", attempt), 3, {}, parameters).headers[
            "idempotency-key"
        ]
        for attempt in (1, 2, 7)
    ]
    assert keys == [idempotency_key("exec-1", "fetch", 3)] * 3


def test_items_get_different_keys() -> None:
    node = HttpRequestNode()
    ctx = NodeContext("exec-1", "fetch", 1)
    parameters = {"url": "https://api.example.org/orders"}
    keys = {node.request_for(ctx, i, {}, parameters).headers["idempotency-key"] for i in range(5)}
    assert len(keys) == 5


def test_a_key_the_user_sets_wins() -> None:
    request = HttpRequestNode().request_for(
        NodeContext("exec-1", "fetch", 1),
        0,
        {},
        {"url": "https://a.test/", "headers": {"idempotency-key": "mine"}},
    )
    assert request.headers.get_list("Idempotency-Key") == ["mine"]


# ---------------------------------------------------------------- request preparation


def test_query_parameters_are_merged_into_the_url() -> None:
    request = HttpRequestNode().request_for(
        NodeContext("e", "n", 1),
        0,
        {},
        {"url": "https://a.test/p?a=1&b=2", "query": {"b": "3", "c": "x y"}},
    )
    assert request.url.params == httpx.QueryParams({"a": "1", "b": "3", "c": "x y"})
    assert request.url.path == "/p"


def test_json_is_sent_as_json() -> None:
    request = HttpRequestNode().request_for(
        NodeContext("e", "n", 1), 0, {}, {"url": "https://a.test/", "json": {"a": [1, "é"]}}
    )
    assert request.content is not None
    assert httpx.Response(200, content=request.content).json() == {"a": [1, "é"]}
    assert request.headers["content-type"] == "application/json"


def test_body_is_sent_as_utf8_text_unless_the_user_says_otherwise() -> None:
    node = HttpRequestNode()
    ctx = NodeContext("e", "n", 1)
    plain = node.request_for(ctx, 0, {}, {"url": "https://a.test/", "body": "é"})
    assert plain.content == "é".encode()
    assert plain.headers["content-type"] == "text/plain; charset=utf-8"
    csv = node.request_for(
        ctx,
        0,
        {},
        {"url": "https://a.test/", "body": "a,b", "headers": {"Content-Type": "text/csv"}},
    )
    assert csv.headers.get_list("content-type") == ["text/csv"]


@pytest.mark.parametrize(
    ("parameters", "error_type"),
    [
        ({"url": "https://a.test/", "json": {"a": 1}, "body": "x"}, "InvalidParameters"),
        ({"url": "http://0177.0.0.1/"}, "InvalidParameters"),  # httpx refuses to parse it
        ({"url": "/relative"}, "InvalidParameters"),
        ({"url": "https://a.test/", "method": "BREW"}, "InvalidParameters"),
        ({"url": "https://a.test/", "headers": {"X": "a\r\nInjected: 1"}}, "InvalidParameters"),
        ({"url": "https://a.test/", "headers": {"Bad Name": "1"}}, "InvalidParameters"),
        ({"url": "https://a.test/", "headers": {"X:": "1"}}, "InvalidParameters"),
        ({"url": "file:///etc/passwd"}, "HttpAddressRefused"),
        ({"url": "ftp://a.test/x"}, "HttpAddressRefused"),
    ],
)
def test_bad_parameters_fail_without_retry(parameters: dict[str, object], error_type: str) -> None:
    with pytest.raises(NodeError) as failed:
        HttpRequestNode().request_for(NodeContext("e", "n", 1), 4, {}, parameters)
    assert failed.value.type == error_type
    assert failed.value.retryable is False
    assert failed.value.message.startswith("item 4: ")


def test_header_values_are_sent_as_utf8() -> None:
    request = HttpRequestNode().request_for(
        NodeContext("e", "n", 1), 0, {}, {"url": "https://a.test/", "headers": {"X-Name": "Zoë"}}
    )
    assert (b"X-Name", "Zoë".encode()) in request.headers.raw


@pytest.mark.parametrize(
    "limits",
    [
        {"timeout_s": 0},
        {"max_response_bytes": -1},
        {"max_redirects": -1},
        {"max_concurrency": 0},
    ],
)
def test_nonsensical_limits_are_rejected(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"limits|max_concurrency"):
        HttpLimits(**limits)  # type: ignore[arg-type]
