"""Why a queued TrainingJob waits, read from its Kueue Workload: pure. Kueue owns a queued Job's
`spec.suspend` (it admits by unsuspending and evicts by suspending); the operator only reports
what Kueue says, never writes `suspend` itself (the Job is created once and not patched)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KUEUE_API_VERSION = "kueue.x-k8s.io/v1beta2"
LABEL_JOB_UID = "kueue.x-k8s.io/job-uid"  # Kueue labels a Job's Workload with the Job's uid
# The Workload conditions that explain a wait, most telling first: an eviction (preempted, or
# the quota went away) says more than "no quota reserved yet".
WAIT_CONDITIONS = ("Evicted", "QuotaReserved", "Admitted")
AWAITING_WORKLOAD = "AwaitingWorkload"


@dataclass(frozen=True)
class QueueWait:
    reason: str  # Kueue's condition reason (e.g. Pending), or AwaitingWorkload before Kueue made one
    message: str


def _condition(workload: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (workload.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


def wait_of(workload: dict[str, Any] | None, queue_name: str, job_name: str) -> QueueWait:
    """What the TrainingJob reports while its Job is suspended in LocalQueue `queue_name`."""
    if workload is None:
        return QueueWait(AWAITING_WORKLOAD, f"Job {job_name} waits in LocalQueue {queue_name!r}: Kueue has not "
                                            "created its Workload yet (is Kueue running with a LocalQueue of "
                                            "that name in this namespace?)")
    name = workload["metadata"]["name"]
    for type_ in WAIT_CONDITIONS:
        c = _condition(workload, type_)
        # Evicted explains a wait when True; QuotaReserved and Admitted when False.
        if c is not None and c.get("status") == ("True" if type_ == "Evicted" else "False"):
            reason = str(c.get("reason") or type_)
            return QueueWait(reason, f"Kueue Workload {name} in LocalQueue {queue_name!r}: "
                                     f"{c.get('message') or reason}")
    return QueueWait("Pending", f"Kueue Workload {name} in LocalQueue {queue_name!r}: waiting to be admitted")


def workload_of(workloads: list[dict[str, Any]], job_uid: str) -> dict[str, Any] | None:
    """The Workload Kueue made for the Job with `job_uid` (owner reference or Kueue's label)."""
    for wl in workloads:
        meta = wl.get("metadata") or {}
        if (meta.get("labels") or {}).get(LABEL_JOB_UID) == job_uid or any(
                r.get("uid") == job_uid for r in meta.get("ownerReferences") or []):
            return wl
    return None
