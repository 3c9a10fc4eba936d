"""The only module that talks to the Kubernetes API for handlers (blocking client: sync handlers only)."""

from __future__ import annotations

import functools
import json
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException as ApiException  # re-exported for handlers
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError
from kubernetes.dynamic.exceptions import ResourceNotFoundError as ResourceNotFoundError  # kind not served

from .constants import FIELD_MANAGER


@functools.lru_cache(maxsize=1)
def api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


@functools.lru_cache(maxsize=1)
def dynamic() -> DynamicClient:
    return DynamicClient(api_client())  # type: ignore[no-untyped-call]


def resource(api_version: str, kind: str) -> Any:
    return dynamic().resources.get(api_version=api_version, kind=kind)


def apply(obj: dict[str, Any], field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
    """Server-side apply with one field manager: create or converge, idempotently."""
    meta = obj["metadata"]
    res = resource(obj["apiVersion"], obj["kind"])
    out = res.server_side_apply(body=obj, name=meta["name"], namespace=meta.get("namespace"),
                                field_manager=field_manager, force_conflicts=True)
    applied: dict[str, Any] = out.to_dict()
    return applied


def get(api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        return found
    except NotFoundError:
        return None


def list_(api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None,
          ) -> list[dict[str, Any]]:
    out = resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
    return [item.to_dict() for item in out.items]


def delete(api_version: str, kind: str, namespace: str | None, name: str) -> bool:
    try:
        resource(api_version, kind).delete(name=name, namespace=namespace,
                                           body={"propagationPolicy": "Background"})
        return True
    except NotFoundError:
        return False


def patch_status(api_version: str, kind: str, namespace: str | None, name: str,
                 status: dict[str, Any]) -> dict[str, Any]:
    """Merge-patch the status subresource (for writes outside a kopf handler's own patch)."""
    res = resource(api_version, kind)
    out = res.status.patch(body={"status": status}, name=name, namespace=namespace,
                           content_type="application/merge-patch+json")
    patched: dict[str, Any] = out.to_dict()
    return patched


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The fields of `new` that differ from `old`. A null in `new` means "absent" (a merge patch
    deletes it), so it equals a field the stored object does not have."""
    return {k: v for k, v in new.items() if _without_nulls(old.get(k)) != _without_nulls(v)}


def patch_status_changes(obj: dict[str, Any], status: dict[str, Any]) -> None:
    """Patch only the status fields that differ from the object's current status (kubeflow's habit:
    no write, no event, no watch traffic when nothing changed). The one "status changed" check."""
    changed = changed_fields(obj.get("status") or {}, status)
    if changed:
        meta = obj["metadata"]
        patch_status(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"], changed)


def error_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body or "").get("message", str(e)))
    except (TypeError, ValueError):
        return str(e)
