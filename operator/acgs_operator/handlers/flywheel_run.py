"""A FlywheelPolicy's run in progress and its promotions: observe the run's children, let
`decisions.flywheel_run` decide, create what it asks for, promote, write status. Called on every
tick of handlers.flywheel; everything it needs is in status and in owned, deterministically named
children, so it resumes after an operator restart."""

from __future__ import annotations

from typing import Any

import kopf
from acgs_contract import timefmt

from .. import events, kube
from ..api.deployment import DeploymentSpec
from ..api.flywheel import FlywheelPolicySpec
from ..artifacts import parse_pvc
from ..builders import flywheel_run as runb
from ..builders.common import Owner
from ..config import Settings
from ..constants import API_VERSION
from ..decisions import flywheel as decide
from ..decisions import flywheel_decide as fd
from ..decisions import flywheel_run as machine
from ..decisions import jobrun
from ..metrics import (
    observe_flywheel_budget,
    observe_flywheel_candidates,
    observe_flywheel_promotion,
    observe_flywheel_run,
)

KIND = "FlywheelPolicy"


def _write(policy: dict[str, Any], status: dict[str, Any]) -> None:
    kube.patch_status_changes({"apiVersion": API_VERSION, "kind": KIND, **policy}, status)


def _job(owner: Owner, name: str | None, container: str) -> jobrun.Observation | None:
    job = kube.get("batch/v1", "Job", owner.namespace, name) if name else None
    if job is None or not owner.owns(job):
        return None
    pods = kube.list_("v1", "Pod", owner.namespace,
                      label_selector=f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}")
    return jobrun.observe(job, pods, container)


def _artifact(namespace: str, name: str | None) -> machine.ArtifactView | None:
    mv = kube.get(API_VERSION, "ModelVersion", namespace, name) if name else None
    spec = (mv or {}).get("spec") or {}
    artifact = spec.get("artifact") or {}
    if not mv or not artifact.get("uri") or not artifact.get("digest"):
        return None
    return machine.ArtifactView(str(name), artifact["uri"], artifact["digest"], spec.get("modelName", ""),
                                spec.get("baseModel", ""))


def _observe(owner: Owner, status: dict[str, Any], deployment: dict[str, Any] | None) -> machine.RunObservation:
    run = status["currentRun"]
    obs = machine.RunObservation(prepare=_job(owner, run.get("prepareJob"), runb.PREPARE_CONTAINER))
    active = (deployment or {}).get("status", {}).get("activeModelVersion")
    obs.production = _artifact(owner.namespace, active)
    for c in status.get("candidates") or []:
        if c.get("state") == machine.EVALUATING and c.get("job"):
            observed = _job(owner, c["job"], runb.EVAL_CONTAINER)
            if observed is not None:
                obs.evals[c["name"]] = observed
        if c.get("state") == machine.TRAINING and c.get("trainingJob"):
            tj = kube.get(API_VERSION, "TrainingJob", owner.namespace, c["trainingJob"])
            if tj is not None and owner.owns(tj):
                tj_status = tj.get("status") or {}
                obs.trainings[c["name"]] = machine.TrainingView(tj_status.get("phase"), tj_status.get("modelVersion"),
                                                                tj_status.get("message") or "")
        version = c.get("modelVersion") or (obs.trainings.get(c["name"]) or machine.TrainingView(None, None)
                                            ).model_version
        view = _artifact(owner.namespace, version)
        if view is not None:
            obs.artifacts[view.model_version] = view
    return obs


def _workspace(policy: dict[str, Any], spec: FlywheelPolicySpec) -> str | None:
    """The run's workspace claim: spec.workspacePvc (None while it does not exist) or the policy's
    own, created."""
    owner = Owner.of(policy)
    if spec.workspace_pvc:
        if kube.get("v1", "PersistentVolumeClaim", owner.namespace, spec.workspace_pvc) is None:
            return None
        return spec.workspace_pvc
    pvc = runb.build_workspace_pvc(owner, spec)
    if kube.get("v1", "PersistentVolumeClaim", owner.namespace, pvc["metadata"]["name"]) is None:
        kube.apply(pvc)
    return str(pvc["metadata"]["name"])


def _start(policy: dict[str, Any], spec: FlywheelPolicySpec, settings: Settings, step: machine.RunStep,
           start: machine.Start, deployment_spec: DeploymentSpec, claim: str | None) -> None:
    owner = Owner.of(policy)
    run, scheduling, workspace = step.run, deployment_spec.resources, step.run["workspace"]
    if start.step == machine.PREPARE:
        assert claim is not None
        kube.apply(runb.build_prepare_job(owner, spec, run, claim, workspace, scheduling, settings.trainer_image))
        return
    candidate = next((c for c in spec.candidates if c.name == start.candidate), None)
    entry = next(c for c in step.candidates if c["name"] == start.candidate)
    if candidate is None and start.kind != machine.PRODUCTION_KIND:
        entry.update(state=machine.FAILED, reasons=[f"candidate {start.candidate} was removed from spec.candidates "
                                                    "during the run"])
        return
    try:
        if start.step == machine.TRAIN:
            assert candidate is not None and start.artifact is not None
            output_claim = parse_pvc(start.artifact.uri, f"ModelVersion {start.artifact.model_version} "
                                     "spec.artifact.uri").claim
            kube.apply(runb.build_training_job(owner, spec, run, candidate, workspace, start.artifact.model_version,
                                               start.artifact.model_name, output_claim, scheduling))
        else:
            artifact = start.artifact
            kube.apply(runb.build_eval_job(
                owner, spec, run["id"], start.candidate, machine.EVAL_KINDS[start.kind], workspace, scheduling,
                settings.trainer_image, settings.model_cache_pvc, candidate=candidate,
                artifact_uri=artifact.uri if artifact else None, artifact_digest=artifact.digest if artifact else None,
                artifact_base=artifact.base_model if artifact else "",
                constitution_digest=settings.constitution_content_digest))
    except (ValueError, kube.ApiException) as exc:
        # The child cannot be made (an artifact it cannot mount, a TrainingJob admission refuses):
        # this candidate fails, the others go on.
        why = kube.error_message(exc) if isinstance(exc, kube.ApiException) else str(exc)
        entry.update(state=machine.FAILED, reasons=[f"cannot create its {start.step} child: {why}"[:500]])


