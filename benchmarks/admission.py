"""Webhooks: AdmissionReview POSTs straight to the instance, and what they cost kubectl apply.

Direct: the webhook paths member-1's configurations register (and the older per-step paths while the
instance still serves them), each with a realistic AdmissionReview v1 (the request kube-apiserver
would send for a kubectl create), over one keep-alive TLS connection, round-robin across the paths.

Cost on apply: sequential creates of ServiceExports (their webhooks called) and of ClusterProperties
with names that are not well known (the webhooks' matchConditions skip them, so only the CEL check
costs) in member-1, with the webhooks registered, against the same creates in member-3, whose
webhook configurations are removed for the measurement and restored afterwards. Both members run
the same kube-apiserver build on the same machine; the creates alternate between them (A, B, B, A,
...) so that both sides see the same noise and neither always goes first.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from benchmarks import objects
from benchmarks.context import PLAIN, READER, Bench, BenchError
from benchmarks.populate import create_many
from benchmarks.report import Section
from benchmarks.stats import Summary, fmt_ratio, ms, ratio

DIRECT_P99_TARGET = 0.005
APPLY_RATIO_TARGET = 1.2
WARMUP = 20
EXPORTED_AT = "views.multicluster.x-k8s.io/exported-at"
ADMISSION = "/apis/admissionregistration.k8s.io/v1"
CONFIGURATIONS = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")
CONFIGURATION_NAME = "mcs-apiserver"
#: Metadata the server sets: dropped before a removed configuration is created again.
SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields")


@dataclass(frozen=True)
class DirectResult:
    path: str
    what: str
    registered: bool
    latency: Summary


@dataclass(frozen=True)
class ApplyResult:
    kind: str
    with_webhooks: Summary
    without: Summary
    #: Webhook name -> (calls, seconds in all), from member-1's kube-apiserver metrics over the run.
    calls: dict[str, tuple[int, float]]


def _name(i: int) -> str:
    return f"wh-{i:05d}"


def _property_name(i: int) -> str:
    return f"bench-{i:05d}.example.com"


# --- direct --------------------------------------------------------------------------------------


def _review(operation: str, obj: dict[str, Any], group: str, kind: str, resource: str) -> bytes:
    """An AdmissionReview v1 as kube-apiserver sends it for a create by the admin via kubectl."""
    meta = obj["metadata"]
    obj = {**obj, "metadata": {**meta, "managedFields": [{
        "manager": "kubectl-create", "operation": "Update", "apiVersion": obj["apiVersion"],
        "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]}}
    version = obj["apiVersion"].split("/")[1]
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": resource}
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()), "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
        "name": meta["name"], "operation": operation,
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": obj, "oldObject": None, "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl-create"},
    }
    if "namespace" in meta:
        request["namespace"] = meta["namespace"]
    return orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})


#: The paths the brief of this benchmark named; measured too when the configurations no longer use them.
NAMED_PATHS = ("/webhooks/validate/serviceexports", "/webhooks/mutate/serviceexports",
               "/webhooks/validate/clusterproperties", "/webhooks/mutate/clusterproperties")


@dataclass(frozen=True)
class DirectRequest:
    path: str
    what: str
    body: bytes
    #: Whether member-1's webhook configurations point kube-apiserver at this path.
    registered: bool


def _request_for(path: str, registered: bool) -> DirectRequest:
    """A realistic AdmissionReview for ``path``, chosen by its resource and action."""
    action, resource = path.removeprefix("/webhooks/").split("/", 1)
    if resource == "serviceexports":
        export = objects.service_export(_name(0), objects.WEBHOOK_NAMESPACE)
        return DirectRequest(path, "CREATE of an export whose Service exists and that member-3 also exports",
                             _review("CREATE", export, "multicluster.x-k8s.io", "ServiceExport", resource),
                             registered)
    if action == "validate":
        return DirectRequest(path, "CREATE of clusterset.k8s.io (ID checks, uniqueness across the members)",
                             _review("CREATE", objects.cluster_property("clusterset.k8s.io", "local"),
                                     "about.k8s.io", "ClusterProperty", resource), registered)
    no_value = {"apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty",
                "metadata": {"name": "cluster.clusterset.k8s.io"}}
    return DirectRequest(path, "CREATE of cluster.clusterset.k8s.io without a value (kube-system UID default)",
                         _review("CREATE", no_value, "about.k8s.io", "ClusterProperty", resource), registered)


async def _registered_paths(bench: Bench, member: str) -> list[str]:
    """The webhook paths ``member``'s kube-apiserver calls, from its configurations."""
    paths = []
    for plural in CONFIGURATIONS:
        configuration = await bench.call("GET", f"{bench.apiserver(member)}{ADMISSION}/{plural}/{CONFIGURATION_NAME}")
        paths.extend(w["clientConfig"]["service"]["path"] for w in configuration["webhooks"])
    return paths


