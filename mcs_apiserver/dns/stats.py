"""DNS outcome counters and a latency histogram, kept as plain ints on the hot path and turned into
Prometheus metrics only at scrape time (a labelled prometheus-client counter costs more per query
than the whole answer)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

#: Query types with their own label; every other type counts as "other" (bounded cardinality).
TYPE_NAMES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
              28: "AAAA", 33: "SRV", 35: "NAPTR", 64: "SVCB", 65: "HTTPS", 251: "IXFR", 252: "AXFR",
              255: "ANY"}
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
               16: "BADVERS"}
#: Seconds; a prepared answer takes microseconds, a busy loop milliseconds.
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)


class DnsStats:
    def __init__(self) -> None:
        self.queries: dict[tuple[int | str, int, bool], int] = {}  # (qtype, rcode, udp) -> count
        self.truncated = 0
        self.drops: dict[str, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.tcp_connections = 0
        self.tcp_refused = 0
        self.tcp_timeouts = 0
        self.names = lambda: 0  # set by the server: how many owner names the zone holds

    def count(self, qtype: int | str, rcode: int, udp: bool, truncated: bool = False) -> None:
        key = (qtype, rcode, udp)
        self.queries[key] = self.queries.get(key, 0) + 1
        if truncated:
            self.truncated += 1

    def dropped(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    # --- prometheus_client collector ----------------------------------------------------------

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator:
        queries = CounterMetricFamily("mcs_dns_queries", "DNS queries answered, by query type, rcode and protocol.",
                                      labels=["type", "rcode", "protocol"])
        merged: dict[tuple[str, str, str], int] = {}
        for (qtype, rcode, udp), count in list(self.queries.items()):
            label = (TYPE_NAMES.get(qtype, "other") if isinstance(qtype, int) else qtype,  # type: ignore[arg-type]
                     RCODE_NAMES.get(rcode, str(rcode)), "udp" if udp else "tcp")
            merged[label] = merged.get(label, 0) + count
        for label, count in sorted(merged.items()):
            queries.add_metric(list(label), count)
        yield queries
        yield CounterMetricFamily("mcs_dns_truncated", "UDP answers sent truncated (TC) for being too long.",
                                  value=self.truncated)
        drops = CounterMetricFamily("mcs_dns_dropped", "Packets not answered: too short, or a response.",
                                    labels=["reason"])
        for reason, count in sorted(self.drops.items()):
            drops.add_metric([reason], count)
        yield drops
        cumulative, running = [], 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.buckets, strict=True):
            running += count
            cumulative.append((str(bound) if bound != float("inf") else "+Inf", running))
        yield HistogramMetricFamily("mcs_dns_query_duration_seconds",
                                    "Time from receiving a DNS query to handing its response to the kernel.",
                                    buckets=cumulative, sum_value=self.latency_sum)
        yield GaugeMetricFamily("mcs_dns_tcp_connections", "Open DNS TCP connections.", value=self.tcp_connections)
        yield CounterMetricFamily("mcs_dns_tcp_refused", "DNS TCP connections closed at once: the cap was reached.",
                                  value=self.tcp_refused)
        yield CounterMetricFamily("mcs_dns_tcp_timeouts", "DNS TCP connections closed for being idle or too slow.",
                                  value=self.tcp_timeouts)
        yield GaugeMetricFamily("mcs_dns_zone_names", "Owner names in the served zone.", value=self.names())
