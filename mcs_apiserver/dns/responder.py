"""One query in, one response out: the hot path, in plain bytes.

The header and the (single) question are read by hand: labels only, no compression pointer (a
question never needs one; a pointer, hence any compression loop, is a FORMERR). The owner name,
lower-cased, is a dict key into the prepared zone; the response is the query's ID, flags and
question followed by prepared bytes. Nothing else is parsed or built per query.

Outcomes, and why:

* a response (QR set) or fewer than 12 bytes: dropped, never answered (no reflection loops, no ID
  to answer to);
* opcode other than QUERY: NOTIMP; more or fewer than one question, records in the answer or
  authority sections, anything but one OPT in the additional section, trailing bytes: FORMERR;
* EDNS version other than 0: BADVERS (RFC 6891), with an OPT of version 0;
* before the first view of the ClusterSet is computed (members still listing): SERVFAIL, so that
  resolvers try again instead of caching an NXDOMAIN that is not true;
* class other than IN, or a name outside the zone: REFUSED (we are authoritative for one zone only);
  zone transfers (AXFR/IXFR): REFUSED;
* a name of the zone without the asked type: NODATA with the SOA; an unknown name: NXDOMAIN with
  the SOA; ANY: one HINFO "RFC8482" (RFC 8482);
* over UDP, a response longer than the client accepts (512 bytes, or its EDNS size up to 1232) is
  sent empty with TC set, and the client retries over TCP, where the full answer is sent.
"""

from __future__ import annotations

import struct

from mcs_apiserver.dns.stats import DnsStats
from mcs_apiserver.dns.zone import HEAD, TYPE_ANY, Zone

#: The largest UDP payload we send (the DNS Flag Day 2020 value: no IP fragmentation).
MAX_UDP_PAYLOAD = 1232
CLASSIC_UDP_PAYLOAD = 512

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, BADVERS = 0, 1, 2, 3, 4, 5, 16
_AXFR, _IXFR, _OPT = 252, 251, 41

_pack_counts = struct.Struct("!HHHH").pack
_unpack_counts = struct.Struct("!HHHH").unpack_from
_unpack_qtail = struct.Struct("!HH").unpack_from
_unpack_opt = struct.Struct("!HHIH").unpack_from


def _opt(extended_rcode: int = 0) -> bytes:
    """Our OPT record: root owner, our UDP payload size, version 0, the upper rcode bits."""
    return b"\x00" + struct.pack("!HHIH", _OPT, MAX_UDP_PAYLOAD, (extended_rcode >> 4) << 24, 0)


_OPT_PLAIN = _opt()
_OPT_BADVERS = _opt(BADVERS)
# section counts (ANCOUNT, NSCOUNT, ARCOUNT) of the answers that are not prepared per name
_SOA, _SOA_EDNS = struct.pack("!HHH", 0, 1, 0), struct.pack("!HHH", 0, 1, 1)
_ANY, _ANY_EDNS = struct.pack("!HHH", 1, 0, 0), struct.pack("!HHH", 1, 0, 1)


