"""TrainingJob builders: pure functions, no cluster. One class per builder."""

from __future__ import annotations

import json
from typing import Any

import pytest

from acgs_operator.api.trainingjob import TrainingJobSpec
from acgs_operator.builders import trainingjob as tjb
from acgs_operator.builders.common import Owner
from acgs_operator.config import Settings
from acgs_contract.constitution import CONSTITUTIONAL_HASH

from acgs_operator.servers.progress import progress_token

HASH = CONSTITUTIONAL_HASH
OWNER = Owner(kind="TrainingJob", name="cai-v1", namespace="team-a", uid="0123456789abcdef-uid",
                  labels={"team": "a", "app.kubernetes.io/instance": "argo-app", "argocd.argoproj.io/x": "y"})
SETTINGS = Settings(trainer_image="trainer:test", progress_url="http://op.acgs-system.svc:8083")


def make_spec(**overrides: Any) -> TrainingJobSpec:
    spec: dict[str, Any] = {
        "constitutionalHash": HASH, "modelName": "constitutional-ai",
        "data": {"generate": {"type": "constitutional_ai", "size": 40, "seed": 7}},
        "training": {"maxSteps": 20, "batchSize": 8, "checkpointEvery": 5},
        "output": {"pvc": "artifacts"},
    }
    spec.update(overrides)
    return TrainingJobSpec.model_validate(spec)


def trainer(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]["containers"][0]


