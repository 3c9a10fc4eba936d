"""FlywheelPolicy: collect (count the Deployment's usable logged interactions with a short,
owned collector Job) and trigger (record a run on a snapshot when due). `decisions.flywheel`
decides the status; this module observes, calls it and applies. Each tick first moves a run in
progress on and acts on an acgs.io/promote request (handlers.flywheel_run), then collects."""

from __future__ import annotations

import json
import time
from typing import Any

import kopf
from acgs_contract import flywheel as contract
from acgs_contract import timefmt
from acgs_contract.result import FAILED
from pydantic import ValidationError

from .. import errors, events, kube
from ..api.deployment import DeploymentSpec
from ..api.flywheel import FlywheelPolicySpec
from ..builders import flywheel as fwb
from ..builders.common import Owner
from ..config import Settings
from ..constants import API_VERSION, GROUP, VERSION
from ..decisions import flywheel as decide
from ..decisions import jobrun
from ..metrics import observe_flywheel_budget, observe_flywheel_policy, observe_flywheel_records
from . import flywheel_run

KIND = "FlywheelPolicy"
PLURAL = "flywheelpolicies"
# The timer only reads a Job (and writes when something changed); collections are spaced by
# decisions.flywheel.COLLECT_EVERY_SECONDS, so this is how soon a finished one or a run-now shows.
TICK_SECONDS = 10.0


def _write_status(policy: dict[str, Any], status: dict[str, Any]) -> None:
    kube.patch_status_changes({"apiVersion": API_VERSION, "kind": KIND, **policy}, status)


def _finish_collection(policy: dict[str, Any], spec: FlywheelPolicySpec, job: dict[str, Any]) -> bool:
    """Read a finished collector Job into status (it expires by its TTL); False while it runs."""
    owner = Owner.of(policy)
    pods = kube.list_("v1", "Pod", owner.namespace,
                      label_selector=f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}")
    run = jobrun.observe(job, pods, fwb.COLLECT_CONTAINER)
    if run.phase not in (jobrun.SUCCEEDED, jobrun.FAILED):
        return False
    result = contract.parse_collect_result(run.result) or contract.CollectResult(
        phase=FAILED, reason=run.reason, message=f"no collection result in the termination message: {run.message}")
    if run.phase is jobrun.FAILED and result.phase != FAILED:
        result = result.model_copy(update={"phase": FAILED, "reason": run.reason})
    meta = policy["metadata"]
    decision = decide.collected(policy.get("status") or {}, spec, result, policy_uid=meta["uid"],
                                run_now=(meta.get("annotations") or {}).get(decide.ANNOTATION_RUN_NOW),
                                generation=meta.get("generation"), now=timefmt.now())
    _write_status(policy, {**decision.status, "collectorJob": None})
    if result.phase != FAILED:
        observe_flywheel_records(policy["metadata"]["namespace"], policy["metadata"]["name"],
                                 result.records_usable, result.excluded)
    for event in decision.events:
        events.post(policy, event)
    return True


def _collect_source(policy: dict[str, Any], spec: FlywheelPolicySpec) -> tuple[DeploymentSpec, str] | str:
    """(the Deployment's spec, its interaction-log claim), or why the log cannot be collected."""
    namespace = policy["metadata"]["namespace"]
    deployment = kube.get(API_VERSION, "Deployment", namespace, spec.deployment_ref)
    if deployment is None:
        return (f"{decide.DEPLOYMENT_NOT_FOUND}|spec.deploymentRef={spec.deployment_ref!r}: no acgs.io Deployment "
                f"of that name in namespace {namespace}")
    try:
        deployment_spec = DeploymentSpec.model_validate(deployment.get("spec") or {})
    except ValidationError as exc:
        return f"{decide.DEPLOYMENT_NOT_FOUND}|spec.deploymentRef={spec.deployment_ref!r}: {errors.describe(exc)}"
    claim = deployment_spec.interaction_log_pvc
    if not claim:
        return (f"{decide.NO_INTERACTION_LOG_PVC}|Deployment {spec.deployment_ref} (spec.deploymentRef) has no "
                "spec.interactionLogPvc: its servers log to an emptyDir no collector can read")
    if kube.get("v1", "PersistentVolumeClaim", namespace, claim) is None:
        return (f"{decide.INTERACTION_LOG_PVC_NOT_FOUND}|Deployment {spec.deployment_ref} spec.interactionLogPvc="
                f"{claim!r}: no PersistentVolumeClaim of that name in namespace {namespace}")
    return deployment_spec, claim


def reconcile(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    policy: dict[str, Any] = json.loads(json.dumps(dict(body)))
    policy.setdefault("kind", KIND)
    meta, status = policy["metadata"], policy.get("status") or {}
    settings: Settings = memo.settings
    try:
        spec = FlywheelPolicySpec.model_validate(policy.get("spec") or {})
    except ValidationError as exc:
        _write_status(policy, decide.blocked(status, "InvalidSpec", errors.describe(exc), meta.get("generation")))
        return
    observe_flywheel_policy(meta["namespace"], meta["name"])
    # From status, so a restarted operator exports them before the next collection or run.
    if status.get("recordsUsable") is not None:
        observe_flywheel_records(meta["namespace"], meta["name"], status["recordsUsable"],
                                 status.get("recordsExcluded") or {})
    observe_flywheel_budget(meta["namespace"], meta["name"], status.get("budget"))
    # A run or a promotion that changed status ends this tick: the next one reads the new status.
    if status.get("currentRun") and flywheel_run.advance_run(policy, spec, settings, logger):
        return
    if flywheel_run.handle_promote_annotation(policy):
        return
    owner = Owner.of(policy)
    if status.get("collectorJob"):
        job = kube.get("batch/v1", "Job", owner.namespace, status["collectorJob"])
        if job is not None and owner.owns(job):
            _finish_collection(policy, spec, job)
            return
        # Gone before it was read (expired, or deleted by someone): collect again.
        _write_status(policy, {"collectorJob": None})
    run_now = (meta.get("annotations") or {}).get(decide.ANNOTATION_RUN_NOW)
    if not decide.collect_due(status, timefmt.now(), run_now):
        return
    source = _collect_source(policy, spec)
    if isinstance(source, str):
        reason, message = source.split("|", 1)
        if status.get("message") != message:
            events.post(policy, events.Event(events.WARNING, reason, message))
        _write_status(policy, decide.blocked(status, reason, message, meta.get("generation")))
        return
    deployment_spec, claim = source
    job = fwb.build_collect_job(owner, spec, deployment_spec, claim, settings.trainer_image, time.time())
    kube.apply(job)
    _write_status(policy, {"collectorJob": job["metadata"]["name"]})
    logger.info("collector Job %s started on claim %s", job["metadata"]["name"], claim)


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.timer(GROUP, VERSION, PLURAL, id="collect", interval=TICK_SECONDS, registry=registry)(reconcile)
