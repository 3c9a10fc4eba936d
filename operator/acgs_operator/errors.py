"""The one path from an invalid spec to status: a typed error, the failure status it writes, and a
Warning event (kubeflow/trainer's setFailedCondition). Handlers raise `SpecError`; `fail` records it
and returns the kopf.PermanentError that stops the retries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kopf
from pydantic import ValidationError

from . import conditions as cond
from . import kube
from .api.deployment import DeploymentPhase
from .api.modelversion import ModelVersionPhase
from .api.trainingjob import TrainingJobPhase
from .constants import API_VERSION
from .events import WARNING, Event, post, truncate

STATUS_MESSAGE_LIMIT = 2000


class SpecError(Exception):
    """The object can never work as written. `reason` is a CamelCase condition reason (conditions.py);
    the message names the field, the value given and what was expected."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def describe(error: ValidationError, root: str = "spec") -> str:
    """One line per problem of a pydantic error, each naming the field, the rule and the value given."""
    lines = []
    for e in error.errors(include_url=False):
        path = root
        for part in e["loc"]:
            if isinstance(part, str) and part.startswith("function-"):
                continue
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        msg = e["msg"][0].lower() + e["msg"][1:] if e["msg"] else "invalid"
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif "input" in e and not isinstance(e["input"], dict | list) and e["type"] != "value_error":
            msg += f" (got {e['input']!r})"
        lines.append(f"{path}: {msg}")
    return "; ".join(lines)


def invalid_spec(error: ValidationError, root: str = "spec") -> SpecError:
    return SpecError(cond.INVALID_SPEC, describe(error, root))


@dataclass(frozen=True)
class FailureShape:
    """How a kind shows a failure: its phase, the conditions that become True and those that become
    False (`false_if_present`: only when the object already has them)."""

    phase: str
    true: tuple[str, ...] = ()
    false: tuple[str, ...] = ()
    false_if_present: tuple[str, ...] = ()


FAILURE_SHAPES: dict[str, FailureShape] = {
    "TrainingJob": FailureShape(TrainingJobPhase.FAILED.value, true=(cond.FAILED,),
                                false_if_present=(cond.RUNNING, cond.SUCCEEDED)),
    "ModelVersion": FailureShape(ModelVersionPhase.INVALID.value, false=(cond.VERIFIED, cond.READY)),
    "Deployment": FailureShape(DeploymentPhase.DEGRADED.value, false=(cond.AVAILABLE,)),
}


def failure_status(kind: str, status: dict[str, Any] | None, reason: str, message: str,
                   generation: int | None) -> dict[str, Any]:
    """The status fields that record a failure of `kind` (pure)."""
    shape = FAILURE_SHAPES[kind]
    conditions = (status or {}).get("conditions")
    for type_ in shape.false_if_present:
        if cond.get_condition(conditions, type_):
            conditions = cond.set_condition(conditions, type_, False, reason, message, generation)
    for type_ in shape.false:
        conditions = cond.set_condition(conditions, type_, False, reason, message, generation)
    for type_ in shape.true:
        conditions = cond.set_condition(conditions, type_, True, reason, message, generation)
    conditions = cond.kstatus(conditions, ready=False, stalled=True, reason=reason, message=message,
                              generation=generation)
    return {"phase": shape.phase, "message": truncate(message, STATUS_MESSAGE_LIMIT),
            "conditions": conditions or [], "observedGeneration": generation}


def fail(obj: dict[str, Any], error: SpecError) -> kopf.PermanentError:
    """Record `error` on `obj` (status written only where it changed; a Warning event when the phase
    changes) and return the PermanentError a change handler raises to stop retrying."""
    kind, meta = obj["kind"], obj["metadata"]
    old = obj.get("status") or {}
    status = failure_status(kind, old, error.reason, error.message, meta.get("generation"))
    kube.patch_status_changes({"apiVersion": API_VERSION, **obj}, status)
    if old.get("phase") != status["phase"] or old.get("message") != status["message"]:
        post(obj, Event(WARNING, error.reason, error.message))
    return kopf.PermanentError(f"{error.reason}: {error.message}")
