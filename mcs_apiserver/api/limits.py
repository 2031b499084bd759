"""Limits that keep hostile or careless clients from hurting the server, named like kube-apiserver's.

Every limit answers the way kube-apiserver does, so that clients back off as they already know how:

* ``--max-requests-inflight`` / ``--max-mutating-requests-inflight``: requests being served at
  once, read-only (get, list) and mutating (everything else: the webhooks' POSTs) counted apart;
  beyond them, 429 ``TooManyRequests`` with ``Retry-After: 1``. Watches are long-running and counted
  apart, by ``--max-watches`` (all users) and ``--max-watches-per-user``. 0 disables a limit.
* a body limit per path: the webhooks accept what kube-apiserver can send
  (``--max-request-body-bytes``: an UPDATE review carries the object twice, each up to etcd's
  1.5 MiB), every other path :data:`OTHER_BODY_LIMIT` (we never read those bodies); a larger
  declared ``Content-Length`` gets 413 at once. All bodies being received at once share
  ``--max-request-body-bytes-inflight``: memory stays bounded however many clients trickle bytes.
* ``--request-body-timeout``: a request with a body must have been received and answered within it,
  or it gets 408 and its connection is closed.
* a connection closed with a request body left unread (401, 403, 405, 408, 413, 429 to a POST)
  is not closed gracefully: that would read and decrypt whatever the client still sends until its
  close_notify (uvloop's TLS shutdown does), so a client that ignores the answer would keep us
  decrypting for :data:`SSL_SHUTDOWN_TIMEOUT`. Reading stops at once instead, the
  kernel's window closes on the client, and the connection is reset :data:`UNREAD_BODY_LINGER`
  later, as Go's net/http (so kube-apiserver) does. Nor is a body read before its request is
  authenticated (:meth:`ConnectionGuard.admission_gate`): a stranger's bytes wait in the kernel.
* ``--request-header-timeout``: a connection must complete its TLS handshake within it (counted
  from the connection), then each request's headers (counted from the handshake or from the
  request's first byte), or it is closed. aiohttp has no such timeout, so :class:`GuardedSite`
  wraps each connection's protocol.
* TLS handshakes are paced: a connection is accepted at once, but its handshake starts only once
  its ClientHello is in, and at most :data:`HANDSHAKES_PER_TURN` start per turn of the event loop;
  beyond :data:`LIFO_AFTER` waiting, the newest first (:class:`_PacedListener`). A handshake's first
  flight costs about half a millisecond of CPU, and a burst of a few hundred new connections
  (anyone who can reach the port can send one) sends its ClientHellos together: answered in one
  turn, every request on an open connection would wait for all of them. A client that stalls its
  handshake holds no place. Each TLS connection's kernel receive buffer is :data:`RECEIVE_BUFFER`,
  which bounds what a client that keeps sending costs us.
* strangers after known clients: a connection whose client presented no certificate the server
  trusts (``ConnectionGuard(trusts=...)``) has each request wait, its bytes not read, in a line
  that starts :data:`STRANGERS_PER_TURN` of them per turn of the event loop; once its headers are
  in, nothing more is read until it reaches the handlers (:class:`ConnectionGuard`). A flood of
  strangers then costs the aggregator's requests a stranger's request per turn, not tens of them.

A connection whose client chose HTTP/2 by ALPN (kube-apiserver's do) is served by api/http2.py: its
streams are requests with the same middlewares, so the same limits, and its own deadlines and flow
control take the place of the header deadline and body holding above.

Health probes are never limited (kubelet must always get through), and idle keep-alive connections
are closed after :data:`IDLE_CONNECTION_TIMEOUT`, longer than Go clients' 90 s idle timeout so that
the client, not the server, closes a connection it may be about to reuse.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from mcs_apiserver.kube import status
from mcs_apiserver.kube.status import status_response
from mcs_apiserver.kube.types import Status
from mcs_apiserver.kube.requestinfo import info_of

__all__ = [
    "HEALTH_PATHS",
    "IDLE_CONNECTION_TIMEOUT",
    "OTHER_BODY_LIMIT",
    "WEBHOOK_BODY_LIMIT",
    "ConnectionGuard",
    "GuardedSite",
    "HANDSHAKES_PER_TURN",
    "LIFO_AFTER",
    "RECEIVE_BUFFER",
    "STRANGERS_PER_TURN",
    "Limiter",
    "Limits",
    "return_free_memory",
    "runner_options",
    "tune_process",
]

log = logging.getLogger("mcs_apiserver.api.limits")
T = TypeVar("T")

MIB = 1024 * 1024
#: etcd's default --max-request-bytes: the largest object kube-apiserver can store.
ETCD_MAX_REQUEST_BYTES = 3 * MIB // 2
#: An UPDATE AdmissionReview carries that object twice (object and oldObject), plus its own fields.
WEBHOOK_BODY_LIMIT = 2 * ETCD_MAX_REQUEST_BYTES + 64 * 1024
#: Paths whose bodies we never read (writes to the views answer 405): a DeleteOptions fits easily.
OTHER_BODY_LIMIT = 64 * 1024
WEBHOOK_PREFIX = "/webhooks/"
HEALTH_PATHS = ("/healthz", "/readyz", "/livez")
IDLE_CONNECTION_TIMEOUT = 120.0
#: How long a graceful TLS close waits for the client's close_notify (only connections whose
#: client has nothing left to send close gracefully: see :class:`_Transport`).
SSL_SHUTDOWN_TIMEOUT = 2.0
#: How long a connection with an unread request body stays open, not read, after it was told to
#: close: long enough for the client to read the answer before the reset (Go's net/http waits
#: 500 ms, its ``rstAvoidanceDelay``, for the same reason).
UNREAD_BODY_LINGER = 0.5
TRIM_INTERVAL = 10.0
#: How many TLS handshakes start per turn of the event loop (see :class:`_PacedListener`).
HANDSHAKES_PER_TURN = 1
#: How many connections are accepted per turn of the event loop at most (a bound, not a pace:
#: accepting costs little, the handshakes are paced).
ACCEPTS_PER_TURN = 64
#: Beyond how many waiting handshakes the newest starts first ("adaptive LIFO"): a burst of
#: connections that arrived together waits as long either way, but a client that comes after it
#: (a probe, the aggregator opening a connection) is not made to wait for all of it.
LIFO_AFTER = 8
#: The least time a handshake is given once started, whatever it waited in line before.
MIN_HANDSHAKE_TIME = 1.0
#: The kernel's receive buffer of each TLS connection (``SO_RCVBUF``; Linux doubles it). uvloop
#: reads as much as the kernel holds, up to 256 KiB, into a buffer of its own per connection, and
#: copies it into OpenSSL's: a client that sends faster than it is read (a body we refuse and stop
#: reading) would make both resident, and everything read before a request is refused is decrypted
#: for nothing (what a stranger sends after its headers, until its 401). 16 KiB rather than 64: a
#: flood of 150 strangers peaked at 1.13-1.18x idle RSS instead of 1.22-1.62x, with less CPU. The
#: window it allows still carries a 3 MiB AdmissionReview in about 150 round trips (0.15 s at 1 ms).
RECEIVE_BUFFER = 16 * 1024
#: How many requests of strangers (connections without a client certificate this server trusts)
#: start per turn of the event loop; the others wait, not read, in arrival order (see
#: :class:`ConnectionGuard`).
STRANGERS_PER_TURN = 1
#: How a health probe's request begins: probes never wait behind strangers (kubelet's have no
#: certificate).
PROBE_STARTS = tuple(f"GET {path}".encode() for path in HEALTH_PATHS)
#: After an error accepting connections (no file descriptor left), as asyncio's own servers wait.
ACCEPT_RETRY_DELAY = 1.0
#: asyncio gives every TLS connection a 256 KiB read buffer (``SSLProtocol.max_size``), allocated
#: and zeroed when the connection opens: 256 KiB of RSS per open watch. A TLS record carries at most
#: 16 KiB, so a buffer of a few records reads as well (a 3 MiB body takes a few more loop turns).
SSL_READ_BUFFER = 16 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one server; the defaults are kube-apiserver's where it has the same limit."""

    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    max_watches: int = 10_000
    max_watches_per_user: int = 1_000
    request_header_timeout: float = 10.0
    request_body_timeout: float = 10.0
    max_request_body_bytes: int = WEBHOOK_BODY_LIMIT
    max_request_body_bytes_inflight: int = 32 * MIB
    #: kube-apiserver's default; 0: HTTP/1.1 only (see api/http2.py).
    http2_max_streams_per_connection: int = 1000

    def body_limit(self, path: str) -> int:
        """The largest body a request to ``path`` may declare."""
        return self.max_request_body_bytes if path.startswith(WEBHOOK_PREFIX) else OTHER_BODY_LIMIT