async def _post(bench: Bench, url: str, body: bytes) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    async with bench.webhook.post(url, data=body, headers={"Content-Type": "application/json",
                                                           "Accept": "application/json"},
                                  timeout=aiohttp.ClientTimeout(total=10)) as response:
        payload = await response.read()
        elapsed = time.perf_counter() - start
    if response.status != 200:
        raise BenchError(f"POST {url}: HTTP {response.status}: {payload[:300]!r}")
    return elapsed, orjson.loads(payload)


async def _served(bench: Bench, request: DirectRequest) -> bool:
    try:
        _, review = await _post(bench, bench.instance(READER) + request.path, request.body)
    except BenchError:
        return False
    return "response" in review


async def measure_direct(bench: Bench, samples: int) -> list[DirectResult]:
    """Every path member-1's configurations register, plus the named ones the instance still serves."""
    registered = await _registered_paths(bench, READER)
    candidates = [_request_for(path, True) for path in registered]
    candidates += [_request_for(path, False) for path in NAMED_PATHS if path not in registered]
    requests = [r for r in candidates if r.registered or await _served(bench, r)]
    bench.progress(f"  direct AdmissionReview POSTs x{samples} to each of {len(requests)} paths, round-robin")
    base = bench.instance(READER)
    timings: dict[str, list[float]] = {r.path: [] for r in requests}
    for round_ in range(WARMUP + samples):
        for request in requests:
            elapsed, review = await _post(bench, base + request.path, request.body)
            if round_ == 0 and "response" not in review:
                raise BenchError(f"POST {request.path}: no AdmissionReview response: {review}")
            if round_ >= WARMUP:
                timings[request.path].append(elapsed)
    return [DirectResult(r.path, r.what, r.registered, Summary.of(timings[r.path])) for r in requests]


# --- cost on apply -------------------------------------------------------------------------------


async def _remove_webhooks(bench: Bench, member: str, removed: list[dict[str, Any]]) -> None:
    """Delete ``member``'s webhook configurations, each added to ``removed`` (as it was, minus the
    server's fields) before it is deleted, so that ``_restore`` puts back whatever went."""
    for plural in CONFIGURATIONS:
        url = f"{bench.apiserver(member)}{ADMISSION}/{plural}/{CONFIGURATION_NAME}"
        configuration = await bench.call("GET", url)
        meta = {k: v for k, v in configuration["metadata"].items() if k not in SERVER_FIELDS}
        removed.append({**configuration, "metadata": meta})
        await bench.call("DELETE", url)


async def _restore(bench: Bench, member: str, removed: list[dict[str, Any]]) -> None:
    for configuration in removed:
        plural = configuration["kind"].lower() + "s"
        await bench.call("POST", f"{bench.apiserver(member)}{ADMISSION}/{plural}", configuration, ok=(409,))


async def _wait_webhooks_gone(bench: Bench, member: str) -> None:
    """kube-apiserver drops a deleted webhook configuration asynchronously: probe until a new
    export comes back without the stamp the mutating webhook would add."""
    url = bench.apiserver(member) + objects.exports_path(objects.WEBHOOK_NAMESPACE)
    for attempt in range(100):
        name = f"probe-{attempt}"
        created = await bench.call("POST", url, objects.service_export(name, objects.WEBHOOK_NAMESPACE))
        await bench.call("DELETE", f"{url}/{name}")
        if EXPORTED_AT not in (created["metadata"].get("annotations") or {}):
            return
        await asyncio.sleep(0.1)
    raise BenchError(f"{member} still calls the webhooks 10 s after their configurations were deleted")


async def _timed_create(bench: Bench, url: str, body: dict[str, Any]) -> float:
    start = time.perf_counter()
    await bench.call("POST", url, body)
    return time.perf_counter() - start


_WEBHOOK_METRIC = re.compile(
    r'^apiserver_admission_webhook_admission_duration_seconds_(sum|count)\{[^}]*name="([^"]+)"[^}]*\} (\S+)$',
    re.MULTILINE)


async def _webhook_totals(bench: Bench, member: str) -> dict[str, tuple[int, float]]:
    """Webhook name -> (calls, seconds) as ``member``'s kube-apiserver counts them (all operations)."""
    async with bench.admin.get(bench.apiserver(member) + "/metrics") as response:
        text = await response.text()
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for kind, name, value in _WEBHOOK_METRIC.findall(text):
        totals[name][0 if kind == "count" else 1] += float(value)
    return {name: (int(count), seconds) for name, (count, seconds) in totals.items()}


