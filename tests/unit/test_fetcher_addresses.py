"""The fetcher's address and URL rules, and inline base64 / data: audio. No network at all.

Host names resolve through a fake resolver; numeric spellings go through the real ``getaddrinfo``
with ``AI_NUMERICHOST`` forced, so the platform's own parser normalizes them without any DNS query,
and any attempt to open a socket fails the test.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable
from typing import Any

import pytest

from earshot.adapters import fetcher
from earshot.adapters.fetcher import (
    check_url,
    decode_base64_audio,
    fetch_audio,
    is_public_address,
    parse_data_url,
    post_json,
    resolve_public_addresses,
)
from earshot.errors import FileTooLargeError, InvalidAudioError, InvalidRequestError

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700::6812:1"
HTTP_AND_HTTPS = ("http", "https")

# Fake DNS: name -> addresses getaddrinfo returns for it.
FAKE_DNS: dict[str, list[str]] = {
    "good.example": [PUBLIC_V4, PUBLIC_V6],
    "xn--bcher-kva.example": [PUBLIC_V4],
    "localhost": ["127.0.0.1", "::1"],
    "metadata.example": ["169.254.169.254"],
    "internal.example": ["10.1.2.3"],
    "mixed.example": [PUBLIC_V4, "10.0.0.5"],
    "mixed6.example": [PUBLIC_V6, "fd00::1"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "linklocal6.example": ["fe80::1%1"],
}

_real_getaddrinfo = socket.getaddrinfo


@pytest.fixture(autouse=True)
def queried_names(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Resolve through FAKE_DNS; refuse to open any socket. Yields the names looked up."""
    queried: list[str] = []

    def fake_getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        queried.append(host)
        if host in FAKE_DNS:
            return [_info(address, port) for address in FAKE_DNS[host]]
        # Numeric spellings only: the real parser, never a DNS query.
        kwargs["flags"] = kwargs.get("flags", 0) | socket.AI_NUMERICHOST
        return _real_getaddrinfo(host, port, *args, **kwargs)

    def no_connections(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"unit tests must not open connections: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", no_connections)
    return queried


def _info(address: str, port: int) -> tuple[Any, ...]:
    if ":" in address:
        ip, _, zone = address.partition("%")
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, int(zone or 0)))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


def _refused(call: Callable[[], object], param: str = "url") -> str:
    with pytest.raises(InvalidRequestError) as caught:
        call()
    assert caught.value.param == param
    assert caught.value.code == "invalid_request"
    return caught.value.message


# --- the classifier, category by category -------------------------------------------------------

NON_PUBLIC = {
    "loopback": ["127.0.0.1", "127.255.255.254", "::1"],
    "private": ["10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.0.1", "192.168.255.255"],
    "link-local": ["169.254.0.1", "169.254.169.254", "fe80::1", "febf::1"],
    "zone id": ["fe80::1%eth0", "fe80::1%25eth0", "[fe80::1%eth0]", "2606:4700::6812:1%eth0"],
    "cgnat": ["100.64.0.1", "100.127.255.254"],
    "multicast": ["224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1"],
    "unspecified and this-network": ["0.0.0.0", "0.1.2.3", "::"],
    "reserved and broadcast": ["240.0.0.1", "254.1.2.3", "255.255.255.255"],
    "benchmarking": ["198.18.0.1", "198.19.255.254"],
    "documentation": ["192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1", "3fff::1"],
    "ietf and relay": ["192.0.0.9", "192.0.0.170", "192.88.99.1", "2001:3::1", "100::1"],
    "ipv4-mapped": ["::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:7f00:1"],
    "ipv4-translated": ["::ffff:0:127.0.0.1", "::ffff:0:808:808"],
    "ipv4-compatible": ["::127.0.0.1", "::10.0.0.1", "::8.8.8.8"],
    "6to4 embedding a bad v4": ["2002:7f00:1::1", "2002:a00:1::", "2002:a9fe:a9fe::1", "2002:c0a8:101::1"],
    "teredo": ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::1"],
    "nat64 embedding a bad v4": ["64:ff9b::127.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1"],
    "nat64 local-use": ["64:ff9b:1::808:808", "64:ff9b:1:ffff::1"],
    "ula": ["fc00::1", "fd12:3456:789a::1"],
    "site-local": ["fec0::1", "feff::1"],
    "not an address": ["", "example.com", "127.1", "0x7f.0.0.1", "1.2.3.4.5"],
}


