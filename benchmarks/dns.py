"""``python3 -m benchmarks.dns``: the multicluster DNS server against CoreDNS, side by side in one run.

On a local ClusterSet of its own, member-2 exports N ClusterSetIP Services and N headless Services
with 3 ready endpoints each (selector-less, with EndpointSlices written like the endpointslice
controller's: hostname, targetRef); member-1's instance answers for them. Then:

- **Same names, two servers**: the answers of member-1's instance are written into a zone file that
  CoreDNS (the pinned build, ``file`` plugin: its fastest authoritative path) serves; a sample of
  queries is checked to get the same answers from both. dnsperf (Debian package, installed when
  missing) replays one query file (A of every service, A of per-endpoint names, SRV, NXDOMAIN) to
  each: the maximum rate (best of two interleaved 10 s runs, 100 queries outstanding), then p50/p99
  latency at a fixed rate of half CoreDNS's maximum (dnsperf ``-v`` reports each query's latency).
- **Export to resolvable**: a ServiceExport created in member-2 (its Service exists) until
  member-1's DNS answers NOERROR for the name, polled over UDP back to back.
- **Memory**: member-1's instance RSS growth per ClusterSetIP export, then per headless export with
  3 endpoints; the difference is what endpoints cost.
- **API under a DNS flood**: GET of one ServiceImport straight to the instance, idle and while
  dnsperf floods its DNS port at full speed.

dnsperf, CoreDNS, the control planes and the instances share the machine's CPUs: the absolute
rates are the machine's, the ratios are the point.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from benchmarks import machine, memory, report
from benchmarks.context import EXPORTER, FRONT_PROXY_HEADERS, READER, VIEWS, Bench, BenchError, own_clusterset, timed_get
from benchmarks.options import DEFAULT_OUTPUT
from benchmarks.objects import exports_path, namespace, service_export, services_path
from benchmarks.populate import create_many
from benchmarks.report import Section
from benchmarks.stats import Summary, fmt_ratio, kib, ms, ratio
from mcs_apiserver.local.binaries import ensure_binaries
from mcs_apiserver.local.cluster import free_dns_ports
from mcs_apiserver.logs import Progress
from mcs_apiserver.local.state import load as load_state

NAMESPACE = "dns-bench"
ZONE = "clusterset.local"
INSTANCE = f"{READER}/mcs-apiserver"
MAX_QPS_SECONDS = 10
FIXED_RATE_SECONDS = 5
TARGET_QPS_RATIO = 0.5
AIM_QPS_RATIO = 1.0
TARGET_P99 = 0.002
TARGET_PROPAGATION_P99 = 0.050
TARGET_ENDPOINT_BYTES = 3 * 1024
TARGET_FLOOD_RATIO = 2.0


@dataclass(frozen=True)
class Options:
    exports: int = 1000
    propagation_samples: int = 50
    get_samples: int = 200
    output: Path = DEFAULT_OUTPUT


# --- tools ---------------------------------------------------------------------------------------


def dnsperf_binary() -> str:
    """dnsperf, installed with apt-get when missing (it is a Debian package)."""
    found = shutil.which("dnsperf")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BenchError("dnsperf is missing: install the Debian package dnsperf (apt-get install dnsperf)")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "dnsperf"]):
        subprocess.run(argv, check=True, capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    found = shutil.which("dnsperf")
    if not found:
        raise BenchError("apt-get install dnsperf did not provide a dnsperf binary")
    return found


def _version(binary: Path) -> str:
    result = subprocess.run([str(binary), "-version"], capture_output=True, text=True, timeout=30, check=False)
    return (result.stdout or result.stderr).strip().splitlines()[0] if (result.stdout or result.stderr) else "?"


def _free_port() -> int:
    """A loopback port free for UDP and TCP, outside the ephemeral range (see ``local up``)."""
    return free_dns_ports(1)[0]


async def ask(port: int, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    call = dns.query.tcp if tcp else dns.query.udp
    return await asyncio.to_thread(call, query, "127.0.0.1", timeout=2, port=port)


class UdpPoller:
    """Back-to-back UDP queries from one socket, for the propagation clock (no thread hop)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect(("127.0.0.1", port))

    async def rcode(self, name: str) -> int | None:
        loop = asyncio.get_running_loop()
        query = dns.message.make_query(name, "A")
        await loop.sock_sendall(self.sock, query.to_wire())
        try:
            while True:
                wire = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), 0.5)
                if wire[:2] == query.to_wire()[:2]:
                    return wire[3] & 0x0F
        except asyncio.TimeoutError:
            return None

    def close(self) -> None:
        self.sock.close()


