"""A base model on a claim, through the whole pipeline on the local control plane: a GPT-2 model
made here with save_pretrained onto a real PVC of the local provisioner, a TrainingJob with
``baseModel: pvc://bases/gpt2`` → its ModelVersion verified by the operator's Job → an acgs.io
Deployment whose server pods load that base (read-only, digest checked) and answer a prediction.
Neither the verification Job nor the servers can see the base unless the operator mounts it.

    flock /tmp/acgs-cluster.lock .venv/bin/python -m pytest -m cluster tests/cluster/test_pvc_base_e2e.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import Cluster
from ..trainer.test_real_bases import _make_model
from .conftest import ON_LOCAL_NODE, apply, pvc, wait_until
from .test_deployment_e2e import SCENARIO, ActiveServiceClient
from acgs_contract.constitution import CONSTITUTIONAL_HASH

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.ml]

HASH = CONSTITUTIONAL_HASH
BASE = "pvc://bases/gpt2"
PORT = 18081


def _get(cluster: Cluster, kind: str, name: str, namespace: str) -> dict:
    return cluster.get_json(kind, name, "-n", namespace)


def test_a_model_trained_on_a_pvc_base_is_verified_and_served(cluster: Cluster, operator: Cluster,
                                                               podrunner: Path, namespace: str) -> None:
    artifacts = pvc(operator, namespace, "artifacts")
    base_dir = _make_model("gpt2", pvc(operator, namespace, "bases") / "gpt2")
    apply(cluster, {"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob",
                    "metadata": {"name": "gpt2", "namespace": namespace},
                    "spec": {"constitutionalHash": HASH, "modelName": "gpt2-cai", "baseModel": BASE,
                             "data": {"generate": {"type": "constitutional_ai", "size": 60}},
                             "training": {"maxSteps": 6, "batchSize": 8, "checkpointEvery": 3},
                             "privacy": {"enabled": False},
                             "resources": {"cpu": "1", "memory": "2Gi", **ON_LOCAL_NODE},
                             "output": {"pvc": "artifacts"}, "backoffLimit": 1}})

    def finished() -> dict | None:
        tj = _get(cluster, "trainingjob", "gpt2", namespace)
        return tj if (tj.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None
    tj = wait_until(finished, 420, "the TrainingJob to finish")
    assert tj["status"]["phase"] == "Succeeded", tj["status"]

    mv_name = tj["status"]["modelVersion"]
    def judged() -> dict | None:
        mv = _get(cluster, "modelversion", mv_name, namespace)
        return mv if (mv.get("status") or {}).get("phase") in ("Ready", "Invalid") else None
    mv = wait_until(judged, 240, "the ModelVersion to be verified")
    assert mv["status"]["phase"] == "Ready", mv["status"]  # the verifier found the base and its digest
    assert mv["spec"]["baseModel"] == BASE
    artifact = artifacts / mv["spec"]["artifact"]["uri"][len("pvc://artifacts/"):]
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["baseModel"]["bundled"] is False and manifest["baseModel"]["path"] == "/models/bases/gpt2"
    assert manifest["baseModel"]["digest"].startswith("sha256:") and (base_dir / "config.json").is_file()

    apply(cluster, {"apiVersion": "acgs.io/v1alpha1", "kind": "Deployment",
                    "metadata": {"name": "gpt2", "namespace": namespace},
                    "spec": {"constitutionalHash": HASH, "model": {"versionRef": mv_name}, "replicas": 1,
                             "port": PORT, "artifactPvc": "artifacts",
                             "resources": {"cpu": "1", "memory": "2Gi", **ON_LOCAL_NODE},
                             "promotion": {"minComplianceScore": 0.0, "smokeRequests": 1}}})

    def healthy() -> dict | None:
        status = _get(cluster, "deployments.acgs.io", "gpt2", namespace).get("status") or {}
        return status if status.get("phase") == "Healthy" else None
    try:
        wait_until(healthy, 240, "the Deployment to serve the pvc-based model")
    except AssertionError:
        status = _get(cluster, "deployments.acgs.io", "gpt2", namespace).get("status")
        raise AssertionError(f"not Healthy: {json.dumps(status)[-3000:]}") from None
    server = _get(cluster, "deployments.apps", "gpt2-blue", namespace)["spec"]["template"]["spec"]
    assert {"name": "base-model", "persistentVolumeClaim": {"claimName": "bases", "readOnly": True}} \
        in server["volumes"]

    client = ActiveServiceClient(cluster, namespace, "gpt2")
    address = wait_until(client.refresh, 30, "the active Service's endpoints")[0]
    code, digest = client.predict(address)
    assert (code, digest) == (200, manifest["digest"]), (code, digest, SCENARIO)
