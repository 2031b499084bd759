"""ServiceExport conditions as the running instances write them, and the Lease election that picks
the one writer, both against the real kube-apiservers of the session's ClusterSet."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes_asyncio.client import Configuration

from mcs_apiserver.api.store import Store, Versioner
from mcs_apiserver.writers.lease import LeaseElector
from mcs_apiserver.kube.times import format_micro_time as micro_time
from mcs_apiserver.kube.times import parse_time as parse_micro_time
from mcs_apiserver.local import cluster
from mcs_apiserver.local.pki import LocalPKI
from mcs_apiserver.kube.client import ApiError, Connection, KubeClient, connection_from_files
from mcs_apiserver.members.member import SERVICE_EXPORTS, MemberCache
from mcs_apiserver.writers.status import StatusWriter, WriterSettings
from mcs_apiserver.updater import ViewUpdater
from mcs_apiserver.views.engine import ViewEngine
from tests.e2e.helpers import eventually, namespace_in, service, service_export

pytestmark = pytest.mark.e2e

EXPORTS_API = "/apis/multicluster.x-k8s.io/v1beta1"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/mcs-system/leases"
OURS = ("Valid", "Ready", "Conflict")


# --- ServiceExport conditions, through kubectl ----------------------------------------------------


def export_of(kubectl, ns: str, name: str, context: str) -> dict:
    return kubectl.json("get", "serviceexport", name, "-n", ns, context=context)


def conditions(kubectl, ns: str, name: str, context: str) -> dict[str, dict]:
    obj = export_of(kubectl, ns, name, context)
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def settled(kubectl, ns: str, name: str, context: str, **expected: tuple[str, str]) -> dict[str, dict]:
    """Wait until each condition type has the expected (status, reason); return the conditions."""
    def probe():
        got = conditions(kubectl, ns, name, context)
        return got if all((got.get(t, {}).get("status"), got.get(t, {}).get("reason")) == v
                          for t, v in expected.items()) else None
    return eventually(probe, what=f"conditions {expected} on {context} {ns}/{name}")


def patch_status(kubectl, ns: str, name: str, context: str, conditions: list[dict]) -> None:
    kubectl.run("patch", "serviceexport", name, "-n", ns, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"conditions": conditions}}), context=context)


@pytest.fixture
def ns(kubectl):
    with namespace_in(kubectl, "status", ("member-1", "member-2")) as name:
        yield name


AUDITED = {"type": "example.com/Audited", "status": "True", "reason": "Audited",
           "message": "checked by another controller", "lastTransitionTime": "2025-01-01T00:00:00Z"}


def test_a_new_export_of_an_existing_service_becomes_valid_ready_and_conflict_free(kubectl, ns):
    kubectl.apply(service("web", ns), "member-2")
    kubectl.apply(service_export("web", ns), "member-2")
    got = settled(kubectl, ns, "web", "member-2", Valid=("True", "Valid"), Ready=("True", "Ready"),
                  Conflict=("False", "NoConflicts"))
    assert list(got) == list(OURS)
    assert all(c["lastTransitionTime"] and c["message"] for c in got.values())
    described = kubectl.run("describe", "serviceexport", "web", "-n", ns, context="member-2").stdout
    assert "NoConflicts" in described and "Valid" in described


def test_an_export_without_its_service_is_invalid_until_the_service_is_created(kubectl, ns):
    kubectl.apply(service_export("web", ns), "member-2")
    got = settled(kubectl, ns, "web", "member-2", Valid=("False", "NoService"))
    assert got["Valid"]["message"] == f"Service {ns}/web does not exist in cluster member-2"
    assert got["Ready"]["status"] == "False"

    kubectl.apply(service("web", ns), "member-2")
    settled(kubectl, ns, "web", "member-2", Valid=("True", "Valid"), Ready=("True", "Ready"))


def test_a_condition_of_another_type_written_by_someone_else_is_kept(kubectl, ns):
    kubectl.apply(service("web", ns), "member-2")
    kubectl.apply(service_export("web", ns), "member-2")
    ours = settled(kubectl, ns, "web", "member-2", Valid=("True", "Valid"))
    patch_status(kubectl, ns, "web", "member-2", [*ours.values(), AUDITED])

    kubectl.run("delete", "service", "web", "-n", ns, context="member-2")  # our conditions must change
    got = settled(kubectl, ns, "web", "member-2", Valid=("False", "NoService"))
    assert got[AUDITED["type"]] == AUDITED


def test_conditions_removed_by_someone_else_are_written_again_next_to_theirs(kubectl, ns):
    kubectl.apply(service("web", ns), "member-2")
    kubectl.apply(service_export("web", ns), "member-2")
    before = settled(kubectl, ns, "web", "member-2", Valid=("True", "Valid"), Ready=("True", "Ready"))
    patch_status(kubectl, ns, "web", "member-2", [AUDITED])

    got = settled(kubectl, ns, "web", "member-2", Valid=("True", "Valid"), Ready=("True", "Ready"))
    assert got[AUDITED["type"]] == AUDITED
    assert {t: got[t]["message"] for t in OURS} == {t: before[t]["message"] for t in OURS}


def test_conditions_are_not_rewritten_while_nothing_changes(kubectl, ns):
    kubectl.apply(service("web", ns), "member-2")
    kubectl.apply(service_export("web", ns), "member-2")
    settled(kubectl, ns, "web", "member-2", Valid=("True", "Valid"), Ready=("True", "Ready"),
            Conflict=("False", "NoConflicts"))
    first = export_of(kubectl, ns, "web", "member-2")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        now = export_of(kubectl, ns, "web", "member-2")
        assert now["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"], now["status"]
        time.sleep(0.5)


def test_the_transition_time_is_kept_when_only_the_message_changes(kubectl, ns):
    kubectl.apply(service("web", ns), "member-1")
    kubectl.apply(service_export("web", ns), "member-1")
    ready = settled(kubectl, ns, "web", "member-1", Ready=("True", "Ready"))["Ready"]
    assert ready["message"].endswith("of 1 clusters")
    time.sleep(1.1)  # a rewritten lastTransitionTime (second precision) would now differ

    kubectl.apply(service("web", ns), "member-2")
    kubectl.apply(service_export("web", ns), "member-2")

    def two_clusters():
        now = conditions(kubectl, ns, "web", "member-1")["Ready"]
        return now if now["message"].endswith("of 2 clusters") else None

    now = eventually(two_clusters, what="member-1's Ready message to count 2 clusters")
    assert now["status"] == "True"
    assert now["lastTransitionTime"] == ready["lastTransitionTime"]


# --- the status writer's own pipeline, in this process --------------------------------------------


def admin(clusterset, member: str) -> KubeClient:
    return cluster.admin_client(clusterset.state_dir, clusterset.state.member(member))


async def until(probe: Callable[[], Any], *, timeout: float = 30.0, what: str = "the condition") -> Any:
    """Poll ``probe`` (sync or async) until it returns something truthy; fail with the last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
            if asyncio.iscoroutine(last):
                last = await last
            if last:
                return last
        except (AssertionError, ApiError) as error:
            last = error
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(0.1)


