"""What the installer applies in each member, as a pure function of its inputs.

Identities, least privilege first: in every member, one ServiceAccount per *reading* instance
(``mcs-apiserver-reader-<reader's cluster ID>``), bound only to ``mcs-apiserver:member-reader``; its
token Secret is what that reader's members kubeconfig holds for this member. The instance's own
identity in its own cluster is the ``mcs-apiserver`` ServiceAccount of ``manifests/rbac.yaml``
(in-cluster with the ``deployment`` runtime, a token Secret with the ``local`` one): member-reader,
status-writer (ServiceExport conditions and their Events, the upstream CRD), the review delegations
and the Lease; tests/e2e/test_install.py checks that it is granted that and nothing more.
"""

from __future__ import annotations

import base64
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Object = dict[str, Any]
Runtime = Literal["deployment", "local"]
RUNTIMES: tuple[Runtime, ...] = ("deployment", "local")

NAMESPACE = "mcs-system"
SERVICE = "mcs-apiserver"
SERVICE_ACCOUNT = "mcs-apiserver"
MEMBER_READER_ROLE = "mcs-apiserver:member-reader"
SERVING_SECRET = "mcs-apiserver-serving"
MEMBERS_SECRET = "mcs-apiserver-members"
APISERVICE_NAME = "v1alpha1.views.multicluster.x-k8s.io"
CLUSTER_ID_PROPERTY = "cluster.clusterset.k8s.io"
CLUSTERSET_PROPERTY = "clusterset.k8s.io"
LABELS = {"app.kubernetes.io/name": "mcs-apiserver", "app.kubernetes.io/managed-by": "mcs-apiserver-install"}
REDACTED = "<redacted>"

#: The manifests that only make sense where the instance runs as a Deployment (a Pod selector).
DEPLOYMENT_ONLY = ("deployment.yaml", "pdb.yaml", "service.yaml", "dns.yaml")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class PlanError(ValueError):
    """The inputs cannot be installed; the message says which and what to do."""


@dataclass(frozen=True)
class Member:
    """One member cluster as the user's kubeconfig reaches it."""

    context: str
    cluster_id: str
    server: str
    #: base64 PEM of the CA that signs its kube-apiserver (kubeconfig ``certificate-authority-data``).
    ca_data: str
    #: The value of its ``cluster.clusterset.k8s.io`` today, when it has one.
    existing_id: str | None = None
    #: The value of its ``clusterset.k8s.io`` today, when it has one.
    existing_clusterset: str | None = None
    #: Where its instance listens (``local`` runtime only: the ExternalName Service's port).
    local_port: int | None = None


@dataclass(frozen=True)
class Manifests:
    """``manifests/`` read once: file name -> objects."""

    files: dict[str, list[Object]]

    @classmethod
    def read(cls, root: Path) -> Manifests:
        names = yaml.safe_load((root / "kustomization.yaml").read_text())["resources"]
        return cls({name: [d for d in yaml.safe_load_all((root / name).read_text()) if d] for name in names})

    def objects(self, *names: str) -> list[Object]:
        return [copy.deepcopy(o) for name in names for o in self.files[name]]

    def names(self) -> list[str]:
        return list(self.files)


def reader_account(reader_id: str) -> str:
    return f"mcs-apiserver-reader-{reader_id}"


def token_secret_name(account: str) -> str:
    return f"{account}-token"