def tune_process() -> None:
    """Process-wide settings the limits rely on, applied once at start-up by ``serve``:

    * the TLS read buffer per connection of asyncio's own loop (:data:`SSL_READ_BUFFER` instead of
      256 KiB, which asyncio zeroes, so all of it is resident); uvloop ``malloc``s its 256 KiB
      without touching it, so there only the pages a connection uses count, and nothing is needed;
    * glibc's mmap threshold fixed at 128 KiB: by default glibc raises it to the size of the largest
      block freed, after which large buffers (request bodies, TLS buffers) come from the heap, whose
      pages are rarely given back: the RSS an attack raised would stay raised after it ended.
    """
    import asyncio.sslproto  # noqa: PLC0415

    setattr(asyncio.sslproto.SSLProtocol, "max_size", SSL_READ_BUFFER)  # noqa: B010 - a class default
    libc = _glibc()
    if libc is not None:
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD


def _glibc() -> Any:
    try:
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc has it, musl does not
        return libc
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return None


async def return_free_memory(interval: float = TRIM_INTERVAL) -> None:
    """Forever: every ``interval`` seconds, give the pages the allocator holds free back to the
    system (glibc's ``malloc_trim``). Without it, the RSS that thousands of connections (an attack,
    a relisting informer fleet) raised stays raised after they are gone, though it is reused."""
    libc = _glibc()
    if libc is None:
        return
    while True:
        await asyncio.sleep(interval)
        libc.malloc_trim(0)


