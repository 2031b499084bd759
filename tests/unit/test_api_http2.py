"""HTTP/2 (api/http2.py): a real TLS site with ALPN, and a real HTTP/2 client (python-hyper's h2 over
asyncio's TLS streams), as kube-apiserver's Go transport would talk to it."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from h2.errors import ErrorCodes

from mcs_apiserver.api.http2 import ALPN_PROTOCOLS, Http2Connection, Http2Settings, http2_factory
from mcs_apiserver.api.limits import ConnectionGuard, GuardedSite, runner_options


@pytest.fixture(scope="module")
def tls(localhost_tls: tuple[ssl.SSLContext, str]) -> tuple[ssl.SSLContext, str]:
    """A server context offering h2 and HTTP/1.1, and the CA a client trusts."""
    server, ca = localhost_tls
    server.set_alpn_protocols(list(ALPN_PROTOCOLS))
    return server, ca


def client_context(ca: str, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca)
    context.check_hostname = False
    context.set_alpn_protocols(alpn)
    return context


@dataclass
class Handlers:
    """The test app's handlers, and what they saw."""

    cancelled: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def hello(self, request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "query": request.query_string, "secure": request.secure,
                                  "tls": request.transport.get_extra_info("ssl_object") is not None,
                                  "host": request.host})

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"size": len(body), "tail": body[-8:].decode()})

    async def refuse(self, request: web.Request) -> web.Response:
        return web.json_response({"reason": "Unauthorized"}, status=401)  # the body is never read

    async def big(self, request: web.Request) -> web.Response:
        return web.Response(body=bytes(range(256)) * 1024)  # 256 KiB

    async def watch(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(b'{"type":"ADDED"}\n')
            await asyncio.Event().wait()  # until the client goes
        except asyncio.CancelledError:
            self.cancelled.append(request.path)
            raise
        return response

    async def slow(self, request: web.Request) -> web.Response:
        self.entered.set()
        await self.release.wait()
        return web.json_response({"slow": True})


@asynccontextmanager
async def serve(context: ssl.SSLContext, handlers: Handlers, trusts: Any = None,
                **settings: Any) -> AsyncIterator[tuple[int, ConnectionGuard]]:
    guard = ConnectionGuard(settings.get("header_timeout", 10.0), http2=http2_factory(Http2Settings(**settings)),
                            trusts=trusts)
    app = web.Application(middlewares=[guard.middleware, guard.admission_gate()], client_max_size=8 * 1024 * 1024)
    app.router.add_get("/hello", handlers.hello)
    app.router.add_post("/echo", handlers.echo)
    app.router.add_post("/refuse", handlers.refuse)
    app.router.add_get("/big", handlers.big)
    app.router.add_get("/watch", handlers.watch)
    app.router.add_get("/slow", handlers.slow)
    runner = web.AppRunner(app, **runner_options())
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, guard=guard, ssl_context=context)
    await site.start()
    try:
        yield site.port, guard
    finally:
        await runner.cleanup()


@dataclass
class Answer:
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None

    def json(self) -> Any:
        return orjson.loads(bytes(self.body))


