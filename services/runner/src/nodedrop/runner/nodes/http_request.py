"""The ``http_request`` node (docs/nodes.md): one HTTP request per input item.

Output, one item per input item and in input order::

    {"status": 200, "headers": {"content-type": "..."}, "body": ..., "body_encoding": "json"}

``headers`` has lower-case names; a repeated header's values are joined with ``", "``.
``body_encoding`` (an addition to the contract's ``status``/``headers``/``body``) says what
``body`` is:

- ``"json"``: the parsed document, when the content type is JSON (``application/json``,
  ``*/*+json``, ``text/json``) and the body parses;
- ``"text"``: a string, for textual content types (``text/*``, XML, JavaScript, forms, YAML, CSV,
  anything with a ``charset``), for JSON that does not parse, for an empty body (``""``) and for a
  body without content type that is valid UTF-8; decoded with the declared charset, else UTF-8,
  undecodable bytes replaced;
- ``"base64"``: the bytes base64-encoded, for every other content type (images, PDFs,
  ``application/octet-stream``, unknown vendor types).

Errors (all name the failing item's index; the first failing item fails the node):

- ``HttpServerError`` (retryable): status 5xx or 429, network errors, timeouts, TLS failures;
- ``HttpClientError`` (retryable, see :data:`CLIENT_ERRORS_RETRYABLE`): other 4xx statuses;
- ``HttpAddressRefused`` (not retryable): a private/loopback/... address or a non-http(s) URL,
  at the first request or at any redirect (:mod:`nodedrop.runner.netguard`);
- ``HttpResponseTooLarge`` (not retryable): the body exceeds the size limit;
- ``HttpTooManyRedirects`` (not retryable): more than ``max_redirects`` redirects;
- ``InvalidParameters`` (not retryable): a URL that does not parse, both ``json`` and ``body``, ...
- ``CredentialError``: the ``credential`` cannot be used (see :mod:`nodedrop.runner.credentials`)
  or an OAuth2 token cannot be had (:mod:`nodedrop.runner.nodes.oauth2`).

``credential`` names one of the requester's credentials (docs/credentials.md); the runner has
resolved it into ``ctx`` before the node runs, and it is applied to every item's request after
the item's own headers and query (so it wins over a header of the same name). Its values are
never part of an output, a message or a log line of this node.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

import httpx

from nodedrop.contracts.items import MAIN_PORT, Item, PortItems
from nodedrop.contracts.nodetypes import HttpRequestParameters, HttpScalar, passthrough_items
from nodedrop.runner.netguard import NetGuard, UrlRefusedError, check_scheme, guarded_client
from nodedrop.runner.nodes.api import NodeContext, NodeError
from nodedrop.runner.nodes.builtins import parse_parameters
from nodedrop.runner.nodes.flow import Pacer, rendered
from nodedrop.runner.nodes.oauth2 import TokenCache

#: Whether a 4xx answer (``HttpClientError``) may be retried. Yes, deliberately: the contract's
#: own example lists ``HttpClientError`` in ``retry.non_retryable_errors``, which only means
#: something if it is retryable by default; some 4xx are transient (408, 409, 423, 425); and
#: there is no list to opt an error type INTO retries, so a non-retryable 4xx would take that
#: choice from users for good. Nothing retries unless the node's ``retry.max_attempts`` > 1.
CLIENT_ERRORS_RETRYABLE = True

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# The headers a redirect to another origin keeps: any other header the node sets may carry a
# credential (X-Api-Key, Private-Token, a signature), and only the user knows which, so none of
# them is sent on to a site the user did not name. These describe the request, not who sends it.
_HEADERS_KEPT_ACROSS_ORIGINS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "content-language",
        "content-length",
        "content-type",
        "idempotency-key",
        "transfer-encoding",
        "user-agent",
    }
)
_ERROR_BODY_CHARS = 300
# RFC 9110 field names are tokens; values must not smuggle another header line in.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_IN_VALUES = re.compile(r"[\r\n\0]")
_TEXT_TYPES = frozenset(
    {
        "application/javascript",
        "application/ecmascript",
        "application/xml",
        "application/x-www-form-urlencoded",
        "application/yaml",
        "application/x-yaml",
        "application/csv",
        "application/graphql",
        "application/sql",
    }
)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Per node instance; the node's own ``timeout_ms``, enforced by the runner, still applies
    on top of ``timeout_s``."""

    #: Seconds for one item's whole exchange: connects, redirects, reading the body.
    timeout_s: float = 30.0
    #: Decoded body bytes accepted per response; counted while streaming, never buffered beyond.
    max_response_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    #: Items of one node run in flight at once. 1: items go one after the other, and after a
    #: failure no later item is sent.
    max_concurrency: int = 1

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.max_response_bytes < 0 or self.max_redirects < 0:
            raise ValueError(f"invalid HTTP limits: {self}")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")


