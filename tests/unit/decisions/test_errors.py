"""The one error path: a typed error's failure status per kind, and messages that name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from acgs_operator import errors
from acgs_operator.api.deployment import DeploymentSpec
from acgs_operator.events import EVENT_MESSAGE_LIMIT, truncate


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def stalled(reason: str) -> dict[str, tuple[str, str]]:
    """kstatus: a permanent failure is Stalled, neither Ready nor Reconciling."""
    return {"Ready": ("False", reason), "Reconciling": ("False", reason), "Stalled": ("True", reason)}


class TestFailureStatus:
    def test_training_job_fails_and_stops_running(self) -> None:
        old = {"conditions": [{"type": "Running", "status": "True", "reason": "PodRunning", "message": "",
                               "lastTransitionTime": "t"}]}
        status = errors.failure_status("TrainingJob", old, "ParentNotFound", "spec.parentVersion: ...", 2)
        assert status["phase"] == "Failed" and status["observedGeneration"] == 2
        assert conditions(status) == {"Running": ("False", "ParentNotFound"), "Failed": ("True", "ParentNotFound"),
                                      **stalled("ParentNotFound")}

    def test_model_version_is_invalid_and_not_ready(self) -> None:
        status = errors.failure_status("ModelVersion", None, "InvalidSpec", "spec.version: ...", 1)
        assert status["phase"] == "Invalid"
        assert conditions(status) == {"Verified": ("False", "InvalidSpec"), **stalled("InvalidSpec")}

    def test_deployment_is_degraded_and_unavailable(self) -> None:
        status = errors.failure_status("Deployment", {}, "InvalidSpec", "spec.replicas: ...", 1)
        assert status["phase"] == "Degraded" and conditions(status) == {"Available": ("False", "InvalidSpec"),
                                                                     **stalled("InvalidSpec")}


def test_invalid_spec_names_field_value_and_expectation() -> None:
    with pytest.raises(ValidationError) as info:
        DeploymentSpec.model_validate({"constitutionalHash": "cdd01ef066bc6cf2", "model": {"versionRef": "a"},
                                       "replicas": -1})
    error = errors.invalid_spec(info.value)
    assert error.reason == "InvalidSpec"
    assert "spec.replicas" in error.message and "-1" in error.message and "greater than" in error.message


def test_event_messages_stay_under_1024_characters() -> None:
    message = truncate("x" * 5000, EVENT_MESSAGE_LIMIT)
    assert len(message) < 1024 and message.endswith("...")
