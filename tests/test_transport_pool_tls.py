"""srt's HTTP/1.1 pool (``srt.providers.pool``) with TLS, and what it hands to httpx's
transports: requests it does not speak, https through a ``tls`` transport, ALPN, an
encoded reply; against real servers on 127.0.0.1 (``pool_support.Server``)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trustme

from pool_support import (
    OffersH2,
    Server,
    alpn_server,
    keepalive,
    ok,
    post,
    serve,
)
from srt.providers.http1 import Target
from srt.providers.pool import Pool, ResponseStream
from srt.providers.sendall import HTTPTransport
from srt.providers.transport import HTTPRequest, Transport

__all__ = ["serve"]  # the fixture, imported for the cases here


def test_what_the_pool_does_not_speak_goes_through_httpx(serve: Callable[..., Server]) -> None:
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok(b"" if n == 0 else b"x"))))
    t = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    with Pool() as pool:
        head = pool.handle_request(httpx.Request("HEAD", box[0].url(), extensions={"timeout": t}))
        assert head.status_code == 200 and head.read() == b""
        assert post(pool, box[0].url(), headers={"expect": "100-continue"}) == b"x"
        with pytest.raises(httpx.LocalProtocolError, match="line break"):
            post(pool, box[0].url(), headers={"x-a": "1\r\nx-injected: 1"})
    assert [h.split(b" ")[0] for h in box[0].heads] == [b"HEAD", b"POST"]


def test_tls_with_sni_and_the_verify_setting(serve: Callable[..., Server]) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok(b"secure")), tls=server_context))
    url = box[0].url(host="localhost")
    with ca.cert_pem.tempfile() as ca_file:
        with Pool(verify=ssl.create_default_context(cafile=ca_file)) as pool:
            assert [post(pool, url) for _ in range(3)] == [b"secure"] * 3
        assert box[0].accepted == 1 and names == ["localhost"]
        with Pool() as pool, pytest.raises(httpx.ConnectError, match="CERTIFICATE"):
            post(pool, url)  # the system's CAs do not know this one
        transport = Transport(verify=ca_file)
        try:
            assert transport.open(HTTPRequest("POST", url, {}, b"{}")).read() == b"secure"
        finally:
            transport.close()


def test_a_shared_tls_context_offers_http1_on_every_connection_or_is_refused(
    serve: Callable[..., Server],
) -> None:
    """srt's pool speaks HTTP/1.1: it offers only that by ALPN at each new connection,
    even when an HTTP/2 client changed the caller's context between two of them, and a
    server that still chose h2 is a connection error, never a request sent in the wrong
    protocol."""
    ca, server, chosen = alpn_server(serve)
    url = server.url(host="localhost")
    with ca.cert_pem.tempfile() as ca_file:
        shared = ssl.create_default_context(cafile=ca_file)
        with Pool(verify=shared) as pool:
            assert post(pool, url) == b"secure"
            shared.set_alpn_protocols(["h2", "http/1.1"])  # an HTTP/2 client's, meanwhile
            assert post(pool, url) == b"secure"
        assert chosen == ["http/1.1", "http/1.1"] and len(server.heads) == 2
        stubborn = OffersH2(ssl.PROTOCOL_TLS_CLIENT)
        stubborn.load_verify_locations(cafile=ca_file)
        with Pool(verify=stubborn) as pool, pytest.raises(httpx.ConnectError, match="'h2'"):
            post(pool, url)
        server.wait_closed(3)
        assert chosen[2:] == ["h2"] and len(server.heads) == 2  # nothing was sent to it


def test_with_a_tls_transport_https_goes_through_it_and_http_stays_on_the_pool(
    serve: Callable[..., Server],
) -> None:
    """``Pool(tls=...)``, as ``Transport`` makes it when HTTP/2 is on: https requests go
    through httpx's transport (which negotiates HTTP/2 over TLS), plain http through the
    pool itself, and a response through either knows its request."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    secure: list[Server] = []
    secure.append(serve(keepalive(secure, lambda n: ok(b"secure")), tls=server_context))
    plain: list[Server] = []
    plain.append(serve(keepalive(plain, lambda n: ok(b"plain"))))

    class Recording(HTTPTransport):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self.urls: list[str] = []

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            self.urls.append(str(request.url))
            return super().handle_request(request)

    t = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
    url = secure[0].url(host="localhost")
    with ca.cert_pem.tempfile() as ca_file:
        tls = Recording(verify=ssl.create_default_context(cafile=ca_file))
        pool = Pool(tls=tls)
        transport = Transport(pool=pool)
        try:
            # Through Transport (the pool handed header bytes, no httpx.Request) ...
            assert transport.open(HTTPRequest("POST", url, {}, b"{}")).read() == b"secure"
            assert transport.open(HTTPRequest("POST", plain[0].url(), {}, b"{}")).read() == b"plain"
            # ... and through the pool's own entry, where the responses can be looked at.
            for where, expected in ((url, b"secure"), (plain[0].url(), b"plain")):
                target = Target.of(httpx.URL(where))
                assert target is not None
                head = [(b"Host", target.host), (b"Content-Length", b"2")]
                resp = pool.send("POST", target, head, b"{}", t)
                assert resp.read() == expected
                if expected == b"secure":  # httpx's response, told of its request
                    assert resp.request.url == where and not isinstance(resp.stream, ResponseStream)
                else:
                    assert isinstance(resp.stream, ResponseStream)  # the pool's own
        finally:
            transport.close()
    assert tls.urls == [url, url]
    assert all(h.startswith(b"POST /v1/x HTTP/1.1") for h in secure[0].heads + plain[0].heads)


def test_an_encoded_reply_is_decoded_and_a_plain_one_read_as_it_came(
    serve: Callable[..., Server],
) -> None:
    """Transport reads a plain body of srt's pool directly, and leaves a gzip-encoded one
    to httpx's decoders (the client asks for gzip, as httpx does)."""
    import gzip

    packed = gzip.compress(b'{"packed": true}')
    replies = [ok(packed, b"content-encoding: gzip\r\n"), ok(b'{"plain": true}')]
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: replies[n])))
    transport = Transport()
    try:
        got = [transport.open(HTTPRequest("POST", box[0].url(), {}, b"{}")).read() for _ in replies]
    finally:
        transport.close()
    assert got == [b'{"packed": true}', b'{"plain": true}']
    assert b"gzip" in box[0].heads[0].lower() and box[0].accepted == 1
