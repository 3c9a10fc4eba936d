"""TrainingJob → its children: trainer config (ConfigMap), progress token (Secret), batch/v1 Job and
NetworkPolicy, and for a gang of workers a headless Service. Pure functions: no API calls; the
handler applies what these return.

One trainer process per pod is a plain ``acgs-train``. More (``workers`` > 1, or ``gpus`` > 1 in a
pod) is one torchrun run: an Indexed Job of ``workers`` pods whose hostnames ``<job>-<index>`` are
resolvable under the headless Service (the pod template's subdomain); every pod starts
``acgs-torchrun`` (torchrun that keeps the trainer's exit code, for the podFailurePolicy) with c10d
rendezvous at ``<job>-0.<service>``, ``gpus`` processes per pod (one on CPU): trainergang.py."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from acgs_contract import env, exitcodes
from acgs_contract.constitution import CONSTITUTION_FILE
from kubernetes.utils import parse_quantity

from ..api.trainingjob import TrainingJobSpec
from ..config import Settings
from . import trainergang as gang
from .basemodel import HF_CACHE_DIR, HF_CACHE_ENV, base_model_volumes
from .common import Owner, child_labels, child_metadata, child_name, container_security_context, pod_security_context

KIND = "TrainingJob"
COMPONENT = "trainer"
CONTAINER = "trainer"
INIT_CONTAINER = "generate-data"
METRICS_PORT_NAME = "metrics"  # manifests/monitoring/podmonitor-trainer.yaml scrapes this port

LABEL_TRAINING_JOB = "acgs.io/training-job"
LABEL_SPEC_HASH = "acgs.io/spec-hash"
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"

CONFIG_DIR = "/etc/acgs/trainer"
CONFIG_KEY = "config.json"
CONSTITUTION_KEY = CONSTITUTION_FILE  # the operator's constitution, beside the config
CONSTITUTION_PATH = f"{CONFIG_DIR}/{CONSTITUTION_KEY}"
DATA_DIR = "/data"
GENERATED_DATA = f"{DATA_DIR}/generated.jsonl"
TOKEN_ENV = env.PROGRESS_TOKEN
TOKEN_KEY = "token"
OUTPUT_ROOT = "trainingjobs"  # per-job directory on the output volume: trainingjobs/<name>-<uid8>
ARTIFACT_DIR = "artifact"

# A new pod cannot change these outcomes, so the Job fails at once instead of retrying.
NON_RETRIABLE_EXIT_CODES = exitcodes.TRAINER_NON_RETRIABLE



def job_name(owner_name: str) -> str:
    return child_name(owner_name, "train")


def config_map_name(owner_name: str) -> str:
    return child_name(owner_name, "trainer-config")


def secret_name(owner_name: str) -> str:
    return child_name(owner_name, "progress")


def output_subdir(owner: Owner) -> str:
    """Directory of this job on the output volume: stable across pod retries (checkpoints resume),
    distinct for a re-created TrainingJob of the same name (uid), never shared by two jobs."""
    return f"{OUTPUT_ROOT}/{owner.name}-{owner.uid[:8]}"


def artifact_uri(spec: TrainingJobSpec, owner: Owner) -> str:
    return f"pvc://{spec.output.pvc}/{output_subdir(owner)}/{ARTIFACT_DIR}"


def progress_url(settings: Settings, owner: Owner) -> str:
    return f"{settings.progress_base_url}/v1/progress/{owner.namespace}/{owner.name}/{owner.uid}"


def spec_hash(spec: TrainingJobSpec) -> str:
    return hashlib.sha256(json.dumps(spec.to_api(), sort_keys=True).encode()).hexdigest()[:16]


def _labels(spec: TrainingJobSpec, owner: Owner) -> dict[str, str]:
    return child_labels(KIND, owner.name, spec.constitutional_hash, COMPONENT,
                        {**owner.labels, LABEL_TRAINING_JOB: owner.name[:63]})


def data_path(spec: TrainingJobSpec) -> str:
    if spec.data.generate is not None:
        return GENERATED_DATA
    assert spec.data.path is not None
    return f"{DATA_DIR}{spec.data.path}" if spec.data.pvc else spec.data.path


def build_trainer_config(spec: TrainingJobSpec, owner: Owner, settings: Settings,
                         parent_version: str | None = None) -> dict[str, Any]:
    """The trainer's JSON config (acgs_trainer.config.TrainConfig, camelCase keys)."""
    t, p, lora = spec.training, spec.privacy, spec.lora
    config: dict[str, Any] = {
        "data": data_path(spec),
        "output": f"{spec.output.path.rstrip('/')}/{output_subdir(owner)}",
        "baseModel": spec.base_model,
        "constitutionalHash": spec.constitutional_hash,
        # The operator's constitution (from its ConfigMap) and the digest pinned to the hash: the
        # trainer refuses any other content, whatever label it carries.
        "constitution": CONSTITUTION_PATH,
        "constitutionDigest": settings.constitution_content_digest,
        "maxSteps": t.max_steps,
        "epochs": None if t.max_steps else t.epochs,
        "batchSize": t.batch_size,
        "gradAccum": t.gradient_accumulation,
        "lr": t.learning_rate,
        "maxGradNorm": t.max_grad_norm,
        "seed": t.seed,
        "checkpointEvery": t.checkpoint_every,
        "dp": p.enabled,
        "targetEpsilon": p.target_epsilon,
        "targetDelta": p.target_delta,
        "noiseMultiplier": p.noise_multiplier if p.enabled else None,
        "loraR": lora.r,
        "loraAlpha": lora.alpha,
        "loraDropout": lora.dropout,
        "loraTargetModules": lora.target_modules,
        "valRatio": spec.data.val_ratio,
        "evalRatio": spec.data.eval_ratio,
        "splitSeed": spec.data.split_seed,
        "parentVersion": parent_version,
        "progressUrl": progress_url(settings, owner) if settings.progress_port else None,
        "metricsPort": settings.trainer_metrics_port or None,
        "resume": True,
    }
    return {k: v for k, v in config.items() if v is not None}


