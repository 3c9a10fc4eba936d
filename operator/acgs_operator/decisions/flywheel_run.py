"""One flywheel run as a state machine over what the handler observes: pure.

Preparing: the prepare Job snapshots the log, judges it, charges the privacy ledger and splits it
(its PrepareResult). Evaluating: every candidate, and the production model, goes Pending →
(Training →) Evaluating → Evaluated or Failed, at most spec.maxParallel at once; a failed one is
recorded and the others go on. When all are finished the run is decided (decisions.flywheel_decide)
and ends Succeeded (with or without a winner; with autoPromote a FineTune winner is promoted) or
Failed (nothing could be compared). Everything the machine needs is in status.currentRun and
status.candidates, and every child has a deterministic name, so a restarted operator resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from acgs_contract import flywheel as contract

from ..api.flywheel import PRODUCTION, CandidateKind, CandidateState, FlywheelPolicySpec, RunPhase
from ..builders.flywheel_run import eval_job_name, prepare_job_name, training_job_name
from ..events import NORMAL, WARNING, Event
from . import flywheel_decide as fd
from .jobrun import FAILED as JOB_FAILED
from .jobrun import SUCCEEDED as JOB_SUCCEEDED
from .jobrun import Observation

PREPARE, EVAL, TRAIN = "prepare", "eval", "train"
PRODUCTION_KIND = "Production"

# Event and run reasons
RUN_PREPARED = "RunPrepared"
PREPARE_FAILED = "PrepareFailed"
RUN_DECIDED = "RunDecided"
RUN_FAILED = "RunFailed"
EVAL_SET_MISMATCH = "EvalSetMismatch"
NO_PRODUCTION_MODEL = "NoProductionModel"

PENDING, TRAINING = CandidateState.PENDING.value, CandidateState.TRAINING.value
EVALUATING, EVALUATED = CandidateState.EVALUATING.value, CandidateState.EVALUATED.value
FAILED = CandidateState.FAILED.value
ACTIVE = (TRAINING, EVALUATING)
FINISHED_STATES = (EVALUATED, FAILED)
# Eval-tool kinds (acgs_contract.flywheel) of each candidate kind.
EVAL_KINDS = {CandidateKind.FINE_TUNE.value: contract.KIND_FINE_TUNE, CandidateKind.BASE.value: contract.KIND_BASE,
              CandidateKind.IN_CONTEXT.value: contract.KIND_IN_CONTEXT, PRODUCTION_KIND: contract.KIND_PRODUCTION}


@dataclass(frozen=True)
class TrainingView:
    """A child TrainingJob as the run needs it."""

    phase: str | None
    model_version: str | None
    message: str = ""


@dataclass(frozen=True)
class ArtifactView:
    """A ModelVersion's artifact, for an eval Job (production's, a fine-tune's)."""

    model_version: str
    uri: str
    digest: str
    model_name: str = ""
    base_model: str = ""  # the base the artifact's adapter sits on (it may need a volume)


@dataclass
class RunObservation:
    prepare: Observation | None = None  # None: no prepare Job (yet, or gone)
    evals: dict[str, Observation] = field(default_factory=dict)  # by candidate name
    trainings: dict[str, TrainingView] = field(default_factory=dict)
    artifacts: dict[str, ArtifactView] = field(default_factory=dict)  # ModelVersion name → artifact
    production: ArtifactView | None = None  # the Deployment's active ModelVersion


@dataclass(frozen=True)
class Start:
    """A child the handler must create (idempotently) now."""

    step: str  # PREPARE, EVAL or TRAIN
    candidate: str = ""
    kind: str = ""  # the candidate's kind
    artifact: ArtifactView | None = None  # EVAL of a FineTune or the production model


@dataclass
class RunStep:
    policy: str
    run: dict[str, Any]
    candidates: list[dict[str, Any]]
    starts: list[Start] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)  # other status fields (liveCompliance, budget, ...)
    promote: str | None = None  # a ModelVersion to move to stage production
    finished: bool = False

    @property
    def succeeded(self) -> bool:
        return self.run.get("phase") == RunPhase.SUCCEEDED.value


def initial_candidates(spec: FlywheelPolicySpec) -> list[dict[str, Any]]:
    """The production model first (every ratio needs it), then the spec's candidates in order."""
    out: list[dict[str, Any]] = [{"name": PRODUCTION, "kind": PRODUCTION_KIND, "state": PENDING, "reasons": []}]
    for c in spec.candidates:
        out.append({"name": c.name, "kind": c.kind, "state": PENDING, "relativeCost": c.relative_cost,
                    "reasons": []})
    return out


def _fail(run: dict[str, Any], reason: str, message: str, now: str) -> dict[str, Any]:
    return {**run, "phase": RunPhase.FAILED.value, "reason": reason, "message": message[:2000], "finished": now}