class Responder:
    def __init__(self, zone: Zone, stats: DnsStats | None = None) -> None:
        self.zone = zone
        self.stats = stats if stats is not None else DnsStats()

    def respond(self, query: bytes, udp: bool = True) -> bytes | None:
        """The response to ``query`` (None: drop it). Counts the outcome in ``stats``."""
        size = len(query)
        if size < 12 or query[2] & 0x80:
            self.stats.dropped("short" if size < 12 else "response")
            return None
        qd, an, ns, ar = _unpack_counts(query, 4)
        opcode = (query[2] >> 3) & 0x0F
        if qd != 1:
            return self._error(query, FORMERR, None, "none", udp)
        # the question: labels up to the root label, no pointers, at most 255 bytes
        end = 12
        while end < size:
            length = query[end]
            if length == 0 or length & 0xC0:
                break
            end += length + 1
        if end >= size or query[end] != 0 or end - 11 > 255 or end + 5 > size:
            return self._error(query, FORMERR, None, "none", udp)
        qtype, qclass = _unpack_qtail(query, end + 1)
        question_end = end + 5
        question = query[12:question_end]
        if opcode != 0:
            return self._error(query, NOTIMP, question, qtype, udp)
        if an or ns or ar > 1:
            return self._error(query, FORMERR, question, qtype, udp)
        edns = ar == 1
        limit = CLASSIC_UDP_PAYLOAD
        if edns:
            # exactly one OPT: root owner, type 41, and its options fill the rest of the packet
            if size < question_end + 11 or query[question_end] != 0:
                return self._error(query, FORMERR, question, qtype, udp)
            rtype, payload, ttl, rdlength = _unpack_opt(query, question_end + 1)
            if rtype != _OPT or question_end + 11 + rdlength != size:
                return self._error(query, FORMERR, question, qtype, udp)
            if (ttl >> 16) & 0xFF != 0:
                return self._error(query, BADVERS, question, qtype, udp, edns=True)
            limit = min(max(payload, CLASSIC_UDP_PAYLOAD), MAX_UDP_PAYLOAD)
        elif question_end != size:
            return self._error(query, FORMERR, question, qtype, udp)
        if qclass != 1 or qtype == _AXFR or qtype == _IXFR:
            return self._error(query, REFUSED, question, qtype, udp, edns=edns)

        zone = self.zone
        if not zone.ready:
            return self._error(query, SERVFAIL, question, qtype, udp, edns=edns)
        owner = question[:-4].lower()
        answers = zone.names.get(owner)
        prepared = None
        if answers:  # one prepared answer (bytes), or a tuple of them: each starts with its query type
            if type(answers) is bytes:
                if ((answers[0] << 8) | answers[1]) == qtype:
                    prepared = answers
            else:
                for candidate in answers:
                    if ((candidate[0] << 8) | candidate[1]) == qtype:
                        prepared = candidate
                        break
        if prepared is not None:
            counts = prepared[8:14] if edns else prepared[2:8]
            body = prepared[HEAD:]
            rcode = NOERROR
        elif answers is not None:
            rcode = NOERROR
            if qtype == TYPE_ANY:
                counts, body = (_ANY_EDNS if edns else _ANY), zone.any_answer
            else:
                counts, body = (_SOA_EDNS if edns else _SOA), zone.soa  # NODATA
        elif owner.endswith(zone.origin_wire) and _label_boundary(owner, len(owner) - len(zone.origin_wire)):
            counts, body, rcode = (_SOA_EDNS if edns else _SOA), zone.soa, NXDOMAIN
        else:
            return self._error(query, REFUSED, question, qtype, udp, edns=edns)
        flags = bytes((0x84 | (query[2] & 0x01), rcode | (query[3] & 0x10)))  # QR AA, RD and CD echoed
        if edns:
            response = b"".join((query[:2], flags, b"\x00\x01", counts, question, body, _OPT_PLAIN))
        else:
            response = b"".join((query[:2], flags, b"\x00\x01", counts, question, body))
        if udp and len(response) > limit:
            self.stats.count(qtype, rcode, udp, truncated=True)
            flags = bytes((flags[0] | 0x02, flags[1]))
            if edns:
                return b"".join((query[:2], flags, _pack_counts(1, 0, 0, 1), question, _OPT_PLAIN))
            return b"".join((query[:2], flags, _pack_counts(1, 0, 0, 0), question))
        self.stats.count(qtype, rcode, udp)
        return response

    def _error(self, query: bytes, rcode: int, question: bytes | None, qtype: int | str, udp: bool,
               edns: bool = False) -> bytes:
        """A response with no records: the header echoed with ``rcode``, the question when it was
        readable, our OPT when the query had one (BADVERS lives there)."""
        self.stats.count(qtype, rcode, udp)
        opcode_rd = query[2] & 0x79  # opcode and RD echoed, QR set below
        flags = bytes((0x80 | opcode_rd, (rcode & 0x0F) | (query[3] & 0x10)))
        parts = [query[:2], flags, _pack_counts(1 if question else 0, 0, 0, 1 if edns else 0)]
        if question:
            parts.append(question)
        if edns:
            parts.append(_OPT_BADVERS if rcode == BADVERS else _OPT_PLAIN)
        return b"".join(parts)


def _label_boundary(name: bytes, offset: int) -> bool:
    """Whether ``offset`` starts a label of the wire name ``name`` (so that a suffix match is a
    whole-label match: ``xclusterset.local`` is not in ``clusterset.local``)."""
    position = 0
    while position < offset:
        position += name[position] + 1
    return position == offset
