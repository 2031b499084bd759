"""Discovery, OpenAPI, the ClusterSet view, and members coming and going, through the real kubectl."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request

import pytest

from mcs_apiserver.local import cluster
from tests.e2e.helpers import eventually

pytestmark = pytest.mark.e2e

GROUP = "views.multicluster.x-k8s.io"


def test_api_resources_lists_both_kinds_with_short_names_and_verbs(kubectl):
    out = kubectl.run("api-resources", f"--api-group={GROUP}", "-o", "wide", context="member-1").stdout
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == {"clustersets", "serviceimports"}
    assert "cset" in lines["clustersets"] and "false" in lines["clustersets"].split()
    assert "svcim,svcimport" in lines["serviceimports"] and "true" in lines["serviceimports"].split()
    for line in lines.values():
        assert "get,list,watch" in line.split()


def test_kubectl_explain_describes_serviceimport_ports(kubectl):
    out = kubectl.run("explain", "serviceimport.spec.ports", context="member-2").stdout
    assert "KIND:" in out and "ServiceImport" in out
    assert f"GROUP:      {GROUP}" in out or GROUP in out
    for field in ("name", "port", "protocol", "appProtocol"):
        assert field in out, field


def test_kubectl_explain_describes_the_clusterset_status(kubectl):
    out = kubectl.run("explain", "clusterset.status.members", context="member-3").stdout
    for field in ("cluster", "state", "lastSyncTime", "exports"):
        assert field in out, field


def test_kubectl_get_clustersets_shows_every_member_joined(kubectl):
    def joined():
        out = kubectl.run("get", "clustersets", context="member-1").stdout.splitlines()
        return out if len(out) == 2 and out[1].split()[:4] == ["local", "member-1", "3/3", "True"] else None

    out = eventually(joined, what="clusterset local with 3/3 joined")
    assert out[0].split() == ["NAME", "LOCAL", "MEMBERS", "READY", "AGE"]
    obj = kubectl.json("get", "clusterset", "local", context="member-2")
    assert obj["status"]["localCluster"] == "member-2"
    assert [(m["cluster"], m["state"]) for m in obj["status"]["members"]] == [
        ("member-1", "Joined"), ("member-2", "Joined"), ("member-3", "Joined")]
    assert obj["metadata"]["name"] == "local"


def test_a_stopped_member_shows_unreachable_while_the_others_keep_serving_and_rejoins(clusterset, kubectl):
    cluster.stop_member(clusterset.state_dir, "member-3", "kube-apiserver")
    try:
        def unreachable():
            obj = kubectl.json("get", "clusterset", "local", context="member-1")
            states = {m["cluster"]: m["state"] for m in obj["status"]["members"]}
            return obj if states.get("member-3") == "Unreachable" else None

        obj = eventually(unreachable, timeout=60, what="member-3 Unreachable as seen from member-1")
        member3 = next(m for m in obj["status"]["members"] if m["cluster"] == "member-3")
        assert member3["message"]
        # member-2 keeps answering list and get while member-3 is down
        raw = kubectl.run("get", "--raw", f"/apis/{GROUP}/v1alpha1/serviceimports", context="member-2").stdout
        assert json.loads(raw)["kind"] == "ServiceImportList"
        out = kubectl.run("get", "clustersets", "-o", "wide", context="member-2").stdout
        assert "member-3:Unreachable" in out
    finally:
        asyncio.run(cluster.start_member(clusterset.state_dir, "member-3", "kube-apiserver"))

    def rejoined():
        obj = kubectl.json("get", "clusterset", "local", context="member-1")
        return all(m["state"] == "Joined" for m in obj["status"]["members"])

    eventually(rejoined, timeout=90, what="member-3 Joined again")


def _instance_url(clusterset, member: str, path: str) -> str:
    port = clusterset.state.member(member).mcs_port
    return f"https://127.0.0.1:{port}{path}"


def test_a_forged_x_remote_user_without_a_front_proxy_certificate_gets_401(clusterset):
    context = ssl.create_default_context(cafile=str(clusterset.state_dir / "pki" / "mcs-apiserver-ca.crt"))
    request = urllib.request.Request(
        _instance_url(clusterset, "member-1", f"/apis/{GROUP}/v1alpha1/serviceimports"),
        headers={"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, context=context, timeout=10)
    assert raised.value.code == 401
    status = json.loads(raised.value.read())
    assert status["kind"] == "Status" and status["reason"] == "Unauthorized"


def test_a_client_certificate_of_another_ca_named_like_the_front_proxy_gets_401(clusterset, tmp_path):
    from certs import pki

    rogue_ca = pki.new_ca("rogue")
    rogue = pki.issue_client_cert(rogue_ca, common_name="front-proxy-client")
    pki.write_cert_key(rogue, tmp_path / "rogue.crt", tmp_path / "rogue.key")
    context = ssl.create_default_context(cafile=str(clusterset.state_dir / "pki" / "mcs-apiserver-ca.crt"))
    context.load_cert_chain(tmp_path / "rogue.crt", tmp_path / "rogue.key")
    request = urllib.request.Request(
        _instance_url(clusterset, "member-1", f"/apis/{GROUP}/v1alpha1/serviceimports"),
        headers={"X-Remote-User": "system:admin", "X-Remote-Group": "system:masters"})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, context=context, timeout=10)
    assert raised.value.code == 401
    status = json.loads(raised.value.read())
    assert status["kind"] == "Status" and status["reason"] == "Unauthorized"


def test_a_user_without_rbac_is_forbidden_through_kubectl(kubectl):
    proc = kubectl.run("get", "serviceimports", "-A", "--as=nobody@example.com", context="member-1", check=False)
    assert proc.returncode != 0
    assert "Forbidden" in proc.stderr or "forbidden" in proc.stderr
    assert 'User "nobody@example.com" cannot list resource "serviceimports"' in proc.stderr


def test_a_user_with_the_view_role_may_read_imports_in_its_namespace(kubectl):
    kubectl.run("create", "namespace", "viewer-e2e", context="member-1", check=False)
    kubectl.run("create", "rolebinding", "viewer", "--clusterrole=view", "--user=viewer@example.com",
                "-n", "viewer-e2e", context="member-1", check=False)
    ok = eventually(lambda: kubectl.run("get", "serviceimports", "-n", "viewer-e2e", "--as=viewer@example.com",
                                        context="member-1", check=False).returncode == 0,
                    timeout=30, what="the view role to allow listing imports")
    assert ok
    denied = kubectl.run("get", "serviceimports", "-n", "default", "--as=viewer@example.com",
                         context="member-1", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
