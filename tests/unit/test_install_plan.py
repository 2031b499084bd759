"""The installer's plan: plain data in, the objects of each member out."""

from __future__ import annotations

import base64

import pytest
import yaml

from mcs_apiserver.install import plan
from mcs_apiserver.install.plan import Member
from mcs_apiserver.install.run import MANIFESTS, object_path

MANIFESTS_READ = plan.Manifests.read(MANIFESTS)
SERVING = plan.ServingCert(b"CERT", b"KEY", b"CA")


def member(context: str, cluster_id: str, **extra) -> Member:
    return Member(context=context, cluster_id=cluster_id, server=f"https://{context}:6443", ca_data="Q0E=", **extra)


MEMBERS = [member("a", "east"), member("b", "west")]


def test_each_member_gets_one_read_only_identity_per_reading_instance():
    p = plan.plan_member(MANIFESTS_READ, MEMBERS[0], MEMBERS, "prod", "deployment")
    accounts = [o["metadata"]["name"] for o in p.identities if o["kind"] == "ServiceAccount"]
    assert accounts == ["mcs-apiserver-reader-east", "mcs-apiserver-reader-west"]
    bindings = [o for o in p.identities if o["kind"] == "ClusterRoleBinding"]
    assert {b["roleRef"]["name"] for b in bindings} == {plan.MEMBER_READER_ROLE}
    assert [b["subjects"][0]["name"] for b in bindings] == accounts


def test_the_deployment_runtime_applies_the_deployment_and_the_local_runtime_an_external_name_service():
    deployed = plan.plan_member(MANIFESTS_READ, MEMBERS[0], MEMBERS, "prod", "deployment")
    assert {o["kind"] for o in deployed.workload} == {"Deployment", "PodDisruptionBudget", "Service"}
    local = plan.plan_member(MANIFESTS_READ, member("a", "east", local_port=4443), MEMBERS, "prod", "local")
    assert [(o["kind"], o["spec"]["type"]) for o in local.workload] == [("Service", "ExternalName")]
    assert plan.token_secret_name(plan.SERVICE_ACCOUNT) in {o["metadata"]["name"] for o in local.identities}


def test_the_local_runtime_needs_the_instances_port():
    with pytest.raises(plan.PlanError, match="port"):
        plan.plan_member(MANIFESTS_READ, MEMBERS[0], MEMBERS, "prod", "local")


def test_the_members_kubeconfig_has_one_context_per_member_named_by_cluster_id_with_the_readers_token():
    tokens = {("east", "mcs-apiserver-reader-west"): "t1", ("west", "mcs-apiserver-reader-west"): "t2",
              ("east", "mcs-apiserver-reader-east"): "other"}
    config = plan.members_kubeconfig(MEMBERS[1], MEMBERS, tokens)
    assert [c["name"] for c in config["contexts"]] == ["east", "west"]
    assert [u["user"] for u in config["users"]] == [{"token": "t1"}, {"token": "t2"}]
    assert config["clusters"][0]["cluster"]["server"] == "https://a:6443"


def test_completing_fills_the_ca_bundle_everywhere_and_the_port_only_for_a_local_instance():
    for m, port in ((MEMBERS[0], 443), (member("a", "east", local_port=4443), 4443)):
        p = plan.plan_member(MANIFESTS_READ, m, MEMBERS, "prod", "local" if m.local_port else "deployment")
        plan.complete(p, MANIFESTS_READ, MEMBERS, {}, SERVING)
        refs = [o["spec"] if o["kind"] == "APIService" else w["clientConfig"]
                for o in p.registration for w in (o.get("webhooks") or [o])]
        assert refs and {r["caBundle"] for r in refs} == {base64.b64encode(b"CA").decode()}
        assert {r["service"]["port"] for r in refs} == {port}
        members_secret = next(s for s in p.secrets if s["metadata"]["name"] == plan.MEMBERS_SECRET)
        config = yaml.safe_load(base64.b64decode(members_secret["data"]["kubeconfig"]))
        assert config["current-context"] == "east"


def test_cluster_properties_come_id_first():
    assert [(o["metadata"]["name"], o["spec"]["value"]) for o in plan.cluster_properties("east", "prod")] == [
        ("cluster.clusterset.k8s.io", "east"), ("clusterset.k8s.io", "prod")]


@pytest.mark.parametrize("members,clusterset,message", [
    ([member("a", "East")], "prod", "cluster ID 'East' of context 'a' is not a DNS label"),
    ([member("a", "x" * 64)], "prod", "is not a DNS label"),
    ([member("a", "east"), member("b", "east")], "prod", "cluster ID 'east' is used by both 'a' and 'b'"),
    ([member("a", "east", existing_id="old")], "prod", "already has cluster ID 'old'"),
    ([member("a", "east", existing_clusterset="other")], "prod", "already in ClusterSet 'other'"),
    ([member("a", "east")], "Prod", "--clusterset 'Prod' is not a DNS label"),
])
def test_bad_ids_and_clustersets_are_refused_with_what_to_do(members, clusterset, message):
    with pytest.raises(plan.PlanError, match=message.replace("(", r"\(")):
        plan.validate(members, clusterset)


def test_a_member_that_already_has_the_same_id_and_clusterset_is_accepted():
    plan.validate([member("a", "east", existing_id="east", existing_clusterset="prod")], "prod")


def test_dry_run_redacts_secret_data_and_nothing_else():
    secret = plan.secret("s", {"k": b"v"})
    assert plan.redact(secret)["data"] == {"k": plan.REDACTED}
    assert secret["data"]["k"] != plan.REDACTED
    service = plan.local_service(1)
    assert plan.redact(service) is service


def test_uninstall_removes_webhooks_then_the_apiservice_and_keeps_crds_and_cluster_properties():
    p = plan.plan_member(MANIFESTS_READ, MEMBERS[0], MEMBERS, "prod", "deployment")
    plan.complete(p, MANIFESTS_READ, MEMBERS, {}, SERVING)
    order = [o["kind"] for o in plan.uninstall_order(p.objects())]
    assert order[:3] == ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService"]
    assert "CustomResourceDefinition" not in order and "ClusterProperty" not in order
    assert order[-1] == "Namespace"


def test_object_paths_follow_the_rest_conventions():
    assert object_path({"apiVersion": "about.k8s.io/v1beta1", "kind": "ClusterProperty",
                        "metadata": {"name": "x"}}) == "/apis/about.k8s.io/v1beta1/clusterproperties/x"
    assert object_path({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}}) == \
        "/api/v1/namespaces/n/secrets/s"
