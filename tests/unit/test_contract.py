"""The shared contract: the pin that binds a constitutional hash to content, the manifest digest
that seals every field, paths that stay inside an artifact, and the wire formats' rules."""

from __future__ import annotations

import json

import pytest
import yaml
from acgs_contract import constitution as c
from acgs_contract import env, timefmt
from acgs_contract.manifest import (FileEntry, Manifest, manifest_digest, parse_manifest_bytes,
                                    relative_path, seal)
from acgs_contract.progress import ProgressReport
from acgs_contract.result import (MAX_TERMINATION_MESSAGE_BYTES, TrainerResult,
                                  parse_trainer_result, termination_message)

from acgs_operator.builders.common import Owner
from acgs_operator.config import Settings


class TestConstitutionPin:
    def test_the_default_constitution_is_the_content_pinned_to_its_hash(self) -> None:
        document = yaml.safe_load(c.default_text())
        assert document["constitutional_hash"] == c.CONSTITUTIONAL_HASH
        assert c.content_digest(document) == c.PINNED_CONTENT_DIGESTS[c.CONSTITUTIONAL_HASH]

    def test_layout_is_not_content_but_every_rule_is(self) -> None:
        document = yaml.safe_load(c.default_text())
        reordered = dict(reversed(list(document.items())))
        assert c.content_digest(reordered) == c.content_digest(document)
        assert c.content_digest_of_text("# note\n" + c.default_text()) == c.content_digest(document)
        relaxed = json.loads(json.dumps(document))
        relaxed["rules"][0]["decision"] = "APPROVE"
        assert c.content_digest(relaxed) != c.content_digest(document)

    def test_check_names_both_digests(self) -> None:
        with pytest.raises(c.ConstitutionDigestMismatch) as caught:
            c.check_content(c.CONSTITUTIONAL_HASH, "sha256:" + "1" * 64, origin="cm")
        assert caught.value.expected == c.PINNED_CONTENT_DIGESTS[c.CONSTITUTIONAL_HASH]
        assert "sha256:" + "1" * 64 in str(caught.value) and str(caught.value.expected) in str(caught.value)

    def test_an_unpinned_hash_needs_a_configured_digest_and_a_pinned_one_cannot_be_re_pinned(self) -> None:
        with pytest.raises(ValueError, match="no content digest is pinned"):
            c.pinned_digest("0123456789abcdef")
        assert c.pinned_digest("0123456789abcdef", "sha256:" + "2" * 64) == "sha256:" + "2" * 64
        with pytest.raises(ValueError, match="differs from the pinned"):
            c.pinned_digest(c.CONSTITUTIONAL_HASH, "sha256:" + "2" * 64)

    def test_the_operator_refuses_to_start_with_other_rules_under_the_hash(self, tmp_path) -> None:
        relaxed = tmp_path / "c.yaml"
        relaxed.write_text(c.default_text().replace("default_decision: APPROVE", "default_decision: DENY"))
        with pytest.raises(ValueError, match=c.PINNED_CONTENT_DIGESTS[c.CONSTITUTIONAL_HASH]):
            Settings(constitution_path=relaxed)
        assert Settings().constitution_content_digest == c.PINNED_CONTENT_DIGESTS[c.CONSTITUTIONAL_HASH]


def _manifest_document() -> dict:
    return seal(Manifest.model_validate({
        "constitutional_hash": c.CONSTITUTIONAL_HASH, "digest": "sha256:" + "0" * 64,
        "files": [FileEntry(path="tokenizer/tokenizer.json", sha256="a" * 64, size=1),
                  FileEntry(path="tokenizer-swapped/tokenizer.json", sha256="b" * 64, size=1)],
    }).to_wire())