def runner_options() -> dict[str, Any]:
    """aiohttp runner settings that go with the limits: a handler whose client disconnects is
    cancelled at once (a watch is unregistered and freed the moment its client goes, not at its next
    write), idle keep-alive connections are closed after :data:`IDLE_CONNECTION_TIMEOUT`, and a
    connection whose body was not read to the end (413, 408, 405) is closed after the answer instead
    of being drained for aiohttp's default 10 s "lingering" time, which a slow body would fill."""
    return {"handler_cancellation": True, "keepalive_timeout": IDLE_CONNECTION_TIMEOUT, "lingering_time": 0}


def _limited(error: Status) -> web.Response:
    return status_response(error, headers=status.retry_after_headers(error))


class Limiter:
    """The in-flight, watch and body limits: two middlewares around authentication.

    :attr:`inflight` goes before authentication (it also bounds the work unauthenticated callers and
    webhook callers cause); :meth:`watches` after it, since watches are limited per user. The
    current counts are plain attributes, exported as metrics by the caller.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.read_only = 0
        self.mutating = 0
        self.body_bytes = 0
        self.watches_open = 0
        self.watches_by_user: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()  # by request kind: readOnly, mutating, watch, body

    def _reject(self, kind: str, error: Status) -> web.Response:
        self.rejected[kind] += 1
        return _limited(error)

    @web.middleware
    async def inflight(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        info = info_of(request)
        if info.long_running or request.path in HEALTH_PATHS or request.path.startswith(
                tuple(p + "/" for p in HEALTH_PATHS)):
            return await handler(request)
        limits = self.limits
        body_limit = limits.body_limit(request.path)
        length = request.content_length
        if length is not None and length > body_limit:
            self.rejected["body"] += 1
            response = status_response(status.too_large(
                f"limit is {body_limit} bytes for {request.path}, the request declares {length}"))
            response.force_close()  # do not read the rest of what it declared
            return response
        reserved = (length if length is not None else body_limit) if request.body_exists else 0
        if info.read_only:
            if limits.max_requests_inflight and self.read_only >= limits.max_requests_inflight:
                return self._reject("readOnly", status.too_many_requests())
        elif limits.max_mutating_requests_inflight and self.mutating >= limits.max_mutating_requests_inflight:
            return self._reject("mutating", status.too_many_requests())
        if reserved and limits.max_request_body_bytes_inflight and (
                self.body_bytes + reserved > limits.max_request_body_bytes_inflight):
            return self._reject("body", status.too_many_requests(
                "Too many request bodies being received, please try again later."))
        if info.read_only:
            self.read_only += 1
        else:
            self.mutating += 1
        self.body_bytes += reserved
        try:
            if not reserved:
                return await handler(request)
            try:
                async with asyncio.timeout(limits.request_body_timeout):
                    return await handler(request)
            except TimeoutError:
                self.rejected["body"] += 1
                response = status_response(status.request_timeout(
                    f"the request body was not received within {limits.request_body_timeout:g}s"))
                response.force_close()
                return response
        finally:
            self.body_bytes -= reserved
            if info.read_only:
                self.read_only -= 1
            else:
                self.mutating -= 1

    def watches(self, user_of: Callable[[web.Request], str]) -> Any:
        """The watch limit middleware; ``user_of`` names the authenticated user of a request."""
        limits = self.limits

        @web.middleware
        async def limit_watches(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not info_of(request).long_running:
                return await handler(request)
            user = user_of(request)
            if limits.max_watches and self.watches_open >= limits.max_watches:
                return self._reject("watch", status.too_many_requests(
                    f"Too many watches open ({limits.max_watches}), please try again later."))
            if limits.max_watches_per_user and self.watches_by_user[user] >= limits.max_watches_per_user:
                return self._reject("watch", status.too_many_requests(
                    f"Too many watches open by this user ({limits.max_watches_per_user}), please try again later."))
            self.watches_open += 1
            self.watches_by_user[user] += 1
            try:
                return await handler(request)
            finally:
                self.watches_open -= 1
                self.watches_by_user[user] -= 1
                if not self.watches_by_user[user]:
                    del self.watches_by_user[user]

        return limit_watches


class _TurnLine(Generic[T]):
    """What waits for turns of the event loop: at most ``per_turn`` items start per turn (``start``
    says whether an item did: one that is gone takes no turn), in arrival order, or, beyond
    ``newest_first_after`` waiting, the newest first. A turn scheduled by a callback runs after the
    loop has polled for I/O again, so what is already being served goes on between turns. The
    strangers' line and the handshake line are each one of these."""

    __slots__ = ("_items", "_per_turn", "_start", "_newest_first_after", "_turns")

    def __init__(self, per_turn: int, start: Callable[[T], bool], newest_first_after: int | None = None) -> None:
        self._items: deque[T] = deque()
        self._per_turn = per_turn
        self._start = start
        self._newest_first_after = newest_first_after
        self._turns: asyncio.Handle | None = None

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def append(self, item: T) -> None:
        self._items.append(item)
        if self._turns is None:
            self._turns = asyncio.get_running_loop().call_soon(self._next_turn)

    def remove(self, item: T) -> None:
        self._items.remove(item)

    def close(self) -> None:
        """Nothing more starts: what waited is forgotten."""
        if self._turns is not None:
            self._turns.cancel()
            self._turns = None
        self._items.clear()

    def _next_turn(self) -> None:
        items, started = self._items, 0
        while items and started < self._per_turn:
            newest = self._newest_first_after is not None and len(items) > self._newest_first_after
            started += self._start(items.pop() if newest else items.popleft())
        self._turns = asyncio.get_running_loop().call_soon(self._next_turn) if items else None


