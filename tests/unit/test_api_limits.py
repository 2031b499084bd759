"""The limits: in-flight requests, watches, bodies and timeouts answer like kube-apiserver's filters."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import uvloop
from aiohttp import ClientSession, web

from mcs_apiserver.api.app import build_app
from mcs_apiserver.api.limits import (HANDSHAKES_PER_TURN, LIFO_AFTER, RECEIVE_BUFFER, ConnectionGuard, GuardedSite,
                                      Limiter, Limits, _PacedListener, runner_options)
from mcs_apiserver.api.app import request_info_middleware
from mcs_apiserver.api.resources import PREFIX, Served
from mcs_apiserver.api.store import Store, Versioner
from mcs_apiserver.metrics import Metrics

LIST = f"{PREFIX}/serviceimports"
WEBHOOK = "/webhooks/validate/clusterproperties"
#: A guard against a hung test, not a measurement.
GUARD = 10


class Slow:
    """Routes that wait until released, so that requests stay in flight."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def read(self, request: web.Request) -> web.Response:
        self.entered += 1
        if request.query.get("watch"):
            response = web.StreamResponse()
            await response.prepare(request)
            await self.release.wait()
            return response
        await self.release.wait()
        return web.json_response({"kind": "ServiceImportList"})

    async def webhook(self, request: web.Request) -> web.Response:
        self.entered += 1
        body = await request.read()
        await self.release.wait()
        return web.json_response({"size": len(body)})


async def serve(limits: Limits, slow: Slow) -> AsyncIterator[tuple[str, Limiter]]:
    limiter = Limiter(limits)
    guard = ConnectionGuard(limits.request_header_timeout)
    app = web.Application(middlewares=[guard.middleware, request_info_middleware, limiter.inflight,
                                       limiter.watches(lambda request: request.headers.get("X-User", ""))],
                          client_max_size=64 * 1024 * 1024)
    app.router.add_get(LIST, slow.read)
    app.router.add_get("/healthz", slow.read)
    app.router.add_post(WEBHOOK, slow.webhook)
    app.router.add_put(LIST + "/x", slow.read)
    runner = web.AppRunner(app, **runner_options())
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, guard=guard)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site.port}", limiter
    finally:
        slow.release.set()
        await runner.cleanup()


@pytest.fixture
def slow() -> Slow:
    return Slow()


async def wait_until(condition: Any) -> None:
    async with asyncio.timeout(GUARD):
        while not condition():
            await asyncio.sleep(0.01)


def assert_too_many(response_status: int, headers: Any, body: bytes) -> dict[str, Any]:
    assert response_status == 429
    assert headers["Retry-After"] == "1"
    doc = orjson.loads(body)
    assert (doc["kind"], doc["reason"], doc["code"], doc["details"]["retryAfterSeconds"]) == (
        "Status", "TooManyRequests", 429, 1)
    return doc


async def test_read_only_requests_beyond_max_requests_inflight_get_429_with_retry_after(slow: Slow) -> None:
    async for base, limiter in serve(Limits(max_requests_inflight=2), slow):
        async with ClientSession() as session:
            pending = [asyncio.create_task(session.get(base + LIST)) for _ in range(2)]
            await wait_until(lambda: slow.entered == 2)
            async with session.get(base + LIST) as refused:
                assert_too_many(refused.status, refused.headers, await refused.read())
            slow.release.set()
            for task in pending:
                assert (await task).status == 200
            assert limiter.read_only == 0 and limiter.rejected["readOnly"] == 1


async def test_mutating_requests_are_limited_apart_from_read_only_ones(slow: Slow) -> None:
    async for base, limiter in serve(Limits(max_requests_inflight=1, max_mutating_requests_inflight=1), slow):
        async with ClientSession() as session:
            read = asyncio.create_task(session.get(base + LIST))
            write = asyncio.create_task(session.post(base + WEBHOOK, data=b"{}"))
            await wait_until(lambda: slow.entered == 2)  # one of each kind got in
            async with session.post(base + WEBHOOK, data=b"{}") as refused:
                assert_too_many(refused.status, refused.headers, await refused.read())
            assert limiter.rejected["mutating"] == 1 and limiter.rejected["readOnly"] == 0
            slow.release.set()
            assert (await read).status == 200 and (await write).status == 200


