"""Everything a benchmark needs to reach one local ClusterSet: URLs, HTTP clients, process ids.

Three HTTP clients, each one aiohttp session with keep-alive, so that no timed request pays for a
TLS handshake:

* ``admin``: the cluster CA and the admin client certificate, to every member's kube-apiserver. The
  A/B comparisons (our view through the aggregator vs kube-apiserver's CRD) use this one client for
  both sides, with the same headers.
* ``front_proxy``: the instance's serving CA and the front-proxy client certificate, straight to an
  instance with ``X-Remote-User``/``X-Remote-Group``, as the aggregator itself calls it.
* ``webhook``: the instance's serving CA and kube-apiserver's webhook client certificate, as
  kube-apiserver calls webhooks (``local up`` requires it: ``serve --webhook-client-ca-file``).
"""

from __future__ import annotations

import contextlib
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from mcs_apiserver.local import cluster
from mcs_apiserver.local import state as statefile
from mcs_apiserver.logs import Progress
from mcs_apiserver.local.pki import LocalPKI

#: Who does what: member-1 reads the views, member-2 exports, member-3 runs without webhooks.
READER = "member-1"
EXPORTER = "member-2"
PLAIN = "member-3"

#: What the aggregator states about the admin when it proxies a request to an instance.
FRONT_PROXY_HEADERS = {"X-Remote-User": "admin", "X-Remote-Group": "system:masters"}

VIEWS = "/apis/views.multicluster.x-k8s.io/v1alpha1"
EXPORTS = "/apis/multicluster.x-k8s.io/v1beta1"


class BenchError(RuntimeError):
    """Something the benchmark relies on did not happen; the message says what."""


def _ssl_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def _session(context: ssl.SSLContext) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=64, keepalive_timeout=60),
        headers={"User-Agent": "mcs-apiserver-benchmarks"},
        read_bufsize=2**18,
        max_line_size=4 * 2**20,
        max_field_size=4 * 2**20,
    )


class RequestFailed(BenchError):
    def __init__(self, method: str, url: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {url}: HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
        self.status = status


@dataclass
class Bench:
    """One running local ClusterSet, as the benchmarks see it."""

    state_dir: Path
    progress: Progress
    admin: aiohttp.ClientSession
    front_proxy: aiohttp.ClientSession
    webhook: aiohttp.ClientSession

    @classmethod
    def open(cls, state_dir: Path, progress: Progress) -> Bench:
        pki = LocalPKI(state_dir / "pki")
        return cls(
            state_dir=state_dir,
            progress=progress,
            admin=_session(_ssl_context(pki.ca_cert, pki.cert("admin"), pki.key("admin"))),
            front_proxy=_session(_ssl_context(
                pki.mcs_ca_cert, pki.cert("front-proxy-client"), pki.key("front-proxy-client"))),
            webhook=_session(_ssl_context(pki.mcs_ca_cert, pki.cert("webhook-client"), pki.key("webhook-client"))),
        )

    async def close(self) -> None:
        for session in (self.admin, self.front_proxy, self.webhook):
            await session.close()

    # --- where things are -------------------------------------------------------------------------

    def _state(self) -> statefile.LocalState:
        state = statefile.load(self.state_dir)
        if state is None:
            raise BenchError(f"no local ClusterSet in {self.state_dir}")
        return state

    def apiserver(self, member: str) -> str:
        return f"https://127.0.0.1:{self._state().member(member).apiserver_port}"

    def instance(self, member: str) -> str:
        return f"https://127.0.0.1:{self._state().member(member).mcs_port}"

    def pid(self, process: str) -> int:
        """The pid of ``member-<i>/<component>``, re-read from the state file (restarts change it)."""
        record = self._state().process(process)
        if record is None:
            raise BenchError(f"no process {process!r} in {self.state_dir}")
        return record.pid

    # --- requests -----------------------------------------------------------------------------------

    async def call(self, method: str, url: str, body: Any = None, *,
                   session: aiohttp.ClientSession | None = None,
                   headers: Mapping[str, str] | None = None, ok: tuple[int, ...] = ()) -> Any:
        """One JSON request (admin client by default); a non-2xx answer not in ``ok`` raises."""
        hdrs = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            data = orjson.dumps(body)
            hdrs["Content-Type"] = "application/json"
        async with (session or self.admin).request(method, url, data=data, headers=hdrs,
                                                   timeout=aiohttp.ClientTimeout(total=60)) as resp:
            payload = await resp.read()
            if resp.status >= 300 and resp.status not in ok:
                raise RequestFailed(method, url, resp.status, payload)
            return orjson.loads(payload) if payload and resp.status < 300 else None


@dataclass(frozen=True)
class Timed:
    seconds: float
    #: The decoded body's size, and the Content-Encoding the server chose ("" for none).
    size: int
    encoding: str


async def timed_get(session: aiohttp.ClientSession, url: str, headers: Mapping[str, str]) -> Timed:
    """One GET, timed from just before the request is written to the last byte of the body.

    That includes gzip decoding when the server compressed: what a client such as client-go waits for.
    """
    start = time.perf_counter()
    async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as resp:
        body = await resp.read()
        elapsed = time.perf_counter() - start
        if resp.status != 200:
            raise RequestFailed("GET", url, resp.status, body)
        return Timed(elapsed, len(body), resp.headers.get("Content-Encoding", ""))


@dataclass(frozen=True)
class OwnClusterSet:
    """A ClusterSet a benchmark brought up for itself (:func:`own_clusterset`)."""

    bench: Bench
    state: statefile.LocalState
    #: The temporary directory it lives in, for the benchmark's own files too.
    tmp: Path
    #: How long ``local up`` took.
    up_seconds: float


@contextlib.asynccontextmanager
async def own_clusterset(prefix: str, progress: Progress, **up: Any) -> AsyncIterator[OwnClusterSet]:
    """A local ClusterSet of the benchmark's own (``up`` are :class:`cluster.UpOptions` fields) in a
    temporary directory named ``prefix...``, with its clients open; torn down whatever happens."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        state_dir = Path(tmp) / "clusterset"
        try:
            started = time.monotonic()
            state = await cluster.up(cluster.UpOptions(state_dir, **up), out=sys.stderr)
            up_seconds = time.monotonic() - started
            bench = Bench.open(state_dir.resolve(), progress)
            try:
                yield OwnClusterSet(bench, state, Path(tmp), up_seconds)
            finally:
                await bench.close()
        finally:
            progress("tearing the ClusterSet down")
            cluster.down(state_dir, out=sys.stderr)
