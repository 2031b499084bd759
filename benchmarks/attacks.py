"""Hostile clients (issue 7): memory and latency under a slow-body attack, and memory per watch.

``python3 -m benchmarks.attacks [--state-dir DIR]`` measures member-1's instance of a running local
ClusterSet (or of one it brings up and tears down itself) and rewrites the "Hostile clients" section
of BENCHMARKS.md (between its own markers, above the figures ``python3 -m benchmarks`` generates).

* **Slow bodies**: ``--connections`` TLS connections each POST an AdmissionReview of 3 MiB to a
  webhook path and send all of it but the last byte, then hold the connection. Once as a stranger
  (no client certificate: what anybody who can reach the port can do) and once with kube-apiserver's
  webhook client certificate (what only a holder of that certificate can do: it exercises the limits
  themselves). RSS of the instance is sampled every 100 ms; a normal GET (through the front-proxy
  identity, straight to the instance) is timed all along and compared with the same GET idle.
* **Watches**: ``--watches`` watches opened straight to the instance, each on its own TLS connection
  as the aggregator opens them; RSS growth per watch; then every client goes at once: the time until
  ``apiserver_registered_watchers`` is back, and the RSS after.

The attack primitives are plain functions, also used by the e2e tests (tests/e2e/test_hardening.py).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import ssl
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.machine import describe, load_average
from benchmarks.memory import rss
from benchmarks.stats import Summary, mib, ms
from mcs_apiserver.api.limits import TRIM_INTERVAL
from mcs_apiserver.local import cluster
from mcs_apiserver.local import state as statefile
from mcs_apiserver.local.cluster import UpOptions
from mcs_apiserver.logs import Progress
from mcs_apiserver.local.pki import LocalPKI

MEMBER = "member-1"
WEBHOOK = "/webhooks/admit/serviceexports"
VIEWS = "/apis/views.multicluster.x-k8s.io/v1alpha1"
BODY = 3 * 1024 * 1024
CHUNK = 64 * 1024
FRONT_PROXY = "X-Remote-User: admin\r\nX-Remote-Group: system:masters\r\n"
#: What the figures of the last run on this machine mean (kept with the code that measures them).
NOTES_SLOW_BODIES = """
Strangers get 401 as soon as their headers are in (`local up` requires kube-apiserver's webhook client
certificate), so their bodies are never buffered: the RSS barely moves. What they still cost is CPU:
150 TLS handshakes at once, plus decrypting what they keep sending until their connection is closed,
on a loop shared with the GETs; on this 2-CPU machine (the attacking client runs on it too) that burst
makes GETs 15-30x slower for about a second (the handshakes are already ECDSA; the client encrypting
450 MiB on the same CPUs is part of it). That target is not met for this case; a limit on new
connections per second would be the next step. A holder of the
certificate gets 10 bodies of 3 MiB accepted (32 MiB in flight, answered 408 after the 10 s body
timeout) and 429 for the rest: memory peaks at 1.5x idle and comes back, GETs are unaffected."""
NOTES_WATCHES = """
Per watch, most of the cost is its TLS connection (OpenSSL's record buffers and asyncio's read
buffer, reduced from 256 to 16 KiB) rather than the watch: the same watches over plain HTTP cost
about 19 KiB of Python objects each (tracemalloc). The 20 KB target is not met while every watch has
a connection of its own: serving HTTP/2, so that the aggregator multiplexes every watch over one
connection, would. After the drop the instance gives free pages back every 10 s (`malloc_trim`);
what stays is reused by the next watches (a second round of 1,000 adds nothing)."""
BEGIN = "<!-- benchmarks.attacks: begin -->"
END = "<!-- benchmarks.attacks: end -->"


@dataclass(frozen=True)
class Target:
    """One instance: where it listens, its pid, and the client identities of the local PKI."""

    port: int
    pid: int
    pki: LocalPKI

    @classmethod
    def of(cls, state_dir: Path, member: str = MEMBER) -> Target:
        state = statefile.load(state_dir)
        if state is None:
            raise SystemExit(f"no local ClusterSet in {state_dir}")
        record = state.process(f"{member}/mcs-apiserver")
        if record is None:
            raise SystemExit(f"no mcs-apiserver for {member} in {state_dir}")
        return cls(state.member(member).mcs_port, record.pid, LocalPKI(state_dir / "pki"))

    def context(self, identity: str | None) -> ssl.SSLContext:
        """TLS to the instance as ``identity`` (a client certificate of the local PKI), or none."""
        context = ssl.create_default_context(cafile=str(self.pki.mcs_ca_cert))
        context.check_hostname = False
        if identity is not None:
            context.load_cert_chain(str(self.pki.cert(identity)), str(self.pki.key(identity)))
        return context

    def rss(self) -> int:
        return rss(self.pid)


async def _connect(target: Target, context: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", target.port, ssl=context, server_hostname="mcs-apiserver")


def _status_of(answer: bytes) -> str:
    match = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    return match.group(1).decode() if match else "closed"


async def slow_body(target: Target, context: ssl.SSLContext, hold: float) -> str:
    """One connection: POST a 3 MiB body but its last byte, hold it up to ``hold`` seconds; the
    server's answer ("401", "429", "408", ...) or "closed" / "held" (nothing within ``hold``)."""
    try:
        reader, writer = await _connect(target, context)
    except (OSError, ssl.SSLError):
        return "refused"
    try:
        writer.write(f"POST {WEBHOOK} HTTP/1.1\r\nHost: mcs\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {BODY}\r\n\r\n".encode())
        answer = asyncio.ensure_future(reader.read(200))
        sent, chunk = 0, b"x" * CHUNK
        while sent < BODY - 1 and not answer.done():
            piece = chunk[: min(CHUNK, BODY - 1 - sent)]
            writer.write(piece)
            sent += len(piece)
            try:
                await asyncio.wait_for(writer.drain(), hold)
            except (OSError, asyncio.TimeoutError):
                break
        try:
            return _status_of(await asyncio.wait_for(answer, hold))
        except asyncio.TimeoutError:
            answer.cancel()
            return "held"
    except (OSError, ssl.SSLError):
        return "closed"
    finally:
        writer.close()


