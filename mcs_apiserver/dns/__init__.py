"""Multicluster DNS for ``clusterset.local``, answered from the live view (KEP-1645 DNS spec 1.0.0).

Data flows one way, like the rest: the view updater tells ``feed`` which ServiceImports changed;
``feed`` reads them (and the ready endpoints in the member caches) into plain ``records.ServiceInput``;
``records`` derives the spec's records (pure); ``zone`` turns them into wire-format answers, once,
when the view changes; ``responder`` answers a query by a dict lookup and a few byte patches; and
``server`` moves bytes over UDP and TCP.
"""
