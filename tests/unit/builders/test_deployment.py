"""Deployment (acgs.io) builders and ModelVersion selection: pure functions, no cluster."""

from __future__ import annotations

from typing import Any

import pytest

from acgs_operator.api.deployment import DeploymentSpec
from acgs_operator.api.modelversion import ModelVersionSpec
from acgs_operator.artifacts import UnsupportedArtifact
from acgs_contract.result import VerifyResult

from acgs_operator.builders import deployment as b
from acgs_operator.builders.common import Owner
from acgs_operator.selection import resolve_desired
from acgs_operator.semver import sort_key as semver_key

from acgs_operator.api.deployment import PromotionGates
from acgs_operator.api.modelversion import Metrics
from acgs_operator.builders import modelversion as mvb
from acgs_operator.rollout import gate_failures
from acgs_contract.constitution import CONSTITUTIONAL_HASH

HASH = CONSTITUTIONAL_HASH
DIGEST = "sha256:" + "ab" * 32
OWNER = Owner(kind="Deployment", name="cai", namespace="team-a", uid="uid-1")


def make_spec(**overrides: Any) -> DeploymentSpec:
    spec: dict[str, Any] = {"constitutionalHash": HASH, "model": {"versionRef": "cai-1-0-0"}, "port": 8080}
    spec.update(overrides)
    return DeploymentSpec.model_validate(spec)


def make_mv(uri: str = "pvc://artifacts/cai/1.0.0/artifact", **overrides: Any) -> ModelVersionSpec:
    mv: dict[str, Any] = {"constitutionalHash": HASH, "modelName": "cai", "version": "1.0.0",
                          "artifact": {"uri": uri, "digest": DIGEST}, "baseModel": "builtin:tiny-llama"}
    mv.update(overrides)
    return ModelVersionSpec.model_validate(mv)


def container(dep: dict[str, Any]) -> dict[str, Any]:
    return dep["spec"]["template"]["spec"]["containers"][0]


def env(dep: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(dep)["env"]}


class TestArtifactLocation:
    @pytest.mark.parametrize("uri,pvc,expected", [
        ("pvc://artifacts/cai/1.0.0/artifact", None, ("artifacts", "cai/1.0.0/artifact")),
        ("pvc://artifacts/a/", "artifacts", ("artifacts", "a")),
    ])
    def test_valid(self, uri: str, pvc: str | None, expected: tuple[str, str]) -> None:
        assert b.artifact_location(uri, pvc) == expected

    @pytest.mark.parametrize("uri,pvc,fragment", [
        ("s3://bucket/a", None, "expected pvc://"),
        ("pvc://artifacts", None, "expected pvc://<claim>/<path>"),
        ("pvc://artifacts/../etc", None, "without '..'"),
        ("pvc://other/a", "artifacts", "spec.artifactPvc allows only 'artifacts'"),
    ])
    def test_refused_with_the_uri_named(self, uri: str, pvc: str | None, fragment: str) -> None:
        with pytest.raises(UnsupportedArtifact, match=fragment.replace("(", r"\(").replace(")", r"\)")) as info:
            b.artifact_location(uri, pvc)
        assert uri in str(info.value)


