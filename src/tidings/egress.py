"""The egress policy: every server-side request to a URL that came from outside goes through here.

"From outside" means webhook payloads (Messenger/Instagram CDN URLs, the download URL a
provider's media API answers with) and URLs admins type in (outgoing-webhook targets). Such a
URL must not make Tidings reach into its own network (a signed payload
pointing at a loopback service got that service's answer stored and shown to agents). So:

- only `http` and `https`, no credentials in the URL;
- the host is resolved once per connection and *every* address is checked: loopback,
  private, link-local (cloud metadata at 169.254.169.254), CGNAT, multicast, unspecified and
  reserved ranges are refused, as are unique-local IPv6 (fd00:ec2::254) and IPv6 forms that
  embed a refused IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64);
- the connection is made to the address that was checked (a network backend under httpcore
  does the resolving, so a DNS answer that changes between check and connect cannot slip in a
  private address; TLS still verifies the certificate against the URL's host name);
- redirects are followed by hand (at most MAX_REDIRECTS), each hop checked again, and a
  bearer token is not carried to another origin;
- environment proxies are ignored (a proxy would do its own resolving);
- callers bound the time and the bytes they read (`read_limited`, the media store's caps).

Provider API endpoints (a channel's `api_base_url`) are not filtered here: they are the
provider, configured by an admin, and pointing them at a local gateway or the sandbox is
legitimate (docs/operations.md, "Egress").

The sandbox and the tests name what they may reach in `TIDINGS_EGRESS_ALLOW` (hosts, IPs or
CIDRs, each optionally `:port`); with the sandbox on, Tidings' own origin is allowed too, since
the simulators serve their media from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from tidings.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_REDIRECTS = 5
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
LIMITS = httpx.Limits(max_connections=50, max_keepalive_connections=20, keepalive_expiry=30.0)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REDIRECTS = (301, 302, 303, 307, 308)


class EgressRefused(Exception):
    """The policy refused a destination; `reason` is a sentence agents and admins can read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AllowRule:
    """One `TIDINGS_EGRESS_ALLOW` entry: a host name or a network, optionally one port."""

    host: str | None
    network: IPNetwork | None
    port: int | None

    @classmethod
    def parse(cls, entry: str) -> AllowRule:
        entry = entry.strip()
        if "://" in entry:  # a base URL: its host and (explicit or default) port
            parts = urlsplit(entry)
            if not parts.hostname:
                raise ValueError(f"egress allow entry {entry!r} has no host")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return cls._of(parts.hostname, port)
        port_text: str | None = None
        if entry.startswith("["):  # [v6] or [v6]:port
            host, _, rest = entry[1:].partition("]")
            port_text = rest.removeprefix(":") or None
        elif entry.count(":") == 1:  # host:port or v4:port
            host, port_text = entry.split(":")
        else:  # a name, a v4, a v6, or a CIDR
            host = entry
        if not host:
            raise ValueError(f"egress allow entry {entry!r} has no host")
        if port_text is not None and not port_text.isdigit():
            raise ValueError(f"egress allow entry {entry!r}: port must be a number")
        return cls._of(host, int(port_text) if port_text else None)

    @classmethod
    def _of(cls, host: str, port: int | None) -> AllowRule:
        try:
            return cls(None, ipaddress.ip_network(host, strict=False), port)
        except ValueError:
            return cls(host.lower().rstrip("."), None, port)

    def _port_ok(self, port: int) -> bool:
        return self.port is None or self.port == port

    def allows_name(self, host: str, port: int) -> bool:
        return (
            self.host is not None and self.host == host.lower().rstrip(".") and self._port_ok(port)
        )

    def allows_address(self, ip: IPAddress, port: int) -> bool:
        if self.network is None or not self._port_ok(port):
            return False
        return ip.version == self.network.version and ip in self.network


