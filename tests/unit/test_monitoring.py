"""Monitoring artifacts against the real components: docs/metrics.md and the Grafana dashboard are
what the code generates, every metric an alert or panel reads exists in a component's registry, the
scrape selectors match the labels and ports the builders put on pods, the alert rules pass
`promtool test rules` (series that fire and series that must not), and the operator's serving
metrics follow a Deployment's reconciles."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from acgs_monitoring import __main__ as generate
from acgs_monitoring import catalogue
from acgs_operator import metrics
from acgs_operator.api.deployment import DeploymentSpec
from acgs_operator.api.modelversion import ModelVersionSpec
from acgs_operator.api.trainingjob import TrainingJobSpec
from acgs_operator.builders import deployment as dep_build
from acgs_operator.builders import trainingjob as tj_build
from acgs_operator.builders.common import Owner
from acgs_operator.config import Settings

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "manifests/monitoring"
HASH = "cdd01ef066bc6cf2"
SUFFIXES = ("_bucket", "_sum", "_count", "_created")
TJ_SPEC = {"constitutionalHash": HASH, "modelName": "cai", "baseModel": "builtin:tiny-gpt",
           "data": {"generate": {"type": "constitutional_ai"}}}


def _load(name: str) -> dict:
    return yaml.safe_load((MONITORING / name).read_text())


def _referenced(text: str) -> set[str]:
    names = set()
    for name in re.findall(r"\bacgs_[a-z_]+", text):
        for suffix in SUFFIXES:
            if name.endswith(suffix) and not name.endswith("_total" + suffix):
                name = name[: -len(suffix)]
        names.add(name)
    return names


def test_generated_files_are_current() -> None:
    """Like crds-check: `make monitoring` regenerates; a stale file shows as a diff here."""
    assert generate.stale() == [], "".join(generate.stale())


def test_catalogue_reads_every_component() -> None:
    names = {m.name: m for m in catalogue.all_metrics()}
    assert {m.component for m in names.values()} == {"operator", "trainer", "server"}
    assert names["acgs_trainer_epsilon_spent"].type == "gauge"
    assert names["acgs_server_requests_total"].labels == ("endpoint", "status_code", "model_name", "model_version")
    assert names["acgs_admission_duration_seconds"].type == "histogram"


def test_alerts_and_panels_read_only_real_metrics() -> None:
    """A rule or panel on a misspelt metric never fires and never draws: fail here instead."""
    known = {m.name for m in catalogue.all_metrics()}
    rules = (MONITORING / "prometheusrule.yaml").read_text()
    dashboard = (MONITORING / "dashboard.json").read_text()
    for source, text in (("prometheusrule.yaml", rules), ("dashboard.json", dashboard)):
        unknown = _referenced(text) - known
        assert not unknown, f"{source} reads metrics no component exposes: {sorted(unknown)}"
    alerts = {r["alert"] for g in _load("prometheusrule.yaml")["spec"]["groups"] for r in g["rules"]}
    assert alerts >= {"AcgsPrivacyBudgetNearlySpent", "AcgsProductionComplianceBelowGate", "AcgsAutomaticRollback",
                      "AcgsWebhookErrors", "AcgsWebhookSlow", "AcgsTrainingJobStalled", "AcgsFlywheelRunFailed"}
    tested = set(re.findall(r"alertname: (\w+)", (ROOT / "tests/monitoring/rules_test.yaml").read_text()))
    assert alerts <= tested, f"alerts without a promtool test: {sorted(alerts - tested)}"


def test_scrape_selectors_match_the_pods_the_operator_builds() -> None:
    settings = Settings()
    tj_spec = TrainingJobSpec.model_validate(TJ_SPEC)
    owner = Owner("TrainingJob", "cai-v1", "team-a", "uid-1")
    pod = tj_build.build_job(tj_spec, owner, settings)["spec"]["template"]
    trainer_monitor = _load("podmonitor-trainer.yaml")["spec"]
    assert trainer_monitor["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert {e["port"] for e in trainer_monitor["podMetricsEndpoints"]} <= ports
    assert any(r["sourceLabels"] == ["__meta_kubernetes_pod_label_acgs_io_training_job"]
               for r in trainer_monitor["podMetricsEndpoints"][0]["relabelings"])

    spec = DeploymentSpec.model_validate({"constitutionalHash": HASH, "model": {"versionRef": "cai-1-0-0"},
                                          "artifactPvc": "models"})
    mv = ModelVersionSpec.model_validate({
        "constitutionalHash": HASH, "modelName": "cai", "version": "1.0.0", "baseModel": "builtin:tiny-gpt",
        "artifact": {"uri": "pvc://models/cai/1.0.0", "digest": "sha256:" + "0" * 64}})
    owner = Owner("Deployment", "web", "team-a", "uid-2")
    server = dep_build.server_deployment(owner, spec, "blue", "cai-1-0-0", mv, 1, "server:test")["spec"]["template"]
    server_monitor = _load("podmonitor-server.yaml")["spec"]
    assert server_monitor["selector"]["matchLabels"].items() <= server["metadata"]["labels"].items()
    ports = {p["name"] for c in server["spec"]["containers"] for p in c.get("ports", [])}
    assert {e["port"] for e in server_monitor["podMetricsEndpoints"]} <= ports

    service = next(d for d in yaml.safe_load_all((ROOT / "manifests/base/operator.yaml").read_text())
                   if d["kind"] == "Service" and d["metadata"]["name"] == "acgs-operator-metrics")
    monitor = _load("servicemonitor-operator.yaml")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["endpoints"][0]["honorLabels"] is True  # the series' own `namespace` label wins


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_serving_metrics_follow_a_deployment() -> None:
    ns, name = "mon-test", "web"
    prod = {"metadata": {"name": "cai-1-0-0"}, "spec": {"stage": "production", "metrics": {"complianceScore": 0.93}}}
    metrics.observe_deployment(ns, name, 0.95, prod, [])
    labels = {"namespace": ns, "deployment": name}
    assert _value("acgs_deployment_min_compliance_score", **labels) == 0.95
    assert _value("acgs_deployment_active_compliance_score", **labels, model_version="cai-1-0-0",
                  stage="production") == 0.93
    assert _value("acgs_deployment_rollbacks_total", **labels, trigger="automatic") == 0  # there before the first

    newer = {"metadata": {"name": "cai-1-1-0"}, "spec": {"stage": "production", "metrics": {"complianceScore": 0.97}}}
    metrics.observe_deployment(ns, name, 0.95, newer, [
        {"action": "Promoted", "modelVersion": "cai-1-1-0"},
        {"action": "RolledBack", "modelVersion": "cai-1-2-0", "reason": "PostPromotionCheckFailed"},
        {"action": "RolledBack", "modelVersion": "cai-1-3-0", "reason": "Aborted"}])
    assert _value("acgs_deployment_active_compliance_score", **labels, model_version="cai-1-0-0",
                  stage="production") is None  # the old version's score must not keep alerting
    assert _value("acgs_deployment_active_compliance_score", **labels, model_version="cai-1-1-0",
                  stage="production") == 0.97
    assert _value("acgs_deployment_rollbacks_total", **labels, trigger="automatic") == 1
    assert _value("acgs_deployment_rollbacks_total", **labels, trigger="abort") == 1

    metrics.forget_deployment(ns, name)
    assert _value("acgs_deployment_min_compliance_score", **labels) is None
    assert _value("acgs_deployment_active_compliance_score", **labels, model_version="cai-1-1-0",
                  stage="production") is None


def test_flywheel_counters_start_at_zero() -> None:
    metrics.observe_flywheel_policy("mon-test", "cheaper")
    assert _value("acgs_flywheel_runs_total", namespace="mon-test", policy="cheaper", outcome="failed") == 0
    metrics.observe_flywheel_run("mon-test", "cheaper", succeeded=False)
    assert _value("acgs_flywheel_runs_total", namespace="mon-test", policy="cheaper", outcome="failed") == 1


def promtool() -> Path | None:
    """The promtool hack/build-promtool.sh builds (same cache as the control plane), or $ACGS_PROMTOOL."""
    if os.environ.get("ACGS_PROMTOOL"):
        return Path(os.environ["ACGS_PROMTOOL"])
    version = re.search(r'PROM_VERSION="\$\{PROM_VERSION:-(v[\d.]+)\}"',
                        (ROOT / "hack/build-promtool.sh").read_text()).group(1)
    cache = Path(os.environ.get("ACGS_CACHE", Path.home() / ".cache/acgs"))
    path = cache / "bin" / f"prometheus-{version}" / "promtool"
    return path if path.exists() else None


def _rules_dir(tmp_path: Path) -> Path:
    rule = _load("prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False, allow_unicode=True))
    shutil.copy(ROOT / "tests/monitoring/rules_test.yaml", tmp_path / "rules_test.yaml")
    return tmp_path


@pytest.fixture
def promtool_bin() -> Path:
    path = promtool()
    if path is None:
        pytest.skip("promtool is not built: run `make promtool` (hack/build-promtool.sh; CI builds it in .ci/run)")
    return path


def test_rules_are_valid(promtool_bin: Path, tmp_path: Path) -> None:
    rules = _rules_dir(tmp_path) / "rules.yaml"
    proc = subprocess.run([str(promtool_bin), "check", "rules", str(rules)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 8 rules found" in proc.stdout, proc.stdout


def test_rules_fire_on_bad_series_and_stay_quiet_on_good_ones(promtool_bin: Path, tmp_path: Path) -> None:
    directory = _rules_dir(tmp_path)
    proc = subprocess.run([str(promtool_bin), "test", "rules", "rules_test.yaml"], cwd=directory,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout, proc.stdout


@pytest.mark.parametrize("original,mutant,alert", [
    (">= 0.9", ">= 0.95", "AcgsPrivacyBudgetNearlySpent"),            # misses 91 %
    ('{stage="production"}', "", "AcgsProductionComplianceBelowGate"),  # would page for staging
    ('{trigger="automatic"}', "", "AcgsAutomaticRollback"),            # would page for a person's abort
    ('{outcome="failed"}', "", "AcgsFlywheelRunFailed"),               # would page for successes
    ("[15m]) == 0", "[5m]) == 0", "AcgsTrainingJobStalled"),           # too eager
])
def test_promtool_catches_a_wrong_rule(promtool_bin: Path, tmp_path: Path, original: str, mutant: str,
                                       alert: str) -> None:
    """The tests can fail: each plausible mistake in a rule breaks at least one expectation."""
    directory = _rules_dir(tmp_path)
    rules = directory / "rules.yaml"
    assert original in rules.read_text()
    rules.write_text(rules.read_text().replace(original, mutant, 1))
    proc = subprocess.run([str(promtool_bin), "test", "rules", "rules_test.yaml"], cwd=directory,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and f"alertname: {alert}" in proc.stdout + proc.stderr, proc.stdout


def test_dashboard_is_grafana_json() -> None:
    board = json.loads((MONITORING / "dashboard.json").read_text())
    assert board["uid"] == "acgs-overview"
    titles = {p["title"] for p in board["panels"]}
    assert {"Training progress", "ε spent vs target", "Served compliance vs gate", "Latency"} <= titles
    assert all(t["datasource"]["uid"] == "${datasource}" for p in board["panels"] for t in p.get("targets", []))


def test_trainer_serves_metrics_on_the_address_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a pod: the pod IP (ACGS_METRICS_HOST from the downward API), scraped over real HTTP."""
    import socket
    import urllib.request

    from acgs_contract.env import METRICS_HOST
    from acgs_trainer.reporting import TrainerMetrics

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(METRICS_HOST, "127.0.0.1")
    trainer = TrainerMetrics(port)
    trainer.epsilon_target.set(8)
    trainer.epsilon.set(7.5)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert "acgs_trainer_epsilon_spent 7.5" in text and "acgs_trainer_epsilon_target 8.0" in text
    pod = tj_build.build_job(TrainingJobSpec.model_validate(TJ_SPEC), Owner("TrainingJob", "a", "b", "c"), Settings())
    assert {"name": METRICS_HOST, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} \
        in pod["spec"]["template"]["spec"]["containers"][0]["env"]  # what the operator's pod spec sets
