"""acgs_monitoring: the metrics catalogue (docs/metrics.md) and the Grafana dashboard, both
generated from code: the catalogue from the components' real Prometheus registries, the dashboard
with grafana-foundation-sdk. `python -m acgs_monitoring [--check]` writes (or checks) both."""
