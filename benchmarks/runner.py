"""The order of a run: bring a ClusterSet up, measure round by round, write the report, tear down.

Rounds grow the same ClusterSet (1,000 exports, then 9,000 more for 10,000) instead of starting over:
bringing up three control planes again would cost more than it would clean. Within a round, memory is
read right after setup (before any LIST fills allocator pools), and the restarts come last, since
they disturb the aggregator. The webhook benchmarks come after every round, in namespaces of their
own, so that their objects never count in a round's LIST.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from benchmarks import (
    admission,
    machine,
    memory,
    populate,
    propagation,
    reads,
    report,
    startup,
    workloads,
)
from benchmarks.context import EXPORTER, READER, Bench, own_clusterset
from benchmarks.options import Options
from mcs_apiserver.logs import Progress

MEMBERS = 3
NODES = 2
INSTANCE = f"{READER}/mcs-apiserver"
APISERVER = f"{EXPORTER}/kube-apiserver"


@dataclass
class Results:
    setups: list[populate.SetupResult] = field(default_factory=list)
    lists: list[reads.ReadResult] = field(default_factory=list)
    gets: list[reads.ReadResult] = field(default_factory=list)
    propagations: list[propagation.PropagationResult] = field(default_factory=list)
    memories: list[memory.MemoryResult] = field(default_factory=list)
    startups: list[startup.StartupResult] = field(default_factory=list)
    direct: list[admission.DirectResult] = field(default_factory=list)
    apply: list[admission.ApplyResult] = field(default_factory=list)
    workloads: list[workloads.WorkloadResult] = field(default_factory=list)

    def sections(self, options: Options) -> list[report.Section]:
        """One table per benchmark that ran, in reading order."""
        candidates = [
            (self.setups, lambda: populate.section(self.setups, options.concurrency)),
            (self.lists, lambda: reads.list_section(self.lists)),
            (self.gets, lambda: reads.get_section(self.gets)),
            (self.propagations, lambda: propagation.section(self.propagations)),
            (self.memories, lambda: memory.section(self.memories)),
            (self.startups, lambda: startup.section(self.startups)),
            (self.direct, lambda: admission.direct_section(self.direct)),
            (self.apply, lambda: admission.apply_section(self.apply)),
            (self.workloads, lambda: workloads.section(self.workloads[0])),
        ]
        return [render() for results, render in candidates if results]


async def _round(bench: Bench, options: Options, exports: int, have: int, empty_rss: int | None,
                 results: Results) -> None:
    """Grow member-2's exports from ``have`` to ``exports`` and run the per-size benchmarks."""
    bench.progress(f"round: {exports:,} exports (creating {exports - have:,} Services and ServiceExports "
                   f"in member-2, {options.concurrency} in flight)")
    want_memory = options.wants("memory")
    apiserver_before = await memory.settled_rss(bench.pid(APISERVER)) if want_memory else 0
    services_seconds = await populate.create_services(bench, range(have, exports), options.concurrency)
    apiserver_services = await memory.settled_rss(bench.pid(APISERVER)) if want_memory else 0
    exports_seconds = await populate.create_exports(bench, range(have, exports), options.concurrency)
    served_seconds = await populate.wait_served(bench, exports)
    bench.progress(f"  created in {services_seconds + exports_seconds:.1f}s; member-1 served all "
                   f"{served_seconds:.1f}s later; waiting for the exports' status to settle")
    settled_seconds = await populate.wait_settled(bench, exports)
    results.setups.append(populate.SetupResult(exports, exports - have, services_seconds, exports_seconds,
                                              served_seconds, settled_seconds))
    memory_result = None
    if want_memory and empty_rss is not None:
        memory_result = memory.MemoryResult(
            exports=exports, created=exports - have, instance_empty=empty_rss,
            instance_synced=await memory.settled_rss(bench.pid(INSTANCE)),
            apiserver_before=apiserver_before, apiserver_with_services=apiserver_services,
            apiserver_with_exports=await memory.settled_rss(bench.pid(APISERVER)))
        results.memories.append(memory_result)
    if options.wants("list"):
        results.lists.extend(await reads.measure_list(bench, exports, options.list_samples_for(exports)))
    if options.wants("get"):
        results.gets.append(await reads.measure_get(bench, exports, options.get_samples))
    if options.wants("propagation"):
        results.propagations.append(await propagation.measure(bench, exports, options.propagation_samples))
    if options.wants("startup"):
        results.startups.append(await startup.measure(bench, exports, options.restarts))
        if memory_result is not None:
            memory_result.instance_restarted = await memory.settled_rss(bench.pid(INSTANCE))


async def _measure(bench: Bench, options: Options, members: list[str], up_seconds: float) -> Results:
    results = Results()
    if options.wants("workloads"):
        # First, while the ClusterSet is as `local up` left it (the rounds' objects come later).
        results.workloads.append(await workloads.measure(bench, options.workload_samples, up_seconds, NODES))
    await populate.create_namespaces(bench, members)
    if options.per_size:
        empty_rss = await memory.settled_rss(bench.pid(INSTANCE)) if options.wants("memory") else None
        have = 0
        for exports in options.exports:
            await _round(bench, options, exports, have, empty_rss, results)
            have = exports
    if options.wants("webhooks"):
        bench.progress(f"webhooks: {options.webhook_objects} objects")
        results.apply = await admission.measure_apply(bench, options.webhook_objects, options.concurrency)
        results.direct = await admission.measure_direct(bench, options.webhook_direct_samples)
    return results


def _command(options: Options) -> str:
    parts = ["python3 -m benchmarks"]
    if options.quick:
        parts.append("--quick")
    return " ".join(parts + [a for a in sys.argv[1:] if a != "--quick"])


async def run(options: Options) -> None:
    """The whole run; the ClusterSet is torn down whatever happens, and the report is written only
    when every selected benchmark finished."""
    progress = Progress(sys.stderr)
    started = time.monotonic()
    load_before = machine.load_average()
    async with own_clusterset("mcs-apiserver-bench-", progress, members=MEMBERS, nodes=NODES) as own:
        results = await _measure(own.bench, options, [m.name for m in own.state.members], own.up_seconds)
    minutes = (time.monotonic() - started) / 60
    header = "\n".join([
        "## Results of the last run",
        "",
        *machine.describe(),
        (f"- Command: `{_command(options)}`, {minutes:.1f} min in all (bring-up and teardown included); "
        f"load average {load_before} at the start, {machine.load_average()} at the end"),
        *(["- **`--quick` smoke run: these figures are not meaningful**"] if options.quick else []),
    ])
    report.write(options.output, header, results.sections(options))
    progress(f"wrote {options.output} ({minutes:.1f} min)")
