"""Artifact manifest: digest of every file, atomic write, and verification failures that name
what is wrong."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from acgs_contract.constitution import (CONSTITUTIONAL_HASH, PINNED_CONTENT_DIGESTS,
                                        content_digest_of_text, default_text)
from acgs_contract.manifest import Manifest, manifest_digest

from acgs_trainer.artifact import (MANIFEST_NAME, ArtifactError, base_model_dir, compute_digest,
                                   verify_artifact, write_artifact)
from tests import tamper

from .conftest import child_env, run_cli

H = CONSTITUTIONAL_HASH


def _make(dest: Path, payload: bytes = b"weights") -> str:
    def populate(tmp: Path) -> None:
        (tmp / "adapter").mkdir()
        (tmp / "adapter" / "adapter_model.safetensors").write_bytes(payload)
        (tmp / "adapter" / "adapter_config.json").write_text('{"r": 8}')
        (tmp / "constitution.yaml").write_text(default_text())

    return write_artifact(dest, populate, {"constitutional_hash": H}).digest


def test_digest_covers_every_file_and_the_manifest_and_verifies(tmp_path: Path) -> None:
    digest = _make(tmp_path / "a")
    manifest = verify_artifact(tmp_path / "a", digest, H)
    assert [f.path for f in manifest.files] == ["adapter/adapter_config.json",
                                                "adapter/adapter_model.safetensors",
                                                "constitution.yaml"]
    written = json.loads((tmp_path / "a" / MANIFEST_NAME).read_text())
    assert manifest_digest(written) == digest  # every field but the digest, as written
    assert _make(tmp_path / "b") == digest  # same content, same digest
    assert _make(tmp_path / "c", b"other weights") != digest
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_rewrite_replaces_the_artifact_in_one_step(tmp_path: Path) -> None:
    _make(tmp_path / "a")
    new = _make(tmp_path / "a", b"v2")
    assert verify_artifact(tmp_path / "a", new, H).digest == new


def test_failed_write_leaves_the_previous_artifact(tmp_path: Path) -> None:
    old = _make(tmp_path / "a")

    def broken(tmp: Path) -> None:
        (tmp / "partial").write_text("x")
        raise OSError("disk full")

    with pytest.raises(ArtifactError, match="disk full"):
        write_artifact(tmp_path / "a", broken, {"constitutional_hash": H})
    assert verify_artifact(tmp_path / "a", old, H).digest == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_corrupted_file_is_named(tmp_path: Path) -> None:
    digest = _make(tmp_path / "a")
    (tmp_path / "a" / "adapter" / "adapter_model.safetensors").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match=r"adapter_model\.safetensors: sha256 [0-9a-f]{64}, "
                                            r"expected [0-9a-f]{64}"):
        verify_artifact(tmp_path / "a", digest, H)


def test_wrong_hash_wrong_digest_missing_and_extra_files(tmp_path: Path) -> None:
    digest = _make(tmp_path / "a")
    with pytest.raises(ArtifactError, match="constitutionalHash='cdd01ef066bc6cf2', expected "
                                            "'0000000000000000'"):
        verify_artifact(tmp_path / "a", digest, "0000000000000000")
    with pytest.raises(ArtifactError, match=f"digest {digest}, expected sha256:00"):
        verify_artifact(tmp_path / "a", "sha256:00", H)
    (tmp_path / "a" / "extra.bin").write_bytes(b"x")
    with pytest.raises(ArtifactError, match=r"files not in the manifest: \['extra.bin'\]"):
        verify_artifact(tmp_path / "a", digest, H)
    (tmp_path / "a" / "extra.bin").unlink()
    (tmp_path / "a" / "adapter" / "adapter_config.json").unlink()
    with pytest.raises(ArtifactError, match="adapter_config.json: missing"):
        verify_artifact(tmp_path / "a", digest, H)


def test_edited_manifest_is_caught(tmp_path: Path) -> None:
    _make(tmp_path / "a")
    path = tmp_path / "a" / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["files"][0]["sha256"] = "0" * 64  # a forger rewrites one entry, not the digest
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="the manifest was edited") as caught:
        verify_artifact(tmp_path / "a", None, H)
    assert caught.value.code == "ManifestInconsistent"
    with pytest.raises(ArtifactError, match="cannot read manifest"):
        verify_artifact(tmp_path / "missing", None, H)


def test_each_failure_carries_its_code_file_expected_and_actual(tmp_path: Path) -> None:
    """The server and `acgs-train verify` report these fields as they are, without parsing text."""
    root = tmp_path / "a"
    digest = _make(root)
    failures = {}
    for key, call in {
        "hash": lambda: verify_artifact(root, digest, "0000000000000000"),
        "digest": lambda: verify_artifact(root, "sha256:" + "0" * 64, H),
        "missing_manifest": lambda: verify_artifact(tmp_path / "missing", None, H),
    }.items():
        with pytest.raises(ArtifactError) as caught:
            call()
        failures[key] = caught.value.fields()
    assert failures["hash"] == {"code": "ConstitutionalHashMismatch", "file": str(root / MANIFEST_NAME),
                                "expected": "0000000000000000", "actual": H}
    assert failures["digest"] == {"code": "DigestMismatch", "file": str(root),
                                  "expected": "sha256:" + "0" * 64, "actual": digest}
    assert failures["missing_manifest"] == {"code": "ManifestInvalid",
                                            "file": str(tmp_path / "missing" / MANIFEST_NAME)}

    weights = root / "adapter" / "adapter_model.safetensors"
    listed = json.loads((root / MANIFEST_NAME).read_text())["files"]
    listed_sha = next(f["sha256"] for f in listed if f["path"] == "adapter/adapter_model.safetensors")
    weights.write_bytes(b"tampered")
    with pytest.raises(ArtifactError) as caught:
        verify_artifact(root, digest, H)
    assert (caught.value.code, caught.value.file, caught.value.expected) == (
        "FileDigestMismatch", str(weights), listed_sha)
    assert caught.value.actual == hashlib.sha256(b"tampered").hexdigest()
    assert str(caught.value).startswith(f"{weights}: sha256 ")  # the message is unchanged

    weights.unlink()
    with pytest.raises(ArtifactError) as caught:
        verify_artifact(root, digest, H)
    assert caught.value.fields() == {"code": "FileMissing", "file": str(weights)}


def _verify(artifact: Path, digest: str, log: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    """`acgs-train verify` as the operator's Job runs it: (exit code, termination message, stdout)."""
    proc = run_cli("acgs-train", "verify", "--artifact", str(artifact), "--digest", digest, *extra,
                   env=child_env(ACGS_TERMINATION_LOG=str(log)), timeout=60)
    written = json.loads(log.read_text())
    assert json.loads(proc.stdout) == written, "stdout and the termination message agree"
    return proc.returncode, written, proc.stderr


