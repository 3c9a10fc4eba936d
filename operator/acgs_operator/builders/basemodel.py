"""Where a base model outside the artifact lives, as a pod's volume and mount: the one place the
TrainingJob, the verification Job and both server colors take it from, so the trainer that
recorded the base's path in the manifest and every pod that later loads it see the same path.

``pvc://<claim>/<path>`` → only that directory of the claim (subPath), read-only, at
``/models/<claim>/<path>`` (the trainer's ``ACGS_MODEL_ROOT`` default); ``hf://<org>/<name>`` →
the operator's model-cache claim, read-only, at ``/models/hf-cache`` (``ACGS_HF_CACHE``); a
built-in base or a path in the image needs no volume. The base's digest (in the manifest) is
checked by the trainer, the verifier and the server before the base is loaded.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

MODEL_ROOT = "/models"
HF_CACHE_DIR = f"{MODEL_ROOT}/hf-cache"
HF_CACHE_ENV = "ACGS_HF_CACHE"
VOLUME = "base-model"
PVC_PREFIX, HF_PREFIX = "pvc://", "hf://"


def base_model_volumes(base_model: str, model_cache_pvc: str | None, field: str = "spec.baseModel"
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """([volume], [mount]) for ``base_model``, or ([], []) when it needs none. Raises ValueError
    naming ``field`` for a pvc:// reference without a claim or with '..' in its path."""
    if base_model.startswith(PVC_PREFIX):
        claim, _, sub = base_model[len(PVC_PREFIX):].partition("/")
        sub = sub.strip("/")
        if not claim or ".." in PurePosixPath(sub).parts:
            raise ValueError(f"{field}={base_model!r}: expected pvc://<claim>/<path inside it> "
                             "without '..'")
        mount: dict[str, Any] = {"name": VOLUME, "mountPath": f"{MODEL_ROOT}/{claim}" + (f"/{sub}" if sub else ""),
                                 "readOnly": True}
        if sub:
            mount["subPath"] = sub  # nothing else on the claim is visible to the pod
    elif base_model.startswith(HF_PREFIX) and model_cache_pvc:
        claim, mount = model_cache_pvc, {"name": VOLUME, "mountPath": HF_CACHE_DIR, "readOnly": True}
    else:
        return [], []
    return ([{"name": VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}], [mount])
