"""The seed documents' request bodies, sent verbatim over HTTP to a real `acgs-serve` serving a
real trained artifact: accepted, their free text reaches the model, and the reply carries what the
seeds promise (decision, reasoning, compliance_score, constitutional_hash)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import HASH, ServerProcess, artifact_digest, launch

pytestmark = pytest.mark.ml

# Copied verbatim from /work/shared/seeds/training-and-deployment-system.md, "API Endpoints and
# Integration" (kept as text so a reformatting here cannot drift from the document unnoticed).
SEED_BODIES: dict[str, str] = {
    "/constitutional-ai/predict": """{
  "scenario": "ethical_dilemma",
  "context": {"user_role": "employee", "data_type": "personal"},
  "user_request": "Access to customer data for analysis",
  "constitutional_principles": ["privacy", "transparency", "accountability"],
  "constitutional_hash": "cdd01ef066bc6cf2"
}""",
    "/policy-governance/predict": """{
  "policy_type": "data_protection",
  "framework": "GDPR",
  "scope": "organization",
  "context": "Employee data access policy",
  "constitutional_hash": "cdd01ef066bc6cf2"
}""",
    "/multi-agent/predict": """{
  "scenario": "conflict_resolution",
  "involved_agents": ["ethics", "legal", "operational"],
  "task_description": "Resolve data access conflict",
  "priority": "high",
  "constitutional_hash": "cdd01ef066bc6cf2"
}""",
}
ENDPOINT_TYPES = {"/constitutional-ai/predict": "constitutional_ai",
                  "/policy-governance/predict": "policy_governance",
                  "/multi-agent/predict": "multi_agent_coordination"}


@pytest.fixture(scope="module")
def server(tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    started = launch(tiny_artifact, tmp_path_factory.mktemp("serve-logs"), "--max-batch-wait-ms", "1")
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


@pytest.mark.parametrize("path", list(SEED_BODIES))
def test_seed_body_verbatim_is_answered_from_its_own_prompt(server: ServerProcess, tiny_artifact: Path,
                                                            path: str) -> None:
    from acgs_trainer import modeling, prompting
    from acgs_trainer.constitution import load_constitution
    from acgs_trainer.request_shapes import record_from_seed_body

    raw = SEED_BODIES[path].encode()
    result = server.post(path, raw=raw)
    assert result.status == 200, result.text
    out = result.body
    dataset_type = ENDPOINT_TYPES[path]
    assert (out["type"], out["constitutional_hash"], out["digest"]) == (
        dataset_type, HASH, artifact_digest(tiny_artifact))
    # The free text reached the model: the served text is the trainer's own inference on the prompt
    # that carries the body's text, and that prompt differs from the one without it.
    record = record_from_seed_body(dataset_type, json.loads(raw))
    prompt = prompting.format_prompt(record)
    without_text = prompting.format_prompt({"type": dataset_type, "input": {"scenario": record["input"]["scenario"]}})
    assert "text:" in prompt and prompt != without_text
    model, tokenizer = modeling.load_for_inference(tiny_artifact)
    (expected,) = modeling.generate_continuations(model, tokenizer, [prompt], max_new_tokens=16)
    assert out["generated_text"] == expected
    assert out["decision"] == prompting.parse_decision(expected)
    # What the seeds promise, computed against the constitution on the fields the body gave.
    constitution = load_constitution()
    verdict = constitution.evaluate(record["input"]["scenario"])
    assert out["constitution_decision"] == verdict.decision
    assert out["compliance_score"] == (1.0 if out["decision"] == verdict.decision else 0.0)
    assert isinstance(out["reasoning"], str) and out["reasoning"]
    assert set(out["rules"]) <= {r.id for r in constitution.rules if r.fires(record["input"]["scenario"])}
    assert set(out["principles"]) <= set(constitution.principles)
    assert out["missing_fields"], "a seed body leaves schema fields out and the reply says which"


def test_seed_body_fields_that_name_schema_fields_are_used_as_such(server: ServerProcess) -> None:
    """A seed body that gives every schema field (as the generator writes them) is judged on all of
    them: here restricted data without consent, which the constitution denies."""
    body = json.loads(SEED_BODIES["/constitutional-ai/predict"])
    body["scenario"] = "data_access_request"
    body["context"] = {"user_role": "employee", "sensitivity": "restricted", "consent": False, "risk_level": "low",
                       "audit_logging": True, "human_oversight": True, "explanation_provided": True,
                       "affects_protected_group": False, "bias_tested": True, "data_type": "personal"}
    result = server.post("/constitutional-ai/predict", body)
    assert result.status == 200, result.text
    out = result.body
    assert out["missing_fields"] == []
    assert out["constitution_decision"] == "DENY"
    if out["decision"] == "DENY":
        assert out["compliance_score"] == 1.0 and out["rules"] == ["privacy.restricted_without_consent"]
        assert "privacy.restricted_without_consent" in out["reasoning"]
    else:
        assert out["compliance_score"] == 0.0


@pytest.mark.parametrize(
    ("path", "change", "field"),
    [
        ("/policy-governance/predict", {"framework": "CCPA"}, "framework"),
        ("/constitutional-ai/predict", {"context": {"user_role": "ceo"}}, "context.user_role"),
        ("/constitutional-ai/predict", {"context": {"consent": "yes"}}, "context.consent"),
        ("/multi-agent/predict", {"involved_agents": ["a", "b", "c", "d", "e", "f", "g", "h"]}, "involved_agents"),
        ("/multi-agent/predict", {"task_descripton": "typo"}, "task_descripton"),
        ("/constitutional-ai/predict", {"user_request": "x" * 5000}, "user_request"),
    ],
)
def test_seed_body_with_a_bad_value_is_400_naming_the_field(server: ServerProcess, path: str,
                                                            change: dict[str, Any], field: str) -> None:
    body = {**json.loads(SEED_BODIES[path]), **change}
    result = server.post(path, body)
    assert result.status == 400, result.text
    assert result.body["error"]["field"] == field
    assert field in result.body["error"]["message"]
