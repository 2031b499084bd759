"""Queries in, responses out, through the prepared zone: every rcode and negative answer, from bytes."""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from mcs_apiserver.dns.records import ClusterEndpoints, ServiceInput, ServicePort
from mcs_apiserver.dns.responder import Responder
from mcs_apiserver.dns.zone import Zone
from mcs_apiserver.views.testing import ready_slice

WEB = "web.demo.svc.clusterset.local."
DB = "db.demo.svc.clusterset.local."


def web(*ips: str) -> ServiceInput:
    return ServiceInput("demo", "web", "ClusterSetIP", ips or ("243.0.0.1",), (ServicePort("http", "TCP", 80),))


def db(count: int = 2) -> ServiceInput:
    endpoints = [(f"10.0.{i // 250}.{i % 250 + 1}", f"db-{i}", f"db-{i}") for i in range(count)]
    return ServiceInput("demo", "db", "Headless", clusters=(ClusterEndpoints("member-2", (ready_slice(*endpoints),)),))


@pytest.fixture
def responder() -> Responder:
    zone = Zone("clusterset.local", ttl=5, clock=lambda: 1000.0)
    zone.update(("demo", "web"), web())
    zone.update(("demo", "db"), db())
    zone.commit()
    return Responder(zone)


def ask(responder: Responder, name: str, rdtype: str = "A", udp: bool = True, **query_args) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **query_args)
    wire = responder.respond(query.to_wire(), udp=udp)
    assert wire is not None
    response = dns.message.from_wire(wire)
    assert query.is_response(response)
    return response


def answer_text(response: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in response.answer for rd in rrset)


def soa_in_authority(response: dns.message.Message) -> bool:
    return [rrset.rdtype for rrset in response.authority] == [dns.rdatatype.SOA]


# --- answers from the table ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "rdtype", "rcode", "answers", "soa"), [
    (WEB, "A", "NOERROR", ["243.0.0.1"], False),
    (WEB, "AAAA", "NOERROR", [], True),                          # NODATA + SOA: IPv4-only name
    (WEB, "TXT", "NOERROR", [], True),                           # NODATA + SOA
    (WEB, "SRV", "NOERROR", [f"0 100 80 {WEB}"], False),         # bare name: every named port
    (f"_http._tcp.{WEB}", "SRV", "NOERROR", [f"0 100 80 {WEB}"], False),
    (f"_tcp.{WEB}", "SRV", "NOERROR", [], True),                 # empty non-terminal: NODATA
    (f"_https._tcp.{WEB}", "SRV", "NXDOMAIN", [], True),         # no such port
    (DB, "A", "NOERROR", ["10.0.0.1", "10.0.0.2"], False),
    (f"db-0.member-2.{DB}", "A", "NOERROR", ["10.0.0.1"], False),
    (f"member-2.{DB}", "A", "NXDOMAIN", [], True),                # <clusterid>.<svc>... must not exist
    (f"db-9.member-2.{DB}", "A", "NXDOMAIN", [], True),
    ("nothere.demo.svc.clusterset.local.", "A", "NXDOMAIN", [], True),
    ("demo.svc.clusterset.local.", "A", "NOERROR", [], True),    # a namespace with imports: NODATA
    ("other.svc.clusterset.local.", "A", "NXDOMAIN", [], True),
    ("svc.clusterset.local.", "A", "NOERROR", [], True),
    ("clusterset.local.", "SOA", "NOERROR", [], True),           # the apex answers its SOA (as NODATA+SOA)
    ("dns-version.clusterset.local.", "TXT", "NOERROR", ['"1.0.0"'], False),
    ("example.com.", "A", "REFUSED", [], False),                 # outside the zone
    ("xclusterset.local.", "A", "REFUSED", [], False),           # a suffix that is not a label boundary
    ("local.", "A", "REFUSED", [], False),
])
def test_each_name_and_type_gets_its_rcode_answers_and_soa(responder, name, rdtype, rcode, answers, soa) -> None:
    response = ask(responder, name, rdtype)
    assert dns.rcode.to_text(response.rcode()) == rcode
    assert answer_text(response) == answers
    assert soa_in_authority(response) is soa
    assert bool(response.flags & dns.flags.AA) is (rcode != "REFUSED")


