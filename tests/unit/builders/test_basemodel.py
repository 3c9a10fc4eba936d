"""A base model outside the artifact is mounted, read-only and at the same path, by every pod that
loads it: the training Job that records its path in the manifest, the verification Job and both
server colors (pure builders, no cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from acgs_operator.api.deployment import DeploymentSpec
from acgs_operator.api.modelversion import ModelVersionSpec
from acgs_operator.api.trainingjob import TrainingJobSpec
from acgs_operator.builders import deployment as deb
from acgs_operator.builders import modelversion as mvb
from acgs_operator.builders import trainingjob as tjb
from acgs_operator.builders.basemodel import base_model_volumes
from acgs_operator.builders.common import Owner
from acgs_operator.config import Settings
from acgs_contract.constitution import CONSTITUTIONAL_HASH

HASH = CONSTITUTIONAL_HASH
DIGEST = "sha256:" + "ab" * 32
CACHE = "model-cache"


def _pods(base_model: str) -> dict[str, dict[str, Any]]:
    """The pod spec of each of the three workloads for one base model, built as the handlers do."""
    settings = Settings(trainer_image="trainer:test", model_cache_pvc=CACHE)
    tj = TrainingJobSpec.model_validate({
        "constitutionalHash": HASH, "modelName": "cai", "baseModel": base_model,
        "data": {"generate": {"type": "constitutional_ai", "size": 40, "seed": 7}},
        "output": {"pvc": "artifacts"}})
    mv = ModelVersionSpec.model_validate({
        "constitutionalHash": HASH, "modelName": "cai", "version": "0.1.0", "baseModel": base_model,
        "artifact": {"uri": "pvc://artifacts/tj/artifact", "digest": DIGEST}})
    dep = DeploymentSpec.model_validate({"constitutionalHash": HASH, "model": {"versionRef": "cai-0-1-0"},
                                         "port": 8080})
    train = tjb.build_job(tj, Owner("TrainingJob", "tj", "ns", "u1"), settings)
    verify = mvb.build_verify_job(Owner("ModelVersion", "cai-0-1-0", "ns", "u2"), mv, "img", {},
                                  model_cache_pvc=settings.model_cache_pvc)
    pods = {"train": train["spec"]["template"]["spec"], "verify": verify["spec"]["template"]["spec"]}
    for color in ("blue", "green"):
        server = deb.server_deployment(Owner("Deployment", "cai", "ns", "u3"), dep, color, "cai-0-1-0", mv, 1,
                                       "srv", model_cache_pvc=settings.model_cache_pvc)
        pods[color] = server["spec"]["template"]["spec"]
    return pods


def _base(pod: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes = [v for v in pod["volumes"] if v["name"] == "base-model"]
    mounts = [m for c in pod["containers"] for m in c["volumeMounts"] if m["name"] == "base-model"]
    return volumes, mounts


@pytest.mark.parametrize("base_model,claim,mount", [
    ("pvc://bases/gpt2/v1", "bases",
     {"name": "base-model", "mountPath": "/models/bases/gpt2/v1", "subPath": "gpt2/v1", "readOnly": True}),
    ("pvc://bases", "bases", {"name": "base-model", "mountPath": "/models/bases", "readOnly": True}),
    ("hf://org/tiny-gpt2", CACHE, {"name": "base-model", "mountPath": "/models/hf-cache", "readOnly": True}),
])
def test_every_pod_that_loads_the_base_mounts_it_read_only_at_the_same_path(
        base_model: str, claim: str, mount: dict[str, Any]) -> None:
    pods = _pods(base_model)
    assert set(pods) == {"train", "verify", "blue", "green"}
    for name, pod in pods.items():
        volumes, mounts = _base(pod)
        claim_ro = {"claimName": claim, "readOnly": True}
        assert volumes == [{"name": "base-model", "persistentVolumeClaim": claim_ro}], name
        assert mounts == [mount], name


@pytest.mark.parametrize("base_model", ["builtin:tiny-llama", "/opt/models/gpt2", "hf://org/name"])
def test_a_base_in_the_image_or_artifact_needs_no_volume(base_model: str) -> None:
    cache = None if base_model.startswith("hf://") else CACHE  # hf:// without a cache: nothing to mount
    assert base_model_volumes(base_model, cache) == ([], [])


@pytest.mark.parametrize("base_model", ["pvc:///gpt2", "pvc://bases/../other-claim", "pvc://bases/a/../../x"])
def test_a_reference_that_escapes_its_claim_is_refused_naming_the_field(base_model: str) -> None:
    with pytest.raises(ValueError, match=r"ModelVersion spec\.baseModel=.*expected pvc://<claim>/<path"):
        base_model_volumes(base_model, None, "ModelVersion spec.baseModel")


def test_the_mount_is_where_the_trainer_resolves_and_records_the_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest records the path the trainer resolved (resolve_base_path with its default root);
    the verifier and the server find the base only if their mount is exactly there."""
    modeling = pytest.importorskip("acgs_trainer.modeling")
    monkeypatch.delenv(modeling.MODEL_ROOT_ENV, raising=False)
    for base_model in ("pvc://bases/gpt2/v1", "pvc://bases/gpt2/v1/", "pvc://bases"):
        _, mounts = base_model_volumes(base_model, None)
        assert str(modeling.resolve_base_path(base_model)).rstrip("/") == mounts[0]["mountPath"]