async def front_proxy_get(target: Target, context: ssl.SSLContext, path: str) -> tuple[int, float]:
    """One GET as the aggregator sends it (front-proxy certificate, X-Remote-* headers), on a new
    connection; (status, seconds from connect to the whole answer)."""
    started = time.perf_counter()
    reader, writer = await _connect(target, context)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: mcs\r\n{FRONT_PROXY}Connection: close\r\n\r\n".encode())
        answer = await reader.read()
        return int(_status_of(answer)) if answer else 0, time.perf_counter() - started
    finally:
        writer.close()


async def latencies(target: Target, until: asyncio.Event | None, count: int) -> list[float]:
    """GET the ClusterSets (a small list) ``count`` times, or until ``until`` is set."""
    context = target.context("front-proxy-client")
    samples: list[float] = []
    while len(samples) < count and not (until is not None and until.is_set()):
        status, seconds = await front_proxy_get(target, context, f"{VIEWS}/clustersets")
        if status == 200:
            samples.append(seconds)
        await asyncio.sleep(0.02)
    return samples


async def open_watch(target: Target, context: ssl.SSLContext) -> asyncio.StreamWriter:
    reader, writer = await _connect(target, context)
    writer.write(f"GET {VIEWS}/serviceimports?watch=1&timeoutSeconds=900 HTTP/1.1\r\nHost: mcs\r\n"
                 f"{FRONT_PROXY}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"watch refused: {head[:100]!r}")
    return writer


async def registered_watchers(target: Target) -> float:
    """``apiserver_registered_watchers`` summed over resources (scraped as the admin)."""
    _, body = await _metrics(target)
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("apiserver_registered_watchers{"))


async def _metrics(target: Target) -> tuple[int, str]:
    reader, writer = await _connect(target, target.context("front-proxy-client"))
    try:
        writer.write(f"GET /metrics HTTP/1.1\r\nHost: mcs\r\n{FRONT_PROXY}Connection: close\r\n\r\n".encode())
        answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        body = _unchunk(body)
    return int(_status_of(answer) if answer else 0), body.decode()


def _unchunk(body: bytes) -> bytes:
    out, rest = bytearray(), body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2:]
    return bytes(out)


