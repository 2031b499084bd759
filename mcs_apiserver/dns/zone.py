"""The zone as prepared wire-format answers: built when the view changes, only for changed keys.

Every (owner name, query type) that has records is stored as the bytes that follow the question in
a response (answer, authority and additional sections, names compressed against the question at
offset 12) plus its section counts. A response is then the query's own ID, flags and question
(echoed as asked: same length whatever the case, so every compression pointer still lands) followed
by those bytes: the responder never builds a message per query.

The encoder is a few lines of ``struct`` rather than dnspython's message builder: it runs for every
name of every changed import (dnspython took milliseconds per import, this takes tens of
microseconds), and the records it writes are only A, AAAA, SRV and TXT. The tests read every
answer back with dnspython.

Storage is one flat map, ``names``: every owner (so that NODATA and NXDOMAIN can be told apart) to
its prepared answers, one per query type that has records (none for an empty non-terminal; a name
has one or two), each one ``bytes`` of head and body (``HEAD``), and a name with one type holds it
alone, not in a tuple: one object per name besides its key, which is what the memory budget per
export allows (a tuple of named tuples, each with a body of its own, cost 150 bytes more per name).
Which names belong to a ServiceImport is not kept: its input is, and the names are derived from it
again when it changes. The SOA (for negative answers) is one more blob; its
serial moves on with every batch of changes.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterable

from mcs_apiserver.dns.records import (
    DNS_SCHEMA_VERSION,
    RecordType,
    Records,
    ServiceInput,
    additional_for,
    service_records,
)
from mcs_apiserver.contract import Key

DEFAULT_ZONE = "clusterset.local"
DEFAULT_TTL = 5
#: The spec's example TTL for ``dns-version``: it never changes.
VERSION_TTL = 28800
#: SOA timers (refresh, retry, expire), as CoreDNS answers them; the minimum is the TTL.
SOA_TIMERS = (7200, 1800, 86400)

TYPE_CODES: dict[RecordType, int] = {"A": 1, "AAAA": 28, "SRV": 33, "TXT": 16}
TYPE_ANY = 255
_TYPE_WIRE: dict[RecordType, bytes] = {name: struct.pack("!H", code) for name, code in TYPE_CODES.items()}
_CLASS_IN = 1
#: Compression pointers hold 14 bits: names further into a message cannot be pointed at.
_MAX_POINTER = 0x3FFF

_rr_header = struct.Struct("!HHIH").pack


#: A prepared answer is one ``bytes``: its head, then its body (the part of a response after the
#: question). The head is the query type it answers, as in the question (2 bytes); ANCOUNT, NSCOUNT,
#: ARCOUNT (6); the same with one more additional record, our OPT (6).
HEAD = 14
#: A name's prepared answers: one, or a tuple of them (one per query type; empty for an empty
#: non-terminal).
Answers = bytes | tuple[bytes, ...]


def labels_of(name: str) -> tuple[bytes, ...]:
    """Lower-case labels of an absolute text name (``"a.b."`` -> ``(b"a", b"b")``)."""
    text = name.rstrip(".").lower()
    return tuple(label.encode("ascii") for label in text.split(".")) if text else ()


def name_wire(name: str) -> bytes:
    """Lower-case wire format of an absolute text name: the responder's lookup key."""
    return b"".join(bytes((len(label),)) + label for label in labels_of(name)) + b"\x00"


class _Writer:
    """Writes the sections after a question, compressing names (RFC 1035 4.1.4) against the question
    and against the names already written."""

    def __init__(self, question: tuple[bytes, ...]) -> None:
        self.out = bytearray()
        self.base = 12 + sum(len(label) + 1 for label in question) + 1 + 4
        self.suffixes: dict[tuple[bytes, ...], int] = {}
        offset = 12
        for i in range(len(question)):
            self.suffixes[question[i:]] = offset
            offset += len(question[i]) + 1

    def name(self, labels: tuple[bytes, ...], compress: bool = True) -> None:
        for i in range(len(labels)):
            suffix = labels[i:]
            pointer = self.suffixes.get(suffix) if compress else None
            if pointer is not None:
                self.out += struct.pack("!H", 0xC000 | pointer)
                return
            here = self.base + len(self.out)
            if here <= _MAX_POINTER:
                self.suffixes.setdefault(suffix, here)
            self.out += bytes((len(labels[i]),)) + labels[i]
        self.out += b"\x00"

    def record(self, owner: tuple[bytes, ...], rdtype: RecordType, ttl: int, value: str) -> None:
        self.name(owner)
        if rdtype == "A":
            rdata = socket.inet_pton(socket.AF_INET, value)
        elif rdtype == "AAAA":
            rdata = socket.inet_pton(socket.AF_INET6, value)
        elif rdtype == "TXT":
            text = value.strip('"').encode()
            rdata = bytes((len(text),)) + text
        else:  # SRV: the target is never compressed (RFC 2782)
            priority, weight, port, target = value.split()
            self.out += _rr_header(TYPE_CODES[rdtype], _CLASS_IN, ttl, 0)
            start = len(self.out)
            self.out += struct.pack("!HHH", int(priority), int(weight), int(port))
            self.name(labels_of(target), compress=False)
            struct.pack_into("!H", self.out, start - 2, len(self.out) - start)
            return
        self.out += _rr_header(TYPE_CODES[rdtype], _CLASS_IN, ttl, len(rdata)) + rdata


#: A TCP message holds at most 65,535 bytes: an answer stops short of that (question and OPT
#: included), leaving out records that do not fit (the spec lets a headless name answer a subset).
MAX_BODY = 65535 - 12 - 259 - 11 - 300