def build_config_map(spec: TrainingJobSpec, owner: Owner, settings: Settings,
                     parent_version: str | None = None) -> dict[str, Any]:
    config = build_trainer_config(spec, owner, settings, parent_version)
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": child_metadata(owner, config_map_name(owner.name), _labels(spec, owner)),
        "data": {CONFIG_KEY: json.dumps(config, indent=1, sort_keys=True) + "\n",
                 CONSTITUTION_KEY: settings.constitution_text},
    }


def build_progress_secret(spec: TrainingJobSpec, owner: Owner, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": child_metadata(owner, secret_name(owner.name), _labels(spec, owner)),
        "stringData": {TOKEN_KEY: token},
    }


def _scheduling(spec: TrainingJobSpec, settings: Settings) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """GPU placement first, the spec's own choices on top (they win on the same key)."""
    res = spec.resources
    selector: dict[str, str] = dict(settings.gpu_node_selector) if res.gpus else {}
    selector.update(res.node_selector)
    tolerations = [t.to_api() for t in res.tolerations]
    if res.gpus and not any(t.get("key") == res.gpu_resource_name for t in tolerations):
        tolerations.append({"key": res.gpu_resource_name, "operator": "Exists", "effect": "NoSchedule"})
    return selector, tolerations


def _resources(spec: TrainingJobSpec) -> dict[str, Any]:
    res = spec.resources
    requests = {"cpu": res.cpu, "memory": res.memory}
    limits: dict[str, Any] = {"cpu": res.cpu, "memory": res.memory}
    if res.gpus:
        limits[res.gpu_resource_name] = str(res.gpus)  # extended resources: limit implies request
    return {"requests": requests, "limits": limits}


