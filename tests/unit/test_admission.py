"""The webhook's decisions, without a cluster: messages name the field and what was expected."""

from __future__ import annotations

import pytest

from acgs_operator.admission import Rejected, validate

HASH = "cdd01ef066bc6cf2"
MV = {"constitutionalHash": HASH, "modelName": "m", "version": "1.0.0", "baseModel": "builtin:tiny-llama",
      "artifact": {"uri": "pvc://a/m/1.0.0", "digest": "sha256:" + "a" * 64}, "stage": "candidate"}


def test_wrong_hash_names_both_values():
    with pytest.raises(Rejected) as err:
        validate("ModelVersion", {**MV, "constitutionalHash": "0123456789abcdef"}, None, HASH)
    assert "'0123456789abcdef'" in str(err.value) and f"'{HASH}'" in str(err.value)


def test_missing_hash_says_what_is_expected():
    spec = {k: v for k, v in MV.items() if k != "constitutionalHash"}
    with pytest.raises(Rejected, match=f"spec.constitutionalHash is required: expected '{HASH}'"):
        validate("ModelVersion", spec, None, HASH)


def test_expected_hash_comes_from_configuration():
    amended = "1111111111111111"
    validate("ModelVersion", {**MV, "constitutionalHash": amended}, None, amended)
    with pytest.raises(Rejected):
        validate("ModelVersion", MV, None, amended)


@pytest.mark.parametrize("change", [{"version": "1.0.1"},
                                    {"artifact": {"uri": "pvc://a/x", "digest": MV["artifact"]["digest"]}},
                                    {"metrics": {"accuracy": 0.99}}])
def test_model_version_is_immutable_except_stage(change):
    with pytest.raises(Rejected, match=r"immutable except spec.stage; changed: spec\."):
        validate("ModelVersion", {**MV, **change}, MV, HASH)


def test_stage_may_change():
    validate("ModelVersion", {**MV, "stage": "production"}, MV, HASH)


def test_field_errors_name_the_path_and_value():
    spec = {"constitutionalHash": HASH, "modelName": "m", "data": {"generate": {"type": "constitutional_ai"}},
            "privacy": {"targetEpsilon": 50, "targetDelta": 1e-5}}
    with pytest.raises(Rejected) as err:
        validate("TrainingJob", spec, None, HASH)
    assert "spec.privacy.targetEpsilon" in str(err.value) and "50" in str(err.value)


def test_unknown_kind():
    with pytest.raises(Rejected, match="unknown kind"):
        validate("Pod", {}, None, HASH)
