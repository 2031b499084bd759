"""``python3 -m benchmarks [--exports 1000,10000] [--samples N] [--quick] [--only list,get,...]``."""

from __future__ import annotations

import asyncio
import signal
import sys

from benchmarks import options, runner
from benchmarks.context import BenchError
from mcs_apiserver.local.cluster import LocalClusterSetError


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the ClusterSet is torn down either way."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    chosen = options.parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        asyncio.run(runner.run(chosen))
    except KeyboardInterrupt:
        print("interrupted; the ClusterSet was torn down, BENCHMARKS.md left as it was", file=sys.stderr)
        return 130
    except (BenchError, LocalClusterSetError) as error:
        print(f"error: {error}; the ClusterSet was torn down, BENCHMARKS.md left as it was", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
