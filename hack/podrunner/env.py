"""Container environment for hack/podrunner/: `$(VAR)` expansion and env/envFrom resolution.

Follows the kubelet (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables and
third_party/forked/golang/expansion) closely enough that specs written for a real cluster behave the
same when their pod runs here as a local process.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kubernetes.utils import parse_quantity

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"

# (kind, namespace, name) -> the object's data as {key: str}, or None when it does not exist.
DataLookup = Callable[[str, str, str], "dict[str, str] | None"]


class ContainerConfigError(Exception):
    """The container cannot be configured yet (missing ConfigMap/Secret key); the kubelet reports
    this as waiting reason CreateContainerConfigError and retries."""


def expand(text: str, mapping: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known names are replaced, unknown references are kept as
    written, `$$` escapes a dollar sign."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end == -1:  # unterminated reference: kept verbatim, as the kubelet does
                out.append(text[i:])
                break
            name = text[i + 2:end]
            out.append(mapping[name] if name in mapping else text[i:end + 1])
            i = end + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: dict[str, Any], path: str) -> str:
    """The downward API's fieldRef paths the kubelet supports."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.podIPs": ",".join(p["ip"] for p in status.get("podIPs") or []),
        "status.hostIPs": ",".join(p["ip"] for p in status.get("hostIPs") or []),
    }
    if path in simple:
        return str(simple[path])
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
    match = _SUBSCRIPT.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError(f"fieldRef.fieldPath {path!r} is not supported")


def resource_value(pod: dict[str, Any], default_container: str, ref: dict[str, Any],
                   allocatable: Mapping[str, str]) -> str:
    """resourceFieldRef: a limit falls back to the node's allocatable, as on a real node."""
    name = ref.get("containerName") or default_container
    container = next((c for c in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", [])
                      if c["name"] == name), None)
    if container is None:
        raise ContainerConfigError(f"resourceFieldRef.containerName {name!r} is not a container of the pod")
    kind, _, resource = ref["resource"].partition(".")
    resources = container.get("resources") or {}
    raw = (resources.get(kind) or {}).get(resource)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(resource)
    if raw is None:
        raw = allocatable.get(resource, "0")
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor == 0:
        divisor = parse_quantity("1")
    return str(math.ceil(parse_quantity(raw) / divisor))


def base_environment(pod: dict[str, Any]) -> dict[str, str]:
    """What a container inherits from the runner: the repo's venv first on PATH (so entry points
    like acgs-train resolve) and the Python/locale settings needed to start an interpreter."""
    env = {"PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/local/bin:/usr/bin:/bin')}",
           "HOSTNAME": pod["metadata"]["name"], "VIRTUAL_ENV": str(VENV_BIN.parent),
           "HOME": os.environ.get("HOME", "/root")}
    for key, value in os.environ.items():
        if key.startswith(("PYTHON", "LANG", "LC_", "TZ", "HF_", "TRANSFORMERS_", "TORCH", "CUDA_",
                           "NVIDIA_", "LD_LIBRARY_PATH", "SSL_CERT", "REQUESTS_CA")):
            env[key] = value
    return env


def container_env(pod: dict[str, Any], container: dict[str, Any], lookup: DataLookup,
                  allocatable: Mapping[str, str]) -> dict[str, str]:
    """The container's own variables, in kubelet order: envFrom first, then env (later wins), each
    `value` expanded against the variables defined before it."""
    ns = pod["metadata"]["namespace"]
    own: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = source.get(key)
            if not ref:
                continue
            data = lookup(kind, ns, ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f"{kind} {ns}/{ref['name']} not found (envFrom.{key})")
            for name, value in data.items():
                own[source.get("prefix", "") + name] = value
    for var in container.get("env") or []:
        name, source = var["name"], var.get("valueFrom")
        if not source:
            own[name] = expand(var.get("value", ""), own)
        elif "fieldRef" in source:
            own[name] = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            own[name] = resource_value(pod, container["name"], source["resourceFieldRef"], allocatable)
        else:
            for kind, key in (("configmap", "configMapKeyRef"), ("secret", "secretKeyRef")):
                ref = source.get(key)
                if not ref:
                    continue
                data = lookup(kind, ns, ref["name"])
                if data is not None and ref["key"] in data:
                    own[name] = data[ref["key"]]
                elif not ref.get("optional"):
                    raise ContainerConfigError(
                        f"env {name}: key {ref['key']!r} of {kind} {ns}/{ref['name']} not found ({key})")
    return own


def decode_data(kind: str, obj: dict[str, Any]) -> dict[str, str]:
    """ConfigMap data/binaryData or Secret data (base64) as text."""
    if kind == "secret":
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
    data = dict(obj.get("data") or {})
    for k, v in (obj.get("binaryData") or {}).items():
        data[k] = base64.b64decode(v).decode(errors="replace")
    return data


def command_line(container: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    """command + args with `$(VAR)` expansion. An image's entrypoint is unknown here, so a container
    without `command` cannot start."""
    command = container.get("command")
    if not command:
        raise ValueError(f"container {container['name']!r} has no `command`; the local pod runner cannot "
                         f"know the entrypoint of image {container.get('image')!r} - set command explicitly")
    return [expand(part, env) for part in list(command) + list(container.get("args") or [])]
