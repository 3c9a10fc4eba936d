"""Leader election on a coordination.k8s.io Lease: of N operator replicas one reconciles, the
others wait for its Lease to expire. The algorithm is client-go's (tools/leaderelection), which
every kube-controller-manager runs:

- A candidate takes the Lease when nobody holds it, or when the holder has not renewed it for
  `lease_seconds` *as observed on the candidate's own clock* (the record's renewTime is never
  compared with local time, so clock skew between nodes cannot hand the Lease over early).
- The leader renews every `retry_seconds`; when no renewal has succeeded for
  `renew_deadline_seconds` it stops at once (the process exits and its pod restarts as a
  candidate). renew_deadline < lease duration: a leader that lost contact has stopped before any
  candidate may take over, so no object is reconciled by two replicas at once.
- Every write carries the resourceVersion it read (optimistic concurrency): of two candidates
  racing for an expired Lease, the apiserver lets exactly one win (409 for the other).
- A leader that shuts down gracefully releases the Lease, so the standby takes over in one retry.

Why not kopf's peering: a paused kopf still runs the handlers already in flight, equal
priorities leave both replicas active (a warning only), and it needs two extra CRDs. A Lease is
the Kubernetes convention, needs one namespaced Role, and `kubectl get lease` shows the leader.
The pure part (`decide`) is unit-tested; `Elector` only reads and writes the Lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from . import kube

logger = logging.getLogger("acgs_operator.leader")
LEASE_NAME = "acgs-operator"


class Move(str, Enum):
    CREATE = "create"  # no Lease yet
    RENEW = "renew"  # ours
    TAKE = "take"  # free (released) or expired
    WAIT = "wait"  # someone else holds it and renews it


@dataclass(frozen=True)
class Timing:
    lease_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_seconds < self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError(f"leader election timing {self}: expected 0 < retry < renew deadline < lease duration "
                             "(a leader must give up before its Lease can expire for others)")


@dataclass
class Observed:
    """The Lease record last seen, and when (this process's monotonic clock) it last changed."""

    record: tuple[Any, ...] | None = None
    since: float = 0.0


def record_of(lease: dict[str, Any]) -> tuple[Any, ...]:
    spec = lease.get("spec") or {}
    return (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))


def decide(lease: dict[str, Any] | None, identity: str, observed: Observed, now: float, timing: Timing) -> Move:
    """What to do with the Lease as read now; updates `observed` (when its record last changed)."""
    if lease is None:
        return Move.CREATE
    record = record_of(lease)
    if record != observed.record:
        observed.record, observed.since = record, now
    holder = record[0]
    if holder == identity:
        return Move.RENEW
    if not holder or now - observed.since >= timing.lease_seconds:
        return Move.TAKE
    return Move.WAIT


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeadershipLost(RuntimeError):
    pass


class Elector:
    def __init__(self, namespace: str, identity: str, timing: Timing, name: str = LEASE_NAME) -> None:
        self.namespace, self.identity, self.timing, self.name = namespace, identity, timing, name
        self.observed = Observed()
        self.holder: str | None = None  # holder seen by the last attempt (None: it failed before reading)
        # Its own thread: kopf's executor may be busy with every handler at once, and a renewal
        # must not queue behind them.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")

    def _leases(self) -> Any:
        return kube.resource("coordination.k8s.io/v1", "Lease")

    def try_acquire_or_renew(self) -> bool:
        """One attempt (blocking): True when this process holds the Lease afterwards."""
        self.holder = None
        lease = kube.get("coordination.k8s.io/v1", "Lease", self.namespace, self.name)
        move = decide(lease, self.identity, self.observed, time.monotonic(), self.timing)
        self.holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
        if move == Move.WAIT:
            return False
        now = _micro_time()
        spec: dict[str, Any] = {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.timing.lease_seconds),
                                "renewTime": now}
        if move == Move.RENEW:
            assert lease is not None
            spec = {**lease["spec"], **spec}
        else:
            transitions = ((lease or {}).get("spec") or {}).get("leaseTransitions") or 0
            spec |= {"acquireTime": now, "leaseTransitions": transitions + (1 if lease else 0)}
        body: dict[str, Any] = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
        try:
            if lease is None:
                self._leases().create(body=body, namespace=self.namespace)
            else:  # the resourceVersion read: a concurrent writer makes this a 409
                body["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
                self._leases().replace(body=body, namespace=self.namespace)
        except kube.ApiException as exc:
            if exc.status == 409:
                return False
            raise
        self.holder = self.identity
        if move != Move.RENEW:
            logger.info("%s acquired Lease %s/%s (%s)", self.identity, self.namespace, self.name, move.value)
        return True

    def release(self) -> None:
        """Give the Lease up (graceful shutdown): the standby takes over on its next attempt."""
        lease = kube.get("coordination.k8s.io/v1", "Lease", self.namespace, self.name)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        lease["spec"] = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1}
        try:
            self._leases().replace(body=lease, namespace=self.namespace)
            logger.info("%s released Lease %s/%s", self.identity, self.namespace, self.name)
        except kube.ApiException as exc:
            logger.warning("could not release Lease %s/%s: %s", self.namespace, self.name, kube.error_message(exc))

    async def _attempt(self) -> bool:
        try:
            attempt = asyncio.get_running_loop().run_in_executor(self._executor, self.try_acquire_or_renew)
            return await asyncio.wait_for(attempt, self.timing.renew_deadline_seconds / 2)
        except Exception as exc:  # the apiserver away, a timeout: the next attempt decides
            logger.warning("Lease %s/%s: attempt failed: %r", self.namespace, self.name, exc)
            return False

    async def acquire(self) -> None:
        """Wait until this process leads (a standby waits here, reconciling nothing)."""
        logger.info("%s waiting for Lease %s/%s", self.identity, self.namespace, self.name)
        while not await self._attempt():
            await asyncio.sleep(self.timing.retry_seconds)

    async def keep(self) -> None:
        """Renew until a renewal deadline is missed; then raise LeadershipLost (the caller exits)."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.timing.retry_seconds)
            if await self._attempt():
                renewed = time.monotonic()
            elif self.holder not in (None, self.identity):
                raise LeadershipLost(f"{self.identity}: Lease {self.namespace}/{self.name} is held by {self.holder}")
            elif time.monotonic() - renewed >= self.timing.renew_deadline_seconds:
                raise LeadershipLost(f"{self.identity} could not renew Lease {self.namespace}/{self.name} for "
                                     f"{self.timing.renew_deadline_seconds:.0f}s")