@pytest.mark.parametrize(
    "address",
    [
        pytest.param(address, id=f"{category}:{address}")
        for category, spelled in NON_PUBLIC.items()
        for address in spelled
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        PUBLIC_V4,
        "2606:4700:4700::1111",
        "2a00:1450:4001:81c::200e",
        "::ffff:8.8.8.8",  # mapped: judged by the public v4 inside
        "2002:808:808::1",  # 6to4 of a public v4
        "64:ff9b::808:808",  # well-known NAT64 of a public v4
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.1.2.3", "127.255.255.254", "::1"])
def test_loopback_mode_allows_loopback(address: str) -> None:
    assert is_public_address(address, allow_loopback=True)


@pytest.mark.parametrize(
    "address",
    [
        *("10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::", "fc00::1"),
        *("fe80::1", "::ffff:127.0.0.1", "2002:7f00:1::1", "64:ff9b::127.0.0.1", "::127.0.0.1"),
    ],
)
def test_loopback_mode_allows_nothing_else(address: str) -> None:
    assert not is_public_address(address, allow_loopback=True)


# --- every spelling, through the resolver --------------------------------------------------------

BAD_SPELLINGS = [
    "http://2130706433/",  # decimal 127.0.0.1
    "http://0x7f.1/",  # hex, short form
    "http://0x7f000001/",
    "http://017700000001/",
    "http://127.1/",
    "http://127.0.0.1/",
    "http://127.0.0.1./",  # trailing dot
    "http://127.0.0.1../",
    "http://0/",  # 0.0.0.0
    "http://10.1/",  # 10.0.0.1
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",  # decimal 169.254.169.254
    "http://0xa9fea9fe/",
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:a9fe:a9fe]/",
    "http://[fe80::1%25eth0]/",
    "http://[2002:7f00:1::1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[fd00::1]/",
    "http://localhost/",
    "http://localhost./",
    "http://LOCALHOST/",
    "http://metadata.example/",
    "http://internal.example/",
    "http://mapped.example/",
    "http://linklocal6.example/",
]


@pytest.mark.parametrize("url", BAD_SPELLINGS)
def test_every_spelling_of_a_non_public_address_is_refused(url: str) -> None:
    message = _refused(lambda: check_url(url, allowed_schemes=HTTP_AND_HTTPS))
    assert message == "the url resolves to a non-public address"


@pytest.mark.parametrize(
    "host",
    ["0177.0.0.1", "0251.0376.0251.0376", "2130706433", "0x7f.1", "127.1", "0", "[::ffff:127.0.0.1]", "127.0.0.1."],
)
def test_host_spellings_are_judged_by_what_they_resolve_to(host: str) -> None:
    assert _refused(lambda: resolve_public_addresses(host, 80)) == "the url resolves to a non-public address"


@pytest.mark.parametrize("url", ["http://0177.0.0.1/", "http://0251.0376.0251.0376/", "http://010.0.0.1/"])
def test_zero_padded_dotted_quads_are_refused_by_the_url_parser_already(url: str) -> None:
    _refused(lambda: check_url(url, allowed_schemes=HTTP_AND_HTTPS))


@pytest.mark.parametrize(
    "url", ["http://2130706433:8080/", "http://0x7f.1:8080/", "http://127.0.0.1.:8080/", "http://[::1]:8080/"]
)
def test_odd_loopback_spellings_resolve_to_loopback(url: str) -> None:
    checked = check_url(url, allow_loopback=True)
    assert all(address.is_loopback for address in checked.addresses)
    assert checked.port == 8080


def test_a_host_with_one_good_and_one_bad_address_is_refused() -> None:
    # The connection could pick either address, so one bad one is enough.
    message = _refused(lambda: check_url("https://mixed.example/a.mp3"))
    assert "10.0.0.5" not in message
    _refused(lambda: check_url("https://mixed6.example/a.mp3"))


def test_refusals_do_not_say_what_the_host_resolved_to() -> None:
    message = _refused(lambda: check_url("https://metadata.example/"))
    assert message == "the url resolves to a non-public address"
    assert "169.254" not in message


def test_a_public_host_resolves_to_all_its_addresses() -> None:
    checked = check_url("https://good.example/a.mp3")
    assert [str(address) for address in checked.addresses] == [PUBLIC_V4, PUBLIC_V6]
    assert checked.port == 443
    assert checked.host == "good.example"


def test_hostnames_are_idna_encoded_lowercased_and_lose_trailing_dots(queried_names: list[str]) -> None:
    check_url("https://bücher.example/")
    check_url("https://GOOD.Example./")
    assert queried_names == ["xn--bcher-kva.example", "good.example"]


def test_resolve_public_addresses_accepts_brackets_and_literals() -> None:
    assert [str(a) for a in resolve_public_addresses("[2606:4700::6812:1]", 443)] == [PUBLIC_V6]
    assert [str(a) for a in resolve_public_addresses("8.8.8.8", 443)] == ["8.8.8.8"]
    _refused(lambda: resolve_public_addresses("0x7f.1", 443))


def test_an_unresolvable_host_is_a_clear_400() -> None:
    assert "could not be resolved" in _refused(lambda: check_url("https://no-such-host.example/"))


# --- URL rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://good.example/a.mp3", "ftp://good.example/a.mp3", "file:///etc/passwd"])
def test_only_https_by_default(url: str) -> None:
    assert "must use https" in _refused(lambda: check_url(url))


def test_http_is_allowed_when_asked_for_or_to_loopback_in_loopback_mode() -> None:
    assert check_url("http://good.example/", allowed_schemes=HTTP_AND_HTTPS).port == 80
    assert check_url("http://127.0.0.1:8123/", allow_loopback=True).port == 8123
    # loopback mode does not open plain http to the rest of the world
    assert "must use https" in _refused(lambda: check_url("http://good.example/", allow_loopback=True))
    assert "must use" in _refused(lambda: check_url("gopher://good.example/", allowed_schemes=("gopher",)))


@pytest.mark.parametrize(
    "url", ["https://user:pass@good.example/", "https://user@good.example/", "https://good.example\\@127.0.0.1/"]
)
def test_credentials_in_the_url_are_refused(url: str) -> None:
    _refused(lambda: check_url(url))


@pytest.mark.parametrize("url", ["https://good.example:8443/", "https://good.example:22/", "http://good.example:6379/"])
def test_only_ports_80_and_443(url: str) -> None:
    assert "port 80 or 443" in _refused(lambda: check_url(url, allowed_schemes=HTTP_AND_HTTPS))


def test_explicit_standard_ports_are_fine() -> None:
    assert check_url("https://good.example:443/").port == 443
    assert check_url("https://good.example:80/").port == 80


def test_loopback_mode_lifts_the_port_rule_for_loopback_only() -> None:
    assert check_url("http://127.0.0.1:8080/", allow_loopback=True).port == 8080
    assert "port 80 or 443" in _refused(lambda: check_url("https://good.example:8080/", allow_loopback=True))


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "https://[::1/",
        "http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11/",  # fullwidth 127.0.0.1
        "https://",
        "https://" + "a" * 5000 + ".example/",
    ],
)
def test_malformed_urls_are_a_400(url: str) -> None:
    _refused(lambda: check_url(url, allowed_schemes=HTTP_AND_HTTPS))


