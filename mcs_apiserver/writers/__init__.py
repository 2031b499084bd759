"""Everything that writes to the local cluster, behind one Lease (``lease``): the ServiceExport
conditions (``status``) and, opt-in, the upstream ServiceImports and MCS EndpointSlices
(``publish_imports`` and ``publish_slices`` compute them purely, ``reconcile`` compares them with what
is there, ``publisher`` does the I/O).
"""