@dataclass(frozen=True, slots=True, repr=False)
class Authorization:
    """What a credential adds to each request: headers and query parameters."""

    headers: dict[str, str]
    query: dict[str, str]


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    """One item's request, as prepared from that item's parameters."""

    item_index: int
    method: str
    url: httpx.URL
    headers: httpx.Headers
    content: bytes | None


class HttpItemError(NodeError):
    """A :class:`NodeError` that knows which item failed."""

    def __init__(self, item_index: int, type: str, message: str, retryable: bool) -> None:
        super().__init__(type, message, retryable)
        self.item_index = item_index


def idempotency_key(execution_id: str, node: str, item_index: int) -> str:
    """The ``Idempotency-Key`` of one item's request: the same on every attempt of the node (the
    attempt number is not part of it), different for each item, node and execution."""
    identity = json.dumps(["nodedrop.http_request.v1", execution_id, node, item_index])
    return hashlib.sha256(identity.encode()).hexdigest()


class HttpRequestNode:
    """``HttpRequestNode(allow_private=config.http_allow_private)``; ``await node.aclose()`` on
    shutdown closes its pooled connections.

    ``client_factory`` replaces the default client (tests: a guard with a fake resolver); the
    client must not follow redirects itself, and ``allow_private`` only configures the default."""

    type = "http_request"

    def __init__(
        self,
        *,
        allow_private: bool = False,
        limits: HttpLimits | None = None,
        client_factory: Callable[[], httpx.AsyncClient] | None = None,
    ) -> None:
        self.limits = limits if limits is not None else HttpLimits()
        self._client_factory = client_factory or (
            lambda: guarded_client(
                NetGuard(allow_private=allow_private), timeout=self.limits.timeout_s
            )
        )
        self._client: httpx.AsyncClient | None = None
        self._tokens = TokenCache(self._shared_client, timeout_s=self.limits.timeout_s)

    def _shared_client(self) -> httpx.AsyncClient:
        # Created on first use, inside the runner's event loop, then shared by every run so
        # connections are pooled. No await between the check and the assignment: no race.
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def run(
        self, ctx: NodeContext, node_input: PortItems, parameters: dict[str, Any]
    ) -> PortItems:
        items = passthrough_items(node_input)
        # Every item's request is prepared before any is sent, so a bad parameter fails the node
        # without side effects; pausing as set and if do, since rendering may be heavy.
        requests: list[OutgoingRequest] = []
        pacer = Pacer()
        authorization = await self.authorization(ctx) if items else None
        for index, item in enumerate(items):
            rendered_parameters = rendered(parameters, ctx, item)
            requests.append(self.request_for(ctx, index, item, rendered_parameters, authorization))
            if pacer.due():
                await pacer.pause()
        return {MAIN_PORT: await self._send_all(requests)}

    async def authorization(self, ctx: NodeContext) -> Authorization | None:
        """What the node's ``credential`` adds to each request (None without one)."""
        credential = ctx.credentials.get("credential")
        if credential is None:
            return None
        fields = credential.fields
        try:
            match credential.type:
                case "http_header":
                    return Authorization({str(fields["name"]): str(fields["value"])}, {})
                case "bearer_token":
                    return _bearer(str(fields["token"]))
                case "basic_auth":
                    pair = f"{fields['username']}:{fields['password']}".encode()
                    encoded = base64.b64encode(pair).decode("ascii")
                    ctx.derived_secrets.append(encoded)
                    return Authorization({"Authorization": f"Basic {encoded}"}, {})
                case "query_parameter":
                    return Authorization({}, {str(fields["name"]): str(fields["value"])})
                case "oauth2_client_credentials":
                    token = await self._tokens.token(credential)
                    ctx.derived_secrets.append(token)
                    return _bearer(token)
        except KeyError as error:
            raise NodeError(
                "CredentialError",
                f"credential {credential.id!r} of type {credential.type!r} has no field {error}",
                retryable=False,
            ) from None
        raise NodeError(
            "CredentialError",
            f"credential {credential.id!r} is of type {credential.type!r}, which http_request "
            "cannot apply (it applies http_header, bearer_token, basic_auth, query_parameter "
            "and oauth2_client_credentials)",
            retryable=False,
        )

    def request_for(
        self,
        ctx: NodeContext,
        item_index: int,
        item: Item,
        parameters: dict[str, Any],
        authorization: Authorization | None = None,
    ) -> OutgoingRequest:
        """The request for one item, from the parameters rendered for that item."""
        try:
            chosen = parse_parameters(HttpRequestParameters, parameters)
        except NodeError as error:
            # Parameters will be rendered per item: say which item's are wrong.
            raise _invalid(item_index, error.message) from error
        try:
            url = httpx.URL(chosen.url)
        except httpx.InvalidURL as error:
            raise _invalid(item_index, f"invalid url {chosen.url!r}: {error}") from error
        _check_url(item_index, url)
        if chosen.query:
            url = url.copy_merge_params(_texts(chosen.query))
        headers = _headers(item_index, _texts(chosen.headers))
        if authorization is not None:
            # After the item's own: the credential wins over a header or parameter of its name.
            if authorization.query:
                url = url.copy_merge_params(authorization.query)
            for name, value in authorization.headers.items():
                headers[name] = value
        # A key the user set (e.g. rendered from the item) wins over ours.
        headers.setdefault(
            "Idempotency-Key", idempotency_key(ctx.execution_id, ctx.node, item_index)
        )
        content: bytes | None = None
        if chosen.json_body is not None and chosen.body is not None:
            raise _invalid(item_index, "give either json or body, not both")
        if chosen.json_body is not None:
            try:
                content = json.dumps(chosen.json_body, allow_nan=False).encode()
            except (TypeError, ValueError) as error:
                raise _invalid(item_index, f"json is not JSON: {error}") from error
            headers.setdefault("Content-Type", "application/json")
        elif chosen.body is not None:
            content = chosen.body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        return OutgoingRequest(item_index, chosen.method, url, headers, content)

    async def _send_all(self, requests: list[OutgoingRequest]) -> list[Item]:
        outputs: list[Item] = [{} for _ in requests]
        slots = asyncio.Semaphore(self.limits.max_concurrency)

        async def send(request: OutgoingRequest) -> None:
            async with slots:
                outputs[request.item_index] = await self._send(request)

        try:
            async with asyncio.TaskGroup() as group:
                for request in requests:
                    group.create_task(send(request))
        except ExceptionGroup as group_error:
            # Unwrapped for the runner, which names errors by their type. The first failing item
            # by index: with concurrency, several can fail before the others are cancelled.
            failures = group_error.exceptions
            item_errors = [error for error in failures if isinstance(error, HttpItemError)]
            if item_errors:
                raise min(item_errors, key=lambda error: error.item_index) from None
            raise failures[0] from None
        return outputs

    async def _send(self, request: OutgoingRequest) -> Item:
        index = request.item_index
        try:
            async with asyncio.timeout(self.limits.timeout_s):
                final, response, body = await self._exchange(request)
        except TimeoutError:
            raise _server_error(
                index, f"{_describe(request)}: no response within {self.limits.timeout_s:g} s"
            ) from None
        except UrlRefusedError as error:
            raise _item_error(index, "HttpAddressRefused", str(error), retryable=False) from error
        except httpx.LocalProtocolError as error:
            # Our side cannot even write the request (e.g. a header value with a line break):
            # the parameters are wrong, retrying cannot help.
            raise _invalid(index, f"{_describe(request)}: {error}") from error
        except httpx.HTTPError as error:
            # Network, timeout, TLS and protocol errors: the next attempt may well succeed.
            detail = str(error) or type(error).__name__
            raise _server_error(index, f"{_describe_hop(error, request)}: {detail}") from error
        status = response.status_code
        if status == 429 or status >= 500:
            raise _server_error(index, _status_message(final, response, body))
        if status >= 400:
            raise _item_error(
                index,
                "HttpClientError",
                _status_message(final, response, body),
                retryable=CLIENT_ERRORS_RETRYABLE,
            )
        content_type = response.headers.get("content-type")
        decoded, encoding = decode_body(body, content_type)
        return {
            "status": status,
            "headers": {name: response.headers[name] for name in response.headers},
            "body": decoded,
            "body_encoding": encoding,
        }

    async def _exchange(
        self, request: OutgoingRequest
    ) -> tuple[OutgoingRequest, httpx.Response, bytes]:
        """Sends ``request`` and follows up to ``max_redirects`` redirects; every hop's
        connection is checked by the guard in the client's transport. Returns the last hop's
        request, its response and the response's body."""
        client = self._shared_client()
        for _hop in range(self.limits.max_redirects + 1):
            response = await client.send(
                client.build_request(
                    request.method, request.url, headers=request.headers, content=request.content
                ),
                stream=True,
            )
            try:
                if response.status_code in _REDIRECT_STATUSES and "location" in response.headers:
                    request = _redirected(request, response)
                    continue
                body = await self._read_body(request, response)
            finally:
                await response.aclose()
            return request, response, body
        raise _item_error(
            request.item_index,
            "HttpTooManyRedirects",
            f"more than {self.limits.max_redirects} redirects, the last to {_redact(request.url)}",
            retryable=False,
        )

    async def _read_body(self, request: OutgoingRequest, response: httpx.Response) -> bytes:
        limit = self.limits.max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(request, limit)
        chunks: list[bytes] = []
        size = 0
        # Decoded bytes are what we hold in memory, so they are what is counted: a small gzip
        # body that inflates past the limit is stopped too.
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise _too_large(request, limit)
            chunks.append(chunk)
        return b"".join(chunks)


