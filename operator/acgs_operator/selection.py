"""Which ModelVersion a Deployment (acgs.io) should serve: by name, or the newest usable version of
a model in a stage (so a Git-owned Deployment follows promotions). Pure: takes API dicts."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from . import conditions as cond
from . import semver
from .api.deployment import DeploymentSpec
from .api.modelversion import ModelVersionPhase, ModelVersionSpec
from .artifacts import UnsupportedArtifact
from .builders.deployment import artifact_location
from .errors import describe
from .rollout import Desired, Target

READY, INVALID = ModelVersionPhase.READY.value, ModelVersionPhase.INVALID.value


def phase(mv: dict[str, Any]) -> str | None:
    return (mv.get("status") or {}).get("phase")


def usable(mv: dict[str, Any], require_verified: bool) -> bool:
    return phase(mv) == READY or (not require_verified and phase(mv) != INVALID)


def to_target(mv: dict[str, Any], spec: DeploymentSpec, require_verified: bool) -> Target:
    name = mv["metadata"]["name"]
    try:
        mv_spec = ModelVersionSpec.model_validate(mv.get("spec") or {})
    except ValidationError as error:
        return Target(name, "", invalid=(cond.MODEL_VERSION_INVALID, f"ModelVersion {name}: {describe(error)}"))
    invalid: tuple[str, str] | None = None
    if phase(mv) == INVALID:
        message = (mv.get("status") or {}).get("message") or "artifact verification failed"
        invalid = (cond.MODEL_VERSION_INVALID, f"ModelVersion {name} is Invalid: {message}")
    elif mv_spec.constitutional_hash != spec.constitutional_hash:
        invalid = (cond.CONSTITUTIONAL_HASH_MISMATCH,
                   f"ModelVersion {name} has constitutionalHash {mv_spec.constitutional_hash}, "
                   f"this Deployment serves {spec.constitutional_hash}")
    else:
        try:
            artifact_location(mv_spec.artifact.uri, spec.artifact_pvc)
        except UnsupportedArtifact as error:
            invalid = (cond.UNSUPPORTED_ARTIFACT_URI, f"ModelVersion {name}: {error}")
    # Gates read what the verification Job found in the artifact, never what the spec declares.
    verified = (mv.get("status") or {}).get("verifiedMetrics") or {}
    return Target(name=name, digest=mv_spec.artifact.digest, metrics=dict(verified),
                  usable=usable(mv, require_verified), invalid=invalid)


def resolve_desired(spec: DeploymentSpec, mvs: list[dict[str, Any]], require_verified: bool) -> Desired:
    ref = spec.model
    if ref.version_ref:
        mv = next((m for m in mvs if m["metadata"]["name"] == ref.version_ref), None)
        if mv is None:
            return Desired(None, cond.MODEL_VERSION_NOT_FOUND,
                           f"spec.model.versionRef: ModelVersion {ref.version_ref!r} not found")
        return Desired(to_target(mv, spec, require_verified))
    assert ref.selector is not None
    model_name, stage = ref.selector.model_name, ref.selector.stage
    candidates = [m for m in mvs
                  if (m.get("spec") or {}).get("modelName") == model_name
                  and (m.get("spec") or {}).get("stage") == stage and usable(m, require_verified)]
    if not candidates:
        state = "verified (Ready) " if require_verified else ""
        return Desired(None, cond.NO_MODEL_VERSION_IN_STAGE,
                       f"spec.model.selector: no {state}ModelVersion of model {model_name!r} in stage {stage!r}")
    newest = max(candidates, key=lambda m: (semver.sort_key(m["spec"].get("version", "")),
                                            m["metadata"].get("creationTimestamp") or ""))
    return Desired(to_target(newest, spec, require_verified))
