"""Everything that writes to the local cluster for the ecosystem, behind the status writer's Lease.

``publish_imports`` and ``publish_slices`` compute, purely, the upstream ServiceImports and MCS
EndpointSlices the local cluster should hold; ``reconcile`` compares them with what is there;
``publisher`` does the I/O (opt-in: ``--publish-serviceimports``, ``--publish-endpointslices``).
"""