class RSSSampler:
    """The instance's RSS every 100 ms while running: peak and last."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, self.target.rss())
            await asyncio.sleep(0.1)

    def __enter__(self) -> RSSSampler:
        self.peak = self.target.rss()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


# --- the benchmark -----------------------------------------------------------------------------------


@dataclass
class AttackResult:
    who: str
    connections: int
    idle_rss: int
    peak_rss: int
    after_rss: int
    answers: Counter[str]
    idle: Summary
    during: Summary


@dataclass
class WatchResult:
    watches: int
    before_rss: int
    open_rss: int
    after_rss: int
    gone_seconds: float


@dataclass
class Results:
    attacks: list[AttackResult] = field(default_factory=list)
    watches: WatchResult | None = None


async def settle(seconds: float = 3.0) -> None:
    await asyncio.sleep(seconds)


async def measure_attack(target: Target, who: str, identity: str | None, connections: int,
                         hold: float) -> AttackResult:
    await settle()
    idle_rss = target.rss()
    idle = await latencies(target, None, 100)
    stop = asyncio.Event()
    with RSSSampler(target) as sampler:
        during_task = asyncio.create_task(latencies(target, stop, 10_000))
        context = target.context(identity)
        answers = Counter(await asyncio.gather(*(slow_body(target, context, hold) for _ in range(connections))))
        stop.set()
        during = await during_task
    await settle(TRIM_INTERVAL + 2)
    return AttackResult(who, connections, idle_rss, sampler.peak, target.rss(), answers,
                        Summary.of(idle), Summary.of(during or [float("nan")]))


async def measure_watches(target: Target, count: int) -> WatchResult:
    await settle()
    base = await registered_watchers(target)
    before = target.rss()
    context = target.context("front-proxy-client")
    writers = []
    for start in range(0, count, 50):
        writers += await asyncio.gather(*(open_watch(target, context) for _ in range(min(50, count - start))))
    await settle()
    opened = target.rss()
    dropped = time.perf_counter()
    for writer in writers:
        writer.transport.abort()  # the clients vanish: no more reads, no goodbye
    while await registered_watchers(target) > base:
        await asyncio.sleep(0.05)
    gone = time.perf_counter() - dropped
    await settle(TRIM_INTERVAL + 2)  # the instance gives free pages back every TRIM_INTERVAL
    return WatchResult(count, before, opened, target.rss(), gone)


def render(results: Results, command: str) -> str:
    lines = [BEGIN, "## Hostile clients (issue 7)", "",
             *describe(), f"- Command: `{command}`; load average {load_average()} at the end", "",
             "### Slow bodies", "",
             "Each connection POSTs a 3 MiB AdmissionReview but its last byte, and holds. Targets: RSS peak <= 2x "
             "idle, back within 10% after; GET p99 during the attack <= 3x idle.", "",
             "| attacker | connections | RSS idle | RSS peak | RSS after | answers | GET p50/p99 idle | GET p50/p99 during |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results.attacks:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(r.answers.items()))
        lines.append(f"| {r.who} | {r.connections} | {mib(r.idle_rss)} | {mib(r.peak_rss)} "
                     f"({r.peak_rss / r.idle_rss:.2f}x) | {mib(r.after_rss)} ({(r.after_rss / r.idle_rss - 1) * 100:+.0f}%) "
                     f"| {answers} | {ms(r.idle.p50)} / {ms(r.idle.p99)} | {ms(r.during.p50)} / {ms(r.during.p99)} "
                     f"({r.during.p99 / r.idle.p99:.1f}x) |")
    lines += [NOTES_SLOW_BODIES]
    if results.watches is not None:
        w = results.watches
        per = (w.open_rss - w.before_rss) / w.watches
        lines += ["", "### Watches", "",
                  "Watches opened straight to the instance, one TLS connection each (as the aggregator opens them); "
                  "then every client vanishes at once (TCP abort). Target: <= 20 KB per watch.", "",
                  "| watches | RSS before | RSS open | per watch | gauge back after the drop | RSS after the drop |",
                  "|---|---|---|---|---|---|",
                  f"| {w.watches} | {mib(w.before_rss)} | {mib(w.open_rss)} | {per / 1024:.1f} KiB | "
                  f"{w.gone_seconds * 1000:.0f} ms | {mib(w.after_rss)} |", NOTES_WATCHES]
    lines += ["", END]
    return "\n".join(lines)


def write(output: Path, section: str) -> None:
    """Replace this benchmark's section of ``output`` (or put it before the generated figures)."""
    from benchmarks.report import MARKER  # noqa: PLC0415

    text = output.read_text() if output.exists() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    elif MARKER in text:
        text = text.replace(MARKER, section + "\n\n" + MARKER)
    else:
        text = text + "\n" + section + "\n"
    output.write_text(text)


async def run(state_dir: Path, connections: int, watches: int, hold: float) -> Results:
    target = Target.of(state_dir)
    results = Results()
    progress = Progress(sys.stderr)
    for who, identity in (("stranger (no client certificate)", None),
                          ("stranger, again", None),
                          ("holder of the webhook client certificate", "webhook-client"),
                          ("holder of the webhook client certificate, again", "webhook-client")):
        progress(f"slow bodies: {connections} connections as {who}")
        results.attacks.append(await measure_attack(target, who, identity, connections, hold))
    progress(f"watches: {watches}")
    results.watches = await measure_watches(target, watches)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.attacks", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, help="a running local ClusterSet (default: bring one up)")
    parser.add_argument("--connections", type=int, default=150)
    parser.add_argument("--watches", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=15.0, help="seconds each attacker holds its connection")
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    args = parser.parse_args(argv)
    command = "python3 -m benchmarks.attacks " + " ".join(a for a in (argv if argv is not None else sys.argv[1:])
                                                           if not a.startswith("/tmp"))
    if args.state_dir is not None:
        results = asyncio.run(run(args.state_dir.resolve(), args.connections, args.watches, args.hold))
    else:
        with tempfile.TemporaryDirectory(prefix="mcs-apiserver-attacks-") as tmp:
            state_dir = Path(tmp) / "clusterset"
            try:
                asyncio.run(cluster.up(UpOptions(state_dir, members=3), out=sys.stderr))
                results = asyncio.run(run(state_dir, args.connections, args.watches, args.hold))
            finally:
                cluster.down(state_dir, out=sys.stderr)
    section = render(results, command.strip())
    write(args.output, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
