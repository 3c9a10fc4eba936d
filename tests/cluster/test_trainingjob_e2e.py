"""TrainingJob end to end on the local control plane: the operator runs as a real process, the
trainer pod runs for real on acgs-local-0 (hack/podrunner/), and the ModelVersion's digest is
checked against the files the trainer left on the volume. `make test-realnode-e2e` runs the same
tests with the trainer and verification pods as containers from the trainer image on the real node.

    .venv/bin/python -m pytest -m cluster tests/cluster/test_trainingjob_e2e.py
"""

from __future__ import annotations

import hashlib
import json
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import Cluster, localcluster
from .conftest import RUNNER_CPU, apply, pvc, wait_until
from acgs_contract.constitution import CONSTITUTIONAL_HASH

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

HASH = CONSTITUTIONAL_HASH
ON_LOCAL_RUNNER = {  # GPU fields come from gpus: 1; these put the pod where it really runs
    "cpu": RUNNER_CPU, "memory": "2Gi", "gpus": 1,
    "nodeSelector": {"acgs.io/local-runner": "true"},
    "tolerations": [{"key": "acgs.io/local-runner", "operator": "Exists", "effect": "NoSchedule"}],
}


@pytest.fixture
def artifacts(operator: Cluster, podrunner: Path, namespace: str) -> Path:
    return pvc(operator, namespace, "artifacts")


def training_job(namespace: str, name: str, **spec: Any) -> str:
    body = {"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"constitutionalHash": HASH, "modelName": "constitutional-ai",
                     "data": {"generate": {"type": "constitutional_ai", "size": 60}},
                     "training": {"maxSteps": 30, "batchSize": 8, "checkpointEvery": 5},
                     "privacy": {"enabled": True, "targetEpsilon": 8},
                     "resources": ON_LOCAL_RUNNER, "output": {"pvc": "artifacts"}, "backoffLimit": 2,
                     **spec}}
    return yaml.safe_dump(body, sort_keys=False)