def _bearer(token: str) -> Authorization:
    return Authorization({"Authorization": f"Bearer {token}"}, {})


def decode_body(content: bytes, content_type: str | None) -> tuple[Any, str]:
    """The output's ``body`` and ``body_encoding`` for a response body (see the module doc)."""
    if not content:
        return "", "text"
    mime, charset = _parse_content_type(content_type)
    if mime in {"application/json", "text/json"} or mime.endswith("+json"):
        try:
            return json.loads(content.decode(charset or "utf-8", errors="replace")), "json"
        except ValueError:
            return _decode_text(content, charset), "text"
    if mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith("+xml") or charset:
        return _decode_text(content, charset), "text"
    if not mime:
        try:
            return content.decode("utf-8"), "text"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(content).decode("ascii"), "base64"


def _parse_content_type(content_type: str | None) -> tuple[str, str | None]:
    if not content_type:
        return "", None
    message = Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    return message.get_content_type(), charset if isinstance(charset, str) else None


def _decode_text(content: bytes, charset: str | None) -> str:
    try:
        return content.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return content.decode("utf-8", errors="replace")


def _redirected(request: OutgoingRequest, response: httpx.Response) -> OutgoingRequest:
    """The request a redirect asks for, as browsers and httpx make it."""
    try:
        url = response.url.join(response.headers["location"])
    except httpx.InvalidURL as error:
        raise httpx.RemoteProtocolError(f"invalid redirect location: {error}") from error
    check_scheme(url)
    method, content = request.method, request.content
    headers = request.headers.copy()
    status = response.status_code
    # 303 means "GET the answer there"; 301/302 after a POST are turned into GET by every client.
    if (status == 303 and method != "HEAD") or (status in {301, 302} and method == "POST"):
        method, content = "GET", None
        for name in ("content-type", "content-length", "transfer-encoding"):
            headers.pop(name, None)
    if not _same_origin(request.url, url):
        for name in [n for n in headers if n.lower() not in _HEADERS_KEPT_ACROSS_ORIGINS]:
            headers.pop(name, None)
    return OutgoingRequest(request.item_index, method, url, headers, content)


