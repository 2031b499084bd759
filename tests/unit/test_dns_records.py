"""The records of the Multicluster DNS specification, derived from plain data (every example of the spec)."""

from __future__ import annotations

import pytest

from mcs_apiserver.dns.records import (
    MAX_ADDRESSES,
    ClusterEndpoints,
    ServiceInput,
    ServicePort,
    additional_for,
    hostname_label,
    service_records,
)
from mcs_apiserver.views.testing import ready_slice

ZONE = "clusterset.local"
BASE = "myservice.test.svc.clusterset.local."
HTTPS = ServicePort("https", "TCP", 443)


def clusterset_ip(*ips: str, ports: tuple[ServicePort, ...] = (HTTPS,)) -> ServiceInput:
    return ServiceInput("test", "myservice", "ClusterSetIP", ips, ports)


def headless(*clusters: ClusterEndpoints) -> ServiceInput:
    return ServiceInput("test", "myservice", "Headless", clusters=clusters)


def test_a_clusterset_ip_service_answers_its_ip_and_an_srv_per_named_port() -> None:
    # spec: myservice.test.svc.clusterset.local. A 10.42.42.42; _https._tcp.myservice... SRV ... 443 myservice...
    assert service_records(clusterset_ip("10.42.42.42"), ZONE) == {
        BASE: {"A": ("10.42.42.42",), "SRV": (f"0 100 443 {BASE}",)},
        f"_tcp.{BASE}": {},
        f"_https._tcp.{BASE}": {"SRV": (f"0 100 443 {BASE}",)},
    }


def test_a_dual_stack_clusterset_ip_service_answers_a_and_aaaa() -> None:
    records = service_records(clusterset_ip("10.42.42.42", "fd00:243::2a", ports=()), ZONE)
    assert records == {BASE: {"A": ("10.42.42.42",), "AAAA": ("fd00:243::2a",)}}


def test_unnamed_ports_get_no_srv_and_the_bare_name_lists_every_named_port() -> None:
    ports = (ServicePort("http", "TCP", 80), ServicePort("", "TCP", 8080), ServicePort("dns", "UDP", 53))
    records = service_records(clusterset_ip("10.42.42.42", ports=ports), ZONE)
    assert records[BASE]["SRV"] == (f"0 50 80 {BASE}", f"0 50 53 {BASE}")
    assert set(records) == {BASE, f"_tcp.{BASE}", f"_http._tcp.{BASE}", f"_udp.{BASE}", f"_dns._udp.{BASE}"}


def test_a_clusterset_ip_service_without_an_address_exists_with_no_address_record() -> None:
    assert service_records(clusterset_ip(ports=()), ZONE) == {BASE: {}}


def test_a_headless_service_answers_every_ready_endpoint_of_every_cluster() -> None:
    # spec: myservice... A 10.3.0.1, 10.3.0.2, 10.3.0.3; pod-name.clusterA.myservice... A 10.3.0.1 ...
    records = service_records(headless(
        ClusterEndpoints("clustera", (ready_slice(("10.3.0.1", "pod-name", "pod-name"),
                                                  ("10.3.0.2", "pod-name-2", "pod-name-2"),
                                                  ports=(("https", "TCP", 443),)),)),
        ClusterEndpoints("clusterb", (ready_slice(("10.3.0.3", "pod-name", "pod-name"),
                                                  ports=(("https", "TCP", 443),)),)),
    ), ZONE)
    a, b = f"clustera.{BASE}", f"clusterb.{BASE}"
    assert records[BASE]["A"] == ("10.3.0.1", "10.3.0.2", "10.3.0.3")
    assert records[f"pod-name.{a}"] == {"A": ("10.3.0.1",)}
    assert records[f"pod-name-2.{a}"] == {"A": ("10.3.0.2",)}
    assert records[f"pod-name.{b}"] == {"A": ("10.3.0.3",)}
    # SRV per ready endpoint and named port, targets the per-endpoint names (N x M, all clusters)
    srv = (f"0 33 443 pod-name.{a}", f"0 33 443 pod-name-2.{a}", f"0 33 443 pod-name.{b}")
    assert records[f"_https._tcp.{BASE}"] == {"SRV": srv}
    assert records[BASE]["SRV"] == srv
    # <clusterid>.<svc>... must not exist: no owner for it
    assert a not in records and b not in records


@pytest.mark.parametrize(("address", "hostname", "pod", "label"), [
    ("10.1.2.3", "web-0", "web-0", "web-0"),          # the endpoint's hostname (StatefulSet)
    ("10.1.2.3", None, "web-7d9f-x2", "web-7d9f-x2"),  # else the pod name
    ("10.1.2.3", None, None, "10-1-2-3"),              # else the dashed address
    ("fd00::1:2", None, None, "fd00--1-2"),            # IPv6 colons dashed
    ("10.1.2.3", None, "pod.with.dots", "10-1-2-3"),   # a dotted pod name would be two labels
    ("10.1.2.3", "Web-0", None, "web-0"),              # lower case
])
def test_an_endpoint_is_named_by_hostname_then_pod_name_then_dashed_address(address, hostname, pod, label) -> None:
    assert hostname_label(address, hostname, pod) == label


def test_a_headless_service_without_ready_endpoints_has_no_name_at_all() -> None:
    assert service_records(headless(), ZONE) == {}
    assert service_records(headless(ClusterEndpoints("clustera", (ready_slice(),))), ZONE) == {}


def test_a_dual_stack_pod_has_a_and_aaaa_under_one_name_and_one_srv_per_port() -> None:
    records = service_records(headless(ClusterEndpoints("clustera", (
        ready_slice(("10.3.0.1", "web-0", "web-0")),
        ready_slice(("fd00::1", "web-0", "web-0"), family="IPv6"),
    ))), ZONE)
    owner = f"web-0.clustera.{BASE}"
    assert records[owner] == {"A": ("10.3.0.1",), "AAAA": ("fd00::1",)}
    assert records[BASE]["AAAA"] == ("fd00::1",)
    assert records[f"_http._tcp.{BASE}"] == {"SRV": (f"0 100 8080 {owner}",)}


def test_duplicate_hostnames_in_a_cluster_give_several_addresses_on_one_name() -> None:
    records = service_records(headless(ClusterEndpoints("clustera", (
        ready_slice(("10.3.0.1", "web", None), ("10.3.0.2", "web", None)),))), ZONE)
    assert records[f"web.clustera.{BASE}"] == {"A": ("10.3.0.1", "10.3.0.2")}


def test_a_huge_headless_service_answers_a_bounded_subset() -> None:
    many = tuple(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(MAX_ADDRESSES + 5))
    records = service_records(headless(ClusterEndpoints("clustera", (ready_slice(*many, ports=()),))), ZONE)
    assert len(records[BASE]["A"]) == MAX_ADDRESSES


def test_srv_answers_carry_their_targets_addresses_in_the_additional_section() -> None:
    records = service_records(clusterset_ip("10.42.42.42", "fd00::2a"), ZONE)
    assert additional_for(records, "SRV", records[BASE]["SRV"]) == [
        (BASE, "A", ("10.42.42.42",)), (BASE, "AAAA", ("fd00::2a",))]
    assert additional_for(records, "A", records[BASE]["A"]) == []


def test_names_are_lower_case_whatever_the_zone_is_written_as() -> None:
    records = service_records(clusterset_ip("10.42.42.42", ports=()), "ClusterSet.Local")
    assert list(records) == [BASE]
