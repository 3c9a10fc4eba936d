"""The plugin's API access: kubeconfig resolution like kubectl's (--kubeconfig, $KUBECONFIG,
--context, the context's namespace), reads of one namespace, and the few writes the commands make."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from acgs_operator.api import KINDS
from acgs_operator.constants import GROUP, VERSION

from .tree import Snapshot

PLURALS = {info.kind: info.plural for info in KINDS}
# Every name kubectl would accept for these kinds (kind, plural, singular, short names).
ALIASES = {alias: info.kind for info in KINDS
           for alias in (info.kind.lower(), info.plural, info.singular, *info.short_names)}


def _json(decoded: object) -> dict[str, Any]:
    """A custom-objects call's decoded JSON body (the client declares it `object`)."""
    return cast(dict[str, Any], decoded)


class PluginError(Exception):
    """Printed as `error: <message>` with exit code 1, like kubectl."""


def resolve_kind(text: str) -> str:
    kind = ALIASES.get(text.lower().split(".", 1)[0])
    if kind is None:
        raise PluginError(f'the server doesn\'t have a resource type "{text}" in {GROUP} '
                          f"(expected one of: {', '.join(sorted({i.plural for i in KINDS}))})")
    return kind


@dataclass
class Kube:
    api: client.ApiClient
    namespace: str

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None, namespace: str | None) -> Kube:
        try:
            config.load_kube_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        except (config.ConfigException, FileNotFoundError) as error:
            raise PluginError(f"cannot load kubeconfig: {error}") from None
        if context:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
            active = next((c for c in contexts if c["name"] == context), active)
        default_ns = ((active or {}).get("context") or {}).get("namespace") or "default"
        return cls(client.ApiClient(), namespace or default_ns)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        try:
            return _json(self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURALS[kind], name))
        except ApiException as error:
            if error.status == 404:
                raise PluginError(f'{PLURALS[kind]}.{GROUP} "{name}" not found in namespace '
                                  f'"{self.namespace}"') from None
            raise

    def objects(self, kind: str) -> list[dict[str, Any]]:
        listed = _json(self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURALS[kind]))
        return cast(list[dict[str, Any]], listed["items"])

    def names(self, kind: str) -> list[str]:
        return sorted(str(o["metadata"]["name"]) for o in self.objects(kind))

    def patch(self, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return _json(self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURALS[kind], name,
                                                                body))

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return _json(self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURALS[kind], body))

    def snapshot(self) -> Snapshot:
        ns = self.namespace
        plain: Callable[[Any], dict[str, Any]] = self.api.sanitize_for_serialization

        def items(result: Any) -> list[dict[str, Any]]:
            return [plain(i) for i in result.items]

        managed = "app.kubernetes.io/managed-by=acgs-operator"
        return Snapshot(
            namespace=ns,
            training_jobs=self.objects("TrainingJob"),
            model_versions=self.objects("ModelVersion"),
            deployments=self.objects("Deployment"),
            flywheel_policies=self.objects("FlywheelPolicy"),
            apps_deployments=items(client.AppsV1Api(self.api).list_namespaced_deployment(ns, label_selector=managed)),
            jobs=items(client.BatchV1Api(self.api).list_namespaced_job(ns, label_selector=managed)),
            pods=items(client.CoreV1Api(self.api).list_namespaced_pod(ns, label_selector=managed)),
        )
