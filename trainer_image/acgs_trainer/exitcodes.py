"""Process exit codes of ``acgs-train`` and ``acgs-data``.

The operator's podFailurePolicy reads these: it does not retry INVALID_CONFIG, INVALID_DATA or
PRIVACY_BUDGET_EXHAUSTED, because running the same pod again cannot change the outcome.
"""

from __future__ import annotations

SUCCESS = 0
UNEXPECTED_ERROR = 1
INVALID_CONFIG = 2
INVALID_DATA = 3
PRIVACY_BUDGET_EXHAUSTED = 4
ARTIFACT_ERROR = 5

#: reason strings written into the result JSON (CamelCase, like Kubernetes condition reasons)
REASONS: dict[int, str] = {
    SUCCESS: "Succeeded",
    UNEXPECTED_ERROR: "UnexpectedError",
    INVALID_CONFIG: "InvalidConfig",
    INVALID_DATA: "InvalidData",
    PRIVACY_BUDGET_EXHAUSTED: "PrivacyBudgetExhausted",
    ARTIFACT_ERROR: "ArtifactError",
}


class TrainerError(Exception):
    """Base of the errors that map to a documented exit code."""

    exit_code = UNEXPECTED_ERROR

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        #: extra fields for the result JSON (e.g. epsilon spent when the budget halts a run)
        self.details: dict[str, object] = dict(details)

    @property
    def reason(self) -> str:
        return REASONS[self.exit_code]


class ConfigError(TrainerError):
    exit_code = INVALID_CONFIG


class DataError(TrainerError):
    exit_code = INVALID_DATA


class PrivacyBudgetExhausted(TrainerError):
    exit_code = PRIVACY_BUDGET_EXHAUSTED