def _prepared(step: RunStep, spec: FlywheelPolicySpec, obs: Observation, now: str) -> None:
    result = contract.parse_prepare_result(obs.result)
    if obs.phase is JOB_SUCCEEDED and result is not None and result.phase == contract.PHASE_SUCCEEDED:
        step.run.update(phase=RunPhase.EVALUATING.value, preparedDigest=result.snapshot_digest,
                        evalDigest=result.eval_digest, evalRecords=result.eval_records,
                        trainRecords=result.train_records, reason=RUN_PREPARED, message=result.message[:2000])
        step.candidates = initial_candidates(spec)
        step.status.update(liveCompliance=result.live_compliance, judgedRecords=result.judged_records,
                           budget={"maxEpsilon": result.budget_max_epsilon, "meanEpsilon": result.budget_mean_epsilon,
                                   "retiredRecords": result.retired_total, "limit": spec.record_epsilon_limit})
        live = "n/a" if result.live_compliance is None else f"{result.live_compliance:.4f}"
        step.events.append(Event(NORMAL, RUN_PREPARED, (
            f"run {step.run['id']}: snapshot {result.snapshot_digest} of {result.records} records → eval "
            f"{result.eval_records}, train {result.train_records} ({result.retired_records} retired by the privacy "
            f"budget); live compliance {live} on {result.judged_records} judged records")))
        return
    if result is not None and result.phase == contract.PHASE_FAILED:
        why = f"{result.reason}: {result.message}"
    else:
        why = f"{obs.reason}: {obs.message or 'no prepare result in the termination message'}"
    step.run = _fail(step.run, PREPARE_FAILED, f"preparing the run failed: {why}", now)
    step.finished = True
    step.events.append(Event(WARNING, RUN_FAILED, f"run {step.run['id']} failed: {step.run['message']}"))


def _failed(candidate: dict[str, Any], reason: str) -> None:
    candidate["state"] = FAILED
    candidate["reasons"] = [reason[:500]]


def _eval_start(step: RunStep, candidate: dict[str, Any], artifact: ArtifactView | None = None) -> None:
    """Ask for the candidate's eval Job; one scoring a ModelVersion needs its artifact."""
    if artifact is None and candidate["kind"] in (CandidateKind.FINE_TUNE.value, PRODUCTION_KIND):
        _failed(candidate, f"ModelVersion {candidate.get('modelVersion')} is gone or has no artifact to score")
        return
    candidate["state"] = EVALUATING
    candidate["job"] = eval_job_name(step.policy, step.run["id"], candidate["name"])
    step.starts.append(Start(EVAL, candidate["name"], candidate["kind"], artifact))


def _observe_candidate(step: RunStep, candidate: dict[str, Any], obs: RunObservation) -> None:
    """Move one active candidate on from what its children report."""
    name, run = candidate["name"], step.run
    if candidate["state"] == TRAINING:
        training = obs.trainings.get(name)
        if training is None:
            _failed(candidate, f"TrainingJob {candidate.get('trainingJob')} is gone (deleted before it finished)")
        elif training.phase == "Failed":
            _failed(candidate, f"TrainingJob {candidate.get('trainingJob')} failed: {training.message}")
        elif training.phase == "Succeeded" and training.model_version:
            candidate["modelVersion"] = training.model_version
            artifact = obs.artifacts.get(training.model_version)
            if artifact is not None:  # else the ModelVersion is not readable yet: next tick
                _eval_start(step, candidate, artifact)
        return
    if candidate["state"] != EVALUATING:
        return
    job = obs.evals.get(name)
    if job is None:  # not visible yet, or expired: applying it again is harmless (same name, same spec)
        artifact = obs.artifacts.get(candidate.get("modelVersion") or "")
        if candidate["kind"] == PRODUCTION_KIND:
            artifact = obs.production if obs.production and obs.production.model_version == candidate.get(
                "modelVersion") else artifact
        _eval_start(step, candidate, artifact)
        return
    if job.phase not in (JOB_SUCCEEDED, JOB_FAILED):
        return
    result = contract.parse_eval_result(job.result)
    if result is None:
        _failed(candidate, f"eval Job {candidate.get('job')}: {job.reason}: {job.message or 'no EvalResult'}")
    elif result.phase != contract.PHASE_SUCCEEDED or job.phase is JOB_FAILED:
        _failed(candidate, f"eval: {result.reason}: {result.message}")
    elif result.eval_digest != run.get("evalDigest"):
        _failed(candidate, f"{EVAL_SET_MISMATCH}: scored on eval set {result.eval_digest}, the run's is "
                f"{run.get('evalDigest')}; results on different sets are not compared")
    elif result.accuracy is None or result.compliance_score is None or result.latency_ms is None:
        _failed(candidate, "eval: the result lacks accuracy, complianceScore or latencyMs")
    else:
        candidate.update(state=EVALUATED, accuracy=result.accuracy, complianceScore=result.compliance_score,
                         latencyMs=result.latency_ms, reasons=[])


