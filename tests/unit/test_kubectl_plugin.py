"""kubectl acgs without a cluster: the tree it draws from API objects, the TrainingJob `retrain`
creates, the completion answers and the kubectl-style help and errors. The same commands against
real objects through a real kubectl: tests/cluster/test_kubectl_plugin.py."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from acgs_kubectl import cli, completion, tree
from acgs_kubectl.client import ALIASES, PluginError, resolve_kind

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def _meta(name: str, **extra: object) -> dict:
    return {"name": name, "namespace": "team-a", "creationTimestamp": "2026-01-01T11:50:00Z", **extra}


def snapshot() -> tree.Snapshot:
    return tree.Snapshot(
        "team-a", now=NOW,
        training_jobs=[{"metadata": _meta("cai-v1"), "spec": {"privacy": {"targetEpsilon": 8.0}},
                        "status": {"phase": "Succeeded", "jobName": "cai-v1-train", "modelVersion": "cai-1-0-0",
                                   "progress": {"percent": 100.0, "epsilon": 3.25}}},
                       {"metadata": _meta("cai-v2"), "spec": {},
                        "status": {"phase": "Running", "jobName": "cai-v2-train", "progress": {"percent": 40.0}}}],
        model_versions=[{"metadata": _meta("cai-1-0-0"),
                         "spec": {"stage": "production", "version": "1.0.0", "metrics": {"complianceScore": 0.97},
                                  "lineage": {"trainingJob": "cai-v1"}}, "status": {"phase": "Ready"}},
                        {"metadata": _meta("cai-0-9-0"), "spec": {"stage": "archived", "version": "0.9.0"},
                         "status": {"phase": "Invalid"}}],
        deployments=[{"metadata": _meta("web"), "spec": {},
                      "status": {"phase": "Healthy", "activeColor": "blue", "activeModelVersion": "cai-1-0-0"}}],
        flywheel_policies=[{"metadata": _meta("cheaper"), "spec": {"deploymentRef": "web"},
                            "status": {"phase": "Idle", "recordsSeen": 70,
                                       "candidates": [{"name": "tiny", "state": "Rejected",
                                                       "trainingJob": "fw-tiny"}]}}],
        apps_deployments=[{"metadata": _meta("web-blue", annotations={"acgs.io/model-version": "cai-1-0-0"}),
                           "spec": {"replicas": 2}, "status": {"readyReplicas": 2}}],
        jobs=[{"metadata": _meta("cai-v1-train"), "spec": {},
               "status": {"conditions": [{"type": "Complete", "status": "True"}]}},
              {"metadata": _meta("cai-v2-train"), "spec": {}, "status": {"active": 1}}],
        pods=[{"metadata": _meta("web-blue-1", labels={"acgs.io/color": "blue", "acgs.io/owner-name": "web"}),
               "spec": {"containers": [{}]},
               "status": {"phase": "Running", "containerStatuses": [{"ready": True, "restartCount": 1}]}},
              {"metadata": _meta("web-green-1", labels={"acgs.io/color": "green", "acgs.io/owner-name": "other"}),
               "spec": {"containers": [{}]}, "status": {"phase": "Running"}},
              {"metadata": _meta("cai-v2-train-x", labels={"acgs.io/training-job": "cai-v2"}),
               "spec": {"containers": [{}]},
               "status": {"phase": "Pending", "containerStatuses": [
                   {"ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}]}}],
    )


def test_namespace_tree_starts_at_deployments_and_shows_each_object_once() -> None:
    text = tree.render(tree.roots(snapshot()), NOW)
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "STATUS", "AGE", "INFO"]
    assert lines[1].startswith("⟳ web ") and "✔ Healthy" in lines[1]
    assert any("└──□ web-blue-1" in line and "ready:1/1,restarts:1" in line for line in lines)
    assert "web-green-1" not in text  # another Deployment's pod
    assert any("⧉ cai-1-0-0" in line and "production v1.0.0 compliance:0.97" in line for line in lines)
    assert any("⟳ cai-v1" in line and "100% ε 3.25/8" in line and "10m" in line for line in lines)
    assert any("◇ tiny" in line and "✖ Rejected" in line for line in lines)
    # not reachable from a Deployment: still listed, once, as their own trees
    assert sum(line.split()[1] == "cai-v2" for line in lines if len(line.split()) > 1) == 1
    assert any("□ cai-v2-train-x" in line and "ContainerCreating" in line for line in lines)
    assert any(line.startswith("⧉ cai-0-9-0") and "✖ Invalid" in line for line in lines)


def test_training_job_tree_follows_its_version_to_where_it_is_served() -> None:
    (root,) = tree.roots(snapshot(), "TrainingJob", "cai-v1")
    assert [(n.kind, n.name) for n in tree.walk(root)] == [
        ("TrainingJob", "cai-v1"), ("Job", "cai-v1-train"), ("ModelVersion", "cai-1-0-0"), ("Deployment", "web"),
        ("Color", "web blue"), ("Pod", "web-blue-1"), ("FlywheelPolicy", "cheaper"), ("Candidate", "tiny")]
    text = tree.render([root], NOW)
    assert "      ├──◧ web blue" in text and "role:active" in text


def test_colors_only_on_a_terminal_request() -> None:
    trees = tree.roots(snapshot(), "Deployment", "web")
    assert "\033[" not in tree.render(trees, NOW, color=False)
    colored = tree.render(trees, NOW, color=True)
    assert "\033[32m✔ Healthy\033[0m" in colored
    assert [len(line) for line in tree.render(trees, NOW).splitlines()][:1] == \
        [len(line) for line in colored.splitlines()][:1]


@pytest.mark.parametrize("created,age", [("2026-01-01T11:59:30Z", "30s"), ("2026-01-01T11:00:00Z", "60m"),
                                         ("2026-01-01T09:00:00Z", "3h"), ("2025-12-29T12:00:00Z", "3d"),
                                         (None, ""), ("garbage", "")])
def test_age_like_kubectl(created: str | None, age: str) -> None:
    assert tree.age(created, NOW) == age


def test_retrain_copies_the_spec_not_the_identity() -> None:
    original = {"apiVersion": "acgs.io/v1alpha1", "kind": "TrainingJob",
                "metadata": {"name": "cai-v1", "namespace": "team-a", "uid": "u", "resourceVersion": "7",
                             "labels": {"team": "a", "argocd.argoproj.io/instance": "x"}},
                "spec": {"modelName": "cai", "training": {"maxSteps": 5}}, "status": {"phase": "Succeeded"}}
    new = cli.retrain_manifest(original, None, "cai-1-0-0")
    assert new["metadata"] == {"namespace": "team-a", "labels": {"team": "a"}, "generateName": "cai-v1-",
                               "annotations": {"acgs.io/retrained-from": "cai-v1"}}
    assert new["spec"] == {"modelName": "cai", "training": {"maxSteps": 5}, "parentVersion": "cai-1-0-0"}
    assert "status" not in new and original["spec"] == {"modelName": "cai", "training": {"maxSteps": 5}}
    assert cli.retrain_manifest(original, "cai-v2", None)["metadata"]["name"] == "cai-v2"


def test_kinds_resolve_like_kubectl_and_bad_ones_are_named() -> None:
    assert {resolve_kind(k) for k in ("tj", "trainingjobs", "TrainingJob", "mv", "mdeploy", "fwp",
                                      "deployments.acgs.io")} == {"TrainingJob", "ModelVersion", "Deployment",
                                                                  "FlywheelPolicy"}
    with pytest.raises(PluginError, match='resource type "pods"'):
        resolve_kind("pods")
    with pytest.raises(PluginError, match="works on Deployments, not TrainingJobs"):
        cli._target("tj/cai-v1", "Deployment")


def test_completion_offers_commands_kinds_and_flags_without_a_cluster() -> None:
    parser = cli.build_parser()
    commands = completion.candidates(["pro"], parser, ALIASES)
    assert commands == ["promote\t" + cli.ROLLOUT_COMMANDS["promote"]]
    assert completion.candidates(["get", "mo"], parser, ALIASES) == ["modelversions"]
    assert "--parent-version" in completion.candidates(["retrain", "--"], parser, ALIASES)
    assert completion.candidates(["completion", ""], parser, ALIASES) == ["bash", "zsh"]
    assert completion.candidates(["get", "--timeout", ""], parser, ALIASES) == []


def test_help_and_errors_follow_kubectl() -> None:
    exe = [sys.executable, "-c", "import sys; from acgs_kubectl.cli import main; sys.exit(main())"]
    top = subprocess.run([*exe, "--help"], capture_output=True, text=True)
    assert top.returncode == 0
    for section in ("Usage:\n  kubectl acgs [command] [flags]", "Available Commands:", "Flags:"):
        assert section in top.stdout
    sub = subprocess.run([*exe, "undo", "--help"], capture_output=True, text=True).stdout
    assert "Examples:\n  kubectl acgs undo" in sub and "-n, --namespace string" in sub
    bad = subprocess.run([*exe, "promote"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("error: the following arguments are required: DEPLOYMENT")
    script = subprocess.run([*exe, "completion", "bash"], capture_output=True, text=True).stdout
    assert "complete -o default -F _kubectl_acgs kubectl-acgs" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_dashboard_state_carries_progress_budget_lineage_gates_and_serving() -> None:
    from acgs_kubectl import dashboard_state

    state = dashboard_state.state(snapshot(), {"web": {"requests": 3.0, "errors": 0.0, "meanLatencySeconds": 0.02}})
    tj = next(t for t in state["trainingJobs"] if t["name"] == "cai-v1")
    assert (tj["percent"], tj["epsilon"], tj["targetEpsilon"], tj["modelVersion"]) == (100.0, 3.25, 8.0, "cai-1-0-0")
    mv = next(m for m in state["modelVersions"] if m["name"] == "cai-1-0-0")
    assert (mv["stage"], mv["trainingJob"], mv["complianceScore"]) == ("production", "cai-v1", 0.97)
    (web,) = state["deployments"]
    assert (web["activeColor"], web["activeModelVersion"], web["serving"]["requests"]) == ("blue", "cai-1-0-0", 3.0)
    assert state["flywheelPolicies"][0]["candidates"][0]["state"] == "Rejected"


def test_serving_latency_is_read_from_the_servers_metrics() -> None:
    from acgs_kubectl.dashboard_state import latency_from_metrics
    from acgs_server.metrics import ServerMetrics

    texts = []
    for seconds in ((0.01, 0.03), (0.02,)):
        server = ServerMetrics()
        for s in seconds:
            server.request_latency.labels("/v1/predict", "cai", "1.0.0").observe(s)
            server.requests.labels("/v1/predict", "200", "cai", "1.0.0").inc()
        server.requests.labels("/v1/predict", "503", "cai", "1.0.0").inc()
        texts.append(server.render().decode())
    result = latency_from_metrics(texts)
    assert result["requests"] == 5 and result["errors"] == 2
    assert result["meanLatencySeconds"] == pytest.approx(0.02)
    assert latency_from_metrics([]) == {}


def test_bash_completion_script_completes_through_the_plugin() -> None:
    import os
    from pathlib import Path

    bin_dir = Path(__file__).resolve().parents[2] / ".venv/bin"
    script = 'source <(kubectl-acgs completion bash); COMP_WORDS=(kubectl-acgs get mo); COMP_CWORD=2; ' \
             '_kubectl_acgs; echo "${COMPREPLY[@]}"'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert proc.stdout.split() == ["modelversions"], proc.stderr
