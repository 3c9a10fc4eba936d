"""Scaling and disruption of a Deployment (acgs.io): the HPA and PDB of the active color, topology
spread, and the replica count the rollout uses under autoscaling. Pure functions, no cluster."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from acgs_operator.builders import deployment as b
from acgs_operator.builders import scaling

from .test_deployment import OWNER, make_mv, make_spec

CPU = {"minReplicas": 2, "maxReplicas": 6, "target": 70}


class TestAutoscalingSpec:
    def test_min_above_max_is_refused_naming_both_fields(self):
        with pytest.raises(ValidationError, match=r"minReplicas 5 is above autoscaling.maxReplicas 2"):
            make_spec(autoscaling={"minReplicas": 5, "maxReplicas": 2, "target": 50})

    @pytest.mark.parametrize("field,value", [("maxReplicas", 0), ("minReplicas", 0), ("target", 0),
                                             ("target", 1001), ("metric", "memory")])
    def test_out_of_range_values_name_their_field(self, field: str, value: Any):
        with pytest.raises(ValidationError, match=field):
            make_spec(autoscaling={**CPU, field: value})

    def test_the_crd_checks_the_bounds_too(self):
        from pathlib import Path

        import yaml

        crd = yaml.safe_load((Path(__file__).resolve().parents[3] / "crds/acgs.io_deployments.yaml").read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        auto = schema["properties"]["spec"]["properties"]["autoscaling"]
        assert auto["x-kubernetes-validations"][0]["rule"] == "self.minReplicas <= self.maxReplicas"
        assert auto["required"] == ["maxReplicas", "target"]


class TestHorizontalPodAutoscaler:
    @pytest.mark.parametrize("active", ["blue", "green"])
    def test_targets_the_active_colors_apps_deployment(self, active: str):
        hpa = scaling.horizontal_pod_autoscaler(OWNER, make_spec(autoscaling=CPU), active)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": b.deployment_name("cai", active)}
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
        assert hpa["metadata"]["name"] == "cai-server"  # one name: a switch retargets, never adds one
        assert hpa["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid

    def test_cpu_target_is_a_utilisation_of_the_request(self):
        (metric,) = scaling.horizontal_pod_autoscaler(OWNER, make_spec(autoscaling=CPU), "blue")["spec"]["metrics"]
        assert metric == {"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 70}}}

    def test_queue_depth_target_is_the_servers_own_gauge_per_pod(self):
        spec = make_spec(autoscaling={**CPU, "metric": "queueDepth", "target": 4})
        (metric,) = scaling.horizontal_pod_autoscaler(OWNER, spec, "green")["spec"]["metrics"]
        assert metric["type"] == "Pods"
        assert metric["pods"] == {"metric": {"name": "acgs_server_queue_depth"},
                                  "target": {"type": "AverageValue", "averageValue": "4"}}
        from acgs_server.metrics import ServerMetrics

        assert "acgs_server_queue_depth" in {m.name for m in ServerMetrics().registry.collect()}


class TestActiveReplicas:
    @pytest.mark.parametrize("current,expected", [(None, 2), (0, 2), (1, 2), (4, 4), (9, 6)])
    def test_follows_what_the_hpa_set_within_bounds(self, current: int | None, expected: int):
        assert scaling.active_replicas(make_spec(autoscaling=CPU), current) == expected

    def test_without_autoscaling_spec_replicas_rule(self):
        assert scaling.active_replicas(make_spec(replicas=3), 7) == 3


class TestDisruptionAndSpread:
    @pytest.mark.parametrize("active", ["blue", "green"])
    def test_pdb_covers_the_active_color_only_and_never_blocks_a_drain_of_one_pod(self, active: str):
        pdb = scaling.pod_disruption_budget(OWNER, make_spec(), active)
        assert pdb["apiVersion"] == "policy/v1"
        assert pdb["spec"]["selector"]["matchLabels"] == b.color_selector("cai", active)
        assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"

    def test_server_pods_spread_over_nodes_and_zones_without_blocking_scheduling(self):
        dep = b.server_deployment(OWNER, make_spec(), "green", "cai-1-0-0", make_mv(), 2, "img")
        spread = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert [c["topologyKey"] for c in spread] == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        for constraint in spread:
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
            assert constraint["labelSelector"]["matchLabels"].items() <= pod_labels.items()
            assert constraint["labelSelector"]["matchLabels"]["acgs.io/color"] == "green"

    def test_only_the_autoscaled_color_carries_the_marker(self):
        spec = make_spec(autoscaling=CPU)
        marked = b.server_deployment(OWNER, spec, "blue", "cai-1-0-0", make_mv(), 2, "img", autoscaled=True)
        plain = b.server_deployment(OWNER, spec, "green", "cai-1-0-0", make_mv(), 2, "img")
        assert marked["metadata"]["annotations"][b.ANNOTATION_AUTOSCALED] == "true"
        assert b.ANNOTATION_AUTOSCALED not in plain["metadata"]["annotations"]
        assert b.ANNOTATION_AUTOSCALED not in marked["spec"]["template"]["metadata"]["annotations"]  # no pod restart
