"""Well-known names the webhooks act on.

The same values as ``mcs_apiserver.views.model`` (the single source of truth). They are repeated
here only so that importing the webhooks does not import the view engine package while it is being
written; ``tests/unit/test_webhooks_review.py`` checks that both agree, and the lead may switch
these to imports from ``mcs_apiserver.views.model``.
"""

from __future__ import annotations

from typing import Final

#: KEP-2149 well-known ClusterProperty names; ``id.k8s.io`` is the older name, read as an alias.
CLUSTER_ID_PROPERTY: Final = "cluster.clusterset.k8s.io"
LEGACY_CLUSTER_ID_PROPERTY: Final = "id.k8s.io"
CLUSTERSET_PROPERTY: Final = "clusterset.k8s.io"

#: Stamped on ServiceExports by the mutating webhook on CREATE (RFC 3339 with microseconds, UTC).
EXPORTED_AT_ANNOTATION: Final = "views.multicluster.x-k8s.io/exported-at"