class TestManifest:
    def test_the_digest_covers_every_field_but_itself(self) -> None:
        document = _manifest_document()
        assert manifest_digest(document) == document["digest"]
        for field, value in (("tokenizerPath", "tokenizer-swapped"), ("metrics", {"accuracy": 1.0}),
                             ("parentVersion", "x"), ("somethingNew", 1)):
            edited = {**document, field: value}
            assert manifest_digest(edited) != document["digest"], field

    @pytest.mark.parametrize("path", ["/etc/passwd", "../other/artifact", "a/../../b", "a//b", "./a",
                                      "a\\b", "", "C:/x"])
    def test_paths_leaving_or_not_normalised_are_refused(self, path: str) -> None:
        with pytest.raises(ValueError, match="expected a normalised path relative to the artifact"):
            relative_path(path, "tokenizerPath")
        document = {**_manifest_document(), "tokenizerPath": path}
        with pytest.raises(ValueError, match="tokenizerPath"):
            parse_manifest_bytes(json.dumps(document).encode())

    def test_a_duplicated_key_is_refused(self) -> None:
        text = json.dumps(_manifest_document())[:-1] + ', "tokenizerPath": "tokenizer-swapped"}'
        with pytest.raises(ValueError, match="keys given twice"):
            parse_manifest_bytes(text.encode())

    def test_a_base_model_outside_the_artifact_needs_its_digest(self) -> None:
        document = {**_manifest_document(), "baseModel": {"name": "m", "bundled": False, "path": "/models/m"}}
        with pytest.raises(ValueError, match="baseModel.digest"):
            parse_manifest_bytes(json.dumps(document).encode())


class TestWire:
    def test_progress_report_derives_percent_and_round_trips(self) -> None:
        report = ProgressReport.at("Running", 12, 40, loss=2.1234567, epsilon=1.3, message="x" * 999,
                                   stream="s" * 32, sequence=3)
        wire = report.to_wire()
        assert (wire["percent"], wire["totalSteps"], wire["loss"], len(wire["message"])) == (30.0, 40, 2.123457, 512)
        assert ProgressReport.model_validate(wire) == report and not report.final

    def test_termination_message_fits_and_keeps_what_the_operator_reads(self) -> None:
        result = TrainerResult(phase="Succeeded", reason="Succeeded", exit_code=0, digest="sha256:" + "a" * 64,
                               steps=5, total_steps=5, message="m" * 9000,
                               metrics={"accuracy": 0.5, "complianceScore": 0.75, "evalLoss": 1.0,
                                        **{f"x{i}": i for i in range(500)}})
        text = termination_message(result)
        assert len(text.encode()) <= MAX_TERMINATION_MESSAGE_BYTES
        parsed = parse_trainer_result(json.loads(text))
        assert parsed is not None and parsed.digest == result.digest and parsed.total_steps == 5
        assert parsed.metrics == {"accuracy": 0.5, "complianceScore": 0.75, "evalLoss": 1.0}

    def test_a_log_tail_is_not_a_result(self) -> None:
        assert parse_trainer_result({"message": "Traceback ..."}) is None and parse_trainer_result(None) is None

    def test_timestamps_round_trip_and_bad_ones_name_the_format(self) -> None:
        assert timefmt.format_time(timefmt.parse_time("2026-01-02T03:04:05Z")) == "2026-01-02T03:04:05Z"
        with pytest.raises(ValueError, match="expected %Y-%m-%dT%H:%M:%SZ"):
            timefmt.parse_time("2026-01-02 03:04:05")

    def test_every_variable_the_operator_sets_for_the_server_is_one_the_server_reads(self) -> None:
        from acgs_operator.api.deployment import DeploymentSpec
        from acgs_operator.api.modelversion import ModelVersionSpec
        from acgs_operator.builders import deployment as build
        from acgs_server.config import ENV_VARS

        spec = DeploymentSpec.model_validate({"constitutionalHash": c.CONSTITUTIONAL_HASH,
                                              "model": {"versionRef": "cai-1-0-0"}})
        mv = ModelVersionSpec.model_validate({
            "constitutionalHash": c.CONSTITUTIONAL_HASH, "modelName": "cai", "version": "1.0.0", "baseModel": "b",
            "artifact": {"uri": "pvc://artifacts/x/artifact", "digest": "sha256:" + "a" * 64}})
        owner = Owner(kind="Deployment", name="d", namespace="ns", uid="u")
        pod = build.server_deployment(owner, spec, "blue", "cai-1-0-0", mv, 1, "img",
                                      constitution_digest=c.PINNED_CONTENT_DIGESTS[c.CONSTITUTIONAL_HASH])
        names = {e["name"] for e in pod["spec"]["template"]["spec"]["containers"][0]["env"]
                 if e["name"].startswith(env.PREFIX)}
        assert env.CONSTITUTION_DIGEST in names and names <= set(ENV_VARS.values())
