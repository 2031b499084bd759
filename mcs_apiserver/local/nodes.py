"""The simulated Nodes of a local member, and the one kwok Stage we add to kwok's own.

Nodes are created by ``local up`` (kwok manages Nodes, it does not create them): named
``<member>-node-<n>``, annotated for kwok, with their InternalIPs from the address plan (kwok keeps
addresses it finds). kube-controller-manager's node IPAM then gives each one a Pod range, and kwok
turns it Ready and keeps its Lease fresh; pods scheduled onto it get Running, Ready and an IP.

kwok's "fast" pod stages make a pod Ready once, while it is Pending. When kwok stops, the
node-lifecycle controller marks the Nodes Unknown and their pods NotReady; a real kubelet coming back
reports its running pods Ready again, but none of kwok's stages does, so without help the pods would
stay NotReady until the taint-eviction controller deletes them (300 s by default) and their owners
replace them. ``KWOK_EXTRA_STAGES`` is that missing kubelet behaviour: a running, not-deleted pod
that is not Ready becomes Ready again.
"""

from __future__ import annotations

from typing import Any

from mcs_apiserver.local.controlplane import KWOK_NODE_ANNOTATION
from mcs_apiserver.local.network import IPFamily, node_ips

KWOK_EXTRA_STAGES = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready-again
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values:
      - 'True'
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
"""


def node_name(member: str, node: int) -> str:
    return f"{member}-node-{node}"


def node_object(member: str, index: int, node: int, family: IPFamily) -> dict[str, Any]:
    """Node ``node`` (1-based) of member ``member`` (index ``index``), ready for kwok to manage."""
    name = node_name(member, node)
    key, value = KWOK_NODE_ANNOTATION
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip} for ip in node_ips(index, node, family)]
            + [{"type": "Hostname", "address": name}],
        },
    }
