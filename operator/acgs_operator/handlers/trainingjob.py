"""TrainingJob reconciler: children on create/resume, status from the child Job's events, and the
ModelVersion on success. Builders decide what objects look like, `decisions.trainingjob` what the
status is; this module observes, calls them and applies."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import kopf
from acgs_contract.result import TrainerResult
from pydantic import ValidationError

from .. import conditions as cond
from .. import constitution_check, errors, events, kube, semver
from ..api.trainingjob import TERMINAL_PHASES, TrainingJobPhase, TrainingJobSpec
from ..builders import modelversion as mvb
from ..builders import trainingjob as tjb
from ..builders.common import Owner
from ..config import Settings
from ..constants import API_VERSION, GROUP, LABEL_COMPONENT, LABEL_OWNER_KIND, VERSION
from ..decisions import jobrun, queueing
from ..decisions import trainingjob as decide
from ..events import NORMAL, WARNING, Event
from ..metrics import RECONCILES
from ..servers.progress import progress_token

KIND = "TrainingJob"
log = logging.getLogger("acgs_operator.trainingjob")
PLURAL = "trainingjobs"
ANNOTATION_TJ_UID = "acgs.io/training-job-uid"
IMAGE_NOT_ALLOWED = "ImageNotAllowed"


def _parse(tj: dict[str, Any]) -> TrainingJobSpec:
    try:
        spec = TrainingJobSpec.model_validate(dict(tj.get("spec") or {}))
    except ValidationError as exc:
        raise errors.invalid_spec(exc) from None
    if not spec.output.pvc:
        raise errors.SpecError(cond.INVALID_SPEC, "spec.output.pvc: required - the artifact must be written to a "
                               "PersistentVolumeClaim so it outlives the pod and the ModelVersion can point at it")
    hostname = f"{tjb.job_name(tj['metadata']['name'])}-{spec.workers - 1}"
    if spec.workers > 1 and len(hostname) > 63:
        raise errors.SpecError(cond.INVALID_SPEC, f"metadata.name {tj['metadata']['name']!r}: too long for "
                               f"spec.workers={spec.workers}; its pods' hostnames (like {hostname!r}) would "
                               "exceed 63 characters; expected a name of at most "
                               f"{63 - len('-train-') - len(str(spec.workers - 1))} characters")
    return spec


def _parent(spec: TrainingJobSpec, namespace: str) -> dict[str, Any] | None:
    if not spec.parent_version:
        return None
    parent = kube.get(API_VERSION, "ModelVersion", namespace, spec.parent_version)
    if parent is None:
        raise errors.SpecError(cond.PARENT_NOT_FOUND, f"spec.parentVersion: ModelVersion {spec.parent_version!r} "
                               f"not found in namespace {namespace!r}; expected an existing ModelVersion name")
    return parent


def apply_children(tj: dict[str, Any], spec: TrainingJobSpec, settings: Settings, key: bytes,
                   parent_version: str | None) -> dict[str, Any]:
    owner = Owner.of(tj)
    token = progress_token(key, owner.namespace, owner.name, owner.uid)
    children = [tjb.build_config_map(spec, owner, settings, parent_version),
                tjb.build_progress_secret(spec, owner, token),
                tjb.build_network_policy(spec, owner, settings)]
    if spec.workers > 1:
        children.append(tjb.build_headless_service(spec, owner))  # before the pods need their names
    for child in children:
        kube.apply(child)
    job = kube.get("batch/v1", "Job", owner.namespace, tjb.job_name(owner.name))
    if job is None:
        # Admission checked spec.image against the allowlist of its day; the allowlist may have shrunk.
        refused = settings.image_allowlist.problem("spec.image", spec.image or settings.trainer_image)
        if refused:
            raise errors.SpecError(IMAGE_NOT_ALLOWED, refused)
        # Created once: Kueue owns suspend/nodeSelector afterwards, and a pod template is immutable.
        job = kube.apply(tjb.build_job(spec, owner, settings))
        # One line per Job this process created: the HA chaos test reads it to prove no two
        # replicas created (reconciled) the same TrainingJob's Job.
        log.info("created Job %s/%s", owner.namespace, job["metadata"]["name"])
        events.post(tj, Event(NORMAL, cond.JOB_CREATED, f"Created Job {job['metadata']['name']}"
                              + (" (suspended)" if job["spec"].get("suspend") else "")))
    elif not owner.owns(job):
        raise errors.SpecError(cond.INVALID_SPEC, f"metadata.name {owner.name!r}: Job {job['metadata']['name']} "
                               "exists and belongs to another object; expected a name whose Job is free "
                               "(rename the TrainingJob or delete that Job)")
    return job


def _artifact_uri(spec: TrainingJobSpec, owner: Owner, result: TrainerResult) -> str:
    path = result.artifact_path or ""
    mount = spec.output.path.rstrip("/") + "/"
    if path.startswith(mount):
        return f"pvc://{spec.output.pvc}/{path[len(mount):].strip('/')}"
    return tjb.artifact_uri(spec, owner)


def ensure_model_version(tj: dict[str, Any], spec: TrainingJobSpec, job: dict[str, Any],
                         result: TrainerResult) -> dict[str, Any]:
    """Create (once) the ModelVersion of a successful run; a retried call finds the one it made."""
    owner = Owner.of(tj)
    parent = _parent(spec, owner.namespace)
    parent_semver = parent["spec"]["version"] if parent else None
    pod_spec = job["spec"]["template"]["spec"]
    scheduling = {k: pod_spec[k] for k in ("nodeSelector", "tolerations") if pod_spec.get(k)}
    mvs = kube.resource(API_VERSION, "ModelVersion")
    for version in semver.candidates(parent_semver, spec.version_policy):
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
                created: dict[str, Any] = mvs.create(body=body, namespace=owner.namespace).to_dict()
            except kube.ApiException as exc:
                if exc.status == 409:
                    continue  # created concurrently: look again
                raise
            events.post(tj, Event(NORMAL, cond.MODEL_VERSION_CREATED,
                                  f"Created ModelVersion {created['metadata']['name']} (version {version}, "
                                  f"digest {result.digest})"))
            return created
    raise errors.SpecError(cond.INVALID_SPEC, f"spec.versionPolicy {spec.version_policy!r}: no free version after "
                           f"{parent_semver or '0.0.0'} for model {spec.model_name!r} in namespace "
                           f"{owner.namespace!r}; expected a free version within 100 bumps")


def sync_status(tj: dict[str, Any]) -> None:
    """Observe the child Job (and its pods), let `decisions.trainingjob` decide, write what changed."""
    meta = tj["metadata"]
    spec = _parse(tj)
    owner = Owner.of(tj)
    job = kube.get("batch/v1", "Job", owner.namespace, tjb.job_name(owner.name))
    if job is not None and not owner.owns(job):
        job = None
    pods = (kube.list_("v1", "Pod", owner.namespace,
                       label_selector=f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}")
            if job else [])
    run = jobrun.observe(job, pods, tjb.CONTAINER)
    job_name = job["metadata"]["name"] if job else None
    old, generation = tj.get("status") or {}, meta.get("generation")
    queued = (_queue_wait(job, spec.queue_name)
              if job is not None and spec.queue_name and run.phase is jobrun.SUSPENDED else None)
    decision = decide.decide(run, job_name, old, generation, queued=queued)
    if decision.needs_model_version:
        assert job is not None and decision.result is not None
        mv = ensure_model_version(tj, spec, job, decision.result)
        created = decide.CreatedModelVersion(mv["metadata"]["name"], mv["spec"]["artifact"]["digest"])
        decision = decide.decide(run, job_name, old, generation, created)
    kube.patch_status_changes({"apiVersion": API_VERSION, "kind": KIND, **tj}, decision.status)
    if decision.event:
        events.post(tj, decision.event)
    RECONCILES.labels(KIND, decision.phase.value).inc()


def _queue_wait(job: dict[str, Any], queue_name: str) -> queueing.QueueWait:
    """Kueue's word on a suspended Job of a queue: the condition of its Workload (read only; Kueue
    alone unsuspends or suspends the Job)."""
    meta = job["metadata"]
    try:
        workloads = kube.list_(queueing.KUEUE_API_VERSION, "Workload", meta["namespace"],
                               label_selector=f"{queueing.LABEL_JOB_UID}={meta['uid']}")
    except (kube.ResourceNotFoundError, kube.ApiException):
        workloads = []  # Kueue is not installed (or not readable): say so in the message
    return queueing.wait_of(queueing.workload_of(workloads, meta["uid"]), queue_name, meta["name"])


def reconcile(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    tj = _plain(body)
    try:
        spec = _parse(tj)
        _check_constitution(tj, spec, memo.settings)
        if (tj.get("status") or {}).get("phase") not in TERMINAL_PHASES:
            parent = _parent(spec, tj["metadata"]["namespace"])
            apply_children(tj, spec, memo.settings, memo.progress_key, parent["metadata"]["name"] if parent else None)
        sync_status(tj)
    except errors.SpecError as exc:
        logger.error("%s: %s", exc.reason, exc)
        RECONCILES.labels(KIND, "invalid").inc()
        raise errors.fail(tj, exc) from None


def _check_constitution(tj: dict[str, Any], spec: TrainingJobSpec, settings: Settings) -> None:
    """Hold a TrainingJob whose constitution is not the operator's current one: no Job is created
    (one started earlier runs on; its ModelVersion is held by the ModelVersion reconciler)."""
    status = tj.get("status") or {}
    generation = tj["metadata"].get("generation")
    problem = constitution_check.mismatch(KIND, spec.constitutional_hash, settings.constitutional_hash)
    write = {"apiVersion": API_VERSION, "kind": KIND, **tj}
    if problem is None:
        if constitution_check.is_marked(status):  # reconfigured back: say so, then carry on
            tj["status"] = {**status, "conditions": constitution_check.mark(status.get("conditions"), None, generation)}
            kube.patch_status_changes({**write, "status": status}, {"conditions": tj["status"]["conditions"]})
        return
    if status.get("phase") in TERMINAL_PHASES:
        return  # finished before the reconfiguration: its outcome stands
    conditions = constitution_check.mark(status.get("conditions"), problem, generation)
    update = {"conditions": cond.kstatus(conditions, ready=False, stalled=True, reason=constitution_check.MISMATCH,
                                         message=problem, generation=generation),
              "message": problem, "observedGeneration": generation}
    if not status.get("phase") or status.get("phase") == TrainingJobPhase.PENDING.value:
        update["phase"] = TrainingJobPhase.PENDING.value
    kube.patch_status_changes(write, update)
    if not constitution_check.is_marked(status):
        events.post(tj, Event(WARNING, constitution_check.MISMATCH, problem))
    raise kopf.TemporaryError(problem, delay=constitution_check.RECHECK_SECONDS)


def spec_changed(body: kopf.Body, **_: Any) -> None:
    # Looked at and deliberately not applied: the status describes this generation as it stands.
    tj = _plain(body)
    kube.patch_status_changes({"apiVersion": API_VERSION, "kind": KIND, **tj},
                              cond.observe_generation(tj.get("status") or {}, tj["metadata"].get("generation")))
    events.post(body, Event(WARNING, cond.SPEC_CHANGE_IGNORED,
                            "spec changes after the Job is created are not applied (a Job's pod template is "
                            "immutable); delete and re-create the TrainingJob to rerun"))


# kopf never retries an on.event handler, and no later event may come for a finished Job: a failed
# status write (the apiserver restarting, a conflict, an admission hiccup) would leave the
# TrainingJob Running until the operator restarts. So the event handlers retry themselves, with
# backoff, for about 3.5 minutes; each attempt re-reads the TrainingJob and the Job. Later events of
# the same object wait behind it (kopf serialises an object's events), which is what we want.
JOB_EVENT_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0)


async def _retried(sync: Any, meta: dict[str, Any], what: str, logger: kopf.Logger) -> None:
    for attempt, delay in enumerate((0.0, *JOB_EVENT_RETRY_DELAYS)):
        await asyncio.sleep(delay)
        try:
            # The blocking client, off kopf's event loop (the webhook shares that loop).
            await asyncio.to_thread(sync, meta, logger)
            return
        except Exception as exc:  # noqa: BLE001 - any failure of the write is retried, then logged
            message = kube.error_message(exc) if isinstance(exc, kube.ApiException) else str(exc)
            if attempt == len(JOB_EVENT_RETRY_DELAYS):
                logger.error("status of %s not written after %d attempts: %s", what, attempt + 1, message)
                return
            logger.warning("status of %s not written (attempt %d): %s; retrying in %.1fs",
                           what, attempt + 1, message, JOB_EVENT_RETRY_DELAYS[attempt])


async def job_event(body: kopf.Body, type: str | None, logger: kopf.Logger, **_: Any) -> None:
    if type == "DELETED":
        return  # the TTL controller removed a finished Job; the TrainingJob keeps its final status
    meta = dict(body.metadata)
    ref = next((r for r in meta.get("ownerReferences") or [] if r.get("kind") == KIND), None)
    if ref is not None:
        await _retried(_sync_owner, meta, f"TrainingJob {ref['name']}", logger)


async def workload_event(body: kopf.Body, type: str | None, logger: kopf.Logger, **_: Any) -> None:
    """A Kueue Workload changed (created, quota reserved or refused, evicted): re-read the
    TrainingJob of its Job, whose status carries Kueue's reason while the Job waits."""
    if type == "DELETED":
        return
    meta = dict(body.metadata)
    await _retried(_sync_workload_owner, meta, f"the TrainingJob of Workload {meta.get('name')}", logger)