class TestServerDeployment:
    @pytest.mark.parametrize("color", ["blue", "green"])
    def test_one_color_serves_the_model_version(self, color: str) -> None:
        dep = b.server_deployment(OWNER, make_spec(replicas=3), color, "cai-1-0-0", make_mv(), 2, "server:1")
        assert dep["metadata"]["name"] == f"cai-{color}"
        assert dep["spec"]["replicas"] == 2
        assert dep["spec"]["selector"]["matchLabels"][b.LABEL_COLOR] == color
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert labels[b.LABEL_COLOR] == color and labels[b.LABEL_MODEL_VERSION] == "cai-1-0-0"
        assert dep["spec"]["template"]["metadata"]["annotations"][b.ANNOTATION_DIGEST] == DIGEST
        assert dep["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        c = container(dep)
        assert c["command"] == ["acgs-serve"]
        assert c["args"] == ["--artifact", "/artifacts", "--port", "8080"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert c["livenessProbe"]["httpGet"]["path"] == "/health"

    def test_server_verifies_digest_and_hash_and_binds_the_pod_ip(self) -> None:
        e = env(b.server_deployment(OWNER, make_spec(), "blue", "cai-1-0-0", make_mv(), 1, "server:1"))
        assert e["ACGS_EXPECTED_DIGEST"] == DIGEST
        assert e["ACGS_CONSTITUTIONAL_HASH"] == HASH
        assert e["ACGS_HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        assert e["ACGS_MODEL_VERSION"] == "1.0.0"

    def test_restricted_security_and_read_only_artifact(self) -> None:
        dep = b.server_deployment(OWNER, make_spec(), "blue", "cai-1-0-0", make_mv(), 1, "server:1")
        pod = dep["spec"]["template"]["spec"]
        sc = container(dep)["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert sc["capabilities"] == {"drop": ["ALL"]} and pod["securityContext"]["runAsNonRoot"]
        mounts = {m["mountPath"]: m for m in container(dep)["volumeMounts"]}
        # only this artifact's directory of the shared claim, read-only
        assert mounts["/artifacts"]["readOnly"] and mounts["/artifacts"]["subPath"] == "cai/1.0.0/artifact"
        assert "/tmp" in mounts
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["artifacts"]["persistentVolumeClaim"] == {"claimName": "artifacts", "readOnly": True}
        assert pod["automountServiceAccountToken"] is False

    @pytest.mark.parametrize("pvc,expected", [(None, "emptyDir"), ("logs", "persistentVolumeClaim")])
    def test_interaction_log_volume(self, pvc: str | None, expected: str) -> None:
        dep = b.server_deployment(OWNER, make_spec(interactionLogPvc=pvc), "blue", "v", make_mv(), 1, "s")
        volume = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "interactions")
        assert expected in volume

    @pytest.mark.parametrize("gpus", [0, 1])
    def test_resources_placement_and_device(self, gpus: int) -> None:
        spec = make_spec(resources={"cpu": "2", "memory": "3Gi", "gpus": gpus,
                                    "nodeSelector": {"acgs.io/local-runner": "true"},
                                    "tolerations": [{"key": "acgs.io/local-runner", "operator": "Exists"}]})
        dep = b.server_deployment(OWNER, spec, "green", "v", make_mv(), 1, "s")
        limits = container(dep)["resources"]["limits"]
        assert limits["cpu"] == "2" and limits["memory"] == "3Gi"
        assert ("nvidia.com/gpu" in limits) == bool(gpus)
        assert env(dep)["ACGS_DEVICE"] == ("cuda" if gpus else "cpu")
        pod = dep["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"acgs.io/local-runner": "true"}
        assert pod["tolerations"] == [{"key": "acgs.io/local-runner", "operator": "Exists"}]

    def test_unsupported_artifact_is_refused(self) -> None:
        with pytest.raises(UnsupportedArtifact):
            b.server_deployment(OWNER, make_spec(), "blue", "v", make_mv(uri="s3://bucket/x"), 1, "s")


class TestServices:
    @pytest.mark.parametrize("builder,name,role", [
        (b.active_service, "cai", "active"), (b.preview_service, "cai-preview", "preview")])
    @pytest.mark.parametrize("color,expected", [("blue", "blue"), ("green", "green"), (None, b.NO_COLOR)])
    def test_selector_follows_the_color(self, builder: Any, name: str, role: str, color: str | None,
                                        expected: str) -> None:
        svc = builder(OWNER, make_spec(), color)
        assert svc["metadata"]["name"] == name
        assert svc["metadata"]["labels"]["acgs.io/service-role"] == role
        assert svc["spec"]["selector"] == b.color_selector("cai", expected)
        assert svc["spec"]["ports"][0]["targetPort"] == "http"


class TestNetworkPolicy:
    @pytest.mark.parametrize("clients,metrics_ns,rules", [
        ([], None, 1),
        ([{"podSelector": {"app": "gw"}}], "monitoring", 3),
        ([{"podSelector": {"app": "gw"}, "namespaceSelector": {"team": "a"}}], "monitoring", 3),
    ])
    def test_ingress_only_from_listed_peers_egress_dns_only(self, clients: list[dict[str, Any]],
                                                             metrics_ns: str | None, rules: int) -> None:
        spec = make_spec(network={"allowedClients": clients, "metricsNamespace": metrics_ns})
        policy = b.network_policy(OWNER, spec, "acgs-system", {"app.kubernetes.io/name": "acgs-operator"})["spec"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        assert policy["podSelector"]["matchLabels"] == b.server_selector("cai")
        assert len(policy["ingress"]) == rules
        scraper = [r for r in policy["ingress"] if r["from"] == [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "monitoring"}}}]]
        assert len(scraper) == (1 if metrics_ns else 0)
        # the scraper reaches the metrics port only; clients and the operator the predict port only
        assert all(rule["ports"] == [{"protocol": "TCP", "port": 9090}] for rule in scraper)
        assert all(rule["ports"] == [{"protocol": "TCP", "port": 8080}] for rule in policy["ingress"]
                   if rule not in scraper)
        operator_peer = policy["ingress"][-1]["from"][0]
        assert operator_peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "acgs-system"}
        if clients:
            peer = policy["ingress"][0]["from"][0]
            assert peer["podSelector"]["matchLabels"] == {"app": "gw"}
            assert ("namespaceSelector" in peer) == ("namespaceSelector" in clients[0])
        assert [p["port"] for e in policy["egress"] for p in e["ports"]] == [53, 53]


    def test_metrics_port_is_its_own_and_must_differ_from_the_predict_port(self) -> None:
        c = container(b.server_deployment(OWNER, make_spec(metricsPort=9100), "blue", "v", make_mv(), 1, "s"))
        assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080, "metrics": 9100}
        assert {e["name"]: e.get("value") for e in c["env"]}["ACGS_METRICS_PORT"] == "9100"
        with pytest.raises(ValueError, match="metricsPort 8080 equals port"):
            make_spec(metricsPort=8080)


