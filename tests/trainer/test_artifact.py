"""Artifact manifest: digest of every file, atomic write, and verification failures that name
what is wrong."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from acgs_contract.constitution import CONSTITUTIONAL_HASH, default_text
from acgs_contract.manifest import manifest_digest

from acgs_trainer.artifact import MANIFEST_NAME, ArtifactError, verify_artifact, write_artifact

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
