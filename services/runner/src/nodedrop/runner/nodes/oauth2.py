"""OAuth2 client credentials (RFC 6749 4.4) for ``http_request``: access tokens fetched from a
credential's token URL, cached in the runner's memory and fetched again shortly before they
expire. Tokens are never recorded: the node's events name only the credential's id.

The token request goes through the node's own client, so the SSRF guard checks the token URL
as it checks every request URL. Failures are ``CredentialError``: a refusal (4xx, an answer
without a token) is not retried, the endpoint unavailable (5xx, network, timeout) is.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from nodedrop.runner.nodes.api import Credential, NodeError

#: A token is fetched again this long before it expires (or half-way through a shorter life).
REFRESH_MARGIN_S = 60.0
#: The lifetime assumed when the server does not say (``expires_in`` is only RECOMMENDED).
DEFAULT_LIFETIME_S = 300.0
#: The most of a token response that is read.
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True, repr=False)
class _Token:
    value: str
    refresh_at: float


class TokenCache:
    """Tokens by credential (and its fields: a credential changed since is fetched anew)."""

    def __init__(
        self,
        client: Callable[[], httpx.AsyncClient],
        *,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._clock = clock
        self._tokens: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def token(self, credential: Credential) -> str:
        key = _cache_key(credential)
        # One fetch per credential at a time: the attempts waiting behind it take its token.
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.value
            self._forget(credential.id)
            value, lifetime = await self._fetch(credential)
            self._tokens[key] = _Token(value, self._clock() + _fresh_for(lifetime))
            return value

    def _forget(self, credential_id: str) -> None:
        for key in [k for k in self._tokens if k.startswith(credential_id + ":")]:
            del self._tokens[key]

    async def _fetch(self, credential: Credential) -> tuple[str, float]:
        fields = credential.fields
        form = {"grant_type": "client_credentials"}
        if fields.get("scope"):
            form["scope"] = str(fields["scope"])
        auth: httpx.BasicAuth | None = None
        if fields.get("client_auth", "basic") == "body":
            form["client_id"] = str(fields["client_id"])
            form["client_secret"] = str(fields["client_secret"])
        else:
            auth = httpx.BasicAuth(str(fields["client_id"]), str(fields["client_secret"]))
        where = f"credential {credential.id!r}: the token endpoint"
        client = self._client()
        try:
            async with asyncio.timeout(self._timeout_s):
                request = client.build_request(
                    "POST",
                    str(fields["token_url"]),
                    data=form,
                    headers={"Accept": "application/json"},
                )
                if auth is not None:
                    request = next(auth.auth_flow(request))
                response = await client.send(request, stream=True)
                try:
                    body = await _read_capped(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise _unavailable(f"{where} did not answer within {self._timeout_s:g} s") from None
        except httpx.HTTPError as error:
            raise _unavailable(f"{where} failed: {type(error).__name__}") from None
        return _token_from(where, response.status_code, body)


def _cache_key(credential: Credential) -> str:
    digest = hashlib.sha256(json.dumps(credential.fields, sort_keys=True).encode()).hexdigest()
    return f"{credential.id}:{digest}"


def _fresh_for(lifetime: float) -> float:
    return max(lifetime - REFRESH_MARGIN_S, lifetime / 2)


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_TOKEN_RESPONSE_BYTES:
            raise httpx.DecodingError("token response larger than 1 MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _token_from(where: str, status: int, body: bytes) -> tuple[str, float]:
    try:
        answer: Any = json.loads(body)
    except ValueError:
        answer = None
    if status >= 500 or status == 429:
        raise _unavailable(f"{where} answered HTTP {status}")
    if status >= 400 or not isinstance(answer, dict):
        # The OAuth error code only (``invalid_client``...): its description could quote input.
        code = answer.get("error") if isinstance(answer, dict) else None
        said = f" ({code})" if isinstance(code, str) and code.isidentifier() else ""
        raise _refused(f"{where} refused: HTTP {status}{said}")
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise _refused(f"{where} answered HTTP {status} without an access_token")
    lifetime = answer.get("expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
        return token, DEFAULT_LIFETIME_S
    seconds = float(lifetime)
    return token, seconds if math.isfinite(seconds) and seconds > 0 else DEFAULT_LIFETIME_S


def _unavailable(message: str) -> NodeError:
    return NodeError("CredentialError", message, retryable=True)


def _refused(message: str) -> NodeError:
    return NodeError("CredentialError", message, retryable=False)