def _promote(namespace: str, model_version: str) -> None:
    kube.resource(API_VERSION, "ModelVersion").patch(
        body={"spec": {"stage": "production"}}, name=model_version, namespace=namespace,
        content_type="application/merge-patch+json")


def advance_run(policy: dict[str, Any], spec: FlywheelPolicySpec, settings: Settings,
                logger: kopf.Logger) -> bool:
    """One step of the run in status.currentRun; True when status changed."""
    meta, status = policy["metadata"], policy.get("status") or {}
    owner = Owner.of(policy)
    run = dict(status["currentRun"])
    deployment = kube.get(API_VERSION, "Deployment", owner.namespace, spec.deployment_ref)
    deployment_spec = DeploymentSpec.model_validate((deployment or {}).get("spec") or {}) if deployment else None
    if deployment_spec is None:
        return False  # the collector side reports the missing Deployment; the run waits
    if not run.get("workspace"):
        workspace = _workspace(policy, spec)
        if workspace is None:
            # The run waits (collection goes on); the message says for what.
            run["message"] = (f"waiting for spec.workspacePvc={spec.workspace_pvc!r}: no PersistentVolumeClaim of "
                              f"that name in namespace {owner.namespace}")
            changed = bool(kube.changed_fields(status, {"currentRun": run}))
            _write(policy, {"currentRun": run})
            return changed
        run["workspace"] = workspace
    status = {**status, "currentRun": run}
    step = machine.advance(owner.name, run, status.get("candidates") or [], spec, _observe(owner, status, deployment),
                           timefmt.now())
    for start in step.starts:
        _start(policy, spec, settings, step, start, deployment_spec, deployment_spec.interaction_log_pvc)
        logger.info("flywheel run %s: started %s %s", run["id"], start.step, start.candidate)
    machine.decide_when_finished(step, spec, timefmt.now())  # a child that could not be made fails its candidate
    if step.promote:
        try:
            _promote(owner.namespace, step.promote)
            observe_flywheel_promotion(owner.namespace, owner.name, "auto")
        except kube.ApiException as exc:
            if exc.status not in (403, 404, 422):
                raise  # transient: status stays unwritten, the next tick decides and promotes again
            message = f"promoting ModelVersion {step.promote} failed: {kube.error_message(exc)}"
            step.run.update(promoted=None, message=message)
            step.events = [e for e in step.events if e.reason != fd.PROMOTED]
            step.events.append(events.Event(events.WARNING, fd.PROMOTE_REFUSED, message))
    new: dict[str, Any] = {"candidates": step.candidates, **step.status}
    if step.finished:
        new.update(currentRun=None, lastRunResult=step.run)
        observe_flywheel_run(owner.namespace, owner.name, step.succeeded)
        observe_flywheel_candidates(owner.namespace, owner.name, step.candidates)
        merged = {**status, **new}
        new.update(decide.standing(merged, decide.RUN_FAILED if not step.succeeded else decide.COLLECTED,
                                   step.run.get("message") or "", meta.get("generation")))
    else:
        new["currentRun"] = step.run
    if step.status.get("budget"):
        observe_flywheel_budget(owner.namespace, owner.name, step.status["budget"])
    before = kube.changed_fields(policy.get("status") or {}, new)
    _write(policy, new)
    for event in step.events:
        events.post(policy, event)
    return bool(before)


def handle_promote_annotation(policy: dict[str, Any]) -> bool:
    """acgs.io/promote=<candidate>: promote that candidate of the last run (when it may be)."""
    meta, status = policy["metadata"], policy.get("status") or {}
    request = fd.promote_requested(status, (meta.get("annotations") or {}).get(fd.ANNOTATION_PROMOTE))
    if request is None:
        return False
    if request.model_version:
        _promote(meta["namespace"], request.model_version)
        observe_flywheel_promotion(meta["namespace"], meta["name"], "annotation")
    new = dict(request.status)
    merged = {**status, **new}
    reason = fd.PROMOTED if request.model_version else fd.PROMOTE_REFUSED
    new.update(decide.standing(merged, reason, request.events[0].message if request.events else "",
                               meta.get("generation")))
    _write(policy, new)
    for event in request.events:
        events.post(policy, event)
    return True

