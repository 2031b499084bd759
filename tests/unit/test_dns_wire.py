"""The DNS server on real loopback sockets, with dnspython as the client: UDP and TCP, EDNS,
truncation and fallback, malformed packets, and the TCP limits (idle and slow clients, the cap)."""

from __future__ import annotations

import asyncio
import socket
import struct

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from mcs_apiserver.dns.records import ClusterEndpoints, ServiceInput, ServicePort
from mcs_apiserver.dns.responder import Responder
from mcs_apiserver.dns.server import DnsOptions, DnsServer
from mcs_apiserver.dns.zone import Zone
from mcs_apiserver.views.testing import ready_slice

WEB = "web.demo.svc.clusterset.local."
DB = "db.demo.svc.clusterset.local."
HOST = "127.0.0.1"


@pytest.fixture
async def server():
    zone = Zone()
    zone.update(("demo", "web"), ServiceInput("demo", "web", "ClusterSetIP", ("243.0.0.1",),
                                              (ServicePort("http", "TCP", 80),)))
    endpoints = [(f"10.0.{i // 250}.{i % 250 + 1}", f"db-{i}", f"db-{i}") for i in range(70)]
    zone.update(("demo", "db"), ServiceInput("demo", "db", "Headless", clusters=(
        ClusterEndpoints("member-2", (ready_slice(*endpoints),)),)))
    server = DnsServer(Responder(zone), DnsOptions(port=0, bind_address=HOST, tcp_idle_timeout=1.0,
                                                   tcp_max_connections=3))
    await server.start()
    yield server
    await server.stop()


def addresses(response: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in response.answer for rd in rrset)


