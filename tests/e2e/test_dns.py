"""Multicluster DNS on the local ClusterSet: exports made with kubectl in member-2 and member-3
resolve through member-1's DNS (dnspython as the client, UDP and TCP), and through a real CoreDNS
configured with the forward stanza of the README.

Headless Services are driven two ways: a real StatefulSet on the members' kwok Nodes (the scheduler,
the StatefulSet and endpointslice controllers do the work), and selector-less Services with
EndpointSlices created with kubectl, which lets a test pick addresses, hostnames and pod names that a
controller would not produce (an endpoint without a hostname, a slice that loses one endpoint).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from mcs_apiserver.local.cluster import free_dns_ports
from tests.e2e.helpers import eventually, namespace, service, service_export, statefulset, unique_namespace

pytestmark = pytest.mark.e2e

ZONE = "clusterset.local"
NOERROR, NXDOMAIN = dns.rcode.NOERROR, dns.rcode.NXDOMAIN


def ask(port: int, name: str, rdtype: str = "A", tcp: bool = False) -> tuple[int, list[str]]:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        response = dns.query.tcp(query, "127.0.0.1", port=port, timeout=3)
    else:
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=3)
    return response.rcode(), sorted(rd.to_text() for rrset in response.answer for rd in rrset)


def dns_port(clusterset, member: str) -> int:
    port = clusterset.state.member(member).dns_port
    assert port, f"{member} has no DNS port in the local state"
    return port


def headless_slice(name: str, ns: str, endpoints: list[tuple[str, str | None, str]], *, slice_name: str) -> str:
    """An EndpointSlice as the endpointslice controller writes it for pods (hostname, targetRef)."""
    items = []
    for address, hostname, pod in endpoints:
        item = {"addresses": [address], "conditions": {"ready": True},
                "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}}
        if hostname:
            item["hostname"] = hostname
        items.append(item)
    return json.dumps({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": slice_name, "namespace": ns,
                     "labels": {"kubernetes.io/service-name": name,
                                "endpointslice.kubernetes.io/managed-by": "e2e.mcs-apiserver"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": items,
    })


@pytest.fixture
def ns(kubectl):
    name = unique_namespace("dns")
    yield name
    for member in ("member-1", "member-2", "member-3"):
        kubectl.run("delete", "namespace", name, "--wait=false", context=member, check=False)


def export_web(kubectl, ns: str, members=("member-2", "member-3")) -> None:
    for member in members:
        kubectl.apply(namespace(ns), member)
        kubectl.apply(service("web", ns, ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                                {"name": "https", "port": 443, "protocol": "TCP"}]), member)
        kubectl.apply(service_export("web", ns), member)


def clusterset_ip(kubectl, ns: str) -> str:
    def ips() -> list[str]:
        obj = kubectl.json("get", "serviceimports", "web", "-n", ns, context="member-1")
        return obj["spec"].get("ips") or []
    return eventually(ips, what="the ServiceImport's ClusterSetIP")[0]


def test_a_clusterset_ip_export_resolves_to_its_clusterset_ip_and_named_ports(clusterset, kubectl, ns):
    kubectl.apply(namespace(ns), "member-1")
    export_web(kubectl, ns)
    port = dns_port(clusterset, "member-1")
    ip = clusterset_ip(kubectl, ns)
    web = f"web.{ns}.svc.{ZONE}."
    assert eventually(lambda: ask(port, web) == (NOERROR, [ip]), what=f"{web} A {ip}")
    assert ask(port, web, tcp=True) == (NOERROR, [ip])
    assert ask(port, f"_http._tcp.{web}", "SRV") == (NOERROR, [f"0 100 80 {web}"])
    assert ask(port, web, "SRV") == (NOERROR, [f"0 50 443 {web}", f"0 50 80 {web}"])  # every named port
    assert ask(port, web, "AAAA") == (NOERROR, [])  # NODATA: IPv4 only
    assert ask(port, f"WEB.{ns.upper()}.svc.ClusterSet.Local.") == (NOERROR, [ip])
    assert ask(port, f"dns-version.{ZONE}.", "TXT") == (NOERROR, ['"1.0.0"'])
    # every member answers the same name with the same address: the allocation is deterministic
    assert eventually(lambda: ask(dns_port(clusterset, "member-3"), web) == (NOERROR, [ip]),
                      what="member-3's DNS to agree")


def test_a_name_resolves_only_where_its_namespace_exists_and_unexporting_removes_it(clusterset, kubectl, ns):
    export_web(kubectl, ns)
    port = dns_port(clusterset, "member-1")
    web = f"web.{ns}.svc.{ZONE}."
    assert eventually(lambda: ask(dns_port(clusterset, "member-2"), web)[0] == NOERROR, what="member-2 resolving")
    assert ask(port, web) == (NXDOMAIN, [])  # member-1 has no such namespace
    kubectl.apply(namespace(ns), "member-1")
    assert eventually(lambda: ask(port, web)[0] == NOERROR, what="member-1 resolving once the namespace exists")
    for member in ("member-2", "member-3"):
        kubectl.run("delete", "serviceexport", "web", "-n", ns, context=member)
    assert eventually(lambda: ask(port, web) == (NXDOMAIN, []), what="NXDOMAIN after unexporting")
    assert ask(port, f"_http._tcp.{web}", "SRV") == (NXDOMAIN, [])


def test_a_headless_export_resolves_to_every_clusters_ready_endpoints_and_per_pod_names(clusterset, kubectl, ns):
    ids = {m: kubectl.json("get", "clusterproperty", "cluster.clusterset.k8s.io", context=m)["spec"]["value"]
           for m in ("member-2", "member-3")}
    kubectl.apply(namespace(ns), "member-1")
    pods = {"member-2": [("10.102.0.10", "db-0", "db-0"), ("10.102.0.11", "db-1", "db-1")],
            "member-3": [("10.103.0.10", "db-0", "db-0"), ("10.103.0.11", None, "db-7f9c-xk2p")]}
    for member, endpoints in pods.items():
        kubectl.apply(namespace(ns), member)
        kubectl.apply(service("db", ns, headless=True, ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]), member)
        kubectl.apply(headless_slice("db", ns, endpoints, slice_name="db-abc"), member)
        kubectl.apply(service_export("db", ns), member)
    port = dns_port(clusterset, "member-1")
    db = f"db.{ns}.svc.{ZONE}."
    every = sorted(a for endpoints in pods.values() for a, _, _ in endpoints)
    assert eventually(lambda: ask(port, db) == (NOERROR, every), what=f"{db} A = every ready pod IP")
    two, three = ids["member-2"], ids["member-3"]
    assert ask(port, f"db-0.{two}.{db}") == (NOERROR, ["10.102.0.10"])
    assert ask(port, f"db-0.{three}.{db}") == (NOERROR, ["10.103.0.10"])
    assert ask(port, f"db-7f9c-xk2p.{three}.{db}") == (NOERROR, ["10.103.0.11"])  # no hostname: pod name
    assert ask(port, f"{two}.{db}") == (NXDOMAIN, [])  # <clusterid>.<svc>... must not exist
    srv = ask(port, f"_pg._tcp.{db}", "SRV", tcp=True)
    assert srv == (NOERROR, sorted(f"0 25 5432 {h}.{ids[m]}.{db}" for m, eps in pods.items()
                                   for _, hostname, pod in eps for h in [hostname or pod]))
    # a pod that goes away leaves the answers
    kubectl.apply(headless_slice("db", ns, [pods["member-2"][0]], slice_name="db-abc"), "member-2")
    assert eventually(lambda: ask(port, f"db-1.{two}.{db}") == (NXDOMAIN, []), what="db-1 gone")
    assert ask(port, db)[1] == sorted(["10.102.0.10", *[a for a, _, _ in pods["member-3"]]])


def test_a_real_statefulset_exported_from_member_2_resolves_to_its_pods_in_member_1(clusterset, kubectl, ns):
    cluster_id = kubectl.json("get", "clusterproperty", "cluster.clusterset.k8s.io",
                              context="member-2")["spec"]["value"]
    kubectl.apply(namespace(ns), "member-1")
    kubectl.apply(namespace(ns), "member-2")
    kubectl.apply(service("db", ns, headless=True, selector={"app": "db"},
                          ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]), "member-2")
    kubectl.apply(statefulset("db", ns, 2, "db"), "member-2")
    kubectl.apply(service_export("db", ns), "member-2")

    def pod_ips() -> dict[str, str] | None:
        pods = kubectl.json("get", "pods", "-n", ns, "-l", "app=db", context="member-2")["items"]
        ips = {p["metadata"]["name"]: p["status"].get("podIP") for p in pods}
        return ips if len(ips) == 2 and all(ips.values()) else None

    ips = eventually(pod_ips, timeout=60, what="2 StatefulSet pods with IPs in member-2")
    port = dns_port(clusterset, "member-1")
    db = f"db.{ns}.svc.{ZONE}."
    assert eventually(lambda: ask(port, db) == (NOERROR, sorted(ips.values())), timeout=30,
                      what=f"{db} A = the StatefulSet's pod IPs")
    for pod, ip in ips.items():
        assert ask(port, f"{pod}.{cluster_id}.{db}") == (NOERROR, [ip])
    assert ask(port, f"_pg._tcp.{db}", "SRV") == (
        NOERROR, sorted(f"0 50 5432 {pod}.{cluster_id}.{db}" for pod in ips))
    kubectl.run("scale", "statefulset", "db", "-n", ns, "--replicas=0", context="member-2")
    assert eventually(lambda: ask(port, db) == (NXDOMAIN, []), timeout=30,
                      what="NXDOMAIN once no endpoint is ready")


# --- through a real CoreDNS, configured as a cluster's CoreDNS with the README's stanza ----------------


def free_port() -> int:
    """Free for UDP and TCP, below the ephemeral range (as ``local up`` chooses DNS ports)."""
    return free_dns_ports(1)[0]


@pytest.fixture
def coredns(clusterset, tmp_path):
    """CoreDNS forwarding clusterset.local to member-1's instance, as the manifests document."""
    port = free_port()
    corefile = tmp_path / "Corefile"
    corefile.write_text(
        f"{ZONE}:{port} {{\n    bind 127.0.0.1\n    forward . 127.0.0.1:{dns_port(clusterset, 'member-1')}\n}}\n"
        f".:{port} {{\n    bind 127.0.0.1\n    template IN A cluster.local {{\n"
        f"        answer \"{{{{ .Name }}}} 5 IN A 10.96.0.1\"\n    }}\n}}\n")
    process = subprocess.Popen([str(clusterset.binaries.coredns), "-conf", str(corefile)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    def answering() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"CoreDNS exited with {process.returncode}: {process.stdout.read().decode()[-1000:]}")
        try:
            return ask(port, f"dns-version.{ZONE}.", "TXT")[0] == NOERROR
        except (dns.exception.Timeout, OSError):  # not listening yet
            return False

    try:
        eventually(answering, timeout=20, what="CoreDNS to answer")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_coredns_forwarding_the_zone_gives_the_same_answers(clusterset, kubectl, ns, coredns):
    kubectl.apply(namespace(ns), "member-1")
    export_web(kubectl, ns)
    ours = dns_port(clusterset, "member-1")
    web = f"web.{ns}.svc.{ZONE}."
    ip = clusterset_ip(kubectl, ns)
    eventually(lambda: ask(ours, web) == (NOERROR, [ip]), what="our DNS to resolve web")
    for name, rdtype in ((web, "A"), (f"_http._tcp.{web}", "SRV"), (web, "AAAA"),
                         (f"nothere.{ns}.svc.{ZONE}.", "A"), (f"dns-version.{ZONE}.", "TXT")):
        assert ask(coredns, name, rdtype) == ask(ours, name, rdtype), f"{name} {rdtype}"
        assert ask(coredns, name, rdtype, tcp=True) == ask(ours, name, rdtype), f"{name} {rdtype} over TCP"
    # the cluster's own zone stays with the cluster's CoreDNS
    assert ask(coredns, "kubernetes.default.svc.cluster.local.") == (NOERROR, ["10.96.0.1"])


def _metrics(clusterset, member: str) -> str:
    root = clusterset.state_dir / "pki"
    context = ssl.create_default_context(cafile=str(root / "mcs-apiserver-ca.crt"))
    context.load_cert_chain(root / "front-proxy-client.crt", root / "front-proxy-client.key")
    request = urllib.request.Request(f"https://localhost:{clusterset.state.member(member).mcs_port}/metrics",
                                     headers={"X-Remote-User": "admin", "X-Remote-Group": "system:masters"})
    with urllib.request.urlopen(request, context=context, timeout=5) as response:
        return response.read().decode()


def _count(text: str, line_prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_dns_queries_are_counted_on_metrics_by_type_rcode_and_protocol(clusterset):
    port = dns_port(clusterset, "member-2")
    nxdomain = 'mcs_dns_queries_total{protocol="udp",rcode="NXDOMAIN",type="AAAA"}'
    txt_tcp = 'mcs_dns_queries_total{protocol="tcp",rcode="NOERROR",type="TXT"}'
    before = _metrics(clusterset, "member-2")
    for _ in range(3):
        assert ask(port, f"nothere.nowhere.svc.{ZONE}.", "AAAA")[0] == NXDOMAIN
    assert ask(port, f"dns-version.{ZONE}.", "TXT", tcp=True)[0] == NOERROR
    after = _metrics(clusterset, "member-2")
    assert _count(after, nxdomain) - _count(before, nxdomain) == 3
    assert _count(after, txt_tcp) - _count(before, txt_tcp) == 1
    assert _count(after, "mcs_dns_query_duration_seconds_count") >= _count(before, "mcs_dns_query_duration_seconds_count") + 4
