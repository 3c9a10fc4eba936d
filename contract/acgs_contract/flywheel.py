"""What ``acgs-data flywheel-collect`` reports about an interaction log, and how the operator
reads it back from the collector Job's termination message (``parse_collect_result``).

The collector reads only closed log files, keeps the records whose constitutional hash is present
and right and whose shape is a valid interaction record, and de-duplicates them by request
content. ``excluded`` counts every record left out, by one of the ``EXCLUDED_*`` reasons;
``snapshot_digest`` is sha256 over the usable records in a canonical order, so a flywheel run that
records it can be reproduced (and a changed log is noticed).

A run's steps report back the same way: ``acgs-data flywheel-prepare`` leaves a ``PrepareResult``
(snapshot, judge, privacy ledger, eval/train split) and each ``acgs-train flywheel-eval`` an
``EvalResult`` (one candidate scored on the run's eval set); the operator reads them with
``parse_prepare_result`` / ``parse_eval_result``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ._model import WireModel

#: a line that is not a JSON object (say, a torn write)
EXCLUDED_UNPARSABLE = "unparsable"
#: no ``constitutional_hash`` on the record
EXCLUDED_MISSING_HASH = "missingHash"
#: a ``constitutional_hash`` (of the record or its input) other than the expected one
EXCLUDED_WRONG_HASH = "wrongHash"
#: not the interaction-record schema (version, fields, scenario of its type)
EXCLUDED_INVALID = "invalidSchema"
#: the same request content as a record already kept
EXCLUDED_DUPLICATE = "duplicate"
EXCLUSION_REASONS = (EXCLUDED_UNPARSABLE, EXCLUDED_MISSING_HASH, EXCLUDED_WRONG_HASH, EXCLUDED_INVALID,
                     EXCLUDED_DUPLICATE)

#: the outcome of a step (collect, prepare, eval)
PHASE_SUCCEEDED, PHASE_FAILED = "Succeeded", "Failed"
STEP_PHASES = (PHASE_SUCCEEDED, PHASE_FAILED)

#: why a prepare or eval step ended as it did
REASON_PREPARED = "Prepared"
REASON_EVALUATED = "Evaluated"
#: fewer usable records than the eval set plus one train record
REASON_NOT_ENOUGH_RECORDS = "NotEnoughRecords"
#: every record left for training would pass the per-record epsilon limit
REASON_BUDGET_EXHAUSTED = "BudgetExhausted"
#: the interaction log (or the workspace) could not be read or written
REASON_UNREADABLE = "Unreadable"
#: the artifact to evaluate failed verification (digest, files, hash)
REASON_ARTIFACT_INVALID = "ArtifactInvalid"
#: bad arguments or a workspace without the run's prepared files
REASON_INVALID_INPUT = "InvalidInput"

#: the kinds of candidate a flywheel run evaluates
KIND_BASE = "base"
KIND_IN_CONTEXT = "in-context"
KIND_FINE_TUNE = "fine-tune"
KIND_PRODUCTION = "production"
CANDIDATE_KINDS = (KIND_BASE, KIND_IN_CONTEXT, KIND_FINE_TUNE, KIND_PRODUCTION)
#: kinds evaluated from a verified artifact (the others from a base-model spec)
ARTIFACT_KINDS = (KIND_FINE_TUNE, KIND_PRODUCTION)

#: the workspace layout both sides share (relative to the workspace root)
LEDGER_FILE = "ledger.json"
RUNS_DIR = "runs"
SNAPSHOT_FILE = "snapshot.jsonl"
EVAL_FILE = "eval.jsonl"
TRAIN_FILE = "train.jsonl"
PREPARE_FILE = "prepare.json"
EVALS_DIR = "evals"


def run_dir(run_id: str) -> str:
    """The run's folder relative to the workspace root (``runs/<run-id>``)."""
    return f"{RUNS_DIR}/{run_id}"


class CollectResult(WireModel):
    """One collection over an interaction-log directory."""

    phase: str = Field(description="Succeeded or Failed.")
    reason: str = Field(description="Collected, or why the collection failed.")
    message: str = ""
    constitutional_hash: str | None = None
    files_closed: int = Field(default=0, ge=0, description="Closed files read.")
    files_open: int = Field(default=0, ge=0, description="Files still being written (not read).")
    records_seen: int = Field(default=0, ge=0, description="Lines in the closed files.")
    records_usable: int = Field(default=0, ge=0, description="Records a flywheel run may use.")
    excluded: dict[str, int] = Field(default_factory=dict, description="Records left out, by reason.")
    snapshot_digest: str | None = Field(default=None, description="sha256 over the usable records.")


class PrepareResult(WireModel):
    """One ``acgs-data flywheel-prepare``: the run's snapshot, the judge's verdict on the production
    model, the privacy ledger after this run's charge and the eval/train split."""

    phase: str = Field(description="Succeeded or Failed.")
    reason: str = Field(description="Prepared, or why the step failed.")
    message: str = ""
    run_id: str | None = None
    snapshot_digest: str | None = Field(default=None, description="sha256 over the run's usable records.")
    expected_digest: str | None = Field(
        default=None, description="The collector's digest the run was started on (recorded, not enforced).")
    records: int = Field(default=0, ge=0, description="Usable records in the snapshot.")
    excluded: dict[str, int] = Field(default_factory=dict, description="Records left out, by reason.")
    eval_records: int = Field(default=0, ge=0)
    train_records: int = Field(default=0, ge=0)
    retired_records: int = Field(default=0, ge=0, description="Records this run kept out of training.")
    retired_total: int = Field(default=0, ge=0, description="Records the ledger holds as retired.")
    judged_records: int = Field(
        default=0, ge=0, description="Records with a logged decision the judge compared.")
    live_compliance: float | None = Field(
        default=None, ge=0, le=1, description="Share of judged records whose logged decision the judge agrees with.")
    budget_max_epsilon: float | None = Field(
        default=None, ge=0, description="Largest cumulative epsilon of any record after this run's charge.")
    budget_mean_epsilon: float | None = Field(default=None, ge=0)
    eval_digest: str | None = None
    train_digest: str | None = None


class EvalResult(WireModel):
    """One ``acgs-train flywheel-eval``: a candidate scored on the run's eval set."""

    phase: str = Field(description="Succeeded or Failed.")
    reason: str = Field(description="Evaluated, or why the step failed.")
    message: str = ""
    run_id: str | None = None
    candidate: str | None = None
    kind: str | None = Field(default=None, description="base, in-context, fine-tune or production.")
    accuracy: float | None = Field(default=None, ge=0, le=1)
    compliance_score: float | None = Field(default=None, ge=0, le=1)
    latency_ms: float | None = Field(default=None, ge=0, description="Mean generate time per request.")
    eval_records: int = Field(default=0, ge=0)
    eval_digest: str | None = Field(default=None, description="Must equal the prepare result's.")
    model: str | None = Field(default=None, description="What was evaluated: a base spec or an artifact digest.")


def parse_collect_result(data: dict[str, Any] | None) -> CollectResult | None:
    """The collector's result from its parsed termination message; None when it is not one."""
    return CollectResult.from_wire(data)


def parse_prepare_result(data: dict[str, Any] | None) -> PrepareResult | None:
    """The prepare step's result from its parsed termination message; None when it is not one."""
    return PrepareResult.from_wire(data)


def parse_eval_result(data: dict[str, Any] | None) -> EvalResult | None:
    """An eval step's result from its parsed termination message; None when it is not one."""
    return EvalResult.from_wire(data)