async def test_health_probes_are_never_limited(slow: Slow) -> None:
    async for base, limiter in serve(Limits(max_requests_inflight=1), slow):
        async with ClientSession() as session:
            pending = asyncio.create_task(session.get(base + LIST))
            await wait_until(lambda: slow.entered == 1)
            probe = asyncio.create_task(session.get(base + "/healthz"))
            await wait_until(lambda: slow.entered == 2)  # the probe reached its handler
            slow.release.set()
            assert (await probe).status == 200 and (await pending).status == 200


async def test_watches_are_counted_apart_and_limited_in_total_and_per_user(slow: Slow) -> None:
    async for base, limiter in serve(Limits(max_requests_inflight=1, max_watches=3, max_watches_per_user=2), slow):
        async with ClientSession() as session:
            watches = [await session.get(base + LIST, params={"watch": "t"}, headers={"X-User": "alice"})
                       for _ in range(2)]
            assert all(w.status == 200 for w in watches)
            refused = await session.get(base + LIST, params={"watch": "1"}, headers={"X-User": "alice"})
            doc = assert_too_many(refused.status, refused.headers, await refused.read())
            assert "by this user (2)" in doc["message"]
            watches.append(await session.get(base + LIST, params={"watch": "true"}, headers={"X-User": "bob"}))
            assert watches[-1].status == 200
            refused = await session.get(base + LIST, params={"watch": "1"}, headers={"X-User": "carol"})
            doc = assert_too_many(refused.status, refused.headers, await refused.read())
            assert "(3)" in doc["message"]
            # three open watches did not take the one read-only slot
            listing = asyncio.create_task(session.get(base + LIST))
            await wait_until(lambda: slow.entered == 4)
            assert limiter.watches_open == 3 and limiter.read_only == 1
            slow.release.set()
            assert (await listing).status == 200
            for watch in watches:
                watch.close()
            await wait_until(lambda: limiter.watches_open == 0)
            assert not limiter.watches_by_user


async def test_a_declared_body_over_the_path_limit_gets_413_at_once(slow: Slow) -> None:
    async for base, limiter in serve(Limits(max_request_body_bytes=1000), slow):
        async with ClientSession() as session:
            async with session.post(base + WEBHOOK, data=b"x" * 1001) as response:
                assert response.status == 413
                doc = orjson.loads(await response.read())
                assert (doc["reason"], doc["code"]) == ("RequestEntityTooLarge", 413)
                assert "limit is 1000 bytes" in doc["message"]
            async with session.put(base + LIST + "/x", data=b"x" * (64 * 1024 + 1)) as response:
                assert response.status == 413  # paths that never read a body accept 64 KiB at most
            assert slow.entered == 0