def _same_origin(old: httpx.URL, new: httpx.URL) -> bool:
    if old.host != new.host:
        return False
    if (old.scheme, old.port) == (new.scheme, new.port):
        return True
    # http -> https on the default ports of the same host is an upgrade, not another site.
    return (old.scheme, old.port, new.scheme, new.port) == ("http", None, "https", None)


def _texts(values: Mapping[str, HttpScalar]) -> dict[str, str]:
    """Query and header values as sent: numbers and booleans as their JSON text."""
    return {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()
    }


def _headers(item_index: int, given: dict[str, str]) -> httpx.Headers:
    """The user's headers, checked here so that a bad one fails as a parameter error before
    anything is sent. Values are sent as UTF-8, as curl does with a UTF-8 argument."""
    for name, value in given.items():
        if not _TOKEN.fullmatch(name):
            raise _invalid(item_index, f"invalid header name {name!r}")
        if _FORBIDDEN_IN_VALUES.search(value):
            raise _invalid(item_index, f"header {name!r} contains a line break or NUL")
    return httpx.Headers([(name.encode(), value.encode()) for name, value in given.items()])


def _check_url(item_index: int, url: httpx.URL) -> None:
    if not url.scheme:
        raise _invalid(item_index, f"url {_redact(url)!r} is not absolute")
    try:
        check_scheme(url)
    except UrlRefusedError as error:
        raise _item_error(item_index, "HttpAddressRefused", str(error), retryable=False) from error
    if not url.host:
        raise _invalid(item_index, f"url {_redact(url)!r} has no host")