class _Transport:
    """The transport aiohttp's protocol is given: the real one, with two changes.

    A request's body is not read until the request is authenticated (:meth:`hold_body`,
    :meth:`release_body`), as Go's net/http reads a body only when the handler does: what a stranger
    sends after its headers is neither decrypted nor parsed. aiohttp's own flow control
    (:meth:`pause_reading`, :meth:`resume_reading`) goes on underneath.

    :meth:`close` of a connection whose request body was left unread does not close gracefully (see
    the module docstring): it stops reading at once, and resets the connection
    :data:`UNREAD_BODY_LINGER` later, once the client has surely read the answer: a client that is
    reset before it read what it received may report the reset rather than the answer (asyncio's
    streams do; Go waits 500 ms for the same reason)."""

    __slots__ = ("real", "unread_body", "discarding", "holding", "app_paused", "waiting")

    def __init__(self, real: asyncio.Transport) -> None:
        self.real = real
        self.unread_body = False  # the last request's body was not read to its end (set by the guard)
        self.discarding = False
        self.holding = False  # a request's body waits for its authentication
        self.app_paused = False  # aiohttp paused reading (its buffer is full)
        self.waiting = False  # a stranger's request waits for its turn (ConnectionGuard)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def pause_reading(self) -> None:
        self.app_paused = True
        self.real.pause_reading()

    def resume_reading(self) -> None:
        self.app_paused = False
        if not self.holding and not self.discarding and not self.waiting:
            self.real.resume_reading()

    def _read_limit(self, high: int | None) -> None:
        """Over TLS, pausing only stops the decrypting: the bytes would still be read into the TLS
        layer's buffer (256 KiB). A read limit of 0 stops reading the socket itself; None restores
        the default."""
        set_limits = getattr(self.real, "set_read_buffer_limits", None)
        if set_limits is not None:
            set_limits(high)

    def _stop_reading(self) -> None:
        self.real.pause_reading()
        self._read_limit(0)

    def _resume(self) -> None:
        """Read again, unless something else still says not to."""
        if not self.holding and not self.discarding and not self.waiting:
            self._read_limit(None)
            if not self.app_paused:
                self.real.resume_reading()

    def hold_body(self) -> None:
        if not self.holding:
            self.holding = True
            self._stop_reading()

    def release_body(self) -> None:
        if self.holding:
            self.holding = False
            self._resume()

    def wait_turn(self) -> None:
        if not self.waiting:
            self.waiting = True
            self._stop_reading()

    def end_wait(self) -> None:
        if self.waiting:
            self.waiting = False
            self._resume()

    def close(self) -> None:
        if not self.unread_body:
            self.real.close()
            return
        if self.discarding:
            return
        self.discarding = True
        self._stop_reading()
        asyncio.get_running_loop().call_later(UNREAD_BODY_LINGER, self.real.abort)


