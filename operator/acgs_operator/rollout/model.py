"""The rollout's values: what the handler observed, what `step` decided, and the named types in
between. Colors are `Color` everywhere inside (normalised where they enter)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from acgs_contract.timefmt import format_time as ts
from acgs_contract.timefmt import parse_time

from ..api.deployment import BlueGreenStrategy, Color, DeploymentPhase, PromotionGates, RolloutState
from ..events import Event

POLL_SECONDS = 2.0
WAIT_FOR_MODEL_VERSION_SECONDS = 5.0


class Command(str, Enum):
    """Annotations a person sets (acgs.io/<command>) instead of editing the Git-owned spec."""

    PROMOTE = "promote"
    ABORT = "abort"
    UNDO = "undo"
    RETRY = "retry"


class Checks(str, Enum):
    PRE = "pre"  # pre-promotion checks of the preview
    POST = "post"  # post-promotion checks of the new active color


class Condition(NamedTuple):
    type: str
    status: bool
    reason: str
    message: str


class Reasoned(NamedTuple):
    reason: str
    message: str


@dataclass
class Situation:
    """What the step's paths found, handed explicitly to `status.summarize`."""

    progress: Reasoned | None = None  # still moving: why (Progressing=True)
    paused: bool = False  # waiting for a person (acgs.io/promote)
    degraded: Reasoned | None = None  # failed with nothing to fall back to


def epoch(stamp: str | None) -> float | None:
    """Seconds since the epoch of a status timestamp; an unset one stays None."""
    return parse_time(stamp) if stamp else None


def other(color: Color) -> Color:
    return color.other


def camel_reason(text: str, fallback: str) -> str:
    """A server's failure reason as a condition reason (CamelCase letters and digits only)."""
    cleaned = re.sub(r"[^A-Za-z0-9]", "", text or "")
    return cleaned[:1].upper() + cleaned[1:] if cleaned else fallback


@dataclass(frozen=True)
class Target:
    """A ModelVersion the operator could serve."""

    name: str
    digest: str
    metrics: dict[str, Any] = field(default_factory=dict)
    usable: bool = True  # verified (or verification not required)
    invalid: tuple[str, str] | None = None  # (reason, message): can never be served


@dataclass(frozen=True)
class Desired:
    target: Target | None
    reason: str = ""  # why there is none (yet)
    message: str = ""


@dataclass(frozen=True)
class ColorObs:
    model_version: str | None = None  # what the color's apps/v1 Deployment runs
    ready: int = 0  # ready, not terminating pods of that model version
    failure: tuple[str, str] | None = None  # (reason, message) a pod reports: it will never be ready


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str = ""
    message: str = ""


@dataclass
class Observation:
    now: float
    replicas: int
    strategy: BlueGreenStrategy
    gates: PromotionGates
    state: RolloutState
    active_color: Color | None
    active_model_version: str | None
    desired: Desired
    known: dict[str, Target] = field(default_factory=dict)  # pinned/previous versions by name
    colors: dict[Color, ColorObs] = field(default_factory=dict)
    commands: frozenset[Command] = frozenset()
    pre_checks: CheckResult | None = None
    post_checks: CheckResult | None = None
    generation: int | None = None  # metadata.generation of the Deployment

    def __post_init__(self) -> None:
        # Normalised where they enter: callers may pass "blue"/"green" and "promote"/... strings.
        self.colors = {Color(c): seen for c, seen in self.colors.items()}
        self.commands = frozenset(Command(c) for c in self.commands)

    def color(self, color: Color | None) -> ColorObs:
        return self.colors.get(color, ColorObs()) if color else ColorObs()


@dataclass
class ColorPlan:
    model_version: str
    replicas: int


@dataclass
class Decision:
    state: RolloutState
    active_color: Color | None
    active_model_version: str | None
    desired_model_version: str | None = None
    preview_color: Color | None = None
    preview_model_version: str | None = None
    plans: dict[Color, ColorPlan] = field(default_factory=dict)
    phase: DeploymentPhase = DeploymentPhase.PROGRESSING
    message: str = ""
    conditions: list[Condition] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    requeue: float | None = None
    needs: Checks | None = None  # run these checks, then call step again with their result
    ready_replicas: int = 0

    def wait(self, seconds: float) -> None:
        self.requeue = seconds if self.requeue is None else min(self.requeue, seconds)

    def plan(self, color: Color, model_version: str | None, replicas: int) -> None:
        if model_version:
            self.plans[color] = ColorPlan(model_version, replicas)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def record(self, now: float, action: str, model_version: str, color: Color | None,
               reason: str | None = None) -> None:
        entry: dict[str, Any] = {"time": ts(now), "action": action, "modelVersion": model_version}
        if color:
            entry["color"] = color.value
        if reason:
            entry["reason"] = reason
        self.history.append(entry)