def test_fetch_and_post_refuse_before_connecting() -> None:
    # The autouse fixture fails the test if any socket is opened.
    _refused(lambda: fetch_audio("https://metadata.example/", max_bytes=1000, deadline_sec=5))
    _refused(lambda: fetch_audio("http://10.0.0.1/", max_bytes=1000, deadline_sec=5, allow_loopback=True))
    message = _refused(
        lambda: post_json("https://internal.example/hook", b"{}", {}, deadline_sec=5), param="callback_url"
    )
    assert message == "the callback_url resolves to a non-public address"


def test_the_redirect_limit_is_three() -> None:
    assert fetcher.MAX_REDIRECTS == 3


# --- inline base64 and data: URLs ---------------------------------------------------------------


def test_base64_round_trips_and_line_wrapping_is_tolerated() -> None:
    audio = bytes(range(256)) * 3
    assert decode_base64_audio(base64.b64encode(audio).decode(), max_bytes=len(audio)) == audio
    wrapped = base64.encodebytes(audio).decode()  # newline every 76 characters
    assert decode_base64_audio(" \t" + wrapped + "\r\n", max_bytes=len(audio)) == audio


@pytest.mark.parametrize("text", ["YWJj$", "YW-j", "YW_j", "YWI", "YWJj=", "=YWJj", "YWJ\u00e9", "YW Jj\u00a0"])
def test_base64_is_strict(text: str) -> None:
    assert "not valid base64" in _refused(lambda: decode_base64_audio(text, max_bytes=100), param="audio")


