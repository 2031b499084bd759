"""DNS over UDP and TCP, in the instance's own event loop.

UDP: one ``DatagramProtocol``; each datagram is answered synchronously from the prepared zone
(microseconds), so there is no queue to grow under a flood: the kernel's socket buffer drops what
the loop cannot take, and the HTTP API keeps its share of the loop.

TCP (RFC 7766): two-byte length framing, pipelined queries answered in order. A connection is
closed when no complete query has arrived for ``tcp_idle_timeout`` (idle and slow clients alike: a
byte now and then does not keep it open), when it sends a message that cannot be answered at all,
and at once when ``tcp_max_connections`` are already open. A client that does not read its answers
stops being read (flow control) and is closed by the same timer: memory per connection stays bounded.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from dataclasses import dataclass

from mcs_apiserver.dns.responder import Responder
from mcs_apiserver.dns.stats import DnsStats

log = logging.getLogger("mcs_apiserver.dns")

perf_counter = time.perf_counter


@dataclass(frozen=True)
class DnsOptions:
    port: int = 5353  #: 0: any free port (``serve`` maps --dns-port=0 to "no DNS" before this)
    bind_address: str = "0.0.0.0"
    tcp_idle_timeout: float = 10.0
    tcp_max_connections: int = 256


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, responder: Responder) -> None:
        self.respond = responder.respond
        self.stats = responder.stats
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        started = perf_counter()
        response = self.respond(data, True)
        if response is not None:
            self.transport.sendto(response, addr)  # type: ignore[union-attr]
        self.stats.observe(perf_counter() - started)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable from a client that went away: nothing to do


class _Tcp(asyncio.Protocol):
    def __init__(self, server: "DnsServer") -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        stats = self.server.responder.stats
        if len(self.server.connections) >= self.server.options.tcp_max_connections:
            stats.tcp_refused += 1
            transport.abort()
            return
        self.server.connections.add(self)
        stats.tcp_connections = len(self.server.connections)
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.server.options.tcp_idle_timeout, self._expire)

    def _expire(self) -> None:
        self.server.responder.stats.tcp_timeouts += 1
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        respond = self.server.responder.respond
        stats = self.server.responder.stats
        answered = False
        while len(buffer) >= 2:
            length = (buffer[0] << 8) | buffer[1]
            if len(buffer) < 2 + length:
                break
            started = perf_counter()
            query = bytes(buffer[2:2 + length])
            del buffer[:2 + length]
            response = respond(query, False)
            if response is None:
                self.transport.close()  # type: ignore[union-attr]
                return
            self.transport.write(len(response).to_bytes(2, "big") + response)  # type: ignore[union-attr]
            stats.observe(perf_counter() - started)
            answered = True
        if answered:
            self._arm()

    def pause_writing(self) -> None:
        self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.transport.resume_reading()  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.server.connections.discard(self)
        self.server.responder.stats.tcp_connections = len(self.server.connections)


class DnsServer:
    def __init__(self, responder: Responder, options: DnsOptions) -> None:
        self.responder = responder
        self.options = options
        self.connections: set[_Tcp] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self.port = options.port

    @property
    def stats(self) -> DnsStats:
        return self.responder.stats

    async def start(self) -> None:
        """Listen on UDP and TCP, on the same port (with port 0: one the kernel gives UDP and that
        TCP can take too, retried a few times)."""
        for attempt in range(20):
            try:
                await self._listen()
                break
            except OSError as error:
                if self.options.port != 0 or error.errno != errno.EADDRINUSE or attempt == 19:
                    raise
        log.info("serving DNS on %s:%d (UDP and TCP)", self.options.bind_address, self.port)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.options.bind_address else socket.AF_INET
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self.responder), local_addr=(self.options.bind_address, self.options.port), family=family)
        self.port = self._udp.get_extra_info("sockname")[1]
        sock = self._udp.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # ride out bursts
        except OSError:
            pass
        try:
            self._tcp = await loop.create_server(lambda: _Tcp(self), self.options.bind_address, self.port,
                                                 family=family, backlog=1024, reuse_address=True)
        except OSError:
            self._udp.close()
            self._udp = None
            raise

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for connection in list(self.connections):
                if connection.transport is not None:
                    connection.transport.abort()
            await self._tcp.wait_closed()
