"""A TrainingJob with several training processes: the Indexed Job, headless Service, torchrun
command, env and NetworkPolicy the builders make. Pure functions, no cluster."""

from __future__ import annotations

from typing import Any

import pytest

from acgs_operator.api.trainingjob import TrainingJobSpec
from acgs_operator.builders import trainingjob as tjb
from acgs_operator.constants import LABEL_COMPONENT

from .test_trainingjob import OWNER, SETTINGS, make_spec, trainer

CONFIG = ["acgs-train", "--config", "/etc/acgs/trainer/config.json"]


def gang_spec(workers: int = 2, gpus: int = 0, **overrides: Any) -> TrainingJobSpec:
    return make_spec(workers=workers, resources={"cpu": "2", "memory": "4Gi", "gpus": gpus}, **overrides)


class TestIndexedJob:
    def test_two_workers_are_one_indexed_job_of_two_pods_named_under_the_service(self) -> None:
        job = tjb.build_job(gang_spec(2), OWNER, SETTINGS)
        assert job["spec"]["completionMode"] == "Indexed"
        assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (2, 2)
        assert job["spec"]["template"]["spec"]["subdomain"] == "cai-v1-train"
        # one failed worker fails its peer: the retry budget counts restarts of the gang
        assert job["spec"]["backoffLimit"] == 2 * 2

    def test_one_worker_stays_a_plain_job(self) -> None:
        job = tjb.build_job(gang_spec(1, gpus=1), OWNER, SETTINGS)
        assert "completionMode" not in job["spec"] and "subdomain" not in job["spec"]["template"]["spec"]
        assert (job["spec"]["completions"], job["spec"]["parallelism"], job["spec"]["backoffLimit"]) == (1, 1, 2)
        assert trainer(job)["command"] == CONFIG

    @pytest.mark.parametrize("queue", [None, "team-a"])
    def test_kueue_sees_one_suspended_workload_for_the_whole_gang(self, queue: str | None) -> None:
        job = tjb.build_job(gang_spec(3, queueName=queue, suspend=queue is None), OWNER, SETTINGS)
        assert job["spec"]["suspend"] is True and job["spec"]["parallelism"] == job["spec"]["completions"] == 3
        assert (tjb.LABEL_QUEUE in job["metadata"]["labels"]) == (queue is not None)
        assert "kueue.x-k8s.io/job-min-parallelism" not in (job["metadata"].get("annotations") or {})

    def test_the_pod_failure_policy_still_reads_the_trainers_codes(self) -> None:
        rules = tjb.build_job(gang_spec(2), OWNER, SETTINGS)["spec"]["podFailurePolicy"]["rules"]
        assert rules[0]["onExitCodes"]["values"] == [2, 3, 4]


class TestCommandAndEnv:
    def test_workers_rendezvous_at_pod_zeros_stable_name(self) -> None:
        container = trainer(tjb.build_job(gang_spec(2), OWNER, SETTINGS))
        assert container["command"] == [
            "acgs-torchrun", "--nnodes=2", "--nproc-per-node=1", "--max-restarts=0",
            "--rdzv-backend=c10d", "--rdzv-endpoint=cai-v1-train-0.cai-v1-train:29400",
            f"--rdzv-id={OWNER.uid}", "--local-addr=$(POD_IP)", "--no-python", *CONFIG]
        env = {e["name"]: e for e in container["env"]}
        assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        assert {"name": "rendezvous", "containerPort": 29400, "protocol": "TCP"} in container["ports"]

    @pytest.mark.parametrize("workers,gpus,nproc", [(2, 4, 4), (3, 1, 1), (2, 0, 1)])
    def test_one_process_per_gpu_one_on_cpu(self, workers: int, gpus: int, nproc: int) -> None:
        container = trainer(tjb.build_job(gang_spec(workers, gpus=gpus), OWNER, SETTINGS))
        assert f"--nproc-per-node={nproc}" in container["command"] and f"--nnodes={workers}" in container["command"]
        if gpus:
            assert container["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)

    def test_several_gpus_in_one_pod_rendezvous_locally(self) -> None:
        job = tjb.build_job(gang_spec(1, gpus=4), OWNER, SETTINGS)
        command = trainer(job)["command"]
        assert command[:5] == ["acgs-torchrun", "--nnodes=1", "--nproc-per-node=4", "--max-restarts=0",
                               "--standalone"]
        assert not any(a.startswith("--rdzv-endpoint") for a in command) and command[-3:] == CONFIG
        assert "POD_IP" not in {e["name"] for e in trainer(job)["env"]}


class TestHeadlessService:
    def test_headless_publishes_unready_pods_and_selects_only_this_jobs_trainers(self) -> None:
        svc = tjb.build_headless_service(gang_spec(2), OWNER)
        assert svc["metadata"]["name"] == "cai-v1-train" and svc["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
        assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
        assert svc["spec"]["selector"] == {tjb.LABEL_TRAINING_JOB: "cai-v1", LABEL_COMPONENT: "trainer"}
        pod_labels = tjb.build_job(gang_spec(2), OWNER, SETTINGS)["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items()


class TestNetworkPolicy:
    def test_workers_reach_each_other_on_any_tcp_port_and_nothing_else_is_opened(self) -> None:
        one = tjb.build_network_policy(gang_spec(1), OWNER, SETTINGS)["spec"]
        two = tjb.build_network_policy(gang_spec(2), OWNER, SETTINGS)["spec"]
        peer = {"podSelector": {"matchLabels": {tjb.LABEL_TRAINING_JOB: "cai-v1", LABEL_COMPONENT: "trainer"}}}
        assert two["egress"][:-1] == one["egress"] and two["ingress"][:-1] == one["ingress"]
        assert two["egress"][-1] == {"to": [peer], "ports": [{"protocol": "TCP"}]}
        assert two["ingress"][-1] == {"from": [peer], "ports": [{"protocol": "TCP"}]}


def test_workers_field_is_bounded() -> None:
    with pytest.raises(ValueError, match="workers"):
        gang_spec(0)
    with pytest.raises(ValueError, match="workers"):
        gang_spec(65)


def test_a_name_too_long_for_the_gangs_hostnames_is_refused_naming_the_limit() -> None:
    from acgs_operator import errors
    from acgs_operator.handlers.trainingjob import _parse

    spec = gang_spec(12).to_api()
    _parse({"metadata": {"name": "n" * 52}, "spec": spec})  # n…n-train-11: 63 characters
    with pytest.raises(errors.SpecError, match=r"too long for spec.workers=12.*at most 54 characters"):
        _parse({"metadata": {"name": "n" * 55}, "spec": spec})
