"""FlywheelPolicy decisions (collect → status, trigger a run) and its collector Job."""

from __future__ import annotations

from acgs_contract.constitution import CONSTITUTIONAL_HASH
from acgs_contract.flywheel import CollectResult
from acgs_contract.result import FAILED, SUCCEEDED

from acgs_operator.api.deployment import DeploymentSpec
from acgs_operator.api.flywheel import FlywheelPolicySpec, FlywheelPolicyStatus
from acgs_operator.builders import flywheel as fwb
from acgs_operator.builders.common import Owner
from acgs_operator.decisions import flywheel as decide

SPEC = FlywheelPolicySpec.model_validate({"constitutionalHash": CONSTITUTIONAL_HASH, "deploymentRef": "d",
                                          "thresholds": {"minRecords": 10}, "intervalSeconds": 3600})
T0, T1, LATER = "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z", "2026-01-01T02:00:00Z"
DIGEST = "sha256:" + "ab" * 32


def result(usable: int, phase: str = SUCCEEDED) -> CollectResult:
    return CollectResult(phase=phase, reason="Collected" if phase == SUCCEEDED else "LogUnreadable",
                         message="m", records_seen=usable + 3, records_usable=usable,
                         excluded={"wrongHash": 2, "duplicate": 1}, snapshot_digest=DIGEST)


def collected(old: dict, usable: int, now: str, run_now: str | None = None, phase: str = SUCCEEDED):
    decision = decide.collected(old, SPEC, result(usable, phase), policy_uid="u", run_now=run_now,
                                generation=2, now=now)
    FlywheelPolicyStatus.model_validate({**old, **decision.status})  # what the CRD accepts
    return decision


def test_counts_reach_the_status_and_no_run_below_min_records():
    d = collected({}, 9, T0)
    assert (d.status["recordsSeen"], d.status["recordsUsable"]) == (12, 9)
    assert d.status["recordsExcluded"] == {"wrongHash": 2, "duplicate": 1}
    assert d.status["lastCollected"] == T0 and d.status["observedGeneration"] == 2
    assert "currentRun" not in d.status and not d.events
    assert "thresholds.minRecords" in d.status["message"]
    assert {c["type"]: c["status"] for c in d.status["conditions"]} == {"Ready": "True", "Reconciling": "False",
                                                                       "Stalled": "False"}


def test_min_records_triggers_one_run_on_the_snapshot():
    d = collected({}, 10, T0)
    run = d.status["currentRun"]
    assert (run["phase"], run["trigger"], run["records"], run["snapshotDigest"]) == ("Preparing", "Threshold", 10,
                                                                                    DIGEST)
    assert d.status["lastRun"] == T0 and [e.reason for e in d.events] == ["RunTriggered"]
    again = collected({**d.status}, 50, LATER)  # interval passed, but a run is in progress
    assert "currentRun" not in again.status  # unchanged: the pending run stays
    assert [e.reason for e in again.events] == ["RunInProgress"]


def test_interval_since_the_last_run_is_respected():
    old = {"lastRun": T0}
    assert "currentRun" not in collected(old, 100, T1).status  # 10 minutes < intervalSeconds
    assert collected(old, 100, LATER).status["currentRun"]["trigger"] == "Threshold"


def test_run_now_triggers_below_threshold_once_per_value():
    d = collected({"lastRun": T0}, 3, T1, run_now="a")
    assert d.status["currentRun"]["trigger"] == "RunNow" and d.status["runNowHandled"] == "a"
    handled = {"lastRun": T0, "runNowHandled": "a"}
    assert "currentRun" not in collected(handled, 3, LATER, run_now="a").status
    assert not decide.collect_due({"lastCollected": T1, "runNowHandled": "a"}, T1, "a")
    assert decide.collect_due({"lastCollected": T1, "runNowHandled": "a"}, T1, "b")


def test_run_now_with_nothing_usable_starts_no_run():
    d = collected({}, 0, T0, run_now="x")
    assert "currentRun" not in d.status and [e.reason for e in d.events] == ["NotEnoughRecords"]


def test_a_failed_collection_is_failed_with_its_reason():
    d = collected({"recordsUsable": 5}, 0, T0, phase=FAILED)
    assert d.status["phase"] == "Failed" and "LogUnreadable" in d.status["message"]
    assert "recordsUsable" not in d.status  # the last good count stays
    assert [e.type for e in d.events] == ["Warning"]
    assert {c["type"]: c["status"] for c in d.status["conditions"]} == {"Ready": "False", "Reconciling": "False",
                                                                       "Stalled": "True"}


def test_collection_is_due_periodically():
    assert decide.collect_due({}, T0, None)
    assert not decide.collect_due({"lastCollected": T0}, "2026-01-01T00:00:30Z", None)
    assert decide.collect_due({"lastCollected": T0}, "2026-01-01T00:01:00Z", None)


def test_collector_job_is_restricted_read_only_and_follows_the_servers_nodes():
    deployment = DeploymentSpec.model_validate({
        "constitutionalHash": CONSTITUTIONAL_HASH, "model": {"versionRef": "m"}, "interactionLogPvc": "logs",
        "resources": {"nodeSelector": {"pool": "serve"},
                      "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]}})
    owner = Owner("FlywheelPolicy", "fw", "ns", "uid-1")
    job = fwb.build_collect_job(owner, SPEC, deployment, "logs", "img", 1700000000.5)
    assert job["metadata"]["name"] == "fw-collect-1700000000"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"][0] == {"name": "interactions", "persistentVolumeClaim": {"claimName": "logs",
                                                                                  "readOnly": True}}
    container = pod["containers"][0]
    assert all(m["readOnly"] for m in container["volumeMounts"] if m["name"] == "interactions")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"pool": "serve"} and pod["tolerations"][0]["key"] == "k"
    assert container["command"][:4] == ["acgs-data", "--constitutional-hash", CONSTITUTIONAL_HASH,
                                        "flywheel-collect"]
