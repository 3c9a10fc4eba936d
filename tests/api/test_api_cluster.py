"""The acgs.io API on a real kube-apiserver: CRDs, kubectl UX, and admission as a user meets it."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT, wait_until
from acgs_contract.constitution import CONSTITUTIONAL_HASH

pytestmark = pytest.mark.cluster
DATA = Path(__file__).parent / "data"
HASH = CONSTITUTIONAL_HASH


class TestCrds:
    @pytest.mark.parametrize("crd", ["trainingjobs", "modelversions", "deployments", "flywheelpolicies"])
    def test_established(self, operator, crd):
        out = operator.kubectl("get", f"crd/{crd}.acgs.io", "-o",
                               "jsonpath={.status.conditions[?(@.type=='Established')].status}", check=True)
        assert out.stdout == "True"

    @pytest.mark.parametrize("field, text", [
        ("trainingjob.spec.privacy.targetEpsilon", "Privacy budget"),
        ("modelversion.spec.stage", "candidate, staging, production or archived"),
        ("deployments.acgs.io.spec.strategy.blueGreen.autoPromotionEnabled", "Promote the preview"),
        ("flywheelpolicy.spec.thresholds.minRecords", "Logged interactions needed"),
    ])
    def test_kubectl_explain_shows_descriptions(self, operator, field, text):
        # The apiserver publishes a new CRD's OpenAPI schema a few seconds after it is Established.
        out = wait_until(lambda: (o := operator.kubectl("explain", field)).returncode == 0 and o, 30,
                         f"kubectl explain {field}")
        assert text in out.stdout

    def test_short_names_resolve(self, operator, namespace):
        for short in ("tj", "mv", "mdeploy", "fwp"):
            operator.kubectl("get", short, "-n", namespace, check=True)

    def test_get_acgs_lists_all_four_kinds_with_phases(self, operator, namespace):
        operator.kubectl("apply", "-n", namespace, "-k", str(ROOT / "manifests/samples"), check=True)
        kinds = ("trainingjob", "modelversion", "deployment", "flywheelpolicy")

        def all_have_phase():
            out = operator.get_json("acgs", "-n", namespace)
            phased = {i["kind"].lower() for i in out["items"] if i.get("status", {}).get("phase")}
            return phased >= set(kinds)

        wait_until(all_have_phase)
        table = operator.kubectl("get", "acgs", "-n", namespace, check=True).stdout
        for kind in kinds:
            assert f"{kind}.acgs.io/" in table
        assert "PHASE" in table and "AGE" in table

    def test_initial_status_is_metav1_shaped(self, operator, namespace):
        operator.kubectl("apply", "-n", namespace, "-f", str(DATA / "good-trainingjob.yaml"), check=True)
        tj = wait_until(lambda: (o := operator.get_json("tj/good", "-n", namespace)).get("status") and o)
        status = tj["status"]
        assert status["observedGeneration"] == tj["metadata"]["generation"]
        assert {"type", "status", "reason", "message", "lastTransitionTime"} <= set(status["conditions"][0])


class TestKstatus:
    """kstatus conventions as `kubectl wait` reads them: the condition must be True AND written for
    the object's current generation."""

    def wait(self, operator, namespace, condition, resource):
        return operator.kubectl("wait", f"--for=condition={condition}", resource, "-n", namespace, "--timeout=30s")

    def test_a_flywheel_policy_is_ready(self, operator, namespace):
        operator.kubectl("apply", "-n", namespace, "-f", str(ROOT / "manifests/samples/flywheelpolicy.yaml"),
                         check=True)
        out = self.wait(operator, namespace, "Ready", "fwp/constitutional-ai")
        assert out.returncode == 0, out.stderr

    def test_an_unverifiable_model_version_is_stalled_and_stays_observed_after_a_stage_patch(
            self, operator, namespace):
        mv = yaml.safe_load((ROOT / "manifests/samples/modelversion.yaml").read_text())
        mv["spec"]["artifact"]["uri"] = "s3://bucket/constitutional-ai/1.0.0"  # the operator verifies pvc:// only
        operator.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(mv), check=True)
        name = f"mv/{mv['metadata']['name']}"
        out = self.wait(operator, namespace, "Stalled", name)
        assert out.returncode == 0, out.stderr
        operator.kubectl("patch", name, "-n", namespace, "--type=merge", "-p", '{"spec":{"stage":"staging"}}',
                         check=True)
        out = self.wait(operator, namespace, "Stalled", name)  # generation 2: only a fresh condition counts
        assert out.returncode == 0, out.stderr
        got = operator.get_json(name, "-n", namespace)
        assert got["metadata"]["generation"] == 2 and got["status"]["observedGeneration"] == 2
        states = {c["type"]: c["status"] for c in got["status"]["conditions"]}
        assert (states["Ready"], states["Reconciling"], states["Stalled"]) == ("False", "False", "True")


