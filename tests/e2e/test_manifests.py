"""``manifests/`` is what a cluster admin applies: rendered by the real kustomize (kubectl kustomize)
and checked by a real kube-apiserver (server-side dry runs), with the caBundle placeholders replaced
by a real CA bundle first, as the README tells the admin to do."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import uuid
from pathlib import Path

import pytest
import yaml

from mcs_apiserver.local import cluster
from mcs_apiserver.install.run import FIELD_MANAGER
from mcs_apiserver.local.pki import LocalPKI, mcs_ca_bundle
from mcs_apiserver.server import add_arguments as add_serve_arguments
from webhooks.handlers import make_handlers

pytestmark = pytest.mark.e2e

MANIFESTS = cluster.MANIFESTS
PLACEHOLDER = "Cg=="

EXPECTED = {
    ("CustomResourceDefinition", "serviceexports.multicluster.x-k8s.io", None),
    ("CustomResourceDefinition", "clusterproperties.about.k8s.io", None),
    ("Namespace", "mcs-system", None),
    ("ServiceAccount", "mcs-apiserver", "mcs-system"),
    ("ClusterRole", "mcs-apiserver:member-reader", None),
    ("ClusterRole", "mcs-apiserver:status-writer", None),
    ("ClusterRole", "mcs-apiserver:view", None),
    ("ClusterRoleBinding", "mcs-apiserver:member-reader", None),
    ("ClusterRoleBinding", "mcs-apiserver:status-writer", None),
    ("ClusterRoleBinding", "mcs-apiserver:auth-delegator", None),
    ("RoleBinding", "mcs-apiserver:auth-reader", "kube-system"),
    ("Role", "mcs-apiserver:leader-election", "mcs-system"),
    ("RoleBinding", "mcs-apiserver:leader-election", "mcs-system"),
    ("Deployment", "mcs-apiserver", "mcs-system"),
    ("PodDisruptionBudget", "mcs-apiserver", "mcs-system"),
    ("Service", "mcs-apiserver", "mcs-system"),
    ("Service", "mcs-apiserver-dns", "mcs-system"),
    ("APIService", "v1alpha1.views.multicluster.x-k8s.io", None),
    ("MutatingWebhookConfiguration", "mcs-apiserver", None),
    ("ValidatingWebhookConfiguration", "mcs-apiserver", None),
}


def render(kubectl, directory: Path) -> list[dict]:
    out = kubectl.run("kustomize", str(directory)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} objects"
    return found[0]


def webhooks(objects: list[dict]) -> list[dict]:
    return [w for o in objects if o["kind"].endswith("WebhookConfiguration") for w in o["webhooks"]]


def ca_bundles(objects: list[dict]) -> list[str]:
    """The caBundle of every webhook, then the APIService's."""
    return [h["clientConfig"]["caBundle"] for h in webhooks(objects)] + [one(objects, "APIService")["spec"]["caBundle"]]


def resources_of(hook: dict) -> set[str]:
    return {r for rule in hook["rules"] for r in rule["resources"]}


def printed_name(obj: dict) -> str:
    """How kubectl names an object in its output: ``<kind>.<group>/<name>`` (no group for the core API)."""
    group = obj["apiVersion"].rpartition("/")[0]
    return f"{obj['kind'].lower()}{'.' + group if group else ''}/{obj['metadata']['name']}"


@pytest.fixture(scope="module")
def rendered(clusterset) -> list[dict]:
    return render(clusterset.kubectl, MANIFESTS)


@pytest.fixture
def with_ca_bundle(clusterset, tmp_path: Path) -> Path:
    """A copy of manifests/ whose every caBundle is the local serving CA's."""
    bundle = mcs_ca_bundle(LocalPKI(clusterset.state_dir / "pki"))
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    placeholder = re.compile(rf"^(\s*caBundle:) {re.escape(PLACEHOLDER)}\s*$", re.MULTILINE)
    for path in copy.rglob("*.yaml"):
        path.write_text(placeholder.sub(rf"\1 {bundle}", path.read_text()))
    objects = render(clusterset.kubectl, copy)
    assert ca_bundles(objects) == [bundle] * (len(webhooks(objects)) + 1)
    return copy


# --- rendering ------------------------------------------------------------------------------------