def _sync_workload_owner(workload_meta: dict[str, Any], logger: kopf.Logger) -> None:
    ref = next((r for r in workload_meta.get("ownerReferences") or []
                if r.get("kind") == "Job" and r.get("apiVersion") == "batch/v1"), None)
    if ref is None:
        return
    job = kube.get("batch/v1", "Job", workload_meta["namespace"], ref["name"])
    if job is None or job["metadata"]["uid"] != ref["uid"]:
        return
    if (job["metadata"].get("labels") or {}).get(LABEL_OWNER_KIND) != KIND.lower():
        return
    _sync_owner(job["metadata"], logger)


def _sync_owner(job_meta: dict[str, Any], logger: kopf.Logger) -> None:
    ref = next((r for r in job_meta.get("ownerReferences") or [] if r.get("kind") == KIND), None)
    if ref is None:
        return
    tj = kube.get(API_VERSION, KIND, job_meta["namespace"], ref["name"])
    if tj is None or tj["metadata"]["uid"] != ref["uid"] or tj["metadata"].get("deletionTimestamp"):
        return
    try:
        sync_status(tj)
    except errors.SpecError as exc:
        logger.error("%s: %s", exc.reason, exc)
        errors.fail(tj, exc)  # the outcome is final: nothing to stop (an event handler)


def _plain(body: kopf.Body) -> dict[str, Any]:
    plain: dict[str, Any] = json.loads(json.dumps(dict(body)))
    return plain


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.resume(GROUP, VERSION, PLURAL, id="reconcile", registry=registry)(reconcile)
    kopf.on.create(GROUP, VERSION, PLURAL, id="reconcile", registry=registry)(reconcile)
    kopf.on.update(GROUP, VERSION, PLURAL, id="spec-changed", field="spec", registry=registry)(spec_changed)
    kopf.on.event("batch", "v1", "jobs", id="trainingjob-job", registry=registry,
                  labels={LABEL_OWNER_KIND: KIND.lower(), LABEL_COMPONENT: tjb.COMPONENT})(job_event)
    # Served only where Kueue's CRDs were installed before the operator started (no CRD scanning).
    kopf.on.event("kueue.x-k8s.io", queueing.KUEUE_API_VERSION.split("/")[1], "workloads",
                  id="trainingjob-workload", registry=registry)(workload_event)