def _volumes(spec: TrainingJobSpec, owner: Owner,
             settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": config_map_name(owner.name)}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    # A shared claim is mounted only where this job may look: its own output directory (read-write;
    # no other job's artifact is visible, let alone writable) and its one data file (read-only).
    if spec.output.pvc:
        subdir = output_subdir(owner)
        volumes.append({"name": "output", "persistentVolumeClaim": {"claimName": spec.output.pvc}})
        mounts.append({"name": "output", "mountPath": f"{spec.output.path.rstrip('/')}/{subdir}", "subPath": subdir})
    if spec.data.generate is not None:
        volumes.append({"name": "data", "emptyDir": {}})
        mounts.append({"name": "data", "mountPath": DATA_DIR, "readOnly": True})
    elif spec.data.pvc:
        assert spec.data.path is not None
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": spec.data.pvc,
                                                                  "readOnly": True}})
        mounts.append({"name": "data", "mountPath": data_path(spec), "subPath": spec.data.path.lstrip("/"),
                       "readOnly": True})
    volumes_b, mounts_b = base_model_volumes(spec.base_model, settings.model_cache_pvc)
    return volumes + volumes_b, mounts + mounts_b


def _env() -> list[dict[str, Any]]:
    return [
        {"name": "HOME", "value": "/tmp"},  # read-only root: caches go to the emptyDir
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]


def _at_most(request: str, limit: str) -> str:
    """A request the apiserver accepts under `limit` (a request above its limit makes the whole Job
    invalid: found by the fuzz test with resources.memory 128Mi)."""
    smaller: bool = parse_quantity(request) <= parse_quantity(limit)  # type: ignore[no-untyped-call]
    return request if smaller else limit


