"""The fetcher against a real HTTP server on 127.0.0.1, in loopback testing mode.

Every socket the fetcher opens is checked: these tests only ever connect to 127.0.0.1, and a
refused redirect must not connect anywhere at all.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from earshot.adapters import fetcher
from earshot.adapters.fetcher import fetch_audio, post_json
from earshot.errors import FileTooLargeError, InvalidRequestError

AUDIO = b"RIFF" + bytes(range(256)) * 40
CHUNK = b"\0" * 65536


@dataclass
class ServerState:
    release: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._record(b"")
        path, _, query = self.path.partition("?")
        parts = path.strip("/").split("/")
        if path == "/audio":
            self._send(200, AUDIO, content_type="audio/wav")
        elif parts[0] == "redirect":  # /redirect/N: N more redirects, then /audio
            remaining = int(parts[1])
            self._redirect(f"/redirect/{remaining - 1}" if remaining > 1 else "/audio")
        elif path == "/relative":
            self._redirect("audio")
        elif path == "/to":
            self._redirect(parse_qs(query)["target"][0])
        elif parts[0] == "status":
            self._send(int(parts[1]), b"nope", content_type="text/plain")
        elif path == "/forever":  # no Content-Length, never ends
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.end_headers()
            try:
                while not self.server.state.release.is_set():
                    self.wfile.write(CHUNK)
            except OSError:
                pass
        elif path == "/declared-huge":  # claims a gigabyte, then stalls
            self.send_response(200)
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            self.wfile.write(b"RIFF")
            self.wfile.flush()
            self.server.state.release.wait(10)
        elif path == "/hang":  # accepts, never answers
            self.server.state.release.wait(10)
        elif path == "/trickle":  # one byte every 50 ms: every read is quick, the whole is not
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    if self.server.state.release.wait(0.05):
                        break
                    self.wfile.write(b"x")
                    self.wfile.flush()
            except OSError:
                pass
        else:
            self._send(404, b"no such path")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._record(body)
        if self.path == "/webhook":
            self._send(204, b"")
        elif self.path == "/moved":
            self._redirect("/webhook")
        elif self.path == "/hang":
            self.server.state.release.wait(10)
        else:
            self._send(500, b"broken")

    def _record(self, body: bytes) -> None:
        self.server.state.requests.append((self.command, self.path, dict(self.headers.items()), body))

    def _send(self, status: int, body: bytes, *, content_type: str = "application/octet-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


@dataclass
class Upstream:
    base: str
    state: ServerState
    connections: list[tuple[str, int]]


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = ServerState()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    connections: list[tuple[str, int]] = []
    real_create_connection = socket.create_connection

    def loopback_only(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        connections.append(address)
        if address[0] != "127.0.0.1":
            raise AssertionError(f"the fetcher tried to connect to {address}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", loopback_only)
    try:
        yield Upstream(base=f"http://127.0.0.1:{server.server_address[1]}", state=server.state, connections=connections)
    finally:
        server.state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def _fetch(url: str, *, max_bytes: int = 1_000_000, deadline_sec: float = 5.0) -> bytes:
    return fetch_audio(url, max_bytes=max_bytes, deadline_sec=deadline_sec, allow_loopback=True).data


def test_fetch_returns_the_body_its_type_and_where_it_ended(upstream: Upstream) -> None:
    fetched = fetch_audio(f"{upstream.base}/audio", max_bytes=len(AUDIO), deadline_sec=5, allow_loopback=True)
    assert fetched.data == AUDIO
    assert fetched.content_type == "audio/wav"
    assert fetched.final_url == f"{upstream.base}/audio"
    # The connection went to the checked address, and the server still saw the URL's Host.
    _method, _path, headers, _body = upstream.state.requests[0]
    assert headers["Host"] == upstream.base.removeprefix("http://")
    assert upstream.connections == [("127.0.0.1", int(upstream.base.rsplit(":", 1)[1]))]


def test_the_byte_cap_aborts_a_body_that_never_ends(upstream: Upstream) -> None:
    started = time.monotonic()
    with pytest.raises(FileTooLargeError) as caught:
        _fetch(f"{upstream.base}/forever", max_bytes=256 * 1024, deadline_sec=30)
    assert time.monotonic() - started < 5
    assert caught.value.status == 413


def test_a_declared_length_over_the_cap_is_refused_without_reading(upstream: Upstream) -> None:
    started = time.monotonic()
    with pytest.raises(FileTooLargeError):
        _fetch(f"{upstream.base}/declared-huge", max_bytes=1_000_000, deadline_sec=30)
    assert time.monotonic() - started < 2  # the server stalls after 4 bytes; reading would have hung


def test_a_body_exactly_at_the_cap_is_fine(upstream: Upstream) -> None:
    assert _fetch(f"{upstream.base}/audio", max_bytes=len(AUDIO)) == AUDIO
    with pytest.raises(FileTooLargeError):
        _fetch(f"{upstream.base}/audio", max_bytes=len(AUDIO) - 1)


@pytest.mark.parametrize("path", ["/hang", "/trickle"])
def test_the_deadline_bounds_the_whole_fetch(upstream: Upstream, path: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidRequestError) as caught:
        _fetch(f"{upstream.base}{path}", deadline_sec=0.5)
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 1.5
    assert caught.value.message == "the url did not answer within 0.5 seconds"
    assert caught.value.param == "url"


def test_three_redirects_are_followed(upstream: Upstream) -> None:
    fetched = fetch_audio(f"{upstream.base}/redirect/3", max_bytes=len(AUDIO), deadline_sec=5, allow_loopback=True)
    assert fetched.data == AUDIO
    assert fetched.final_url == f"{upstream.base}/audio"


def test_a_chain_of_four_redirects_is_refused(upstream: Upstream) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _fetch(f"{upstream.base}/redirect/4")
    assert caught.value.message == "the url redirected more than 3 times"
    assert [path for _m, path, _h, _b in upstream.state.requests] == [f"/redirect/{n}" for n in (4, 3, 2, 1)]


def test_relative_redirects_resolve_against_the_current_url(upstream: Upstream) -> None:
    assert _fetch(f"{upstream.base}/relative") == AUDIO


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/audio",
        "http://169.254.169.254/latest/meta-data/",
        "http://0xa9fea9fe/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/",
        "http://192.168.1.1:8080/",
        "http://[fd00::1]/",
    ],
)
def test_a_redirect_to_a_private_address_is_refused_before_connecting(upstream: Upstream, target: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _fetch(f"{upstream.base}/to?target={target}")
    assert caught.value.message == "the url resolves to a non-public address"
    assert [host for host, _port in upstream.connections] == ["127.0.0.1"]  # only the first hop


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "http://user:pw@127.0.0.1/"])
def test_a_redirect_that_breaks_a_url_rule_is_refused(upstream: Upstream, target: str) -> None:
    with pytest.raises(InvalidRequestError):
        _fetch(f"{upstream.base}/to?target={target}")
    assert len(upstream.connections) == 1


@pytest.mark.parametrize("status", [404, 500])
def test_a_non_2xx_answer_is_a_400_naming_the_status(upstream: Upstream, status: int) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _fetch(f"{upstream.base}/status/{status}")
    assert caught.value.message == f"the url answered {status}"


def test_loopback_is_refused_outside_loopback_mode(upstream: Upstream) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        fetch_audio(f"{upstream.base}/audio", max_bytes=10**6, deadline_sec=5, allowed_schemes=("http", "https"))
    assert caught.value.message == "the url resolves to a non-public address"
    assert upstream.connections == []


def test_post_json_delivers_and_returns_the_status(upstream: Upstream) -> None:
    body = json.dumps({"type": "task.completed"}).encode()
    status = post_json(f"{upstream.base}/webhook", body, {"webhook-id": "msg_1"}, deadline_sec=5, allow_loopback=True)
    assert status == 204
    method, path, headers, received = upstream.state.requests[0]
    assert (method, path, received) == ("POST", "/webhook", body)
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == "msg_1"


def test_post_json_reports_failures_and_redirects_as_statuses(upstream: Upstream) -> None:
    assert post_json(f"{upstream.base}/other", b"{}", {}, deadline_sec=5, allow_loopback=True) == 500
    assert post_json(f"{upstream.base}/moved", b"{}", {}, deadline_sec=5, allow_loopback=True) == 302
    assert [path for _m, path, _h, _b in upstream.state.requests] == ["/other", "/moved"]  # not followed


def test_post_json_obeys_the_deadline_and_the_address_rules(upstream: Upstream) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        post_json(f"{upstream.base}/hang", b"{}", {}, deadline_sec=0.3, allow_loopback=True)
    assert caught.value.param == "callback_url"
    with pytest.raises(InvalidRequestError):
        post_json(f"{upstream.base}/webhook", b"{}", {}, deadline_sec=5, allowed_schemes=("http",))
    assert len(upstream.connections) == 1


def test_the_host_header_survives_a_redirect_to_another_loopback_spelling(upstream: Upstream) -> None:
    port = urlsplit(upstream.base).port
    fetched = fetch_audio(
        f"{upstream.base}/to?target=http://2130706433:{port}/audio",
        max_bytes=10**6,
        deadline_sec=5,
        allow_loopback=True,
    )
    assert fetched.data == AUDIO
    assert upstream.state.requests[-1][2]["Host"] == f"2130706433:{port}"
    assert [host for host, _port in upstream.connections] == ["127.0.0.1", "127.0.0.1"]


# --- TLS: the address is pinned, the certificate is still checked against the URL's host name ------


@dataclass
class TLSUpstream:
    port: int
    ca_file: str
    server_names: list[str | None]
    connections: list[tuple[str, int]]


def _write_certificates(directory: Path, host: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate it signs for ``host``: (ca, cert, key) files."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: str, key: Any, signer: Any, *, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("earshot test CA", "earshot test CA", ca_key, ca_key, ca=True)
    leaf_cert = build(host, "earshot test CA", leaf_key, ca_key, ca=False)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def tls_upstream(upstream: Upstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TLSUpstream]:
    ca_file, cert_file, key_file = _write_certificates(tmp_path, "audio.test")
    server_names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.state = upstream.state
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    # Both names "resolve" to the loopback server; only audio.test matches its certificate.
    real_getaddrinfo = socket.getaddrinfo
    fake_dns = {"audio.test", "other.test"}

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host in fake_dns:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    try:
        yield TLSUpstream(server.server_address[1], str(ca_file), server_names, upstream.connections)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _trusting(monkeypatch: pytest.MonkeyPatch, ca_file: str) -> None:
    monkeypatch.setattr(fetcher, "_ssl_context", lambda: ssl.create_default_context(cafile=ca_file))


def test_https_connects_to_the_pinned_address_and_verifies_the_host_name(
    tls_upstream: TLSUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    _trusting(monkeypatch, tls_upstream.ca_file)
    fetched = _fetch(f"https://audio.test:{tls_upstream.port}/audio")
    assert fetched == AUDIO
    assert tls_upstream.server_names == ["audio.test"]  # SNI is the URL's host, not the IP
    assert tls_upstream.connections == [("127.0.0.1", tls_upstream.port)]


def test_a_certificate_for_another_name_is_refused(tls_upstream: TLSUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    _trusting(monkeypatch, tls_upstream.ca_file)
    with pytest.raises(InvalidRequestError) as caught:
        _fetch(f"https://other.test:{tls_upstream.port}/audio")
    assert caught.value.message == "could not connect to the url's host"
    assert "other.test" in str(caught.value.__cause__)  # the certificate did not match the URL's host name


def test_an_untrusted_certificate_is_refused(tls_upstream: TLSUpstream) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _fetch(f"https://audio.test:{tls_upstream.port}/audio")
    assert "certificate verify failed" in str(caught.value.__cause__)
