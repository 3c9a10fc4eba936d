"""Shapes shared by all acgs.io kinds: the base model config, conditions, resources."""

from __future__ import annotations

import math
import re
from enum import Enum
from typing import Annotated, Any

# Re-exported: the API models take the contract's patterns.
from acgs_contract.constitution import HASH_PATTERN as HASH_PATTERN
from acgs_contract.manifest import DIGEST_PATTERN as DIGEST_PATTERN
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
# A DNS-1123 subdomain: what Kubernetes accepts as an object name.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

def cel(rule: str, message: str, replaces: tuple[str, ...] = ()) -> dict[str, Any]:
    """json_schema_extra for a field checked by the apiserver with a CEL rule (see crdgen)."""
    extra: dict[str, Any] = {"x-kubernetes-validations": [{"rule": rule, "message": message}]}
    if replaces:
        extra["x-acgs-cel-replaces"] = list(replaces)
    return extra


def round_up(value: float | None, places: int = 4) -> float | None:
    """For a privacy cost shown to people: rounded, but never below the true value."""
    if value is None:
        return None
    scale = 10 ** places
    return float(math.ceil(value * scale - 1e-9) / scale)


def round_to(value: float | None, places: int = 4) -> float | None:
    return None if value is None else round(value, places)


ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=NAME_PATTERN)]
# Kubernetes label syntax: a selector the apiserver would refuse in a child (a NetworkPolicy, a pod's
# nodeSelector) is refused at admission instead, naming the field (found by tests/chaos/test_fuzz.py).
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LABEL_KEY_PATTERN = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                     r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]


def _label_keys(labels: dict[str, str]) -> dict[str, str]:
    # Checked here, not in the CRD schema: structural schemas have no propertyNames.
    for key in labels:
        if len(key) > 317 or not re.match(LABEL_KEY_PATTERN, key):
            raise ValueError(f"label key {key!r}: expected [prefix/]name, name of 1-63 alphanumerics, '-', '_' "
                             "or '.' starting and ending alphanumeric, prefix a DNS subdomain")
    return labels


Labels = Annotated[dict[str, LabelValue], AfterValidator(_label_keys)]
Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN, description="A Kubernetes quantity, e.g. 500m, 4, 16Gi.")]


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
        use_enum_values=True,
    )

    def to_api(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, no unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ConditionStatus(str, Enum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """The metav1.Condition shape, so `kubectl wait --for=condition=X` works."""

    type: str = Field(description="Type of condition in CamelCase, e.g. Ready.", max_length=316)
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason for the last transition.", max_length=1024)
    message: str = Field(default="", description="Human-readable details.", max_length=32768)
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation this condition was set from."
    )


class StatusBase(ApiModel):
    """Fields every acgs.io status carries."""

    phase: str | None = Field(default=None, description="Coarse lifecycle phase (see the kind's docs).")
    message: str | None = Field(default=None, description="Why the object is in its phase, for people.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The metadata.generation the operator last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Latest observations of the object's state, keyed by type.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class Toleration(ApiModel):
    """core/v1 Toleration, for GPU node taints."""

    key: str | None = Field(default=None, description="Taint key the toleration applies to.")
    operator: str | None = Field(default=None, description="Exists or Equal.", pattern=r"^(Exists|Equal)$")
    value: str | None = Field(default=None, description="Taint value for operator Equal.")
    effect: str | None = Field(
        default=None, description="NoSchedule, PreferNoSchedule or NoExecute.",
        pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$",
    )
    toleration_seconds: int | None = Field(default=None, description="How long a NoExecute taint is tolerated.")


class Resources(ApiModel):
    """Compute for the workload's main container."""

    cpu: Quantity = Field(default="1", description="CPU request and limit.")
    memory: Quantity = Field(default="2Gi", description="Memory request and limit.")
    gpus: int = Field(default=0, ge=0, le=16, description="GPUs per pod (extended resource, see gpuResourceName).")
    gpu_resource_name: str = Field(
        default="nvidia.com/gpu", description="Extended resource name of the GPU device plugin."
    )
    node_selector: Labels = Field(default_factory=dict, description="Node labels the pods must match.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints the pods tolerate.")
