"""The ACGS Grafana dashboard, built with grafana-foundation-sdk (Grafana's own typed builders), so
panels are checked code instead of hand-edited JSON. Committed as manifests/monitoring/dashboard.json;
`python -m acgs_monitoring --check` fails when the file differs from what this module builds.

Every query reads a metric listed in docs/metrics.md (tests/unit/test_monitoring.py checks it)."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DataSourceRef

UID = "acgs-overview"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
NS = 'namespace=~"$namespace"'
# Series whose `namespace` is the namespace of the ACGS object (the operator's ServiceMonitor keeps
# the operator's own labels: honorLabels).
NAMESPACED = ("acgs_trainer_step", "acgs_server_ready", "acgs_deployment_min_compliance_score")


def _query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def _series(title: str, description: str, unit: str, *queries: prometheus.Dataquery,
            width: int = 12, min_max: tuple[float, float] | None = None) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).unit(unit).span(width).height(8)
             .datasource(DATASOURCE)
             .legend(common_b.VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.TABLE)
                     .placement(common.LegendPlacement.BOTTOM).calcs(["lastNotNull"])))
    if min_max:
        panel = panel.min(min_max[0]).max(min_max[1])
    for i, query in enumerate(queries):
        panel = panel.with_target(query.ref_id(chr(ord("A") + i)))
    return panel


def _stat(title: str, description: str, expr: str, unit: str = "short", width: int = 6) -> stat.Panel:
    return (stat.Panel().title(title).description(description).unit(unit).span(width).height(4)
            .datasource(DATASOURCE).with_target(_query(expr, "")))


def build() -> dict[str, Any]:
    board = (
        dash.Dashboard("ACGS: training, versions, rollouts and serving")
        .uid(UID).tags(["acgs"]).refresh("30s").time("now-6h", "now").timezone("browser")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(dash.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(dash.QueryVariable("namespace").label("Namespace").datasource(DATASOURCE)
                       .query(f"label_values({{__name__=~\"{'|'.join(NAMESPACED)}\"}}, namespace)")
                       .multi(True).include_all(True))
        .with_row(dash.Row("Training and privacy budget"))
        .with_panel(_series(
            "Training progress", "Optimizer steps done / planned, per training pod.", "percentunit",
            _query(f"acgs_trainer_step{{{NS}}} / acgs_trainer_total_steps{{{NS}}}", "{{namespace}}/{{pod}}"),
            min_max=(0, 1)))
        .with_panel(_series(
            "ε spent vs target", "Privacy budget spent (ε) against the job's target; AcgsPrivacyBudgetNearlySpent "
            "fires at 90 %.", "none",
            _query(f"acgs_trainer_epsilon_spent{{{NS}}}", "spent {{pod}}"),
            _query(f"acgs_trainer_epsilon_target{{{NS}}}", "target {{pod}}"),
            _query(f"0.9 * acgs_trainer_epsilon_target{{{NS}}}", "90 % {{pod}}")))
        .with_panel(_series("Training loss", "Mean loss over the log interval.", "none",
                            _query(f"acgs_trainer_loss{{{NS}}}", "{{pod}}"), width=12))
        .with_panel(_series("Evaluation", "Evaluation metrics the trainer reports (accuracy, compliance …).",
                            "none", _query(f'acgs_trainer_eval{{{NS}}}', "{{pod}} {{metric}}"), width=12))
        .with_row(dash.Row("Versions and rollouts"))
        .with_panel(_series(
            "Served compliance vs gate", "complianceScore of the ModelVersion each Deployment serves, and "
            "its minComplianceScore gate.", "percentunit",
            _query(f"acgs_deployment_active_compliance_score{{{NS}}}",
                   "{{deployment}} {{model_version}} ({{stage}})"),
            _query(f"acgs_deployment_min_compliance_score{{{NS}}}", "gate {{deployment}}"), min_max=(0, 1)))
        .with_panel(_series(
            "Rollbacks", "Rollbacks per hour by trigger (automatic, or abort by a person).", "short",
            _query(f"sum by (namespace, deployment, trigger) (increase(acgs_deployment_rollbacks_total{{{NS}}}[1h]))",
                   "{{deployment}} {{trigger}}")))
        .with_panel(_stat("Rollbacks (24h)", "Automatic rollbacks (not by acgs.io/abort).",
                          f'sum(increase(acgs_deployment_rollbacks_total{{trigger="automatic",{NS}}}[24h]))'
                          ' or vector(0)'))
        .with_panel(_stat("Flywheel runs failed (24h)", "FlywheelPolicy runs that failed.",
                          f'sum(increase(acgs_flywheel_runs_total{{outcome="failed",{NS}}}[24h])) or vector(0)'))
        .with_panel(_stat("Servers ready", "Model server pods with a verified, loaded model.",
                          f"sum(acgs_server_ready{{{NS}}})"))
        .with_panel(_stat("Interactions dropped (1h)", "Interaction records the servers could not log.",
                          f"sum(increase(acgs_server_interactions_dropped_total{{{NS}}}[1h])) or vector(0)"))
        .with_row(dash.Row("Serving"))
        .with_panel(_series(
            "Request rate", "Answers per second by status code.", "reqps",
            _query(f"sum by (namespace, status_code) (rate(acgs_server_requests_total{{{NS}}}[5m]))",
                   "{{namespace}} {{status_code}}"), width=8))
        .with_panel(_series(
            "Latency", "p50 and p99 request latency per model version.", "s",
            _query(f"histogram_quantile(0.5, sum by (le, model_version) "
                   f"(rate(acgs_server_request_latency_seconds_bucket{{{NS}}}[5m])))", "p50 {{model_version}}"),
            _query(f"histogram_quantile(0.99, sum by (le, model_version) "
                   f"(rate(acgs_server_request_latency_seconds_bucket{{{NS}}}[5m])))", "p99 {{model_version}}"),
            width=8))
        .with_panel(_series("Queue depth", "Requests waiting for a batch slot.", "short",
                            _query(f"acgs_server_queue_depth{{{NS}}}", "{{pod}}"), width=8))
        .with_row(dash.Row("Operator"))
        .with_panel(_series(
            "Admission reviews", "Webhook answers per second by result (error: the webhook failed).", "reqps",
            _query("sum by (kind, result) (rate(acgs_admission_requests_total[5m]))", "{{kind}} {{result}}")))
        .with_panel(_series(
            "Admission latency p99", "Time to validate one review, p99 per kind.", "s",
            _query("histogram_quantile(0.99, sum by (le, kind) (rate(acgs_admission_duration_seconds_bucket[5m])))",
                   "{{kind}}")))
        .with_panel(_series(
            "Reconciles", "Reconciles per second by kind and outcome (the phase each one left).", "ops",
            _query("sum by (kind, outcome) (rate(acgs_reconcile_total[5m]))", "{{kind}} {{outcome}}"), width=24))
    )
    built: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return built


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"
