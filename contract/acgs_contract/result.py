"""The JSON a trainer or verifier leaves as its result, and how it fits a termination message.

``acgs-train`` writes a ``TrainerResult`` to ``<output>/result.json`` and to the container's
termination-message path; ``acgs-train verify`` writes a ``VerifyResult`` to the latter. The
operator reads them from the pod status (``parse_trainer_result`` / ``parse_verify_result``).
The kubelet keeps at most ``MAX_TERMINATION_MESSAGE_BYTES`` of a termination message, so
``termination_message`` drops detail before it would be cut.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ConfigDict

from ._model import WireModel

SUCCEEDED, FAILED = "Succeeded", "Failed"
MAX_TERMINATION_MESSAGE_BYTES = 4096
#: the metrics a compacted result keeps (the ones a ModelVersion records)
ESSENTIAL_METRICS = ("accuracy", "complianceScore", "evalLoss")
#: the base model's figures a result and a ModelVersion record (its score before fine-tuning)
BASE_METRICS = ("complianceScore", "accuracy")


class TrainerResult(WireModel):
    """What one ``acgs-train`` run produced (or why it failed)."""

    # A failure may carry details of its own (TrainerError.details); they are kept as written.
    model_config = ConfigDict(extra="allow")

    phase: str
    reason: str
    exit_code: int
    message: str = ""
    digest: str | None = None
    artifact_path: str | None = None
    metrics: dict[str, Any] | None = None
    #: the base model's own score on the same held-out records, before fine-tuning
    base_metrics: dict[str, Any] | None = None
    epsilon: float | None = None
    delta: float | None = None
    target_epsilon: float | None = None
    #: optimizer steps done
    steps: int | None = None
    #: optimizer steps planned (equals ``steps`` for a run that finished)
    total_steps: int | None = None
    data_digest: str | None = None
    filter: dict[str, Any] | None = None


class VerifyResult(WireModel):
    """What ``acgs-train verify`` found. On a failure ``reason`` is the artifact error code
    (``manifest.ArtifactErrorCode``) and ``file``/``expected``/``actual`` say where and what."""

    phase: str
    reason: str
    message: str = ""
    digest: str | None = None
    file_count: int | None = None
    file: str | None = None
    expected: str | None = None
    actual: str | None = None
    #: on success, the figures the verified manifest records (the operator gates promotion on
    #: these, never on what a ModelVersion's spec declares); absent in a failure
    metrics: dict[str, Any] | None = None
    epsilon: float | None = None
    delta: float | None = None
    #: the base model's own held-out scores as the verified manifest records them
    base_metrics: dict[str, Any] | None = None


def termination_message(result: WireModel | dict[str, Any]) -> str:
    """Compact JSON of ``result`` under the kubelet's limit: drop detail first, then shorten the
    message."""
    data = result.to_wire() if isinstance(result, WireModel) else dict(result)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    if len(text.encode()) <= MAX_TERMINATION_MESSAGE_BYTES:
        return text
    slim = {k: v for k, v in data.items() if k not in ("metrics", "filter")}
    slim["metrics"] = {k: v for k, v in (data.get("metrics") or {}).items() if k in ESSENTIAL_METRICS}
    text = json.dumps(slim, sort_keys=True, separators=(",", ":"))
    while len(text.encode()) > MAX_TERMINATION_MESSAGE_BYTES and slim.get("message"):
        slim["message"] = slim["message"][: len(slim["message"]) // 2] + "…"
        text = json.dumps(slim, sort_keys=True, separators=(",", ":"))
    return text


def parse_trainer_result(data: dict[str, Any] | None) -> TrainerResult | None:
    """A trainer's result from its parsed termination message; None when there is none or it is not
    one (a crash leaves a log tail there instead)."""
    return TrainerResult.from_wire(data)


def parse_verify_result(data: dict[str, Any] | None) -> VerifyResult | None:
    return VerifyResult.from_wire(data)