def refused_range(ip: IPAddress) -> str | None:
    """Why `ip` may not be reached from a URL that came from outside, or None if it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refused_range(embedded)
            return f"{inner} (inside {ip})" if inner else None
    for label, test in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local (cloud metadata)", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if test:
            return f"a {label} address"
    if not ip.is_global:  # CGNAT 100.64.0.0/10 and the other special-purpose blocks
        return "a non-public address"
    return None


class EgressPolicy:
    """Which destinations a URL from outside may reach (see the module docstring)."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.rules = tuple(AllowRule.parse(a) for a in allow if a.strip())

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        allow = list(settings.egress_allow)
        if settings.sandbox:
            # The simulators serve media (and receive outgoing webhooks) at our own origin.
            allow.append(settings.public_url)
        return cls(allow)

    def check_url(self, url: str) -> tuple[str, int]:
        """The URL's host and port, or EgressRefused for a scheme or form not allowed."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise EgressRefused("The address is not a valid URL.") from None
        if parts.scheme not in ("http", "https"):
            raise EgressRefused(f"Only http and https addresses are fetched, not {parts.scheme!r}.")
        if not parts.hostname:
            raise EgressRefused("The address has no host.")
        if parts.username is not None or parts.password is not None:
            raise EgressRefused("Addresses with credentials in them are not fetched.")
        return parts.hostname, port or (443 if parts.scheme == "https" else 80)

    def check_address(self, host: str, ip: IPAddress, port: int, *, named: bool) -> None:
        if named or any(rule.allows_address(ip, port) for rule in self.rules):
            return
        why = refused_range(ip)
        if why is not None:
            shown = host if host == str(ip) else f"{host} ({ip})"
            raise EgressRefused(
                f"{shown} is {why}; Tidings does not fetch from internal networks "
                "(TIDINGS_EGRESS_ALLOW lists exceptions)."
            )

    async def check_destination(self, url: str) -> None:
        """Refuse, when it is typed in (an outgoing webhook, an automation webhook action), a
        URL that the policy would refuse at delivery: a wrong scheme, credentials, or a host
        that is or resolves to an internal address. A host that does not resolve yet passes
        (DNS may come later); delivery checks again on every request, so a name that changes
        to an internal address afterwards is still refused then."""
        host, port = self.check_url(url)
        try:
            await self.resolve(host, port)
        except httpcore.ConnectError:
            return

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of `host` that may be connected to, in resolver order; raises
        EgressRefused when none may."""
        named = any(rule.allows_name(host, port) for rule in self.rules)
        try:
            addresses = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except socket.gaierror as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
            addresses = []
            for info in infos:
                ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
                if ip not in addresses:
                    addresses.append(ip)
        ok: list[str] = []
        refusal: EgressRefused | None = None
        for ip in addresses:
            try:
                self.check_address(host, ip, port, named=named)
            except EgressRefused as exc:
                refusal = refusal or exc
                continue
            ok.append(str(ip))
        if not ok:
            raise refusal or EgressRefused(f"{host} has no address.")
        return ok


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks, and connects to a checked address: the pin against DNS rebinding."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        last: Exception | None = None
        for address in await self.policy.resolve(host, port):
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("Unix sockets are not reachable from outside URLs.")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__(trust_env=False, limits=LIMITS)
        # Same pool as httpx builds, on the checking backend (httpx takes no backend argument).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=LIMITS.max_connections,
            max_keepalive_connections=LIMITS.max_keepalive_connections,
            keepalive_expiry=LIMITS.keepalive_expiry,
            network_backend=_CheckedBackend(policy),
        )


class Egress:
    """The HTTP client for URLs from outside (one per process, on `Runtime.egress`)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.client = httpx.AsyncClient(
            transport=_CheckedTransport(policy),
            timeout=TIMEOUT,
            follow_redirects=False,
            trust_env=False,
        )
        # One client serves every URL from outside: keep no cookies between them.
        self.client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))

    async def aclose(self) -> None:
        await self.client.aclose()

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        timeout: httpx.Timeout | None = None,  # noqa: ASYNC109 (httpx's per-request timeout)
        follow_redirects: bool = True,
    ) -> AsyncIterator[httpx.Response]:
        """Send one request with the policy applied to every hop; the response body is not
        read yet. Redirects (GET/HEAD only) are followed by hand, each target checked again;
        credentials are dropped when a redirect leaves the origin. Raises EgressRefused, or
        httpx's errors."""
        sent_headers = dict(headers or {})
        origin = self.policy.check_url(url)
        for _hop in range(MAX_REDIRECTS + 1):
            self.policy.check_url(url)
            request = self.client.build_request(
                method, url, headers=sent_headers, content=content, timeout=timeout or TIMEOUT
            )
            try:
                response = await self.client.send(request, stream=True)
            except EgressRefused as exc:
                if _hop == 0:
                    raise
                raise EgressRefused(f"Redirected to a refused address: {exc.reason}") from None
            location = response.headers.get("location")
            redirect = (
                follow_redirects
                and method in ("GET", "HEAD")
                and response.status_code in _REDIRECTS
                and location
            )
            if not redirect:
                try:
                    yield response
                finally:
                    await response.aclose()
                return
            await response.aclose()
            url = str(response.url.join(location or ""))
            try:
                hop_origin = self.policy.check_url(url)
            except EgressRefused as exc:
                raise EgressRefused(f"Redirected to a refused address: {exc.reason}") from None
            if hop_origin != origin:
                sent_headers = _without_credentials(sent_headers)
        raise EgressRefused(f"More than {MAX_REDIRECTS} redirects.")

    async def post(
        self,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        timeout: httpx.Timeout | float | None = None,  # noqa: ASYNC109
        max_body: int = 65536,
    ) -> tuple[httpx.Response, bytes]:
        """POST without following redirects; reads at most `max_body` bytes of the answer."""
        t = httpx.Timeout(timeout) if isinstance(timeout, int | float) else timeout
        async with self.stream(
            "POST", url, headers=headers, content=content, timeout=t, follow_redirects=False
        ) as response:
            return response, await read_limited(response, max_body)


def _without_credentials(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in ("authorization", "cookie")}


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    """At most `limit` bytes of the body (the rest is left unread)."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk[: limit - len(body)]
        if len(body) >= limit:
            break
    return bytes(body)
