"""Deployment (acgs.io) reconciler: observe, let `rollout.step` decide, carry the decision out.

Triggers: create/update/resume (an update is also a person's acgs.io/promote|abort|undo|retry
annotation), a 2 s kopf timer that acts only when something is due (a requeue, the periodic resync,
or a ModelVersion event - so a promotion by stage rolls out without anyone editing the Git-owned
spec). One reconcile per object at a time (a lock), and each re-reads the object: the timer and the
change handlers run concurrently in kopf, and a decision taken on a stale status could switch twice.
The user's object gets status writes only, plus the removal of the command annotations it consumed.

Why a `Schedule` next to kopf's timer: a rollout asks for its next look after a delay it computes
(0.5 s to 10 s), and a ModelVersion event must wake every Deployment of its namespace. kopf's
timers have a fixed interval and its TemporaryError delays only apply to the handler that raised;
neither can be woken from another resource's handler. So the timer ticks every 2 s and looks only
when the Schedule says the object is due. The Schedule lives in the operator's memo (main.py), not
in this module, so importing the module starts nothing and tests get a fresh one.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import kopf
from pydantic import ValidationError

from .. import conditions as cond
from .. import constitution_check, errors, events, kube, probes, rollout, selection
from ..api.deployment import Color, DeploymentPhase, DeploymentSpec, RolloutState
from ..api.modelversion import ModelVersionSpec
from ..builders import deployment as build
from ..builders import scaling
from ..builders.common import Owner
from ..config import Settings
from ..constants import API_VERSION, GROUP, VERSION
from ..events import WARNING, Event
from ..metrics import RECONCILES, forget_deployment, observe_deployment

PLURAL = "deployments"
KIND = "Deployment"
COMMAND_ANNOTATIONS = {f"acgs.io/{command.value}": command for command in rollout.Command}
RESYNC_SECONDS = 10.0
TICK_SECONDS = 2.0


@dataclass
class Schedule:
    """When each Deployment should be looked at next, and one lock per Deployment."""

    locks: defaultdict[tuple[str, str], threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))
    due: dict[tuple[str, str], float] = field(default_factory=dict)

    def seconds_until_due(self, key: tuple[str, str]) -> float:
        return self.due.get(key, 0.0) - time.time()

    def wake_namespace(self, namespace: str) -> None:
        for key in list(self.due):
            if key[0] == namespace:
                self.due[key] = 0.0


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _observe_colors(name: str, namespace: str, active: str | None, port: int, pods: list[probes.PodView],
                    timeout: float) -> tuple[dict[Color, rollout.ColorObs], dict[str, Any]]:
    colors: dict[Color, rollout.ColorObs] = {}
    children: dict[str, Any] = {}
    for color in Color:
        child = kube.get("apps/v1", "Deployment", namespace, build.deployment_name(name, color))
        children[color.value] = child
        version = ((child or {}).get("metadata", {}).get("annotations") or {}).get(build.ANNOTATION_MODEL_VERSION)
        mine = [p for p in pods if p.color == color.value and version and p.model_version == version[:63]
                and not p.terminating]
        failure = None
        if color.value != active:  # only a preview is probed for "will never be ready"
            failure = next((f for f in (probes.load_failure(p, port, timeout) for p in mine if not p.ready) if f), None)
        colors[color] = rollout.ColorObs(version, sum(p.ready for p in mine), failure)
    return colors, children


def _run_checks(decision: rollout.Decision, obs: rollout.Observation, spec: DeploymentSpec,
                pods: list[probes.PodView], targets: dict[str, rollout.Target], timeout: float) -> None:
    if decision.needs == rollout.PRE_CHECKS:
        color, version = decision.preview_color, decision.preview_model_version
    else:
        color, version = decision.active_color, decision.active_model_version
    target = targets.get(version or "")
    chosen = [p for p in pods if color and p.color == color.value and version
              and p.model_version == version[:63] and p.ready and not p.terminating and p.ip]
    if target is None:
        result = rollout.CheckResult(False, cond.MODEL_VERSION_NOT_FOUND, f"ModelVersion {version} is gone")
    elif decision.needs == rollout.PRE_CHECKS:
        result = probes.pre_promotion(chosen, spec.port, target.digest, spec.constitutional_hash,
                                      spec.promotion.smoke_requests, timeout)
    else:
        result = probes.post_promotion(chosen, spec.port, target.digest, spec.constitutional_hash,
                                       obs.replicas, timeout)
    if decision.needs == rollout.PRE_CHECKS:
        obs.pre_checks = result
    else:
        obs.post_checks = result


def _scale(namespace: str, name: str, replicas: int) -> None:
    kube.resource("apps/v1", "Deployment").patch(
        name=name, namespace=namespace, body={"spec": {"replicas": replicas}},
        content_type="application/merge-patch+json")


def _apply_children(owner: Owner, spec: DeploymentSpec, decision: rollout.Decision,
                    mvs: dict[str, dict[str, Any]], children: dict[str, Any], settings: Settings,
                    logger: kopf.Logger) -> None:
    image = spec.image or settings.server_image
    active = decision.active_color.value if decision.active_color else None
    for color, plan in decision.plans.items():
        mv = mvs.get(plan.model_version)
        try:
            if mv is None:
                raise ValueError(f"ModelVersion {plan.model_version} no longer exists")
            manifest = build.server_deployment(owner, spec, color, plan.model_version,
                                               ModelVersionSpec.model_validate(mv["spec"]), plan.replicas, image,
                                               constitution_digest=settings.constitution_content_digest,
                                               model_cache_pvc=settings.model_cache_pvc,
                                               autoscaled=spec.autoscaling is not None and color == active)
        except (ValueError, ValidationError) as error:
            # Cannot rebuild this color's template: leave its pods alone, but honour a scale-down.
            child = children.get(color)
            if child and plan.replicas == 0 and (child.get("spec") or {}).get("replicas"):
                _scale(owner.namespace, child["metadata"]["name"], 0)
            logger.warning("color %s keeps its current template: %s", color, error)
            continue
        kube.apply(manifest)
    kube.apply(build.active_service(owner, spec, decision.active_color))
    kube.apply(build.preview_service(owner, spec, decision.preview_color))
    if active:  # both follow the active color: a switch retargets them with the Service
        kube.apply(scaling.pod_disruption_budget(owner, spec, active))
        if spec.autoscaling is not None:
            kube.apply(scaling.horizontal_pod_autoscaler(owner, spec, active))
    if spec.autoscaling is None and any(
            build.ANNOTATION_AUTOSCALED in ((c or {}).get("metadata", {}).get("annotations") or {})
            for c in children.values()):
        # autoscaling was removed from the spec: the HPA goes, spec.replicas rules again.
        kube.delete("autoscaling/v2", "HorizontalPodAutoscaler", owner.namespace,
                    scaling.autoscaler_name(owner.name))
    key, _, value = settings.operator_pod_label.partition("=")
    kube.apply(build.network_policy(owner, spec, settings.operator_namespace, {key: value}))


IMAGE_NOT_ALLOWED = "ImageNotAllowed"
# What keeps a Deployment from acting: condition type → its reason.
HOLDS = {constitution_check.CONDITION: constitution_check.MISMATCH, IMAGE_NOT_ALLOWED: IMAGE_NOT_ALLOWED}


def _hold_reason(spec: DeploymentSpec, settings: Settings) -> tuple[str, str] | None:
    """(condition type, message) of what keeps this Deployment from acting at all, if anything."""
    problem = constitution_check.mismatch(KIND, spec.constitutional_hash, settings.constitutional_hash)
    if problem:
        return constitution_check.CONDITION, problem
    # Admission checked spec.image against the allowlist of its day; the allowlist may have shrunk.
    problem = settings.image_allowlist.problem("spec.image", spec.image or settings.server_image)
    return (IMAGE_NOT_ALLOWED, problem) if problem else None


def _hold(obj: dict[str, Any], status: dict[str, Any], type_: str, problem: str, generation: int | None,
          logger: kopf.Logger) -> None:
    """Touch no child: the active color keeps serving what it serves; no version is selected,
    previewed or promoted while the hold lasts. The status says so."""
    reason = HOLDS[type_]
    serving = (f"{status['activeColor']} keeps serving {status.get('activeModelVersion')}"
               if status.get("activeColor") else "nothing is served")
    message = f"{problem}; {serving}"
    conditions = cond.set_condition(status.get("conditions"), type_, True, reason, message, generation)
    conditions = cond.set_condition(conditions, cond.PROGRESSING, False, reason, message, generation)
    conditions = cond.kstatus(conditions, ready=False, stalled=True, reason=reason, message=message,
                              generation=generation)
    kube.patch_status_changes(obj, {"phase": DeploymentPhase.DEGRADED.value, "message": message,
                                    "conditions": conditions, "observedGeneration": generation})
    if (cond.get_condition(status.get("conditions"), type_) or {}).get("status") != "True":
        events.post(obj, Event(WARNING, reason, message))
        logger.warning("%s: %s", reason, message)


def reconcile(namespace: str, name: str, settings: Settings, schedule: Schedule,
              logger: kopf.Logger) -> float | None:
    """One look at a Deployment; returns seconds until it needs another look (None: steady)."""
    with schedule.locks[(namespace, name)]:
        obj = kube.get(API_VERSION, KIND, namespace, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            schedule.due.pop((namespace, name), None)
            forget_deployment(namespace, name)
            return None
        generation = obj["metadata"].get("generation")
        try:
            spec = DeploymentSpec.model_validate(obj.get("spec") or {})
        except ValidationError as error:
            raise errors.fail(obj, errors.invalid_spec(error)) from None
        status = obj.get("status") or {}
        held = _hold_reason(spec, settings)
        if held:
            _hold(obj, status, *held, generation, logger)
            schedule.due[(namespace, name)] = time.time() + constitution_check.RECHECK_SECONDS
            return None
        state = RolloutState.model_validate(status.get("rollout") or {})
        annotations = obj["metadata"].get("annotations") or {}
        commands = frozenset(c for key, c in COMMAND_ANNOTATIONS.items() if key in annotations)
        mv_list = kube.list_(API_VERSION, "ModelVersion", namespace)
        mvs = {m["metadata"]["name"]: m for m in mv_list}
        verified = settings.require_verified_model_versions
        desired = selection.resolve_desired(spec, mv_list, verified)
        known = {n: selection.to_target(mvs[n], spec, verified)
                 for n in (state.pinned_model_version, state.previous_model_version, state.target,
                           status.get("activeModelVersion")) if n and n in mvs}
        pods = [probes.pod_view(p) for p in kube.list_("v1", "Pod", namespace,
                                                        label_selector=_selector(build.server_selector(name)))]
        active = status.get("activeColor")
        colors, children = _observe_colors(name, namespace, active, spec.port, pods, settings.check_timeout_seconds)
        current = ((children.get(active) or {}).get("spec") or {}).get("replicas") if active else None
        obs = rollout.Observation(
            now=time.time(), replicas=scaling.active_replicas(spec, current), strategy=spec.strategy.blue_green,
            gates=spec.promotion,
            state=state, active_color=Color(active) if active else None,
            active_model_version=status.get("activeModelVersion"), desired=desired, known=known,
            colors=colors, commands=commands, generation=generation)
        decision = rollout.step(obs)
        for type_ in HOLDS:  # a hold that ended (reconfigured back): the rollout resumes
            if (cond.get_condition(status.get("conditions"), type_) or {}).get("status") == "True":
                decision.conditions.append(rollout.Condition(type_, False, cond.RESOLVED, ""))
        targets = {**known, **({desired.target.name: desired.target} if desired.target else {})}
        for _ in range(2):  # pre-checks, then possibly post-checks on the same pass
            if decision.needs is None:
                break
            _run_checks(decision, obs, spec, pods, targets, settings.check_timeout_seconds)
            decision = rollout.step(obs)
        owner = Owner.of(obj)
        _apply_children(owner, spec, decision, mvs, children, settings, logger)
        services = (build.service_address(build.active_service_name(name), namespace),
                    build.service_address(build.preview_service_name(name), namespace))
        kube.patch_status_changes(obj, rollout.status_fields(obj.get("status") or {}, decision, generation, *services))
        for event in decision.events:
            events.post(obj, event)
            (logger.warning if event.type == events.WARNING else logger.info)("%s: %s", event.reason, event.message)
        if commands:
            kube.resource(API_VERSION, KIND).patch(
                name=name, namespace=namespace, content_type="application/merge-patch+json",
                body={"metadata": {"annotations": {key: None for key in COMMAND_ANNOTATIONS if key in annotations}}})
        delay = decision.requeue
        schedule.due[(namespace, name)] = time.time() + (delay if delay is not None else RESYNC_SECONDS)
        RECONCILES.labels(KIND, decision.phase.value).inc()
        observe_deployment(namespace, name, spec.promotion.min_compliance_score,
                           mvs.get(decision.active_model_version or ""), decision.history)
        return delay


def deployment_changed(namespace: str | None, name: str, memo: kopf.Memo, logger: kopf.Logger, retry: int,
                       **_: Any) -> None:
    assert namespace is not None  # acgs.io Deployments are namespaced
    schedule: Schedule = memo.rollout_schedule
    due = schedule.seconds_until_due((namespace, name))
    if retry and due > 0.5:  # the timer already took the last look: wait for the next one
        raise kopf.TemporaryError(f"rollout in progress; next look in {due:.1f}s", delay=due)
    delay = reconcile(namespace, name, memo.settings, schedule, logger)
    if delay is not None:
        raise kopf.TemporaryError(f"rollout in progress; next look in {delay:.1f}s", delay=max(delay, 1.0))


def deployment_tick(namespace: str | None, name: str, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    assert namespace is not None
    schedule: Schedule = memo.rollout_schedule
    if schedule.seconds_until_due((namespace, name)) <= 0:
        reconcile(namespace, name, memo.settings, schedule, logger)


def model_version_event(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A ModelVersion appeared, changed stage or got verified: look at this namespace's Deployments
    soon (the timer does the work; an event handler cannot retry)."""
    schedule: Schedule = memo.rollout_schedule
    if namespace is not None:
        schedule.wake_namespace(namespace)


def register(registry: kopf.OperatorRegistry) -> None:
    for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
        on(GROUP, VERSION, PLURAL, registry=registry)(deployment_changed)
    kopf.timer(GROUP, VERSION, PLURAL, interval=TICK_SECONDS, sharp=False, registry=registry)(deployment_tick)
    kopf.on.event(GROUP, VERSION, "modelversions", registry=registry)(model_version_event)