def validate(members: list[Member], clusterset: str) -> None:
    """Refuse IDs that are not DNS labels, used twice in the set, or that would change a member's
    existing ID or ClusterSet (both are immutable while the member is in a ClusterSet)."""
    if not _DNS_LABEL.fullmatch(clusterset):
        raise PlanError(f"--clusterset {clusterset!r} is not a DNS label (lower case letters, digits and '-', "
                        "at most 63 characters)")
    seen: dict[str, str] = {}
    for member in members:
        cid = member.cluster_id
        if not _DNS_LABEL.fullmatch(cid):
            raise PlanError(f"cluster ID {cid!r} of context {member.context!r} is not a DNS label (lower case "
                            "letters, digits and '-', at most 63 characters); give another with "
                            f"--cluster-id {member.context}=ID")
        if cid in seen:
            raise PlanError(f"cluster ID {cid!r} is used by both {seen[cid]!r} and {member.context!r}: IDs must "
                            f"be unique in the ClusterSet; give one of them another with --cluster-id CONTEXT=ID")
        seen[cid] = member.context
        if member.existing_id is not None and member.existing_id != cid:
            raise PlanError(f"context {member.context!r} already has cluster ID {member.existing_id!r} "
                            f"({CLUSTER_ID_PROPERTY}), which cannot change: pass --cluster-id "
                            f"{member.context}={member.existing_id}, or remove the member from its ClusterSet first")
        if member.existing_clusterset is not None and member.existing_clusterset != clusterset:
            raise PlanError(f"context {member.context!r} is already in ClusterSet {member.existing_clusterset!r}; "
                            f"install with --clusterset {member.existing_clusterset}, or uninstall it with "
                            "--remove-cluster-properties first")


def _meta(name: str, namespace: str | None = None, **extra: Any) -> Object:
    meta: Object = {"name": name, "labels": dict(LABELS)}
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def token_secret(account: str) -> Object:
    """A long-lived token for ``account``, filled in by the token controller (it is reused while
    the Secret exists, so a second install changes nothing)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": _meta(token_secret_name(account), NAMESPACE,
                              annotations={"kubernetes.io/service-account.name": account})}


def reader_identity(reader_id: str) -> list[Object]:
    """The identity one reading instance has in a member: read-only, nothing else."""
    account = reader_account(reader_id)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(account, NAMESPACE)},
        token_secret(account),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": _meta(f"{MEMBER_READER_ROLE}:{reader_id}"),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": MEMBER_READER_ROLE},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]},
    ]


def kubeconfig(contexts: list[tuple[str, str, str, str]], current: str) -> Object:
    """A kubeconfig of (context name, server, CA data, token) entries: one user per context."""
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": n, "cluster": {"server": s, "certificate-authority-data": ca}} for n, s, ca, _ in contexts],
        "users": [{"name": n, "user": {"token": t}} for n, _, _, t in contexts],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n, _, _, _ in contexts],
        "current-context": current,
    }


def members_kubeconfig(reader: Member, members: list[Member], tokens: dict[tuple[str, str], str]) -> Object:
    """What ``reader``'s instance reads every member with: one context per member, named by its
    cluster ID, with the token of ``reader``'s identity there. ``tokens[(member ID, account)]``."""
    account = reader_account(reader.cluster_id)
    return kubeconfig([(m.cluster_id, m.server, m.ca_data, tokens.get((m.cluster_id, account), REDACTED))
                       for m in members], reader.cluster_id)


def secret(name: str, data: dict[str, bytes], type_: str = "Opaque") -> Object:
    return {"apiVersion": "v1", "kind": "Secret", "type": type_, "metadata": _meta(name, NAMESPACE),
            "data": {k: base64.b64encode(v).decode("ascii") for k, v in sorted(data.items())}}


def cluster_properties(cluster_id: str, clusterset: str) -> list[Object]:
    """The ID first, then the ClusterSet (KEP-2149 orders them, and the webhook enforces it)."""
    return [{"apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty", "metadata": {"name": name},
             "spec": {"value": value}}
            for name, value in ((CLUSTER_ID_PROPERTY, cluster_id), (CLUSTERSET_PROPERTY, clusterset))]