def test_verify_command_succeeds_on_an_intact_artifact(tmp_path: Path) -> None:
    digest = _make(tmp_path / "a")
    code, result, _ = _verify(tmp_path / "a", digest, tmp_path / "log", "--constitutional-hash", H)
    assert code == 0
    assert (result["phase"], result["reason"], result["digest"], result["fileCount"]) == (
        "Succeeded", "Succeeded", digest, 3)
    assert result["file"] is None and result["expected"] is None and result["actual"] is None


def test_verify_command_names_the_tampered_file_and_exits_5(tmp_path: Path) -> None:
    digest = _make(tmp_path / "a")
    weights = tmp_path / "a" / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(b"tampered")
    code, result, stderr = _verify(tmp_path / "a", digest, tmp_path / "log")
    assert code == 5
    assert (result["phase"], result["reason"], result["file"]) == ("Failed", "FileDigestMismatch",
                                                                   str(weights))
    assert result["actual"] == hashlib.sha256(b"tampered").hexdigest() != result["expected"]
    assert result["digest"] == digest and "adapter_model.safetensors: sha256" in result["message"]
    assert "FileDigestMismatch" in stderr


def test_verify_command_reports_a_wrong_digest_where_the_flag_says(tmp_path: Path) -> None:
    digest = _make(tmp_path / "a")
    wrong = "sha256:" + "0" * 64
    proc = run_cli("acgs-train", "verify", "--artifact", str(tmp_path / "a"), "--digest", wrong,
                   "--termination-log", str(tmp_path / "flag-log"),
                   env=child_env(ACGS_TERMINATION_LOG=str(tmp_path / "env-log")), timeout=60)
    result = json.loads((tmp_path / "flag-log").read_text())
    assert not (tmp_path / "env-log").exists(), "--termination-log overrides the environment"
    assert proc.returncode == 5 and result["reason"] == "DigestMismatch"
    assert (result["expected"], result["actual"]) == (wrong, digest)


