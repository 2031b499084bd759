"""Hostile or careless clients cannot hurt an instance (issue 7), one test per problem, each
reproducing the attack or the mistake against the local ClusterSet and asserting the fixed behaviour.

1. Slow bodies: memory stays bounded, strangers get 401 before anything is read, the limits answer
   429/408, and nothing about other clusters reaches an unauthenticated caller.
2. Dropped watches: unregistered at once, straight or through kube-apiserver's aggregator.
3. A stopped instance: labels and annotations of ClusterProperties still work; the break-glass
   procedure of manifests/webhooks.yaml lets a judged change through, and is undone.
4. Odd shapes: no 5xx, from a review or from an object.
5. The smaller points: list options as kube-apiserver answers them, ``?watch=t`` a watch, a member
   that comes back rejoins within seconds.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
from typing import Any

import aiohttp
import orjson
import pytest

from benchmarks.attacks import RSSSampler, Target, established, negotiated, open_watch, registered_watchers, slow_body
from mcs_apiserver.local import cluster
from mcs_apiserver.local.pki import LocalPKI
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.e2e

GROUP = "views.multicluster.x-k8s.io"
VIEWS = f"/apis/{GROUP}/v1alpha1"
MIB = 1024 * 1024
#: What 150 slow 3 MiB bodies would cost if they were buffered (the attack of issue 7).
BUFFERED_BODIES = 150 * 3 * MIB


def target(clusterset: Any, member: str = "member-1") -> Target:
    return Target.of(clusterset.state_dir, member)


# --- 1. slow bodies ------------------------------------------------------------------------------------


async def _attack(tgt: Target, identity: str | None, connections: int, hold: float) -> tuple[list[str], int]:
    context = tgt.context(identity)
    with RSSSampler(tgt) as sampler:
        answers = await asyncio.gather(*(slow_body(tgt, context, hold) for _ in range(connections)))
    return list(answers), sampler.peak


def test_slow_bodies_from_strangers_get_401_before_anything_is_read_and_memory_stays_bounded(clusterset):
    tgt = target(clusterset)
    idle = tgt.rss()
    answers, peak = asyncio.run(_attack(tgt, None, 150, hold=15))
    # "closed": the 401 closed the connection while the client was still sending, and TCP reset it
    # before the client read the answer
    assert set(answers) <= {"401", "closed"} and answers.count("401") >= 100, answers
    # before: 150 such connections took the RSS from 96 to 652 MiB (every 3 MiB body buffered), and it
    # stayed there. The 2x-idle target is measured by benchmarks/attacks.py; here, with room for a
    # loaded machine, that no body is buffered.
    assert peak < idle + BUFFERED_BODIES // 3, (peak / MIB, idle / MIB)


def test_slow_bodies_with_the_webhook_certificate_hit_the_limits_and_memory_comes_back(clusterset):
    tgt = target(clusterset)
    idle = tgt.rss()
    answers, peak = asyncio.run(_attack(tgt, "webhook-client", 150, hold=15))
    # 32 MiB of bodies in flight: 10 bodies of 3 MiB wait (then 408 at the 10 s body timeout), the
    # rest are refused at once with 429 ("closed": the refusal closed the connection while the client
    # was still sending, and TCP reset it before the client read the 429)
    assert set(answers) <= {"429", "408", "closed"}, answers
    assert answers.count("429") >= 100 and answers.count("408") >= 1
    # at most the 32 MiB of bodies in flight are held, never the 450 MiB that 150 bodies are
    assert peak < idle + BUFFERED_BODIES // 3, (peak / MIB, idle / MIB)
    # and it comes back: the instance returns free pages every 10 s (malloc_trim)
    eventually(lambda: tgt.rss() < idle + 32 * MIB, timeout=30, interval=1,
               what=f"member-1's RSS back within 32 MiB of {idle / MIB:.0f} MiB")


def test_an_unauthenticated_review_learns_nothing_about_other_clusters(clusterset):
    tgt = target(clusterset)
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u1", "kind": {"group": "multicluster.x-k8s.io", "version": "v1beta1", "kind": "ServiceExport"},
        "operation": "CREATE", "name": "web", "namespace": "default",
        "object": {"metadata": {"name": "web", "namespace": "default"}}}}

    async def post(identity: str | None) -> tuple[int, dict[str, Any]]:
        connector = aiohttp.TCPConnector(ssl=tgt.context(identity))
        async with aiohttp.ClientSession(connector=connector) as session, session.post(
                f"https://127.0.0.1:{tgt.port}/webhooks/admit/serviceexports", json=review) as response:
            return response.status, await response.json()

    status, body = asyncio.run(post(None))
    assert status == 401
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 401,
                    "reason": "Unauthorized",
                    "message": "Unauthorized: webhook calls must present a client certificate this server trusts"}
    status, body = asyncio.run(post("webhook-client"))  # kube-apiserver's certificate: a real answer
    assert status == 200 and body["response"]["uid"] == "u1"


@pytest.mark.parametrize("make", [
    pytest.param(lambda pki, local: pki.issue_client_cert(pki.new_ca("somebody-else"), common_name="admin",
                                                           organizations=["system:masters"]), id="from a wrong CA"),
    pytest.param(lambda pki, local: _expired(pki, local), id="expired, from the member's CA"),
])
def test_a_client_certificate_that_proves_nothing_gets_the_401_status_kube_apiserver_gives(clusterset, tmp_path, make):
    """The handshake accepts any client certificate and the authenticator judges it, as kube-apiserver
    does (Go's tls.RequestClientCert): the client gets the same 401 Status from both, even with
    front-proxy headers, and the connection stays usable (a health probe on it is answered)."""
    from certs import pki

    local = LocalPKI(clusterset.state_dir / "pki")
    member_ca = pki.CertKey(pki.load_certificate(local.ca_cert), _load_key(local.path("ca.key")))
    pki.write_cert_key(make(pki, member_ca), tmp_path / "c.crt", tmp_path / "c.key")
    tgt = target(clusterset)
    mcs = tgt.context(None)
    mcs.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
    kube = ssl.create_default_context(cafile=str(local.ca_cert))
    kube.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
    kube_port = clusterset.state.member("member-1").apiserver_port

    async def get(port: int, context: ssl.SSLContext) -> tuple[int, dict[str, Any], int]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=1)) as session:
            async with session.get(f"https://127.0.0.1:{port}{VIEWS}/serviceimports",
                                   headers={"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"}
                                   ) as response:
                answer = response.status, await response.json()
            async with session.get(f"https://127.0.0.1:{port}/healthz") as health:  # the same connection
                return (*answer, health.status)

    mcs_status, mcs_body, mcs_health = asyncio.run(get(tgt.port, mcs))
    kube_status, kube_body, _ = asyncio.run(get(kube_port, kube))
    assert (mcs_status, kube_status) == (401, 401)
    assert mcs_body == kube_body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                     "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    assert mcs_health == 200


def _expired(pki: Any, ca: Any) -> Any:
    """An admin certificate of the member's CA that expired an hour ago."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = pki.new_private_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=2)).not_valid_after(now - datetime.timedelta(hours=1))
            .sign(ca.key, hashes.SHA256()))
    return pki.CertKey(cert, key)


