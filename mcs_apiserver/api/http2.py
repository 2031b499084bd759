"""HTTP/2 for kube-apiserver's connections: every request it proxies to us (the aggregator) or sends
us (the webhook calls), watches included, as streams of one TLS connection.

Why: kube-apiserver's transports (``utilnet.SetTransportDefaults``) offer h2 by ALPN and use it when the
server picks it. Over HTTP/1.1, every watch the aggregator proxies to us is a TLS connection of its own: a
socket, a TLS session with its buffers and an aiohttp protocol, about 49 KiB each here. Over h2 a watch is
one stream of a connection that every other request shares: what the watch itself needs, and no
handshake per connection. kube-apiserver serves h2 the same way (Go's ``http2.Server``).

The streams are served by the same aiohttp application as HTTP/1.1 requests, through the same middlewares
(authentication, limits) and handlers: each stream becomes an aiohttp ``Request`` whose protocol is the
:class:`Stream` (what aiohttp's body reader and the request read from a connection) and whose payload
writer is :class:`_Writer` (aiohttp's status line, headers and body as HEADERS and DATA frames).
Framing, HPACK, stream states and flow-control bookkeeping are python-hyper's ``h2`` (sans-IO).

Limits, as kube-apiserver's where it has the same one (k8s.io/apiserver's secure serving):

* ``SETTINGS_MAX_CONCURRENT_STREAMS`` is ``--http2-max-streams-per-connection`` (1000, kube-apiserver's
  default: Go's clients open another connection beyond it); 0 turns HTTP/2 off. A connection without a
  client certificate gets 100 (:attr:`Http2Settings.max_streams_without_certificate`).
* A response the client does not let us send for 60 s (its window stays shut) is reset, and a connection
  whose client reads nothing for 60 s is closed (kube-apiserver's default ``--request-timeout``): what a
  client that never reads can hold is bounded in time as well as in streams.
* A client that resets more streams before their answer than it may open, within a second, gets GOAWAY
  ENHANCE_YOUR_CALM ("rapid reset", CVE-2023-44487).
* A request body is acknowledged (its flow-control window opened again) only as the handler reads it, so a
  client sends at most one window ahead: 64 KiB per stream and 64 KiB per connection (the protocol's
  initial windows). A stranger's body, never read before its 401, costs at most that. A response that ends
  before its request's body does is followed by ``RST_STREAM(NO_ERROR)``: stop sending (RFC 9113, 8.1).
* While the client does not read what we send (the transport's buffer is full) its connection is not read
  either: a client that sends PINGs or SETTINGS without reading the acknowledgements cannot grow our buffers.
* A connection must send its first request within ``--request-header-timeout``, and is closed (GOAWAY)
  after :data:`~mcs_apiserver.api.limits.IDLE_CONNECTION_TIMEOUT` with no stream open, as HTTP/1.1
  keep-alive connections are.
* A header list is at most :data:`MAX_HEADER_LIST_SIZE`; a header block spread over CONTINUATION frames is
  bounded by ``h2`` (64 frames).
* A client that resets a stream (or goes) cancels its handler at once: a watch ends and is unregistered
  then, as on HTTP/1.1 (``handler_cancellation``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame
from aiohttp import web, web_server
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from h2.errors import ErrorCodes
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from mcs_apiserver.api.limits import IDLE_CONNECTION_TIMEOUT
from mcs_apiserver.kube import status
from mcs_apiserver.kube.status import status_response

__all__ = ["ALPN_PROTOCOLS", "Http2Connection", "Http2Settings", "http2_factory"]

log = logging.getLogger("mcs_apiserver.api.http2")

#: What the server offers by ALPN, best first: a client that knows neither gets HTTP/1.1 too.
ALPN_PROTOCOLS = ("h2", "http/1.1")
#: kube-apiserver's ``--http2-max-streams-per-connection`` default.
DEFAULT_MAX_STREAMS = 1000
#: The largest header list a client may send (HPACK-decoded), as h2's default: kube-apiserver's clients
#: send a few hundred bytes.
MAX_HEADER_LIST_SIZE = 64 * 1024
#: How much of a request body aiohttp's reader buffers before it asks to stop reading (the stream's
#: window then stays closed until the handler reads): one flow-control window.
BODY_BUFFER = 64 * 1024
#: Frames queued for the connection are written out at the end of the loop's turn (so that what many
#: streams write in one turn goes in one write), or at once beyond this many bytes.
FLUSH_THRESHOLD = 64 * 1024
#: Headers that belong to one HTTP/1.1 connection and are forbidden in HTTP/2 (RFC 9113, 8.2.2): aiohttp
#: adds some (``Transfer-Encoding: chunked`` for a streamed body, ``Connection: close``).
_CONNECTION_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})


@dataclass(frozen=True, slots=True)
class Http2Settings:
    """The settings of every HTTP/2 connection of a server."""

    max_streams: int = DEFAULT_MAX_STREAMS
    #: A connection without a client certificate (a stranger, a probe, a scraper with a token; kube-apiserver
    #: calling the webhooks when they do not require its certificate) gets fewer: Go's clients open
    #: another connection beyond it, and a stranger's connection holds at most this many answers it
    #: does not read (see :attr:`stall_timeout`).
    max_streams_without_certificate: int = 100
    #: A response that cannot be sent for this long (the client's flow-control window stays shut, or it
    #: reads nothing) is reset: kube-apiserver's default ``--request-timeout``.
    stall_timeout: float = 60.0
    #: More streams than ``max_streams`` reset by the client before their answer within this window end the
    #: connection with GOAWAY ENHANCE_YOUR_CALM: opening and resetting streams costs the client nothing and
    #: us a request each ("rapid reset", CVE-2023-44487).
    reset_window: float = 1.0
    #: The first request must have come within it (``--request-header-timeout``).
    header_timeout: float = 10.0
    idle_timeout: float = IDLE_CONNECTION_TIMEOUT
    #: How long :meth:`Http2Connection.shutdown` lets requests finish after its GOAWAY.
    shutdown_timeout: float = 5.0


class _StreamTransport:
    """What a request on a stream sees as its transport: the connection's TLS details (the client
    certificate authenticates every stream of a connection alike); closing it resets the stream only."""

    __slots__ = ("stream",)

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        transport = self.stream.connection.transport
        return default if transport is None else transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self.stream.closed

    def close(self) -> None:
        self.stream.reset(ErrorCodes.CANCEL)

    abort = close


class Stream:
    """One request and its response: the ``protocol`` aiohttp's request and body reader are given."""

    __slots__ = ("connection", "id", "task", "reader", "writer", "transport", "_reading_paused", "unacked",
                 "closed", "answered", "body_done", "window")

    def __init__(self, connection: Http2Connection, stream_id: int, body_done: bool) -> None:
        self.connection = connection
        self.id = stream_id
        self.task: asyncio.Task[None] | None = None
        self.reader: StreamReader = EMPTY_PAYLOAD
        self.writer = _Writer(self)
        self.transport = _StreamTransport(self)
        self._reading_paused = False
        self.unacked = 0  # body bytes received, not yet acknowledged (read by the handler)
        self.closed = False  # reset by either side, or the connection is gone
        self.answered = False  # END_STREAM sent
        self.body_done = body_done  # the client's END_STREAM came
        self.window: asyncio.Future[None] | None = None  # a writer waiting for flow-control window

    # --- what aiohttp's StreamReader and Request call -----------------------------------------------------

    @property
    def peername(self) -> Any:
        return self.transport.get_extra_info("peername")

    @property
    def sockname(self) -> Any:
        return self.transport.get_extra_info("sockname")

    @property
    def ssl_context(self) -> Any:
        return self.transport.get_extra_info("sslcontext")

    @property
    def connected(self) -> bool:
        return not self.closed

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self, resume_parser: bool = True) -> None:  # noqa: ARG002 - aiohttp's signature
        """The handler read part of the body: the client may send that much more."""
        self._reading_paused = False
        self.acknowledge()

    # --- ours ---------------------------------------------------------------------------------------------

    def acknowledge(self) -> None:
        if self.unacked:
            self.connection.acknowledge(self, self.unacked)
            self.unacked = 0

    def wake(self) -> None:
        waiter = self.window
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def reset(self, code: ErrorCodes) -> None:
        if not self.closed:
            self.connection.reset(self, code)

    def stalled(self) -> None:
        log.debug("resetting an HTTP/2 stream whose client has not let us send for a while",
                  extra={"stream": self.id})
        self.reset(ErrorCodes.CANCEL)

    def gone(self) -> None:
        """The client reset the stream or the connection ended: stop everything of it at once."""
        if self.closed:
            return
        self.closed = True
        self.wake()
        if not self.body_done:
            self.reader.set_exception(ConnectionResetError("the client reset the stream"))
        if self.task is not None and not self.task.done() and self.task is not asyncio.current_task():
            self.task.cancel()

    async def send_data(self, data: bytes | bytearray | memoryview) -> None:
        connection = self.connection
        chunk = memoryview(data)  # frames are views: slicing a large body must not copy what remains
        while chunk:
            if self.closed:
                raise ConnectionResetError("the client reset the stream")
            size = min(connection.h2.local_flow_control_window(self.id), connection.h2.max_outbound_frame_size,
                       len(chunk))
            if size <= 0:
                self.window = connection.loop.create_future()
                stalled = connection.loop.call_later(connection.settings.stall_timeout, self.stalled)
                try:
                    await self.window
                finally:
                    stalled.cancel()
                    self.window = None
                continue
            connection.h2.send_data(self.id, chunk[:size])
            chunk = chunk[size:]
            connection.queued(size)
        await connection.drain()


