"""Volumes for hack/podrunner/: host directories that stand in for a pod's volumes, and the shell
script that bind-mounts them at their real mountPath inside a private mount namespace.

A PVC maps to one directory per claim that outlives pods (so a training pod's output is visible to
the serving pods and tests that come later); emptyDir, configMap, secret and downwardAPI volumes live
under the pod's own directory and go away with the pod.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .env import ContainerConfigError, DataLookup, expand, field_value, resource_value

log = logging.getLogger("podrunner.volumes")


@dataclass(frozen=True)
class Bind:
    source: Path
    target: str
    read_only: bool


def pvc_dir(state: Path, namespace: str, claim: str) -> Path:
    return state / "volumes" / "pvc" / namespace / claim


def pod_dir(state: Path, uid: str) -> Path:
    return state / "volumes" / "pods" / uid


def _write_files(target: Path, files: Mapping[str, tuple[str, int]]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for rel, (content, mode) in files.items():
        path = target / rel
        if ".." in Path(rel).parts:
            raise ContainerConfigError(f"volume item path {rel!r} must not contain '..'")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        os.chmod(path, mode)


def _keyed_files(kind: str, source: dict[str, Any], name_key: str, namespace: str,
                 lookup: DataLookup) -> dict[str, tuple[str, int]] | None:
    """configMap/secret items (or every key), honouring items[].mode and defaultMode."""
    name = source.get(name_key, "")
    data = lookup(kind, namespace, name)
    if data is None:
        if source.get("optional"):
            return {}
        raise ContainerConfigError(f"{kind} {namespace}/{name} not found (volume)")
    mode = int(source.get("defaultMode", 0o644))
    items = source.get("items")
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise ContainerConfigError(f"key {item['key']!r} not found in {kind} {namespace}/{name}")
        files[item["path"]] = (data[item["key"]], int(item.get("mode", mode)))
    return files


def _downward_files(pod: dict[str, Any], source: dict[str, Any],
                    allocatable: Mapping[str, str]) -> dict[str, tuple[str, int]]:
    mode = int(source.get("defaultMode", 0o644))
    files = {}
    for item in source.get("items") or []:
        if "fieldRef" in item:
            value = field_value(pod, item["fieldRef"]["fieldPath"])
        else:
            ref = item["resourceFieldRef"]
            value = resource_value(pod, ref.get("containerName", ""), ref, allocatable)
        files[item["path"]] = (value, int(item.get("mode", mode)))
    return files


def materialize(pod: dict[str, Any], state: Path, lookup: DataLookup,
                allocatable: Mapping[str, str]) -> dict[str, tuple[Path, bool]]:
    """Create every supported volume's host directory: {volume name: (path, read-only source)}.
    Volumes left out (projected service-account tokens, unknown kinds) are skipped, and so are
    their mounts: nothing here needs the API from inside a pod."""
    ns, uid = pod["metadata"]["namespace"], pod["metadata"]["uid"]
    volumes: dict[str, tuple[Path, bool]] = {}
    for vol in pod["spec"].get("volumes") or []:
        name, own = vol["name"], pod_dir(state, uid) / vol["name"]
        if "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"]
            path = pvc_dir(state, ns, claim["claimName"])
            path.mkdir(parents=True, exist_ok=True)
            volumes[name] = (path, bool(claim.get("readOnly")))
        elif "emptyDir" in vol:
            own.mkdir(parents=True, exist_ok=True)
            volumes[name] = (own, False)
        elif "hostPath" in vol:
            path = Path(vol["hostPath"]["path"])
            if vol["hostPath"].get("type") == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            volumes[name] = (path, False)
        elif "configMap" in vol or "secret" in vol:
            kind, key, name_key = (("configmap", "configMap", "name") if "configMap" in vol
                                   else ("secret", "secret", "secretName"))
            keyed = _keyed_files(kind, vol[key], name_key, ns, lookup) or {}
            _write_files(own, keyed)
            volumes[name] = (own, True)
        elif "downwardAPI" in vol:
            _write_files(own, _downward_files(pod, vol["downwardAPI"], allocatable))
            volumes[name] = (own, True)
        elif "projected" in vol:
            sources = vol["projected"].get("sources") or []
            if any("serviceAccountToken" in s for s in sources):
                continue  # the API access volume the ServiceAccount admission adds: no token here
            files: dict[str, tuple[str, int]] = {}
            for src in sources:
                if "configMap" in src:
                    files.update(_keyed_files("configmap", src["configMap"], "name", ns, lookup) or {})
                elif "secret" in src:
                    files.update(_keyed_files("secret", src["secret"], "name", ns, lookup) or {})
                elif "downwardAPI" in src:
                    files.update(_downward_files(pod, src["downwardAPI"], allocatable))
            _write_files(own, files)
            volumes[name] = (own, True)
    return volumes


def binds_for(container: dict[str, Any], volumes: Mapping[str, tuple[Path, bool]],
              env: Mapping[str, str]) -> list[Bind]:
    """The container's volumeMounts as bind mounts, parents before children."""
    binds = []
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in volumes:
            continue
        source, source_ro = volumes[mount["name"]]
        sub = mount.get("subPath") or expand(mount.get("subPathExpr", ""), env)
        if sub:
            if ".." in Path(sub).parts or Path(sub).is_absolute():
                raise ContainerConfigError(f"volumeMount {mount['name']}: subPath {sub!r} must be relative "
                                           "without '..'")
            source = source / sub
            if not source.exists():  # the kubelet creates a missing subPath as a directory
                source.mkdir(parents=True, exist_ok=True)
        binds.append(Bind(source, mount["mountPath"], bool(mount.get("readOnly")) or source_ro))
    return sorted(binds, key=lambda b: Path(b.target).as_posix().count("/"))


