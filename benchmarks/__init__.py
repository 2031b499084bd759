"""The benchmark suite: ``python3 -m benchmarks`` (``make bench``).

It brings up a local ClusterSet of its own (3 members, the same code as ``mcs-apiserver local up``),
measures mcs-apiserver side by side with kube-apiserver serving the same number of CRD objects in
the same run, writes the figures to BENCHMARKS.md, and always tears the ClusterSet down. Timing
figures come only from here: tests assert behaviour, never speed.

Modules: ``options`` (command line), ``runner`` (order of the phases, bring-up and teardown),
``context`` (clients, URLs, pids of one ClusterSet), ``populate`` (creating the objects),
``reads`` (LIST and GET), ``propagation``, ``memory``, ``startup``, ``admission`` (webhooks),
``stats``, ``machine`` and ``report`` (BENCHMARKS.md).
"""