async def open_raw(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = base.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def test_bodies_beyond_the_body_bytes_budget_get_429_and_memory_stays_bounded(slow: Slow) -> None:
    async for base, limiter in serve(Limits(max_request_body_bytes_inflight=1000, max_request_body_bytes=800), slow):
        reader, writer = await open_raw(base)
        # a slow body: declares 600 bytes, sends 10
        writer.write(f"POST {WEBHOOK} HTTP/1.1\r\nHost: x\r\nContent-Length: 600\r\n\r\n".encode() + b"x" * 10)
        await writer.drain()
        await wait_until(lambda: limiter.body_bytes == 600)
        async with ClientSession() as session:
            async with session.post(base + WEBHOOK, data=b"y" * 500) as refused:
                doc = assert_too_many(refused.status, refused.headers, await refused.read())
                assert "request bodies" in doc["message"]
            slow.release.set()
            async with session.post(base + WEBHOOK, data=b"y" * 300) as accepted:
                assert accepted.status == 200
        writer.close()
        await wait_until(lambda: limiter.body_bytes == 0)


async def test_a_body_not_received_in_time_gets_408_and_the_connection_is_closed(slow: Slow) -> None:
    slow.release.set()
    async for base, limiter in serve(Limits(request_body_timeout=0.2), slow):
        reader, writer = await open_raw(base)
        writer.write(f"POST {WEBHOOK} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode() + b"{")
        await writer.drain()
        async with asyncio.timeout(GUARD):
            answer = await reader.read()  # everything, until the server closes
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408")
        doc = orjson.loads(body)
        assert (doc["reason"], doc["code"]) == ("Timeout", 408)
        assert "not received within 0.2s" in doc["message"]
        assert limiter.body_bytes == 0 and limiter.mutating == 0
        writer.close()


async def test_a_connection_that_does_not_finish_its_headers_in_time_is_closed(slow: Slow) -> None:
    async for base, limiter in serve(Limits(request_header_timeout=0.2), slow):
        reader, writer = await open_raw(base)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        await writer.drain()
        async with asyncio.timeout(GUARD):
            assert await reader.read() == b""  # closed without a word
        assert slow.entered == 0
        writer.close()


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(slow: Slow) -> None:
    async for base, limiter in serve(Limits(request_header_timeout=0.2), slow):
        reader, writer = await open_raw(base)
        async with asyncio.timeout(GUARD):
            assert await reader.read() == b""
        writer.close()


async def test_a_keep_alive_connection_keeps_serving_after_the_header_timeout_passed(slow: Slow) -> None:
    slow.release.set()
    async for base, limiter in serve(Limits(request_header_timeout=0.3), slow):
        async with ClientSession() as session:
            for _ in range(3):
                async with session.get(base + LIST) as response:
                    assert response.status == 200
                await asyncio.sleep(0.2)  # idle between requests is not a slow header
            assert session.connector is not None


# --- watches end when their client goes ------------------------------------------------------------


async def test_a_dropped_watch_is_unregistered_at_once() -> None:
    versioner = Versioner(1)
    imports, sets = Store("serviceimports", versioner), Store("clustersets", versioner)
    metrics = Metrics()
    limits = Limits()
    limiter = Limiter(limits)
    guard = ConnectionGuard(limits.request_header_timeout)
    app = build_app(Served({"serviceimports": imports, "clustersets": sets}), checks=[], metrics=metrics,
                    limiter=limiter, guard=guard)
    runner = web.AppRunner(app, **runner_options())
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, guard=guard)
    await site.start()
    try:
        for _ in range(20):
            reader, writer = await open_raw(f"http://127.0.0.1:{site.port}")
            writer.write(f"GET {LIST}?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # the watch is open
            assert len(imports._watchers) == 1 and limiter.watches_open == 1
            writer.close()  # the client goes; no event will ever be written to it
            await wait_until(lambda: not imports._watchers and limiter.watches_open == 0)
        gauge = metrics.registry.get_sample_value("apiserver_registered_watchers", {"resource": "serviceimports"})
        assert gauge == 0
    finally:
        await runner.cleanup()


# --- the flags ---------------------------------------------------------------------------------------


def _serve_args(*flags: str) -> Any:
    import argparse

    from mcs_apiserver.server import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--tls-cert-file=c", "--tls-private-key-file=k", *flags])


def test_the_limit_flags_become_the_limits_with_kube_apiserver_defaults() -> None:
    from mcs_apiserver.server import options_from_args

    assert options_from_args(_serve_args()).limits == Limits()
    limits = options_from_args(_serve_args(
        "--max-requests-inflight=7", "--max-mutating-requests-inflight=0", "--max-watches=9",
        "--max-watches-per-user=3", "--request-header-timeout=2s", "--request-body-timeout=1m",
        "--max-request-body-bytes=1000", "--max-request-body-bytes-inflight=5000")).limits
    assert limits == Limits(7, 0, 9, 3, 2.0, 60.0, 1000, 5000)
    assert Limits().max_requests_inflight == 400 and Limits().max_mutating_requests_inflight == 200


@pytest.mark.parametrize(("flag", "message"), [
    ("--max-watches=-1", "--max-watches must not be negative"),
    ("--request-body-timeout=0s", "--request-body-timeout must be longer than 0s"),
])
def test_a_limit_flag_that_makes_no_sense_is_refused_with_a_clear_message(flag: str, message: str) -> None:
    from mcs_apiserver.server import ConfigError, options_from_args

    with pytest.raises(ConfigError, match=message):
        options_from_args(_serve_args(flag))


# --- TLS handshakes: paced, with a deadline -----------------------------------------------------------


@pytest.fixture(scope="module")
def tls_contexts(localhost_tls: tuple[ssl.SSLContext, str]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context (certificate of a fresh CA) and a client context trusting that CA."""
    server, ca = localhost_tls
    client = ssl.create_default_context(cadata=ca)
    client.check_hostname = False
    return server, client


async def serve_tls(context: ssl.SSLContext, timeout: float, trusts: Any = None) -> AsyncIterator[int]:
    async def hello(request: web.Request) -> web.Response:
        sock = request.transport.get_extra_info("socket")
        return web.json_response({"tls": request.transport.get_extra_info("ssl_object") is not None,
                                  "receive_buffer": sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)})

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"reason": "Unauthorized"}, status=401)  # the body is never read

    @web.middleware
    async def slow_authentication(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/gated":
            await asyncio.sleep(0.3)  # a SubjectAccessReview, say
            received = request.content.total_bytes  # what the body fed aiohttp meanwhile
            return web.json_response({"reason": "Unauthorized", "received": received}, status=401)
        return await handler(request)

    async def read_all(request: web.Request) -> web.Response:
        return web.json_response({"size": len(await request.read())})

    guard = ConnectionGuard(timeout, trusts=trusts)
    app = web.Application(middlewares=[guard.middleware, slow_authentication, guard.admission_gate()],
                          client_max_size=8 * 1024 * 1024)
    app.router.add_get("/", hello)
    app.router.add_post("/refuse", refuse)
    app.router.add_post("/gated", read_all)
    app.router.add_post("/admitted", read_all)
    runner = web.AppRunner(app, **runner_options())
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, guard=guard, ssl_context=context)
    await site.start()
    try:
        yield site.port
    finally:
        await runner.cleanup()


async def _burst_is_served(server: ssl.SSLContext, client: ssl.SSLContext, trusts: Any = None) -> list[Any]:
    async for port in serve_tls(server, GUARD, trusts):
        async with ClientSession() as session:
            async def get() -> Any:
                async with session.get(f"https://127.0.0.1:{port}/", ssl=client) as response:
                    return response.status, await response.json()

            return await asyncio.gather(*(get() for _ in range(60)))
    raise AssertionError("not served")


def test_a_burst_of_tls_connections_is_served_in_full_under_uvloop(tls_contexts) -> None:
    """More connections at once than handshakes start per turn: the rest wait their turn, none is lost."""
    server, client = tls_contexts
    # Linux doubles SO_RCVBUF (bookkeeping overhead)
    assert uvloop.run(_burst_is_served(server, client)) == [(200, {"tls": True, "receive_buffer": 2 * RECEIVE_BUFFER})] * 60


async def test_a_burst_of_tls_connections_is_served_in_full_under_asyncio(tls_contexts) -> None:
    server, client = tls_contexts
    assert await _burst_is_served(server, client) == [(200, {"tls": True, "receive_buffer": 2 * RECEIVE_BUFFER})] * 60


async def test_a_connection_that_never_starts_its_handshake_is_closed_and_holds_up_no_one(tls_contexts) -> None:
    server, client = tls_contexts
    async for port in serve_tls(server, 0.5):
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
        async with ClientSession() as session, session.get(f"https://127.0.0.1:{port}/", ssl=client) as response:
            assert response.status == 200  # while ten connections sit on their handshake
        async with asyncio.timeout(GUARD):
            assert [await reader.read() for reader, _ in silent] == [b""] * 10  # closed at the deadline
        for _, writer in silent:
            writer.close()


async def test_a_failed_handshake_closes_its_connection_and_the_site_serves_on(tls_contexts) -> None:
    server, client = tls_contexts
    async for port in serve_tls(server, GUARD):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to a TLS port
        async with asyncio.timeout(GUARD):
            await reader.read()  # the server closes it (perhaps after a TLS alert)
        writer.close()
        async with ClientSession() as session, session.get(f"https://127.0.0.1:{port}/", ssl=client) as response:
            assert response.status == 200


def _send_after_the_answer(client: ssl.SSLContext, port: int, seconds: float) -> tuple[bytes, int]:
    """A client that POSTs a 3 MiB body, reads the answer, then ignores it and keeps sending for up to
    ``seconds``: (the answer, how many more bytes the connection took)."""
    body, chunk = 3 * 1024 * 1024, b"x" * 16384
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)  # what it sends must be taken by the server
    raw.connect(("127.0.0.1", port))
    with raw, client.wrap_socket(raw, server_hostname="localhost") as conn:
        conn.sendall(f"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: {body}\r\n\r\n".encode())
        conn.settimeout(GUARD)
        answer = conn.recv(100)
        conn.settimeout(seconds)
        sent, deadline = 0, time.monotonic() + seconds
        try:
            while sent < body and time.monotonic() < deadline:
                conn.sendall(chunk)
                sent += len(chunk)
        except (OSError, ssl.SSLError):
            pass  # reset by the server, or nothing taken for ``seconds``
        return answer, sent


async def _refused_body(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[bytes, int]:
    async for port in serve_tls(server, GUARD):
        return await asyncio.to_thread(_send_after_the_answer, client, port, 1.5)
    raise AssertionError("not served")


def test_a_refused_body_is_not_read_and_the_client_still_gets_the_answer_under_uvloop(tls_contexts) -> None:
    """Closing a connection whose body was left unread stops reading at once: a client that ignores
    the 401 and keeps sending gets nowhere (a graceful TLS close would read and decrypt what it sends
    until its close_notify or a timeout: the whole 3 MiB)."""
    answer, sent = uvloop.run(_refused_body(*tls_contexts))
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert sent < 1024 * 1024


async def test_a_refused_body_is_not_read_and_the_client_still_gets_the_answer_under_asyncio(tls_contexts) -> None:
    answer, sent = await _refused_body(*tls_contexts)
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert sent < 1024 * 1024


async def _sent_before_the_answer(client: ssl.SSLContext, port: int, path: str) -> tuple[bytes, int]:
    """POST 3 MiB to ``path`` as fast as the connection takes it: (the answer, the body bytes the
    client had handed its connection when the answer came)."""
    body, chunk = 3 * 1024 * 1024, b"x" * 16384
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, ssl=client, server_hostname="localhost")
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {body}\r\n\r\n".encode())
    answer = asyncio.ensure_future(reader.read(300))
    sent = 0
    try:
        async with asyncio.timeout(GUARD):
            while sent < body and not answer.done():
                writer.write(chunk)
                sent += len(chunk)
                await asyncio.wait([asyncio.ensure_future(writer.drain()), answer],
                                   return_when=asyncio.FIRST_COMPLETED)
            return await answer, sent
    finally:
        writer.close()


async def _held_and_admitted(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[tuple[bytes, int], bytes]:
    async for port in serve_tls(server, GUARD):
        refused = await _sent_before_the_answer(client, port, "/gated")
        admitted, _ = await _sent_before_the_answer(client, port, "/admitted")
        return refused, admitted
    raise AssertionError("not served")


def test_a_body_is_not_read_before_its_request_is_authenticated(tls_contexts) -> None:
    """While authentication takes its time, the body waits in the kernel's buffers: at most what
    came in with the headers reaches aiohttp (read, the body would fill aiohttp's buffer, 128 KiB,
    and more). A request let through reads its whole body."""
    (answer, sent), admitted = uvloop.run(_held_and_admitted(*tls_contexts))
    assert answer.startswith(b"HTTP/1.1 401 ")
    received = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["received"]
    assert received < 64 * 1024 < sent  # the client kept sending all along
    assert admitted.startswith(b"HTTP/1.1 200 ") and admitted.endswith(b'{"size": 3145728}')


def test_a_burst_of_strangers_is_served_in_full_while_they_wait_in_line(tls_contexts) -> None:
    """Connections without a trusted certificate take turns, one request a turn: all are answered."""
    server, client = tls_contexts
    answers = uvloop.run(_burst_is_served(server, client, trusts=lambda der: True))  # none presents one
    assert answers == [(200, {"tls": True, "receive_buffer": 2 * RECEIVE_BUFFER})] * 60


class _Recorder(asyncio.Protocol):
    """aiohttp's place: notes what reaches it, in order."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def data_received(self, data: bytes) -> None:
        self.log.append(self.name)


class _TLSTransport:
    """What the guard asks of the event loop's TLS transport: the client's certificate, reading."""

    def __init__(self, der: bytes | None) -> None:
        self.der = der
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self
        return default

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        return self.der

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_read_buffer_limits(self, high: int | None = None) -> None:
        pass


def _connections(log: list[str], *clients: tuple[str, bytes | None]) -> list[tuple[Any, _TLSTransport]]:
    guard = ConnectionGuard(GUARD, trusts=lambda der: der == b"front-proxy")
    connections = []
    for name, der in clients:
        protocol, transport = guard.wrap(lambda name=name: _Recorder(name, log))(), _TLSTransport(der)
        protocol.connection_made(transport)
        connections.append((protocol, transport))
    return connections


async def test_a_known_clients_request_is_served_before_the_strangers_waiting_in_line() -> None:
    log: list[str] = []
    *strangers, known = _connections(log, ("stranger-1", None), ("stranger-2", None), ("self-signed", b"forged"),
                                     ("aggregator", b"front-proxy"))
    for protocol, _ in strangers:
        protocol.data_received(b"POST /webhooks/admit HTTP/1.1\r\nContent-Length: 3145728\r\n\r\n")
    known[0].data_received(b"GET /apis HTTP/1.1\r\n\r\n")
    assert log == ["aggregator"]
    assert [transport.reading for _, transport in strangers] == [False] * 3  # the rest of their bytes wait
    for turns in range(1, 4):
        await asyncio.sleep(0)  # a turn of the loop
        assert log == ["aggregator", "stranger-1", "stranger-2", "self-signed"][:turns + 1]
    # its headers are in: nothing more is read until the request reaches the handlers
    assert [transport.reading for _, transport in strangers] == [False] * 3


async def test_a_health_probe_without_a_certificate_skips_the_strangers_line() -> None:
    log: list[str] = []
    stranger, probe = _connections(log, ("stranger", None), ("kubelet", None))
    stranger[0].data_received(b"GET /apis HTTP/1.1\r\n\r\n")
    probe[0].data_received(b"GET /readyz HTTP/1.1\r\n\r\n")
    assert log == ["kubelet"]
    await asyncio.sleep(0)
    assert log == ["kubelet", "stranger"]


async def test_beyond_a_few_waiting_handshakes_the_newest_start_first() -> None:
    """A client that comes after a burst (a probe, the aggregator) does not wait for all of it."""
    loop = asyncio.get_running_loop()
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    listening.setblocking(False)
    listener = _PacedListener(listening, asyncio.Protocol, None, GUARD)
    started: list[int] = []

    async def handshake(conn: socket.socket, timeout: float) -> None:
        started.append(conn.fileno())

    listener._handshake = handshake  # type: ignore[method-assign]
    pairs = [socket.socketpair() for _ in range(LIFO_AFTER + 4)]
    try:
        for conn, _ in pairs:  # their ClientHellos are in, oldest first
            listener._deadlines[conn] = loop.call_later(GUARD, listener._give_up, conn)
            listener._heard(conn)
        for _ in range(2 * len(pairs)):  # enough turns, however many start per turn
            await asyncio.sleep(0)
        order = [[c.fileno() for c, _ in pairs].index(fd) for fd in started]
        newest_first = len(pairs) - LIFO_AFTER  # started while more than LIFO_AFTER waited
        assert order[:newest_first] == list(range(len(pairs) - 1, LIFO_AFTER - 1, -1))
        assert order[newest_first:] == list(range(LIFO_AFTER))  # then in arrival order again
        assert HANDSHAKES_PER_TURN < len(pairs)  # so the order above took turns
    finally:
        await listener.close()
        for conn, other in pairs:
            conn.close()
            other.close()
