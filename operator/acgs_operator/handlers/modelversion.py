"""ModelVersion: Ready only after a verification Job has checked the artifact's manifest, every
file's sha256 and the overall digest on the artifact volume; stage changes go to stageHistory."""

from __future__ import annotations

import json
from typing import Any

import kopf
from acgs_contract import exitcodes
from acgs_contract import result as contract_result
from pydantic import ValidationError

from .. import conditions as cond
from .. import constitution_check, kube
from ..admission import describe
from ..api.modelversion import Metrics, ModelVersionSpec
from ..builders import jobstatus
from ..builders import modelversion as mvb
from ..config import Settings
from ..constants import API_VERSION, GROUP, LABEL_COMPONENT, LABEL_OWNER_KIND, VERSION
from ..metrics import RECONCILES
from . import lifecycle

lifecycle.RECONCILED.add("ModelVersion")
STAGE_HISTORY_MAX = 50


def _plain(body: kopf.Body) -> dict[str, Any]:
    return json.loads(json.dumps(dict(body)))


def _write_status(mv: dict[str, Any], status: dict[str, Any]) -> None:
    kube.patch_status_changes({"apiVersion": API_VERSION, "kind": "ModelVersion", **mv}, status)


def _status(mv: dict[str, Any], phase: str, verified: bool | str, reason: str, message: str,
            **extra: Any) -> dict[str, Any]:
    generation = mv["metadata"].get("generation")
    conditions = cond.set_condition((mv.get("status") or {}).get("conditions"), cond.VERIFIED, verified,
                                    reason, message, generation)
    conditions = cond.set_condition(conditions, cond.READY, phase == "Ready", reason, message, generation)
    return {"phase": phase, "message": message[:2000], "conditions": conditions,
            "observedGeneration": generation, **extra}


def _verified_before(mv: dict[str, Any]) -> bool:
    """Verified, figures included (a record verified before figures were recorded is verified again)."""
    status = mv.get("status") or {}
    return (status.get("verifiedDigest") == (mv.get("spec") or {}).get("artifact", {}).get("digest")
            and status.get("verifiedMetrics") is not None)


def sync_verification(mv: dict[str, Any]) -> None:
    meta, spec = mv["metadata"], mv["spec"]
    job = kube.get("batch/v1", "Job", meta["namespace"], mvb.verify_job_name(meta["name"]))
    if job is not None and not any(r.get("uid") == meta["uid"] for r in job["metadata"].get("ownerReferences") or []):
        job = None
    pods = (kube.list_("v1", "Pod", meta["namespace"],
                       label_selector=f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}")
            if job else [])
    obs = jobstatus.observe(job, pods, mvb.VERIFY_CONTAINER)
    result = contract_result.parse_verify_result(obs.result)  # what acgs-train verify wrote
    expected = spec["artifact"]["digest"]
    # A verifier older than this operator reports no figures: not verified (gates would have nothing).
    verified = (result is not None and result.phase == contract_result.SUCCEEDED
                and result.digest == expected and result.metrics is not None)
    figures = mvb.verified_metrics(result) if verified and result is not None else None
    mismatches = mvb.metric_mismatches(Metrics.model_validate(spec.get("metrics") or {}), figures) \
        if figures is not None else []
    if obs.phase == jobstatus.SUCCEEDED and verified and mismatches:
        # The record must say what the artifact says: gates read the verified figures, and a spec
        # claiming others (say, a better complianceScore) is refused outright.
        status = _status(mv, "Invalid", False, cond.METRICS_MISMATCH,
                         f"digest {expected} verified, but " + "; ".join(mismatches))
    elif obs.phase == jobstatus.SUCCEEDED and verified:
        assert result is not None and figures is not None
        status = _status(mv, "Ready", True, cond.DIGEST_VERIFIED,
                         f"manifest, {result.file_count} files and digest {expected} verified",
                         verifiedDigest=expected, verifiedAt=obs.completion_time or cond.now(),
                         verifiedMetrics=figures.to_api())
    elif obs.phase == jobstatus.SUCCEEDED:
        status = _status(mv, "Pending", False, cond.RESULT_MISSING,
                         "the verification Job finished without a verification result (digest and metrics) "
                         "in its termination message; the artifact is not verified")
    elif obs.phase == jobstatus.FAILED and result is not None and result.phase == contract_result.FAILED \
            and obs.exit_code == exitcodes.ARTIFACT_ERROR:
        # reason: the artifact error code (FileDigestMismatch, ...); the message names the file.
        status = _status(mv, "Invalid", False, cond.ARTIFACT_ERROR, f"{result.reason}: {result.message}")
    elif obs.phase == jobstatus.FAILED:
        status = _status(mv, "Invalid", False, obs.reason, (result.message if result else "") or obs.message)
    else:
        status = _status(mv, "Pending", "Unknown", cond.VERIFYING, f"verifying the artifact: {obs.message}")
    old_phase = (mv.get("status") or {}).get("phase")
    _write_status(mv, status)
    if old_phase != status["phase"] and status["phase"] in ("Ready", "Invalid"):
        reason = (cond.get_condition(status["conditions"], cond.VERIFIED) or {}).get("reason", "")
        post = kopf.info if status["phase"] == "Ready" else kopf.warn
        post(mv, reason=reason, message=status["message"][:1000])
        RECONCILES.labels("ModelVersion", status["phase"]).inc()