def tj(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.get_json("trainingjob", name, "-n", namespace)


def phase_in(cluster: Cluster, namespace: str, name: str, *phases: str) -> dict[str, Any] | None:
    obj = tj(cluster, namespace, name)
    return obj if (obj.get("status") or {}).get("phase") in phases else None


def pods_of_job(cluster: Cluster, namespace: str, job: str) -> list[dict[str, Any]]:
    return cluster.get_json("pods", "-n", namespace, "-l", f"job-name={job}")["items"]


def digest_on_disk(directory: Path) -> str:
    """The artifact digest recomputed here, independently of the trainer's code: every file on disk
    (but the manifest) is listed in the manifest with its sha256, and the digest is the sha256 of the
    canonical JSON of the manifest without its digest field (trainer_image/README.md documents it)."""
    manifest = json.loads((directory / "manifest.json").read_text())
    on_disk = {path.relative_to(directory).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
               for path in directory.rglob("*") if path.is_file() and path.name != "manifest.json"}
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == on_disk
    body = {key: value for key, value in manifest.items() if key != "digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def volume_path(claim_dir: Path, uri: str) -> Path:
    prefix = f"pvc://{claim_dir.name}/"
    assert uri.startswith(prefix), uri
    return claim_dir / uri[len(prefix):]


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


class StatusRecorder:
    """Every status the apiserver stored for one TrainingJob, from a watch in a thread."""

    def __init__(self, namespace: str, name: str) -> None:
        from kubernetes import client, config, watch

        self.statuses: list[dict[str, Any]] = []
        self._stopped = False
        self._watch = watch.Watch()
        api = client.CustomObjectsApi(config.new_client_from_config(str(localcluster.KUBECONFIG)))

        def run() -> None:
            try:
                for event in self._watch.stream(api.list_namespaced_custom_object, "acgs.io", "v1alpha1",
                                                namespace, "trainingjobs", field_selector=f"metadata.name={name}",
                                                timeout_seconds=600):
                    self.statuses.append(event["object"].get("status") or {})
            except Exception:  # stop() closes the stream under the reader
                if not self._stopped:
                    raise

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def progress_before_finish(self) -> list[dict[str, Any]]:
        return [s.get("progress") or {} for s in self.statuses if s.get("phase") not in ("Succeeded", "Failed")]

    def stop(self) -> None:
        time.sleep(0.5)  # let the last events arrive
        self._stopped = True
        self._watch.stop()


def test_trainingjob_trains_for_real_and_yields_a_verified_model_version(cluster, namespace, artifacts):
    recorder = StatusRecorder(namespace, "cai")
    cluster.kubectl("apply", "-f", "-", input=training_job(namespace, "cai"), check=True)

    # The Job carries the GPU fields, the restricted pod and the fail-fast policy.
    job = wait_until(lambda: cluster.kubectl("get", "job", "cai-train", "-n", namespace, "-o", "json").stdout,
                     30, "the Job")
    job = json.loads(job)
    pod_spec = job["spec"]["template"]["spec"]
    trainer = pod_spec["containers"][0]
    assert trainer["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod_spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec["tolerations"]
    assert trainer["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2, 3, 4]}} \
        in job["spec"]["podFailurePolicy"]["rules"]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TrainingJob"

    # Live progress reaches the TrainingJob while the trainer runs. A 30-step run can finish between
    # two polls, so every status the apiserver stored is taken from a watch (started before the Job).
    done = wait_until(lambda: phase_in(cluster, namespace, "cai", "Succeeded", "Failed"), 300, "the run to finish")
    recorder.stop()
    running = [p for p in recorder.progress_before_finish() if 0 < (p.get("percent") or 0) < 100]
    assert running, f"no live progress before the run finished; statuses seen: {recorder.statuses[-5:]}"
    assert any(s.get("phase") == "Running" for s in recorder.statuses)
    assert all(p.get("epsilon", 0) > 0 and p.get("step", 0) > 0 for p in running)
    # ... and `kubectl get tj` shows it: NAME MODEL PHASE PROGRESS EPSILON VERSION AGE
    row = cluster.kubectl("get", "tj", "cai", "-n", namespace, "--no-headers", check=True).stdout.split()
    assert row[2] == "Succeeded" and float(row[3]) == 100 and 0 < float(row[4]) <= 8

    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert condition(done, "Succeeded")["status"] == "True"
    assert status["progress"]["percent"] == 100 and status["progress"]["epsilon"] <= 8
    assert status["startTime"] and status["completionTime"]

    # The ModelVersion: semver 0.1.0 (no parent, minor), digest equal to the files on disk.
    mv = cluster.get_json("modelversion", status["modelVersion"], "-n", namespace)
    assert status["modelVersion"] == "constitutional-ai-0-1-0" and mv["spec"]["version"] == "0.1.0"
    assert mv["spec"]["stage"] == "candidate" and mv["spec"]["lineage"]["trainingJob"] == "cai"
    artifact_dir = volume_path(artifacts, mv["spec"]["artifact"]["uri"])
    assert digest_on_disk(artifact_dir) == mv["spec"]["artifact"]["digest"] == status["artifactDigest"]
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    assert manifest["constitutionalHash"] == HASH
    # The record shows 4 decimals (ε rounded up: a privacy cost is never understated); the manifest is exact.
    assert mv["spec"]["metrics"]["complianceScore"] == round(manifest["metrics"]["complianceScore"], 4)
    spent = manifest["privacy"]["epsilonSpent"]
    assert spent <= mv["spec"]["metrics"]["epsilon"] <= spent + 1e-4 and mv["spec"]["metrics"]["epsilon"] <= 8
    assert mv["spec"]["lineage"]["dataDigest"] == manifest["data"]["digest"]

    mv = wait_until(lambda: (m := cluster.get_json("mv", status["modelVersion"], "-n", namespace))
                    .get("status", {}).get("phase") in ("Ready", "Invalid") and m, 120, "the ModelVersion verified")
    assert mv["status"]["phase"] == "Ready", mv["status"]
    assert condition(mv, "Verified")["status"] == "True"
    assert mv["status"]["verifiedDigest"] == digest_on_disk(artifact_dir)
    # The figures promotion gates read were verified from the artifact's manifest, not copied from the spec.
    verified = mv["status"]["verifiedMetrics"]
    assert verified["complianceScore"] == round(manifest["metrics"]["complianceScore"], 4)
    assert verified == mv["spec"]["metrics"]
    # The Job mounted only its own directory of the shared claim.
    job_mounts = cluster.get_json("job", "cai-train", "-n", namespace)["spec"]["template"]["spec"]["containers"][0]
    output = next(m for m in job_mounts["volumeMounts"] if m["name"] == "output")
    assert output["subPath"] == f"trainingjobs/cai-{done['metadata']['uid'][:8]}"

    # A record claiming better figures for the same artifact is refused by the verification Job's findings.
    claimed = min(1.0, round(verified["complianceScore"] + 0.25, 4)) if verified["complianceScore"] < 0.75 else 0.1
    inflated = {"apiVersion": "acgs.io/v1alpha1", "kind": "ModelVersion",
                "metadata": {"name": "inflated", "namespace": namespace,
                             "annotations": {"acgs.io/verify-scheduling":
                                             mv["metadata"]["annotations"]["acgs.io/verify-scheduling"]}},
                "spec": {**{k: v for k, v in mv["spec"].items() if k != "metrics"}, "version": "9.0.0",
                         "metrics": {**mv["spec"]["metrics"], "complianceScore": claimed}}}
    apply(cluster, inflated)
    bad = wait_until(lambda: (m := cluster.get_json("mv", "inflated", "-n", namespace))
                     .get("status", {}).get("phase") in ("Ready", "Invalid") and m, 120, "the inflated record judged")
    assert bad["status"]["phase"] == "Invalid", bad["status"]
    assert condition(bad, "Verified")["reason"] == "MetricsMismatch"
    assert (f"spec.metrics.complianceScore is {claimed} but the artifact records {verified['complianceScore']}"
            in bad["status"]["message"])

    table = cluster.kubectl("get", "tj,mv", "-n", namespace, check=True).stdout
    assert "trainingjob.acgs.io/cai" in table and "Succeeded" in table
    assert "modelversion.acgs.io/constitutional-ai-0-1-0" in table and "Ready" in table
    events = cluster.kubectl("describe", "tj", "cai", "-n", namespace, check=True).stdout
    assert "JobCreated" in events and "ModelVersionCreated" in events

    # Deleting the TrainingJob removes its children; the ModelVersion (the registry record) stays.
    cluster.kubectl("delete", "tj", "cai", "-n", namespace, check=True)
    children = ["job/cai-train", "configmap/cai-trainer-config", "secret/cai-progress", "networkpolicy/cai-train"]
    wait_until(lambda: all(cluster.kubectl("get", c, "-n", namespace).returncode != 0 for c in children), 60,
               "the children to be garbage-collected")
    assert cluster.kubectl("get", "mv", "constitutional-ai-0-1-0", "-n", namespace).returncode == 0


def test_bad_dataset_fails_once_with_invalid_data(cluster, namespace, artifacts):
    datasets = pvc(cluster, namespace, "datasets")
    datasets.mkdir(parents=True, exist_ok=True)
    (datasets / "train.jsonl").write_text("this is not json\n{\"also\": \n")
    cluster.kubectl("apply", "-f", "-", check=True, input=training_job(
        namespace, "bad-data", data={"path": "/train.jsonl", "pvc": "datasets"}))
    done = wait_until(lambda: phase_in(cluster, namespace, "bad-data", "Succeeded", "Failed"), 180, "the run to fail")
    failed = condition(done, "Failed")
    assert (done["status"]["phase"], failed["reason"]) == ("Failed", "InvalidData"), done["status"]
    assert "train.jsonl" in failed["message"]
    assert len(pods_of_job(cluster, namespace, "bad-data-train")) == 1  # not retried
    job = cluster.get_json("job", "bad-data-train", "-n", namespace)
    assert next(c for c in job["status"]["conditions"] if c["type"] == "Failed")["reason"] == "PodFailurePolicy"
    assert not done["status"].get("modelVersion")


def test_tiny_budget_halts_with_privacy_budget_exhausted(cluster, namespace, artifacts):
    # A fixed noise level that cannot stay within the budget for 200 steps: the trainer stops
    # before the step that would cross 95 % of the target.
    target = 2.0
    cluster.kubectl("apply", "-f", "-", check=True, input=training_job(
        namespace, "tiny-budget", training={"maxSteps": 200, "batchSize": 8, "checkpointEvery": 50},
        privacy={"enabled": True, "targetEpsilon": target, "noiseMultiplier": 1.5}))
    done = wait_until(lambda: phase_in(cluster, namespace, "tiny-budget", "Succeeded", "Failed"), 240,
                      "the budget halt")
    assert (done["status"]["phase"], condition(done, "Failed")["reason"]) == ("Failed", "PrivacyBudgetExhausted")
    epsilon = done["status"]["progress"]["epsilon"]
    assert 0 < epsilon <= 0.95 * target
    assert 0 < done["status"]["progress"]["step"] < 200
    assert len(pods_of_job(cluster, namespace, "tiny-budget-train")) == 1


def test_killed_trainer_resumes_from_its_checkpoint(cluster, namespace, artifacts):
    cluster.kubectl("apply", "-f", "-", check=True, input=training_job(
        namespace, "resume", training={"maxSteps": 60, "batchSize": 8, "checkpointEvery": 5}))
    obj = wait_until(lambda: (t := tj(cluster, namespace, "resume")).get("status", {}).get("progress", {})
                     .get("step", 0) >= 10 and t, 240, "step 10")
    run_dir = artifacts / "trainingjobs" / f"resume-{obj['metadata']['uid'][:8]}"
    wait_until(lambda: list((run_dir / "checkpoints").glob("step-*")), 30, "a checkpoint on the volume")
    first = [p for p in pods_of_job(cluster, namespace, "resume-train") if p["status"].get("phase") == "Running"]
    assert len(first) == 1
    cluster.kubectl("delete", "pod", first[0]["metadata"]["name"], "-n", namespace, "--wait=false", check=True)

    done = wait_until(lambda: phase_in(cluster, namespace, "resume", "Succeeded", "Failed"), 300, "the resumed run")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    names = {p["metadata"]["name"] for p in pods_of_job(cluster, namespace, "resume-train")}
    assert first[0]["metadata"]["name"] not in names or len(names) >= 2  # a replacement pod ran
    manifest = json.loads((run_dir / "artifact" / "manifest.json").read_text())
    assert manifest["training"]["resumedFrom"] >= 5 and manifest["training"]["steps"] == 60
    assert manifest["privacy"]["steps"] == 60  # the accountant's history survived the kill


def test_missing_parent_version_fails_without_a_job(cluster, namespace, artifacts):
    cluster.kubectl("apply", "-f", "-", check=True, input=training_job(namespace, "orphan", parentVersion="nope-1-0-0"))
    done = wait_until(lambda: phase_in(cluster, namespace, "orphan", "Failed"), 30, "the Failed phase")
    failed = condition(done, "Failed")
    assert failed["reason"] == "ParentNotFound" and "spec.parentVersion" in failed["message"]
    assert cluster.kubectl("get", "job", "orphan-train", "-n", namespace).returncode != 0
    # The one error path: the same reason as a Warning event, naming the field and the value given.
    events = wait_until(lambda: [e for e in cluster.get_json("events", "-n", namespace, "--field-selector",
                                                             "involvedObject.name=orphan")["items"]
                                 if e["reason"] == "ParentNotFound"], 20, "the ParentNotFound event")
    assert events[0]["type"] == "Warning" and len(events[0]["message"]) < 1024
    assert "spec.parentVersion" in events[0]["message"] and "'nope-1-0-0'" in events[0]["message"]


def test_child_of_a_parent_bumps_its_version(cluster, namespace, artifacts):
    parent = textwrap.dedent(f"""
        apiVersion: acgs.io/v1alpha1
        kind: ModelVersion
        metadata: {{name: constitutional-ai-1-4-2, namespace: {namespace}}}
        spec:
          constitutionalHash: {HASH}
          modelName: constitutional-ai
          version: 1.4.2
          baseModel: builtin:tiny-llama
          artifact: {{uri: "s3://models/cai/1.4.2", digest: "sha256:{'0' * 64}"}}
        """)
    cluster.kubectl("apply", "-f", "-", input=parent, check=True)
    cluster.kubectl("apply", "-f", "-", check=True, input=training_job(
        namespace, "child", parentVersion="constitutional-ai-1-4-2", versionPolicy="patch",
        training={"maxSteps": 10, "batchSize": 8, "checkpointEvery": 50}))
    done = wait_until(lambda: phase_in(cluster, namespace, "child", "Succeeded", "Failed"), 240, "the run")
    assert done["status"]["modelVersion"] == "constitutional-ai-1-4-3", done["status"]
    mv = cluster.get_json("mv", "constitutional-ai-1-4-3", "-n", namespace)
    assert mv["spec"]["lineage"]["parentVersion"] == "constitutional-ai-1-4-2"
    manifest = json.loads((volume_path(artifacts, mv["spec"]["artifact"]["uri"]) / "manifest.json").read_text())
    assert manifest["parentVersion"] == "constitutional-ai-1-4-2"


def test_model_version_verification_names_the_tampered_file(cluster, namespace, artifacts):
    """Ready needs a verification Job that really read the files and the manifest: a changed byte,
    or a manifest edited to point elsewhere, makes it Invalid."""
    from acgs_contract.constitution import default_text
    from acgs_trainer.artifact import write_artifact

    def populate(directory: Path) -> None:
        (directory / "adapter").mkdir()
        (directory / "adapter" / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
        (directory / "constitution.yaml").write_text(default_text())

    good = write_artifact(artifacts / "hand" / "good", populate, {"constitutional_hash": HASH})
    bad = write_artifact(artifacts / "hand" / "bad", populate, {"constitutional_hash": HASH})
    (artifacts / "hand" / "bad" / "adapter" / "adapter_model.safetensors").write_bytes(b"\x01" * 64)
    edited = write_artifact(artifacts / "hand" / "edited", populate, {"constitutional_hash": HASH})
    manifest_path = artifacts / "hand" / "edited" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tokenizerPath"] = "adapter"  # every file intact; only where the tokenizer is read from
    manifest_path.write_text(json.dumps(manifest))
    # What the TrainingJob handler records from the trainer pod: run the check where the volume is.
    scheduling = json.dumps({"nodeSelector": ON_LOCAL_RUNNER["nodeSelector"], "tolerations": [
        *ON_LOCAL_RUNNER["tolerations"], {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]})
    for name, version, path, digest in (("hand-1-0-0", "1.0.0", "hand/good", good.digest),
                                        ("hand-1-0-1", "1.0.1", "hand/bad", bad.digest),
                                        ("hand-1-0-2", "1.0.2", "hand/edited", edited.digest)):
        apply(cluster, {"apiVersion": "acgs.io/v1alpha1", "kind": "ModelVersion",
                        "metadata": {"name": name, "namespace": namespace,
                                     "annotations": {"acgs.io/verify-scheduling": scheduling}},
                        "spec": {"constitutionalHash": HASH, "modelName": "hand", "version": version,
                                 "baseModel": "builtin:tiny-llama",
                                 "artifact": {"uri": f"pvc://artifacts/{path}", "digest": digest}}})

    def settled(name: str) -> dict[str, Any] | None:
        mv = cluster.get_json("mv", name, "-n", namespace)
        return mv if mv.get("status", {}).get("phase") in ("Ready", "Invalid") else None

    ok = wait_until(lambda: settled("hand-1-0-0"), 90, "hand-1-0-0 verified")
    assert ok["status"]["phase"] == "Ready" and ok["status"]["verifiedDigest"] == good.digest
    assert condition(ok, "Verified")["message"] == f"manifest, 2 files and digest {good.digest} verified"
    broken = wait_until(lambda: settled("hand-1-0-1"), 90, "hand-1-0-1 verified")
    verified = condition(broken, "Verified")
    assert (broken["status"]["phase"], verified["status"], verified["reason"]) == ("Invalid", "False", "ArtifactError")
    assert "adapter/adapter_model.safetensors" in verified["message"] and "sha256" in verified["message"]
    assert verified["message"].startswith("FileDigestMismatch: "), "the trainer's ArtifactError code leads"
    rewired = wait_until(lambda: settled("hand-1-0-2"), 90, "hand-1-0-2 verified")
    verified = condition(rewired, "Verified")
    assert (rewired["status"]["phase"], verified["reason"]) == ("Invalid", "ArtifactError")
    assert verified["message"].startswith("ManifestInconsistent: "), verified["message"]

    # The stage is the one mutable field; each change is recorded.
    cluster.kubectl("patch", "mv", "hand-1-0-0", "-n", namespace, "--type=merge", "-p",
                    '{"spec": {"stage": "staging"}}', check=True)
    history = wait_until(lambda: len(h := cluster.get_json("mv", "hand-1-0-0", "-n", namespace)["status"]
                                     .get("stageHistory", [])) >= 2 and h, 30, "the stage history")
    assert history[0].endswith(" candidate") and history[-1].endswith(" candidate -> staging")


def test_queued_job_is_created_suspended_with_the_kueue_label(cluster, namespace, artifacts):
    cluster.kubectl("apply", "-f", "-", check=True, input=training_job(namespace, "queued", queueName="gpu-queue"))
    done = wait_until(lambda: phase_in(cluster, namespace, "queued", "Queued"), 30, "the Queued phase")
    queued = condition(done, "Queued")
    assert queued["status"] == "True" and "gpu-queue" in queued["message"]  # no Kueue here: nobody admits it
    job = cluster.get_json("job", "queued-train", "-n", namespace)
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert pods_of_job(cluster, namespace, "queued-train") == []


def test_two_workers_are_one_queued_indexed_job_behind_a_headless_service(cluster, namespace, artifacts):
    # Queued, so the gang is built but no pod starts: the pod runner runs pods as host processes,
    # where <job>-0.<service> does not resolve (tests/trainer/test_distributed.py runs the gang's
    # processes; tests/realnode/test_gang_e2e.py runs it as pods on the real node, with cluster DNS).
    cluster.kubectl("apply", "-f", "-", check=True,
                    input=training_job(namespace, "gang", queueName="gpu-queue", workers=2))
    wait_until(lambda: phase_in(cluster, namespace, "gang", "Queued"), 30, "the Queued phase")
    job = cluster.get_json("job", "gang-train", "-n", namespace)
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["suspend"] is True
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (2, 2)
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == "gang-train"
    assert "--rdzv-endpoint=gang-train-0.gang-train:29400" in pod["containers"][0]["command"]
    svc = cluster.get_json("service", "gang-train", "-n", namespace)
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["metadata"]["ownerReferences"][0]["name"] == "gang"
    policy = cluster.get_json("networkpolicy", "gang-train", "-n", namespace)
    peer = [{"podSelector": {"matchLabels": svc["spec"]["selector"]}}]
    assert {"from": peer, "ports": [{"protocol": "TCP"}]} in policy["spec"]["ingress"]
