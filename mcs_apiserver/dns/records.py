"""The records of one ServiceImport, exactly as the Multicluster DNS specification (1.0.0) says. Pure.

Names are lower case, absolute (trailing dot) text; record data is presentation text
(``"10.0.0.1"``, ``"0 50 80 web.demo.svc.clusterset.local."``), so that the spec's examples read as
they are written and the wire encoding is left to ``zone``.

For ``<svc>.<ns>.svc.<zone>`` (the *base* name):

* ClusterSetIP: A/AAAA = the import's ``spec.ips`` (per family), even with no ready endpoint (as
  CoreDNS does: the address is what the ServiceImport says); ``_<port>._<proto>.<base>`` SRV for
  every **named** port, target the base name (its A/AAAA go in the additional section); an SRV
  query on the base name gives every named port.
* Headless: A/AAAA = the ready addresses of every contributing cluster;
  ``<hostname>.<clusterid>.<base>`` per endpoint, with hostname = the endpoint's ``hostname``, else
  its pod name, else the dashed address (``10-1-2-3``, IPv6 colons dashed); SRV per ready endpoint and
  named port of its EndpointSlice, targets those names. No ready endpoint at all: no name (NXDOMAIN).
* ``<clusterid>.<base>`` must not exist (the spec reserves it): it is an empty non-terminal that
  answers NXDOMAIN, unlike the other empty non-terminals (``_tcp.<base>``, ``<ns>.svc.<zone>``), which
  exist and answer NODATA (RFC 8020).

SRV priority is 0 and the weight is split evenly, as CoreDNS does; the spec prescribes neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from mcs_apiserver.contract import ReadyEndpoints

RecordType = Literal["A", "AAAA", "SRV", "TXT"]
#: owner name -> record type -> record data. An owner with no types is an empty non-terminal.
Records = dict[str, dict[RecordType, tuple[str, ...]]]

#: ``TXT dns-version.<zone>``: the version of the specification these records follow.
DNS_SCHEMA_VERSION = "1.0.0"
#: A headless name answers at most this many addresses (the spec allows "a chosen subset"): the
#: answer must fit a 64 KiB TCP message, and no client wants more.
MAX_ADDRESSES = 1000


class ServicePort(NamedTuple):
    name: str  #: "" when unnamed: no SRV
    protocol: str  #: TCP | UDP | SCTP
    port: int


class ClusterEndpoints(NamedTuple):
    cluster: str  #: cluster ID
    slices: tuple[ReadyEndpoints, ...]


@dataclass(frozen=True, slots=True)
class ServiceInput:
    """What DNS reads of one served ServiceImport (plain data, comparable: unchanged input, no work)."""

    namespace: str
    name: str
    type: Literal["ClusterSetIP", "Headless"]
    ips: tuple[str, ...] = ()  #: ClusterSetIP only
    ports: tuple[ServicePort, ...] = ()  #: the import's ports (ClusterSetIP SRV)
    clusters: tuple[ClusterEndpoints, ...] = ()  #: Headless only: the contributing clusters' endpoints


def base_name(namespace: str, name: str, zone: str) -> str:
    return f"{name}.{namespace}.svc.{zone}.".lower()


def hostname_label(address: str, hostname: str | None, pod: str | None) -> str:
    """The first label of an endpoint's own name: hostname, else pod name, else dashed address.

    A pod name with a dot (pod names are DNS subdomains) would make two labels: the address is
    used instead.
    """
    if hostname:
        return hostname.lower()
    if pod and "." not in pod:
        return pod.lower()
    return address.replace(":", "-").replace(".", "-").lower()


def _srv(targets: list[tuple[int, str]]) -> tuple[str, ...]:
    """SRV data for (port, target) pairs: priority 0, the weight split evenly (as CoreDNS does)."""
    weight = 100 // len(targets) if targets else 0
    return tuple(f"0 {weight} {port} {target}" for port, target in targets)


def _add(records: Records, owner: str, rdtype: RecordType, values: list[str]) -> None:
    if values:
        records.setdefault(owner, {})[rdtype] = tuple(values)


def _unique(values: list) -> list:
    return list(dict.fromkeys(values))


def service_records(service: ServiceInput, zone: str) -> Records:
    """Every name (with its records) that ``service`` gives under ``zone``; {} if none. Pure."""
    base = base_name(service.namespace, service.name, zone)
    records: Records = {}
    if service.type == "ClusterSetIP":
        records[base] = {}
        _add(records, base, "A", [ip for ip in service.ips if ":" not in ip])
        _add(records, base, "AAAA", [ip for ip in service.ips if ":" in ip])
        named = [p for p in service.ports if p.name]
        every: list[tuple[int, str]] = []
        for port in named:
            proto = f"_{port.protocol.lower()}.{base}"
            records.setdefault(proto, {})  # empty non-terminal
            owner = f"_{port.name.lower()}.{proto}"
            values = records.setdefault(owner, {}).get("SRV", ())
            records[owner]["SRV"] = values + _srv([(port.port, base)])
            every.append((port.port, base))
        _add(records, base, "SRV", list(_srv(every)))
        return records

    v4: list[str] = []
    v6: list[str] = []
    hosts: dict[str, tuple[list[str], list[str]]] = {}
    srv_by_port: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for cluster in service.clusters:
        for slice_ in cluster.slices:
            family = v6 if slice_.family == "IPv6" else v4
            named = [p for p in slice_.ports if p.name]
            for endpoint in slice_.endpoints:
                if not endpoint.addresses:
                    continue
                label = hostname_label(endpoint.addresses[0], endpoint.hostname, endpoint.pod)
                owner = f"{label}.{cluster.cluster}.{base}".lower()
                own4, own6 = hosts.setdefault(owner, ([], []))
                (own6 if slice_.family == "IPv6" else own4).extend(endpoint.addresses)
                family.extend(endpoint.addresses)
                for port in named:
                    srv_by_port.setdefault((port.name.lower(), port.protocol.lower()), []).append((port.port, owner))
    v4, v6 = _unique(v4)[:MAX_ADDRESSES], _unique(v6)[:MAX_ADDRESSES]
    if not v4 and not v6:
        return {}
    records[base] = {}
    _add(records, base, "A", v4)
    _add(records, base, "AAAA", v6)
    for owner, (own4, own6) in hosts.items():
        records[owner] = {}
        _add(records, owner, "A", _unique(own4))
        _add(records, owner, "AAAA", _unique(own6))
    every = []
    for (port_name, protocol), targets in srv_by_port.items():
        targets = _unique(targets)
        proto = f"_{protocol}.{base}"
        records.setdefault(proto, {})
        _add(records, f"_{port_name}.{proto}", "SRV", list(_srv(targets)))
        every.extend(targets)
    _add(records, base, "SRV", list(_srv(_unique(every))))
    return records


def additional_for(records: Records, rdtype: RecordType, values: tuple[str, ...]) -> list[tuple[str, RecordType, tuple[str, ...]]]:
    """The address records of the SRV targets in ``values`` (for the additional section)."""
    if rdtype != "SRV":
        return []
    extra: list[tuple[str, RecordType, tuple[str, ...]]] = []
    for target in _unique([v.rsplit(" ", 1)[1] for v in values]):
        for address_type in ("A", "AAAA"):
            found = records.get(target, {}).get(address_type)  # type: ignore[call-overload]
            if found:
                extra.append((target, address_type, found))
    return extra
