"""The command line: which benchmarks, at which sizes, with how many samples.

The defaults are the full run written to BENCHMARKS.md; ``--quick`` is a smoke run (small counts,
a couple of minutes) whose figures mean little but that exercises every code path.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS = ("list", "get", "propagation", "memory", "startup", "webhooks", "workloads")
#: The benchmarks that need the N ServiceExports of a round.
PER_SIZE = ("list", "get", "propagation", "memory", "startup")
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


@dataclass(frozen=True)
class Options:
    exports: tuple[int, ...]
    only: frozenset[str]
    quick: bool
    output: Path
    #: LIST samples per variant and size; None: 30 below 10,000 exports, 15 from there on.
    list_samples: int | None
    get_samples: int
    propagation_samples: int
    restarts: int
    webhook_objects: int
    webhook_direct_samples: int
    #: Requests in flight while creating the benchmark objects.
    concurrency: int = 32
    #: Scale-ups (0 -> 3 replicas) of the workloads benchmark.
    workload_samples: int = 10

    def list_samples_for(self, exports: int) -> int:
        if self.list_samples is not None:
            return self.list_samples
        return 30 if exports < 10_000 else 15

    def wants(self, benchmark: str) -> bool:
        return benchmark in self.only

    @property
    def per_size(self) -> bool:
        return any(b in self.only for b in PER_SIZE)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--exports takes comma-separated integers, not {text!r}") from None
    if not sizes or any(size < 1 for size in sizes) or list(sizes) != sorted(set(sizes)):
        raise argparse.ArgumentTypeError("--exports takes increasing positive integers, e.g. 1000,10000")
    return sizes


def _only(text: str) -> frozenset[str]:
    chosen = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = chosen - set(BENCHMARKS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"--only takes some of {','.join(BENCHMARKS)}; unknown: {','.join(sorted(unknown)) or '(none)'}")
    return chosen


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks",
        description="Benchmark mcs-apiserver against kube-apiserver serving the same number of CRD "
                    "objects, on a local ClusterSet of its own, and write BENCHMARKS.md.",
    )
    parser.add_argument("--exports", type=_sizes, default=None,
                        help="ServiceExport counts to measure at (default 1000,10000; --quick: 200)")
    parser.add_argument("--samples", type=int, default=None,
                        help="LIST samples per variant and size (default 30, 15 at 10,000 exports and more)")
    parser.add_argument("--quick", action="store_true",
                        help="small counts for a smoke run; its figures are not meaningful")
    parser.add_argument("--only", type=_only, default=frozenset(BENCHMARKS),
                        help=f"a comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="the Markdown file to write (default: BENCHMARKS.md of the repository)")
    args = parser.parse_args(argv)
    if args.samples is not None and args.samples < 2:
        parser.error("--samples must be at least 2")
    if args.quick:
        return Options(
            exports=args.exports or (200,), only=args.only, quick=True, output=args.output,
            list_samples=args.samples or 5, get_samples=30, propagation_samples=10, restarts=1,
            webhook_objects=30, webhook_direct_samples=100, workload_samples=3,
        )
    return Options(
        exports=args.exports or (1_000, 10_000), only=args.only, quick=False, output=args.output,
        list_samples=args.samples, get_samples=200, propagation_samples=50, restarts=3,
        webhook_objects=500, webhook_direct_samples=1_000, workload_samples=10,
    )
