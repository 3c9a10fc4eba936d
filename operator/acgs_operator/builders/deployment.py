"""Children of a Deployment (acgs.io): two apps/v1 Deployments (blue, green) running the model
server, the active and preview Services, and the server pods' NetworkPolicy. Pure: no API calls."""

from __future__ import annotations

from typing import Any

from acgs_contract import env

from ..api.deployment import Color, DeploymentSpec, PeerSelector
from ..api.modelversion import ModelVersionSpec
from ..artifacts import parse_allowed_pvc
from ..constants import LABEL_COMPONENT, LABEL_OWNER_KIND, LABEL_OWNER_NAME
from .basemodel import base_model_volumes
from .common import Owner, child_labels, child_metadata, child_name, container_security_context, pod_security_context

KIND = "Deployment"
COMPONENT = "model-server"
LABEL_COLOR = "acgs.io/color"
LABEL_MODEL_VERSION = "acgs.io/model-version"
ANNOTATION_MODEL_VERSION = "acgs.io/model-version"
ANNOTATION_DIGEST = "acgs.io/artifact-digest"
# On the color an HPA targets: lets a later reconcile see an HPA to remove without another API call.
ANNOTATION_AUTOSCALED = "acgs.io/autoscaled"
NO_COLOR = "none"  # selector value of the active Service before anything was promoted: no endpoints

ARTIFACT_MOUNT = "/artifacts"
INTERACTION_LOG_MOUNT = "/var/log/acgs"
SERVICE_PORT = 80
DNS_PORT = 53


def artifact_location(uri: str, artifact_pvc: str | None) -> tuple[str, str]:
    """(claim, path inside the claim) of a pvc://<claim>/<path> URI the server may mount."""
    artifact = parse_allowed_pvc(uri, artifact_pvc)
    return artifact.claim, artifact.path


def deployment_name(owner: str, color: Color | str) -> str:
    return child_name(owner, str(getattr(color, "value", color)))


def active_service_name(owner: str) -> str:
    return owner[:63]


def preview_service_name(owner: str) -> str:
    return child_name(owner, "preview")


def network_policy_name(owner: str) -> str:
    return child_name(owner, "server")


def server_selector(owner: str) -> dict[str, str]:
    """Every server pod of this Deployment, both colors."""
    return {LABEL_OWNER_KIND: KIND.lower(), LABEL_OWNER_NAME: owner[:63], LABEL_COMPONENT: COMPONENT}


def color_selector(owner: str, color: Color | str) -> dict[str, str]:
    return {**server_selector(owner), LABEL_COLOR: str(getattr(color, "value", color))}


def _labels(owner: Owner, spec: DeploymentSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    return child_labels(KIND, owner.name, spec.constitutional_hash, COMPONENT, extra)


def _resources(spec: DeploymentSpec) -> dict[str, Any]:
    amounts: dict[str, str] = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    if spec.resources.gpus:
        amounts[spec.resources.gpu_resource_name] = str(spec.resources.gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _env(spec: DeploymentSpec, mv: ModelVersionSpec, artifact_dir: str,
         constitution_digest: str | None) -> list[dict[str, Any]]:
    # The content pinned to the hash by the operator's configuration: the server refuses an
    # artifact whose constitution is anything else.
    pinned = [{"name": env.CONSTITUTION_DIGEST, "value": constitution_digest}] if constitution_digest else []
    if spec.interaction_log_max_bytes is not None:
        pinned.append({"name": env.server_var("interaction_log_max_bytes"),
                       "value": str(spec.interaction_log_max_bytes)})
    return [*pinned,
        # The pod's own IP: listening there (not 0.0.0.0) works in a cluster and on the local runner,
        # where every pod is a process on a loopback address.
        {"name": env.HOST, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": env.PORT, "value": str(spec.port)},
        {"name": env.server_var("metrics_port"), "value": str(spec.metrics_port)},
        {"name": env.ARTIFACT, "value": artifact_dir},
        {"name": env.EXPECTED_DIGEST, "value": mv.artifact.digest},
        {"name": env.CONSTITUTIONAL_HASH, "value": spec.constitutional_hash},
        {"name": env.MODEL_NAME, "value": mv.model_name},
        {"name": env.MODEL_VERSION, "value": mv.version},
        {"name": env.INTERACTION_LOG_DIR, "value": f"{INTERACTION_LOG_MOUNT}/interactions"},
        {"name": env.TORCH_THREADS, "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": env.DEVICE, "value": "cuda" if spec.resources.gpus else "cpu"},
        # Read-only root filesystem: anything a library caches goes to the /tmp emptyDir.
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HOME", "value": "/tmp/hf"},
    ]


def _http_probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "timeoutSeconds": 2,
            "failureThreshold": failures}


def topology_spread(owner: str, color: str) -> list[dict[str, Any]]:
    """Spread a color's pods over nodes, then zones: one node or zone lost takes only its share.
    ScheduleAnyway: a preference, so a one-node cluster (or a GPU pool of one) still schedules."""
    return [{"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": color_selector(owner, color)}}
            for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")]


def server_deployment(owner: Owner, spec: DeploymentSpec, color: Color | str, mv_name: str,
                      mv: ModelVersionSpec, replicas: int, image: str,
                      constitution_digest: str | None = None, model_cache_pvc: str | None = None,
                      autoscaled: bool = False) -> dict[str, Any]:
    """apps/v1 Deployment of one color serving one ModelVersion (raises UnsupportedArtifact).

    The pod mounts only the artifact's own directory of the claim (subPath), read-only: a server
    can neither read other models nor change the one it serves. A base model outside the artifact
    is mounted read-only where the manifest says it is; the server checks its digest first."""
    color = str(getattr(color, "value", color))
    claim, path = artifact_location(mv.artifact.uri, spec.artifact_pvc)
    base_volumes, base_mounts = base_model_volumes(mv.base_model, model_cache_pvc, "ModelVersion spec.baseModel")
    artifact_dir = ARTIFACT_MOUNT
    version_labels = {LABEL_COLOR: color, LABEL_MODEL_VERSION: mv_name[:63]}
    labels = _labels(owner, spec, version_labels)
    annotations = {ANNOTATION_MODEL_VERSION: mv_name, ANNOTATION_DIGEST: mv.artifact.digest}
    interaction_volume: dict[str, Any] = (
        {"persistentVolumeClaim": {"claimName": spec.interaction_log_pvc}} if spec.interaction_log_pvc
        else {"emptyDir": {"sizeLimit": "1Gi"}})
    container = {
        "name": "server",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["acgs-serve"],
        "args": ["--artifact", artifact_dir, "--port", str(spec.port)],
        "env": _env(spec, mv, artifact_dir, constitution_digest),
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": spec.metrics_port, "protocol": "TCP"}],
        # /ready turns 200 only after the artifact's digest and hash were verified and the model loaded.
        "readinessProbe": _http_probe("/ready", 2, 2),
        "livenessProbe": {**_http_probe("/health", 10, 3), "initialDelaySeconds": 10},
        "resources": _resources(spec),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "artifacts", "mountPath": ARTIFACT_MOUNT, "subPath": path, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "interactions", "mountPath": INTERACTION_LOG_MOUNT},
            *base_mounts,
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        # Endpoints take a moment to drop a terminating pod: keep serving until clients have moved.
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
    }
    pod_spec: dict[str, Any] = {
        "securityContext": pod_security_context(),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # preStop (5 s) + the server's drain of in-flight requests (up to 30 s) after SIGTERM.
        "terminationGracePeriodSeconds": 40,
        "containers": [container],
        "volumes": [
            {"name": "artifacts", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}},
            {"name": "interactions", **interaction_volume},
            *base_volumes,
        ],
    }
    pod_spec["topologySpreadConstraints"] = topology_spread(owner.name, color)
    if spec.resources.node_selector:
        pod_spec["nodeSelector"] = dict(spec.resources.node_selector)
    if spec.resources.tolerations:
        pod_spec["tolerations"] = [t.to_api() for t in spec.resources.tolerations]
    metadata = child_metadata(owner, deployment_name(owner.name, color), labels, annotations)
    if autoscaled:
        metadata["annotations"] = {**metadata.get("annotations", {}), ANNOTATION_AUTOSCALED: "true"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": color_selector(owner.name, color)},
            # A color changes its ModelVersion only while it is not active; within the active color
            # (image or resources edited) no pod goes before its replacement is ready.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "revisionHistoryLimit": 2,
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
        },
    }


