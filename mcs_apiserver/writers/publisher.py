"""Publish the views into the local cluster as upstream ServiceImports and MCS EndpointSlices.

Opt-in (``--publish-serviceimports``, ``--publish-endpointslices``), for consumers that only read
the upstream types (CoreDNS's multicluster support, Gateway API, the mcs-api conformance suite).
Only the holder of the status writer's Lease writes, and only into its own cluster:

* marked keys (an import or its endpoints changed) are reconciled incrementally;
* on winning the Lease, and every ``resync`` seconds, everything we own is listed and reconciled
  in full: missing objects created, drifted ones fixed, orphans (ours, wanted by nothing) deleted;
* nothing happens before every member has settled and the views were computed once, or an
  incomplete view right after a restart would delete what is still wanted (flapping);
* creates are POSTs (a name held by someone else's object answers 409 and is left alone), updates
  server-side applies with our field manager, only when a field we set differs (``reconcile``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp

from mcs_apiserver.kube.client import ApiError, KubeClient
from mcs_apiserver.members.member import MemberCache
from mcs_apiserver.views.engine import ViewEngine
from mcs_apiserver.contract import Key
from mcs_apiserver.writers import publish_imports, publish_slices
from mcs_apiserver.writers.reconcile import ObjectKey, needs_update, owned, plan

log = logging.getLogger("mcs_apiserver.publish")

IMPORTS_PATH = "/apis/multicluster.x-k8s.io/v1beta1"
SLICES_PATH = "/apis/discovery.k8s.io/v1"
RETRY_AFTER = 2.0
#: Writes in flight per resource: enough to keep up with a burst of exports, few enough to be a
#: polite client of the local kube-apiserver.
CONCURRENT_WRITES = 8
_ERRORS = (ApiError, aiohttp.ClientError, OSError, asyncio.TimeoutError)


def _namespace_gone(error: ApiError) -> bool:
    """The namespace was deleted or is being deleted: the import goes away with it, nothing to retry."""
    return error.code == 404 or (error.code == 403 and "being terminated" in error.message)


class _Kind:
    """One published resource: where it lives, how ours are recognised, what we hold of it."""

    def __init__(self, group_path: str, plural: str, label: str, value: str, status: bool) -> None:
        self.group_path = group_path
        self.plural = plural
        self.label = label
        self.value = value
        self.status = status  #: has a status subresource to apply separately
        self.have: dict[ObjectKey, dict[str, Any]] = {}

    def collection(self, namespace: str) -> str:
        return f"{self.group_path}/namespaces/{namespace}/{self.plural}"

    def path(self, key: ObjectKey) -> str:
        return f"{self.collection(key[0])}/{key[1]}"


class Publisher:
    def __init__(self, engine: ViewEngine, members: Mapping[str, MemberCache], client: KubeClient, *,
                 imports: bool, slices: bool, ready: Callable[[], bool], resync: float = 60.0) -> None:
        self.engine = engine
        self.members = members
        self.client = client
        self.ready = ready
        self.resync = resync
        self.kinds: list[tuple[_Kind, Callable[[Iterable[Key] | None], dict[ObjectKey, dict]]]] = []
        if imports:
            self.imports = _Kind(IMPORTS_PATH, "serviceimports", publish_imports.MANAGED_BY_LABEL,
                                 publish_imports.MANAGED_BY, status=True)
            self.kinds.append((self.imports, self._desired_imports))
        if slices:
            self.slices = _Kind(SLICES_PATH, "endpointslices", publish_slices.MANAGED_BY_LABEL,
                                publish_slices.MANAGED_BY, status=False)
            self.kinds.append((self.slices, self._desired_slices))
        self.enabled = False
        self._pending: set[Key] = set()
        self._full = True  #: list what the cluster holds, then reconcile everything
        self._all = False  #: reconcile everything against what we hold (membership changed)
        self._wake = asyncio.Event()

    # --- inputs ---------------------------------------------------------------------------------

    def leadership_changed(self, leading: bool) -> None:
        self.enabled = leading
        if leading:
            self._full = True
            self._wake.set()

    def mark(self, keys: Iterable[Key], membership: bool) -> None:
        if membership:
            self._all = True
        else:
            self._pending.update(keys)
        if self.enabled:
            self._wake.set()

    # --- desired state (pure, from the views and member caches) --------------------------------

    def _desired_imports(self, keys: Iterable[Key] | None) -> dict[ObjectKey, dict]:
        views = self.engine.imports
        wanted = views.keys() if keys is None else [k for k in keys if k in views]
        return {k: publish_imports.desired_service_import(views[k]) for k in wanted}

    def _desired_slices(self, keys: Iterable[Key] | None) -> dict[ObjectKey, dict]:
        views = self.engine.imports
        wanted = views.keys() if keys is None else [k for k in keys if k in views]
        out: dict[ObjectKey, dict] = {}
        for key in wanted:
            clusters = {c["cluster"] for c in (views[key].get("status") or {}).get("clusters") or ()}
            sources = [(c.cluster, self.members[c.member].ready_endpoint_slices(key))
                       for c in self.engine.contributions(self.members, key)
                       if c.cluster in clusters and c.member in self.members]
            for name, obj in publish_slices.desired_endpoint_slices(key, sources).items():
                out[(key[0], name)] = obj
        return out

    def _slice_keys_of(self, keys: set[Key]) -> set[ObjectKey]:
        return {k for k, obj in self.slices.have.items()
                if (k[0], ((obj.get("metadata") or {}).get("labels") or {}).get(
                    publish_slices.SERVICE_NAME_LABEL)) in keys}

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_resync = loop.time()
        while True:
            try:
                async with asyncio.timeout(max(next_resync - loop.time(), 0.05)):
                    await self._wake.wait()
            except TimeoutError:
                self._full = True
            self._wake.clear()
            if not self.enabled:
                continue
            if not self.ready():
                await asyncio.sleep(0.5)  # not settled yet: look again soon
                self._wake.set()
                continue
            full, self._full = self._full, False
            every, self._all = self._all, False
            keys, self._pending = self._pending, set()
            try:
                if full:
                    next_resync = loop.time() + self.resync
                    await self._list()
                if full or every:
                    await self._reconcile(None)
                elif keys:
                    await self._reconcile(keys)
            except _ERRORS as error:
                log.warning("publishing failed, retrying in %.0fs: %s", RETRY_AFTER,
                            str(error) or type(error).__name__)
                self._full = True
                await asyncio.sleep(RETRY_AFTER)  # marks keep accumulating meanwhile
                self._wake.set()

    async def _list(self) -> None:
        """What the cluster holds: our objects, and (ServiceImports only) foreign ones whose names we may want."""
        for kind, _ in self.kinds:
            params = {} if kind.status else {"labelSelector": f"{kind.label}={kind.value}"}
            listed = await self.client.get(f"{kind.group_path}/{kind.plural}", params=params)
            kind.have = {((o["metadata"].get("namespace") or ""), o["metadata"]["name"]): o
                         for o in listed.get("items") or ()}

    async def _reconcile(self, keys: set[Key] | None) -> None:
        """ServiceImports and EndpointSlices side by side: neither waits for the other's writes."""
        await asyncio.gather(*(self._reconcile_kind(kind, desired_of, keys) for kind, desired_of in self.kinds))

    async def _reconcile_kind(self, kind: _Kind, desired_of: Callable[[Iterable[Key] | None], dict[ObjectKey, dict]],
                              keys: set[Key] | None) -> None:
        desired = desired_of(keys)
        if keys is None:
            scope = None
        elif kind.status:
            scope = set(keys)
        else:
            scope = set(desired) | self._slice_keys_of(keys)
        steps = plan(desired, kind.have, kind.label, kind.value, publish_imports.FIELD_MANAGER, scope)
        for key in steps.clashes:
            log.warning("not publishing %s %s/%s: an object of that name exists without %s=%s",
                        kind.plural, key[0], key[1], kind.label, kind.value)
        if not steps:
            return
        semaphore = asyncio.Semaphore(CONCURRENT_WRITES)

        async def bounded(step: Awaitable[None]) -> None:
            async with semaphore:
                await step

        await asyncio.gather(
            *(bounded(self._create(kind, key, desired[key])) for key in steps.create),
            *(bounded(self._update(kind, key, desired[key])) for key in steps.update),
            *(bounded(self._delete(kind, key)) for key in steps.delete),
        )

    async def _create(self, kind: _Kind, key: ObjectKey, obj: dict[str, Any]) -> None:
        try:
            created = await self.client.json("POST", kind.collection(key[0]), body=obj,
                                             params={"fieldManager": publish_imports.FIELD_MANAGER})
        except ApiError as error:
            if error.code == 409:  # someone else's object took the name meanwhile
                log.warning("not publishing %s %s/%s: the name is taken", kind.plural, *key)
                return
            if _namespace_gone(error):
                return
            raise
        kind.have[key] = created
        if kind.status:
            await self._apply(kind, key, obj, status=True)

    async def _update(self, kind: _Kind, key: ObjectKey, obj: dict[str, Any]) -> None:
        main = {k: v for k, v in obj.items() if k != "status"}
        if needs_update(kind.have.get(key) or {}, main, publish_imports.FIELD_MANAGER):
            await self._apply(kind, key, obj, status=False)
        if kind.status:
            await self._apply(kind, key, obj, status=True)

    async def _delete(self, kind: _Kind, key: ObjectKey) -> None:
        have = kind.have.get(key)
        if have is None or not owned(have, kind.label, kind.value):
            return
        uid = (have.get("metadata") or {}).get("uid")
        try:
            await self.client.json("DELETE", kind.path(key),
                                   body={"kind": "DeleteOptions", "apiVersion": "v1",
                                         "preconditions": {"uid": uid}} if uid else None)
        except ApiError as error:
            if error.code not in (404, 409):
                raise
        kind.have.pop(key, None)

    async def _apply(self, kind: _Kind, key: ObjectKey, obj: dict[str, Any], *, status: bool) -> None:
        if status:
            body = {k: obj[k] for k in ("apiVersion", "kind", "status")}
            body["metadata"] = {"name": key[1], "namespace": key[0]}
            current = kind.have.get(key) or {}
            if current.get("status") == obj["status"]:
                return
        else:
            body = {k: v for k, v in obj.items() if k != "status"}
        path = kind.path(key) + ("/status" if status else "")
        try:
            applied = await self.client.json(
                "PATCH", path, body=body, content_type="application/apply-patch+yaml",
                params={"fieldManager": publish_imports.FIELD_MANAGER, "force": "true"})
        except ApiError as error:
            if _namespace_gone(error):
                kind.have.pop(key, None)
                return
            raise
        kind.have[key] = applied