def test_srv_answers_carry_the_target_addresses_as_additional_records(responder) -> None:
    response = ask(responder, DB, "SRV")
    targets = sorted(rd.target.to_text() for rd in response.answer[0])
    assert targets == [f"db-0.member-2.{DB}", f"db-1.member-2.{DB}"]
    assert sorted((r.name.to_text(), r[0].address) for r in response.additional) == [
        (f"db-0.member-2.{DB}", "10.0.0.1"), (f"db-1.member-2.{DB}", "10.0.0.2")]


def test_the_negative_answer_soa_has_the_ttl_as_minimum_and_a_serial() -> None:
    zone = Zone("clusterset.local", ttl=7, clock=lambda: 1000.0)
    zone.commit()
    response = ask(Responder(zone), "nope.clusterset.local.")
    soa = response.authority[0]
    assert soa.ttl == 7
    assert (soa[0].mname.to_text(), soa[0].rname.to_text()) == ("ns.dns.clusterset.local.", "hostmaster.clusterset.local.")
    assert (soa[0].serial, soa[0].refresh, soa[0].retry, soa[0].expire, soa[0].minimum) == (1001, 7200, 1800, 86400, 7)


def test_names_match_in_any_case_and_the_question_is_echoed_as_asked(responder) -> None:
    response = ask(responder, "WeB.DEMO.svc.ClusterSet.LOCAL.", "A")
    assert response.question[0].name.to_text() == "WeB.DEMO.svc.ClusterSet.LOCAL."
    assert answer_text(response) == ["243.0.0.1"]
    # the answer's owner is compressed against the question: it is spelled as asked too
    assert response.answer[0].name.to_text() == "WeB.DEMO.svc.ClusterSet.LOCAL."


def test_any_gets_the_rfc_8482_hinfo_for_a_name_that_exists_and_nxdomain_otherwise(responder) -> None:
    response = ask(responder, WEB, "ANY")
    assert response.rcode() == dns.rcode.NOERROR
    assert answer_text(response) == ['"RFC8482" ""']
    assert ask(responder, f"gone.{WEB}", "ANY").rcode() == dns.rcode.NXDOMAIN


def test_the_id_rd_and_cd_bits_are_echoed(responder) -> None:
    query = dns.message.make_query(WEB, "A")
    query.id = 0xBEEF
    query.flags = dns.flags.CD  # RD off, CD on
    response = dns.message.from_wire(responder.respond(query.to_wire()))
    assert response.id == 0xBEEF
    assert not response.flags & dns.flags.RD and response.flags & dns.flags.CD


# --- EDNS and truncation -------------------------------------------------------------------------


def test_an_edns_query_gets_an_opt_record_of_version_0(responder) -> None:
    response = ask(responder, WEB, "A", use_edns=0, payload=4096)
    assert response.edns == 0 and response.payload == 1232
    assert answer_text(response) == ["243.0.0.1"]


def test_edns_options_such_as_cookies_are_ignored(responder) -> None:
    cookie = dns.edns.GenericOption(dns.edns.COOKIE, b"\x01" * 8)
    response = ask(responder, WEB, "A", use_edns=0, options=[cookie])
    assert answer_text(response) == ["243.0.0.1"]


def test_an_edns_version_other_than_0_gets_badvers(responder) -> None:
    response = ask(responder, WEB, "A", use_edns=1)
    assert response.rcode() == dns.rcode.BADVERS
    assert response.edns == 0 and not response.answer