class TestNoGitOpsLabelsOnChildren:
    def test_children_carry_no_argocd_labels(self) -> None:
        spec = make_spec()
        children = [b.server_deployment(OWNER, spec, "blue", "v", make_mv(), 1, "s"),
                    b.active_service(OWNER, spec, "blue"), b.network_policy(OWNER, spec, "x", {"a": "b"})]
        for child in children:
            assert not any(k.startswith(("argocd.argoproj.io/", "app.kubernetes.io/instance"))
                           for k in child["metadata"]["labels"])


def mv_obj(name: str, version: str, stage: str, phase: str | None, created: str = "2026-01-01T00:00:00Z",
           ) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created},
            "spec": {**make_mv(version=version).to_api(), "stage": stage},
            "status": {"phase": phase} if phase else {}}


class TestSelection:
    @pytest.mark.parametrize("older,newer", [("1.0.0", "1.0.1"), ("1.9.0", "1.10.0"), ("2.0.0-rc.1", "2.0.0"),
                                             ("2.0.0-alpha", "2.0.0-beta")])
    def test_semver_order(self, older: str, newer: str) -> None:
        assert semver_key(older) < semver_key(newer)

    @pytest.mark.parametrize("require_verified,expected", [(True, "cai-1-1-0"), (False, "cai-1-2-0")])
    def test_selector_picks_newest_usable_in_stage(self, require_verified: bool, expected: str) -> None:
        mvs = [mv_obj("cai-1-0-0", "1.0.0", "production", "Ready"),
               mv_obj("cai-1-1-0", "1.1.0", "production", "Ready"),
               mv_obj("cai-1-2-0", "1.2.0", "production", "Pending"),
               mv_obj("cai-1-3-0", "1.3.0", "production", "Invalid"),
               mv_obj("cai-2-0-0", "2.0.0", "staging", "Ready")]
        spec = make_spec(model={"selector": {"modelName": "cai", "stage": "production"}})
        desired = resolve_desired(spec, mvs, require_verified)
        assert desired.target is not None and desired.target.name == expected

    def test_missing_version_ref_says_so(self) -> None:
        desired = resolve_desired(make_spec(), [], True)
        assert desired.target is None and desired.reason == "ModelVersionNotFound"
        assert "cai-1-0-0" in desired.message

    @pytest.mark.parametrize("change,reason", [
        ({"constitutionalHash": "0000000000000000"}, "ConstitutionalHashMismatch"),
        ({"artifact": {"uri": "s3://b/x", "digest": DIGEST}}, "UnsupportedArtifactUri"),
    ])
    def test_unservable_versions_are_marked_invalid(self, change: dict[str, Any], reason: str) -> None:
        mv = mv_obj("cai-1-0-0", "1.0.0", "production", "Ready")
        mv["spec"].update(change)
        desired = resolve_desired(make_spec(), [mv], True)
        assert desired.target is not None and desired.target.invalid is not None
        assert desired.target.invalid[0] == reason