# --- objects ------------------------------------------------------------------------------------


def clusterset_ip_service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def headless_service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def endpoint_slice(name: str, index: int) -> dict:
    endpoints = [{"addresses": [f"10.{100 + k}.{index // 256 % 256}.{index % 256}"],
                  "hostname": f"{name}-{k}", "conditions": {"ready": True},
                  "targetRef": {"kind": "Pod", "name": f"{name}-{k}", "namespace": NAMESPACE}}
                 for k in range(3)]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-abcde", "namespace": NAMESPACE,
                         "labels": {"kubernetes.io/service-name": name,
                                    "endpointslice.kubernetes.io/managed-by": "benchmarks"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}


def fqdn(name: str) -> str:
    return f"{name}.{NAMESPACE}.svc.{ZONE}."


async def wait_resolvable(port: int, names: list[str], timeout: float = 600.0) -> float:
    started = time.perf_counter()
    pending = list(names)
    poller = UdpPoller(port)
    try:
        while pending:
            pending = [n for n in pending if await poller.rcode(n) != dns.rcode.NOERROR]
            if not pending:
                break
            if time.perf_counter() - started > timeout:
                raise BenchError(f"{len(pending)} names still do not resolve after {timeout:.0f}s, e.g. {pending[0]}")
            await asyncio.sleep(0.5)
    finally:
        poller.close()
    return time.perf_counter() - started


# --- results --------------------------------------------------------------------------------------


@dataclass
class ServerResult:
    name: str
    max_qps: list[float] = field(default_factory=list)
    latencies: Summary | None = None
    lost: str = ""


@dataclass
class Results:
    exports: int = 0
    queries: int = 0
    ours: ServerResult = field(default_factory=lambda: ServerResult("mcs-apiserver"))
    coredns: ServerResult = field(default_factory=lambda: ServerResult("CoreDNS"))
    fixed_rate: float = 0.0
    checked: int = 0
    propagation: Summary | None = None
    rss_clusterset_ip: float = math.nan  # bytes per export
    rss_headless: float = math.nan
    retained: tuple[float, float] = (math.nan, math.nan)  # bytes per export: ClusterSetIP, headless
    get_idle: Summary | None = None
    get_flood: Summary | None = None
    flood_qps: float = 0.0
    versions: list[str] = field(default_factory=list)