async def udp_exchange(port: int, packet: bytes, timeout: float = 0.5) -> bytes | None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (HOST, port))
        await loop.sock_sendall(sock, packet)
        return await asyncio.wait_for(loop.sock_recv(sock, 65535), timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        sock.close()


async def test_a_query_over_udp_gets_its_answer(server) -> None:
    response = await dns.asyncquery.udp(dns.message.make_query(WEB, "A"), HOST, port=server.port, timeout=2)
    assert addresses(response) == ["243.0.0.1"]
    assert response.flags & dns.flags.AA


async def test_a_query_over_tcp_gets_its_answer(server) -> None:
    response = await dns.asyncquery.tcp(dns.message.make_query(f"_http._tcp.{WEB}", "SRV"), HOST,
                                        port=server.port, timeout=2)
    assert addresses(response) == [f"0 100 80 {WEB}"]
    assert [r.name.to_text() for r in response.additional] == [WEB]


async def test_a_long_answer_is_truncated_over_udp_and_whole_over_tcp_after_fallback(server) -> None:
    query = dns.message.make_query(DB, "A")
    truncated = await dns.asyncquery.udp(query, HOST, port=server.port, timeout=2)
    assert truncated.flags & dns.flags.TC and not truncated.answer
    response, used_tcp = await dns.asyncquery.udp_with_fallback(query, HOST, port=server.port, timeout=2)
    assert used_tcp and len(response.answer[0]) == 70


async def test_edns_raises_what_fits_in_udp(server) -> None:
    query = dns.message.make_query(DB, "A", use_edns=0, payload=1232)
    response = await dns.asyncquery.udp(query, HOST, port=server.port, timeout=2)
    assert not response.flags & dns.flags.TC and len(response.answer[0]) == 70
    assert response.edns == 0


async def test_malformed_packets_get_formerr_or_nothing_and_the_server_keeps_answering(server) -> None:
    header = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
    loop_packet = header + b"\xc0\x0c\x00\x01\x00\x01"  # a compression pointer to itself
    two_questions = struct.pack("!HHHHHH", 0x4343, 0x0100, 2, 0, 0, 0) + (b"\x03web\x00\x00\x01\x00\x01" * 2)
    for packet in (loop_packet, two_questions):
        reply = await udp_exchange(server.port, packet)
        assert reply is not None and reply[:2] == packet[:2] and reply[3] & 0x0F == dns.rcode.FORMERR
    assert await udp_exchange(server.port, b"\x01\x02\x03", timeout=0.3) is None  # too short: no reply
    assert await udp_exchange(server.port, b"\x00" * 2000, timeout=0.3) is not None  # garbage: FORMERR
    response = await dns.asyncquery.udp(dns.message.make_query(WEB, "A"), HOST, port=server.port, timeout=2)
    assert addresses(response) == ["243.0.0.1"]


async def tcp_frame(message: bytes) -> bytes:
    return len(message).to_bytes(2, "big") + message


async def read_frame(reader: asyncio.StreamReader) -> dns.message.Message:
    length = int.from_bytes(await reader.readexactly(2), "big")
    return dns.message.from_wire(await reader.readexactly(length))


async def test_pipelined_tcp_queries_are_answered_in_order_on_one_connection(server) -> None:
    reader, writer = await asyncio.open_connection(HOST, server.port)
    first = dns.message.make_query(WEB, "A")
    second = dns.message.make_query("nope.clusterset.local.", "A")
    writer.write(await tcp_frame(first.to_wire()) + await tcp_frame(second.to_wire()))
    one, two = await read_frame(reader), await read_frame(reader)
    assert (one.id, addresses(one)) == (first.id, ["243.0.0.1"])
    assert (two.id, two.rcode()) == (second.id, dns.rcode.NXDOMAIN)
    writer.close()


async def test_an_idle_tcp_client_is_disconnected(server) -> None:
    reader, writer = await asyncio.open_connection(HOST, server.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server, after 1 s
    writer.close()
    assert server.stats.tcp_timeouts == 1


async def test_a_slow_tcp_client_dribbling_bytes_is_disconnected_all_the_same(server) -> None:
    reader, writer = await asyncio.open_connection(HOST, server.port)
    frame = await tcp_frame(dns.message.make_query(WEB, "A").to_wire())
    closed = False
    for byte in frame:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        await asyncio.sleep(0.05)
    if not closed:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    assert server.stats.tcp_timeouts == 1
    writer.close()


async def test_connections_over_the_cap_are_closed_at_once(server) -> None:
    held = [await asyncio.open_connection(HOST, server.port) for _ in range(3)]
    for _ in range(200):  # until the server has taken all three (a loaded machine may take a while)
        if server.stats.tcp_connections == 3:
            break
        await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection(HOST, server.port)
    assert await asyncio.wait_for(reader.read(), 1) == b""
    assert server.stats.tcp_refused == 1 and server.stats.tcp_connections == 3
    for _, w in held:
        w.close()
    writer.close()


async def test_a_tcp_message_too_short_to_answer_closes_the_connection(server) -> None:
    reader, writer = await asyncio.open_connection(HOST, server.port)
    writer.write(b"\x00\x03abc")
    assert await asyncio.wait_for(reader.read(), 1) == b""
    writer.close()


async def test_metrics_count_queries_by_type_rcode_and_protocol_with_a_latency_histogram(server) -> None:
    await dns.asyncquery.udp(dns.message.make_query(WEB, "A"), HOST, port=server.port, timeout=2)
    await dns.asyncquery.tcp(dns.message.make_query(WEB, "AAAA"), HOST, port=server.port, timeout=2)
    registry = CollectorRegistry()
    registry.register(server.stats)
    text = generate_latest(registry).decode()
    assert 'mcs_dns_queries_total{protocol="udp",rcode="NOERROR",type="A"} 1.0' in text
    assert 'mcs_dns_queries_total{protocol="tcp",rcode="NOERROR",type="AAAA"} 1.0' in text
    assert 'mcs_dns_query_duration_seconds_count 2.0' in text
    assert 'mcs_dns_query_duration_seconds_bucket{le="+Inf"} 2.0' in text


async def test_a_port_in_use_is_an_error_not_a_half_started_server(server) -> None:
    other = DnsServer(server.responder, DnsOptions(port=server.port, bind_address=HOST))
    with pytest.raises(OSError):
        await other.start()


async def test_a_burst_larger_than_the_per_turn_budget_is_answered_over_several_turns_of_the_loop() -> None:
    zone = Zone()
    zone.update(("demo", "web"), ServiceInput("demo", "web", "ClusterSetIP", ("243.0.0.1",), ()))
    server = DnsServer(Responder(zone), DnsOptions(port=0, bind_address=HOST, udp_budget=2))
    await server.start()
    turns = 0
    stop = False

    def count_turns() -> None:
        nonlocal turns
        turns += 1
        if not stop:
            asyncio.get_running_loop().call_soon(count_turns)

    try:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect((HOST, server.port))
        queries = [dns.message.make_query(WEB, "A") for _ in range(10)]
        for query in queries:
            sock.send(query.to_wire())
        count_turns()
        ids = set()
        for _ in queries:
            ids.add(dns.message.from_wire(await asyncio.wait_for(loop.sock_recv(sock, 4096), 2)).id)
        stop = True
        sock.close()
        assert ids == {q.id for q in queries}
        assert turns >= 5  # 10 datagrams, 2 per turn: the loop went round in between
    finally:
        await server.stop()