@pytest.mark.parametrize("args, named", [
    (["--artifact", "/nowhere", "--digest", "md5:abc"], "--digest=md5:abc"),
    (["--artifact", "/nowhere", "--digest", "sha256:" + "0" * 64, "--constitutional-hash", "xyz"],
     "--constitutional-hash=xyz"),
    (["--digest", "sha256:" + "0" * 64], "--artifact"),
])
def test_verify_command_rejects_bad_arguments_with_exit_2(tmp_path: Path, args: list[str],
                                                          named: str) -> None:
    log = tmp_path / "log"
    proc = run_cli("acgs-train", "verify", *args, env=child_env(ACGS_TERMINATION_LOG=str(log)),
                   timeout=60)
    result = json.loads(log.read_text())
    assert proc.returncode == 2
    assert (result["phase"], result["reason"]) == ("Failed", "InvalidConfig")
    assert named in result["message"]


# --- tampering with a real artifact (the baseline DP run of conftest.py) ------------------------

@pytest.fixture
def real_artifact(baseline_run: dict[str, Any], tmp_path: Path) -> tuple[Path, str]:
    """A private copy of a really trained artifact, and the digest its run reported."""
    assert baseline_run["proc"].returncode == 0, baseline_run["proc"].stderr[-2000:]
    copy = tmp_path / "artifact"
    shutil.copytree(baseline_run["output"] / "artifact", copy)
    return copy, json.loads((baseline_run["output"] / "result.json").read_text())["digest"]


def _refused(artifact: Path, digest: str) -> ArtifactError:
    with pytest.raises(ArtifactError) as caught:
        verify_artifact(artifact, digest, H)
    return caught.value


def test_real_artifact_verifies_and_records_its_pinned_constitution(real_artifact) -> None:
    artifact, digest = real_artifact
    manifest = verify_artifact(artifact, digest, H)
    assert manifest.constitution.content_digest == PINNED_CONTENT_DIGESTS[H]
    assert manifest_digest(tamper.read_manifest(artifact)) == digest


def test_editing_only_the_tokenizer_path_is_refused(real_artifact) -> None:
    """The issue's attack: a tokenizer with APPROVE and DENY swapped, listed with correct sha256s,
    and only tokenizerPath changed. Every file checks out; the sealed manifest does not."""
    artifact, digest = real_artifact
    tamper.swapped_tokenizer(artifact)
    document = tamper.relist(artifact, {**tamper.read_manifest(artifact),
                                        "tokenizerPath": "tokenizer-swapped"})
    tamper.write_manifest(artifact, document)
    error = _refused(artifact, digest)
    assert error.code == "ManifestInconsistent" and error.expected == digest != error.actual
    # a forger who reseals the manifest changes the digest the ModelVersion recorded
    resealed = tamper.write_manifest(artifact, document, reseal=True)
    error = _refused(artifact, digest)
    assert (error.code, error.expected, error.actual) == ("DigestMismatch", digest, resealed)


@pytest.mark.parametrize("edit", ["metrics", "epsilon", "base_model_path"])
def test_editing_any_other_manifest_field_is_refused(real_artifact, edit: str) -> None:
    artifact, digest = real_artifact
    document = tamper.read_manifest(artifact)
    if edit == "metrics":
        old = document["metrics"]["complianceScore"]
        document["metrics"]["complianceScore"] = 0.5 if old != 0.5 else 0.25
    elif edit == "epsilon":
        document["privacy"]["epsilonSpent"] = 0.01
    else:
        document["baseModel"]["path"] = "adapter"
    tamper.write_manifest(artifact, document)
    assert _refused(artifact, digest).code == "ManifestInconsistent"


def test_extra_missing_and_changed_files_are_refused(real_artifact) -> None:
    artifact, digest = real_artifact
    (artifact / "tokenizer" / "added.json").write_text("{}")
    error = _refused(artifact, digest)
    assert error.code == "UnexpectedFiles" and "tokenizer/added.json" in str(error)
    (artifact / "tokenizer" / "added.json").unlink()
    weights = next((artifact / "adapter").glob("*.safetensors"))
    original = weights.read_bytes()
    weights.unlink()
    assert _refused(artifact, digest).code == "FileMissing"
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    assert _refused(artifact, digest).code == "FileDigestMismatch"
    weights.write_bytes(original)
    assert verify_artifact(artifact, digest, H).digest == digest


def test_symlinks_are_refused_even_to_identical_bytes(real_artifact, tmp_path: Path) -> None:
    artifact, digest = real_artifact
    weights = next((artifact / "adapter").glob("*.safetensors"))
    outside = tmp_path / "outside.safetensors"
    shutil.copy(weights, outside)
    weights.unlink()
    weights.symlink_to(outside)  # same bytes, but the artifact no longer holds them
    error = _refused(artifact, digest)
    assert error.code == "UnsafeFile" and "symlink" in str(error) and str(outside) in str(error)
    weights.unlink()
    shutil.copy(outside, weights)
    (artifact / "escape").symlink_to(tmp_path)  # a directory link leading out
    assert _refused(artifact, digest).code == "UnsafeFile"