def _dnsperf(binary: str, port: int, queries: Path, seconds: float, rate: float | None = None,
             verbose: bool = False) -> subprocess.Popen:
    argv = [binary, "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds), "-q", "100"]
    if rate:
        argv += ["-Q", str(int(rate))]
    if verbose:
        argv.append("-v")
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _qps(output: str) -> float:
    match = re.search(r"Queries per second:\s+([\d.]+)", output)
    if not match:
        raise BenchError(f"dnsperf printed no rate:\n{output[-2000:]}")
    return float(match.group(1))


def _lost(output: str) -> str:
    match = re.search(r"Queries lost:\s+(\d+) \(([\d.]+)%\)", output)
    return f"{match.group(1)} ({match.group(2)}%)" if match else "?"


async def run_dnsperf(binary: str, port: int, queries: Path, seconds: float, rate: float | None = None,
                      verbose: bool = False) -> str:
    process = _dnsperf(binary, port, queries, seconds, rate, verbose)
    stdout, _ = await asyncio.to_thread(process.communicate)
    if process.returncode != 0:
        raise BenchError(f"dnsperf failed ({process.returncode}):\n{stdout[-2000:]}")
    return stdout


def latencies(output: str) -> list[float]:
    return [float(m.group(1)) for m in re.finditer(r"^> \S+ \S+ \S+ ([\d.]+)$", output, re.MULTILINE)]


# --- the run --------------------------------------------------------------------------------------


async def _populate(bench: Bench, exports: int, results: Results, dns_port: int) -> tuple[list[str], list[str]]:
    base = bench.apiserver(EXPORTER)
    for member in ("member-1", "member-2", "member-3"):
        await create_many(bench, [(bench.apiserver(member) + "/api/v1/namespaces", namespace(NAMESPACE))], 1)
    pid = bench.pid(INSTANCE)
    before = await memory.settled_rss(pid)
    cs = [f"cs-{i:05d}" for i in range(exports)]
    hl = [f"hl-{i:05d}" for i in range(exports)]
    bench.progress(f"  {exports:,} ClusterSetIP Services and ServiceExports in member-2")
    await create_many(bench, ((base + services_path(NAMESPACE), clusterset_ip_service(n)) for n in cs), 32)
    await create_many(bench, ((base + exports_path(NAMESPACE), service_export(n, NAMESPACE)) for n in cs), 32)
    await wait_resolvable(dns_port, [fqdn(n) for n in cs])
    middle = await memory.settled_rss(pid)
    bench.progress(f"  {exports:,} headless Services and ServiceExports, then EndpointSlices with 3 ready endpoints")
    await create_many(bench, ((base + services_path(NAMESPACE), headless_service(n)) for n in hl), 32)
    await create_many(bench, ((base + exports_path(NAMESPACE), service_export(n, NAMESPACE)) for n in hl), 32)
    await create_many(bench, ((base + f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices",
                               endpoint_slice(n, i)) for i, n in enumerate(hl)), 32)
    await wait_resolvable(dns_port, [fqdn(n) for n in hl])
    after = await memory.settled_rss(pid)
    results.rss_clusterset_ip = (middle - before) / exports
    results.rss_headless = (after - middle) / exports
    results.retained = retained_per_export(exports)
    return cs, hl


def retained_per_export(count: int) -> tuple[float, float]:
    """Bytes the member cache and the DNS zone keep per export, ClusterSetIP then headless with 3
    endpoints, counted by tracemalloc in this process with the instance's own code: what RSS cannot
    separate from the allocator's free lists and the transient JSON of the watch events."""
    from mcs_apiserver.dns.records import ClusterEndpoints, ServiceInput, ServicePort  # noqa: PLC0415
    from mcs_apiserver.dns.zone import Zone  # noqa: PLC0415
    from mcs_apiserver.members.member import MemberCache  # noqa: PLC0415

    class Sink:
        def keys_changed(self, member: str, keys: object) -> None: ...
        def namespaces_changed(self, member: str, names: object) -> None: ...
        def membership_changed(self, member: str) -> None: ...

    cache = MemberCache(EXPORTER, None, Sink())  # type: ignore[arg-type] - never started
    zone = Zone()
    slices = []
    for i in range(count):
        obj = endpoint_slice(f"hl-{i:05d}", i)
        obj["metadata"]["resourceVersion"] = str(10_000 + i)
        slices.append(obj)
        cache._exports[(NAMESPACE, f"hl-{i:05d}")] = {}  # type: ignore[assignment]
    http = (ServicePort("http", "TCP", 80),)
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(count):
            zone.update((NAMESPACE, f"cs-{i:05d}"), ServiceInput(NAMESPACE, f"cs-{i:05d}", "ClusterSetIP",
                                                                  (f"243.0.{i // 256}.{i % 256}",), http))
        gc.collect()
        clusterset_ip = tracemalloc.get_traced_memory()[0]
        for i, obj in enumerate(slices):
            cache._slices.apply("ADDED", obj)
            key = (NAMESPACE, f"hl-{i:05d}")
            zone.update(key, ServiceInput(NAMESPACE, key[1], "Headless", (), http,
                                          (ClusterEndpoints(EXPORTER, cache.ready_endpoint_slices(key)),)))
        gc.collect()
        headless = tracemalloc.get_traced_memory()[0] - clusterset_ip
    finally:
        tracemalloc.stop()
    return clusterset_ip / count, headless / count


def _query_file(path: Path, cs: list[str], hl: list[str], cluster_id: str) -> list[tuple[str, str]]:
    queries = [(fqdn(n), "A") for n in cs] + [(fqdn(n), "A") for n in hl]
    queries += [(f"_http._tcp.{fqdn(n)}", "SRV") for n in cs[::4]]
    queries += [(f"_http._tcp.{fqdn(n)}", "SRV") for n in hl[::4]]
    queries += [(f"{n}-1.{cluster_id}.{fqdn(n)}", "A") for n in hl[::2]]
    queries += [(f"nothere-{i}.{NAMESPACE}.svc.{ZONE}.", "A") for i in range(len(cs) // 10)]
    random.Random(1645).shuffle(queries)
    path.write_text("".join(f"{name} {rdtype}\n" for name, rdtype in queries))
    return queries


async def _zone_file(path: Path, dns_port: int, queries: list[tuple[str, str]]) -> None:
    """Our answers as a zone file: every answer and additional record of every query."""
    lines = {f"{ZONE}. 5 IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 5"}
    for name, rdtype in queries:
        response = await ask(dns_port, name, rdtype, tcp=True)
        for rrset in (*response.answer, *response.additional):
            for rdata in rrset:
                lines.add(f"{rrset.name.to_text().lower()} {rrset.ttl} IN {dns.rdatatype.to_text(rrset.rdtype)} "
                          f"{rdata.to_text().lower()}")
    path.write_text("\n".join(sorted(lines)) + "\n")


def _answers(response: dns.message.Message) -> tuple[int, list[str]]:
    return response.rcode(), sorted(rd.to_text().lower() for rrset in response.answer for rd in rrset)


async def _compare(ours: int, theirs: int, queries: list[tuple[str, str]]) -> int:
    sample = queries[:: max(1, len(queries) // 60)]
    for name, rdtype in sample:
        a, b = _answers(await ask(ours, name, rdtype, tcp=True)), _answers(await ask(theirs, name, rdtype, tcp=True))
        if a != b:
            raise BenchError(f"the servers disagree on {name} {rdtype}: ours {a}, CoreDNS {b}")
    return len(sample)


async def _propagation(bench: Bench, dns_port: int, samples: int) -> Summary:
    base = bench.apiserver(EXPORTER)
    names = [f"prop-{i:03d}" for i in range(samples)]
    await create_many(bench, ((base + services_path(NAMESPACE), clusterset_ip_service(n)) for n in names), 16)
    poller = UdpPoller(dns_port)
    durations = []
    try:
        for name in names:
            started = time.perf_counter()
            await bench.call("POST", base + exports_path(NAMESPACE), service_export(name, NAMESPACE))
            while await poller.rcode(fqdn(name)) != dns.rcode.NOERROR:
                if time.perf_counter() - started > 30:
                    raise BenchError(f"{fqdn(name)} did not resolve within 30 s of its export")
            durations.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    finally:
        poller.close()
    return Summary.of(durations)


async def _gets(bench: Bench, name: str, samples: int) -> Summary:
    url = bench.instance(READER) + VIEWS + f"/namespaces/{NAMESPACE}/serviceimports/{name}"
    headers = {**FRONT_PROXY_HEADERS, "Accept": "application/json"}
    times = []
    for _ in range(samples):
        times.append((await timed_get(bench.front_proxy, url, headers)).seconds)
    return Summary.of(times)


async def measure(bench: Bench, options: Options, workdir: Path) -> Results:
    results = Results(exports=options.exports)
    perf = dnsperf_binary()
    coredns = ensure_binaries().coredns  # the pinned build, from the same cache as kube-apiserver
    results.versions = [_version(coredns)]
    state = load_state(bench.state_dir)
    assert state is not None
    dns_port = state.member(READER).dns_port
    cluster_id = EXPORTER  # the local ClusterSet names each member's cluster ID after it
    cs, hl = await _populate(bench, options.exports, results, dns_port)

    queries = _query_file(workdir / "queries.txt", cs, hl, cluster_id)
    results.queries = len(queries)
    bench.progress(f"  zone file for CoreDNS from our answers ({len(queries):,} queries)")
    await _zone_file(workdir / "clusterset.local.zone", dns_port, queries)
    coredns_port = _free_port()
    (workdir / "Corefile").write_text(
        f"{ZONE}:{coredns_port} {{\n    bind 127.0.0.1\n    file {workdir / 'clusterset.local.zone'} {ZONE}\n}}\n")
    log = workdir / "coredns.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(coredns), "-conf", str(workdir / "Corefile")], stdout=out, stderr=subprocess.STDOUT)
    try:
        for attempt in range(50):
            if process.poll() is not None:
                raise BenchError(f"CoreDNS exited with {process.returncode}: {log.read_text()[-1000:]}")
            try:
                await ask(coredns_port, f"{ZONE}.", "SOA", tcp=True)
                break
            except (OSError, dns.exception.DNSException):  # not listening yet
                if attempt == 49:
                    raise BenchError(f"CoreDNS does not answer on port {coredns_port}: {log.read_text()[-1000:]}")
                await asyncio.sleep(0.2)
        results.checked = await _compare(dns_port, coredns_port, queries)
        bench.progress(f"  same answers from both on {results.checked} sampled queries; dnsperf max rate")
        for _ in range(2):
            for server, port in ((results.ours, dns_port), (results.coredns, coredns_port)):
                output = await run_dnsperf(perf, port, workdir / "queries.txt", MAX_QPS_SECONDS)
                server.max_qps.append(_qps(output))
        results.fixed_rate = max(results.coredns.max_qps) / 2
        bench.progress(f"  latency at {results.fixed_rate:,.0f} qps (half CoreDNS's maximum)")
        for server, port in ((results.ours, dns_port), (results.coredns, coredns_port)):
            output = await run_dnsperf(perf, port, workdir / "queries.txt", FIXED_RATE_SECONDS,
                                       rate=results.fixed_rate, verbose=True)
            server.latencies = Summary.of(latencies(output))
            server.lost = _lost(output)
    finally:
        process.terminate()
        process.wait(10)

    bench.progress(f"  export to resolvable, {options.propagation_samples} samples")
    results.propagation = await _propagation(bench, dns_port, options.propagation_samples)

    bench.progress(f"  API GET x{options.get_samples}, idle then under a DNS flood")
    results.get_idle = await _gets(bench, cs[0], options.get_samples)
    flood = _dnsperf(perf, dns_port, workdir / "queries.txt", 120)
    try:
        await asyncio.sleep(1.0)
        results.get_flood = await _gets(bench, cs[0], options.get_samples)
    finally:
        flood.send_signal(signal.SIGINT)
        output, _ = await asyncio.to_thread(flood.communicate)
    results.flood_qps = _qps(output) if "Queries per second" in output else math.nan
    return results


# --- the report -----------------------------------------------------------------------------------


def sections(r: Results) -> list[Section]:
    ours, theirs = r.ours, r.coredns
    best_ours, best_theirs = max(ours.max_qps), max(theirs.max_qps)
    qps_ratio = ratio(best_ours, best_theirs)
    servers = Section(
        "DNS: mcs-apiserver vs CoreDNS (file plugin), the same names, dnsperf",
        ["server", "max qps (2 runs)", f"p50 / p99 at {r.fixed_rate:,.0f} qps", "lost at that rate",
         f"target: max qps >= {TARGET_QPS_RATIO}x CoreDNS; p99 <= {ms(TARGET_P99)}"],
    )
    met_qps = servers.check("DNS max qps", f"{best_ours:,.0f} vs CoreDNS {best_theirs:,.0f} (x{fmt_ratio(qps_ratio)})",
                            f">= {TARGET_QPS_RATIO}x CoreDNS (aim {AIM_QPS_RATIO}x)", qps_ratio >= TARGET_QPS_RATIO)
    assert ours.latencies is not None and theirs.latencies is not None
    met_p99 = servers.check(f"DNS p99 at {r.fixed_rate:,.0f} qps", f"{ms(ours.latencies.p99)} (CoreDNS "
                            f"{ms(theirs.latencies.p99)})", f"<= {ms(TARGET_P99)}", ours.latencies.p99 <= TARGET_P99)
    servers.rows.append(["mcs-apiserver (member-1's instance)", " / ".join(f"{q:,.0f}" for q in ours.max_qps),
                         f"{ms(ours.latencies.p50)} / {ms(ours.latencies.p99)}", ours.lost,
                         f"qps {met_qps}{'; aim met' if qps_ratio >= AIM_QPS_RATIO else '; aim not met'}; p99 {met_p99}"])
    servers.rows.append(["CoreDNS, `file` plugin", " / ".join(f"{q:,.0f}" for q in theirs.max_qps),
                         f"{ms(theirs.latencies.p50)} / {ms(theirs.latencies.p99)}", theirs.lost, ""])
    servers.notes.append(
        f"{r.exports:,} ClusterSetIP and {r.exports:,} headless exports (3 endpoints each) in member-2, "
        f"served by member-1; one query file of {r.queries:,} queries (A of every service, A of per-endpoint "
        f"names, SRV with additional records, 1 in 16 NXDOMAIN), shuffled, replayed by dnsperf (1 thread, 100 "
        f"outstanding) for {MAX_QPS_SECONDS} s per max-rate run, interleaved, and {FIXED_RATE_SECONDS} s at the "
        f"fixed rate. CoreDNS serves a zone file written from our answers; {r.checked} sampled queries got "
        f"the same answers from both. Our instance is one Python process (uvloop) that also runs the "
        f"API, the views and the watches of 3 members; CoreDNS is multi-threaded Go.")
    propagation = Section("DNS: export to resolvable", ["samples", "p50", "p99", f"target p99 <= {ms(TARGET_PROPAGATION_P99)}"])
    assert r.propagation is not None
    propagation.rows.append([str(r.propagation.count), ms(r.propagation.p50), ms(r.propagation.p99),
                             propagation.check("DNS export to resolvable", f"p99 {ms(r.propagation.p99)}",
                                               f"<= {ms(TARGET_PROPAGATION_P99)}",
                                               r.propagation.p99 <= TARGET_PROPAGATION_P99)])
    propagation.notes.append("From just before the ServiceExport POST to member-2 (its Service exists) until "
                             "member-1's DNS answers NOERROR, polled over UDP back to back: member-2's "
                             "webhooks, etcd, the watch to member-1's instance, its view engine and the "
                             "prepared answers.")
    added = r.rss_headless - r.rss_clusterset_ip
    kept_cs, kept_hl = r.retained
    mem = Section("DNS: memory per export",
                  ["measure", "ClusterSetIP export", "headless export with 3 endpoints", "what the endpoints add",
                   f"target <= {kib(TARGET_ENDPOINT_BYTES)}"])
    mem.rows.append(["member-1's instance RSS growth", kib(r.rss_clusterset_ip), kib(r.rss_headless), kib(added),
                     mem.check("DNS endpoints per export (RSS)", kib(added), f"<= {kib(TARGET_ENDPOINT_BYTES)}",
                               added <= TARGET_ENDPOINT_BYTES)])
    mem.rows.append(["kept by the endpoint cache and the DNS zone (tracemalloc)", kib(kept_cs), kib(kept_hl),
                     kib(kept_hl - kept_cs), mem.check("DNS endpoints per export (kept)", kib(kept_hl - kept_cs),
                                                      f"<= {kib(TARGET_ENDPOINT_BYTES)}",
                                                      kept_hl - kept_cs <= TARGET_ENDPOINT_BYTES)])
    mem.notes.append(f"RSS: growth over {r.exports:,} exports of each kind, read {memory.SETTLE:.0f} s after "
                     "they all resolve; it includes everything an export costs (member caches, ServiceImport, "
                     "prepared DNS answers) and what the allocator keeps after the watch events' JSON. "
                     "tracemalloc: the same code (member cache, zone) in the benchmark process, counting only "
                     "live objects: a ClusterSetIP export's prepared answers, and a headless export's "
                     "ready endpoints (3 addresses, hostnames, pod names, ports) plus its prepared answers "
                     "(the name, 3 per-endpoint names, SRV with additional records). In both rows, what the "
                     "endpoints add is the headless export's cost beyond a ClusterSetIP export's.")
    flood = Section("DNS: API GET under a DNS flood", ["GET p50 / p99 idle", "GET p50 / p99 during the flood",
                                                       "p99 ratio", "DNS qps during the flood",
                                                       f"target p99 <= {TARGET_FLOOD_RATIO}x idle"])
    assert r.get_idle is not None and r.get_flood is not None
    flood_ratio = ratio(r.get_flood.p99, r.get_idle.p99)
    flood.rows.append([f"{ms(r.get_idle.p50)} / {ms(r.get_idle.p99)}", f"{ms(r.get_flood.p50)} / {ms(r.get_flood.p99)}",
                       fmt_ratio(flood_ratio), f"{r.flood_qps:,.0f}",
                       flood.check("API GET p99 under a DNS flood", f"x{fmt_ratio(flood_ratio)} of idle",
                                   f"<= {TARGET_FLOOD_RATIO}x", flood_ratio <= TARGET_FLOOD_RATIO)])
    flood.notes.append(f"{r.get_idle.count} sequential GETs of one ServiceImport straight to member-1's "
                       "instance (front-proxy certificate), then the same while dnsperf sends it queries "
                       "as fast as it answers them.")
    return [servers, propagation, mem, flood]


async def run(options: Options) -> None:
    progress = Progress(sys.stderr)
    started = time.monotonic()
    load_before = machine.load_average()
    async with own_clusterset("mcs-apiserver-dns-bench-", progress, members=3) as own:
        results = await measure(own.bench, options, own.tmp)
    minutes = (time.monotonic() - started) / 60
    header = "\n".join([
        "## Multicluster DNS: results of the last run",
        "",
        *machine.describe(),
        f"- DNS: {results.versions[0]}, dnsperf {_dnsperf_version()}",
        (f"- Command: `{' '.join(['python3 -m benchmarks.dns', *sys.argv[1:]])}`, {minutes:.1f} min in all; "
         f"load average {load_before} at the start, {machine.load_average()} at the end"),
    ])
    report.write_dns(options.output, header, sections(results))
    progress(f"wrote {options.output} ({minutes:.1f} min)")


def _dnsperf_version() -> str:
    output = subprocess.run(["dnsperf", "-h"], capture_output=True, text=True, check=False)
    match = re.search(r"Version ([\d.]+)", output.stdout + output.stderr)
    return match.group(1) if match else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.dns", description=__doc__.split("\n\n")[0])
    parser.add_argument("--exports", type=int, default=1000,
                        help="ClusterSetIP exports, and as many headless exports (default: 1000)")
    parser.add_argument("--samples", type=int, default=50, help="export-to-resolvable samples (default: 50)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="the Markdown file whose DNS part is rewritten (default: BENCHMARKS.md)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(run(Options(args.exports, args.samples, output=args.output)))
    except KeyboardInterrupt:
        return 130
    except BenchError as error:
        print(f"error: {error}; the ClusterSet was torn down, BENCHMARKS.md left as it was", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
