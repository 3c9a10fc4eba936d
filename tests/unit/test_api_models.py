"""The API models: defaults, bounds and cross-field rules users rely on."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from acgs_operator.api import BY_KIND
from acgs_operator.api.common import SEMVER_PATTERN
from acgs_operator.api.deployment import DeploymentSpec
from acgs_operator.api.flywheel import FlywheelPolicySpec
from acgs_operator.api.modelversion import ModelVersionSpec, model_version_name
from acgs_operator.api.trainingjob import TrainingJobSpec

from ..conftest import ROOT
from acgs_contract.constitution import CONSTITUTIONAL_HASH

HASH = CONSTITUTIONAL_HASH


def tj(**overrides: object) -> dict:
    spec = {"constitutionalHash": HASH, "modelName": "constitutional-ai",
            "data": {"generate": {"type": "constitutional_ai"}}}
    spec.update(overrides)
    return spec


class TestSamples:
    @pytest.mark.parametrize("path", sorted(p for p in (ROOT / "manifests/samples").glob("*.yaml")
                                            if p.name != "kustomization.yaml"), ids=lambda p: p.name)
    def test_every_sample_is_valid(self, path):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["apiVersion"].startswith("acgs.io/"):
                BY_KIND[doc["kind"]].spec.model_validate(doc["spec"])


class TestTrainingJob:
    def test_defaults_are_safe(self):
        spec = TrainingJobSpec.model_validate(tj())
        assert spec.privacy.enabled and spec.privacy.target_epsilon == 8.0 and spec.privacy.target_delta == 1e-5
        assert spec.resources.gpus == 1 and spec.lora.r == 8 and spec.version_policy == "minor"

    @pytest.mark.parametrize("privacy, field", [
        ({"targetEpsilon": 50}, "targetEpsilon"), ({"targetEpsilon": 0}, "targetEpsilon"),
        ({"targetDelta": 1e-3}, "targetDelta"),
    ])
    def test_privacy_budget_bounds(self, privacy, field):
        with pytest.raises(ValidationError) as err:
            TrainingJobSpec.model_validate(tj(privacy=privacy))
        assert field in str(err.value)

    @pytest.mark.parametrize("data", [{}, {"path": "/data/x.jsonl", "generate": {"type": "constitutional_ai"}}])
    def test_exactly_one_data_source(self, data):
        with pytest.raises(ValidationError, match="exactly one of data.path or data.generate"):
            TrainingJobSpec.model_validate(tj(data=data))

    def test_held_out_shares_leave_training_data(self):
        """The trainer rejects valRatio + evalRatio ≥ 0.9 (InvalidConfig); admission says so first."""
        generate = {"generate": {"type": "constitutional_ai"}}
        with pytest.raises(ValidationError, match=r"data.valRatio \+ data.evalRatio = 0.9: must be < 0.9"):
            TrainingJobSpec.model_validate(tj(data={**generate, "valRatio": 0.45, "evalRatio": 0.45}))
        ok = TrainingJobSpec.model_validate(tj(data={**generate, "valRatio": 0.45, "evalRatio": 0.4}))
        assert (ok.data.val_ratio, ok.data.eval_ratio) == (0.45, 0.4)

    def test_unknown_fields_are_errors(self):
        with pytest.raises(ValidationError, match="extra"):
            TrainingJobSpec.model_validate(tj(learningRate=0.1))

    def test_wire_format_is_camel_case(self):
        dumped = TrainingJobSpec.model_validate(tj()).to_api()
        assert "constitutionalHash" in dumped and "targetEpsilon" in dumped["privacy"]


class TestModelVersion:
    @pytest.mark.parametrize("version, ok", [
        ("1.0.0", True), ("0.1.0-rc.1+build.5", True), ("1.0", False), ("01.0.0", False), ("v1.0.0", False),
    ])
    def test_semver(self, version, ok):
        spec = {"constitutionalHash": HASH, "modelName": "m", "version": version, "baseModel": "b",
                "artifact": {"uri": "pvc://a/b", "digest": "sha256:" + "0" * 64}}
        if ok:
            assert ModelVersionSpec.model_validate(spec).stage == "candidate"
        else:
            with pytest.raises(ValidationError, match="version"):
                ModelVersionSpec.model_validate(spec)

    def test_name_is_deterministic_and_dns_safe(self):
        assert model_version_name("constitutional-ai", "1.2.0") == "constitutional-ai-1-2-0"

    def test_semver_pattern_is_anchored(self):
        assert SEMVER_PATTERN.startswith("^") and SEMVER_PATTERN.endswith("$")


class TestDeployment:
    def test_model_ref_needs_exactly_one(self):
        with pytest.raises(ValidationError, match="exactly one of model.versionRef or model.selector"):
            DeploymentSpec.model_validate({"constitutionalHash": HASH, "model": {}})

    def test_negative_replicas_rejected(self):
        with pytest.raises(ValidationError, match="replicas"):
            DeploymentSpec.model_validate({"constitutionalHash": HASH, "model": {"versionRef": "x"}, "replicas": -1})


class TestFlywheel:
    def test_threshold_defaults_from_the_seeds(self):
        spec = FlywheelPolicySpec.model_validate({"constitutionalHash": HASH, "deploymentRef": "d"})
        assert (spec.thresholds.min_records, spec.thresholds.eval_size, spec.thresholds.val_ratio) == (50, 20, 0.1)


class TestDisplayedFigures:
    def test_privacy_cost_is_rounded_up_never_understated(self):
        from acgs_operator.api.modelversion import Metrics
        from acgs_operator.api.trainingjob import TrainingProgress

        assert Metrics(epsilon=7.43904108).epsilon == 7.4391
        assert Metrics(epsilon=2.0).epsilon == 2.0
        assert TrainingProgress(epsilon=1.00001).epsilon == 1.0001
        assert Metrics(compliance_score=0.18421052631578946).compliance_score == 0.1842