class Client:
    """A minimal HTTP/2 client: h2's state machine over a TLS stream; every event is kept by stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, window: int | None) -> None:
        self.reader, self.writer = reader, writer
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        if window is not None:
            self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.answers: dict[int, Answer] = {}
        self.events: list[Any] = []
        self.closed = False
        self.auto_ack = True
        self.goaway: int | None = None  # the last stream id of the server's GOAWAY
        self._frames = b""
        self.goaway_code = b""
        self.flush()

    @classmethod
    async def connect(cls, port: int, ca: str, window: int | None = None, receive_buffer: int | None = None) -> Client:
        sock = socket.socket()
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, ssl=client_context(ca, ["h2"]),
                                                       server_hostname="localhost")
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        return cls(reader, writer, window)

    def flush(self) -> None:
        self.writer.write(self.h2.data_to_send())

    def send(self, method: str, path: str, body: bytes | None = None, end: bool = True,
             headers: list[tuple[str, str]] | None = None) -> int:
        stream = self.h2.get_next_available_stream_id()
        fields = [(":method", method), (":path", path), (":scheme", "https"), (":authority", "mcs.test"),
                  *(headers or [])]
        self.h2.send_headers(stream, fields, end_stream=body is None and end)
        if body is not None:
            size = self.h2.max_outbound_frame_size
            for start in range(0, len(body), size):
                self.h2.send_data(stream, body[start:start + size], end_stream=end and start + size >= len(body))
        self.answers[stream] = Answer()
        self.flush()
        return stream

    def _without_goaway(self, data: bytes) -> bytes:
        """h2 closes its side of a connection at a GOAWAY, where a real client (Go's) finishes its open
        streams: a GOAWAY is noted here and kept from h2."""
        self._frames += data
        kept = b""
        while len(self._frames) >= 9:
            end = 9 + int.from_bytes(self._frames[:3], "big")
            if len(self._frames) < end:
                break
            frame, self._frames = self._frames[:end], self._frames[end:]
            if frame[3] == 0x7:
                self.goaway = int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF
                self.goaway_code = frame[13:17]
            else:
                kept += frame
        return kept

    async def pump(self) -> None:
        """Read once, and handle what came."""
        data = await self.reader.read(65536)
        if not data:
            self.closed = True
            return
        for event in self.h2.receive_data(self._without_goaway(data)):
            self.events.append(event)
            answer = self.answers.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived) and answer is not None:
                answer.headers = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                if answer is not None:
                    answer.body += event.data
                if self.auto_ack:
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and answer is not None:
                answer.ended = True
            elif isinstance(event, h2.events.StreamReset) and answer is not None:
                answer.reset = event.error_code
        self.flush()

    async def until(self, condition: Any) -> None:
        async with asyncio.timeout(10):
            while not condition():
                if self.closed:
                    raise ConnectionError(f"the server closed the connection; events: {self.events[-3:]}")
                await self.pump()

    async def answer(self, stream: int) -> Answer:
        answer = self.answers[stream]
        await self.until(lambda: answer.ended or answer.reset is not None)
        return answer

    def close(self) -> None:
        self.writer.close()


async def test_a_request_over_h2_is_served_by_the_same_app_with_no_connection_headers(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers()) as (port, _):
        client = await Client.connect(port, ca)
        answer = await client.answer(client.send("GET", "/hello?watch=1&x=%2F"))
        assert answer.headers[":status"] == "200"
        assert answer.headers["content-type"] == "application/json; charset=utf-8"
        assert not {"connection", "transfer-encoding", "keep-alive"} & set(answer.headers)
        assert answer.json() == {"path": "/hello", "query": "watch=1&x=/", "secure": True, "tls": True,
                                 "host": "mcs.test"}
        client.close()
        # What the same request over HTTP/1.1 sees.
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(ca, ["http/1.1"]),
                                                       server_hostname="localhost")
        writer.write(b"GET /hello?watch=1&x=%2F HTTP/1.1\r\nHost: mcs.test\r\nConnection: close\r\n\r\n")
        head, _, body = (await reader.read(-1)).partition(b"\r\n\r\n")
        assert orjson.loads(body) == answer.json()


async def test_a_client_that_offers_only_http_1_1_is_served_http_1_1(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers()) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(ca, ["http/1.1"]),
                                                       server_hostname="localhost")
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
        writer.close()


async def test_streams_of_one_connection_are_served_at_the_same_time(tls) -> None:
    server, ca = tls
    handlers = Handlers()
    async with serve(server, handlers) as (port, _):
        client = await Client.connect(port, ca)
        slow = client.send("GET", "/slow")
        fast = await client.answer(client.send("GET", "/hello"))
        assert fast.headers[":status"] == "200" and not client.answers[slow].ended
        handlers.release.set()
        assert (await client.answer(slow)).json() == {"slow": True}
        client.close()


async def test_a_stream_reset_by_the_client_cancels_its_handler_at_once_and_the_connection_serves_on(tls) -> None:
    server, ca = tls
    handlers = Handlers()
    async with serve(server, handlers) as (port, _):
        client = await Client.connect(port, ca)
        watch = client.send("GET", "/watch")
        await client.until(lambda: bytes(client.answers[watch].body).startswith(b'{"type":"ADDED"}'))
        client.h2.reset_stream(watch, ErrorCodes.CANCEL)
        client.flush()
        async with asyncio.timeout(5):
            while not handlers.cancelled:
                await asyncio.sleep(0.01)
        assert handlers.cancelled == ["/watch"]
        assert (await client.answer(client.send("GET", "/hello"))).headers[":status"] == "200"
        client.close()


async def test_every_handler_of_a_connection_that_goes_is_cancelled(tls) -> None:
    server, ca = tls
    handlers = Handlers()
    async with serve(server, handlers) as (port, _):
        client = await Client.connect(port, ca)
        watches = [client.send("GET", "/watch") for _ in range(3)]
        await client.until(lambda: all(client.answers[w].body for w in watches))
        client.writer.transport.abort()
        async with asyncio.timeout(5):
            while len(handlers.cancelled) < 3:
                await asyncio.sleep(0.01)
        assert handlers.cancelled == ["/watch"] * 3


async def test_a_body_larger_than_a_window_reaches_a_handler_that_reads_it(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers()) as (port, _):
        client = await Client.connect(port, ca)
        body = b"x" * (3 * 1024 * 1024 - 3) + b"end"
        stream = client.send("POST", "/echo", end=False)
        sent = 0
        while sent < len(body):  # as the server's windows allow
            window = min(client.h2.local_flow_control_window(stream), client.h2.max_outbound_frame_size)
            if window == 0:
                await client.pump()
                continue
            client.h2.send_data(stream, body[sent:sent + window])
            sent += window
            client.flush()
        client.h2.end_stream(stream)
        client.flush()
        assert (await client.answer(stream)).json() == {"size": len(body), "tail": "xxxxxend"}
        client.close()


async def test_an_unread_body_gets_one_window_then_a_reset_and_the_connection_window_comes_back(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers()) as (port, _):
        client = await Client.connect(port, ca)
        stream = client.send("POST", "/refuse", end=False)
        window = client.h2.local_flow_control_window(stream)
        for start in range(0, window, 16384):  # all the server allows ahead of reading
            client.h2.send_data(stream, b"y" * min(16384, window - start))
        client.flush()
        answer = await client.answer(stream)
        assert answer.headers[":status"] == "401"
        await client.until(lambda: answer.reset is not None)
        assert answer.reset == ErrorCodes.NO_ERROR  # "stop sending": the answer is complete
        await client.until(lambda: client.h2.outbound_flow_control_window >= window)
        # The connection's window is whole again: the next body goes through in full.
        body = b"z" * 60_000
        assert (await client.answer(client.send("POST", "/echo", body))).json()["size"] == 60_000
        client.close()


async def test_a_response_larger_than_the_clients_window_arrives_whole(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers()) as (port, _):
        client = await Client.connect(port, ca, window=1000)
        answer = await client.answer(client.send("GET", "/big"))
        assert bytes(answer.body) == bytes(range(256)) * 1024
        assert max(len(e.data) for e in client.events if isinstance(e, h2.events.DataReceived)) <= 1000
        client.close()


async def test_a_malformed_request_target_gets_a_400_status(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers()) as (port, _):
        client = await Client.connect(port, ca)
        client.h2.config.validate_outbound_headers = False
        answer = await client.answer(client.send("GET", "hello"))
        assert answer.headers[":status"] == "400"
        assert answer.json()["reason"] == "BadRequest"
        assert "must be a path" in answer.json()["message"]
        client.close()


async def test_protocol_garbage_closes_that_connection_only(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers()) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(ca, ["h2"]),
                                                       server_hostname="localhost")
        writer.write(b"GET / HTTP/1.1\r\n\r\n" * 10)  # not the HTTP/2 preface
        async with asyncio.timeout(5):
            while await reader.read(65536):
                pass  # the server's SETTINGS and GOAWAY, then the end
        client = await Client.connect(port, ca)
        assert (await client.answer(client.send("GET", "/hello"))).headers[":status"] == "200"
        client.close()


async def test_a_connection_without_a_request_within_the_header_timeout_is_closed(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers(), header_timeout=0.2) as (port, _):
        client = await Client.connect(port, ca)
        await client.until(lambda: client.closed)
        assert client.goaway == 0


async def test_shutdown_sends_goaway_and_lets_open_requests_finish(tls) -> None:
    server, ca = tls
    handlers = Handlers()
    async with serve(server, handlers) as (port, guard):
        client = await Client.connect(port, ca)
        slow = client.send("GET", "/slow")
        await asyncio.wait_for(handlers.entered.wait(), 5)
        stopping = asyncio.create_task(guard.shutdown_http2())
        await client.until(lambda: client.goaway is not None)
        assert client.goaway == slow
        handlers.release.set()
        answer = await client.answer(slow)
        assert answer.json() == {"slow": True}
        await stopping


async def test_a_request_after_goaway_is_refused_so_the_client_retries_it_elsewhere(tls) -> None:
    server, ca = tls
    handlers = Handlers()
    async with serve(server, handlers) as (port, guard):
        client = await Client.connect(port, ca)
        slow = client.send("GET", "/slow")
        await asyncio.wait_for(handlers.entered.wait(), 5)
        stopping = asyncio.create_task(guard.shutdown_http2())
        await client.until(lambda: client.goaway is not None)
        late = client.send("GET", "/hello")  # crossed the GOAWAY
        answer = await client.answer(late)
        assert answer.reset == ErrorCodes.REFUSED_STREAM and answer.headers == {}
        handlers.release.set()
        assert (await client.answer(slow)).json() == {"slow": True}
        await stopping


async def test_the_stream_limit_is_advertised_in_the_servers_settings(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers(), max_streams=7) as (port, _):
        client = await Client.connect(port, ca)
        await client.answer(client.send("GET", "/hello"))
        assert client.h2.remote_settings.max_concurrent_streams == 7
        assert client.h2.remote_settings.enable_push == 0
        client.close()


async def test_a_client_that_sends_pings_and_reads_nothing_stops_being_read(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers()) as (port, guard):
        client = await Client.connect(port, ca, receive_buffer=4096)  # the kernel holds little for it
        await client.answer(client.send("GET", "/hello"))
        (guarded,) = guard.connections.values()
        real = guarded.transport.real
        # The kernels on both sides hold little of what we send back (loopback would hold megabytes).
        real.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ping = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678"  # PING, 8 bytes of payload
        for _ in range(16):
            client.writer.write(ping * 4096)  # 16 x 68 KiB of PINGs; each wants a 17-byte PING ACK back
        async with asyncio.timeout(10):
            while real.is_reading():
                await asyncio.sleep(0.01)
        # Our answers wait in our buffer only up to its high-water mark, then we stop reading the client.
        assert real.get_write_buffer_size() < 1024 * 1024
        client.writer.transport.abort()


async def test_a_connection_without_a_client_certificate_gets_fewer_streams(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers(), max_streams=1000, max_streams_without_certificate=50) as (port, _):
        client = await Client.connect(port, ca)
        await client.answer(client.send("GET", "/hello"))
        assert client.h2.remote_settings.max_concurrent_streams == 50
        client.close()


async def test_a_response_the_client_never_lets_us_send_is_reset_after_the_stall_timeout(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers(), stall_timeout=0.2) as (port, _):
        client = await Client.connect(port, ca, window=0)  # no DATA may be sent on any stream
        answer = await client.answer(client.send("GET", "/big"))
        assert answer.headers[":status"] == "200" and answer.body == bytearray()
        assert answer.reset == ErrorCodes.CANCEL
        client.close()


async def test_a_client_that_resets_streams_as_fast_as_it_opens_them_is_told_to_calm_down(tls) -> None:
    server, ca = tls
    handlers = Handlers()
    async with serve(server, handlers, max_streams=20) as (port, _):
        client = await Client.connect(port, ca)
        for _ in range(5):  # bursts of 10 opened and at once reset, the way CVE-2023-44487 floods
            for _ in range(10):
                stream = client.send("GET", "/slow")
                client.h2.reset_stream(stream, ErrorCodes.CANCEL)
            client.flush()
        await client.until(lambda: client.closed)
        assert client.goaway is not None
        assert bytes(client.goaway_code) == ErrorCodes.ENHANCE_YOUR_CALM.to_bytes(4, "big")


async def test_a_strangers_frames_wait_for_their_turn_and_its_requests_are_served(tls) -> None:
    server, ca = tls
    handlers = Handlers()
    async with serve(server, handlers, trusts=lambda der: False) as (port, guard):
        client = await Client.connect(port, ca)  # no client certificate: a stranger
        streams = [client.send("GET", f"/hello?n={n}") for n in range(5)]
        answers = [await client.answer(stream) for stream in streams]
        assert [a.json()["query"] for a in answers] == [f"n={n}" for n in range(5)]
        (guarded,) = guard.connections.values()
        assert guarded.http2 and not guarded.known
        assert guarded.waiting is None and not guarded.transport.waiting  # read again after its turn
        client.close()


async def test_a_body_sent_with_expect_100_continue_is_answered_with_no_interim_bytes_in_the_response(tls) -> None:
    server, ca = tls
    async with serve(server, Handlers()) as (port, _):
        client = await Client.connect(port, ca)
        answer = await client.answer(client.send("POST", "/echo", b"x" * 1000 + b"end",
                                                 headers=[("expect", "100-continue")]))
        assert answer.headers[":status"] == "200"
        assert answer.json() == {"size": 1003, "tail": "xxxxxend"}  # JSON from the first byte
        client.close()


class _FakeTransport(asyncio.Transport):
    """Collects what the connection writes; closing is noted."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # and empty SETTINGS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.lists(st.binary(max_size=64), max_size=8), frames=st.lists(
    st.tuples(st.integers(0, 12), st.integers(0, 255), st.integers(0, 7), st.binary(max_size=40)), max_size=6))
async def test_no_bytes_after_the_preface_make_the_connection_raise(garbage: list[bytes], frames: Any) -> None:
    """Random frames (any type, flags, stream, payload) and random bytes: h2 refuses what is wrong
    with GOAWAY and we close; nothing escapes data_received."""
    from aiohttp.web_server import Server

    async def handler(request: web.BaseRequest) -> web.Response:
        return web.Response(text="ok")

    connection = Http2Connection(Server(handler), Http2Settings())
    transport = _FakeTransport()
    connection.connection_made(transport)
    connection.data_received(PREFACE)
    raw = b"".join(len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
                   for kind, flags, stream, payload in frames)
    for chunk in [raw, *garbage]:
        if transport.closed:
            break
        connection.data_received(chunk)
    await asyncio.sleep(0)
    for task in [s.task for s in connection.streams.values() if s.task is not None]:
        task.cancel()
    connection.connection_lost(None)
    assert transport.written.startswith(b"\x00\x00")  # our SETTINGS went first, whatever came after