class Pipeline:
    """What ``server.serve`` wires around the status writer, for member-3 alone, in this process."""

    def __init__(self, clusterset, writes_with: Any) -> None:
        self.engine = ViewEngine("member-3")
        versioner = Versioner()
        members: dict[str, MemberCache] = {}
        self.updater = ViewUpdater(self.engine, members, Store("serviceimports", versioner),
                                   Store("clustersets", versioner))
        self.cache = members["member-3"] = MemberCache("member-3", admin(clusterset, "member-3"), self.updater,
                                                      local=True)
        self.writer = StatusWriter(self.engine, self.cache, writes_with)
        self.updater.listeners.append(
            lambda keys, membership: self.writer.mark(self.cache.exports.keys() if membership else keys))
        self.writer.leadership_changed(True)
        self.tasks = [asyncio.create_task(self.writer.run())]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.cache.stop()


@pytest.fixture
async def member3_alone(clusterset) -> AsyncIterator[tuple[KubeClient, str]]:
    """member-3 without its own instance (so that only the writer under test writes), the admin of
    member-3, and a fresh namespace there."""
    client = admin(clusterset, "member-3")
    ns = f"status-writer-{secrets.token_hex(3)}"
    await asyncio.to_thread(cluster.stop_member, clusterset.state_dir, "member-3", "mcs-apiserver")
    try:
        await client.json("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
        yield client, ns
    finally:
        await client.request("DELETE", f"/api/v1/namespaces/{ns}")
        await client.close()
        await cluster.start_member(clusterset.state_dir, "member-3", "mcs-apiserver")


async def create_export(client: KubeClient, ns: str, name: str) -> None:
    await client.json("POST", f"{EXPORTS_API}/namespaces/{ns}/serviceexports", body={
        "apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport", "metadata": {"name": name}})


async def conditions_of(client: KubeClient, ns: str, name: str) -> dict[str, dict]:
    obj = await client.get(f"{EXPORTS_API}/namespaces/{ns}/serviceexports/{name}")
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


class CountedPatches:
    """The admin client, counting the successful PATCHes of each path."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.patched: dict[str, int] = {}

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        result = await self.client.json(method, path, **kwargs)
        if method == "PATCH":
            self.patched[path] = self.patched.get(path, 0) + 1
        return result


async def test_an_export_seen_before_the_local_member_finished_syncing_gets_its_conditions(clusterset, member3_alone):
    client, ns = member3_alone
    await client.json("POST", f"/api/v1/namespaces/{ns}/services", body={
        "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    await create_export(client, ns, "web")
    counted = CountedPatches(client)
    pipeline = Pipeline(clusterset, counted)
    try:
        # The ServiceExports are listed first: the export is pending while the member is not synced.
        cache, writer = pipeline.cache, pipeline.writer
        exports = next(r for r in cache.reflectors if r.resource == SERVICE_EXPORTS)
        pipeline.tasks.append(asyncio.create_task(exports.run()))
        await until(lambda: (ns, "web") in writer._pending, what="the export pending while member-3 is not synced")
        # Then the rest: the member syncs, and the marks that follow name only that same export.
        cache._tasks = [asyncio.create_task(r.run()) for r in cache.reflectors if r is not exports]

        async def written() -> dict[str, dict] | None:
            got = await conditions_of(client, ns, "web")
            return got if "Valid" in got else None

        got = await until(written, what="the export's conditions written")
        assert (got["Valid"]["status"], got["Ready"]["status"]) == ("True", "True")
        await until(lambda: (cache.exports[(ns, "web")].status or {}).get("conditions")
                    and (ns, "web") not in writer._pending, what="the write seen back by the cache")
        # computed once the views held the whole member: no interim write before the right one
        assert counted.patched[f"{EXPORTS_API}/namespaces/{ns}/serviceexports/web/status"] == 1
    finally:
        await pipeline.stop()


class GatedPatches:
    """The admin client, holding every PATCH until ``gate`` is set (as a slow API server would)."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.gate = asyncio.Event()
        self.held: list[str] = []
        self.accepted: list[tuple[str, dict]] = []  # (path, body) of every PATCH the server took

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        if method != "PATCH":
            return await self.client.json(method, path, **kwargs)
        self.held.append(path)
        await self.gate.wait()
        result = await self.client.json(method, path, **kwargs)
        self.accepted.append((path, kwargs["body"]))
        return result


async def test_a_condition_added_while_a_write_waits_its_turn_is_not_overwritten(clusterset, member3_alone):
    client, _ = member3_alone
    # Keys are written in sorted order: a namespace sorting before any other of member-3 makes ours
    # the first concurrent_writes + 1 keys, so that the last one waits for a write slot.
    ns = f"0-0-gate-{secrets.token_hex(3)}"
    await client.json("POST", "/api/v1/namespaces", body={"metadata": {"name": ns}})
    names = [f"e{i:02d}" for i in range(WriterSettings().concurrent_writes + 1)]
    for name in names:
        await create_export(client, ns, name)
    last = names[-1]
    gated = GatedPatches(client)
    pipeline = Pipeline(clusterset, gated)
    try:
        pipeline.cache.start()
        await until(lambda: len(gated.held) == WriterSettings().concurrent_writes, what="every write slot taken")
        assert sorted(gated.held) == [f"{EXPORTS_API}/namespaces/{ns}/serviceexports/{n}/status" for n in names[:-1]]
        # The last export's conditions are computed; another controller adds one before they are written.
        await client.json("PATCH", f"{EXPORTS_API}/namespaces/{ns}/serviceexports/{last}/status",
                          content_type="application/merge-patch+json", body={"status": {"conditions": [AUDITED]}})
        await until(lambda: (pipeline.cache.exports[(ns, last)].status or {}).get("conditions"),
                    what="the other controller's condition in the cache")
        gated.gate.set()

        async def written() -> dict[str, dict] | None:
            got = await conditions_of(client, ns, last)
            return got if "Valid" in got else None

        got = await until(written, what="the last export's conditions written")
        assert got.get(AUDITED["type"]) == AUDITED
        # Not even for a moment: every write the server took for it carried the other condition.
        path = f"{EXPORTS_API}/namespaces/{ns}/serviceexports/{last}/status"
        writes = [body["status"]["conditions"] for p, body in gated.accepted if p == path]
        assert writes and all(AUDITED in conditions for conditions in writes), writes
        assert (got["Valid"]["status"], got["Valid"]["reason"]) == ("False", "NoService")
        for name in names[:-1]:
            assert (await conditions_of(client, ns, name))["Valid"]["reason"] == "NoService"
    finally:
        gated.gate.set()
        await pipeline.stop()
        await client.request("DELETE", f"/api/v1/namespaces/{ns}")


# --- the Lease election ---------------------------------------------------------------------------


@pytest.fixture
async def client(clusterset) -> AsyncIterator[KubeClient]:
    c = admin(clusterset, "member-1")
    yield c
    await c.close()


@pytest.fixture
async def lease(client: KubeClient) -> AsyncIterator[str]:
    name = f"e2e-election-{secrets.token_hex(4)}"
    yield name
    await client.request("DELETE", f"{LEASES}/{name}")


class Candidate:
    """One elector running its loop, with every leadership change it reported."""

    def __init__(self, client: KubeClient, lease: str, identity: str, log: list[tuple[str, bool]] | None = None,
                 **timing: float) -> None:
        self.changes: list[bool] = []
        self.log = log if log is not None else []

        def changed(leading: bool) -> None:
            self.changes.append(leading)
            self.log.append((identity, leading))

        timing.setdefault("retry_period", 0.2)
        self.elector = LeaseElector(client, "mcs-system", lease, identity=identity, on_change=changed, **timing)
        self.task: asyncio.Task | None = None

    @property
    def leader(self) -> bool:
        return self.elector.leader

    def start(self) -> Candidate:
        self.task = asyncio.create_task(self.elector.run())
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


@contextlib.asynccontextmanager
async def candidates(*running: Candidate) -> AsyncIterator[None]:
    for c in running:
        c.start()
    try:
        yield
    finally:
        for c in running:
            await c.stop()


async def read_lease(client: KubeClient, name: str) -> dict:
    return (await client.get(f"{LEASES}/{name}"))["spec"]


async def put_lease_spec(client: KubeClient, name: str, **spec: Any) -> None:
    """Write the Lease as another (dead) holder would have left it, creating it if needed."""
    status, _, _ = await client.request("GET", f"{LEASES}/{name}")
    if status == 404:
        await client.json("POST", LEASES, body={"metadata": {"name": name}, "spec": spec})
        return
    lease = await client.get(f"{LEASES}/{name}")
    lease["spec"] = {**lease["spec"], **spec}
    await client.json("PUT", f"{LEASES}/{name}", body=lease)


def ago(seconds: float) -> str:
    return micro_time(datetime.now(timezone.utc) - timedelta(seconds=seconds))


async def test_of_two_candidates_exactly_one_leads_and_the_lease_names_it(client, lease):
    a, b = Candidate(client, lease, "a", lease_duration=4), Candidate(client, lease, "b", lease_duration=4)
    async with candidates(a, b):
        await until(lambda: a.leader or b.leader, what="a leader")
        leader, follower = (a, b) if a.leader else (b, a)
        spec = await read_lease(client, lease)
        assert spec["holderIdentity"] == leader.elector.identity
        assert spec["leaseDurationSeconds"] == 4
        assert spec["leaseTransitions"] == 0
        assert parse_micro_time(spec["acquireTime"]) <= parse_micro_time(spec["renewTime"])
        assert not follower.leader and follower.changes == []
        assert leader.changes == [True]


async def test_the_follower_does_not_take_over_while_the_leader_renews(client, lease):
    a, b = Candidate(client, lease, "a", lease_duration=2), Candidate(client, lease, "b", lease_duration=2)
    async with candidates(a, b):
        await until(lambda: a.leader or b.leader, what="a leader")
        leader, follower = (a, b) if a.leader else (b, a)
        first = parse_micro_time((await read_lease(client, lease))["renewTime"])
        # Watch the Lease through three of its own durations, renewed by the leader all along.
        while True:
            spec = await read_lease(client, lease)
            assert spec["holderIdentity"] == leader.elector.identity
            assert not follower.leader and leader.leader
            if parse_micro_time(spec["renewTime"]) - first > timedelta(seconds=3 * 2):
                break
            await asyncio.sleep(0.2)
        assert spec["leaseTransitions"] == 0
        assert follower.changes == [] and leader.changes == [True]


async def test_a_leader_that_stops_releases_the_lease_and_the_follower_takes_over_before_it_expires(client, lease):
    # A 60 s Lease: the follower can only take over within the 30 s below if the leader released it.
    a, b = Candidate(client, lease, "a", lease_duration=60), Candidate(client, lease, "b", lease_duration=60)
    async with candidates(a, b):
        await until(lambda: a.leader or b.leader, what="a leader")
        leader, follower = (a, b) if a.leader else (b, a)
        await leader.stop()
        assert leader.changes == [True, False]
        await until(lambda: follower.leader, timeout=30, what="the follower taking over")
        spec = await read_lease(client, lease)
        assert spec["holderIdentity"] == follower.elector.identity
        assert spec["leaseTransitions"] == 1
        assert spec["leaseDurationSeconds"] == 60


async def test_a_stale_lease_is_taken_over_and_counts_one_more_transition(client, lease):
    await put_lease_spec(client, lease, holderIdentity="ghost", leaseDurationSeconds=15, leaseTransitions=3,
                         acquireTime=ago(7200), renewTime=ago(3600))
    elector = LeaseElector(client, "mcs-system", lease, identity="me", lease_duration=15)
    assert await elector.try_acquire_or_renew()
    taken = await read_lease(client, lease)
    assert taken["holderIdentity"] == "me"
    assert taken["leaseTransitions"] == 4
    assert taken["acquireTime"] == taken["renewTime"]
    assert parse_micro_time(taken["renewTime"]) - parse_micro_time(ago(3600)) > timedelta(minutes=59)

    assert await elector.try_acquire_or_renew()  # renewing is no transition, and keeps the acquire time
    renewed = await read_lease(client, lease)
    assert renewed["leaseTransitions"] == 4
    assert renewed["acquireTime"] == taken["acquireTime"]
    assert parse_micro_time(renewed["renewTime"]) >= parse_micro_time(taken["renewTime"])


async def test_a_lease_renewed_by_a_live_holder_is_left_alone(client, lease):
    await put_lease_spec(client, lease, holderIdentity="alive", leaseDurationSeconds=15, leaseTransitions=0,
                         acquireTime=ago(1), renewTime=ago(1))
    before = await client.get(f"{LEASES}/{lease}")
    elector = LeaseElector(client, "mcs-system", lease, identity="me", lease_duration=15)
    assert not await elector.try_acquire_or_renew()
    after = await client.get(f"{LEASES}/{lease}")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def test_concurrent_attempts_never_both_win(clusterset, client, lease):
    clients = [admin(clusterset, "member-1") for _ in range(6)]
    electors = [LeaseElector(c, "mcs-system", lease, identity=f"e{i}", lease_duration=15)
                for i, c in enumerate(clients)]
    try:
        for round_ in range(6):
            # Round 0 races to create the Lease; every later one to take over a stale Lease.
            results = await asyncio.gather(*(e.try_acquire_or_renew() for e in electors))
            assert results.count(True) == 1, results
            winner = electors[results.index(True)]
            spec = await read_lease(client, lease)
            assert spec["holderIdentity"] == winner.identity
            assert spec["leaseTransitions"] == round_  # one transition per round: nobody won twice
            await put_lease_spec(client, lease, holderIdentity="ghost", renewTime=ago(3600))
    finally:
        for c in clients:
            await c.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.asynccontextmanager
async def tcp_listener(handle) -> AsyncIterator[int]:
    """A loopback TCP port whose connections ``handle`` gets (no HTTP is ever spoken on it)."""
    peers: set[asyncio.StreamWriter] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.add(writer)
        await handle(reader, writer)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in peers:
            writer.close()
        await server.wait_closed()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and never answer, like a peer behind a silent network partition."""
    with contextlib.suppress(Exception):
        await reader.read()
    writer.close()


@pytest.mark.parametrize("cut_off", ["refused", "silent"])
async def test_a_leader_cut_off_from_its_apiserver_steps_down_before_another_takes_over(clusterset, client, lease,
                                                                                        cut_off):
    pki = LocalPKI(clusterset.state_dir / "pki")

    def unreachable(port: int) -> KubeClient:
        return KubeClient(connection_from_files(f"https://127.0.0.1:{port}", ca_file=str(pki.ca_cert),
                                                cert_file=str(pki.cert("admin")), key_file=str(pki.key("admin"))))

    log: list[tuple[str, bool]] = []
    timing = {"lease_duration": 6, "retry_period": 0.5}  # renew deadline: 4 s
    a, b = Candidate(client, lease, "a", log, **timing), Candidate(client, lease, "b", log, **timing)
    async with contextlib.AsyncExitStack() as stack:
        port = _closed_port() if cut_off == "refused" else await stack.enter_async_context(tcp_listener(_silent))
        dead = unreachable(port)
        stack.push_async_callback(dead.close)
        await stack.enter_async_context(candidates(a))
        await until(lambda: a.leader, what="a leading")
        await stack.enter_async_context(candidates(b))
        a.elector.client = dead
        await until(lambda: b.leader, timeout=60, what="b taking over")
        assert log.index(("a", False)) < log.index(("b", True)), log
        assert not a.leader


async def test_an_elector_keeps_trying_through_connections_dropped_mid_request(client, lease):
    dropped = 0

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal dropped
        await reader.read(1)  # the request has started
        dropped += 1
        writer.close()

    async with tcp_listener(drop) as port:
        dropping = KubeClient(Connection(host=f"http://127.0.0.1:{port}", ssl_context=False,
                                         config=type.__call__(Configuration)))
        candidate = Candidate(dropping, lease, "a", retry_period=0.1)
        async with candidates(candidate):
            await until(lambda: dropped >= 3, what="several attempts, each dropped")
            assert candidate.task is not None and not candidate.task.done()
            assert not candidate.leader
            candidate.elector.client = client
            await until(lambda: candidate.leader, what="leading once the API server answers")
        await dropping.close()