class TestGatesReadVerifiedMetrics:
    def test_target_metrics_come_from_status_never_from_spec(self) -> None:
        mv = mv_obj("cai-1-0-0", "1.0.0", "production", "Ready")
        mv["spec"]["metrics"] = {"complianceScore": 0.99, "accuracy": 0.99}  # what the spec claims
        desired = resolve_desired(make_spec(), [mv], True)
        assert desired.target is not None and desired.target.metrics == {}  # nothing verified yet
        mv["status"]["verifiedMetrics"] = {"complianceScore": 0.5, "accuracy": 0.6}
        target = resolve_desired(make_spec(), [mv], True).target
        assert target is not None and target.metrics == {"complianceScore": 0.5, "accuracy": 0.6}
        failures = gate_failures(target.metrics, PromotionGates(minComplianceScore=0.9))
        assert failures and "0.5000" in failures[0]


class TestMetricMismatches:
    def test_declared_figures_must_equal_the_artifacts(self) -> None:
        verified = mvb.verified_metrics(VerifyResult(phase="Succeeded", reason="Verified", metrics={
            "accuracy": 0.61234, "complianceScore": 0.5}, epsilon=2.00001, delta=1e-5))
        assert mvb.metric_mismatches(Metrics(accuracy=0.6123, epsilon=2.0001), verified) == []
        assert mvb.metric_mismatches(Metrics(), verified) == []  # declaring nothing is not a claim
        problems = mvb.metric_mismatches(Metrics(complianceScore=0.99, epsilon=1.0, evalLoss=0.1), verified)
        assert problems == ["spec.metrics.complianceScore is 0.99 but the artifact records 0.5",
                            "spec.metrics.evalLoss is 0.1 but the artifact records none",
                            "spec.metrics.epsilon is 1.0 but the artifact records 2.0001"]

    def test_a_trained_versions_own_figures_match_what_verify_reads_from_its_manifest(self) -> None:
        """The ModelVersion the operator writes from a trainer's result (base score included)
        agrees with the figures `acgs-train verify` reads back from the same manifest."""
        from acgs_contract.manifest import Manifest
        from acgs_contract.result import TrainerResult
        from acgs_trainer.verify_cli import verified_figures

        metrics = {"accuracy": 0.91, "complianceScore": 0.97, "evalLoss": 0.3}
        base = {"complianceScore": 0.9, "accuracy": 0.8}
        manifest = Manifest.model_validate({
            "digest": "sha256:" + "0" * 64, "files": [], "constitutionalHash": "cdd01ef066bc6cf2",
            "metrics": metrics, "baseMetrics": base,
            "privacy": {"enabled": True, "epsilonSpent": 7.44, "targetDelta": 1e-5}})
        verified = mvb.verified_metrics(VerifyResult(phase="Succeeded", reason="Verified",
                                                     **verified_figures(manifest)))
        trained = TrainerResult.model_validate({"phase": "Succeeded", "reason": "Completed", "exitCode": 0,
                                                "metrics": metrics, "baseMetrics": base,
                                                "epsilon": 7.44, "delta": 1e-5})
        declared = mvb._metrics(trained)
        assert declared.base_compliance_score == 0.9 and verified.base_accuracy == 0.8
        assert mvb.metric_mismatches(declared, verified) == []


class TestSmokeRequest:
    def test_the_operators_smoke_request_is_valid_for_the_server(self) -> None:
        """The pre-promotion smoke predictions must pass the server's own request schema."""
        schemas = pytest.importorskip("acgs_server.schemas")
        from acgs_operator.probes import SMOKE_PATH, SMOKE_SCENARIO

        parsed = schemas.parse_request(SMOKE_PATH,
                                       {"scenario": SMOKE_SCENARIO, "constitutional_hash": HASH}, HASH)
        assert parsed.dataset_type == "constitutional_ai"
