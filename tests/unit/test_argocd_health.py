"""Argo CD health checks for our kinds, run by a real Lua interpreter (lupa), as Argo CD runs them."""

from __future__ import annotations

import pytest
import yaml

from ..conftest import ROOT

# Argo CD runs gopher-lua (Lua 5.1 semantics): test on a 5.1 runtime.
lupa = pytest.importorskip("lupa.lua51")

CM = yaml.safe_load((ROOT / "manifests/argocd/argocd-cm.yaml").read_text())["data"]


def health(kind: str, obj: dict) -> dict:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)

    def to_lua(value):
        if isinstance(value, dict):
            return lua.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([to_lua(v) for v in value])
        return value

    script = CM[f"resource.customizations.health.acgs.io_{kind}"]
    result = lua.execute(f"return function(obj)\n{script}\nend")(to_lua(obj))
    return dict(result)


def kstatus(true: str, generation: int) -> list[dict]:
    """Ready, Reconciling and Stalled with only `true` True, all written for `generation`."""
    return [{"type": t, "status": "True" if t == true else "False", "reason": "R", "observedGeneration": generation}
            for t in ("Ready", "Reconciling", "Stalled")]


@pytest.mark.parametrize("kind, status, generation, expected", [
    ("TrainingJob", None, 1, "Progressing"),
    ("TrainingJob", {"phase": "Running", "progress": {"percent": 40}, "observedGeneration": 1}, 1, "Progressing"),
    ("TrainingJob", {"phase": "Succeeded", "observedGeneration": 1}, 1, "Healthy"),
    ("TrainingJob", {"phase": "Failed", "message": "PrivacyBudgetExhausted", "observedGeneration": 1}, 1, "Degraded"),
    ("TrainingJob", {"phase": "Succeeded", "observedGeneration": 1}, 2, "Progressing"),
    ("TrainingJob", {"phase": "Suspended", "observedGeneration": 1}, 1, "Suspended"),
    ("TrainingJob", {"phase": "Queued", "message": "Kueue Workload w: insufficient quota", "observedGeneration": 1},
     1, "Progressing"),  # waiting for Kueue's quota: not the user's pause
    ("ModelVersion", {"phase": "Ready"}, 1, "Healthy"),
    ("ModelVersion", {"phase": "Invalid", "message": "digest mismatch"}, 1, "Degraded"),
    ("ModelVersion", {"phase": "Pending"}, 1, "Progressing"),
    ("Deployment", {"phase": "Healthy", "observedGeneration": 3}, 3, "Healthy"),
    ("Deployment", {"phase": "Degraded", "message": "rolled back", "observedGeneration": 3}, 3, "Degraded"),
    ("Deployment", {"phase": "Paused", "observedGeneration": 3}, 3, "Suspended"),
    ("Deployment", {"phase": "Progressing", "observedGeneration": 3}, 3, "Progressing"),
    ("FlywheelPolicy", {"phase": "Collecting"}, 1, "Healthy"),
    ("FlywheelPolicy", {"phase": "Failed"}, 1, "Degraded"),
    # kstatus conditions, as the operator writes them, decide where they exist:
    ("ModelVersion", {"phase": "Ready", "observedGeneration": 2, "conditions": kstatus("Ready", 2)}, 2, "Healthy"),
    ("ModelVersion", {"phase": "Ready", "observedGeneration": 1, "conditions": kstatus("Ready", 1)}, 2, "Progressing"),
    ("ModelVersion", {"phase": "Pending", "observedGeneration": 1, "conditions": kstatus("Stalled", 1)}, 1,
     "Degraded"),  # held: constitution mismatch
    ("Deployment", {"phase": "Degraded", "observedGeneration": 1, "conditions": kstatus("Stalled", 1)}, 1, "Degraded"),
    ("Deployment", {"phase": "Healthy", "observedGeneration": 1, "conditions": kstatus("Reconciling", 1)}, 1,
     "Progressing"),  # serving, but not yet the desired version
    ("Deployment", {"phase": "Healthy", "observedGeneration": 1, "conditions": kstatus("Ready", 1)}, 1, "Healthy"),
    ("TrainingJob", {"phase": "Failed", "observedGeneration": 1, "conditions": kstatus("Stalled", 1)}, 1, "Degraded"),
    ("TrainingJob", {"phase": "Running", "observedGeneration": 1, "conditions": kstatus("Reconciling", 1)}, 1,
     "Progressing"),
    ("FlywheelPolicy", {"phase": "Collecting", "observedGeneration": 1, "conditions": kstatus("Ready", 1)}, 1,
     "Healthy"),
    # A run in progress, or a decided one, is the policy working as meant (a sync never waits on a run).
    *(("FlywheelPolicy", {"phase": phase, "observedGeneration": 1, "conditions": kstatus("Ready", 1)}, 1, "Healthy")
      for phase in ("Evaluating", "Recommending", "Idle")),
    # A failed run: Ready False but not Stalled (the next trigger tries again); Argo CD shows Degraded.
    ("FlywheelPolicy", {"phase": "Failed", "message": "run run-1 failed: every candidate failed",
                        "lastRunResult": {"id": "run-1", "phase": "Failed"}, "observedGeneration": 1,
                        "conditions": kstatus("Reconciling", 1)}, 1, "Degraded"),
])
def test_health(kind, status, generation, expected):
    obj = {"apiVersion": "acgs.io/v1alpha1", "kind": kind, "metadata": {"name": "x", "generation": generation}}
    if status is not None:
        obj["status"] = status
    hs = health(kind, obj)
    assert hs["status"] == expected
    assert hs["message"]


def test_running_message_shows_progress():
    obj = {"metadata": {"generation": 1}, "status": {"phase": "Running", "progress": {"percent": 40}}}
    assert "40" in health("TrainingJob", obj)["message"]