def _redact(url: httpx.URL) -> str:
    """The URL for messages: query strings and user info often carry secrets."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


def _describe(request: OutgoingRequest) -> str:
    return f"{request.method} {_redact(request.url)}"


def _describe_hop(error: httpx.HTTPError, request: OutgoingRequest) -> str:
    """The request that failed, which after redirects is not the first one."""
    try:
        hop = error.request
    except RuntimeError:  # httpx did not say
        return _describe(request)
    return f"{hop.method} {_redact(hop.url)}"


def _status_message(request: OutgoingRequest, response: httpx.Response, body: bytes) -> str:
    message = f"{_describe(request)}: HTTP {response.status_code} {response.reason_phrase}"
    text = _decode_text(body[: _ERROR_BODY_CHARS * 4], response.charset_encoding).strip()
    if text:
        # The start of the body: APIs explain their errors there.
        message += f": {text[:_ERROR_BODY_CHARS]}"
    return message


def _item_error(item_index: int, error_type: str, message: str, *, retryable: bool) -> NodeError:
    return HttpItemError(item_index, error_type, f"item {item_index}: {message}", retryable)


def _server_error(item_index: int, message: str) -> NodeError:
    return _item_error(item_index, "HttpServerError", message, retryable=True)


def _invalid(item_index: int, message: str) -> NodeError:
    return _item_error(item_index, "InvalidParameters", message, retryable=False)


def _too_large(request: OutgoingRequest, limit: int) -> NodeError:
    return _item_error(
        request.item_index,
        "HttpResponseTooLarge",
        f"{_describe(request)}: the response body exceeds {limit} bytes",
        retryable=False,
    )