class TestAdmission:
    """Real `kubectl apply` of good and bad YAML: the exit code and the message a user sees."""

    @pytest.mark.parametrize("file, expected", [
        ("wrong-hash.yaml", ["denied the request", "'0123456789abcdef'", f"expected '{HASH}'"]),
        ("missing-hash.yaml", ["spec.constitutionalHash", "Required value"]),
        ("bad-semver.yaml", ["spec.version", "semantic version"]),
        ("epsilon-50.yaml", ["spec.privacy.targetEpsilon", "at most 8"]),
        ("negative-replicas.yaml", ["spec.replicas", "greater than or equal to 0"]),
        ("unknown-field.yaml", ["unknown field", "spec.learningRate"]),
        ("malformed.yaml", ["error converting YAML to JSON", "line 8"]),
        # the operator's policy (ACGS_ALLOWED_IMAGES, no allow-all selectors, no key-less tolerations)
        ("image-not-allowed.yaml", ["spec.image", "'docker.io/someone/miner:latest'", "image allowlist",
                                    "ACGS_ALLOWED_IMAGES"]),
        ("toleration-without-key.yaml", ["spec.resources.tolerations[0].key: required"]),
        ("allow-all-clients.yaml", ["spec.image", "'ghcr.io/evil/server:1'",
                                    "spec.network.allowedClients[0].podSelector: empty selects every pod",
                                    "spec.network.allowedClients[0].namespaceSelector: empty"]),
    ])
    def test_bad_input_is_refused_with_a_clear_message(self, operator, namespace, file, expected):
        out = operator.kubectl("apply", "-n", namespace, "-f", str(DATA / file))
        assert out.returncode != 0
        for text in expected:
            assert text in out.stderr, out.stderr
        assert operator.get_json("acgs", "-n", namespace)["items"] == []  # nothing half-made

    def test_good_object_is_admitted(self, operator, namespace):
        out = operator.kubectl("apply", "-n", namespace, "-f", str(DATA / "good-trainingjob.yaml"))
        assert out.returncode == 0, out.stderr
        assert "trainingjob.acgs.io/good created" in out.stdout

    def test_model_version_immutable_except_stage(self, operator, namespace):
        operator.kubectl("apply", "-n", namespace, "-f", str(ROOT / "manifests/samples/modelversion.yaml"), check=True)
        name = "mv/constitutional-ai-1-0-0"
        out = operator.kubectl("patch", name, "-n", namespace, "--type=merge", "-p", '{"spec":{"version":"2.0.0"}}')
        assert out.returncode != 0 and "immutable except stage" in out.stderr
        out = operator.kubectl("patch", name, "-n", namespace, "--type=merge", "-p", '{"spec":{"stage":"staging"}}')
        assert out.returncode == 0, out.stderr
        assert operator.get_json(name, "-n", namespace)["spec"]["stage"] == "staging"

    def test_dry_run_is_validated_too(self, operator, namespace):
        out = operator.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(DATA / "wrong-hash.yaml"))
        assert out.returncode != 0 and "denied the request" in out.stderr

    def test_writes_are_refused_while_the_operator_is_down(self, operator, namespace):
        import install

        install.stop_pidfile(install.PIDS / "operator.pid")
        try:
            out = operator.kubectl("apply", "-n", namespace, "-f", str(DATA / "good-trainingjob.yaml"))
            assert out.returncode != 0
            assert "failed calling webhook" in out.stderr
            assert operator.get_json("acgs", "-n", namespace)["items"] == []
        finally:
            install.start_operator()


class TestOperatorEndpoints:
    def test_liveness(self, operator):
        with urllib.request.urlopen("http://127.0.0.1:8081/healthz", timeout=5) as r:
            assert r.status == 200

    def test_admission_metrics(self, operator, namespace):
        operator.kubectl("apply", "-n", namespace, "-f", str(DATA / "wrong-hash.yaml"))
        with urllib.request.urlopen("http://127.0.0.1:8082/metrics", timeout=5) as r:
            text = r.read().decode()
        assert 'acgs_admission_requests_total{kind="TrainingJob",operation="CREATE",result="rejected"}' in text
        assert 'acgs_admission_duration_seconds_bucket{kind="TrainingJob"' in text


class TestManifests:
    def test_kustomize_base_applies_with_server_dry_run(self, operator):
        # A server dry run cannot create the namespace its namespaced objects go into; create it for real.
        operator.kubectl("apply", "-f", str(ROOT / "manifests/base/namespace.yaml"), check=True)
        out = operator.kubectl("apply", "-k", str(ROOT / "manifests"), "--dry-run=server")
        assert out.returncode == 0, out.stderr
        for obj in ("customresourcedefinition.apiextensions.k8s.io/trainingjobs.acgs.io",
                    "deployment.apps/acgs-operator", "validatingwebhookconfiguration.admissionregistration.k8s.io/"):
            assert obj in out.stdout