def test_an_answer_too_long_for_udp_is_truncated_and_whole_over_tcp() -> None:
    zone = Zone()
    zone.update(("demo", "db"), db(count=60))  # 60 A records: 16 bytes each, over 512
    responder = Responder(zone)
    truncated = ask(responder, DB, "A")
    assert truncated.flags & dns.flags.TC and not truncated.answer
    assert len(ask(responder, DB, "A", use_edns=0, payload=4096).answer[0]) == 60  # fits 1232 with EDNS
    assert ask(responder, DB, "SRV", use_edns=0, payload=4096).flags & dns.flags.TC  # SRV + additional does not
    whole = ask(responder, DB, "SRV", udp=False)
    assert not whole.flags & dns.flags.TC and len(whole.answer[0]) == 60 and len(whole.additional) == 60
    assert responder.stats.truncated == 2


def test_a_client_advertising_less_than_512_bytes_still_gets_512(responder) -> None:
    response = ask(responder, DB, "A", use_edns=0, payload=100)
    assert not response.flags & dns.flags.TC


# --- bad input -----------------------------------------------------------------------------------


def header(qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0, flags: int = 0x0100, ident: int = 0x1234) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


QUESTION = dns.message.make_query(WEB, "A").to_wire()[12:]


def rcode_of(wire: bytes | None) -> int:
    """The rcode from the header bytes (an UPDATE response does not parse as a query's would)."""
    assert wire is not None and wire[2] & 0x80
    return wire[3] & 0x0F


@pytest.mark.parametrize(("packet", "rcode"), [
    (header(qd=0), dns.rcode.FORMERR),                                    # no question
    (header(qd=2) + QUESTION + QUESTION, dns.rcode.FORMERR),              # several questions
    (header() + QUESTION[:-3], dns.rcode.FORMERR),                        # cut in the question
    (header() + QUESTION + b"\x00", dns.rcode.FORMERR),                   # trailing garbage
    (header() + b"\xc0\x0c\x00\x01\x00\x01", dns.rcode.FORMERR),          # a pointer to itself: loop
    (header() + b"\x03web\xc0\x0c\x00\x01\x00\x01", dns.rcode.FORMERR),   # any pointer in a question
    (header() + b"\x03web" * 90 + b"\x00\x00\x01\x00\x01", dns.rcode.FORMERR),  # a name over 255 bytes
    (header() + b"\x7fweb\x00\x00\x01\x00\x01", dns.rcode.FORMERR),       # reserved label type
    (header(an=1) + QUESTION, dns.rcode.FORMERR),                         # records where none belong
    (header(ar=1) + QUESTION + b"\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x00", dns.rcode.FORMERR),  # not an OPT
    (header(ar=1) + QUESTION + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x05", dns.rcode.FORMERR),  # OPT too short
    (header(ar=2) + QUESTION, dns.rcode.FORMERR),
    (header(flags=0x2000) + QUESTION, dns.rcode.NOTIMP),                  # opcode NOTIFY (4)
    (header(flags=0x2800) + QUESTION, dns.rcode.NOTIMP),                  # opcode UPDATE (5)
    (header() + QUESTION[:-2] + b"\x00\x03", dns.rcode.REFUSED),          # class CH
    (header() + QUESTION[:-2] + b"\x00\xff", dns.rcode.REFUSED),          # class ANY
    (header() + QUESTION[:-4] + b"\x00\xfc\x00\x01", dns.rcode.REFUSED),  # AXFR
])
def test_malformed_or_unsupported_queries_get_the_right_error(responder, packet, rcode) -> None:
    wire = responder.respond(packet)
    assert rcode_of(wire) == rcode
    assert wire[:2] == packet[:2]  # type: ignore[index]


def test_notimp_echoes_the_opcode_so_that_clients_match_it(responder) -> None:
    query = dns.message.make_query(WEB, "A")
    query.set_opcode(dns.opcode.NOTIFY)
    response = dns.message.from_wire(responder.respond(query.to_wire()))
    assert response.opcode() == dns.opcode.NOTIFY and response.rcode() == dns.rcode.NOTIMP
    assert query.is_response(response)


@pytest.mark.parametrize("packet", [b"", b"\x12", header()[:11], header(flags=0x8100) + QUESTION])
def test_short_packets_and_responses_are_dropped_unanswered(responder, packet) -> None:
    assert responder.respond(packet) is None


def test_random_garbage_never_raises() -> None:
    import random
    zone = Zone()
    zone.update(("demo", "web"), web())
    responder = Responder(zone)
    rng = random.Random(10)
    base = dns.message.make_query(WEB, "A", use_edns=0).to_wire()
    for _ in range(20000):
        packet = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        packet = bytes(packet[: rng.randint(0, len(packet) + 3)]) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 3)))
        wire = responder.respond(packet)
        if wire is not None:
            assert wire[:2] == packet[:2] and wire[2] & 0x80