def _held_for_constitution(mv: dict[str, Any], spec: ModelVersionSpec, settings: Settings) -> bool:
    """Not Ready while its constitution is not the operator's current one (so no Deployment selects
    it); back to Ready, without a new verification, once they match again."""
    status = mv.get("status") or {}
    generation = mv["metadata"].get("generation")
    problem = constitution_check.mismatch("ModelVersion", spec.constitutional_hash, settings.constitutional_hash)
    if problem is None:
        if constitution_check.is_marked(status):
            conditions = constitution_check.mark(status.get("conditions"), None, generation)
            if _verified_before(mv):
                message = f"digest {spec.artifact.digest} verified; constitution matches again"
                conditions = cond.set_condition(conditions, cond.READY, True, cond.DIGEST_VERIFIED, message, generation)
                _write_status(mv, {"phase": "Ready", "message": message, "conditions": conditions})
            else:
                _write_status(mv, {"conditions": conditions})
            mv["status"] = {**status, "conditions": conditions}
        return False
    if status.get("phase") == "Invalid":
        return True  # never servable anyway; its reason stays
    conditions = constitution_check.mark(status.get("conditions"), problem, generation)
    conditions = cond.set_condition(conditions, cond.READY, False, constitution_check.MISMATCH, problem, generation)
    _write_status(mv, {"phase": "Pending", "message": problem, "conditions": conditions,
                       "observedGeneration": generation})
    if not constitution_check.is_marked(status):
        kopf.warn(mv, reason=constitution_check.MISMATCH, message=problem)
    raise kopf.TemporaryError(problem, delay=constitution_check.RECHECK_SECONDS)


@kopf.on.resume(GROUP, VERSION, "modelversions", id="verify")
@kopf.on.create(GROUP, VERSION, "modelversions", id="verify")
def verify(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    mv = _plain(body)
    settings: Settings = memo.settings
    try:
        spec = ModelVersionSpec.model_validate(mv["spec"])
    except ValidationError as exc:
        message = describe(exc)
        _write_status(mv, _status(mv, "Invalid", False, cond.INVALID_SPEC, message))
        raise kopf.PermanentError(message) from None
    if _held_for_constitution(mv, spec, settings):
        return
    if _verified_before(mv):
        return  # verified before (the spec is immutable)
    if mvb.artifact_location(spec.artifact.uri) is None:
        _write_status(mv, _status(mv, "Pending", "Unknown", cond.UNSUPPORTED_ARTIFACT_URI,
                                  f"spec.artifact.uri {spec.artifact.uri!r}: only pvc://<claim>/<path> artifacts "
                                  "are verified by the operator; this version stays unverified"))
        return
    meta = mv["metadata"]
    if kube.get("batch/v1", "Job", meta["namespace"], mvb.verify_job_name(meta["name"])) is None:
        scheduling = json.loads((meta.get("annotations") or {}).get(mvb.ANNOTATION_VERIFY_SCHEDULING) or "{}")
        job = mvb.build_verify_job(meta["name"], meta["namespace"], spec, settings.trainer_image, scheduling,
                                   settings.constitution_content_digest)
        kopf.append_owner_reference(job, owner=mv)
        kube.apply(job)
        logger.info("verification Job %s created", job["metadata"]["name"])
    sync_verification(mv)


@kopf.on.event("batch", "v1", "jobs", id="modelversion-verify-job",
               labels={LABEL_OWNER_KIND: "modelversion", LABEL_COMPONENT: mvb.VERIFY_COMPONENT})
def verify_job_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        return
    ref = next((r for r in body.metadata.get("ownerReferences") or [] if r.get("kind") == "ModelVersion"), None)
    if ref is None:
        return
    mv = kube.get(API_VERSION, "ModelVersion", body.metadata.namespace, ref["name"])
    if mv is None or mv["metadata"]["uid"] != ref["uid"]:
        return
    if _verified_before(mv) or constitution_check.mismatch(
            "ModelVersion", (mv.get("spec") or {}).get("constitutionalHash"), memo.settings.constitutional_hash):
        return
    sync_verification(mv)


@kopf.on.field(GROUP, VERSION, "modelversions", id="stage-history", field="spec.stage")
def record_stage(body: kopf.Body, old: Any, new: Any, **_: Any) -> None:
    mv = _plain(body)
    history = list((mv.get("status") or {}).get("stageHistory") or [])
    entry = f"{cond.now()} {new}" if old is None else f"{cond.now()} {old} -> {new}"
    history = (history + [entry])[-STAGE_HISTORY_MAX:]
    _write_status(mv, {"stageHistory": history})
    if old is not None:
        kopf.info(mv, reason="StageChanged", message=f"stage {old} -> {new}")