class TestBuildJob:
    @pytest.mark.parametrize("gpus,expect_gpu", [(0, False), (1, True), (4, True)])
    def test_gpu_limits_selector_and_toleration(self, gpus: int, expect_gpu: bool) -> None:
        job = tjb.build_job(make_spec(resources={"cpu": "2", "memory": "4Gi", "gpus": gpus}), OWNER, SETTINGS)
        pod = job["spec"]["template"]["spec"]
        limits = trainer(job)["resources"]["limits"]
        assert (limits.get("nvidia.com/gpu") == str(gpus)) is expect_gpu
        assert (pod.get("nodeSelector", {}).get("nvidia.com/gpu.present") == "true") is expect_gpu
        tolerated = any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", []))
        assert tolerated is expect_gpu

    def test_custom_gpu_resource_and_spec_scheduling_win(self) -> None:
        spec = make_spec(resources={"gpus": 2, "gpuResourceName": "amd.com/gpu",
                                    "nodeSelector": {"acgs.io/local-runner": "true", "nvidia.com/gpu.present": "x"},
                                    "tolerations": [{"key": "acgs.io/local-runner", "operator": "Exists"}]})
        job = tjb.build_job(spec, OWNER, SETTINGS)
        pod = job["spec"]["template"]["spec"]
        assert trainer(job)["resources"]["limits"]["amd.com/gpu"] == "2"
        assert pod["nodeSelector"] == {"acgs.io/local-runner": "true", "nvidia.com/gpu.present": "x"}
        assert {"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert {"key": "acgs.io/local-runner", "operator": "Exists"} in pod["tolerations"]

    def test_pod_failure_policy_ignores_disruptions(self) -> None:
        rules = tjb.build_job(make_spec(), OWNER, SETTINGS)["spec"]["podFailurePolicy"]["rules"]
        assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules

    @pytest.mark.parametrize("suspend,queue,expect_suspend", [
        (False, None, False), (True, None, True), (False, "gpu-queue", True)])
    def test_suspend_and_kueue_label(self, suspend: bool, queue: str | None, expect_suspend: bool) -> None:
        job = tjb.build_job(make_spec(suspend=suspend, queueName=queue), OWNER, SETTINGS)
        assert job["spec"]["suspend"] is expect_suspend
        assert job["metadata"]["labels"].get(tjb.LABEL_QUEUE) == queue

    def test_limits_and_lifecycle_fields(self) -> None:
        job = tjb.build_job(make_spec(backoffLimit=3, activeDeadlineSeconds=600, ttlSecondsAfterFinished=30),
                            OWNER, SETTINGS)
        assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"],
                job["spec"]["ttlSecondsAfterFinished"]) == (3, 600, 30)
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"

    def test_restricted_security_and_read_only_root(self) -> None:
        job = tjb.build_job(make_spec(), OWNER, SETTINGS)
        pod = job["spec"]["template"]["spec"]
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False

    def test_token_only_by_secret_reference(self) -> None:
        job = tjb.build_job(make_spec(), OWNER, SETTINGS)
        env = {e["name"]: e for e in trainer(job)["env"]}
        assert env[tjb.TOKEN_ENV]["valueFrom"]["secretKeyRef"] == {"name": "cai-v1-progress", "key": "token"}
        token = progress_token(b"k", OWNER.namespace, OWNER.name, OWNER.uid)
        assert token not in json.dumps(job)

    @pytest.mark.parametrize("data,expect_volume,expect_init", [
        ({"generate": {"type": "policy_governance", "size": 30}}, {"emptyDir": {}}, True),
        ({"path": "/sets/train.jsonl", "pvc": "datasets"},
         {"persistentVolumeClaim": {"claimName": "datasets", "readOnly": True}}, False),
    ])
    def test_data_volume(self, data: dict, expect_volume: dict, expect_init: bool) -> None:
        job = tjb.build_job(make_spec(data=data), OWNER, SETTINGS)
        pod = job["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "data")
        assert {k: v for k, v in volume.items() if k != "name"} == expect_volume
        assert ("initContainers" in pod) is expect_init
        assert {"name": "output", "persistentVolumeClaim": {"claimName": "artifacts"}} in pod["volumes"]

    def test_shared_claims_are_mounted_only_at_the_jobs_own_paths(self) -> None:
        spec = make_spec(data={"path": "/sets/train.jsonl", "pvc": "artifacts"})  # one claim for both
        job = tjb.build_job(spec, OWNER, SETTINGS)
        mounts = {m["name"]: m for m in trainer(job)["volumeMounts"]}
        own = tjb.output_subdir(OWNER)
        # output: this job's directory only, where the trainer config says it writes
        assert mounts["output"]["subPath"] == own and not mounts["output"].get("readOnly")
        config = tjb.build_trainer_config(spec, OWNER, SETTINGS)
        assert mounts["output"]["mountPath"] == config["output"]
        # data: the one file, read-only, at the path the trainer reads
        assert mounts["data"] == {"name": "data", "mountPath": config["data"], "subPath": "sets/train.jsonl",
                                  "readOnly": True}
        assert all(m.get("subPath") for m in mounts.values() if m["name"] in ("output", "data"))

    def test_labels_deterministic_and_no_gitops_labels(self) -> None:
        a, b = (tjb.build_job(make_spec(), OWNER, SETTINGS) for _ in range(2))
        assert a == b and a["metadata"]["name"] == "cai-v1-train"
        for labels in (a["metadata"]["labels"], a["spec"]["template"]["metadata"]["labels"]):
            assert "app.kubernetes.io/instance" not in labels
            assert not any(k.startswith("argocd.argoproj.io/") for k in labels)
            assert labels["team"] == "a" and labels["acgs.io/constitutional-hash"] == HASH
        assert a["metadata"]["labels"][tjb.LABEL_SPEC_HASH] == tjb.spec_hash(make_spec())
        assert tjb.spec_hash(make_spec()) != tjb.spec_hash(make_spec(training={"maxSteps": 21}))


class TestBuildTrainerConfig:
    def test_maps_spec_to_trainer_flags(self) -> None:
        from acgs_trainer.config import validate_config

        config = tjb.build_trainer_config(make_spec(privacy={"targetEpsilon": 3.0}), OWNER, SETTINGS, "cai-1-0-0")
        cfg = validate_config(config)  # the trainer's own model accepts every key
        assert cfg.data == tjb.GENERATED_DATA
        assert cfg.output == "/artifacts/trainingjobs/cai-v1-01234567"
        assert (cfg.max_steps, cfg.batch_size, cfg.checkpoint_every) == (20, 8, 5)
        assert (cfg.dp, cfg.target_epsilon, cfg.target_delta) == (True, 3.0, 1e-5)
        assert cfg.parent_version == "cai-1-0-0"
        assert cfg.progress_url == "http://op.acgs-system.svc:8083/v1/progress/team-a/cai-v1/0123456789abcdef-uid"

    @pytest.mark.parametrize("data,expected", [
        ({}, {"valRatio": 0.1, "evalRatio": 0.1, "splitSeed": 42}),
        ({"valRatio": 0.2, "evalRatio": 0.3, "splitSeed": 9}, {"valRatio": 0.2, "evalRatio": 0.3, "splitSeed": 9}),
    ])
    def test_split_settings_reach_the_trainer(self, data: dict, expected: dict) -> None:
        from acgs_trainer.config import validate_config

        spec = make_spec(data={"generate": {"type": "constitutional_ai", "size": 40, "seed": 7}, **data},
                         training={"maxSteps": 20, "seed": 5})
        config = tjb.build_trainer_config(spec, OWNER, SETTINGS)
        assert {k: config[k] for k in expected} == expected
        cfg = validate_config(config)
        # The split follows spec.data.splitSeed, not the training seed.
        assert (cfg.seed, cfg.data_split_seed) == (5, expected["splitSeed"])
        assert (cfg.val_ratio, cfg.eval_ratio) == (expected["valRatio"], expected["evalRatio"])

    @pytest.mark.parametrize("data,expected", [
        ({"path": "/x/train.csv", "pvc": "datasets"}, "/data/x/train.csv"),
        ({"path": "/opt/data/train.jsonl"}, "/opt/data/train.jsonl"),
    ])
    def test_data_path(self, data: dict, expected: str) -> None:
        assert tjb.build_trainer_config(make_spec(data=data), OWNER, SETTINGS)["data"] == expected

    def test_config_map_holds_the_json(self) -> None:
        cm = tjb.build_config_map(make_spec(), OWNER, SETTINGS)
        assert cm["metadata"]["name"] == "cai-v1-trainer-config"
        assert json.loads(cm["data"][tjb.CONFIG_KEY]) == tjb.build_trainer_config(make_spec(), OWNER, SETTINGS)

    def test_the_operators_constitution_and_its_pinned_digest_reach_the_trainer(self, tmp_path) -> None:
        """The trainer reads the constitution the operator is configured with, never its own copy,
        and gets the digest pinned to the hash so it can refuse anything else."""
        from acgs_contract.constitution import PINNED_CONTENT_DIGESTS, default_text

        source = tmp_path / "constitution.yaml"
        source.write_text("# the operator's copy\n" + default_text())
        settings = Settings(constitution_path=source)
        cm = tjb.build_config_map(make_spec(), OWNER, settings)
        assert cm["data"][tjb.CONSTITUTION_KEY] == source.read_text()
        config = json.loads(cm["data"][tjb.CONFIG_KEY])
        assert config["constitution"] == f"{tjb.CONFIG_DIR}/constitution.yaml"  # the mounted ConfigMap
        assert config["constitutionDigest"] == PINNED_CONTENT_DIGESTS[CONSTITUTIONAL_HASH]
        job = tjb.build_job(make_spec(data={"generate": {"type": "constitutional_ai", "size": 10}}), OWNER, settings)
        init = job["spec"]["template"]["spec"]["initContainers"][0]
        assert init["command"][init["command"].index("--constitution") + 1] == config["constitution"]
        assert {"name": "config", "mountPath": tjb.CONFIG_DIR, "readOnly": True} in init["volumeMounts"]
        assert {"name": "ACGS_CONSTITUTION_DIGEST", "value": config["constitutionDigest"]} in init["env"]


class TestBuildNetworkPolicy:
    @pytest.mark.parametrize("port,rules", [(8083, 2), (0, 1)])
    def test_no_ingress_egress_only_dns_and_progress(self, port: int, rules: int) -> None:
        settings = Settings(progress_port=port, trainer_metrics_port=0)
        np = tjb.build_network_policy(make_spec(), OWNER, settings)
        assert np["spec"]["policyTypes"] == ["Ingress", "Egress"] and np["spec"]["ingress"] == []
        assert len(np["spec"]["egress"]) == rules
        assert np["spec"]["podSelector"]["matchLabels"] == {tjb.LABEL_TRAINING_JOB: "cai-v1"}
        job = tjb.build_job(make_spec(), OWNER, settings)
        assert job["spec"]["template"]["metadata"]["labels"][tjb.LABEL_TRAINING_JOB] == "cai-v1"
        if port:
            assert np["spec"]["egress"][1]["ports"] == [{"protocol": "TCP", "port": port}]
        # DNS only to kube-dns in kube-system, not to any pod anywhere that calls itself kube-dns
        assert np["spec"]["egress"][0]["to"] == [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]


class TestProgressToken:
    def test_token_binds_namespace_name_and_uid(self) -> None:
        base = progress_token(b"key", "ns", "tj", "uid-1")
        assert base == progress_token(b"key", "ns", "tj", "uid-1")
        assert len({base, progress_token(b"key", "ns", "tj", "uid-2"), progress_token(b"other", "ns", "tj", "uid-1"),
                    progress_token(b"key", "ns2", "tj", "uid-1")}) == 4


class TestTrainerMetricsReachable:
    """The trainer serves /metrics on its pod IP and only the monitoring namespace may scrape it."""

    def test_monitoring_namespace_may_reach_only_the_metrics_port(self) -> None:
        settings = Settings(trainer_metrics_port=9100, monitoring_namespace="observability")
        np = tjb.build_network_policy(make_spec(), OWNER, settings)
        assert np["spec"]["ingress"] == [{
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
            "ports": [{"protocol": "TCP", "port": 9100}]}]
        trainer = tjb.build_job(make_spec(), OWNER, settings)["spec"]["template"]["spec"]["containers"][0]
        assert trainer["ports"] == [{"name": tjb.METRICS_PORT_NAME, "containerPort": 9100, "protocol": "TCP"}]
        assert {"name": "ACGS_METRICS_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in trainer["env"]
        assert tjb.build_trainer_config(make_spec(), OWNER, settings)["metricsPort"] == 9100

    @pytest.mark.parametrize("port,namespace", [(0, "monitoring"), (9090, "")])
    def test_no_scrape_rule_when_disabled(self, port: int, namespace: str) -> None:
        settings = Settings(trainer_metrics_port=port, monitoring_namespace=namespace)
        assert tjb.build_network_policy(make_spec(), OWNER, settings)["spec"]["ingress"] == []
        if not port:
            trainer = tjb.build_job(make_spec(), OWNER, settings)["spec"]["template"]["spec"]["containers"][0]
            assert "ports" not in trainer
            assert "metricsPort" not in tjb.build_trainer_config(make_spec(), OWNER, settings)

    def test_trainer_accepts_the_config_key(self) -> None:
        from acgs_trainer.config import TrainConfig

        config = tjb.build_trainer_config(make_spec(), OWNER, Settings(trainer_metrics_port=9100))
        assert TrainConfig.model_validate(config).metrics_port == 9100

    def test_bad_monitoring_namespace_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="monitoring_namespace"):
            Settings(monitoring_namespace="Not A Namespace")
