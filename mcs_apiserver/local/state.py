"""The state directory of a local ClusterSet: what ``up`` started, so ``down`` and ``status`` can find it.

Layout::

    DIR/state.json            members, ports and process records (this module)
    DIR/kubeconfig            one admin context per member, named member-<i>
    DIR/pki/                  CAs, certificates and keys (mode 0600)
    DIR/etcd/                 the shared etcd's data (each member has its own key prefix)
    DIR/member-<i>/           per-member logs and component kubeconfigs
    DIR/.lock                 held while up/down/stop/start run, so two never race
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from mcs_apiserver.local.network import IPFamily
from mcs_apiserver.local.processes import ProcessRecord

STATE_FILE = "state.json"


@dataclass
class MemberPorts:
    name: str  # member-<i>
    index: int
    apiserver_port: int
    controller_manager_port: int
    mcs_port: int
    service_cidr: str  # comma-separated, primary family first (as --service-cluster-ip-range)
    pod_cidr: str = ""  # comma-separated, primary family first (as --cluster-cidr)
    scheduler_port: int = 0
    kwok_port: int = 0
    dns_port: int = 0  # the instance's DNS (UDP and TCP) on 127.0.0.1; 0 in state from before DNS


@dataclass
class LocalState:
    clusterset: str
    etcd_client_port: int
    etcd_peer_port: int
    members: list[MemberPorts]
    processes: list[ProcessRecord] = field(default_factory=list)
    nodes: int = 0  # kwok Nodes per member (0: no kube-scheduler, no kwok)
    ip_family: IPFamily = "ipv4"
    publish: bool = False  # instances publish upstream ServiceImports and MCS EndpointSlices

    def member(self, name: str) -> MemberPorts:
        for member in self.members:
            if member.name == name:
                return member
        known = ", ".join(m.name for m in self.members)
        raise KeyError(f"no member {name!r} in this ClusterSet (members: {known})")

    def process(self, name: str) -> ProcessRecord | None:
        for record in self.processes:
            if record.name == name:
                return record
        return None

    def replace_process(self, record: ProcessRecord) -> None:
        self.processes = [p for p in self.processes if p.name != record.name] + [record]

    def to_json(self) -> dict:
        data = asdict(self)
        data["processes"] = [p.to_json() for p in self.processes]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "LocalState":
        return cls(
            clusterset=data["clusterset"],
            etcd_client_port=data["etcd_client_port"],
            etcd_peer_port=data["etcd_peer_port"],
            members=[MemberPorts(**m) for m in data["members"]],
            processes=[ProcessRecord.from_json(p) for p in data.get("processes", [])],
            nodes=data.get("nodes", 0),
            ip_family=data.get("ip_family", "ipv4"),
            publish=data.get("publish", False),
        )


def load(state_dir: Path) -> LocalState | None:
    path = state_dir / STATE_FILE
    if not path.is_file():
        return None
    return LocalState.from_json(json.loads(path.read_text()))


def save(state_dir: Path, state: LocalState) -> None:
    """Write the state atomically: a crash mid-write must never lose the process records."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, state_dir / STATE_FILE)


def remove(state_dir: Path) -> None:
    (state_dir / STATE_FILE).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the state directory; fail fast if another command holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"another mcs-apiserver local command is working on {state_dir}; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