async def _alternating(bench: Bench, kind: str, count: int, path: str,
                       body_of: Callable[[int], dict[str, Any]]) -> ApplyResult:
    """``count`` creates in member-1 and in member-3, alternating which goes first."""
    before = await _webhook_totals(bench, READER)
    with_webhooks: list[float] = []
    without: list[float] = []
    with_url, without_url = bench.apiserver(READER), bench.apiserver(PLAIN)
    for i in range(count):
        body = body_of(i)
        pairs = [(with_url, with_webhooks), (without_url, without)]
        for base, timings in pairs if i % 2 == 0 else reversed(pairs):
            timings.append(await _timed_create(bench, base + path, body))
    after = await _webhook_totals(bench, READER)
    calls = {name: (n - before.get(name, (0, 0.0))[0], seconds - before.get(name, (0, 0.0))[1])
             for name, (n, seconds) in after.items()}
    return ApplyResult(kind, Summary.of(with_webhooks), Summary.of(without),
                       {name: c for name, c in calls.items() if c[0]})


async def measure_apply(bench: Bench, count: int, concurrency: int) -> list[ApplyResult]:
    ns = objects.WEBHOOK_NAMESPACE
    for member in (READER, PLAIN):
        await create_many(bench, (
            (bench.apiserver(member) + objects.services_path(ns), objects.service(_name(i), ns, i))
            for i in range(count)), concurrency)
    bench.progress(f"  apply: {count} ServiceExports and {count} ClusterProperties, member-1 (webhooks) "
                   "vs member-3 (none), alternating")
    removed: list[dict[str, Any]] = []
    try:
        await _remove_webhooks(bench, PLAIN, removed)
        await _wait_webhooks_gone(bench, PLAIN)
        exports = await _alternating(bench, "ServiceExport (its webhooks called)", count,
                                     objects.exports_path(ns), lambda i: objects.service_export(_name(i), ns))
        properties = await _alternating(bench, "ClusterProperty, not well known (skipped by matchConditions)",
                                        count, objects.CLUSTER_PROPERTIES_PATH,
                                        lambda i: objects.cluster_property(_property_name(i), "benchmark"))
    finally:
        await _restore(bench, PLAIN, removed)
    return [exports, properties]


# --- report --------------------------------------------------------------------------------------


def direct_section(results: list[DirectResult]) -> Section:
    table = Section(
        "Webhooks: AdmissionReview POST straight to member-1's instance",
        ["path", "called by kube-apiserver", "request", "samples", "p50", "p99",
         f"target p99 <= {ms(DIRECT_P99_TARGET)}"],
    )
    for r in results:
        table.rows.append([f"`{r.path}`", "yes" if r.registered else "no (still served)", r.what,
                           str(r.latency.count), ms(r.latency.p50), ms(r.latency.p99),
                           table.check(f"webhook {r.path}", f"p99 {ms(r.latency.p99)}",
                                       f"p99 <= {ms(DIRECT_P99_TARGET)}", r.latency.p99 <= DIRECT_P99_TARGET)])
    table.notes.append("One keep-alive TLS connection (the instance's serving CA, no client certificate, "
                       "as kube-apiserver calls webhooks); the clock covers writing the body to reading "
                       "the whole answer. The paths are read from member-1's webhook configurations; "
                       "paths that are served but no longer registered are measured too, marked so.")
    return table


def apply_section(results: list[ApplyResult]) -> Section:
    table = Section(
        "Webhooks: cost on apply (sequential creates)",
        ["objects", "count", "with webhooks: total / p50 / p99", "without: total / p50 / p99",
         "ratio total (p50, p99)", "webhook calls as kube-apiserver times them: calls, mean",
         f"target total ratio <= {APPLY_RATIO_TARGET}"],
    )
    for r in results:
        w, wo = r.with_webhooks, r.without
        total_ratio = ratio(w.total, wo.total)
        table.rows.append([
            r.kind, str(w.count),
            f"{w.total:.2f} s / {ms(w.p50)} / {ms(w.p99)}", f"{wo.total:.2f} s / {ms(wo.p50)} / {ms(wo.p99)}",
            f"{fmt_ratio(total_ratio)} ({fmt_ratio(ratio(w.p50, wo.p50))}, {fmt_ratio(ratio(w.p99, wo.p99))})",
            "; ".join(f"{name.split('.')[1]}: {n}, {ms(seconds / n)}" for name, (n, seconds) in sorted(r.calls.items()))
            or "none",
            table.check(f"apply cost, {r.kind}", f"ratio {fmt_ratio(total_ratio)}",
                        f"<= {APPLY_RATIO_TARGET}", total_ratio <= APPLY_RATIO_TARGET),
        ])
    table.notes.append("With: member-1, whose kube-apiserver calls member-1's instance. Without: member-3 "
                       "after deleting its MutatingWebhookConfiguration and ValidatingWebhookConfiguration "
                       "`mcs-apiserver` (re-created afterwards). Each create is one POST by the same client; "
                       "totals are the sums of the per-create times. The webhook calls column comes from "
                       "member-1's `apiserver_admission_webhook_admission_duration_seconds` over the same "
                       "creates: the time kube-apiserver spends per call, against the direct figures above.")
    return table
