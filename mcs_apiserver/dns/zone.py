"""The zone as prepared wire-format answers: built when the view changes, only for changed keys.

Every (owner name, query type) that has records is stored as the bytes that follow the question in
a response (answer, authority and additional sections, names compressed against the question at
offset 12) plus its section counts. A response is then the query's own ID, flags and question
(echoed as asked: same length whatever the case, so every compression pointer still lands) followed
by those bytes: the responder never builds a message per query. dnspython builds them here, once.

An owner present with no types is an empty non-terminal (NODATA). The SOA (for negative answers)
is one more prepared blob; its serial moves on with every batch of changes.
"""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from mcs_apiserver.dns.records import (
    DNS_SCHEMA_VERSION,
    RecordType,
    Records,
    ServiceInput,
    additional_for,
    service_records,
)
from mcs_apiserver.views.model import Key

DEFAULT_ZONE = "clusterset.local"
DEFAULT_TTL = 5
#: The spec's example TTL for ``dns-version``: it never changes.
VERSION_TTL = 28800
#: SOA timers (refresh, retry, expire), as CoreDNS answers them; the minimum is the TTL.
SOA_TIMERS = (7200, 1800, 86400)

TYPE_CODES: dict[RecordType, int] = {"A": 1, "AAAA": 28, "SRV": 33, "TXT": 16}
TYPE_ANY = 255


class Prepared(NamedTuple):
    """The part of a response after the question, and the counts of its sections."""

    counts: tuple[int, int, int]  #: ANCOUNT, NSCOUNT, ARCOUNT (EDNS OPT not included)
    body: bytes


def name_wire(name: str) -> bytes:
    """Lower-case wire format of an absolute text name: the responder's lookup key."""
    return dns.name.from_text(name).to_wire().lower()  # type: ignore[union-attr]


def prepare(owner: str, rdtype: RecordType, values: tuple[str, ...], ttl: int,
            additional: Iterable[tuple[str, RecordType, tuple[str, ...]]] = ()) -> Prepared:
    """The sections of a positive answer for ``owner``/``rdtype`` (dnspython encodes them)."""
    name = dns.name.from_text(owner)
    query = dns.message.make_query(name, rdtype)
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text_list(name, ttl, dns.rdataclass.IN, rdtype, list(values)))
    for target, extra_type, extra_values in additional:
        response.additional.append(
            dns.rrset.from_text_list(target, ttl, dns.rdataclass.IN, extra_type, list(extra_values)))
    wire = response.to_wire()
    counts = struct.unpack("!3H", wire[6:12])
    return Prepared(counts, wire[12 + len(name.to_wire()) + 4:])  # type: ignore[arg-type]


class Zone:
    """Prepared answers for one zone, updated per ServiceImport key."""

    def __init__(self, origin: str = DEFAULT_ZONE, ttl: int = DEFAULT_TTL,
                 clock: Callable[[], float] = time.time) -> None:
        self.origin = origin.strip(".").lower()
        self.ttl = ttl
        self.origin_wire = name_wire(self.origin + ".")
        #: False until the view has been computed once: the responder answers SERVFAIL meanwhile.
        self.ready = True
        #: owner (lower-case wire) -> query type -> prepared answer
        self.names: dict[bytes, dict[int, Prepared]] = {}
        self._owned: dict[Key, tuple[bytes, ...]] = {}
        self._inputs: dict[Key, ServiceInput] = {}
        self._namespaces: dict[str, int] = {}  # namespace -> services with names in it
        self.serial = int(clock()) & 0xFFFFFFFF
        self.soa = b""
        self.any_answer = self._any_answer()
        self.names[self.origin_wire] = {}
        self.names[name_wire(f"svc.{self.origin}.")] = {}
        version = f"dns-version.{self.origin}."
        self.names[name_wire(version)] = {TYPE_CODES["TXT"]: prepare(
            version, "TXT", (f'"{DNS_SCHEMA_VERSION}"',), VERSION_TTL)}
        self._build_soa()

    # --- updates ------------------------------------------------------------------------------

    def update(self, key: Key, service: ServiceInput | None) -> bool:
        """Replace the names of ``key`` with those of ``service`` (None: it is gone). Whether
        anything changed (an unchanged input costs one comparison)."""
        if self._inputs.get(key) == service:
            return False
        for owner in self._owned.pop(key, ()):
            del self.names[owner]
        if key in self._inputs:
            self._namespace_count(key[0], -1)
            del self._inputs[key]
        if service is not None:
            records = service_records(service, self.origin)
            self._inputs[key] = service
            self._owned[key] = self._add(records)
            self._namespace_count(key[0], +1)
        return True

    def commit(self) -> None:
        """After a batch of updates: a new SOA serial, so that secondaries and caches can tell."""
        self.serial = (self.serial + 1) & 0xFFFFFFFF
        self._build_soa()

    @property
    def keys(self) -> Iterable[Key]:
        return self._inputs.keys()

    def _add(self, records: Records) -> tuple[bytes, ...]:
        owned = []
        for owner, types in records.items():
            prepared = {
                TYPE_CODES[rdtype]: prepare(owner, rdtype, values, self.ttl, additional_for(records, rdtype, values))
                for rdtype, values in types.items()
            }
            wire = name_wire(owner)
            self.names[wire] = prepared
            owned.append(wire)
        return tuple(owned)

    def _namespace_count(self, namespace: str, delta: int) -> None:
        count = self._namespaces.get(namespace, 0) + delta
        owner = name_wire(f"{namespace}.svc.{self.origin}.")
        if count > 0:
            self._namespaces[namespace] = count
            self.names.setdefault(owner, {})
        else:
            self._namespaces.pop(namespace, None)
            self.names.pop(owner, None)

    # --- fixed parts --------------------------------------------------------------------------

    def _build_soa(self) -> None:
        """The SOA record (owner written out in full) that negative answers carry in authority."""
        origin = dns.name.from_text(self.origin + ".")
        refresh, retry, expire = SOA_TIMERS
        rrset = dns.rrset.from_text(
            origin, self.ttl, dns.rdataclass.IN, dns.rdatatype.SOA,
            f"ns.dns.{self.origin}. hostmaster.{self.origin}. {self.serial} {refresh} {retry} {expire} {self.ttl}")
        out = io.BytesIO()
        rrset.to_wire(out)
        self.soa = out.getvalue()

    def _any_answer(self) -> bytes:
        """RFC 8482 section 4.2: an ANY query gets one synthesised HINFO "RFC8482" "" record. Its
        owner is a pointer to the question, so the same bytes answer for every name."""
        rdata = b"\x07RFC8482\x00"
        return b"\xc0\x0c" + struct.pack("!HHIH", 13, 1, self.ttl, len(rdata)) + rdata
