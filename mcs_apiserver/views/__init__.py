"""Pure derivation of the served views (ServiceImports, ClusterSet) from member snapshots.

No I/O and no global state: every function here maps plain data to plain data, so all of it is
unit tested with in-memory members (``mcs_apiserver.views.testing``).

- ``model``: the ``MemberView`` protocol the member layer implements, shared constants.
- ``names``: DNS label/subdomain and Service name checks (shared with the webhooks).
- ``clusterset``: membership (cluster IDs, member states) and the ClusterSet object.
- ``imports``: ServiceImport derivation and conflict detection for one key.
- ``ipalloc``: deterministic ClusterSetIP allocation.
- ``engine``: ``ViewEngine``, the incremental orchestrator.
"""

from mcs_apiserver.views.engine import UNCHANGED, ViewDelta, ViewEngine

__all__ = ["UNCHANGED", "ViewDelta", "ViewEngine"]