def _generate_container(spec: TrainingJobSpec, image: str, settings: Settings) -> dict[str, Any]:
    gen = spec.data.generate
    assert gen is not None
    return {
        "name": INIT_CONTAINER, "image": image,
        "command": ["acgs-data", "--constitutional-hash", spec.constitutional_hash,
                    "--constitution", CONSTITUTION_PATH, "generate",
                    "--type", str(gen.type), "--size", str(gen.size), "--seed", str(gen.seed),
                    "--out", GENERATED_DATA],
        "env": [*_env(), {"name": env.CONSTITUTION_DIGEST, "value": settings.constitution_content_digest}],
        "resources": {"requests": {"cpu": _at_most("100m", spec.resources.cpu),
                                   "memory": _at_most("256Mi", spec.resources.memory)},
                      "limits": {"cpu": spec.resources.cpu, "memory": spec.resources.memory}},
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}, {"name": "tmp", "mountPath": "/tmp"},
                         {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def build_job(spec: TrainingJobSpec, owner: Owner, settings: Settings) -> dict[str, Any]:
    image = spec.image or settings.trainer_image
    labels = _labels(spec, owner)
    job_labels = {**labels, LABEL_SPEC_HASH: spec_hash(spec)}
    if spec.queue_name:
        job_labels[LABEL_QUEUE] = spec.queue_name
    selector, tolerations = _scheduling(spec, settings)
    volumes, mounts = _volumes(spec, owner, settings)
    gang_pods = spec.workers > 1
    trainer: dict[str, Any] = {
        "name": CONTAINER, "image": image,
        "command": gang.command(spec, owner, job_name(owner.name),
                                ["acgs-train", "--config", f"{CONFIG_DIR}/{CONFIG_KEY}"]),
        "env": [*_env(), {"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {
            "name": secret_name(owner.name), "key": TOKEN_KEY}}},
                *([{"name": HF_CACHE_ENV, "value": HF_CACHE_DIR}] if settings.model_cache_pvc else []),
                # Peers reach this pod's workers at its IP (no reliance on its own name resolving).
                *([{"name": gang.POD_IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
                  if gang_pods else [])],
        "resources": _resources(spec),
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    ports: list[dict[str, Any]] = []
    if settings.trainer_metrics_port:
        trainer["env"].append({"name": env.METRICS_HOST, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
        ports.append({"name": METRICS_PORT_NAME, "containerPort": settings.trainer_metrics_port, "protocol": "TCP"})
    if gang_pods:
        ports.append({"name": gang.RENDEZVOUS_PORT_NAME, "containerPort": gang.RENDEZVOUS_PORT, "protocol": "TCP"})
    if ports:
        trainer["ports"] = ports
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",  # required by podFailurePolicy; retries are new pods
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [trainer],
        "volumes": volumes,
    }
    if spec.data.generate is not None:
        pod_spec["initContainers"] = [_generate_container(spec, image, settings)]
    if selector:
        pod_spec["nodeSelector"] = selector
    if tolerations:
        pod_spec["tolerations"] = tolerations
    indexed: dict[str, Any] = {}
    if gang_pods:
        # Pod i is <job>-i.<service>: index 0's name is the rendezvous endpoint. Kueue admits the
        # Job as one Workload of `workers` pods (no min-parallelism annotation: all or nothing).
        pod_spec["subdomain"] = gang.service_name(job_name(owner.name))
        indexed["completionMode"] = "Indexed"
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": child_metadata(owner, job_name(owner.name), job_labels),
        "spec": {
            **indexed,
            "completions": spec.workers,
            "parallelism": spec.workers,
            # One failed worker fails its peers' collectives too: a gang restart costs up to
            # `workers` pod failures, so the retry budget counts gang restarts.
            "backoffLimit": spec.backoff_limit * spec.workers,
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
            # Queued jobs start suspended; Kueue (or the user) unsuspends. Created once, never patched.
            "suspend": bool(spec.suspend or spec.queue_name),
            "podFailurePolicy": {"rules": [
                {"action": "FailJob",
                 "onExitCodes": {"operator": "In", "values": list(NON_RETRIABLE_EXIT_CODES)}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def build_headless_service(spec: TrainingJobSpec, owner: Owner) -> dict[str, Any]:
    """The gang's pod DNS names (trainergang.py); only for workers > 1."""
    name = gang.service_name(job_name(owner.name))
    return gang.headless_service(child_metadata(owner, name, _labels(spec, owner)),
                                 gang.peers(owner.name, LABEL_TRAINING_JOB, COMPONENT)[0]["podSelector"]["matchLabels"])


def build_network_policy(spec: TrainingJobSpec, owner: Owner, settings: Settings) -> dict[str, Any]:
    """Ingress only from the monitoring namespace to the metrics port; egress only to the cluster
    DNS (kube-dns pods in kube-system: a pod that merely carries the k8s-app=kube-dns label
    elsewhere is no DNS server) and the operator's progress endpoint. A gang's pods also reach each
    other, on any TCP port: the rendezvous is on 29400 but torchrun's worker store and gloo/NCCL
    connections use ports the processes pick at run time."""
    egress: list[dict[str, Any]] = [{
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }]
    if settings.progress_port:
        egress.append({
            "to": [{"namespaceSelector": {"matchLabels": {
                        "kubernetes.io/metadata.name": settings.operator_namespace}},
                    "podSelector": {"matchLabels": dict(settings.operator_pod_labels)}}],
            "ports": [{"protocol": "TCP", "port": settings.progress_port}],
        })
    ingress: list[dict[str, Any]] = []
    if settings.trainer_metrics_port and settings.monitoring_namespace:
        ingress.append({
            "from": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": settings.monitoring_namespace}}}],
            "ports": [{"protocol": "TCP", "port": settings.trainer_metrics_port}],
        })
    if spec.workers > 1:
        peers = gang.peers(owner.name, LABEL_TRAINING_JOB, COMPONENT)
        egress.append({"to": peers, "ports": [{"protocol": "TCP"}]})
        ingress.append({"from": peers, "ports": [{"protocol": "TCP"}]})
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": child_metadata(owner, job_name(owner.name), _labels(spec, owner)),
        "spec": {
            "podSelector": {"matchLabels": {LABEL_TRAINING_JOB: owner.name[:63]}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }
