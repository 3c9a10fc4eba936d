"""Process exit codes of ``acgs-train``, ``acgs-train verify`` and ``acgs-data``, and their reasons.

The operator's podFailurePolicy and status read these: a code in ``NON_RETRIABLE`` fails the Job at
once, because running the same pod again cannot change the outcome.
"""

from __future__ import annotations

SUCCESS = 0
UNEXPECTED_ERROR = 1
INVALID_CONFIG = 2
INVALID_DATA = 3
PRIVACY_BUDGET_EXHAUSTED = 4
ARTIFACT_ERROR = 5

#: reason of each code (CamelCase, like Kubernetes condition reasons); the result JSON's ``reason``
#: and the operator's condition reason for a failed Job.
REASONS: dict[int, str] = {
    SUCCESS: "Succeeded",
    UNEXPECTED_ERROR: "UnexpectedError",
    INVALID_CONFIG: "InvalidConfig",
    INVALID_DATA: "InvalidData",
    PRIVACY_BUDGET_EXHAUSTED: "PrivacyBudgetExhausted",
    ARTIFACT_ERROR: "ArtifactError",
}

#: a training pod that exits with one of these is not retried
TRAINER_NON_RETRIABLE: tuple[int, ...] = (INVALID_CONFIG, INVALID_DATA, PRIVACY_BUDGET_EXHAUSTED)
#: a verification pod (``acgs-train verify``) that exits with one of these is not retried
VERIFY_NON_RETRIABLE: tuple[int, ...] = (INVALID_CONFIG, ARTIFACT_ERROR)


def reason_of(code: int) -> str:
    """The reason of an exit code; an undocumented code is an unexpected error."""
    return REASONS.get(code, REASONS[UNEXPECTED_ERROR])
