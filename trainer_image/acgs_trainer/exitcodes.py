"""The trainer's typed errors: each carries its exit code and reason.

The codes and reasons themselves are the contract's (``acgs_contract.exitcodes``): the operator's
podFailurePolicy and status read the same constants.
"""

from __future__ import annotations

from acgs_contract.exitcodes import (ARTIFACT_ERROR, INVALID_CONFIG, INVALID_DATA,
                                     PRIVACY_BUDGET_EXHAUSTED, REASONS, SUCCESS, UNEXPECTED_ERROR,
                                     reason_of)

__all__ = ["ARTIFACT_ERROR", "INVALID_CONFIG", "INVALID_DATA", "PRIVACY_BUDGET_EXHAUSTED", "REASONS",
           "SUCCESS", "UNEXPECTED_ERROR", "ConfigError", "DataError", "PrivacyBudgetExhausted",
           "TrainerError"]


class TrainerError(Exception):
    """Base of the errors that map to a documented exit code."""

    exit_code = UNEXPECTED_ERROR

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        #: extra fields for the result JSON (e.g. epsilon spent when the budget halts a run)
        self.details: dict[str, object] = dict(details)

    @property
    def reason(self) -> str:
        return reason_of(self.exit_code)


class ConfigError(TrainerError):
    exit_code = INVALID_CONFIG


class DataError(TrainerError):
    exit_code = INVALID_DATA


class PrivacyBudgetExhausted(TrainerError):
    exit_code = PRIVACY_BUDGET_EXHAUSTED