def test_every_outcome_is_counted_by_type_rcode_and_protocol(responder) -> None:
    ask(responder, WEB, "A")
    ask(responder, WEB, "A", udp=False)
    ask(responder, "nope.clusterset.local.", "AAAA")
    responder.respond(b"\x00")
    assert responder.stats.queries == {(1, 0, True): 1, (1, 0, False): 1, (28, 3, True): 1}
    assert responder.stats.drops == {"short": 1}


# --- updates --------------------------------------------------------------------------------------


def test_an_unexported_service_is_nxdomain_at_once_and_its_namespace_goes_with_it(responder) -> None:
    zone = responder.zone
    assert zone.update(("demo", "web"), None) and zone.update(("demo", "db"), None)
    assert ask(responder, WEB).rcode() == dns.rcode.NXDOMAIN
    assert ask(responder, f"_http._tcp.{WEB}", "SRV").rcode() == dns.rcode.NXDOMAIN
    assert ask(responder, "demo.svc.clusterset.local.").rcode() == dns.rcode.NXDOMAIN
    assert ask(responder, "svc.clusterset.local.").rcode() == dns.rcode.NOERROR


def test_an_unchanged_input_is_no_update_and_a_changed_one_replaces_every_name(responder) -> None:
    zone = responder.zone
    assert zone.update(("demo", "web"), web()) is False
    assert zone.update(("demo", "web"), web("243.0.0.9", "fd00::9")) is True
    assert answer_text(ask(responder, WEB, "AAAA")) == ["fd00::9"]
    assert answer_text(ask(responder, WEB, "A")) == ["243.0.0.9"]
    assert zone.update(("demo", "db"), db(count=1))
    assert ask(responder, f"db-1.member-2.{DB}").rcode() == dns.rcode.NXDOMAIN


def test_a_commit_moves_the_soa_serial_on(responder) -> None:
    before = ask(responder, "nope.clusterset.local.").authority[0][0].serial
    responder.zone.commit()
    assert ask(responder, "nope.clusterset.local.").authority[0][0].serial == before + 1


def test_another_zone_name_is_served_instead_of_clusterset_local() -> None:
    zone = Zone("mcs.example.")
    zone.update(("demo", "web"), web())
    responder = Responder(zone)
    assert answer_text(ask(responder, "web.demo.svc.mcs.example.")) == ["243.0.0.1"]
    assert ask(responder, WEB).rcode() == dns.rcode.REFUSED
    assert answer_text(ask(responder, "dns-version.mcs.example.", "TXT")) == ['"1.0.0"']


def test_a_zone_not_ready_yet_answers_servfail_rather_than_a_false_nxdomain(responder) -> None:
    responder.zone.ready = False
    assert ask(responder, WEB).rcode() == dns.rcode.SERVFAIL
    assert ask(responder, "example.com.").rcode() == dns.rcode.SERVFAIL
    responder.zone.ready = True
    assert ask(responder, WEB).rcode() == dns.rcode.NOERROR


def test_a_headless_name_with_thousands_of_targets_still_fits_one_tcp_message() -> None:
    zone = Zone()
    zone.update(("demo", "db"), db(count=5000))
    responder = Responder(zone)
    wire = responder.respond(dns.message.make_query(DB, "SRV").to_wire(), udp=False)
    assert wire is not None and len(wire) <= 65535
    response = dns.message.from_wire(wire)
    assert 100 < len(response.answer[0]) < 5000  # a subset, as the spec allows
    assert len(ask(responder, DB, "A", udp=False).answer[0]) == 1000  # MAX_ADDRESSES
