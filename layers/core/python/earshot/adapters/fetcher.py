"""The SSRF-safe fetcher: audio by URL, webhook delivery, and inline base64 / ``data:`` audio.

Every outbound request a user can aim goes through here, under one set of address rules:

- The URL is https (http only to loopback in loopback testing mode, or when the caller allows it explicitly), on
  port 80 or 443, without credentials. ``httpx.URL`` parses it and IDNA-encodes the host.
- The host is resolved with ``getaddrinfo`` and EVERY address it returns must be public (see
  ``is_public_address``). Checking what the resolver *returns* makes the odd spellings harmless:
  ``2130706433``, ``0177.0.0.1``, ``0x7f.1`` and ``127.1`` all come back as ``127.0.0.1``.
- The connection goes to the checked address itself (a custom ``httpcore.NetworkBackend`` ignores the
  host name it is handed), so DNS cannot answer differently between the check and the connect. TLS
  still sends SNI for, and verifies the certificate against, the URL's host name.
- Redirects are followed by hand, at most ``MAX_REDIRECTS``, and every hop is checked again.
- Downloads stream under a byte cap, and one absolute deadline bounds every connect, TLS handshake,
  read and write of the whole chain (a server trickling one byte a second cannot stretch it).

Errors: everything about the URL a client gave, including a server that answers slowly, with a
non-2xx status or not at all, is an ``InvalidRequestError`` (400 ``invalid_request``) naming the
``url`` param, because the client can fix it and retrying the same URL will not help; a refused
address says only that the URL "resolves to a non-public address". Too many bytes is a
``FileTooLargeError`` (413). httpcore is used directly (it is httpx's transport core): httpx's own
transport cannot pin addresses, and httpcore also never reads proxy settings from the environment.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpcore
import httpx
import pybase64

from earshot.errors import FileTooLargeError, InvalidAudioError, InvalidRequestError, UnresolvedHostError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 3
ALLOWED_PORTS = frozenset({80, 443})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_URL_CHARS = 4096
_USER_AGENT = "earshot-fetcher/1"
_NON_PUBLIC = "resolves to a non-public address"

_V4_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
_V6_LOOPBACK = ipaddress.IPv6Address("::1")
# Refused whatever this Python's ``is_global`` says (its tables changed between releases and miss
# multicast, 192.88.99.0/24 and 3fff::/20 on 3.11).
_V4_REFUSED = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # "this network", including 0.0.0.0
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, including the 169.254.169.254 metadata service
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including 255.255.255.255
    )
)
# Only 2000::/3 is global unicast; everything outside it (::, ::1, IPv4-compatible ::a.b.c.d, ULA
# fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast ff00::/8, discard 100::/64) is
# refused by not being in it. The exceptions handled before that rule are listed in ``_public_v6``.
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_REFUSED = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "2001::/23",  # IETF protocol assignments, including Teredo 2001::/32
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
_V6_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V6_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")

_ASCII_WHITESPACE = str.maketrans("", "", " \t\n\r\f\v")
_AUDIO_MIME = re.compile(r"audio/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")


@dataclass(frozen=True)
class FetchedAudio:
    data: bytes
    content_type: str
    final_url: str


@dataclass(frozen=True)
class CheckedURL:
    """A URL that passed every rule, with the addresses a connection to it may use."""

    url: httpx.URL
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


# --- address rules ----------------------------------------------------------------------------


def is_public_address(address: str | IPAddress, *, allow_loopback: bool = False) -> bool:
    """Whether a connection to ``address`` reaches the public internet and nothing of ours.

    Parameters
    ----------
    address
        An IP address object, or its standard text form. Text that is not an address is not
        public, and neither is an IPv6 address with a zone id (``fe80::1%eth0``): a scope only
        makes sense for link-local destinations.
    allow_loopback
        Testing mode: also accept 127.0.0.0/8 and ::1, and nothing else that is not public.
    """
    if isinstance(address, str):
        try:
            address = ipaddress.ip_address(address.strip("[]").replace("%25", "%", 1))
        except ValueError:
            return False
    if isinstance(address, ipaddress.IPv4Address):
        return _public_v4(address, allow_loopback=allow_loopback)
    return address.scope_id is None and _public_v6(address, allow_loopback=allow_loopback)


def _public_v4(address: ipaddress.IPv4Address, *, allow_loopback: bool) -> bool:
    if address in _V4_LOOPBACK:
        return allow_loopback
    return address.is_global and not any(address in net for net in _V4_REFUSED)


def _public_v6(address: ipaddress.IPv6Address, *, allow_loopback: bool) -> bool:
    if address == _V6_LOOPBACK:
        return allow_loopback
    # Addresses that carry an IPv4 address reach that IPv4 address: judge it instead. Loopback
    # testing mode does not extend to them (``::ffff:127.0.0.1`` stays refused).
    if address.ipv4_mapped is not None:
        return _public_v4(address.ipv4_mapped, allow_loopback=False)
    if address in _V6_NAT64:
        return _public_v4(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), allow_loopback=False)
    if address.sixtofour is not None:
        return _public_v4(address.sixtofour, allow_loopback=False)
    if address in _V6_NAT64_LOCAL or address.teredo is not None:
        # Local-use NAT64 embeds IPv4 at a network-chosen offset; Teredo embeds it obfuscated. Refuse.
        return False
    return address in _V6_GLOBAL_UNICAST and address.is_global and not any(address in net for net in _V6_REFUSED)


def resolve_public_addresses(
    host: str, port: int, *, allow_loopback: bool = False, param: str = "url"
) -> tuple[IPAddress, ...]:
    """Resolve ``host`` and return its addresses, provided every one of them is public.

    Parameters
    ----------
    host
        A host name (already IDNA-encoded), or an IP literal in any spelling the resolver accepts,
        bracketed or not, with or without trailing dots or an IPv6 zone id.
    port
        The port the connection will use (passed to ``getaddrinfo``).
    allow_loopback, param
        See ``is_public_address``; ``param`` names the request field in errors.

    Raises
    ------
    InvalidRequestError
        The host does not resolve, or any address it resolves to is not public (one bad address
        among good ones is enough: the connection could pick it).
    """
    name = host.strip("[]").rstrip(".")
    if not name or any(ord(char) < 0x21 or ord(char) == 0x7F for char in name):
        raise InvalidRequestError(f"the {param} has no valid host", param=param)
    addresses = _literal_address(name)
    if addresses is None:
        addresses = _getaddrinfo_addresses(name, port, param=param)
    if not all(is_public_address(address, allow_loopback=allow_loopback) for address in addresses):
        logger.info("fetch refused", extra={"host": name, "reason": "non-public address"})
        raise InvalidRequestError(f"the {param} {_NON_PUBLIC}", param=param)
    return tuple(dict.fromkeys(addresses))


def _literal_address(name: str) -> tuple[IPAddress, ...] | None:
    try:
        return (ipaddress.ip_address(name.replace("%25", "%", 1)),)
    except ValueError:
        return None


def _getaddrinfo_addresses(name: str, port: int, *, param: str) -> tuple[IPAddress, ...]:
    try:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise UnresolvedHostError(f"the {param}'s host could not be resolved", param=param) from exc
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(sockaddr[0])
        scope_id = sockaddr[3] if len(sockaddr) == 4 else 0
        if scope_id:
            address = ipaddress.IPv6Address(f"{address}%{scope_id}")  # scoped: refused below
        addresses.append(address)
    if not addresses:
        raise UnresolvedHostError(f"the {param}'s host could not be resolved", param=param)
    return tuple(addresses)


def check_url(
    url: str,
    *,
    allow_loopback: bool = False,
    allowed_schemes: Collection[str] = ("https",),
    param: str = "url",
) -> CheckedURL:
    """Apply every rule to ``url`` and resolve it to the addresses a connection may use.

    Parameters
    ----------
    url
        The URL as the client gave it (or a redirect's absolute target).
    allow_loopback
        Testing mode: 127.0.0.0/8 and ::1 are allowed, on any port, and so is http to them (only).
    allowed_schemes
        Schemes accepted besides that; https only unless the caller says otherwise.
    param
        The request field named in errors (``url``, ``callback_url``...).

    Raises
    ------
    InvalidRequestError
        The URL breaks a rule; the message says which, without resolution details.
    """
    if len(url) > _MAX_URL_CHARS:
        raise InvalidRequestError(f"the {param} is longer than {_MAX_URL_CHARS} characters", param=param)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"the {param} is not a valid URL", param=param) from exc
    schemes = {scheme.lower() for scheme in allowed_schemes} & set(_DEFAULT_PORTS)
    # Loopback testing mode also lets plain http through, but only to the loopback hosts it allows.
    http_on_loopback = allow_loopback and parsed.scheme == "http" and "http" not in schemes
    if parsed.scheme not in schemes and not http_on_loopback:
        raise InvalidRequestError(f"the {param} must use {' or '.join(sorted(schemes))}", param=param)
    if parsed.userinfo:
        raise InvalidRequestError(f"the {param} must not contain credentials", param=param)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port if parsed.port is not None else _DEFAULT_PORTS[parsed.scheme]
    addresses = resolve_public_addresses(host, port, allow_loopback=allow_loopback, param=param)
    # A test server on loopback listens wherever the OS put it; nothing else may leave 80/443.
    on_loopback = allow_loopback and all(address.is_loopback for address in addresses)
    if http_on_loopback and not on_loopback:
        raise InvalidRequestError(f"the {param} must use {' or '.join(sorted(schemes))}", param=param)
    if port not in ALLOWED_PORTS and not on_loopback:
        raise InvalidRequestError(f"the {param} must use port 80 or 443", param=param)
    return CheckedURL(url=parsed, host=host, port=port, addresses=addresses)


# --- pinned connections under one deadline -------------------------------------------------------


def _remaining(deadline: float, timeout: float | None, error: type[httpcore.TimeoutException]) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise error("deadline exceeded")
    return remaining if timeout is None else min(timeout, remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """Caps every socket operation's timeout at what is left of the overall deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(self._deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = _remaining(self._deadline, timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the checked addresses only, whatever host name httpcore asks for.

    httpcore still uses the URL's host name for TLS (SNI and certificate verification) and the
    ``Host`` header; only the TCP destination is pinned, so DNS is consulted exactly once.
    """

    def __init__(self, checked: CheckedURL, deadline: float) -> None:
        self._checked = checked
        self._deadline = deadline
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        failure: Exception = httpcore.ConnectError("no address to connect to")
        for address in self._checked.addresses:
            try:
                stream = self._sockets.connect_tcp(
                    str(address),
                    self._checked.port,
                    timeout=_remaining(self._deadline, timeout, httpcore.ConnectTimeout),
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable through the fetcher")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


@contextmanager
def _exchange(
    checked: CheckedURL,
    method: bytes,
    *,
    deadline: float,
    headers: Mapping[str, str],
    content: bytes | None = None,
) -> Iterator[httpcore.Response]:
    """One request to the pinned address, its response open for streaming."""
    url = checked.url
    target = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)
    # Set Host ourselves: httpcore's default leaves IPv6 literals unbracketed.
    request_headers = [(b"Host", url.netloc), (b"User-Agent", _USER_AGENT.encode())]
    request_headers += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    remaining = _remaining(deadline, None, httpcore.ConnectTimeout)
    timeouts = {"connect": remaining, "read": remaining, "write": remaining, "pool": remaining}
    with (
        httpcore.ConnectionPool(
            ssl_context=_ssl_context(), max_connections=1, retries=0, network_backend=_PinnedBackend(checked, deadline)
        ) as pool,
        pool.stream(method, target, headers=request_headers, content=content, extensions={"timeout": timeouts}) as resp,
    ):
        yield resp


@contextmanager
def _network_errors_as_invalid_request(*, deadline_sec: float, param: str) -> Iterator[None]:
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise InvalidRequestError(f"the {param} did not answer within {deadline_sec:g} seconds", param=param) from exc
    except httpcore.ConnectError as exc:
        raise InvalidRequestError(f"could not connect to the {param}'s host", param=param) from exc
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        raise InvalidRequestError(f"the {param}'s server broke off or sent an invalid response", param=param) from exc


def _header(response: httpcore.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _too_large(what: str, max_bytes: int) -> FileTooLargeError:
    limit = f"{max_bytes / 1024 / 1024:g} MB" if max_bytes >= 1024 * 1024 else f"{max_bytes} bytes"
    return FileTooLargeError(f"{what} is larger than the {limit} limit; upload larger files with POST /v1/uploads")


# --- public operations -------------------------------------------------------------------------


def fetch_audio(
    url: str,
    *,
    max_bytes: int,
    deadline_sec: float,
    allow_loopback: bool = False,
    allowed_schemes: Collection[str] = ("https",),
) -> FetchedAudio:
    """Download the audio a client pointed at, under the address rules, a byte cap and a deadline.

    Parameters
    ----------
    url
        The client's URL (https by default, port 80/443, no credentials).
    max_bytes
        Largest body accepted; the download stops as soon as it is passed.
    deadline_sec
        Wall-clock budget for the whole chain: every hop's connect, TLS, request and body.
        (Name resolution itself is not interruptible and is not counted against it.)
    allow_loopback, allowed_schemes
        See ``check_url``.

    Raises
    ------
    InvalidRequestError
        The URL breaks a rule, redirects more than ``MAX_REDIRECTS`` times, answers a non-2xx
        status, or does not finish within the deadline.
    FileTooLargeError
        The body (declared or streamed) is larger than ``max_bytes``.
    """
    deadline = time.monotonic() + deadline_sec
    current = url
    with _network_errors_as_invalid_request(deadline_sec=deadline_sec, param="url"):
        for _hop in range(MAX_REDIRECTS + 1):
            checked = check_url(current, allow_loopback=allow_loopback, allowed_schemes=allowed_schemes)
            headers = {"Accept": "audio/*, application/octet-stream;q=0.9, */*;q=0.5", "Accept-Encoding": "identity"}
            with _exchange(checked, b"GET", deadline=deadline, headers=headers) as response:
                if response.status in _REDIRECT_STATUSES:
                    location = _header(response, b"location")
                    if not location:
                        raise InvalidRequestError(f"the url answered {response.status} without a Location", param="url")
                    try:
                        current = str(checked.url.join(location))
                    except (httpx.InvalidURL, ValueError) as exc:
                        raise InvalidRequestError("the url redirected to an invalid URL", param="url") from exc
                    continue
                if not 200 <= response.status < 300:
                    raise InvalidRequestError(f"the url answered {response.status}", param="url")
                return FetchedAudio(
                    data=_read_capped(response, max_bytes),
                    content_type=_header(response, b"content-type") or "application/octet-stream",
                    final_url=str(checked.url),
                )
    raise InvalidRequestError(f"the url redirected more than {MAX_REDIRECTS} times", param="url")


def _read_capped(response: httpcore.Response, max_bytes: int) -> bytes:
    declared = _header(response, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large("the audio at the url", max_bytes)
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_stream():
        received += len(chunk)
        if received > max_bytes:
            raise _too_large("the audio at the url", max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def post_json(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    deadline_sec: float,
    allow_loopback: bool = False,
    allowed_schemes: Collection[str] = ("https",),
) -> int:
    """POST a JSON body (a webhook delivery) under the same address rules; return the status code.

    Redirects are not followed (a 3xx is returned like any other status), and the response body
    is not read. ``Content-Type: application/json`` is sent unless ``headers`` sets it.

    Raises
    ------
    InvalidRequestError
        ``param="callback_url"``: the URL breaks a rule, or the server cannot be reached or does
        not answer within ``deadline_sec``. Delivery retries treat it as a failed attempt.
    """
    deadline = time.monotonic() + deadline_sec
    checked = check_url(url, allow_loopback=allow_loopback, allowed_schemes=allowed_schemes, param="callback_url")
    request_headers = {"Content-Type": "application/json"} if "content-type" not in {h.lower() for h in headers} else {}
    request_headers.update(headers)
    with (
        _network_errors_as_invalid_request(deadline_sec=deadline_sec, param="callback_url"),
        _exchange(checked, b"POST", deadline=deadline, headers=request_headers, content=body) as response,
    ):
        return response.status


def decode_base64_audio(text: str, *, max_bytes: int) -> bytes:
    """Decode strict standard base64 audio; ASCII whitespace (line wrapping) is removed first.

    The decoded size is computed from the encoded length and checked before anything is decoded.

    Raises
    ------
    FileTooLargeError
        The decoded audio would be larger than ``max_bytes``.
    InvalidAudioError
        There is no audio at all.
    InvalidRequestError
        The text is not valid base64 (``param="audio"``).
    """
    compact = text.translate(_ASCII_WHITESPACE)
    if not compact:
        raise InvalidAudioError("audio is empty", param="audio")
    padding = len(compact) - len(compact.rstrip("="))
    size = len(compact) * 3 // 4 - min(padding, 2)
    if size > max_bytes:  # quote the audio's size, not its base64 text's (a third larger)
        limit = f"{max_bytes / 1024 / 1024:g} MB" if max_bytes >= 1024 * 1024 else f"{max_bytes:,} bytes"
        raise FileTooLargeError(
            f"the audio is {size:,} bytes ({size / 1024 / 1024:.1f} MB) once decoded from base64, over the {limit}"
            " limit for audio inside a request; upload larger files with POST /v1/uploads and pass the file_id,"
            " or give an https URL",
            param="audio",
        )
    try:
        data = pybase64.b64decode(compact, validate=True)
    except ValueError as exc:  # binascii.Error, or text that is not ASCII
        raise InvalidRequestError("audio is not valid base64", param="audio") from exc
    if not data:
        raise InvalidAudioError("audio is empty", param="audio")
    return data


def parse_data_url(text: str, *, max_bytes: int) -> tuple[str, bytes]:
    """Split a ``data:audio/<type>[;param=...];base64,<data>`` URL into its media type and bytes.

    The media type must be ``audio/*`` or ``application/octet-stream``; its parameters are dropped.

    Raises
    ------
    InvalidRequestError, InvalidAudioError, FileTooLargeError
        As for ``decode_base64_audio``, plus a malformed data URL or another media type.
    """
    stripped = text.strip(" \t\n\r\f\v")
    if stripped[:5].lower() != "data:":
        raise InvalidRequestError("audio must be an https URL or a data:audio/...;base64, URL", param="audio")
    header, comma, payload = stripped[5:].partition(",")
    if not comma:
        raise InvalidRequestError("the audio data URL has no ',' before its data", param="audio")
    parts = [part.strip() for part in header.split(";")]
    mime = parts[0].lower()
    if len(parts) < 2 or parts[-1].lower() != "base64":
        raise InvalidRequestError("the audio data URL must be base64-encoded (';base64,')", param="audio")
    if not (_AUDIO_MIME.fullmatch(mime) or mime == "application/octet-stream"):
        raise InvalidRequestError(
            "the audio data URL must have an audio/* or application/octet-stream media type", param="audio"
        )
    return mime, decode_base64_audio(payload, max_bytes=max_bytes)
