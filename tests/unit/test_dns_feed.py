"""The view engine's served imports and the member caches' endpoints, turned into zone names."""

from __future__ import annotations

import dns.message
import dns.rcode

from mcs_apiserver.dns.feed import DnsFeed
from mcs_apiserver.dns.responder import Responder
from mcs_apiserver.dns.zone import Zone
from mcs_apiserver.views.engine import ViewEngine
from mcs_apiserver.views.testing import member, port, ready_slice, service

KEY = ("demo", "web")
WEB = "web.demo.svc.clusterset.local."


class World:
    def __init__(self) -> None:
        self.members = {name: member(name, namespaces=("default", "demo")) for name in ("member-1", "member-2", "member-3")}
        self.engine = ViewEngine("member-1")
        self.zone = Zone()
        self.feed = DnsFeed(self.zone, self.engine, self.members)
        self.responder = Responder(self.zone)
        self.run(membership=True)

    def run(self, *keys, membership: bool = False) -> None:
        delta = self.engine.update(self.members, set(keys), membership_changed=membership)
        self.feed(set(keys) | delta.imports.keys(), membership)

    def ask(self, name: str, rdtype: str = "A") -> tuple[int, list[str]]:
        response = dns.message.from_wire(self.responder.respond(dns.message.make_query(name, rdtype).to_wire()))
        return response.rcode(), sorted(rd.to_text() for rrset in response.answer for rd in rrset)


def test_a_clusterset_ip_import_resolves_to_its_clusterset_ip_and_named_ports() -> None:
    world = World()
    world.members["member-2"].export(KEY, service(KEY, [port(80, "http")]))
    world.run(KEY)
    ip = world.engine.imports[KEY]["spec"]["ips"][0]
    assert world.ask(WEB) == (dns.rcode.NOERROR, [ip])
    assert world.ask(f"_http._tcp.{WEB}", "SRV") == (dns.rcode.NOERROR, [f"0 100 80 {WEB}"])


def test_a_headless_import_resolves_to_the_ready_endpoints_of_every_contributing_cluster() -> None:
    world = World()
    svc = service(KEY, [port(80, "http")], headless=True)
    world.members["member-2"].export(KEY, svc, slices=(ready_slice(("10.2.0.1", "web-0", "web-0")),))
    world.members["member-3"].export(KEY, svc, slices=(ready_slice(("10.3.0.1", "web-0", "web-0")),))
    world.run(KEY)
    assert world.ask(WEB) == (dns.rcode.NOERROR, ["10.2.0.1", "10.3.0.1"])
    assert world.ask(f"web-0.member-3.{WEB}") == (dns.rcode.NOERROR, ["10.3.0.1"])
    assert world.ask(f"_http._tcp.{WEB}", "SRV")[1] == [
        f"0 50 8080 web-0.member-2.{WEB}", f"0 50 8080 web-0.member-3.{WEB}"]


def test_a_name_exists_only_where_its_namespace_exists_locally() -> None:
    world = World()
    del world.members["member-1"].namespaces["demo"]
    world.run(membership=True)
    world.members["member-2"].export(KEY, service(KEY, [port(80, "http")]))
    world.run(KEY)
    assert world.ask(WEB)[0] == dns.rcode.NXDOMAIN
    world.members["member-1"].add_namespace("demo")
    delta = world.engine.update(world.members, set(), {"demo"})
    world.feed(delta.imports.keys(), False)
    assert world.ask(WEB)[0] == dns.rcode.NOERROR


def test_unexporting_gives_nxdomain() -> None:
    world = World()
    world.members["member-2"].export(KEY, service(KEY, [port(80, "http")]))
    world.run(KEY)
    world.members["member-2"].unexport(KEY)
    world.run(KEY)
    assert world.ask(WEB)[0] == dns.rcode.NXDOMAIN


def test_a_member_that_leaves_the_clusterset_takes_its_endpoints_with_it() -> None:
    world = World()
    svc = service(KEY, [port(80, "http")], headless=True)
    world.members["member-2"].export(KEY, svc, slices=(ready_slice("10.2.0.1"),))
    world.members["member-3"].export(KEY, svc, slices=(ready_slice("10.3.0.1"),))
    world.run(KEY)
    world.members["member-3"].set_property("clusterset.k8s.io", "another-set")  # NotMember now
    world.run(membership=True)
    assert world.ask(WEB) == (dns.rcode.NOERROR, ["10.2.0.1"])


def test_an_export_whose_service_is_missing_counts_for_nothing() -> None:
    world = World()
    world.members["member-2"].export(KEY, None)
    world.run(KEY)
    assert world.ask(WEB)[0] == dns.rcode.NXDOMAIN


def test_a_changed_endpoint_updates_only_its_own_names_and_a_repeat_changes_nothing() -> None:
    world = World()
    svc = service(KEY, [port(80, "http")], headless=True)
    world.members["member-2"].export(KEY, svc, slices=(ready_slice("10.2.0.1"),))
    world.run(KEY)
    serial = world.zone.serial
    world.run(KEY)
    assert world.zone.serial == serial  # same input: no work, no new serial
    world.members["member-2"].slices[KEY] = (ready_slice("10.2.0.9"),)
    world.run(KEY)
    assert world.ask(WEB) == (dns.rcode.NOERROR, ["10.2.0.9"])
    assert world.zone.serial == serial + 1


def test_two_slices_with_the_same_first_address_are_ordered_without_comparing_none_to_text() -> None:
    world = World()
    svc = service(KEY, [port(80, "http")], headless=True)
    world.members["member-2"].export(KEY, svc, slices=(ready_slice(("10.2.0.1", "a", None)),
                                                       ready_slice(("10.2.0.1", None, None))))
    world.run(KEY)
    assert world.ask(WEB) == (dns.rcode.NOERROR, ["10.2.0.1"])
