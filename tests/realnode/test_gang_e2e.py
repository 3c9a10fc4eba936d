"""A TrainingJob of two workers on the real node, where cluster DNS resolves ``<job>-0.<service>``
(the pod runner has none, so tests/cluster only checks the Indexed Job's shape): two pods of the
trainer image, started by acgs-torchrun, meet at pod 0's name through the headless Service and
train one DP run over gloo, with the gang's NetworkPolicy enforced by kube-network-policies. Its
ModelVersion verifies, and the ε it recorded is the figure one process spends on the very same
configuration (the operator's rendered config, run by acgs-train on the host).
Needs `make images`, then `make test-realnode-e2e PYTEST_ARGS="-k gang"`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from acgs_contract import env
from acgs_contract.constitution import CONSTITUTIONAL_HASH
from acgs_operator.builders import trainingjob as training

from tests.cluster.conftest import ON_LOCAL_NODE, RUNNER_CPU, pvc
from tests.conftest import Cluster, wait_until
from tests.realnode.conftest import apply
from tests.realnode.test_product_e2e import on_real_node, product_images  # noqa: F401 (fixture)
from tests.trainer.conftest import child_env, read_result, run_cli

pytestmark = [pytest.mark.cluster, pytest.mark.realnode, pytest.mark.slow,
              # Decided before the `operator` fixture could start the default cluster (port 6443).
              pytest.mark.skipif(os.environ.get("ACGS_REAL_NODE") != "1",
                                 reason="needs the real node: `make test-realnode-e2e` (see README)")]
GENERATE = {"type": "constitutional_ai", "size": 60}
TRAINING = {"maxSteps": 6, "batchSize": 8, "checkpointEvery": 3}


def single_process_run(cluster: Cluster, namespace: str, job: str, tmp: Path) -> dict[str, Any]:
    """The operator's rendered config for `job`, run by one acgs-train process on the host: the
    same data (generated from the same seed), batch, noise calibration and steps."""
    data = cluster.get_json("configmap", training.config_map_name(job), "-n", namespace)["data"]
    config = json.loads(data[training.CONFIG_KEY])
    constitution = tmp / training.CONSTITUTION_KEY
    constitution.write_text(data[training.CONSTITUTION_KEY])
    generated = tmp / "generated.jsonl"
    gen_env = child_env(**{env.CONSTITUTION_DIGEST: config["constitutionDigest"]})
    proc = run_cli("acgs-data", "--constitutional-hash", CONSTITUTIONAL_HASH, "--constitution", str(constitution),
                   "generate", "--type", str(GENERATE["type"]), "--size", str(GENERATE["size"]),
                   "--seed", _generate_seed(cluster, namespace, job),
                   "--out", str(generated), env=gen_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for key in ("progressUrl", "metricsPort"):
        config.pop(key, None)
    config.update(data=str(generated), output=str(tmp / "out"), constitution=str(constitution))
    (tmp / "config.json").write_text(json.dumps(config))
    proc = run_cli("acgs-train", "--config", str(tmp / "config.json"), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_result(tmp / "out")


def _generate_seed(cluster: Cluster, namespace: str, job: str) -> str:
    """The seed the gang's init container generated its data with (the spec's default)."""
    tj = cluster.get_json("tj", job, "-n", namespace)
    return str(tj["spec"]["data"]["generate"]["seed"])


def test_two_workers_rendezvous_by_name_and_train_one_dp_run(
        operator: Cluster, product_images: None, real_namespace: str, tmp_path: Path) -> None:  # noqa: F811
    cluster, ns = operator, real_namespace
    artifacts: Path = pvc(cluster, ns, "artifacts")
    apply(cluster, {
        "apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob", "metadata": {"name": "gang", "namespace": ns},
        "spec": {"constitutionalHash": CONSTITUTIONAL_HASH, "modelName": "constitutional-ai", "workers": 2,
                 "data": {"generate": GENERATE}, "training": TRAINING,
                 "privacy": {"enabled": True, "targetEpsilon": 8},
                 "resources": {"cpu": RUNNER_CPU, "memory": "2Gi", "gpus": 0, **ON_LOCAL_NODE},
                 "output": {"pvc": "artifacts"}, "backoffLimit": 0}})
    done = wait_until(lambda: (t := cluster.get_json("tj", "gang", "-n", ns)).get("status", {}).get("phase")
                      in ("Succeeded", "Failed") and t, 900, "the gang's training run", interval=2)
    logs = {index: cluster.kubectl("logs", "-n", ns, "-l", f"batch.kubernetes.io/job-completion-index={index},"
                                   "job-name=gang-train", "--tail=200").stdout for index in (0, 1)}
    assert done["status"]["phase"] == "Succeeded", (done["status"], logs)

    # One Indexed Job of two completions, both pods ran to the end on the real node.
    job = cluster.get_json("job", "gang-train", "-n", ns)
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 2
    assert job["status"].get("succeeded") == 2, job["status"]
    pods = on_real_node(cluster, ns, "job-name=gang-train")
    indexes = sorted(p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1"] and all(p["status"]["phase"] == "Succeeded" for p in pods), indexes
    # Both ranks trained the same steps (DDP + the DP optimizer's global noise: the same losses).
    steps = {index: [line for line in log.splitlines() if f"step {TRAINING['maxSteps']}/" in line]
             for index, log in logs.items()}
    assert steps[0] and steps[1], logs

    name = done["status"]["modelVersion"]
    mv = wait_until(lambda: (m := cluster.get_json("mv", name, "-n", ns)).get("status", {}).get("phase")
                    in ("Ready", "Invalid") and m, 300, "the ModelVersion verified", interval=2)
    assert mv["status"]["phase"] == "Ready", mv["status"]
    assert mv["status"]["verifiedDigest"] == mv["spec"]["artifact"]["digest"] == done["status"]["artifactDigest"]
    run_dir = next((artifacts / "trainingjobs").glob("gang-*"))
    manifest = json.loads((run_dir / "artifact/manifest.json").read_text())
    assert manifest["training"]["worldSize"] == 2, manifest["training"]

    # The artifact's exact figure; the status shows it rounded up.
    epsilon = manifest["privacy"]["epsilonSpent"]
    shown = done["status"]["progress"]["epsilon"]
    assert 0 < epsilon <= shown + 1e-9 and shown <= 8, (epsilon, shown)
    alone = single_process_run(cluster, ns, "gang", tmp_path)
    assert alone["epsilon"] == epsilon, (alone, manifest["privacy"])