def test_kustomize_renders_exactly_the_objects_of_a_deployment(rendered) -> None:
    got = [(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in rendered]
    assert len(got) == len(set(got)), "an object is rendered twice"
    assert set(got) == EXPECTED


def test_every_webhook_has_no_side_effects_v1_reviews_a_short_timeout_and_a_failure_policy(rendered) -> None:
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        assert one(rendered, kind)["webhooks"], kind
    hooks = webhooks(rendered)
    assert {r for hook in hooks for r in resources_of(hook)} == {"clusterproperties", "serviceexports"}
    for hook in hooks:
        assert hook["sideEffects"] == "None", hook["name"]
        assert hook["admissionReviewVersions"] == ["v1"], hook["name"]
        assert 1 <= hook["timeoutSeconds"] <= 10, hook["name"]
        assert hook["failurePolicy"] in ("Fail", "Ignore"), hook["name"]


def test_the_cluster_property_webhooks_only_match_the_well_known_property_names(rendered) -> None:
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        assert any(resources_of(h) == {"clusterproperties"} for h in one(rendered, kind)["webhooks"]), kind
    hooks = [h for h in webhooks(rendered) if "clusterproperties" in resources_of(h)]
    for hook in hooks:
        by_name = [c for c in hook["matchConditions"] if c["expression"].startswith("request.name in ")]
        assert len(by_name) == 1, hook["name"]
        names = set(re.findall(r"'([^']+)'", by_name[0]["expression"]))
        assert names and names <= {"cluster.clusterset.k8s.io", "id.k8s.io", "clusterset.k8s.io"}
        assert "cluster.clusterset.k8s.io" in names and "id.k8s.io" in names


def test_the_cluster_property_webhooks_are_sent_only_what_they_judge(rendered) -> None:
    """Fail-safe: labels, annotations and finalizers never reach them (tests/e2e/test_hardening.py
    changes them with the instance stopped)."""
    hooks = {h["name"]: h for h in webhooks(rendered) if "clusterproperties" in resources_of(h)}
    validating = " ".join(c["expression"] for c in hooks["clusterproperties.validate.views.multicluster.x-k8s.io"]
                          ["matchConditions"])
    assert "object.?spec.?value" in validating and "oldObject.?spec.?value" in validating
    mutating = " ".join(c["expression"] for c in hooks["clusterproperties.mutate.views.multicluster.x-k8s.io"]
                        ["matchConditions"])
    assert "object.?spec.?value" in mutating


def test_every_webhook_and_the_apiservice_point_at_the_service_on_its_port(rendered) -> None:
    service = one(rendered, "Service", "mcs-apiserver")
    ports = {p["port"] for p in service["spec"]["ports"]}
    references = [h["clientConfig"]["service"] for h in webhooks(rendered)]
    references.append(one(rendered, "APIService")["spec"]["service"])
    for ref in references:
        assert (ref["namespace"], ref["name"]) == ("mcs-system", "mcs-apiserver")
        assert ref["port"] in ports
    served = set(make_handlers(None))  # type: ignore[arg-type] - the paths the instance serves
    for hook in webhooks(rendered):
        assert hook["clientConfig"]["service"]["path"] in served, hook["name"]


def test_the_service_selects_the_deployments_pods_and_targets_its_named_port(rendered) -> None:
    service = one(rendered, "Service", "mcs-apiserver")
    pod = one(rendered, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    container_ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports


def test_the_dns_service_maps_udp_and_tcp_53_to_the_port_serve_answers_dns_on(rendered) -> None:
    service = one(rendered, "Service", "mcs-apiserver-dns")
    container = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    by_name = {p["name"]: p for p in container["ports"]}
    assert sorted((p["port"], p["protocol"]) for p in service["spec"]["ports"]) == [(53, "TCP"), (53, "UDP")]
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_serve_arguments(parser)
    args = parser.parse_args(container["args"][1:])
    for port in service["spec"]["ports"]:
        target = by_name[port["targetPort"]]
        assert (target["containerPort"], target["protocol"]) == (args.dns_port, port["protocol"])
    assert args.dns_port >= 1024  # no privileged port: the pods run as non-root without capabilities
    assert one(rendered, "Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_the_deployment_runs_as_the_service_account_the_bindings_name(rendered) -> None:
    deployment = one(rendered, "Deployment")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    bindings = [o for o in rendered if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert len(bindings) == 5
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "mcs-system"}], \
            binding["metadata"]["name"]


def test_the_deployments_arguments_are_accepted_by_serve(rendered) -> None:
    # The image's entrypoint is `mcs-apiserver serve` (Containerfile): the args are its flags only.
    container = one(rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in container
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_serve_arguments(parser)
    args = parser.parse_args(container["args"])
    assert args.secure_port == container["ports"][0]["containerPort"]
    assert args.shutdown_delay_duration == 5.0


def test_the_disruption_budget_keeps_one_of_the_deployments_replicas_and_never_blocks_on_a_broken_one(rendered):
    deployment = one(rendered, "Deployment")
    budget = one(rendered, "PodDisruptionBudget")["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["minAvailable"] == 1 < deployment["spec"]["replicas"]
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_the_replicas_never_share_a_node_and_prefer_separate_zones(rendered) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]
    constraints = {c["topologyKey"]: c for c in pod["spec"]["topologySpreadConstraints"]}
    assert constraints["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert constraints["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    for constraint in constraints.values():
        assert constraint["maxSkew"] == 1
        assert constraint["labelSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]


def test_the_pods_are_cluster_critical_non_root_with_a_read_only_root_and_a_memory_tmp(rendered) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (65532, 65532)
    [container] = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    tmp = next(v for v in pod["volumes"] if v["name"] == mounts["/tmp"])
    assert tmp["emptyDir"]["medium"] == "Memory"


def test_every_ca_bundle_in_the_manifests_is_the_placeholder_to_replace(rendered) -> None:
    assert ca_bundles(rendered) == [PLACEHOLDER] * (len(webhooks(rendered)) + 1)


# --- a real kube-apiserver checks every object ----------------------------------------------------


def dry_run_lines(stdout: str) -> dict[str, str]:
    """``<kind>.<group>/<name>`` -> verb, for each ``... <verb> (server dry run)`` line."""
    lines = {}
    for line in stdout.splitlines():
        match = re.fullmatch(r"(\S+) (\S+) \(server dry run\)", line.strip())
        assert match, f"unexpected output line: {line!r}"
        lines[match.group(1)] = match.group(2)
    return lines


def test_applying_the_manifests_with_a_real_ca_bundle_is_accepted_for_every_object(kubectl, with_ca_bundle):
    # member-1 already runs the local registration of mcs-apiserver (an ExternalName Service), owned by
    # the installer's field manager; a server-side apply as that manager replaces it, as
    # moving from the local set-up to the Deployment would.
    proc = kubectl.run("apply", "--dry-run=server", "--server-side", "--force-conflicts",
                       f"--field-manager={FIELD_MANAGER}", "-k", str(with_ca_bundle), context="member-1")
    lines = dry_run_lines(proc.stdout)
    objects = render(kubectl, with_ca_bundle)
    assert set(lines) == {printed_name(o) for o in objects}
    assert set(lines.values()) == {"serverside-applied"}
    # a dry run: the local registration is still what is served
    service = kubectl.json("get", "service", "mcs-apiserver", "-n", "mcs-system", context="member-1")
    assert service["spec"]["type"] == "ExternalName"


def test_kubectl_apply_of_the_manifests_in_a_fresh_namespace_is_accepted_for_every_object(kubectl, with_ca_bundle):
    # The plain client-side `kubectl apply -k` of the README. The namespaced objects go to a namespace
    # of their own (a kustomize overlay), so that none of them merges into the local registration.
    ns = f"mcs-manifests-{uuid.uuid4().hex[:6]}"
    overlay = with_ca_bundle.parent / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["../manifests"], "namespace": ns}))
    kubectl.run("create", "namespace", ns, context="member-1")  # a dry run cannot create objects inside a new one
    try:
        proc = kubectl.run("apply", "--dry-run=server", "-k", str(overlay), context="member-1")
        lines = dry_run_lines(proc.stdout)
        objects = render(kubectl, overlay)
        assert len(objects) == len(EXPECTED)
        assert set(lines) == {printed_name(o) for o in objects}
        assert set(lines.values()) <= {"created", "configured", "unchanged"}
        assert lines["deployment.apps/mcs-apiserver"] == "created"
        assert lines["service/mcs-apiserver"] == "created"
        assert kubectl.run("get", "deployment", "mcs-apiserver", "-n", ns, context="member-1",
                           check=False).returncode != 0  # nothing was created
    finally:
        kubectl.run("delete", "namespace", ns, "--wait=false", context="member-1", check=False)


def test_a_pod_of_the_deployment_is_admitted_with_the_cluster_critical_priority(kubectl, rendered) -> None:
    # The priority class is resolved (and its use outside kube-system allowed) only when a Pod is
    # created: a server-side dry run of one Pod of the template runs that admission. In a namespace of
    # its own, with the ServiceAccount it names (the ServiceAccount admission requires it).
    template = one(rendered, "Deployment")["spec"]["template"]
    ns = f"mcs-pod-{uuid.uuid4().hex[:6]}"
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {**template["metadata"], "name": "mcs-apiserver-dry-run", "namespace": ns},
           "spec": template["spec"]}
    kubectl.run("create", "namespace", ns, context="member-1")
    try:
        kubectl.run("create", "serviceaccount", template["spec"]["serviceAccountName"], "-n", ns, context="member-1")
        created = json.loads(kubectl.run("create", "--dry-run=server", "-o", "json", "-f", "-",
                                         input=json.dumps(pod), context="member-1").stdout)
    finally:
        kubectl.run("delete", "namespace", ns, "--wait=false", context="member-1", check=False)
    assert created["spec"]["priorityClassName"] == "system-cluster-critical"
    assert created["spec"]["priority"] == 2_000_000_000
    assert created["spec"]["securityContext"]["runAsUser"] == 65532