def local_service(port: int) -> Object:
    """``local`` runtime: kube-apiserver reaches the instance on ``localhost:<port>`` (with
    ServerName ``mcs-apiserver.mcs-system.svc``, which the serving certificate covers)."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(SERVICE, NAMESPACE),
            "spec": {"type": "ExternalName", "externalName": "localhost",
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}}


def registration(manifests: Manifests, ca_bundle: str, port: int | None) -> list[Object]:
    """The APIService and the webhook configurations with the caBundle filled in (and the port of
    a local instance)."""
    objects = manifests.objects("apiservice.yaml", "webhooks.yaml")
    for obj in objects:
        refs = [obj["spec"]] if obj["kind"] == "APIService" else [w["clientConfig"] for w in obj["webhooks"]]
        for ref in refs:
            ref["caBundle"] = ca_bundle
            if port is not None:
                ref["service"]["port"] = port
    return objects


@dataclass
class MemberPlan:
    """Everything one member gets, in apply order; ``registration`` last, since it makes the
    kube-apiserver call the instance."""

    member: Member
    crds: list[Object]
    access: list[Object]
    identities: list[Object]
    properties: list[Object]
    workload: list[Object]
    secrets: list[Object] = field(default_factory=list)
    registration: list[Object] = field(default_factory=list)

    def objects(self) -> list[Object]:
        return [*self.crds, *self.access, *self.identities, *self.secrets, *self.properties, *self.workload,
                *self.registration]


def plan_member(manifests: Manifests, member: Member, members: list[Member], clusterset: str,
                runtime: Runtime) -> MemberPlan:
    """Every object for ``member`` except the Secrets and the registration, which need the tokens
    and certificates (see ``complete``)."""
    access = manifests.objects("namespace.yaml", "rbac.yaml")
    identities = [o for m in members for o in reader_identity(m.cluster_id)]
    if runtime == "local":
        identities.append(token_secret(SERVICE_ACCOUNT))
        if member.local_port is None:
            raise PlanError(f"the local runtime needs the port of {member.context!r}'s instance")
        workload = [local_service(member.local_port)]
    else:
        workload = manifests.objects(*[n for n in DEPLOYMENT_ONLY if n in manifests.files])
    crd_files = [n for n in manifests.names() if n.startswith("crds/")]
    return MemberPlan(member=member, crds=manifests.objects(*crd_files), access=access, identities=identities,
                      properties=cluster_properties(member.cluster_id, clusterset), workload=workload)


def complete(plan: MemberPlan, manifests: Manifests, members: list[Member], tokens: dict[tuple[str, str], str],
             serving: ServingCert) -> None:
    """Add the Secrets (serving certificate, members kubeconfig) and the registration."""
    config = members_kubeconfig(plan.member, members, tokens)
    plan.secrets = [
        secret(SERVING_SECRET, {"tls.crt": serving.cert_pem, "tls.key": serving.key_pem, "ca.crt": serving.ca_pem},
               "kubernetes.io/tls"),
        secret(MEMBERS_SECRET, {"kubeconfig": yaml.safe_dump(config, sort_keys=False).encode()}),
    ]
    bundle = base64.b64encode(serving.ca_pem).decode("ascii")
    plan.registration = registration(manifests, bundle, plan.member.local_port)


@dataclass(frozen=True)
class ServingCert:
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes


def redact(obj: Object) -> Object:
    """A copy that is safe to print: Secret data replaced (``--dry-run``)."""
    if obj.get("kind") != "Secret" or "data" not in obj:
        return obj
    shown = copy.deepcopy(obj)
    shown["data"] = {k: REDACTED for k in shown["data"]}
    return shown


def uninstall_order(objects: list[Object]) -> list[Object]:
    """Webhooks first (a cluster is never left with a fail-closed webhook and no server), then the
    APIService, then everything else newest first. CRDs and ClusterProperties are not in it."""
    first = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService")
    head = [o for kind in first for o in objects if o["kind"] == kind]
    rest = [o for o in reversed(objects)
            if o["kind"] not in first and o["kind"] not in ("CustomResourceDefinition", "ClusterProperty")]
    return head + rest
