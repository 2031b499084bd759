"""The installer's I/O: read the members, create the identities, apply the plan, wait, or remove it all.

Everything is applied with server-side apply under one field manager, so a second run sends the same
objects and the API server changes nothing (no resourceVersion moves); certificates and tokens are read
back and reused while valid.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

import yaml
from cryptography import x509

from certs import pki
from mcs_apiserver.logs import Progress
from mcs_apiserver.install import plan
from mcs_apiserver.install.plan import Member, Object, ServingCert
from mcs_apiserver.kube.client import ApiError, KubeClient, connection_from_kubeconfig

FIELD_MANAGER = "mcs-apiserver-install"
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
#: A serving certificate closer than this to its end is replaced.
RENEW_BEFORE = datetime.timedelta(days=30)
AVAILABLE_TIMEOUT = 180.0


class InstallError(RuntimeError):
    """The installer cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class Installed:
    """What a local runtime needs to run one member's instance with the installer's identities."""

    member: Member
    local_kubeconfig: Object
    members_kubeconfig: Object
    serving: ServingCert


class LocalRuntime(Protocol):
    """Runs the instances as local processes (``local up``) instead of the Deployment."""

    def port(self, context: str) -> int: ...

    def serving(self) -> ServingCert | None:
        """A serving certificate the runtime brings (the local ClusterSet's PKI), or None."""
        ...

    async def start(self, installed: list[Installed]) -> None: ...


def object_path(obj: Object) -> str:
    """``/api[s]/<group/version>/[namespaces/<ns>/]<plural>/<name>`` for the kinds the installer applies."""
    api_version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    plural = kind.lower()[:-1] + "ies" if kind.endswith("y") else kind.lower() + "s"
    scope = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
    return f"{prefix}{scope}/{plural}/{meta['name']}"


def _kubeconfig_cluster(kubeconfig: dict[str, Any], context: str, base: Path) -> tuple[str, str]:
    """(server, base64 CA) of ``context`` in a parsed kubeconfig."""
    contexts = {c["name"]: c["context"] for c in kubeconfig.get("contexts") or []}
    if context not in contexts:
        raise InstallError(f"no context {context!r} in the kubeconfig (it has: {', '.join(contexts) or 'none'})")
    clusters = {c["name"]: c["cluster"] for c in kubeconfig.get("clusters") or []}
    cluster = clusters.get(contexts[context].get("cluster", ""))
    if cluster is None:
        raise InstallError(f"context {context!r} names a cluster the kubeconfig does not have")
    ca = cluster.get("certificate-authority-data")
    if ca is None and cluster.get("certificate-authority"):
        ca_path = Path(cluster["certificate-authority"])
        ca = base64.b64encode((base / ca_path if not ca_path.is_absolute() else ca_path).read_bytes()).decode()
    if ca is None:
        raise InstallError(f"context {context!r}: the instances need the cluster's CA; its kubeconfig entry has "
                           "no certificate-authority(-data)")
    return cluster["server"], ca


async def _get(client: KubeClient, path: str) -> Object | None:
    try:
        return await client.get(path)
    except ApiError as error:
        if error.code == 404:
            return None
        raise


async def _property(client: KubeClient, name: str) -> str | None:
    obj = await _get(client, f"/apis/about.k8s.io/v1beta1/clusterproperties/{name}")
    return obj["spec"]["value"] if obj else None


