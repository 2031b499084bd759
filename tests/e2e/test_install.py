"""``mcs-apiserver install`` / ``uninstall`` against a local ClusterSet started without instances.

The instances then run with only the identities the installer made (ServiceAccount tokens), and the
readers' permissions are checked both ways: nothing more than ``mcs-apiserver:member-reader`` is
granted, and every rule of it is needed by a named feature.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mcs_apiserver.local import cluster
from mcs_apiserver.local.binaries import Binaries
from tests.e2e.conftest import Kubectl
from tests.e2e.helpers import eventually, service, service_export

pytestmark = pytest.mark.e2e

MEMBERS = ["member-1", "member-2"]
NAMESPACE = "mcs-system"
READER_ROLE = "mcs-apiserver:member-reader"
#: Kinds whose objects come and go by themselves (not installed by anyone).
VOLATILE = {"events", "events.events.k8s.io"}


class Installed:
    def __init__(self, state_dir: Path, kubectl: Kubectl, before: set[tuple[str, str, str]], seconds: float) -> None:
        self.state_dir = state_dir
        self.kubectl = kubectl
        self.before = before
        self.install_seconds = seconds


def mcs(state_dir: Path, *args: str, check: bool = True, runtime: str = "local") -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "mcs_apiserver", *args, "--runtime", runtime, "--state-dir", str(state_dir),
            "--kubeconfig", str(state_dir / cluster.ADMIN_KUBECONFIG), "--clusterset", "prod",
            *[a for m in MEMBERS for a in ("--context", m)]]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def everything(kubectl: Kubectl, context: str) -> set[tuple[str, str, str]]:
    """(resource, namespace, name) of every object of every listable resource type."""
    types = kubectl.run("api-resources", "--verbs=list", "-o", "name", context=context).stdout.split()
    listed = kubectl.json("get", ",".join(t for t in types if t not in VOLATILE), "-A", context=context)
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in listed["items"]}


def snapshot(kubectl: Kubectl) -> set[tuple[str, str, str]]:
    return {(m, *entry) for m in MEMBERS for entry in everything(kubectl, m)}


def settled_snapshot(kubectl: Kubectl) -> set[tuple[str, str, str]]:
    """A snapshot once the controllers are done creating their own objects (ServiceAccounts, root
    CA ConfigMaps...): the same twice in a row, two seconds apart."""
    previous = snapshot(kubectl)
    while True:
        time.sleep(2)
        current = snapshot(kubectl)
        if current == previous:
            return current
        previous = current


@pytest.fixture(scope="module")
def installed(binaries: Binaries, tmp_path_factory: pytest.TempPathFactory):
    state_dir = tmp_path_factory.mktemp("install")
    try:
        asyncio.run(cluster.up(cluster.UpOptions(state_dir=state_dir, members=len(MEMBERS), nodes=0,
                                                 clusterset="prod", instances=False)))
        kubectl = Kubectl(binaries.kubectl, state_dir / cluster.ADMIN_KUBECONFIG, tmp_path_factory.mktemp("kcache"))
        before = settled_snapshot(kubectl)
        started = time.monotonic()
        mcs(state_dir, "install", "--cluster-id", "member-1=east", "--cluster-id", "member-2=west")
        yield Installed(state_dir, kubectl, before, time.monotonic() - started)
    finally:
        cluster.down(state_dir)


def test_a_cluster_id_that_is_not_a_dns_label_is_refused_before_anything_is_applied(installed: Installed):
    proc = mcs(installed.state_dir, "install", "--dry-run", "--cluster-id", "member-1=East_1", check=False)
    assert proc.returncode == 1
    assert "cluster ID 'East_1' of context 'member-1' is not a DNS label" in proc.stderr


def test_a_cluster_id_used_twice_in_the_set_is_refused(installed: Installed):
    proc = mcs(installed.state_dir, "install", "--dry-run", "--cluster-id", "member-1=west", check=False)
    assert proc.returncode == 1
    # member-1 already has ID east: that is refused first, as it cannot change
    assert "already has cluster ID 'east'" in proc.stderr
    proc = mcs(installed.state_dir, "install", "--dry-run", "--cluster-id", "member-1=east",
               "--cluster-id", "member-2=east", check=False)
    assert proc.returncode == 1 and "cluster ID 'east' is used by both 'member-1' and 'member-2'" in proc.stderr


def test_dry_run_prints_every_object_with_secrets_redacted(installed: Installed):
    proc = mcs(installed.state_dir, "install", "--dry-run")
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    kinds = {d["kind"] for d in docs}
    assert {"APIService", "ValidatingWebhookConfiguration", "ClusterRoleBinding", "ServiceAccount",
            "ClusterProperty", "Secret"} <= kinds
    secrets = [d for d in docs if d["kind"] == "Secret" and "data" in d]
    assert secrets and all(set(d["data"].values()) == {"<redacted>"} for d in secrets)
    token = installed.kubectl.json("get", "secret", "mcs-apiserver-reader-east-token", "-n", NAMESPACE,
                                   context="member-2")["data"]["token"]
    assert token not in proc.stdout


def test_dry_run_for_real_clusters_prints_the_deployment_and_each_members_own_secrets(installed: Installed):
    proc = mcs(installed.state_dir, "install", "--dry-run", runtime="deployment")
    sections = proc.stdout.split("# --- context ")[1:]
    assert [s.split()[0] for s in sections] == MEMBERS
    for section in sections:
        docs = [d for d in yaml.safe_load_all(section.partition("\n")[2]) if d]
        kinds = {d["kind"] for d in docs}
        assert {"Deployment", "PodDisruptionBudget"} <= kinds
        service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "mcs-apiserver")
        assert "type" not in service["spec"] or service["spec"]["type"] != "ExternalName"
        assert {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"} >= {
            "mcs-apiserver-serving", "mcs-apiserver-members", "mcs-apiserver-reader-east-token",
            "mcs-apiserver-reader-west-token"}


def test_the_instances_run_with_only_tokens_the_installer_made(installed: Installed):
    for member in MEMBERS:
        files = cluster.instance_dir(installed.state_dir, cluster.statefile.load(installed.state_dir).member(member))
        for name in ("kubeconfig", "members.kubeconfig"):
            config = yaml.safe_load((files / name).read_text())
            assert all(set(u["user"]) == {"token"} for u in config["users"]), f"{member}/{name}: only tokens"
        members = yaml.safe_load((files / "members.kubeconfig").read_text())
        assert [c["name"] for c in members["contexts"]] == ["east", "west"]


def test_imports_clusterset_webhooks_and_status_conditions_work_with_the_installed_identities(installed: Installed):
    kubectl = installed.kubectl
    cset = eventually(lambda: (c := kubectl.json("get", "clusterset", "prod", context="member-1"))
                      and c["status"]["members"] and all(m["state"] == "Joined" for m in c["status"]["members"]) and c,
                      timeout=60, what="both members Joined")
    assert cset["status"]["localCluster"] == "east"
    assert sorted(m["cluster"] for m in cset["status"]["members"]) == ["east", "west"]
    kubectl.apply(service("web", "default"), context="member-2")
    kubectl.apply(service_export("web", "default"), context="member-2")
    try:
        imported = eventually(lambda: kubectl.json("get", "serviceimports", "-n", "default", context="member-1")["items"],
                              timeout=60, what="the export of west imported in east")
        assert [c["cluster"] for c in imported[0]["status"]["clusters"]] == ["west"]
        export = eventually(lambda: next((c for c in kubectl.json("get", "serviceexport", "web", "-n", "default",
                                                                  context="member-2").get("status", {}).get("conditions", [])
                                          if c["type"] == "Valid" and c["status"] == "True"), None),
                            timeout=60, what="Valid=True written by west's instance")
        assert export["reason"]
        assert "exported-at" in json.dumps(kubectl.json("get", "serviceexport", "web", "-n", "default",
                                                        context="member-2")["metadata"].get("annotations", {}))
        denied = kubectl.run("patch", "clusterproperty", "cluster.clusterset.k8s.io", "--type=merge",
                             "-p", '{"spec":{"value":"north"}}', context="member-1", check=False)
        assert denied.returncode != 0 and "denied the request" in denied.stderr
    finally:
        kubectl.run("delete", "serviceexport,service", "web", "-n", "default", context="member-2")


def can_i(kubectl: Kubectl, user: str) -> set[str]:
    out = kubectl.run("auth", "can-i", "--list", f"--as={user}", context="member-1").stdout
    return {" ".join(line.split()) for line in out.splitlines()[1:]}


def test_a_reader_is_granted_member_reader_and_nothing_more(installed: Installed):
    kubectl = installed.kubectl
    kubectl.run("create", "serviceaccount", "nobody", "-n", NAMESPACE, context="member-1")
    baseline = can_i(kubectl, f"system:serviceaccount:{NAMESPACE}:nobody")
    granted = can_i(kubectl, f"system:serviceaccount:{NAMESPACE}:mcs-apiserver-reader-west")
    expected = {"serviceexports.multicluster.x-k8s.io [] [] [get list watch]", "services [] [] [get list watch]",
                "namespaces [] [] [get list watch]", "endpointslices.discovery.k8s.io [] [] [get list watch]",
                "clusterproperties.about.k8s.io [] [] [get list watch]"}
    assert granted - baseline == expected
    kubectl.run("delete", "serviceaccount", "nobody", "-n", NAMESPACE, context="member-1")


#: Each rule of member-reader, and the feature that reads it (one list request shows it).
FEATURES = {
    "serviceexports": ("multicluster.x-k8s.io", "serviceimports: which services are exported"),
    "services": ("", "serviceimports: type, ports and ClusterSetIP"),
    "namespaces": ("", "namespace sameness: where an import appears"),
    "endpointslices": ("discovery.k8s.io", "DNS answers and ready endpoint counts"),
    "clusterproperties": ("about.k8s.io", "cluster IDs and ClusterSet membership"),
}


def test_every_rule_of_member_reader_is_needed_by_a_named_feature(installed: Installed):
    kubectl = installed.kubectl
    role = kubectl.json("get", "clusterrole", READER_ROLE, context="member-1")
    resources = sorted(r for rule in role["rules"] for r in rule["resources"])
    assert resources == sorted(FEATURES), "a rule without a named feature is a rule too many"
    user = f"system:serviceaccount:{NAMESPACE}:probe"
    broken = {}
    for resource, (group, feature) in FEATURES.items():
        rules = [{**rule, "resources": [r for r in rule["resources"] if r != resource]} for rule in role["rules"]]
        copy = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "probe-reader"}, "rules": [r for r in rules if r["resources"]]}
        binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": "probe-reader"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "probe-reader"},
                   "subjects": [{"kind": "ServiceAccount", "name": "probe", "namespace": NAMESPACE}]}
        kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": [copy, binding]}), context="member-1")
        full = f"{resource}.{group}" if group else resource
        without = kubectl.run("get", full, "-A", f"--as={user}", context="member-1", check=False)
        if without.returncode != 0 and "Forbidden" in without.stderr:
            broken[feature] = resource
    kubectl.run("delete", "clusterrolebinding,clusterrole", "probe-reader", context="member-1")
    assert broken == {feature: resource for resource, (_, feature) in FEATURES.items()}
    # and with the whole role, every one of those requests succeeds for an installed reader
    for resource, (group, _) in FEATURES.items():
        kubectl.run("get", f"{resource}.{group}" if group else resource, "-A",
                    f"--as=system:serviceaccount:{NAMESPACE}:mcs-apiserver-reader-west", context="member-1")


def resource_versions(kubectl: Kubectl) -> dict[tuple[str, str, str, str], str]:
    versions = {}
    for member in MEMBERS:
        for what, scope in (("all,secrets,serviceaccounts,roles,rolebindings,configmaps", ["-n", NAMESPACE]),
                            ("clusterroles,clusterrolebindings,apiservices,validatingwebhookconfigurations,"
                             "mutatingwebhookconfigurations,clusterproperties,crds", [])):
            for o in kubectl.json("get", what, *scope, context=member)["items"]:
                meta = o["metadata"]
                if "mcs" in meta["name"] or "multicluster" in meta["name"] or o["kind"] == "ClusterProperty" \
                        or meta.get("namespace") == NAMESPACE:
                    versions[(member, o["kind"], meta.get("namespace", ""), meta["name"])] = meta["resourceVersion"]
    return versions


def test_a_second_install_changes_nothing(installed: Installed):
    before = resource_versions(installed.kubectl)
    assert len(before) > 30
    pids = instance_pids(installed.state_dir)
    mcs(installed.state_dir, "install", "--cluster-id", "member-1=east", "--cluster-id", "member-2=west")
    after = resource_versions(installed.kubectl)
    changed = {k for k in before if after.get(k) != before[k]} | (set(after) - set(before))
    assert not changed
    assert instance_pids(installed.state_dir) == pids, "same credentials: the instances keep running"


def instance_pids(state_dir: Path) -> dict[str, int]:
    state = cluster.statefile.load(state_dir)
    return {r.name: r.pid for r in state.processes if r.name.endswith("/mcs-apiserver")}


def test_install_time_of_two_members_is_reported(installed: Installed, record_property):
    record_property("install_seconds", round(installed.install_seconds, 1))
    print(f"install into {len(MEMBERS)} members: {installed.install_seconds:.1f}s")
    assert installed.install_seconds > 0


WRITER_ROLE = "mcs-apiserver:status-writer"
INSTANCE = f"system:serviceaccount:{NAMESPACE}:mcs-apiserver"


def test_the_instance_is_granted_its_roles_and_nothing_more(installed: Installed):
    """The instance's own identity in its cluster: member-reader (the views), status-writer
    (conditions, Events, the upstream CRD) and auth-delegator (reviews), cluster-wide."""
    kubectl = installed.kubectl
    kubectl.run("create", "serviceaccount", "nobody", "-n", NAMESPACE, context="member-1")
    try:
        baseline = can_i(kubectl, f"system:serviceaccount:{NAMESPACE}:nobody")
        granted = can_i(kubectl, INSTANCE)
    finally:
        kubectl.run("delete", "serviceaccount", "nobody", "-n", NAMESPACE, context="member-1")
    reader = {"serviceexports.multicluster.x-k8s.io [] [] [get list watch]", "services [] [] [get list watch]",
              "namespaces [] [] [get list watch]", "endpointslices.discovery.k8s.io [] [] [get list watch]",
              "clusterproperties.about.k8s.io [] [] [get list watch]"}
    writer = {"serviceexports.multicluster.x-k8s.io/status [] [] [get update patch]",
              "events [] [] [create patch]",
              "customresourcedefinitions.apiextensions.k8s.io [] [serviceimports.multicluster.x-k8s.io] [get]"}
    delegator = {"tokenreviews.authentication.k8s.io [] [] [create]",
                 "subjectaccessreviews.authorization.k8s.io [] [] [create]"}
    assert granted - baseline == reader | writer | delegator


def export_events(kubectl: Kubectl, ns: str, name: str) -> list[dict]:
    selector = f"involvedObject.kind=ServiceExport,involvedObject.name={name}"
    return kubectl.json("get", "events", "-n", ns, "--field-selector", selector, context="member-1")["items"]


def conflict_status(kubectl: Kubectl, ns: str, name: str) -> str:
    export = kubectl.json("get", "serviceexport", name, "-n", ns, context="member-1")
    return next((c["status"] for c in (export.get("status") or {}).get("conditions") or []
                 if c["type"] == "Conflict"), "")


def test_the_events_rule_of_the_status_writer_is_needed_by_events_and_conditions_do_without_it(installed: Installed):
    """Named feature: Events. Without create/patch on events the instance keeps writing conditions,
    records no Event and says so once in its log; given the rule back, Events are recorded again."""
    kubectl = installed.kubectl
    role = kubectl.json("get", "clusterrole", WRITER_ROLE, context="member-1")
    events_rule = {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}
    assert events_rule in role["rules"]
    original = json.dumps({"apiVersion": role["apiVersion"], "kind": role["kind"], "metadata": {"name": WRITER_ROLE},
                           "rules": role["rules"]})
    kubectl.run("replace", "-f", "-", context="member-1", input=json.dumps(
        {**json.loads(original), "rules": [r for r in role["rules"] if r != events_rule]}))
    ns = "events-forbidden"
    record = cluster.statefile.load(installed.state_dir).process("member-1/mcs-apiserver")
    assert record is not None
    log = Path(record.log)
    log_start = log.stat().st_size
    for member in MEMBERS:
        kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}), member)
    try:
        kubectl.apply(service("api", ns, ports=[{"name": "http", "port": 80, "protocol": "TCP"}]), "member-2")
        kubectl.apply(service_export("api", ns), "member-2")
        kubectl.apply(service("api", ns, ports=[{"name": "http", "port": 8080, "protocol": "TCP"}]), "member-1")
        kubectl.apply(service_export("api", ns), "member-1")
        kubectl.apply(service_export("lonely", ns), "member-1")  # Valid=False: a second refused Event
        eventually(lambda: conflict_status(kubectl, ns, "api") == "True", timeout=60,
                   what="Conflict=True written by east's instance without the events rule")
        refusals = eventually(lambda: log.read_text()[log_start:].count("cannot record Events"), timeout=30,
                              what="the refusal in east's log")
        time.sleep(3)  # both Events were refused by now; the log says so once
        assert log.read_text()[log_start:].count("cannot record Events") == refusals == 1
        assert export_events(kubectl, ns, "api") == [] and export_events(kubectl, ns, "lonely") == []

        kubectl.run("replace", "-f", "-", context="member-1", input=original)
        kubectl.apply(service("api", ns, ports=[{"name": "http", "port": 80, "protocol": "TCP"}]), "member-1")
        normal = eventually(lambda: export_events(kubectl, ns, "api"), timeout=60,
                            what="the Normal Event once the rule is back and the conflict clears")
        assert [(e["type"], e["reason"]) for e in normal] == [("Normal", "NoConflicts")]
    finally:
        kubectl.run("replace", "-f", "-", context="member-1", input=original)
        for member in MEMBERS:
            kubectl.run("delete", "namespace", ns, "--wait=false", context=member, check=False)


def test_uninstall_removes_the_webhooks_first_and_leaves_nothing_behind(installed: Installed):
    kubectl = installed.kubectl
    proc = mcs(installed.state_dir, "uninstall", "--remove-cluster-properties")
    lines = proc.stderr
    assert "removing the webhooks, the APIService" in lines
    for member in MEMBERS:
        assert kubectl.run("get", "apiservice", "v1alpha1.views.multicluster.x-k8s.io", context=member,
                           check=False).returncode != 0
    after = settled_snapshot(kubectl)
    assert (after - installed.before, installed.before - after) == (set(), set())
