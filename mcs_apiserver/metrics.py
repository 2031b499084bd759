"""Prometheus metrics at ``/metrics``, named like kube-apiserver's where the meaning is the same.

prometheus-client does the exposition format; the registry is per server (not the global one) so
tests and several servers in one process never see each other's numbers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from prometheus_client import (PLATFORM_COLLECTOR, CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector,
                               generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mcs_apiserver.version import version_info
from mcs_apiserver.contract import MemberView


#: The labels of kube-apiserver's ``apiserver_request_total`` (with ``code``) and
#: ``apiserver_request_duration_seconds``.
REQUEST_LABELS = ["verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # process_* (CPU, memory, file descriptors, start time) and python_info, as any Python exporter
        ProcessCollector(registry=self.registry)
        self.registry.register(PLATFORM_COLLECTOR)
        build = version_info()
        Gauge("mcs_apiserver_build_info", "1, labelled with the build (as kubernetes_build_info).",
              ["version", "git_commit", "python_version"], registry=self.registry).labels(
            build["gitVersion"], build["gitCommit"], build["pythonVersion"]).set(1)
        # kube-apiserver's labels, in its order (api.app.request_labels fills them).
        self.requests = Counter(
            "apiserver_request_total", "Requests served, by verb, dry run, group, version, resource, "
            "subresource, scope, component and HTTP code.", [*REQUEST_LABELS, "code"], registry=self.registry)
        self.request_duration = Histogram(
            "apiserver_request_duration_seconds", "Request latency by verb, dry run, group, version, resource, "
            "subresource, scope and component (watches excluded).", REQUEST_LABELS, registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.watchers = Gauge("apiserver_registered_watchers", "Open watches, by resource.",
                              ["resource"], registry=self.registry)
        self.engine_runs = Histogram(
            "mcs_view_engine_run_seconds", "Time of one view engine run (member changes to new views).",
            registry=self.registry, buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))
        self.objects_changed = Counter("mcs_view_objects_changed_total",
                                       "ServiceImports added, changed or removed by the view engine.",
                                       registry=self.registry)
        self.admission = Histogram(
            "mcs_admission_duration_seconds", "Time to answer one AdmissionReview, by webhook path and HTTP code.",
            ["webhook", "code"], registry=self.registry,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1))
        self.loop_lag = Histogram(
            "mcs_event_loop_lag_seconds", "How late a 100 ms timer fires: time the event loop was busy elsewhere.",
            registry=self.registry, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))

    async def measure_loop_lag(self, interval: float = 0.1) -> None:
        """Forever: sleep ``interval`` and record how much later than asked the loop woke us."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(interval)
            self.loop_lag.observe(max(0.0, loop.time() - started - interval))

    def observe_engine_run(self, seconds: float, changed: int) -> None:
        self.engine_runs.observe(seconds)
        self.objects_changed.inc(changed)

    def add_members(self, members: Mapping[str, MemberView]) -> None:
        """Per-member gauges, read live at scrape time."""
        self.registry.register(_MemberCollector(members))

    def add_limiter(self, limiter: Any) -> None:
        """kube-apiserver's in-flight gauge and dropped-requests counter, read live from the
        ``api.limits.Limiter`` at scrape time."""
        self.registry.register(_LimiterCollector(limiter))

    async def handler(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


class _MemberCollector:
    def __init__(self, members: Mapping[str, MemberView]) -> None:
        self.members = members

    def describe(self):
        return []

    def collect(self):
        up = GaugeMetricFamily("mcs_member_up", "1 if the member's API server is reachable.", labels=["member"])
        synced = GaugeMetricFamily("mcs_member_synced", "1 once every watch of the member has listed.",
                                   labels=["member"])
        exports = GaugeMetricFamily("mcs_member_serviceexports", "ServiceExports seen in the member.",
                                    labels=["member"])
        for name, member in self.members.items():
            up.add_metric([name], 1.0 if member.status.connected else 0.0)
            synced.add_metric([name], 1.0 if member.status.synced else 0.0)
            exports.add_metric([name], float(len(member.exports)))
        yield up
        yield synced
        yield exports


class _LimiterCollector:
    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter

    def describe(self):
        return []

    def collect(self):
        limiter = self.limiter
        inflight = GaugeMetricFamily("apiserver_current_inflight_requests",
                                     "Requests being served, by kind (watches are counted apart).",
                                     labels=["request_kind"])
        inflight.add_metric(["readOnly"], float(limiter.read_only))
        inflight.add_metric(["mutating"], float(limiter.mutating))
        yield inflight
        yield GaugeMetricFamily("mcs_open_watches", "Watches open, counted against --max-watches.",
                                value=float(limiter.watches_open))
        yield GaugeMetricFamily("mcs_request_body_bytes_inflight",
                                "Body bytes reserved by requests being received (--max-request-body-bytes-inflight).",
                                value=float(limiter.body_bytes))
        dropped = CounterMetricFamily("apiserver_dropped_requests",
                                      "Requests refused by a limit (429, 408 or 413), by kind.",
                                      labels=["request_kind"])
        for kind in ("readOnly", "mutating", "watch", "body"):
            dropped.add_metric([kind], float(limiter.rejected[kind]))
        yield dropped
