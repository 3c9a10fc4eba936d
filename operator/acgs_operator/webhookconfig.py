"""The static ValidatingWebhookConfiguration: every acgs.io create/update is checked, none unchecked."""

from __future__ import annotations

import base64
from typing import Any

from .api import KINDS
from .constants import GROUP, VERSION
from .handlers.admission import webhook_path

NAME = "acgs-validating-webhook"
TIMEOUT_SECONDS = 5


def build_webhook_configuration(*, ca_bundle: bytes | None = None, url_base: str | None = None,
                                service: tuple[str, str, int] | None = None,
                                annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """One webhook per kind; reach the operator by URL (local) or Service (in a cluster).

    failurePolicy Fail: with the operator down, acgs.io writes are refused, never admitted unchecked.
    """
    if (url_base is None) == (service is None):
        raise ValueError("give exactly one of url_base or service")
    webhooks = []
    for info in KINDS:
        path = webhook_path(info)
        client: dict[str, Any]
        if url_base is not None:
            client = {"url": f"{url_base.rstrip('/')}/{path}"}
        else:
            namespace, name, port = service  # type: ignore[misc]
            client = {"service": {"namespace": namespace, "name": name, "path": f"/{path}", "port": port}}
        if ca_bundle:
            client["caBundle"] = base64.b64encode(ca_bundle).decode()
        webhooks.append({
            "name": f"{info.plural}.validate.{GROUP}",
            "admissionReviewVersions": ["v1"],
            "clientConfig": client,
            "rules": [{"apiGroups": [GROUP], "apiVersions": [VERSION], "operations": ["CREATE", "UPDATE"],
                       "resources": [info.plural], "scope": "Namespaced"}],
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "timeoutSeconds": TIMEOUT_SECONDS,
            "matchPolicy": "Equivalent",
        })
    metadata: dict[str, Any] = {"name": NAME, "labels": {"app.kubernetes.io/name": "acgs-operator"}}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": metadata, "webhooks": webhooks}