def prepare(owner: str, rdtype: RecordType, values: tuple[str, ...], ttl: int,
            additional: Iterable[tuple[str, RecordType, tuple[str, ...]]] = ()) -> bytes:
    """The prepared answer (head and body, see ``HEAD``) for ``owner``/``rdtype``, a body of at most
    ``MAX_BODY`` bytes."""
    question = labels_of(owner)
    writer = _Writer(question)
    answers = extra = 0
    for value in values:
        if len(writer.out) > MAX_BODY:
            break
        writer.record(question, rdtype, ttl, value)
        answers += 1
    for target, extra_type, extra_values in additional:
        target_labels = labels_of(target)
        for value in extra_values:
            if len(writer.out) > MAX_BODY:
                break
            writer.record(target_labels, extra_type, ttl, value)
            extra += 1
    return b"".join((_TYPE_WIRE[rdtype], _counts(answers, extra), _counts(answers, extra + 1), writer.out))


_COUNTS: dict[tuple[int, int], bytes] = {}


def _counts(answers: int, additional: int) -> bytes:
    """Section counts, shared between answers (most are one of a few values): memory per name."""
    found = _COUNTS.get((answers, additional))
    if found is None:
        found = _COUNTS[(answers, additional)] = struct.pack("!HHH", answers, 0, additional)
    return found


class Zone:
    """Prepared answers for one zone, updated per ServiceImport key."""

    def __init__(self, origin: str = DEFAULT_ZONE, ttl: int = DEFAULT_TTL,
                 clock: Callable[[], float] = time.time) -> None:
        self.origin = origin.strip(".").lower()
        self.ttl = ttl
        self.origin_wire = name_wire(self.origin + ".")
        #: False until the view has been computed once: the responder answers SERVFAIL meanwhile.
        self.ready = True
        #: every owner name (lower-case wire), empty non-terminals included -> its prepared answers
        self.names: dict[bytes, Answers] = {}
        self._inputs: dict[Key, ServiceInput] = {}
        self._namespaces: dict[str, int] = {}  # namespace -> services with names in it
        self.serial = int(clock()) & 0xFFFFFFFF
        self.soa = b""
        self.any_answer = self._any_answer()
        self.names[self.origin_wire] = ()
        self.names[name_wire(f"svc.{self.origin}.")] = ()
        version = f"dns-version.{self.origin}."
        self.names[name_wire(version)] = prepare(version, "TXT", (f'"{DNS_SCHEMA_VERSION}"',), VERSION_TTL)
        self._build_soa()

    # --- updates ------------------------------------------------------------------------------

    def update(self, key: Key, service: ServiceInput | None) -> bool:
        """Replace the names of ``key`` with those of ``service`` (None: it is gone). Whether
        anything changed (an unchanged input costs one comparison)."""
        old = self._inputs.get(key)
        if old == service:
            return False
        if old is not None:
            for owner in service_records(old, self.origin):
                self.names.pop(name_wire(owner), None)
            self._namespace_count(key[0], -1)
            del self._inputs[key]
        if service is not None:
            self._inputs[key] = service
            self._add(service_records(service, self.origin))
            self._namespace_count(key[0], +1)
        return True

    def commit(self) -> None:
        """After a batch of updates: a new SOA serial, so that caches and secondaries can tell."""
        self.serial = (self.serial + 1) & 0xFFFFFFFF
        self._build_soa()

    @property
    def keys(self) -> Iterable[Key]:
        return self._inputs.keys()

    def _add(self, records: Records) -> None:
        ttl = self.ttl
        for owner, types in records.items():
            answers = tuple(prepare(owner, rdtype, values, ttl, additional_for(records, rdtype, values))
                            for rdtype, values in types.items())
            self.names[name_wire(owner)] = answers[0] if len(answers) == 1 else answers

    def _namespace_count(self, namespace: str, delta: int) -> None:
        count = self._namespaces.get(namespace, 0) + delta
        owner = name_wire(f"{namespace}.svc.{self.origin}.")
        if count > 0:
            self._namespaces[namespace] = count
            self.names.setdefault(owner, ())
        else:
            self._namespaces.pop(namespace, None)
            self.names.pop(owner, None)

    # --- fixed parts --------------------------------------------------------------------------

    def _build_soa(self) -> None:
        """The SOA record (owner written out in full) that negative answers carry in authority."""
        writer = _Writer(())
        writer.base = 0  # no pointers into it: it follows questions of any length
        writer.name(labels_of(self.origin + "."), compress=False)
        writer.out += _rr_header(6, _CLASS_IN, self.ttl, 0)
        start = len(writer.out)
        writer.name(labels_of(f"ns.dns.{self.origin}."), compress=False)
        writer.name(labels_of(f"hostmaster.{self.origin}."), compress=False)
        refresh, retry, expire = SOA_TIMERS
        writer.out += struct.pack("!IIIII", self.serial, refresh, retry, expire, self.ttl)
        struct.pack_into("!H", writer.out, start - 2, len(writer.out) - start)
        self.soa = bytes(writer.out)

    def _any_answer(self) -> bytes:
        """RFC 8482 section 4.2: an ANY query gets one synthesised HINFO "RFC8482" "" record. Its
        owner is a pointer to the question, so the same bytes answer for every name."""
        rdata = b"\x07RFC8482\x00"
        return b"\xc0\x0c" + _rr_header(13, _CLASS_IN, self.ttl, len(rdata)) + rdata