def _load_key(path: Any) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(path.read_bytes(), None)


# --- 2. dropped watches --------------------------------------------------------------------------------


def test_a_dropped_watch_is_unregistered_at_once(clusterset):
    tgt = target(clusterset)

    async def scenario() -> tuple[float, float, float]:
        base = await registered_watchers(tgt)
        context = tgt.context("front-proxy-client")
        writers = await asyncio.gather(*(open_watch(tgt, context) for _ in range(200)))
        opened = await registered_watchers(tgt)
        started = time.monotonic()
        for writer in writers:
            writer.transport.abort()  # the clients vanish; nothing will ever be written to them
        while await registered_watchers(tgt) > base and time.monotonic() - started < 30:
            await asyncio.sleep(0.05)
        return base, opened, time.monotonic() - started

    base, opened, gone = asyncio.run(scenario())
    assert opened == base + 200
    # before: the gauge stayed up until each watch's next write (75 s later still all there), and
    # each late write logged a traceback
    assert gone < 3, gone
    log = (clusterset.state_dir / "logs" / "member-1.mcs-apiserver.log").read_text()
    assert "Traceback" not in log


def test_a_watch_dropped_through_kube_apiserver_is_unregistered_at_once(clusterset):
    tgt = target(clusterset)
    base = asyncio.run(registered_watchers(tgt))
    kubectl = clusterset.kubectl
    watch = subprocess.Popen(
        [str(kubectl.binary), "--kubeconfig", str(kubectl.kubeconfig), "--context", "member-1",
         "get", "serviceimports", "-A", "-w"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: asyncio.run(registered_watchers(tgt)) > base, timeout=30, what="the watch to arrive")
    finally:
        watch.kill()
        watch.wait()
    eventually(lambda: asyncio.run(registered_watchers(tgt)) <= base, timeout=5, interval=0.05,
               what="the aggregator's dropped watch to be unregistered")


def test_watches_proxied_by_kube_apiserver_are_streams_of_one_http2_connection(clusterset):
    ours = target(clusterset)
    through = ours.through(Target.kube(clusterset.state_dir))

    async def scenario() -> tuple[str, float, float, int]:
        base = await registered_watchers(ours)
        context = through.context("admin")
        writers = await asyncio.gather(*(open_watch(through, context) for _ in range(60)))
        opened = await registered_watchers(ours)
        connections = established(ours.port)  # every client of the instance, kube-apiserver's included
        for writer in writers:
            writer.transport.abort()
        return await negotiated(ours), base, opened, connections

    alpn, base, opened, connections = asyncio.run(scenario())
    assert alpn == "h2"
    assert opened == base + 60
    # Over HTTP/1.1 the aggregator held a connection per watch: 60 and more.
    assert connections < 10, connections
    eventually(lambda: asyncio.run(registered_watchers(ours)) <= base, timeout=5, interval=0.05,
               what="the aggregator's reset streams to be unregistered")


# --- 3. a stopped instance -------------------------------------------------------------------------------


def _failure_policies(kubectl, context: str) -> dict[str, str]:
    policies = {}
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        for hook in kubectl.json("get", kind, "mcs-apiserver", context=context)["webhooks"]:
            policies[hook["name"]] = hook["failurePolicy"]
    return policies


def _break_glass(kubectl, context: str, policy: str) -> None:
    """The procedure of manifests/webhooks.yaml, word for word."""
    patch = json.dumps([{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": policy}])
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        kubectl.run("patch", kind, "mcs-apiserver", "--type=json", "-p", patch, context=context)


def test_with_the_instance_stopped_labels_still_work_and_the_break_glass_procedure_gets_a_change_through(
        clusterset, kubectl):
    context, member = "member-3", "member-3"
    policies = _failure_policies(kubectl, context)
    cluster.stop_member(clusterset.state_dir, member, "mcs-apiserver")
    try:
        # labels, annotations and finalizers are never sent to the webhooks
        kubectl.run("label", "clusterproperty", "clusterset.k8s.io", "team=blue", context=context)
        kubectl.run("annotate", "clusterproperty", "cluster.clusterset.k8s.io", "note=maintenance", context=context)
        # what the webhooks judge fails closed while the instance is down
        alias = json.dumps({"apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty",
                            "metadata": {"name": "id.k8s.io"}, "spec": {"value": member}})
        refused = kubectl.run("create", "-f", "-", input=alias, context=context, check=False)
        assert refused.returncode != 0 and "failed calling webhook" in refused.stderr, refused.stderr
        # break glass, change, restore
        _break_glass(kubectl, context, "Ignore")
        try:
            eventually(lambda: kubectl.run("create", "-f", "-", input=alias, context=context, check=False)
                       .returncode == 0, timeout=30, what="the change to go through with the webhooks on Ignore")
        finally:
            _break_glass(kubectl, context, "Fail")
        assert _failure_policies(kubectl, context) == policies
    finally:
        asyncio.run(cluster.start_member(clusterset.state_dir, member, "mcs-apiserver"))
        kubectl.run("label", "clusterproperty", "clusterset.k8s.io", "team-", context=context, check=False)
        kubectl.run("annotate", "clusterproperty", "cluster.clusterset.k8s.io", "note-", context=context,
                    check=False)
    # with the instance back, the alias (it agrees with the ID) can go again, through the webhook
    eventually(lambda: kubectl.run("delete", "clusterproperty", "id.k8s.io", context=context, check=False)
               .returncode == 0, timeout=30, what="deleting the alias once the instance is back")


# --- 4. odd shapes ----------------------------------------------------------------------------------------


def _admission_errors(clusterset, member: str = "member-1") -> float:
    tgt = target(clusterset, member)

    async def scrape() -> str:
        from benchmarks.attacks import _metrics

        return (await _metrics(tgt))[1]

    return sum(float(line.rsplit(" ", 1)[1]) for line in asyncio.run(scrape()).splitlines()
               if line.startswith("mcs_admission_duration_seconds_count{") and 'code="5' in line)


def test_a_service_export_of_the_wrong_shape_is_refused_by_the_schema_not_crashed_on_by_the_webhook(
        clusterset, kubectl):
    kubectl.run("create", "namespace", "odd-shapes", check=False)
    errors = _admission_errors(clusterset)
    odd = json.dumps({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
                      "metadata": {"name": "odd", "namespace": "odd-shapes"}, "spec": [{}]})
    # the mutating webhook sees the object before the schema validation does
    out = kubectl.run("create", "--validate=false", "-f", "-", input=odd, check=False)
    assert out.returncode != 0 and "must be of type object" in out.stderr, out.stderr
    assert _admission_errors(clusterset) == errors


def test_a_review_with_an_operation_of_the_wrong_type_is_a_400(clusterset):
    tgt = target(clusterset)
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u", "kind": {"group": "about.k8s.io", "version": "v1beta1", "kind": "ClusterProperty"},
        "operation": ["CREATE"]}}

    async def post() -> tuple[int, dict[str, Any]]:
        connector = aiohttp.TCPConnector(ssl=tgt.context("webhook-client"))
        async with aiohttp.ClientSession(connector=connector) as session, session.post(
                f"https://127.0.0.1:{tgt.port}/webhooks/validate/clusterproperties", json=review) as response:
            return response.status, await response.json()

    status, body = asyncio.run(post())
    assert status == 400 and body["reason"] == "BadRequest", body
    assert body["message"].startswith("request.operation: must be one of CREATE, UPDATE, DELETE, CONNECT")


# --- 5. the smaller points ----------------------------------------------------------------------------------


def _admin_get(clusterset, member: str, path: str) -> tuple[int, bytes]:
    pki = LocalPKI(clusterset.state_dir / "pki")
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.cert("admin")), str(pki.key("admin")))
    port = clusterset.state.member(member).apiserver_port

    async def get() -> tuple[int, bytes]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session, session.get(
                f"https://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=30)) as response:
            return response.status, await response.read()

    return asyncio.run(get())


@pytest.mark.parametrize("query", ["limit=-1", "timeoutSeconds=-1", "fieldSelector==", "limit=99999999999999999999"])
def test_list_options_are_answered_as_kube_apiserver_answers_them(clusterset, query):
    ours, _ = _admin_get(clusterset, "member-1", f"{VIEWS}/serviceimports?{query}")
    theirs, _ = _admin_get(clusterset, "member-1", f"/apis/multicluster.x-k8s.io/v1beta1/serviceexports?{query}")
    assert ours == theirs, (ours, theirs)
    assert ours == (400 if query.startswith("limit=9") else 200)


def test_watch_t_through_kube_apiserver_is_a_watch(clusterset):
    status, body = _admin_get(clusterset, "member-1", f"{VIEWS}/clustersets?watch=t&timeoutSeconds=1")
    assert status == 200
    events = [orjson.loads(line) for line in body.splitlines() if line]
    assert events and events[0]["type"] == "ADDED" and events[0]["object"]["kind"] == "ClusterSet"


def test_a_member_that_comes_back_rejoins_within_a_few_seconds(clusterset, kubectl):
    def state_of_member_3() -> str:
        obj = kubectl.json("get", "clusterset", "local", context="member-1")
        return {m["cluster"]: m["state"] for m in obj["status"]["members"]}.get("member-3", "")

    cluster.stop_member(clusterset.state_dir, "member-3", "kube-apiserver")
    try:
        eventually(lambda: state_of_member_3() == "Unreachable", timeout=60, what="member-3 Unreachable")
        time.sleep(20)  # long enough that the old backoff (capped at 15 s, x1.5 jitter) reached its cap
    finally:
        asyncio.run(cluster.start_member(clusterset.state_dir, "member-3", "kube-apiserver"))  # waits for readyz
    back = time.monotonic()
    eventually(lambda: state_of_member_3() == "Joined", timeout=60, interval=0.1, what="member-3 Joined again")
    # before: 21 s; now the retry comes at most 3 s after the member is back, plus one list
    assert time.monotonic() - back < 8
