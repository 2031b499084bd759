"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's leaderelection does it.

With several replicas of an instance, every one serves the views, but only one may write
ServiceExport conditions, or they would fight over ``lastTransitionTime``. The holder renews the
Lease every ``retry_period``; a Lease not renewed for ``lease_duration`` may be taken over. Updates
carry the Lease's resourceVersion, so two candidates can never both win the same round. A holder
that cannot renew steps down after ``renew_deadline`` (shorter than ``lease_duration``, as in
client-go), so it has stopped writing before anyone else may take the Lease over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp

from mcs_apiserver.kube.client import ApiError, KubeClient
from mcs_apiserver.kube.times import format_micro_time
from mcs_apiserver.kube.times import parse_time

log = logging.getLogger("mcs_apiserver.writers.lease")  # the name in the logs, unchanged by the move


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


class LeaseElector:
    def __init__(self, client: KubeClient, namespace: str, name: str, *, identity: str | None = None,
                 lease_duration: float = 15.0, retry_period: float = 2.0,
                 renew_deadline: float | None = None,
                 on_change: Callable[[bool], None] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.retry_period = retry_period
        #: How long a holder keeps leading while it cannot renew (client-go: 10 s of a 15 s Lease).
        self.renew_deadline = lease_duration * 2 / 3 if renew_deadline is None else renew_deadline
        self.on_change = on_change
        self.clock = clock
        self.leader = False
        self._renewed: datetime | None = None

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    async def run(self) -> None:
        try:
            while True:
                try:
                    # A hung request must not keep a holder leading past its renew deadline.
                    async with asyncio.timeout(self._attempt_timeout()):
                        leading = await self.try_acquire_or_renew()
                except (ApiError, aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as error:
                    log.warning("lease %s/%s: %s", self.namespace, self.name,
                                str(error) or type(error).__name__)
                    leading = self._still_valid()
                self._set(leading)
                await asyncio.sleep(self.retry_period)
        finally:
            if self.leader:
                await self._release()
            self._set(False)

    def _still_valid(self) -> bool:
        """Whether a holder that failed to renew may keep leading: until its renew deadline."""
        return self.leader and self._renewed is not None and \
            self.clock() - self._renewed < timedelta(seconds=self.renew_deadline)

    def _attempt_timeout(self) -> float:
        if self.leader and self._renewed is not None:
            left = self._renewed + timedelta(seconds=self.renew_deadline) - self.clock()
            return max(left.total_seconds(), 0.1)
        return max(self.renew_deadline, 0.1)

    def _set(self, leading: bool) -> None:
        if leading != self.leader:
            self.leader = leading
            log.info("%s the lease %s/%s", "acquired" if leading else "lost", self.namespace, self.name,
                     extra={"identity": self.identity})
            if self.on_change is not None:
                self.on_change(leading)

    async def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        try:
            lease = await self.client.get(self.path)
        except ApiError as error:
            if error.code != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(now, acquire=True, transitions=0)}
            try:
                await self.client.json("POST", f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases",
                                       body=body)
            except ApiError as create_error:
                if create_error.code == 409:
                    return False  # someone else created it first
                raise
            self._renewed = now
            return True
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = parse_time(spec.get("renewTime"))
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        expired = renewed is None or now - renewed > timedelta(seconds=duration)
        if holder and holder != self.identity and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        lease["spec"] = {**spec, **self._spec(now, acquire=holder != self.identity, transitions=transitions)}
        if holder == self.identity:
            lease["spec"]["acquireTime"] = spec.get("acquireTime") or format_micro_time(now)
        try:
            await self.client.json("PUT", self.path, body=lease)
        except ApiError as error:
            if error.code == 409:
                return False  # lost the race for this round
            raise
        self._renewed = now
        return True

    def _spec(self, now: datetime, *, acquire: bool, transitions: int) -> dict[str, Any]:
        spec: dict[str, Any] = {"holderIdentity": self.identity,
                                "leaseDurationSeconds": int(self.lease_duration),
                                "renewTime": format_micro_time(now), "leaseTransitions": transitions}
        if acquire:
            spec["acquireTime"] = format_micro_time(now)
        return spec

    async def _release(self) -> None:
        """Give the Lease up on shutdown so another replica takes over at once, not after it expires."""
        try:
            lease = await self.client.get(self.path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            spec["holderIdentity"] = None
            spec["leaseDurationSeconds"] = 1
            spec["renewTime"] = format_micro_time(self.clock())
            await self.client.json("PUT", self.path, body=lease, timeout=3)
        except (ApiError, aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError):
            pass
