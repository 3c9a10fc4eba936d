"""The Argo CD app-of-apps (manifests/argocd/app-of-apps.yaml): parses, its sync waves put the CRDs
before the operator before the resources, every path it names exists and renders with
`kubectl kustomize`, and no object belongs to two Applications. (No Argo CD runs here: README.)"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import KUBECTL, ROOT

ARGOCD = ROOT / "manifests/argocd"
WAVE = "argocd.argoproj.io/sync-wave"
CRD = "CustomResourceDefinition"


def render(path: str | Path) -> list[dict[str, Any]]:
    proc = subprocess.run([KUBECTL, "kustomize", str(ROOT / path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize {path}: {proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


@pytest.fixture(scope="module")
def children() -> dict[str, dict[str, Any]]:
    parent = yaml.safe_load((ARGOCD / "app-of-apps.yaml").read_text())
    assert parent["kind"] == "Application"
    apps = render(parent["spec"]["source"]["path"])
    assert all(a["kind"] == "Application" for a in apps)
    return {a["metadata"]["name"]: a for a in apps}


def test_every_manifest_parses() -> None:
    files = sorted(ARGOCD.rglob("*.yaml"))
    assert len(files) >= 7
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert docs and all("kind" in d for d in docs), path


def test_waves_order_crds_then_operator_then_resources(children: dict[str, dict[str, Any]]) -> None:
    waves = {name: int(app["metadata"]["annotations"][WAVE]) for name, app in children.items()}
    assert waves["acgs-crds"] < waves["acgs-operator"] < waves["acgs-samples"], waves


def test_every_path_exists_renders_and_has_one_owner(children: dict[str, dict[str, Any]]) -> None:
    parent = yaml.safe_load((ARGOCD / "app-of-apps.yaml").read_text())
    repos = {parent["spec"]["source"]["repoURL"]} | {a["spec"]["source"]["repoURL"] for a in children.values()}
    assert len(repos) == 1, f"one repository for every Application, got {repos}"
    rendered = {}
    for name, app in children.items():
        path = app["spec"]["source"]["path"]
        assert (ROOT / path).is_dir() and (ROOT / path / "kustomization.yaml").exists(), f"{name}: {path}"
        rendered[name] = render(path)
        assert rendered[name], f"{name} renders nothing"
    owned = [key(o) for objs in rendered.values() for o in objs]
    assert len(owned) == len(set(owned)), "an object belongs to two Applications"
    # Together the crds and operator waves are exactly `kubectl apply -k manifests/`.
    assert {key(o) for o in rendered["acgs-crds"] + rendered["acgs-operator"]} == {key(o) for o in render("manifests")}
    assert {o["kind"] for o in rendered["acgs-crds"]} == {CRD}
    assert CRD not in {o["kind"] for o in rendered["acgs-operator"]}


def test_resources_wave_uses_only_kinds_of_the_earlier_waves(children: dict[str, dict[str, Any]]) -> None:
    crds = render(children["acgs-crds"]["spec"]["source"]["path"])
    served = {(c["spec"]["group"], c["spec"]["names"]["kind"]) for c in crds}
    for obj in render(children["acgs-samples"]["spec"]["source"]["path"]):
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if group.endswith("acgs.io"):
            assert (group, obj["kind"]) in served, f"{obj['kind']} has no CRD in the acgs-crds wave"
        else:
            assert obj["kind"] == "PersistentVolumeClaim", obj["kind"]
    assert children["acgs-samples"]["spec"]["destination"]["namespace"]
    assert "CreateNamespace=true" in children["acgs-samples"]["spec"]["syncPolicy"]["syncOptions"]


def test_application_health_follows_its_child() -> None:
    lupa = pytest.importorskip("lupa.lua51")
    script = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())["data"][
        "resource.customizations.health.argoproj.io_Application"]
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    check = lua.execute(f"return function(obj)\n{script}\nend")

    def health(status: dict[str, Any] | None) -> str:
        obj = lua.table_from({"status": lua.table_from({"health": lua.table_from(status)})} if status else {})
        return str(dict(check(obj))["status"])

    assert health(None) == "Progressing"  # a wave is not done before its Application reports
    assert health({"status": "Healthy"}) == "Healthy"
    assert health({"status": "Degraded", "message": "operator crash-looping"}) == "Degraded"