def _schedule(step: RunStep, spec: FlywheelPolicySpec, obs: RunObservation) -> None:
    """Start Pending candidates while fewer than spec.maxParallel are active (production first)."""
    active = sum(c["state"] in ACTIVE for c in step.candidates)
    for c in step.candidates:
        if active >= spec.max_parallel:
            return
        if c["state"] != PENDING:
            continue
        if c["kind"] == PRODUCTION_KIND:
            if obs.production is None:
                _failed(c, f"{NO_PRODUCTION_MODEL}: Deployment {spec.deployment_ref} serves no ModelVersion "
                        "(status.activeModelVersion) with a pvc:// artifact to score")
                continue
            c["modelVersion"] = obs.production.model_version
            _eval_start(step, c, obs.production)
        elif c["kind"] == CandidateKind.FINE_TUNE.value:
            if obs.production is None:
                _failed(c, f"{NO_PRODUCTION_MODEL}: a fine-tune continues the production ModelVersion's family "
                        f"and writes where its artifact is; Deployment {spec.deployment_ref} serves none")
                continue
            c["state"] = TRAINING
            c["trainingJob"] = training_job_name(step.policy, step.run["id"], c["name"])
            step.starts.append(Start(TRAIN, c["name"], c["kind"], obs.production))
        else:
            _eval_start(step, c)
        active += 1


def _decided(step: RunStep, spec: FlywheelPolicySpec, now: str) -> None:
    verdict = fd.decide(step.candidates, spec.acceptance)
    step.candidates, step.finished = verdict.candidates, True
    step.events.extend(verdict.events)
    if verdict.failure:
        step.run = _fail(step.run, RUN_FAILED, verdict.failure, now)
        step.events.append(Event(WARNING, RUN_FAILED, f"run {step.run['id']} failed: {verdict.failure}"))
        step.status.update(recommendation=None, estimatedCostReduction=None)
        return
    winner = verdict.winner
    step.run.update(phase=RunPhase.SUCCEEDED.value, reason=RUN_DECIDED, finished=now,
                    winner=winner["name"] if winner else None)
    if winner is None:
        step.run["message"] = "no candidate meets the acceptance criteria; production stays"
        step.status.update(recommendation=None, estimatedCostReduction=None)
        return
    target = winner.get("modelVersion")
    step.status.update(recommendation=f"{winner['name']}/{target}" if target else winner["name"],
                       estimatedCostReduction=verdict.cost_reduction)
    if spec.auto_promote and fd.promotable(winner) is None:
        step.promote = target
        step.run["promoted"] = target
        step.run["message"] = f"winner {winner['name']}: ModelVersion {target} promoted to production (autoPromote)"
        step.events.append(Event(NORMAL, fd.PROMOTED, step.run["message"] + "; the Deployment following the stage "
                                 "rolls it out through its gates"))
    elif fd.promotable(winner) is None:
        step.run["message"] = (f"winner {winner['name']}: promote ModelVersion {target} with "
                               f"kubectl annotate fwp NAME {fd.ANNOTATION_PROMOTE}={winner['name']}")
    else:
        step.run["message"] = (f"winner {winner['name']} ({winner['kind']}): recommended; it has no ModelVersion "
                               "to promote")


def advance(policy: str, run: dict[str, Any], candidates: list[dict[str, Any]], spec: FlywheelPolicySpec,
            obs: RunObservation, now: str) -> RunStep:
    """The run's next state from what its children report, and the children to start."""
    step = RunStep(policy, dict(run), [dict(c, reasons=list(c.get("reasons") or [])) for c in candidates])
    phase = run.get("phase")
    if phase == RunPhase.PREPARING.value:
        if obs.prepare is None and run.get("prepareJob"):
            # Deleted (or expired) before it was read: rerunning it would charge the ledger twice.
            step.run = _fail(step.run, PREPARE_FAILED, f"the prepare Job {run['prepareJob']} is gone before its "
                             "result was read; the next trigger starts a new run", now)
            step.finished = True
            step.events.append(Event(WARNING, RUN_FAILED, f"run {run['id']} failed: {step.run['message']}"))
            return step
        if obs.prepare is None:
            step.run["prepareJob"] = prepare_job_name(policy, run["id"])
            step.starts.append(Start(PREPARE))
            return step
        if obs.prepare.phase not in (JOB_SUCCEEDED, JOB_FAILED):
            return step
        _prepared(step, spec, obs.prepare, now)
        if step.finished:
            return step
    elif phase != RunPhase.EVALUATING.value:
        return step  # finished (the handler moves it out of currentRun)
    for c in step.candidates:
        _observe_candidate(step, c, obs)
    _schedule(step, spec, obs)
    decide_when_finished(step, spec, now)
    return step


def decide_when_finished(step: RunStep, spec: FlywheelPolicySpec, now: str) -> None:
    """Decide the run once every candidate is Evaluated or Failed (and it is not decided yet)."""
    if (not step.finished and step.run.get("phase") == RunPhase.EVALUATING.value
            and all(c["state"] in FINISHED_STATES for c in step.candidates)):
        _decided(step, spec, now)