def test_paths_leading_out_of_the_artifact_are_refused(real_artifact) -> None:
    artifact, digest = real_artifact
    document = tamper.read_manifest(artifact)
    document["tokenizerPath"] = "../other-model/tokenizer"
    tamper.write_manifest(artifact, document, reseal=True)
    error = _refused(artifact, digest)
    assert error.code == "ManifestInvalid" and "tokenizerPath='../other-model/tokenizer'" in str(error)


def test_a_constitution_not_pinned_to_the_hash_is_refused_even_when_resealed(real_artifact) -> None:
    """A model trained under relaxed rules that claim the same hash, registered with its digest."""
    artifact, _ = real_artifact
    constitution = artifact / "constitution.yaml"
    constitution.write_text(constitution.read_text().replace("default_decision: APPROVE",
                                                             "default_decision: DENY"))
    document = tamper.relist(artifact, tamper.read_manifest(artifact))
    document["constitution"]["contentDigest"] = content_digest_of_text(constitution.read_text())
    resealed = tamper.write_manifest(artifact, document, reseal=True)
    error = _refused(artifact, resealed)
    assert error.code == "ConstitutionDigestMismatch"
    assert (error.expected, error.actual) == (PINNED_CONTENT_DIGESTS[H],
                                              content_digest_of_text(constitution.read_text()))


def test_verify_command_refuses_the_edited_tokenizer_path_with_exit_5(real_artifact, tmp_path) -> None:
    artifact, digest = real_artifact
    tamper.swapped_tokenizer(artifact)
    tamper.write_manifest(artifact, tamper.relist(artifact, {**tamper.read_manifest(artifact),
                                                             "tokenizerPath": "tokenizer-swapped"}))
    code, result, _ = _verify(artifact, digest, tmp_path / "log")
    assert (code, result["reason"]) == (5, "ManifestInconsistent")
    assert "manifest was edited" in result["message"]


def _artifact_with_outside_base(tmp_path: Path, base: Path, model_type: str, name: str) -> Manifest:
    """A sealed artifact at tmp_path/a whose base model lies outside it, at ``base``."""
    base.mkdir(parents=True)
    (base / "config.json").write_text(f'{{"model_type": "{model_type}"}}')
    (base / "model.safetensors").write_bytes(b"base weights")

    def populate(d: Path) -> None:
        (d / "adapter").mkdir()
        (d / "adapter" / "w.bin").write_bytes(b"w")
        (d / "constitution.yaml").write_text(default_text())

    return write_artifact(tmp_path / "a", populate, {
        "constitutional_hash": H, "base_model": {"name": name, "bundled": False, "path": str(base),
                                                 "digest": compute_digest(base)}})


def test_a_base_model_outside_the_artifact_is_checked_before_load(tmp_path: Path) -> None:
    base = tmp_path / "models" / "base"
    manifest = _artifact_with_outside_base(tmp_path, base, "llama", "local")
    assert base_model_dir(tmp_path / "a", verify_artifact(tmp_path / "a", manifest.digest, H)) == base
    (base / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(ArtifactError) as caught:
        base_model_dir(tmp_path / "a", verify_artifact(tmp_path / "a", manifest.digest, H))
    assert caught.value.code == "BaseModelDigestMismatch" and caught.value.expected != caught.value.actual


def test_verify_command_needs_an_outside_base_present_with_its_digest(tmp_path: Path) -> None:
    """The operator's verification Job: Ready only if the pod can see the base (the operator mounts
    its claim) and the base is the one the adapter was trained on."""
    base = tmp_path / "models" / "bases" / "gpt2"
    digest = _artifact_with_outside_base(tmp_path, base, "gpt2", "pvc://bases/gpt2").digest
    code, result, _ = _verify(tmp_path / "a", digest, tmp_path / "log")
    assert (code, result["phase"]) == (0, "Succeeded") and f"base model {base} digest verified" in result["message"]
    (base / "model.safetensors").write_bytes(b"other weights")
    code, result, _ = _verify(tmp_path / "a", digest, tmp_path / "log")
    assert (code, result["reason"], result["file"]) == (5, "BaseModelDigestMismatch", str(base))
    shutil.rmtree(base)  # not mounted
    code, result, _ = _verify(tmp_path / "a", digest, tmp_path / "log")
    assert (code, result["reason"], result["file"]) == (5, "BaseModelMissing", str(base))