# What the runner's processes need from the host file system: the checkout (its venv runs the
# programs), the runner's state (volume sources) and the Python installation.
PROTECTED = tuple(dict.fromkeys(Path(p).resolve() for p in (
    Path(__file__).resolve().parents[2], sys.prefix, sys.base_prefix)))


def shadows(target: str, protected: tuple[Path, ...]) -> Path | None:
    """The protected path a mount at `target` would hide (a pod's /tmp emptyDir over a checkout in /tmp)."""
    t = Path(target).resolve()
    return next((p for p in protected if p == t or t in p.parents), None)


def mount_script(binds: list[Bind], working_dir: str | None, protected: tuple[Path, ...] = PROTECTED) -> str:
    """`sh -c` body run under `unshare -m --propagation private`: the binds are visible only to the
    container's processes; it ends by exec'ing the container's command ("$@").

    A container has its own root file system; these processes share the host's. A mount that would
    hide the files the processes run from (or the other volumes' sources) is left out, and the
    program writes to the host path there instead: a pod's `/tmp` emptyDir when the checkout is
    under /tmp is the common case."""
    lines = ["set -e"]
    sources = tuple(b.source.resolve() for b in binds)
    for b in binds:
        hidden = shadows(b.target, protected + sources)
        if hidden is not None:
            log.warning("not mounting %s at %s: it would hide %s", b.source, b.target, hidden)
            lines.append(f"# {b.target}: not mounted (would hide {hidden})")
            continue
        dst, src = shlex.quote(b.target), shlex.quote(str(b.source))
        if b.source.is_dir():
            lines.append(f"mkdir -p {dst}")
        else:  # a file (subPath into a configMap, termination message): bind onto a file
            lines.append(f"mkdir -p {shlex.quote(str(Path(b.target).parent))}; [ -e {dst} ] || : > {dst}")
        lines.append(f"mount --bind {src} {dst}")
        if b.read_only:
            lines.append(f"mount -o remount,bind,ro {dst}")
    if working_dir:
        lines.append(f"mkdir -p {shlex.quote(working_dir)}; cd {shlex.quote(working_dir)}")
    lines.append('exec "$@"')
    return "\n".join(lines)


def remove_pod_dir(state: Path, uid: str) -> None:
    shutil.rmtree(pod_dir(state, uid), ignore_errors=True)
