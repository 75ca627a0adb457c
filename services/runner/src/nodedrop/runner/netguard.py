"""Guard against server-side request forgery for the HTTP the runner sends on users' behalf.

Workflow authors choose the URLs, so without a guard any workflow could reach the runner's own
network: loopback services, the private LAN, cloud metadata (169.254.169.254). The guard sits at
the one place every connection is made, httpcore's network backend, so nothing can bypass it:
not redirects, not a second connection to the same host, not a URL form we did not think of.

For each new connection it resolves the host ONCE, refuses when any resolved address is not a
public one, and connects to exactly those checked addresses. Connecting by name after checking
would resolve again, and a DNS server answering a public address first and a private one second
(DNS rebinding) would get us through. TLS still verifies the certificate for, and sends SNI with,
the URL's host name: httpcore starts TLS with the origin's host, not the address connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Returns the addresses ``host`` resolves to, in the order to try them.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})

#: Connections shared by all requests of one client (httpx's defaults).
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

# Ranges refused whatever the running Python's ipaddress tables say: its is_* flags changed
# between Python versions (e.g. 100.64/10, 64:ff9b:1::/48), and these must never pass.
_REFUSED_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("0.0.0.0/8"), "unspecified"),
    (ipaddress.ip_network("10.0.0.0/8"), "private"),
    (ipaddress.ip_network("100.64.0.0/10"), "carrier-grade NAT"),
    (ipaddress.ip_network("127.0.0.0/8"), "loopback"),
    (ipaddress.ip_network("169.254.0.0/16"), "link-local"),
    (ipaddress.ip_network("172.16.0.0/12"), "private"),
    (ipaddress.ip_network("192.168.0.0/16"), "private"),
    (ipaddress.ip_network("224.0.0.0/4"), "multicast"),
    (ipaddress.ip_network("240.0.0.0/4"), "reserved"),
    (ipaddress.ip_network("::1/128"), "loopback"),
    (ipaddress.ip_network("::/128"), "unspecified"),
    (ipaddress.ip_network("::/96"), "IPv4-compatible"),  # deprecated: refused whatever it embeds
    (ipaddress.ip_network("64:ff9b:1::/48"), "local-use NAT64"),
    (ipaddress.ip_network("2001::/32"), "Teredo"),  # the client address is obfuscated: unknowable
    (ipaddress.ip_network("fc00::/7"), "private"),
    (ipaddress.ip_network("fe80::/10"), "link-local"),
    (ipaddress.ip_network("fec0::/10"), "site-local"),
    (ipaddress.ip_network("ff00::/8"), "multicast"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UrlRefusedError(Exception):
    """The guard refused a URL or connection; the message says what and why."""


class SchemeRefusedError(UrlRefusedError):
    def __init__(self, scheme: str) -> None:
        super().__init__(f"scheme {scheme!r} is refused: only http and https are allowed")
        self.scheme = scheme


class AddressRefusedError(UrlRefusedError):
    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(
            f"refused to connect to {host}: {address} is not a public address ({reason}); "
            "NODEDROP_HTTP_ALLOW_PRIVATE=true allows private addresses"
        )
        self.host = host
        self.address = address
        self.reason = reason


def refusal_reason(address: str | IPAddress) -> str | None:
    """Why a connection to ``address`` must be refused (e.g. ``"loopback"``), or ``None`` when it
    is a public address. ``address`` is a canonical address as a resolver returns it; the
    decimal, octal, hex and short IPv4 spellings are the resolver's to normalise."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # Whoever routes these forms delivers to the embedded IPv4 address (the kernel for
            # ::ffff:a.b.c.d, a NAT64 gateway, a 6to4 relay): judge that address.
            reason = refusal_reason(embedded)
            return None if reason is None else f"{reason}: embeds IPv4 {embedded}"
    for network, reason in _REFUSED_NETWORKS:
        if ip in network:
            return reason
    # The standard library's tables cover the rest (documentation, benchmarking, protocol
    # assignment ranges...), in whichever Python this runs.
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "non-global"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver, without blocking the event loop. It also turns every
    numeric spelling of an address (``2130706433``, ``0x7f.1``, ``127.1``) into canonical form."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    # An address can come once per family flag combination; keep the resolver's order.
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_scheme(url: httpx.URL) -> None:
    """Only http and https, whatever ``allow_private`` says: other schemes reach other things."""
    if url.scheme not in ALLOWED_SCHEMES:
        raise SchemeRefusedError(url.scheme)


class NetGuard:
    """Resolves a host once and checks every address it resolves to."""

    def __init__(
        self, *, allow_private: bool = False, resolver: Resolver = system_resolver
    ) -> None:
        self.allow_private = allow_private
        self._resolver = resolver

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for ``host``; raises :class:`AddressRefusedError` when any of
        them is not public (one bad address is enough: we must not choose among them by luck),
        ``OSError`` when the name does not resolve."""
        addresses = list(await self._resolver(host, port))
        if not addresses:
            raise socket.gaierror(f"{host} resolved to no address")
        if not self.allow_private:
            for address in addresses:
                reason = refusal_reason(address)
                if reason is not None:
                    raise AddressRefusedError(host, address, reason)
        return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to the addresses the guard checked.

    httpcore calls ``connect_tcp`` with the URL's host for every new connection and then starts
    TLS with that same host name, so pinning the address here keeps SNI and certificate checks
    on the name."""

    def __init__(
        self, guard: NetGuard, backend: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._guard = guard
        self._backend = backend if backend is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            # The connect timeout covers resolving too: a slow DNS server is a slow connect.
            async with asyncio.timeout(timeout):
                addresses = await self._guard.resolve(host, port)
        except TimeoutError as error:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from error
        except OSError as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
        # Try the checked addresses in the resolver's order (e.g. IPv6 then IPv4 for a dual-stack
        # host whose IPv6 is unreachable from here), never anything else.
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        assert failure is not None  # resolve() returns at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # A unix socket is local by definition; the transport below is never configured with one.
        raise httpcore.ConnectError("connections to unix sockets are refused")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (connection pool, exception mapping, streaming) with the guarded
    network backend underneath. No proxy support: a proxy would make the connection for us, to
    addresses the guard never sees."""

    def __init__(
        self,
        guard: NetGuard,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify)
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # httpx offers no parameter for the network backend, so the pool it built is replaced by
        # the same pool with ours. If httpx ever stops keeping its pool here, fail loudly rather
        # than send unguarded requests.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx.AsyncHTTPTransport changed: cannot install the SSRF guard")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(guard, backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_scheme(request.url)
        return await super().handle_async_request(request)


def guarded_client(
    guard: NetGuard,
    *,
    timeout: float = 30.0,
    verify: ssl.SSLContext | bool = True,
    limits: httpx.Limits = DEFAULT_LIMITS,
    backend: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every connection goes through ``guard``.

    It follows no redirects (the caller does, checking each hop) and ignores the environment
    (``trust_env=False``): ``HTTP_PROXY`` would route requests around the guard, ``.netrc`` would
    add credentials to users' requests."""
    return httpx.AsyncClient(
        transport=GuardedTransport(guard, verify=verify, limits=limits, backend=backend),
        follow_redirects=False,
        trust_env=False,
        timeout=timeout,
    )