class _Writer(AbstractStreamWriter):
    """aiohttp's payload writer for a stream: its status line and headers become a HEADERS frame, its body
    DATA frames sent as the client's flow-control windows allow."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.buffer_size = 0
        self.output_size = 0
        self.length: int | None = None

    async def write_headers(self, status_line: str, headers: CIMultiDict[str]) -> None:
        code = status_line.split(" ", 2)[1]
        fields = [(":status", code)]
        fields += [(name.lower(), value) for name, value in headers.items()
                   if name.lower() not in _CONNECTION_HEADERS]
        self.stream.connection.send_headers(self.stream, fields)

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        if chunk:
            self.output_size += len(chunk)
            await self.stream.send_data(chunk)

    async def write_eof(self, chunk: bytes = b"") -> None:
        await self.write(chunk)
        self.stream.connection.end_stream(self.stream)

    async def drain(self) -> None:
        await self.stream.connection.drain()

    def enable_compression(self, encoding: str = "deflate", strategy: int | None = None) -> None:
        raise NotImplementedError("no response of ours is compressed")

    def enable_chunking(self) -> None:
        """HTTP/2 frames every body: nothing to do."""


class _H2(h2.connection.H2Connection):
    """h2's connection state, remembering fewer closed streams: it keeps the 65,536 last (to tell a late
    frame on a closed stream from a protocol error), some 6 MiB on a connection that lives as long as
    kube-apiserver's to us does; the streams' own handlers are long gone by then."""

    MAX_CLOSED_STREAMS = 1024


def _bad_request(message: str) -> web.Response:
    return status_response(status.bad_request(message))


class Http2Connection(asyncio.Protocol):
    """One HTTP/2 connection: its streams are requests to ``server``'s application."""

    def __init__(self, server: web_server.Server, settings: Http2Settings) -> None:
        self.server = server
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        # What clients send is validated (RFC 9113, 8.2: names, values, pseudo-headers); what aiohttp
        # answers is not validated again, nor normalised: half of h2's CPU per request.
        self.h2 = _H2(h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=True, normalize_inbound_headers=False,
            validate_outbound_headers=False, normalize_outbound_headers=False, split_outbound_cookies=False))
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        self._flushing = False
        self._pending = 0  # body bytes queued since the last write
        self._paused: asyncio.Future[None] | None = None  # set while the transport's buffer is full
        self._timer: asyncio.TimerHandle | None = None
        self._stalled: asyncio.TimerHandle | None = None  # closes a connection whose client reads nothing
        self.going_away = False  # GOAWAY sent: new streams are refused, open ones finish
        self._resets = 0  # streams the client reset before their answer, since _resets_since
        self._resets_since = 0.0

    # --- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        ssl_object = transport.get_extra_info("ssl_object")
        streams = self.settings.max_streams
        if ssl_object is None or ssl_object.getpeercert(binary_form=True) is None:
            streams = min(streams, self.settings.max_streams_without_certificate)
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        })
        self.h2.initiate_connection()
        self._flush()
        self._arm(self.settings.header_timeout)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as error:  # h2 has queued the GOAWAY
            log.debug("HTTP/2 protocol error; closing the connection", extra={"reason": str(error)})
            self._flush()
            self._close()
            return
        for event in events:
            if self.transport is None or self.transport.is_closing():
                return  # closed by one of these events (see _client_reset)
            self._handle(event)
        self._flush()

    def eof_received(self) -> bool | None:
        return None  # close: the client sends nothing more, so no more requests

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._stalled is not None:
            self._stalled.cancel()
        self.transport = None
        for stream in list(self.streams.values()):
            stream.gone()
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)

    def pause_writing(self) -> None:
        if self._paused is None:
            self._paused = self.loop.create_future()
            self._stalled = self.loop.call_later(self.settings.stall_timeout, self._close)
            if self.transport is not None:
                self.transport.pause_reading()  # no more of what would make us write (see the module docstring)

    def resume_writing(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        paused, self._paused = self._paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)
        if self.transport is not None:
            self.transport.resume_reading()

    # --- events -------------------------------------------------------------------------------------------

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event.stream_id, event.headers or [], bool(event.stream_ended))
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id or 0)
            length = event.flow_controlled_length or 0
            if stream is None or stream.closed:
                self.h2.acknowledge_received_data(length, event.stream_id or 0)
            else:
                stream.unacked += length
                stream.reader.feed_data(event.data or b"")
                if stream.answered:  # nobody will read it
                    stream.acknowledge()
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None and not stream.body_done:
                stream.body_done = True
                stream.reader.feed_eof()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream.gone()
                if not stream.answered:
                    self._client_reset()
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.wake()
            else:
                self._wake_all()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._wake_all()  # the initial window may have grown
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._close()

    def _client_reset(self) -> None:
        now = self.loop.time()
        if now - self._resets_since > self.settings.reset_window:
            self._resets, self._resets_since = 0, now
        self._resets += 1
        if self._resets > self.settings.max_streams and self.transport is not None:
            log.info("closing an HTTP/2 connection that resets streams as fast as it opens them",
                     extra={"peer": str(self.transport.get_extra_info("peername"))})
            self.h2.close_connection(ErrorCodes.ENHANCE_YOUR_CALM)
            self._flush()
            self._close()

    def _request(self, stream_id: int, fields: list[tuple[bytes, bytes]], ended: bool) -> None:
        if self.going_away:  # sent before our GOAWAY reached the client: it retries them elsewhere
            self.h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        self._disarm()
        stream = Stream(self, stream_id, ended)
        self.streams[stream_id] = stream
        pseudo: dict[bytes, bytes] = {}
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in fields:
            if name.startswith(b":"):
                pseudo[name] = value
            elif name == b"expect":
                # aiohttp answers "Expect: 100-continue" by writing an HTTP/1.1 interim response into the
                # body; over HTTP/2 the client sends its body anyway (RFC 9113, 8.1), so it is not needed.
                continue
            else:
                # A watch keeps its request, headers included, as long as it lasts: the names and the
                # short values (user, groups, Accept, User-Agent) are one copy for every stream.
                text = value.decode("latin-1")
                headers.add(sys.intern(name.decode("latin-1")), sys.intern(text) if len(text) <= 64 else text)
        authority = pseudo.get(b":authority")
        if authority is not None and "host" not in headers:
            headers["Host"] = authority.decode("latin-1")
        method = pseudo.get(b":method", b"").decode("latin-1")
        target = pseudo.get(b":path", b"").decode("latin-1")
        path, _, query = target.partition("?")
        error = None
        try:
            url = URL.build(path=path, query_string=query, encoded=True)
        except ValueError as exc:
            error = f"malformed request target {target!r}: {exc}"
        if not target.startswith("/"):
            error = f"the request target must be a path (starting with '/'), not {target!r}"
        if not ended:
            stream.reader = StreamReader(stream, BODY_BUFFER, loop=self.loop)
        if error is not None:
            stream.task = self.loop.create_task(self._answer(stream, method, _bad_request(error)))
            return
        # No raw headers: nothing of ours reads them, and a watch would keep them.
        message = RawRequestMessage(method, target, HttpVersion11, CIMultiDictProxy(headers), (),
                                    False, None, False, False, url)
        stream.task = self.loop.create_task(self._serve(stream, message))

    async def _serve(self, stream: Stream, message: RawRequestMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        request = self.server.request_factory(message, stream.reader, stream, stream.writer, task)  # type: ignore[arg-type]
        try:
            try:
                response = await self.server.request_handler(request)
            except web.HTTPException as exception:
                response = exception
            except (asyncio.CancelledError, ConnectionError):
                raise
            except Exception:  # what aiohttp's own protocol does: log it, answer 500
                log.exception("error handling an HTTP/2 request", extra={"method": message.method,
                                                                         "path": message.url.path})
                response = status_response(status.internal_error("an internal error occurred"))
            await response.prepare(request)
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionError):
            pass  # the client reset the stream or went: nobody to answer
        finally:
            self._done(stream)

    async def _answer(self, stream: Stream, method: str, response: web.Response) -> None:
        """Answer a request that never reaches the application (a malformed request target)."""
        try:
            body = b"" if method == "HEAD" else (response.body or b"")
            assert isinstance(body, bytes)
            headers = CIMultiDict(response.headers)
            headers["content-length"] = str(len(body))
            await stream.writer.write_headers(f"HTTP/2 {response.status} {HTTPStatus(response.status).phrase}",
                                              headers)
            await stream.writer.write_eof(body)
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            self._done(stream)

    def _done(self, stream: Stream) -> None:
        """The handler is over: whatever it left undone is undone here."""
        if self.streams.pop(stream.id, None) is None:
            return
        if not stream.closed:
            if not stream.answered:
                self.reset(stream, ErrorCodes.INTERNAL_ERROR)
            elif not stream.body_done:
                self.reset(stream, ErrorCodes.NO_ERROR)  # the answer is complete: stop sending the body
        stream.acknowledge()  # received, never read: the connection's window needs it back
        self.flush_soon()
        if not self.streams:
            _ = self.h2.open_inbound_streams  # h2 forgets its closed streams when it counts the open ones
            self._arm(self.settings.idle_timeout)

    # --- what streams call --------------------------------------------------------------------------------

    def send_headers(self, stream: Stream, fields: list[tuple[str, str]]) -> None:
        if stream.closed:
            raise ConnectionResetError("the client reset the stream")
        self.h2.send_headers(stream.id, fields)
        self.flush_soon()

    def end_stream(self, stream: Stream) -> None:
        if stream.closed:
            raise ConnectionResetError("the client reset the stream")
        self.h2.end_stream(stream.id)
        stream.answered = True
        if stream.body_done:
            stream.closed = True
        self.flush_soon()

    def acknowledge(self, stream: Stream, size: int) -> None:
        if self.transport is None:
            return
        self.h2.acknowledge_received_data(size, stream.id)
        self.flush_soon()

    def reset(self, stream: Stream, code: ErrorCodes) -> None:
        stream.gone()
        if self.transport is not None:
            try:
                self.h2.reset_stream(stream.id, code)
            except h2.exceptions.StreamClosedError:
                pass  # closed meanwhile by the client
            self.flush_soon()

    def flush_soon(self) -> None:
        """Frames of every stream written in one turn of the loop go out in one write (one TLS record
        when they fit): an event fanned out to a thousand watches is one write, not a thousand."""
        if not self._flushing:
            self._flushing = True
            self.loop.call_soon(self._flush)

    def queued(self, size: int) -> None:
        self._pending += size
        self.flush_soon()

    async def drain(self) -> None:
        if self._pending >= FLUSH_THRESHOLD:
            self._flush()
        paused = self._paused
        if paused is not None:
            await asyncio.shield(paused)
        if self.transport is None:
            raise ConnectionResetError("the connection is closed")

    async def shutdown(self) -> None:
        """GOAWAY: no new streams; the open ones get :attr:`Http2Settings.shutdown_timeout` to finish.

        The frame is written past h2's state machine: h2 closes the whole connection when it sends a
        GOAWAY, and would then refuse the frames that the open streams still need (WINDOW_UPDATE, the
        rest of a body)."""
        if self.transport is None:
            return
        self.going_away = True
        self._flush()
        self.transport.write(hyperframe.frame.GoAwayFrame(
            stream_id=0, last_stream_id=self.h2.highest_inbound_stream_id, error_code=0).serialize())
        tasks = [s.task for s in self.streams.values() if s.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._close()

    # --- inside -------------------------------------------------------------------------------------------

    def _flush(self) -> None:
        self._flushing = False
        self._pending = 0
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _wake_all(self) -> None:
        for stream in self.streams.values():
            stream.wake()

    def _arm(self, delay: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if not self.streams and self.transport is not None:
            log.debug("closing an HTTP/2 connection with no request for a while")
            self.h2.close_connection()
            self._flush()
            self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def http2_factory(settings: Http2Settings) -> Callable[[web_server.Server], asyncio.Protocol]:
    """What :class:`~mcs_apiserver.api.limits.ConnectionGuard` calls for a connection that chose h2."""
    return lambda server: Http2Connection(server, settings)
