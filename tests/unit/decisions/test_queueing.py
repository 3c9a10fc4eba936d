"""A queued TrainingJob's wait, read from its Kueue Workload (the shapes Kueue v0.17 writes)."""

from __future__ import annotations

from typing import Any

from acgs_operator.decisions import jobrun, queueing
from acgs_operator.decisions import trainingjob as tj

JOB_UID = "0b8c5a8e-1111-2222-3333-444455556666"
NO_QUOTA = ("couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in flavor "
            "gpu, 2 more needed")


def workload(*conditions: dict[str, Any], uid: str = JOB_UID, name: str = "job-a-train-3f2c1") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {queueing.LABEL_JOB_UID: uid},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "uid": uid}]},
            "status": {"conditions": list(conditions)}}


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


class TestWaitOf:
    def test_no_workload_yet_says_kueue_has_not_made_one(self) -> None:
        wait = queueing.wait_of(None, "gpu-queue", "a-train")
        assert wait.reason == "AwaitingWorkload"
        assert "gpu-queue" in wait.message and "a-train" in wait.message

    def test_refused_quota_carries_kueues_reason_and_message(self) -> None:
        wait = queueing.wait_of(workload(cond("QuotaReserved", "False", "Pending", NO_QUOTA)), "gpu-queue", "a-train")
        assert wait.reason == "Pending"
        assert wait.message.endswith(NO_QUOTA) and "job-a-train-3f2c1" in wait.message

    def test_an_eviction_explains_more_than_the_missing_quota(self) -> None:
        wl = workload(cond("QuotaReserved", "False", "Pending", NO_QUOTA),
                      cond("Evicted", "True", "Preempted", "Preempted to accommodate a higher priority Workload"))
        wait = queueing.wait_of(wl, "gpu-queue", "a-train")
        assert (wait.reason, wait.message.split(": ", 1)[1]) == (
            "Preempted", "Preempted to accommodate a higher priority Workload")

    def test_an_old_eviction_that_is_false_is_ignored(self) -> None:
        wl = workload(cond("Evicted", "False", "NoLongerEvicted"), cond("QuotaReserved", "False", "Pending", NO_QUOTA))
        assert queueing.wait_of(wl, "q", "j").reason == "Pending"

    def test_reserved_but_not_yet_admitted_waits_on_admission_checks(self) -> None:
        wl = workload(cond("QuotaReserved", "True", "QuotaReserved"),
                      cond("Admitted", "False", "NoChecks", "The workload has not all checks ready"))
        assert queueing.wait_of(wl, "q", "j").reason == "NoChecks"


class TestWorkloadOf:
    def test_found_by_label_or_owner_only_for_this_job(self) -> None:
        mine, other = workload(), workload(uid="another", name="job-b")
        assert queueing.workload_of([other, mine], JOB_UID) is mine
        assert queueing.workload_of([other], JOB_UID) is None


class TestDecideQueued:
    def test_a_suspended_job_of_a_queue_is_queued_with_kueues_reason(self) -> None:
        observed = jobrun.Observation(jobrun.SUSPENDED, "JobSuspended", "the Job is suspended (queued or preempted)")
        wait = queueing.wait_of(workload(cond("QuotaReserved", "False", "Pending", NO_QUOTA)), "gpu-queue", "a-train")
        d = tj.decide(observed, "a-train", {}, 1, queued=wait)
        assert d.phase == "Queued" and d.status["message"] == wait.message
        queued = next(c for c in d.status["conditions"] if c["type"] == "Queued")
        assert (queued["status"], queued["reason"]) == ("True", "Pending")
        assert d.event is not None and d.event.reason == "Pending"

    def test_admitted_the_queued_condition_turns_false(self) -> None:
        observed = jobrun.Observation(jobrun.SUSPENDED, "JobSuspended", "suspended")
        queued = tj.decide(observed, "a-train", {}, 1, queued=queueing.wait_of(None, "q", "a-train"))
        running = tj.decide(jobrun.Observation(jobrun.RUNNING, "PodRunning", "pod a is running"), "a-train",
                            queued.status, 1)
        by_type = {c["type"]: c for c in running.status["conditions"]}
        assert running.phase == "Running" and by_type["Queued"]["status"] == "False"

    def test_without_a_queue_a_suspended_job_stays_suspended(self) -> None:
        observed = jobrun.Observation(jobrun.SUSPENDED, "JobSuspended", "suspended")
        assert tj.decide(observed, "a-train", {}, 1).phase == "Suspended"
