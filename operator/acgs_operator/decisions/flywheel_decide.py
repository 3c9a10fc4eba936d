"""Decide a flywheel run and promote its winner: pure.

A candidate is accepted when, scored on the run's eval set against the production model scored on
the same set, it meets spec.acceptance: complianceScore ≥ minComplianceScore, accuracy ≥
minAccuracyRatio × production's accuracy, costRatio ≤ maxCostRatio, where costRatio =
relativeCost × its mean latency per request / production's. Among the accepted, the lowest cost
wins, then the highest accuracy, then the name. Only a FineTune winner has a ModelVersion to
promote; a Base or InContext winner is a recommendation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..api.flywheel import PRODUCTION, Acceptance, CandidateKind, CandidateState
from ..events import NORMAL, WARNING, Event

ANNOTATION_PROMOTE = "acgs.io/promote"

# Event reasons
CANDIDATE_ACCEPTED = "CandidateAccepted"
CANDIDATE_REJECTED = "CandidateRejected"
CANDIDATE_FAILED = "CandidateFailed"
WINNER_SELECTED = "WinnerSelected"
NO_WINNER = "NoWinner"
PROMOTED = "Promoted"
PROMOTE_REFUSED = "PromoteRefused"

EVALUATED, FAILED = CandidateState.EVALUATED.value, CandidateState.FAILED.value
ACCEPTED, REJECTED, WINNER = CandidateState.ACCEPTED.value, CandidateState.REJECTED.value, CandidateState.WINNER.value
PROMOTABLE_STATES = (ACCEPTED, WINNER)


@dataclass
class Verdict:
    candidates: list[dict[str, Any]]
    winner: dict[str, Any] | None
    events: list[Event] = field(default_factory=list)
    failure: str | None = None  # why no decision could be made (the run fails)

    @property
    def cost_reduction(self) -> float | None:
        if self.winner is None or self.winner.get("costRatio") is None:
            return None
        return round(1.0 - float(self.winner["costRatio"]), 4)


def cost_ratio(relative_cost: float, latency_ms: float, production_latency_ms: float) -> float:
    """What a request costs on the candidate relative to production: the per-request price ratio
    times the time ratio (a faster model serves more requests on the same hardware)."""
    if production_latency_ms <= 0:
        return relative_cost
    return round(relative_cost * latency_ms / production_latency_ms, 4)


def rejection_reasons(candidate: dict[str, Any], production: dict[str, Any], acceptance: Acceptance) -> list[str]:
    """Why `candidate` (evaluated, costRatio set) does not meet `acceptance`; [] when it does."""
    reasons = []
    compliance, accuracy = float(candidate["complianceScore"]), float(candidate["accuracy"])
    if compliance < acceptance.min_compliance_score:
        reasons.append(f"complianceScore {compliance:.4f} < acceptance.minComplianceScore "
                       f"{acceptance.min_compliance_score:g}")
    needed = acceptance.min_accuracy_ratio * float(production["accuracy"])
    if accuracy < needed:
        reasons.append(f"accuracy {accuracy:.4f} < acceptance.minAccuracyRatio {acceptance.min_accuracy_ratio:g} × "
                       f"production {float(production['accuracy']):.4f} = {needed:.4f}")
    if float(candidate["costRatio"]) > acceptance.max_cost_ratio:
        reasons.append(f"costRatio {float(candidate['costRatio']):.4f} > acceptance.maxCostRatio "
                       f"{acceptance.max_cost_ratio:g}")
    return reasons


def _rank(candidate: dict[str, Any]) -> tuple[float, float, str]:
    return (float(candidate["costRatio"]), -float(candidate["accuracy"]), str(candidate["name"]))


def decide(candidates: list[dict[str, Any]], acceptance: Acceptance) -> Verdict:
    """Every finished candidate (Evaluated or Failed, production among them) → Accepted, Rejected,
    Winner or still Failed, with the reasons and an event each."""
    production = next((c for c in candidates if c["name"] == PRODUCTION), None)
    out = [dict(c) for c in candidates]
    events: list[Event] = []
    for c in out:
        if c["state"] == FAILED and c["name"] != PRODUCTION:
            events.append(Event(WARNING, CANDIDATE_FAILED, f"candidate {c['name']} failed: {'; '.join(c['reasons'])}"))
    if production is None or production["state"] != EVALUATED:
        why = "; ".join((production or {}).get("reasons") or ["not evaluated"])
        return Verdict(out, None, events, failure=f"the production model could not be scored ({why}): "
                       "no candidate can be compared with it")
    contenders = [c for c in out if c["name"] != PRODUCTION and c["state"] == EVALUATED]
    if not contenders and any(c["name"] != PRODUCTION for c in out):
        return Verdict(out, None, events, failure="every candidate failed")
    for c in contenders:
        c["costRatio"] = cost_ratio(float(c["relativeCost"]), float(c["latencyMs"]), float(production["latencyMs"]))
        c["reasons"] = rejection_reasons(c, production, acceptance)
        c["state"] = REJECTED if c["reasons"] else ACCEPTED
    accepted = sorted((c for c in contenders if c["state"] == ACCEPTED), key=_rank)
    winner = accepted[0] if accepted else None
    if winner is not None:
        winner["state"] = WINNER
    for c in contenders:
        scores = (f"accuracy {float(c['accuracy']):.4f}, complianceScore {float(c['complianceScore']):.4f}, "
                  f"costRatio {float(c['costRatio']):.4f}")
        if c["state"] == REJECTED:
            events.append(Event(NORMAL, CANDIDATE_REJECTED, f"candidate {c['name']} rejected ({scores}): "
                                + "; ".join(c["reasons"])))
        else:
            events.append(Event(NORMAL, CANDIDATE_ACCEPTED, f"candidate {c['name']} meets the acceptance "
                                f"criteria ({scores})" + (", the winner" if c is winner else "")))
    if winner is not None:
        verdict = Verdict(out, winner, events)
        events.append(Event(NORMAL, WINNER_SELECTED, f"winner {winner['name']} ({winner['kind']}): estimated cost "
                            f"reduction {verdict.cost_reduction:.1%} vs production accuracy "
                            f"{float(production['accuracy']):.4f}"))
        return verdict
    events.append(Event(NORMAL, NO_WINNER, "no candidate meets the acceptance criteria; production stays"))
    return Verdict(out, None, events)


def promotable(candidate: dict[str, Any] | None) -> str | None:
    """Why `candidate` cannot be promoted, or None when it can (an accepted FineTune with a ModelVersion)."""
    if candidate is None:
        return "no such candidate in the last run"
    if candidate.get("kind") != CandidateKind.FINE_TUNE.value or not candidate.get("modelVersion"):
        return (f"candidate {candidate['name']} is {candidate.get('kind')}: it has no ModelVersion to promote "
                "(only a FineTune candidate does); serve its base model by changing the Deployment in Git")
    if candidate.get("state") not in PROMOTABLE_STATES:
        return (f"candidate {candidate['name']} is {candidate.get('state')}: only a candidate that met the "
                "acceptance criteria (Winner or Accepted) is promoted")
    return None


@dataclass
class PromoteRequest:
    status: dict[str, Any]  # fields to write
    model_version: str | None  # the ModelVersion to move to stage production
    events: list[Event] = field(default_factory=list)


def promote_requested(status: dict[str, Any], value: str | None) -> PromoteRequest | None:
    """The acgs.io/promote annotation names a candidate of the last run: promote it when it may be,
    else say why; None when there is no new request (or a run is still deciding)."""
    if not value or value == status.get("promoteHandled") or status.get("currentRun"):
        return None
    candidate = next((c for c in status.get("candidates") or [] if c.get("name") == value.strip()), None)
    refused = promotable(candidate)
    if refused:
        message = f"acgs.io/promote={value!r} not acted on: {refused}"
        return PromoteRequest({"promoteHandled": value}, None, [Event(WARNING, PROMOTE_REFUSED, message)])
    assert candidate is not None
    last = dict(status.get("lastRunResult") or {})
    if last:
        last["promoted"] = candidate["modelVersion"]
    message = (f"candidate {candidate['name']}: ModelVersion {candidate['modelVersion']} moved to stage production "
               "(acgs.io/promote); the Deployment following the stage rolls it out through its gates")
    fields: dict[str, Any] = {"promoteHandled": value, **({"lastRunResult": last} if last else {})}
    return PromoteRequest(fields, candidate["modelVersion"], [Event(NORMAL, PROMOTED, message)])
