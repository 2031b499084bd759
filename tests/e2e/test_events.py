"""Events on ServiceExports, recorded by the instances of the session's ClusterSet (the Lease holder
of each member) in the real kube-apiservers, as ``kubectl describe serviceexport`` shows them."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.helpers import eventually, namespace_in, service, service_export

pytestmark = pytest.mark.e2e


def export_events(kubectl, ns: str, name: str, context: str) -> list[dict]:
    selector = f"involvedObject.kind=ServiceExport,involvedObject.name={name}"
    return kubectl.json("get", "events", "-n", ns, "--field-selector", selector, context=context)["items"]


def conflict_of(kubectl, ns: str, name: str, context: str) -> dict:
    export = kubectl.json("get", "serviceexport", name, "-n", ns, context=context)
    return next((c for c in (export.get("status") or {}).get("conditions") or [] if c["type"] == "Conflict"), {})


@pytest.fixture
def ns(kubectl):
    with namespace_in(kubectl, "events", ("member-1", "member-2")) as name:
        yield name


def test_a_conflict_is_one_warning_event_while_it_lasts_and_a_normal_event_when_it_clears(kubectl, ns):
    kubectl.apply(service("api", ns, ports=[{"name": "http", "port": 80, "protocol": "TCP"}]), "member-1")
    kubectl.apply(service_export("api", ns), "member-1")
    eventually(lambda: conflict_of(kubectl, ns, "api", "member-1").get("status") == "False",
               what="the first export written conflict-free")
    kubectl.apply(service("api", ns, ports=[{"name": "http", "port": 8080, "protocol": "TCP"}]), "member-2")
    kubectl.apply(service_export("api", ns), "member-2")

    conflict = eventually(lambda: (c := conflict_of(kubectl, ns, "api", "member-2")).get("status") == "True" and c,
                          what="Conflict=True on member-2's export")
    (warning,) = eventually(lambda: export_events(kubectl, ns, "api", "member-2"), what="the Warning Event")
    export = kubectl.json("get", "serviceexport", "api", "-n", ns, context="member-2")
    assert (warning["type"], warning["reason"], warning["message"]) == ("Warning", conflict["reason"],
                                                                         conflict["message"])
    assert "PortConflict" in warning["reason"]
    assert warning["involvedObject"]["uid"] == export["metadata"]["uid"]
    assert warning["source"]["component"] == warning["reportingComponent"] == "mcs-apiserver"
    assert warning["reportingInstance"] and warning["count"] == 1
    described = kubectl.run("describe", "serviceexport", "api", "-n", ns, context="member-2").stdout
    events_section = described.split("Events:", 1)[1]
    assert "Warning" in events_section and "PortConflict" in events_section and "mcs-apiserver" in events_section

    # While the conflict lasts: no new Event. Not when nothing changes...
    time.sleep(5)
    assert [e["metadata"]["name"] for e in export_events(kubectl, ns, "api", "member-2")] == [
        warning["metadata"]["name"]]
    # ...nor when someone wipes the conditions and the writer puts Conflict=True back: the same
    # (object, reason, message) again only counts on the one Event, as client-go's recorder does.
    kubectl.run("patch", "serviceexport", "api", "-n", ns, "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"conditions": []}}), context="member-2")
    eventually(lambda: conflict_of(kubectl, ns, "api", "member-2").get("status") == "True",
               what="Conflict=True written again")
    bumped = eventually(lambda: [e for e in export_events(kubectl, ns, "api", "member-2") if e["count"] == 2],
                        what="the count of the one Warning bumped")
    assert [e["metadata"]["name"] for e in export_events(kubectl, ns, "api", "member-2")] == [
        warning["metadata"]["name"]]
    assert bumped[0]["firstTimestamp"] == warning["firstTimestamp"]

    kubectl.apply(service("api", ns, ports=[{"name": "http", "port": 80, "protocol": "TCP"}]), "member-2")
    normal = eventually(lambda: [e for e in export_events(kubectl, ns, "api", "member-2") if e["type"] == "Normal"],
                        what="the Normal Event when the conflict clears")
    assert [(e["reason"], e["count"]) for e in normal] == [("NoConflicts", 1)]
    warnings = [e for e in export_events(kubectl, ns, "api", "member-2") if e["type"] == "Warning"]
    assert len(warnings) == 1


def test_exports_written_together_each_get_their_own_event(kubectl, ns):
    names = [f"lonely-{i}" for i in range(4)]
    kubectl.apply(json.dumps({"apiVersion": "v1", "kind": "List",
                              "items": [json.loads(service_export(n, ns)) for n in names]}), "member-2")
    for name in names:
        (event,) = eventually(lambda: export_events(kubectl, ns, name, "member-2"), what=f"the Warning on {name}")
        export = kubectl.json("get", "serviceexport", name, "-n", ns, context="member-2")
        assert (event["type"], event["reason"]) == ("Warning", "NoService")
        assert event["message"] == f"Service {ns}/{name} does not exist in cluster member-2"
        assert event["involvedObject"]["uid"] == export["metadata"]["uid"]
