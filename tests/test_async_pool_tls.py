"""srt's asyncio HTTP/1.1 pool (``srt.providers.apool``): what it leaves to httpx, TLS
(SNI, ALPN, ``verify``, shared contexts), encodings, cookies, proxies and the body
iterator's errors.

The servers are ``pool_support``'s: plain sockets that answer with exactly the
bytes a case needs, so the async pool meets what the sync one meets on the wire. Each
case runs its own event loop (``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trustme

import srt
from apool_support import _T, _open, _post, _run
from pool_support import (
    OffersH2,
    Server,
    alpn_server,
    keepalive,
    ok,
    serve,
)
from srt._core import Body
from srt.providers.apool import AsyncPool, AsyncResponseStream
from srt.providers.http1 import Target
from srt.providers.transport import (
    AsyncTransport,
    HTTPRequest,
    RetryPolicy,
    Transport,
)

__all__ = ["serve"]  # the fixture, imported for the cases here


def test_what_the_pool_does_not_speak_goes_through_httpx(serve: Callable[..., Server]) -> None:
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok(b"" if n == 0 else b"x"))))

    async def main() -> None:
        pool = AsyncPool()
        try:
            req = httpx.Request("HEAD", box[0].url(), extensions={"timeout": _T})
            head = await pool.handle_async_request(req)
            assert head.status_code == 200 and await head.aread() == b""
            await head.aclose()
            assert await _post(pool, box[0].url(), headers={"expect": "100-continue"}) == b"x"
            with pytest.raises(httpx.LocalProtocolError, match="line break"):
                await _post(pool, box[0].url(), headers={"x-a": "1\r\nx-injected: 1"})
        finally:
            await pool.aclose()

    _run(main)
    assert [h.split(b" ")[0] for h in box[0].heads] == [b"HEAD", b"POST"]


def _tls_server(serve: Callable[..., Server], body: bytes) -> tuple[trustme.CA, Server, list]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment,func-returns-value]
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok(body)), tls=server_context))
    return ca, box[0], names


def test_tls_with_sni_and_the_verify_setting(serve: Callable[..., Server]) -> None:
    ca, server, names = _tls_server(serve, b"secure")
    url = server.url(host="localhost")
    big = Body([b"{", b"x" * (2 * 1024 * 1024), b"}"])  # more than one TLS write takes

    async def main(ca_file: str) -> None:
        pool = AsyncPool(verify=ssl.create_default_context(cafile=ca_file))
        try:
            assert [await _post(pool, url) for _ in range(3)] == [b"secure"] * 3
        finally:
            await pool.aclose()
        assert server.accepted == 1 and names == ["localhost"]
        pool = AsyncPool()
        try:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE"):
                await _post(pool, url)  # the system's CAs do not know this one
        finally:
            await pool.aclose()
        transport = AsyncTransport(verify=ca_file, http2=False)
        try:
            assert await _open(transport, url, big) == b"secure"
        finally:
            await transport.aclose()

    with ca.cert_pem.tempfile() as ca_file:
        asyncio.run(main(ca_file))
    assert server.bodies[-1] == b"{" + b"x" * (2 * 1024 * 1024) + b"}"


def test_a_shared_tls_context_offers_http1_on_every_connection_or_is_refused(
    serve: Callable[..., Server],
) -> None:
    """As the sync pool's test of the same name: HTTP/1.1 offered at each connection,
    and h2 chosen all the same is a connection error with nothing sent."""
    ca, server, chosen = alpn_server(serve)
    url = server.url(host="localhost")

    async def main(ca_file: str) -> None:
        shared = ssl.create_default_context(cafile=ca_file)
        pool = AsyncPool(verify=shared)
        try:
            assert await _post(pool, url) == b"secure"
            shared.set_alpn_protocols(["h2", "http/1.1"])
            assert await _post(pool, url) == b"secure"
        finally:
            await pool.aclose()
        stubborn = OffersH2(ssl.PROTOCOL_TLS_CLIENT)
        stubborn.load_verify_locations(cafile=ca_file)
        pool = AsyncPool(verify=stubborn)
        try:
            with pytest.raises(httpx.ConnectError, match="'h2'"):
                await _post(pool, url)
        finally:
            await pool.aclose()

    with ca.cert_pem.tempfile() as ca_file:
        asyncio.run(main(ca_file))
    server.wait_closed(3)
    assert chosen == ["http/1.1", "http/1.1", "h2"] and len(server.heads) == 2


def test_with_a_tls_transport_https_goes_through_it_and_http_stays_on_the_pool(
    serve: Callable[..., Server],
) -> None:
    """``AsyncPool(tls=...)``, as ``AsyncTransport`` makes it when HTTP/2 is on."""
    ca, secure, _ = _tls_server(serve, b"secure")
    plain: list[Server] = []
    plain.append(serve(keepalive(plain, lambda n: ok(b"plain"))))
    urls: list[str] = []

    class Recording(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            urls.append(str(request.url))
            return await super().handle_async_request(request)

    url = secure.url(host="localhost")

    async def main(ca_file: str) -> None:
        pool = AsyncPool(tls=Recording(verify=ssl.create_default_context(cafile=ca_file)))
        try:
            for where, expected in ((url, b"secure"), (plain[0].url(), b"plain")):
                target = Target.of(httpx.URL(where))
                assert target is not None
                head = [(b"Host", target.host), (b"Content-Length", b"2")]
                resp = await pool.send("POST", target, head, b"{}", _T)
                assert await resp.aread() == expected
                own = isinstance(resp.stream, AsyncResponseStream)
                assert own == (expected == b"plain")
                if not own:  # httpx's response, told of its request
                    assert resp.request.url == where
                await resp.aclose()
        finally:
            await pool.aclose()

    with ca.cert_pem.tempfile() as ca_file:
        asyncio.run(main(ca_file))
    assert urls == [url]


def test_an_encoded_reply_is_decoded_and_a_plain_one_read_as_it_came(
    serve: Callable[..., Server],
) -> None:
    packed = gzip.compress(b'{"packed": true}')
    replies = [ok(packed, b"content-encoding: gzip\r\n"), ok(b'{"plain": true}')]
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: replies[n])))

    async def main() -> list[bytes]:
        transport = AsyncTransport()
        try:
            return [await _open(transport, box[0].url()) for _ in replies]
        finally:
            await transport.aclose()

    assert _run(main) == [b'{"packed": true}', b'{"plain": true}']
    assert b"gzip" in box[0].heads[0].lower() and box[0].accepted == 1


def test_cookies_a_server_sets_go_back_with_the_next_request(
    serve: Callable[..., Server],
) -> None:
    replies = [ok(b"1", b"set-cookie: sid=abc; Path=/\r\n"), ok(b"2")]
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: replies[n])))

    async def main() -> list[bytes]:
        transport = AsyncTransport()
        try:
            return [await _open(transport, box[0].url()) for _ in replies]
        finally:
            await transport.aclose()

    assert _run(main) == [b"1", b"2"]
    assert b"cookie: sid=abc" not in box[0].heads[0].lower()
    assert b"cookie: sid=abc" in box[0].heads[1].lower()


def test_an_error_of_the_body_iterator_is_not_a_write_error(
    serve: Callable[..., Server],
) -> None:
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok())))

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 20000
        raise PermissionError("the caller's own failure")

    async def main() -> bytes:
        pool = AsyncPool()
        try:
            with pytest.raises(PermissionError, match="caller's own"):
                await _post(pool, box[0].url(), content=body(), headers={"content-length": "40000"})
            return await _post(pool, box[0].url())
        finally:
            await pool.aclose()

    assert _run(main) == b"{}"
    assert box[0].accepted == 2


def test_a_url_no_proxy_exempts_goes_to_the_pool_and_another_through_the_proxy(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``HTTP_PROXY`` set (to a port where nothing listens) and ``NO_PROXY`` naming
    127.0.0.1, a request there goes straight to the pool; one to ``localhost`` goes
    through the proxy, and fails naming it."""
    box: list[Server] = []
    box.append(serve(keepalive(box, lambda n: ok(b"direct"))))
    listener = socket.create_server(("127.0.0.1", 0))
    dead = listener.getsockname()[1]
    listener.close()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    async def main() -> None:
        transport = AsyncTransport(retry=RetryPolicy(max_retries=0))
        try:
            assert await _open(transport, box[0].url()) == b"direct"
            with pytest.raises(srt.ProviderConnectionError, match="through the proxy"):
                await _open(transport, box[0].url(host="localhost"))
        finally:
            await transport.aclose()

    _run(main)
    assert box[0].accepted == 1 and len(box[0].heads) == 1