async def connect(kubeconfig_path: Path, contexts: list[str], cluster_ids: dict[str, str],
                  runtime: LocalRuntime | None) -> tuple[list[Member], dict[str, KubeClient]]:
    """The members as the user's kubeconfig reaches them, with their current cluster IDs (the
    ``--cluster-id`` given, else the one they have, else the kube-system namespace UID)."""
    if not contexts:
        raise InstallError("name the member clusters with --context (once per member)")
    if len(set(contexts)) != len(contexts):
        raise InstallError("a --context is given twice")
    unknown = set(cluster_ids) - set(contexts)
    if unknown:
        raise InstallError(f"--cluster-id names contexts that are not members: {', '.join(sorted(unknown))}")
    try:
        parsed = yaml.safe_load(kubeconfig_path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise InstallError(f"cannot read the kubeconfig {kubeconfig_path} ({error}); give it with --kubeconfig FILE") from None
    members, clients = [], {}
    try:
        for context in contexts:
            server, ca = _kubeconfig_cluster(parsed, context, kubeconfig_path.parent)
            client = KubeClient(await connection_from_kubeconfig(str(kubeconfig_path), context),
                                user_agent=FIELD_MANAGER)
            clients[context] = client
            existing_id = await _property(client, plan.CLUSTER_ID_PROPERTY)
            existing_set = await _property(client, plan.CLUSTERSET_PROPERTY)
            cluster_id = cluster_ids.get(context) or existing_id
            if cluster_id is None:
                cluster_id = (await client.get("/api/v1/namespaces/kube-system"))["metadata"]["uid"]
            members.append(Member(context=context, cluster_id=cluster_id, server=server, ca_data=ca,
                                  existing_id=existing_id, existing_clusterset=existing_set,
                                  local_port=runtime.port(context) if runtime else None))
    except BaseException:
        await asyncio.gather(*(c.close() for c in clients.values()))
        raise
    return members, clients


async def apply(client: KubeClient, objects: list[Object]) -> None:
    for obj in objects:
        await client.json("PATCH", object_path(obj), params={"fieldManager": FIELD_MANAGER, "force": "true"},
                          body=obj, content_type="application/apply-patch+yaml")


async def _token(client: KubeClient, account: str, member: Member) -> str:
    """The token the token controller put in ``account``'s Secret (it takes a moment after creation)."""
    path = f"/api/v1/namespaces/{plan.NAMESPACE}/secrets/{plan.token_secret_name(account)}"
    deadline = time.monotonic() + 60
    while True:
        secret = await _get(client, path)
        token = ((secret or {}).get("data") or {}).get("token")
        if token:
            return base64.b64decode(token).decode()
        if time.monotonic() > deadline:
            raise InstallError(f"{member.context}: no token in Secret {plan.NAMESPACE}/{plan.token_secret_name(account)} "
                               "after 60s; is kube-controller-manager's serviceaccount-token controller running?")
        await asyncio.sleep(0.2)


def _still_valid(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) > RENEW_BEFORE


async def serving_cert(client: KubeClient, member: Member) -> ServingCert:
    """The serving certificate in the member's Secret while it is valid, else a new CA and certificate
    (the CA's key is not kept: a renewal makes a new pair and updates every caBundle)."""
    secret = await _get(client, f"/api/v1/namespaces/{plan.NAMESPACE}/secrets/{plan.SERVING_SECRET}")
    data = (secret or {}).get("data") or {}
    if all(k in data for k in ("tls.crt", "tls.key", "ca.crt")):
        pems = {k: base64.b64decode(data[k]) for k in ("tls.crt", "tls.key", "ca.crt")}
        try:
            if _still_valid(x509.load_pem_x509_certificate(pems["tls.crt"])):
                return ServingCert(pems["tls.crt"], pems["tls.key"], pems["ca.crt"])
        except ValueError:
            pass  # not a certificate: replaced below
    ca = pki.new_ca(f"mcs-apiserver-{member.cluster_id}-serving-ca")
    dns, ips = pki.serving_names(plan.SERVICE, plan.NAMESPACE)
    leaf = pki.issue_serving_cert(ca, common_name=f"{plan.SERVICE}.{plan.NAMESPACE}.svc", dns_names=dns,
                                  ip_addresses=ips)
    return ServingCert(leaf.cert_pem(), leaf.key_pem(), ca.cert_pem())


async def apiservice_available(client: KubeClient) -> bool:
    service = await _get(client, f"/apis/apiregistration.k8s.io/v1/apiservices/{plan.APISERVICE_NAME}")
    conditions = (service or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Available" and c["status"] == "True" for c in conditions)


async def _wait_available(clients: dict[str, KubeClient], progress: Progress, timeout: float) -> None:
    pending = set(clients)
    deadline = time.monotonic() + timeout
    while pending:
        for context in sorted(pending):
            try:
                if await apiservice_available(clients[context]):
                    pending.discard(context)
                    progress(f"{context}: APIService {plan.APISERVICE_NAME} is Available")
            except (ApiError, OSError):
                pass
        if pending and time.monotonic() > deadline:
            raise InstallError(f"APIService {plan.APISERVICE_NAME} not Available after {timeout:.0f}s in: "
                               f"{', '.join(sorted(pending))}; see `kubectl get apiservice {plan.APISERVICE_NAME} "
                               "-o yaml` (status.conditions) and the instance's logs")
        if pending:
            await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Options:
    kubeconfig: Path
    contexts: list[str]
    clusterset: str = "clusterset"
    cluster_ids: dict[str, str] | None = None
    dry_run: bool = False
    timeout: float = AVAILABLE_TIMEOUT


async def install(options: Options, runtime: LocalRuntime | None = None, out: TextIO = sys.stdout,
                  err: TextIO = sys.stderr) -> list[Installed]:
    """Install (or converge) every member; see the module docstring. With ``dry_run``, print the
    objects (Secrets redacted) and change nothing."""
    progress = Progress(err)
    manifests = plan.Manifests.read(MANIFESTS)
    members, clients = await connect(options.kubeconfig, options.contexts, options.cluster_ids or {}, runtime)
    try:
        plan.validate(members, options.clusterset)
        plans = {m.context: plan.plan_member(manifests, m, members, options.clusterset,
                                             "local" if runtime else "deployment") for m in members}
        if options.dry_run:
            for member in members:
                p = plans[member.context]
                serving = (runtime.serving() if runtime else None) or await serving_cert(clients[member.context], member)
                plan.complete(p, manifests, members, {}, serving)
                print(f"# --- context {member.context} (cluster ID {member.cluster_id})", file=out)
                print(yaml.safe_dump_all([plan.redact(o) for o in p.objects()], sort_keys=False), file=out, end="")
            return []
        for member in members:
            p, client = plans[member.context], clients[member.context]
            progress(f"{member.context}: CRDs, namespace, RBAC and {len(members)} reader identities")
            await apply(client, p.crds)
            await _wait_established(client, p.crds)
            await apply(client, p.access + p.identities)
        tokens: dict[tuple[str, str], str] = {}
        for member in members:
            accounts = [plan.reader_account(m.cluster_id) for m in members]
            if runtime:
                accounts.append(plan.SERVICE_ACCOUNT)
            for account in accounts:
                tokens[(member.cluster_id, account)] = await _token(clients[member.context], account, member)
        installed = []
        for member in members:
            p, client = plans[member.context], clients[member.context]
            serving = (runtime.serving() if runtime else None) or await serving_cert(client, member)
            plan.complete(p, manifests, members, tokens, serving)
            progress(f"{member.context}: Secrets, ClusterProperties ({plan.CLUSTER_ID_PROPERTY}={member.cluster_id}, "
                     f"{plan.CLUSTERSET_PROPERTY}={options.clusterset}) and the {'local Service' if runtime else 'Deployment'}")
            await apply(client, p.secrets + p.properties + p.workload)
            local = plan.kubeconfig([(member.cluster_id, member.server, member.ca_data,
                                      tokens.get((member.cluster_id, plan.SERVICE_ACCOUNT), ""))], member.cluster_id)
            installed.append(Installed(member, local, plan.members_kubeconfig(member, members, tokens), serving))
        if runtime:
            progress("starting the local instances")
            await runtime.start(installed)
        for member in members:
            progress(f"{member.context}: APIService and webhooks (caBundle of its serving CA)")
            await apply(clients[member.context], plans[member.context].registration)
        progress("waiting for every APIService to be Available")
        await _wait_available(clients, progress, options.timeout)
        progress(f"ClusterSet {options.clusterset!r} installed in {len(members)} members")
        return installed
    finally:
        await asyncio.gather(*(c.close() for c in clients.values()))


async def _wait_established(client: KubeClient, crds: list[Object]) -> None:
    for crd in crds:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
        deadline = time.monotonic() + 60
        while True:
            got = await _get(client, path) or {}
            if any(c["type"] == "Established" and c["status"] == "True" for c in got.get("status", {}).get("conditions", [])):
                break
            if time.monotonic() > deadline:
                raise InstallError(f"CRD {crd['metadata']['name']} not Established after 60s")
            await asyncio.sleep(0.2)


async def uninstall(options: Options, remove_cluster_properties: bool = False, runtime: LocalRuntime | None = None,
                    err: TextIO = sys.stderr) -> None:
    """Remove what ``install`` applied, webhooks first; CRDs stay (deleting them would delete every
    ServiceExport), and so do the ClusterProperties unless asked."""
    progress = Progress(err)
    manifests = plan.Manifests.read(MANIFESTS)
    members, clients = await connect(options.kubeconfig, options.contexts, options.cluster_ids or {}, runtime)

    async def remove(member: Member) -> None:
        client = clients[member.context]
        p = plan.plan_member(manifests, member, members, options.clusterset, "local" if runtime else "deployment")
        p.registration = plan.registration(manifests, "", member.local_port)
        p.secrets = [plan.secret(plan.SERVING_SECRET, {}), plan.secret(plan.MEMBERS_SECRET, {})]
        order = plan.uninstall_order(p.objects())
        progress(f"{member.context}: removing the webhooks, the APIService and {len(order) - 3} other objects")
        for obj in order:
            await _delete(client, obj)
        if remove_cluster_properties:
            for prop in reversed(p.properties):
                await _delete(client, prop)
        await _wait_gone(client, f"/api/v1/namespaces/{plan.NAMESPACE}", member, progress)

    try:
        # each member's objects in order, all members at once (each waits for its namespace to go)
        await asyncio.gather(*(remove(m) for m in members))
        progress(f"uninstalled from {len(members)} members")
    finally:
        await asyncio.gather(*(c.close() for c in clients.values()))


async def _delete(client: KubeClient, obj: Object) -> None:
    try:
        await client.json("DELETE", object_path(obj), params={"propagationPolicy": "Background"})
    except ApiError as error:
        if error.code != 404:
            raise


async def _wait_gone(client: KubeClient, path: str, member: Member, progress: Progress) -> None:
    deadline = time.monotonic() + 120
    while await _get(client, path) is not None:
        if time.monotonic() > deadline:
            raise InstallError(f"{member.context}: {path} still exists after 120s (see its status.conditions)")
        await asyncio.sleep(0.5)
    progress(f"{member.context}: namespace {plan.NAMESPACE} is gone")
