"""``mcs-apiserver install|uninstall``: put a ClusterSet into clusters, one command for all members.

``plan`` turns the inputs (members, cluster IDs, ClusterSet name, the runtime, the identities' tokens,
the serving certificates) into the objects of every member, with no I/O, so that what is applied is
unit tested with plain data; ``run`` does the I/O (reads what exists, creates the identities, applies,
waits). ``local up`` runs the same installer with the ``local`` runtime.
"""
