"""LIST and GET: our view through the aggregator against kube-apiserver serving the CRD.

Three ways to the same data, interleaved within every round (A, B, C, A, B, C, ...) so that a burst
of load on this shared machine hits all of them alike:

* ``mcs``: member-1's kube-apiserver, which proxies to member-1's instance (what kubectl does);
* ``crd``: member-2's kube-apiserver serving the N ServiceExports themselves (a CRD, from its watch
  cache), the yardstick;
* ``direct``: member-1's instance itself, with the front-proxy certificate, as the aggregator calls it.

LIST runs with ``Accept-Encoding: identity`` and with ``gzip`` (what client-go sends): kube-apiserver
compresses large responses, and on loopback compression can cost more than it saves. It also runs as a
Table (``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``, gzip), which is what ``kubectl get``
asks for: both servers then build the rows and columns themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks import objects
from benchmarks.context import (
    EXPORTER,
    EXPORTS,
    FRONT_PROXY_HEADERS,
    READER,
    VIEWS,
    Bench,
    BenchError,
    timed_get,
)
from benchmarks.report import Section
from benchmarks.stats import Summary, fmt_ratio, ms, ratio

JSON = "application/json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
#: (label in the report, Accept, Accept-Encoding) of every LIST variant.
LIST_VARIANTS = (("identity", JSON, "identity"), ("gzip", JSON, "gzip"), ("gzip, as=Table", TABLE, "gzip"))
WARMUP = 2
#: The targets: LIST p50 at most the CRD's (aiming at half); GET p99 within 1.2x of the CRD's.
LIST_TARGET, LIST_AIM, GET_TARGET = 1.0, 0.5, 1.2


@dataclass(frozen=True)
class Way:
    """One of the three ways to the data, for one request path."""

    name: str
    url: str
    direct: bool


@dataclass(frozen=True)
class Measured:
    summary: Summary
    size: int
    encoding: str  # the Content-Encoding the server answered with


@dataclass(frozen=True)
class ReadResult:
    exports: int
    accept_encoding: str
    ways: dict[str, Measured]


def _ways(bench: Bench, views_path: str, exports_path: str) -> list[Way]:
    return [
        Way("mcs", bench.apiserver(READER) + VIEWS + views_path, direct=False),
        Way("crd", bench.apiserver(EXPORTER) + EXPORTS + exports_path, direct=False),
        Way("direct", bench.instance(READER) + VIEWS + views_path, direct=True),
    ]


async def _check_counts(bench: Bench, ways: list[Way], exports: int) -> None:
    """Both sides must serve the same N objects, or the comparison means nothing."""
    for way in ways:
        session = bench.front_proxy if way.direct else bench.admin
        listing = await bench.call("GET", way.url, session=session,
                                   headers=FRONT_PROXY_HEADERS if way.direct else None)
        count = sum(1 for item in listing["items"]
                    if item["metadata"]["namespace"] in objects.SPREAD_NAMESPACES)
        if count != exports:
            raise BenchError(f"{way.name} LIST serves {count} objects, expected {exports}")


async def _interleaved(bench: Bench, ways: list[Way], variants: tuple[tuple[str, str, str], ...],
                       samples: int, exports: int) -> list[ReadResult]:
    timings: dict[tuple[str, str], list[float]] = {(v[0], w.name): [] for v in variants for w in ways}
    last: dict[tuple[str, str], tuple[int, str]] = {}
    for round_ in range(WARMUP + samples):
        for label, accept, encoding in variants:
            for way in ways:
                headers = {"Accept": accept, "Accept-Encoding": encoding}
                if way.direct:
                    headers.update(FRONT_PROXY_HEADERS)
                timed = await timed_get(bench.front_proxy if way.direct else bench.admin, way.url, headers)
                if round_ >= WARMUP:
                    timings[label, way.name].append(timed.seconds)
                last[label, way.name] = (timed.size, timed.encoding)
    return [
        ReadResult(exports, label, {
            way.name: Measured(Summary.of(timings[label, way.name]), *last[label, way.name])
            for way in ways})
        for label, _, _ in variants
    ]


async def measure_list(bench: Bench, exports: int, samples: int) -> list[ReadResult]:
    ways = _ways(bench, "/serviceimports", "/serviceexports")
    await _check_counts(bench, ways, exports)
    bench.progress(f"  LIST x{samples} each: via aggregator, CRD, direct; identity, gzip and Table, interleaved")
    return await _interleaved(bench, ways, LIST_VARIANTS, samples, exports)


async def measure_get(bench: Bench, exports: int, samples: int) -> ReadResult:
    index = exports // 2
    ns, name = objects.spread_namespace(index), objects.service_name(index)
    ways = _ways(bench, f"/namespaces/{ns}/serviceimports/{name}", f"/namespaces/{ns}/serviceexports/{name}")
    bench.progress(f"  GET x{samples} each: via aggregator, CRD, direct; interleaved")
    [result] = await _interleaved(bench, ways, (("gzip", JSON, "gzip"),), samples, exports)
    return result


def _size(measured: Measured) -> str:
    suffix = f", {measured.encoding}" if measured.encoding else ""
    return f"{measured.size / 1024:,.0f} KiB{suffix}"


def list_section(results: list[ReadResult]) -> Section:
    section = Section(
        "LIST all ServiceImports vs all ServiceExports (CRD)",
        ["exports", "Accept-Encoding (and Table)", "samples", "mcs via aggregator p50 / p99", "CRD p50 / p99",
         "ratio mcs/CRD p50 (p99)", "mcs direct p50 / p99", "aggregator hop p50",
         "body mcs / CRD (decoded)", f"target p50 ratio <= {LIST_TARGET} (aim {LIST_AIM})"],
    )
    for result in results:
        mcs, crd, direct = (result.ways[k] for k in ("mcs", "crd", "direct"))
        r50, r99 = ratio(mcs.summary.p50, crd.summary.p50), ratio(mcs.summary.p99, crd.summary.p99)
        met = section.check(f"LIST, {result.exports:,} exports, {result.accept_encoding}",
                            f"p50 ratio mcs/CRD {fmt_ratio(r50)}", f"<= {LIST_TARGET} (aim {LIST_AIM})",
                            r50 <= LIST_TARGET)
        met += "; aim met" if r50 <= LIST_AIM else "; aim not met"
        section.rows.append([
            f"{result.exports:,}", result.accept_encoding, str(mcs.summary.count),
            f"{ms(mcs.summary.p50)} / {ms(mcs.summary.p99)}", f"{ms(crd.summary.p50)} / {ms(crd.summary.p99)}",
            f"{fmt_ratio(r50)} ({fmt_ratio(r99)})", f"{ms(direct.summary.p50)} / {ms(direct.summary.p99)}",
            ms(mcs.summary.p50 - direct.summary.p50), f"{_size(mcs)} / {_size(crd)}", met,
        ])
    section.notes.append(
        "mcs: member-1's kube-apiserver proxying to member-1's instance; CRD: member-2's kube-apiserver "
        "serving the ServiceExports; direct: member-1's instance without the aggregator. Body sizes are "
        "after decoding; the encoding named is what the server chose (none: uncompressed). The aggregator "
        "hop is mcs minus direct at p50.")
    if any(r.accept_encoding == "gzip" and not r.ways["mcs"].encoding for r in results):
        section.notes.append(
            "mcs-apiserver answered `Accept-Encoding: gzip` uncompressed (kube-apiserver compresses lists "
            "above 128 KiB): free on loopback, but a larger transfer than the CRD's over a real network.")
    return section


def get_section(results: list[ReadResult]) -> Section:
    section = Section(
        "GET one ServiceImport vs one ServiceExport (CRD)",
        ["exports", "samples", "mcs via aggregator p50 / p99", "CRD p50 / p99", "ratio mcs/CRD p50 (p99)",
         "mcs direct p50 / p99", f"target p99 <= {GET_TARGET}x CRD p99"],
    )
    for result in results:
        mcs, crd, direct = (result.ways[k].summary for k in ("mcs", "crd", "direct"))
        section.rows.append([
            f"{result.exports:,}", str(mcs.count), f"{ms(mcs.p50)} / {ms(mcs.p99)}",
            f"{ms(crd.p50)} / {ms(crd.p99)}",
            f"{fmt_ratio(ratio(mcs.p50, crd.p50))} ({fmt_ratio(ratio(mcs.p99, crd.p99))})",
            f"{ms(direct.p50)} / {ms(direct.p99)}",
            section.check(f"GET, {result.exports:,} exports", f"p99 {ms(mcs.p99)} vs CRD {ms(crd.p99)}",
                          f"<= {GET_TARGET}x CRD p99", mcs.p99 <= GET_TARGET * crd.p99),
        ])
    section.notes.append("`Accept: application/json`, `Accept-Encoding: gzip` (as client-go sends; "
                         "objects this small are never compressed).")
    return section
