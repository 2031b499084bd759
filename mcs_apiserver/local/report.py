"""What ``local status`` reports, as one JSON document (``-o json``) and as text, from plain data.

The JSON is for scripts and tests: per member its context, API server URL, every component's pid
and state, its CIDRs, its Nodes, and under ``addresses`` every endpoint a client of the member needs
(``host:port``), keyed by what listens there, so that later servers (a DNS server, ...) join as one
more key without changing the shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypedDict

from mcs_apiserver.local.state import LocalState, MemberPorts

ComponentState = Literal["running", "stopped"]


# The functional syntax spells each field as the JSON key it is: these are read by key, by scripts.
ComponentDoc = TypedDict("ComponentDoc", {
    "pid": int,
    "state": ComponentState,
    "log": str,
    "detail": str,  # e.g. the kube-apiserver's readyz answer
}, total=False)

NodeDoc = TypedDict("NodeDoc", {
    "name": str,
    "ready": bool,
    "podCIDRs": list[str],
    "internalIPs": list[str],
})

MemberDoc = TypedDict("MemberDoc", {
    "name": str,
    "context": str,
    "apiServer": str,
    "components": dict[str, ComponentDoc],
    "podCIDRs": list[str],
    "serviceCIDRs": list[str],
    "nodes": list[NodeDoc] | None,  # None: the member's API server could not be asked
    "addresses": dict[str, str],
})

StatusDoc = TypedDict("StatusDoc", {
    "clusterset": str,
    "kubeconfig": str,
    "ipFamily": str,
    "nodesPerMember": int,
    "components": dict[str, ComponentDoc],  # shared by all members: etcd
    "members": list[MemberDoc],
})


@dataclass
class ComponentStatus:
    name: str  # "etcd" or "<member>/<component>"
    pid: int
    running: bool
    log: str = ""
    detail: str = ""


@dataclass
class StatusReport:
    """What ``cluster.status`` observed: process liveness, API server health, Nodes."""

    state: LocalState
    kubeconfig: Path
    components: list[ComponentStatus]
    nodes: dict[str, list[NodeDoc] | None] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return all(c.running for c in self.components)


def node_doc(node: dict) -> NodeDoc:
    """The part of a Node object ``local status`` shows."""
    status = node.get("status", {})
    return {
        "name": node["metadata"]["name"],
        "ready": any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])),
        "podCIDRs": list(node.get("spec", {}).get("podCIDRs", [])),
        "internalIPs": [a["address"] for a in status.get("addresses", []) if a.get("type") == "InternalIP"],
    }


def _component_doc(component: ComponentStatus) -> ComponentDoc:
    doc: ComponentDoc = {"pid": component.pid, "state": "running" if component.running else "stopped",
                         "log": component.log}
    if component.detail:
        doc["detail"] = component.detail
    return doc


def _split(cidrs: str) -> list[str]:
    return [c for c in cidrs.split(",") if c]


def member_addresses(member: MemberPorts) -> dict[str, str]:
    """Every endpoint a client of this member needs, ``host:port`` by what serves there."""
    return {
        "kubeApiserver": f"127.0.0.1:{member.apiserver_port}",
        "mcsApiserver": f"127.0.0.1:{member.mcs_port}",
    }


def status_document(report: StatusReport) -> StatusDoc:
    state = report.state
    by_name = {c.name: c for c in report.components}
    members: list[MemberDoc] = []
    for member in state.members:
        prefix = member.name + "/"
        members.append({
            "name": member.name,
            "context": member.name,
            "apiServer": f"https://127.0.0.1:{member.apiserver_port}",
            "components": {name.removeprefix(prefix): _component_doc(c)
                           for name, c in by_name.items() if name.startswith(prefix)},
            "podCIDRs": _split(member.pod_cidr),
            "serviceCIDRs": _split(member.service_cidr),
            "nodes": report.nodes.get(member.name),
            "addresses": member_addresses(member),
        })
    return {
        "clusterset": state.clusterset,
        "kubeconfig": str(report.kubeconfig),
        "ipFamily": state.ip_family,
        "nodesPerMember": state.nodes,
        "components": {name: _component_doc(c) for name, c in by_name.items() if "/" not in name},
        "members": members,
    }


def status_text(doc: StatusDoc) -> str:
    """The human view of the same document: one block per member."""
    lines = [f"ClusterSet {doc['clusterset']!r}: {len(doc['members'])} members, "
             f"{doc['nodesPerMember']} Nodes each, {doc['ipFamily']}, kubeconfig {doc['kubeconfig']}"]

    def component_lines(components: dict[str, ComponentDoc], indent: str) -> None:
        width = max((len(n) for n in components), default=0)
        for name, c in components.items():
            lines.append(f"{indent}{name:<{width}}  {c['state']:<7}  pid {c['pid']:<7}  {c.get('detail', '')}".rstrip())

    component_lines(doc["components"], "  ")
    for member in doc["members"]:
        addresses = ", ".join(f"{k} {v}" for k, v in member["addresses"].items())
        lines.append(f"  {member['name']}: {member['apiServer']}  pods {','.join(member['podCIDRs'])}  "
                     f"services {','.join(member['serviceCIDRs'])}")
        lines.append(f"    addresses: {addresses}")
        component_lines(member["components"], "    ")
        if member["nodes"] is None:
            lines.append("    nodes: unknown (API server unreachable)")
        for node in member["nodes"] or []:
            ready = "Ready" if node["ready"] else "NotReady"
            lines.append(f"    node {node['name']:<18} {ready:<8}  pods {','.join(node['podCIDRs']) or '-'}  "
                         f"ip {','.join(node['internalIPs'])}")
    return "\n".join(lines)