def test_tls_contexts_are_made_on_the_first_https_request_and_follow_trust_env(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither transport loads a CA bundle before its first https request (an app that
    only talks to a local server never does), and ``trust_env=False`` leaves
    ``SSL_CERT_FILE`` alone on both, as httpx does."""
    made: list[bool] = []
    create = httpx.create_ssl_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(kwargs.get("trust_env", True))
        return create(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    ca, secure, _ = _tls_server(serve, b"secure")
    plain: list[Server] = []
    plain.append(serve(keepalive(plain, lambda n: ok(b"plain"))))
    url = secure.url(host="localhost")
    with ca.cert_pem.tempfile() as ca_file:
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)

        async def main(trust_env: bool) -> bytes:
            transport = AsyncTransport(http2=False, trust_env=trust_env)
            before = len(made)
            try:
                assert await _open(transport, plain[0].url()) == b"plain"
                assert len(made) == before
                return await _open(transport, url)
            finally:
                await transport.aclose()

        assert asyncio.run(main(True)) == b"secure"  # the CA came from SSL_CERT_FILE
        assert made == [True]
        with pytest.raises(srt.ProviderConnectionError, match="CERTIFICATE"):
            asyncio.run(main(False))
        assert made == [True, False]
        made.clear()
        sync = Transport(http2=False, trust_env=False)
        try:
            assert sync.open(HTTPRequest("POST", plain[0].url(), {}, b"{}")).read() == b"plain"
            assert made == []
            with pytest.raises(srt.ProviderConnectionError, match="CERTIFICATE"):
                sync.open(HTTPRequest("POST", url, {}, b"{}"))
            assert made == [False]
        finally:
            sync.close()