def test_the_size_limit_is_exact() -> None:
    assert decode_base64_audio("YWJj", max_bytes=3) == b"abc"
    assert decode_base64_audio("YWJjZA==", max_bytes=4) == b"abcd"
    with pytest.raises(FileTooLargeError):
        decode_base64_audio("YWJjZA==", max_bytes=3)


def test_the_size_limit_is_checked_before_decoding() -> None:
    # Not base64 at all, but too long: the size is what is reported, so nothing was decoded.
    with pytest.raises(FileTooLargeError) as caught:
        decode_base64_audio("!" * 4_000_000, max_bytes=2 * 1024 * 1024)
    assert caught.value.status == 413
    assert "2 MB" in caught.value.message
    assert "/v1/uploads" in caught.value.message


@pytest.mark.parametrize("text", ["", "  \n\t"])
def test_empty_base64_is_invalid_audio(text: str) -> None:
    with pytest.raises(InvalidAudioError):
        decode_base64_audio(text, max_bytes=100)


@pytest.mark.parametrize(
    ("url", "mime"),
    [
        ("data:audio/mpeg;base64,SUQz", "audio/mpeg"),
        ("DATA:Audio/WAV;base64,SUQz", "audio/wav"),
        ("data:audio/ogg;codecs=opus;base64,SUQz", "audio/ogg"),
        ("data:audio/x-m4a;BASE64,SUQz", "audio/x-m4a"),
        ("data:application/octet-stream;base64,SUQz", "application/octet-stream"),
        ("  data:audio/mpeg;base64,SU\nQz\n", "audio/mpeg"),
    ],
)
def test_audio_data_urls_are_decoded(url: str, mime: str) -> None:
    assert parse_data_url(url, max_bytes=3) == (mime, b"ID3")


@pytest.mark.parametrize(
    "url",
    [
        "https://good.example/a.mp3",
        "data:text/plain;base64,SUQz",
        "data:image/png;base64,SUQz",
        "data:;base64,SUQz",
        "data:audio/;base64,SUQz",
        "data:audio/mpeg,ID3",  # not base64
        "data:audio/mpeg;base64",  # no data
        "data:audio/mpeg;base64,SU%51z",
    ],
)
def test_other_data_urls_are_refused(url: str) -> None:
    _refused(lambda: parse_data_url(url, max_bytes=1000), param="audio")


def test_data_urls_obey_the_size_limit() -> None:
    with pytest.raises(FileTooLargeError):
        parse_data_url("data:audio/mpeg;base64," + "A" * 4000, max_bytes=2999)
