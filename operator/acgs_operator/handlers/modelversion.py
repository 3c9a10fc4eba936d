"""ModelVersion: Ready only after a verification Job has checked the artifact's manifest, every
file's sha256 and the overall digest on the artifact volume; stage changes go to stageHistory.
`decisions.modelversion` decides the status; this module observes, calls it and applies."""

from __future__ import annotations

import json
from typing import Any

import kopf
from acgs_contract import timefmt
from pydantic import ValidationError

from .. import conditions as cond
from .. import constitution_check, errors, events, kube
from ..api.modelversion import Metrics, ModelVersionPhase, ModelVersionSpec
from ..builders import modelversion as mvb
from ..builders.common import Owner
from ..config import Settings
from ..constants import API_VERSION, GROUP, LABEL_COMPONENT, LABEL_OWNER_KIND, VERSION
from ..decisions import jobrun
from ..decisions import modelversion as decide
from ..events import NORMAL, WARNING, Event
from ..metrics import RECONCILES

KIND = "ModelVersion"
PLURAL = "modelversions"
STAGE_HISTORY_MAX = 50


def _plain(body: kopf.Body) -> dict[str, Any]:
    plain: dict[str, Any] = json.loads(json.dumps(dict(body)))
    return plain


def _write_status(mv: dict[str, Any], status: dict[str, Any]) -> None:
    kube.patch_status_changes({"apiVersion": API_VERSION, "kind": KIND, **mv}, status)


def _verified_before(mv: dict[str, Any]) -> bool:
    """Verified, figures included (a record verified before figures were recorded is verified again)."""
    status = mv.get("status") or {}
    return (status.get("verifiedDigest") == (mv.get("spec") or {}).get("artifact", {}).get("digest")
            and status.get("verifiedMetrics") is not None)


def sync_verification(mv: dict[str, Any]) -> None:
    """Observe the verification Job (and its pods), let `decisions.modelversion` decide, write."""
    owner = Owner.of(mv)
    job = kube.get("batch/v1", "Job", owner.namespace, mvb.verify_job_name(owner.name))
    if job is not None and not owner.owns(job):
        job = None
    pods = (kube.list_("v1", "Pod", owner.namespace,
                       label_selector=f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}")
            if job else [])
    run = jobrun.observe(job, pods, mvb.VERIFY_CONTAINER)
    spec = mv["spec"]
    decision = decide.decide(run, spec["artifact"]["digest"], Metrics.model_validate(spec.get("metrics") or {}),
                             mv.get("status") or {}, mv["metadata"].get("generation"), timefmt.now())
    _write_status(mv, decision.status)
    if decision.event:
        events.post(mv, decision.event)
        RECONCILES.labels(KIND, decision.phase.value).inc()


def _held_for_constitution(mv: dict[str, Any], spec: ModelVersionSpec, settings: Settings) -> bool:
    """Not Ready while its constitution is not the operator's current one (so no Deployment selects
    it); back to Ready, without a new verification, once they match again."""
    status = mv.get("status") or {}
    generation = mv["metadata"].get("generation")
    problem = constitution_check.mismatch(KIND, spec.constitutional_hash, settings.constitutional_hash)
    if problem is None:
        if constitution_check.is_marked(status):
            conditions = constitution_check.mark(status.get("conditions"), None, generation)
            if _verified_before(mv):
                message = f"digest {spec.artifact.digest} verified; constitution matches again"
                conditions = cond.kstatus(conditions, ready=True, stalled=False, reason=cond.DIGEST_VERIFIED,
                                          message=message, generation=generation)
                _write_status(mv, {"phase": ModelVersionPhase.READY.value, "message": message,
                                   "conditions": conditions})
            else:
                _write_status(mv, {"conditions": conditions})
            mv["status"] = {**status, "conditions": conditions}
        return False
    if status.get("phase") == ModelVersionPhase.INVALID.value:
        return True  # never servable anyway; its reason stays
    conditions = constitution_check.mark(status.get("conditions"), problem, generation)
    conditions = cond.kstatus(conditions, ready=False, stalled=True, reason=constitution_check.MISMATCH,
                              message=problem, generation=generation)
    _write_status(mv, {"phase": ModelVersionPhase.PENDING.value, "message": problem, "conditions": conditions,
                       "observedGeneration": generation})
    if not constitution_check.is_marked(status):
        events.post(mv, Event(WARNING, constitution_check.MISMATCH, problem))
    raise kopf.TemporaryError(problem, delay=constitution_check.RECHECK_SECONDS)


def verify(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    mv = _plain(body)
    settings: Settings = memo.settings
    try:
        spec = ModelVersionSpec.model_validate(mv["spec"])
    except ValidationError as exc:
        raise errors.fail(mv, errors.invalid_spec(exc)) from None
    if _held_for_constitution(mv, spec, settings):
        return
    if _verified_before(mv):
        return  # verified before (the spec is immutable)
    if mvb.artifact_location(spec.artifact.uri) is None:
        _write_status(mv, decide.status(
            mv.get("status") or {}, ModelVersionPhase.PENDING, "Unknown", cond.UNSUPPORTED_ARTIFACT_URI,
            f"spec.artifact.uri {spec.artifact.uri!r}: only pvc://<claim>/<path> artifacts are verified by the "
            "operator; this version stays unverified", mv["metadata"].get("generation"), stalled=True))
        return
    owner = Owner.of(mv)
    if kube.get("batch/v1", "Job", owner.namespace, mvb.verify_job_name(owner.name)) is None:
        annotations = mv["metadata"].get("annotations") or {}
        scheduling = json.loads(annotations.get(mvb.ANNOTATION_VERIFY_SCHEDULING) or "{}")
        try:
            job = mvb.build_verify_job(owner, spec, settings.trainer_image, scheduling,
                                       settings.constitution_content_digest, settings.model_cache_pvc)
        except ValueError as exc:  # a base model reference no pod can mount
            raise errors.fail(mv, errors.SpecError(cond.INVALID_SPEC, str(exc))) from None
        kube.apply(job)
        logger.info("verification Job %s created", job["metadata"]["name"])
    sync_verification(mv)


def verify_job_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        return
    ref = next((r for r in body.metadata.get("ownerReferences") or [] if r.get("kind") == KIND), None)
    if ref is None:
        return
    mv = kube.get(API_VERSION, KIND, body.metadata.namespace, ref["name"])
    if mv is None or mv["metadata"]["uid"] != ref["uid"]:
        return
    if _verified_before(mv) or constitution_check.mismatch(
            KIND, (mv.get("spec") or {}).get("constitutionalHash"), memo.settings.constitutional_hash):
        return
    sync_verification(mv)


def record_stage(body: kopf.Body, old: Any, new: Any, **_: Any) -> None:
    mv = _plain(body)
    # Read afresh: `verify` may have written the status since this event's body was taken.
    fresh = kube.get(API_VERSION, KIND, mv["metadata"]["namespace"], mv["metadata"]["name"]) or mv
    status = fresh.get("status") or {}
    now = timefmt.now()
    entry = f"{now} {new}" if old is None else f"{now} {old} -> {new}"
    history = (list(status.get("stageHistory") or []) + [entry])[-STAGE_HISTORY_MAX:]
    # The stage is the one mutable field: recording it is looking at this generation, so every
    # condition now describes it (kstatus and `kubectl wait` compare observedGeneration).
    observed = cond.observe_generation(status, fresh["metadata"].get("generation")) if status.get("conditions") else {}
    _write_status(fresh, {"stageHistory": history, **observed})
    if old is not None:
        events.post(mv, Event(NORMAL, cond.STAGE_CHANGED, f"stage {old} -> {new}"))


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.resume(GROUP, VERSION, PLURAL, id="verify", registry=registry)(verify)
    kopf.on.create(GROUP, VERSION, PLURAL, id="verify", registry=registry)(verify)
    kopf.on.event("batch", "v1", "jobs", id="modelversion-verify-job", registry=registry,
                  labels={LABEL_OWNER_KIND: KIND.lower(), LABEL_COMPONENT: mvb.VERIFY_COMPONENT})(verify_job_event)
    kopf.on.field(GROUP, VERSION, PLURAL, id="stage-history", field="spec.stage", registry=registry)(record_stage)