class _Guarded(asyncio.Protocol):
    """One connection's protocol (aiohttp's), with a deadline for the request headers, and a place in
    the strangers' line (:class:`ConnectionGuard`) when its client has no certificate we trust.

    The deadline runs from the connection's start (the end of its TLS handshake, which has its own),
    and again from the first byte after each response, until a request reaches the handlers
    (:meth:`ConnectionGuard.middleware` says so).
    Idle keep-alive connections (no byte at all) are aiohttp's ``keepalive_timeout``'s business.
    """

    __slots__ = ("server", "inner", "guard", "transport", "timer", "busy", "http2", "known", "waiting", "turn")

    def __init__(self, server: Callable[[], asyncio.Protocol], guard: ConnectionGuard) -> None:
        self.server = server
        self.inner: Any = None  # aiohttp's protocol, or the HTTP/2 one (see connection_made)
        self.guard = guard
        self.http2 = False
        self.transport: _Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.busy = False
        self.known = True  # its client presented a certificate we trust (set by connection_made)
        self.waiting: list[bytes] | None = None  # what a stranger sent while it waits for its turn
        self.turn = False  # a stranger's turn: until its request is answered, what it sends is read

    def _arm(self) -> None:
        if self.timer is None and not self.busy:
            self.timer = asyncio.get_running_loop().call_later(self.guard.timeout, self._expire)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self) -> None:
        self.timer = None
        if not self.busy and self.transport is not None:
            log.debug("closing a connection that did not send its request headers in time")
            self.transport.abort()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # aiohttp (so every request's ``transport``) sees the wrapper; ``guard.connections`` is keyed by it.
        self.transport = _Transport(transport)  # type: ignore[arg-type]
        self.guard.connections[self.transport] = self
        self.known = self.guard.knows(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if self.guard.http2 is not None and ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            # Its streams are requests of their own, with their own deadlines (api/http2.py).
            self.http2 = True
            self.inner = self.guard.http2(self.server)
            self.inner.connection_made(self.transport)
            return
        self.inner = self.server()
        self.inner.connection_made(self.transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if not self.http2:  # HTTP/2 has deadlines of its own; a stranger's frames line up as requests do
            self._arm()
        if self.waiting is not None:
            self.waiting.append(data)
        elif self.known or self.busy or data.startswith(PROBE_STARTS):
            self.inner.data_received(data)
        elif self.turn:
            self._hand_over(data)
        else:  # a stranger's next request: parsed and served in its turn
            self._line_up([data])

    def _hand_over(self, data: bytes) -> None:
        """A stranger's request in its turn: once its headers are in, nothing more is read (so
        decrypted) until the request reaches the handlers (:meth:`ConnectionGuard.middleware`).
        Over HTTP/2, what came is handed over and reading resumes: what comes next lines up again."""
        assert self.transport is not None
        if self.http2:  # no request ends in sight of this layer: the turn is this read's alone
            self.turn = False
            self.transport.end_wait()
            self.inner.data_received(data)
            return
        self.inner.data_received(data)
        if b"\r\n\r\n" in data:
            self.transport.wait_turn()
        else:
            self.transport.end_wait()

    def _line_up(self, data: list[bytes]) -> None:
        self.waiting = data
        assert self.transport is not None
        self.transport.wait_turn()
        self.guard.line_up(self)

    def take_turn(self) -> bool:
        """Hand what this stranger sent to aiohttp, or let it send (called by the guard in its
        turn); False when the connection is gone."""
        waiting, self.waiting = self.waiting, None
        if waiting is None or self.transport is None:
            return False
        self.turn = True
        self._hand_over(b"".join(waiting))
        return True

    def eof_received(self) -> bool | None:
        self.take_turn()  # what came before the end goes first
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting = None
        self._disarm()
        if self.transport is not None:
            self.guard.connections.pop(self.transport, None)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class ConnectionGuard:
    """Header deadlines for every connection of a site (see :class:`_Guarded`), and strangers after
    known clients. ``http2`` makes the protocol of a connection whose client chose h2 by ALPN, from the
    site's aiohttp server.

    With ``trusts`` (which client certificates a request could be authenticated with), a
    connection whose client presented no such certificate is a stranger: each of its requests
    waits, its bytes not read, in a line that starts :data:`STRANGERS_PER_TURN` of them per turn of
    the event loop (over HTTP/2, each read of its frames waits so). Anyone who can reach the port can
    open strangers' connections by the hundred;
    each costs about a millisecond of CPU for its 401, and served as they come (many arrive in one
    turn of the loop) they hold up every request of the aggregator's kept-alive connections for tens
    of milliseconds. In line, a flood costs the others a stranger's request per turn. Health probes
    (kubelet presents no certificate) skip the line; bearer-token clients and webhook calls without
    a certificate wait in it, which costs nothing while there is no flood.
    """

    def __init__(self, timeout: float, http2: Callable[[Any], Any] | None = None,
                 trusts: Callable[[bytes], bool] | None = None) -> None:
        self.timeout = timeout
        self.http2 = http2
        self.trusts = trusts
        self.connections: dict[Any, _Guarded] = {}  # by the transport aiohttp sees
        self.holds_bodies = False  # see admission_gate
        self.line: _TurnLine[_Guarded] = _TurnLine(STRANGERS_PER_TURN, _Guarded.take_turn)

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(factory, self)

    async def shutdown_http2(self) -> None:
        """GOAWAY to every HTTP/2 connection (aiohttp's server shuts down only its own protocols)."""
        await asyncio.gather(*(g.inner.shutdown() for g in list(self.connections.values()) if g.http2))

    def knows(self, transport: asyncio.BaseTransport) -> bool:
        """Whether the client of ``transport`` presented a certificate we trust (everyone is known
        without ``trusts``)."""
        if self.trusts is None:
            return True
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        return der is not None and self.trusts(der)

    def line_up(self, stranger: _Guarded) -> None:
        self.line.append(stranger)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The headers are in: no deadline while the request is served (bodies and watches have
        their own), a new one from the first byte of the next request. A body is held until the
        :meth:`admission_gate` lets it be read. Notes whether the request's body was left unread, which
        decides how the connection is closed (:class:`_Transport`)."""
        guarded = self.connections.get(request.transport) if request.transport is not None else None
        if guarded is None:
            return await handler(request)
        transport = guarded.transport
        guarded.busy = True
        guarded._disarm()
        if transport is not None:
            if self.holds_bodies and request.body_exists:
                transport.hold_body()
            transport.end_wait()  # a stranger's request is in: its connection is read as any other
        try:
            return await handler(request)
        finally:
            guarded.busy = guarded.turn = False
            if transport is not None:
                transport.unread_body = request.body_exists and not request.content.is_eof()
                if not transport.unread_body:
                    transport.release_body()

    def admission_gate(self) -> Callable[..., Any]:
        """The middleware to put after authentication and authorization: from it on, a request's
        body may be read. Until an app asks for it, bodies are not held."""
        self.holds_bodies = True

        @web.middleware
        async def admitted(request: web.Request, handler: Handler) -> web.StreamResponse:
            transport = request.transport
            if isinstance(transport, _Transport):
                transport.release_body()
            return await handler(request)

        return admitted


class _PacedListener:
    """A TLS listening socket that starts at most :data:`HANDSHAKES_PER_TURN` handshakes per turn of
    the event loop.

    It accepts every connection at once, but hands it to the event loop's TLS (``loop.
    connect_accepted_socket``) only once its client's first bytes (the ClientHello) are in, and
    then in turn: the first flight of a handshake (a key exchange and a signature) is most of its
    CPU, and a burst of connections, accepted a few at a time or not, sends its ClientHellos
    together, so that one turn of the loop would answer tens of them (measured: 20-40 ms) while every
    request waits. A client that never sends its ClientHello holds no place in the line, and is
    closed when its handshake time is up; the time in line counts in it."""

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol], context: Any,
                 handshake_timeout: float) -> None:
        self.sock = sock
        self._factory = factory
        self._context = context
        self._handshake_timeout = handshake_timeout
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Accepted, handshake not started: when each is given up (its handshake time is up).
        self._deadlines: dict[socket.socket, asyncio.TimerHandle] = {}
        #: Their ClientHello is in.
        self._line: _TurnLine[socket.socket] = _TurnLine(HANDSHAKES_PER_TURN, self._start, LIFO_AFTER)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock, self._accept_all)

    def _accept_all(self) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # none left (or the client gave up while queued)
            except OSError as error:  # out of file descriptors, ...: try again in a second
                log.warning("cannot accept connections; retrying in 1 s", extra={"reason": str(error)})
                self._loop.remove_reader(self.sock)
                self._loop.call_later(ACCEPT_RETRY_DELAY, self._loop.add_reader, self.sock, self._accept_all)
                return
            conn.setblocking(False)
            self._deadlines[conn] = self._loop.call_later(self._handshake_timeout, self._give_up, conn)
            self._loop.add_reader(conn, self._heard, conn)

    def _heard(self, conn: socket.socket) -> None:
        self._loop.remove_reader(conn)
        self._line.append(conn)

    def _start(self, conn: socket.socket) -> bool:
        """Start a connection's handshake (its turn in the line)."""
        deadline = self._deadlines.pop(conn)
        deadline.cancel()
        task = self._loop.create_task(self._handshake(conn, deadline.when() - self._loop.time()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _give_up(self, conn: socket.socket) -> None:
        log.debug("closing a connection that did not start its TLS handshake in time")
        del self._deadlines[conn]
        if conn in self._line:
            self._line.remove(conn)
        else:
            self._loop.remove_reader(conn)
        conn.close()

    async def _handshake(self, conn: socket.socket, timeout: float) -> None:
        try:
            await self._loop.connect_accepted_socket(
                self._factory, conn, ssl=self._context, ssl_handshake_timeout=max(timeout, MIN_HANDSHAKE_TIME),
                ssl_shutdown_timeout=SSL_SHUTDOWN_TIMEOUT)
        except (OSError, ssl.SSLError) as error:  # the handshake failed or timed out; the socket is closed
            log.debug("TLS handshake failed", extra={"reason": str(error) or type(error).__name__})

    async def close(self) -> None:
        self._loop.remove_reader(self.sock)
        self.sock.close()
        for conn, deadline in list(self._deadlines.items()):
            deadline.cancel()
            if conn not in self._line:
                self._loop.remove_reader(conn)
            conn.close()
        self._deadlines.clear()
        self._line.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class GuardedSite(web.BaseSite):
    """A TCP (TLS) site like ``web.TCPSite`` whose connections get :class:`ConnectionGuard`
    deadlines, the TLS handshake included, and whose TLS handshakes are paced (:class:`_PacedListener`)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, guard: ConnectionGuard,
                 ssl_context: Any = None, backlog: int = 128, reuse_address: bool | None = None) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self._guard, self._reuse_address = host, port, guard, reuse_address
        self._listener: _PacedListener | None = None

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        if self._listener is not None:
            return int(self._listener.sock.getsockname()[1])
        server = self._server
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        factory = self._guard.wrap(server)
        if not self._ssl_context:
            self._server = await loop.create_server(factory, self._host, self._port, backlog=self._backlog,
                                                    reuse_address=self._reuse_address)
            return
        family, kind, proto, _, address = (await loop.getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE))[0]
        sock = socket.socket(family, kind, proto)
        try:
            if self._reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)  # connections inherit it
            sock.bind(address)
            sock.listen(self._backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._listener = _PacedListener(sock, factory, self._ssl_context, self._guard.timeout)

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await self._guard.shutdown_http2()
        await super().stop()