def _service(owner: Owner, spec: DeploymentSpec, name: str, color: str, role: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(owner, name, _labels(owner, spec, {"acgs.io/service-role": role})),
        "spec": {
            "type": "ClusterIP",
            "selector": color_selector(owner.name, color),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def active_service(owner: Owner, spec: DeploymentSpec, active: Color | str | None) -> dict[str, Any]:
    """The stable address clients call; its selector names the active color (none before the first
    promotion, so no client reaches an unchecked model)."""
    color = str(getattr(active, "value", active)) if active else NO_COLOR
    return _service(owner, spec, active_service_name(owner.name), color, "active")


def preview_service(owner: Owner, spec: DeploymentSpec, preview: Color | str | None) -> dict[str, Any]:
    color = str(getattr(preview, "value", preview)) if preview else NO_COLOR
    return _service(owner, spec, preview_service_name(owner.name), color, "preview")


def service_address(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.svc:{SERVICE_PORT}"


def _peer(peer: PeerSelector) -> dict[str, Any]:
    out: dict[str, Any] = {"podSelector": {"matchLabels": dict(peer.pod_selector)}}
    if peer.namespace_selector is not None:  # unset: the Deployment's own namespace
        out["namespaceSelector"] = {"matchLabels": dict(peer.namespace_selector)}
    return out


def _namespace(name: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def network_policy(owner: Owner, spec: DeploymentSpec, operator_namespace: str,
                   operator_pod_labels: dict[str, str]) -> dict[str, Any]:
    """Deny by default: ingress to the HTTP (predict) port only from the listed clients and the
    operator (promotion checks), to the metrics port only from the scraper's namespace; egress to
    cluster DNS only (the server needs no network)."""
    http = [{"protocol": "TCP", "port": spec.port}]
    ingress: list[dict[str, Any]] = []
    if spec.network.allowed_clients:
        ingress.append({"from": [_peer(p) for p in spec.network.allowed_clients], "ports": http})
    if spec.network.metrics_namespace:
        # /metrics has its own port, so a scraper's namespace never reaches predict.
        ingress.append({"from": [_namespace(spec.network.metrics_namespace)],
                        "ports": [{"protocol": "TCP", "port": spec.metrics_port}]})
    ingress.append({"from": [{**_namespace(operator_namespace),
                              "podSelector": {"matchLabels": dict(operator_pod_labels)}}], "ports": http})
    dns = {"to": [{**_namespace("kube-system"), "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
           "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": child_metadata(owner, network_policy_name(owner.name), _labels(owner, spec)),
        "spec": {
            "podSelector": {"matchLabels": server_selector(owner.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": [dns],
        },
    }
