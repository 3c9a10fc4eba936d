"""TrainingJob reconciler: children on create/resume, status from the child Job's events, and the
ModelVersion on success. Builders decide what objects look like; this module fetches and applies."""

from __future__ import annotations

import json
from typing import Any

import kopf
from acgs_contract.result import TrainerResult, parse_trainer_result
from pydantic import ValidationError

from .. import conditions as cond
from .. import constitution_check, kube
from ..admission import describe
from ..api.trainingjob import TrainingJobSpec, TrainingProgress
from ..builders import jobstatus
from ..builders import modelversion as mvb
from ..builders import trainingjob as tjb
from ..config import Settings
from ..constants import API_VERSION, GROUP, LABEL_COMPONENT, LABEL_OWNER_KIND, VERSION
from ..metrics import RECONCILES
from . import lifecycle
from .progress import progress_token

lifecycle.RECONCILED.add("TrainingJob")

ANNOTATION_TJ_UID = "acgs.io/training-job-uid"
IMAGE_NOT_ALLOWED = "ImageNotAllowed"
CONDITION_TYPES = (cond.CREATED, cond.RUNNING, cond.SUSPENDED, cond.SUCCEEDED, cond.FAILED)


class Invalid(Exception):
    """The spec can never work as written; `reason` and the message name the field."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _owner(tj: dict[str, Any]) -> tjb.Owner:
    meta = tj["metadata"]
    return tjb.Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"],
                     labels=dict(meta.get("labels") or {}))


def _parse(tj: dict[str, Any]) -> TrainingJobSpec:
    try:
        spec = TrainingJobSpec.model_validate(dict(tj.get("spec") or {}))
    except ValidationError as exc:
        raise Invalid(cond.INVALID_SPEC, describe(exc)) from None
    if not spec.output.pvc:
        raise Invalid(cond.INVALID_SPEC, "spec.output.pvc: required - the artifact must be written to a "
                      "PersistentVolumeClaim so it outlives the pod and the ModelVersion can point at it")
    return spec


def _parent(spec: TrainingJobSpec, namespace: str) -> dict[str, Any] | None:
    if not spec.parent_version:
        return None
    parent = kube.get(API_VERSION, "ModelVersion", namespace, spec.parent_version)
    if parent is None:
        raise Invalid(cond.PARENT_NOT_FOUND, f"spec.parentVersion: ModelVersion {spec.parent_version!r} not "
                      f"found in namespace {namespace!r}; expected an existing ModelVersion name")
    return parent


def _write_status(tj: dict[str, Any], status: dict[str, Any]) -> None:
    kube.patch_status_changes({"apiVersion": API_VERSION, "kind": "TrainingJob", **tj}, status)


def _fail(tj: dict[str, Any], reason: str, message: str) -> None:
    generation = tj["metadata"].get("generation")
    conditions = (tj.get("status") or {}).get("conditions")
    for type_ in (cond.RUNNING, cond.SUCCEEDED):
        if cond.get_condition(conditions, type_):
            conditions = cond.set_condition(conditions, type_, False, reason, message, generation)
    conditions = cond.set_condition(conditions, cond.FAILED, True, reason, message, generation)
    _write_status(tj, {"phase": "Failed", "message": message, "conditions": conditions,
                       "observedGeneration": generation})
    if (tj.get("status") or {}).get("phase") != "Failed":
        kopf.warn(tj, reason=reason, message=message[:1000])


def _job_owned(job: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in job["metadata"].get("ownerReferences") or [])


def apply_children(tj: dict[str, Any], spec: TrainingJobSpec, settings: Settings, key: bytes,
                   parent_version: str | None) -> dict[str, Any]:
    owner = _owner(tj)
    token = progress_token(key, owner.namespace, owner.name, owner.uid)
    for child in (tjb.build_config_map(spec, owner, settings, parent_version),
                  tjb.build_progress_secret(spec, owner, token),
                  tjb.build_network_policy(spec, owner, settings)):
        kopf.append_owner_reference(child, owner=tj)
        kube.apply(child)
    job = kube.get("batch/v1", "Job", owner.namespace, tjb.job_name(owner.name))
    if job is None:
        # Admission checked spec.image against the allowlist of its day; the allowlist may have shrunk.
        refused = settings.image_allowlist.problem("spec.image", spec.image or settings.trainer_image)
        if refused:
            raise Invalid(IMAGE_NOT_ALLOWED, refused)
        # Created once: Kueue owns suspend/nodeSelector afterwards, and a pod template is immutable.
        job = tjb.build_job(spec, owner, settings)
        kopf.append_owner_reference(job, owner=tj)
        job = kube.apply(job)
        kopf.info(tj, reason=cond.JOB_CREATED, message=f"Created Job {job['metadata']['name']}"
                  + (" (suspended)" if job["spec"].get("suspend") else ""))
    elif not _job_owned(job, owner.uid):
        raise Invalid(cond.INVALID_SPEC, f"Job {job['metadata']['name']} exists and belongs to another object; "
                      "rename the TrainingJob or delete that Job")
    return job


def _artifact_uri(spec: TrainingJobSpec, owner: tjb.Owner, result: TrainerResult) -> str:
    path = result.artifact_path or ""
    mount = spec.output.path.rstrip("/") + "/"
    if path.startswith(mount):
        return f"pvc://{spec.output.pvc}/{path[len(mount):].strip('/')}"
    return tjb.artifact_uri(spec, owner)


def ensure_model_version(tj: dict[str, Any], spec: TrainingJobSpec, job: dict[str, Any],
                         result: TrainerResult) -> dict[str, Any]:
    """Create (once) the ModelVersion of a successful run; a retried call finds the one it made."""
    owner = _owner(tj)
    parent = _parent(spec, owner.namespace)
    parent_semver = parent["spec"]["version"] if parent else None
    pod_spec = job["spec"]["template"]["spec"]
    scheduling = {k: pod_spec[k] for k in ("nodeSelector", "tolerations") if pod_spec.get(k)}
    mvs = kube.resource(API_VERSION, "ModelVersion")
    for version in mvb.candidate_versions(parent_semver, spec.version_policy):
        body = mvb.build_model_version(spec, owner.name, owner.namespace, version, spec.parent_version,
                                       _artifact_uri(spec, owner, result), result, scheduling)
        body["metadata"]["annotations"][ANNOTATION_TJ_UID] = owner.uid
        for _ in range(2):
            existing = kube.get(API_VERSION, "ModelVersion", owner.namespace, body["metadata"]["name"])
            if existing is not None:
                if (existing["metadata"].get("annotations") or {}).get(ANNOTATION_TJ_UID) == owner.uid:
                    return existing
                break  # taken by another model: try the next version
            try:
                created = mvs.create(body=body, namespace=owner.namespace).to_dict()
            except kube.ApiException as exc:
                if exc.status == 409:
                    continue  # created concurrently: look again
                raise
            kopf.info(tj, reason=cond.MODEL_VERSION_CREATED,
                      message=f"Created ModelVersion {created['metadata']['name']} (version {version}, "
                              f"digest {result.digest})")
            return created
    raise Invalid(cond.INVALID_SPEC, f"no free version after {parent_semver or '0.0.0'} for model "
                  f"{spec.model_name!r} in namespace {owner.namespace!r}")


def sync_status(tj: dict[str, Any]) -> None:
    """Status from the child Job (and its pods), written only when it changed."""
    meta, old = tj["metadata"], tj.get("status") or {}
    spec = _parse(tj)
    job = kube.get("batch/v1", "Job", meta["namespace"], tjb.job_name(meta["name"]))
    if job is not None and not _job_owned(job, meta["uid"]):
        job = None
    pods = (kube.list_("v1", "Pod", meta["namespace"],
                       label_selector=f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}")
            if job else [])
    obs = jobstatus.observe(job, pods, tjb.CONTAINER)
    generation = meta.get("generation")
    status: dict[str, Any] = {"phase": obs.phase, "message": obs.message[:2000], "observedGeneration": generation}
    if job is not None:
        status["jobName"] = job["metadata"]["name"]
    if obs.start_time:
        status["startTime"] = obs.start_time
    if obs.completion_time:
        status["completionTime"] = obs.completion_time
    result = parse_trainer_result(obs.result)  # None: the pod left no result (a crash's log tail)
    if obs.phase == jobstatus.SUCCEEDED and not old.get("modelVersion"):
        if result is None or not result.digest:
            obs.phase, obs.reason = jobstatus.FAILED, cond.RESULT_MISSING
            obs.message = ("the trainer pod exited 0 but left no result (digest) in its termination message; "
                           "no ModelVersion was created")
            status.update(phase=obs.phase, message=obs.message)
        else:
            mv = ensure_model_version(tj, spec, job, result)  # type: ignore[arg-type]  # job: not None
            status["modelVersion"] = mv["metadata"]["name"]
            status["artifactDigest"] = mv["spec"]["artifact"]["digest"]
            status["message"] = f"ModelVersion {mv['metadata']['name']} created; {obs.message}"[:2000]
    if obs.phase in (jobstatus.SUCCEEDED, jobstatus.FAILED) and result is not None:
        progress = dict(old.get("progress") or {})
        for key, value in (("epsilon", result.epsilon), ("step", result.steps),
                           ("totalSteps", result.total_steps)):
            if value is not None:
                progress[key] = value
        if obs.phase == jobstatus.SUCCEEDED:
            progress["percent"] = 100.0
        status["progress"] = TrainingProgress.model_validate(progress).to_api()  # shown rounded, ε rounded up
    conditions = old.get("conditions")
    conditions = cond.set_condition(conditions, cond.CREATED, job is not None,
                                    cond.JOB_CREATED if job else cond.PENDING,
                                    f"Job {job['metadata']['name']}" if job else "no Job yet", generation)
    for type_, phase in ((cond.RUNNING, jobstatus.RUNNING), (cond.SUSPENDED, jobstatus.SUSPENDED),
                         (cond.SUCCEEDED, jobstatus.SUCCEEDED), (cond.FAILED, jobstatus.FAILED)):
        active = obs.phase == phase
        if active or cond.get_condition(conditions, type_):
            conditions = cond.set_condition(conditions, type_, active, obs.reason if active else obs.phase,
                                            status["message"] if active else "", generation)
    status["conditions"] = conditions
    _write_status(tj, status)
    if old.get("phase") != obs.phase:
        _announce(tj, obs.phase, obs.reason, status["message"])
    RECONCILES.labels("TrainingJob", obs.phase).inc()


def _announce(tj: dict[str, Any], phase: str, reason: str, message: str) -> None:
    if phase == jobstatus.FAILED:
        kopf.warn(tj, reason=reason, message=message[:1000])
    elif phase in (jobstatus.RUNNING, jobstatus.SUCCEEDED, jobstatus.SUSPENDED):
        kopf.info(tj, reason=reason, message=message[:1000])


@kopf.on.resume(GROUP, VERSION, "trainingjobs", id="reconcile")
@kopf.on.create(GROUP, VERSION, "trainingjobs", id="reconcile")
def reconcile(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    tj = _plain(body)
    try:
        spec = _parse(tj)
        _check_constitution(tj, spec, memo.settings)
        if (tj.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            parent = _parent(spec, tj["metadata"]["namespace"])
            apply_children(tj, spec, memo.settings, memo.progress_key, parent["metadata"]["name"] if parent else None)
        sync_status(tj)
    except Invalid as exc:
        logger.error("%s: %s", exc.reason, exc)
        _fail(tj, exc.reason, str(exc))
        RECONCILES.labels("TrainingJob", "invalid").inc()
        raise kopf.PermanentError(str(exc)) from None


def _check_constitution(tj: dict[str, Any], spec: TrainingJobSpec, settings: Settings) -> None:
    """Hold a TrainingJob whose constitution is not the operator's current one: no Job is created
    (one started earlier runs on; its ModelVersion is held by the ModelVersion reconciler)."""
    status = tj.get("status") or {}
    generation = tj["metadata"].get("generation")
    problem = constitution_check.mismatch("TrainingJob", spec.constitutional_hash, settings.constitutional_hash)
    if problem is None:
        if constitution_check.is_marked(status):  # reconfigured back: say so, then carry on
            tj["status"] = {**status, "conditions": constitution_check.mark(status.get("conditions"), None, generation)}
            _write_status({**tj, "status": status}, {"conditions": tj["status"]["conditions"]})
        return
    if status.get("phase") in ("Succeeded", "Failed"):
        return  # finished before the reconfiguration: its outcome stands
    update = {"conditions": constitution_check.mark(status.get("conditions"), problem, generation),
              "message": problem, "observedGeneration": generation}
    if not status.get("phase") or status.get("phase") == "Pending":
        update["phase"] = "Pending"
    _write_status(tj, update)
    if not constitution_check.is_marked(status):
        kopf.warn(tj, reason=constitution_check.MISMATCH, message=problem)
    raise kopf.TemporaryError(problem, delay=constitution_check.RECHECK_SECONDS)


@kopf.on.update(GROUP, VERSION, "trainingjobs", id="spec-changed", field="spec")
def spec_changed(body: kopf.Body, **_: Any) -> None:
    kopf.warn(body, reason="SpecChangeIgnored", message="spec changes after the Job is created are not "
              "applied (a Job's pod template is immutable); delete and re-create the TrainingJob to rerun")


@kopf.on.event("batch", "v1", "jobs", id="trainingjob-job",
               labels={LABEL_OWNER_KIND: "trainingjob", LABEL_COMPONENT: tjb.COMPONENT})
def job_event(body: kopf.Body, type: str | None, logger: kopf.Logger, **_: Any) -> None:
    if type == "DELETED":
        return  # the TTL controller removed a finished Job; the TrainingJob keeps its final status
    ref = next((r for r in body.metadata.get("ownerReferences") or [] if r.get("kind") == "TrainingJob"), None)
    if ref is None:
        return
    tj = kube.get(API_VERSION, "TrainingJob", body.metadata.namespace, ref["name"])
    if tj is None or tj["metadata"]["uid"] != ref["uid"] or tj["metadata"].get("deletionTimestamp"):
        return
    try:
        sync_status(tj)
    except Invalid as exc:
        logger.error("%s: %s", exc.reason, exc)
        _fail(tj, exc.reason, str(exc))


def _plain(body: kopf.Body) -> dict[str, Any]:
    return json.loads(json.dumps(dict(body)))
