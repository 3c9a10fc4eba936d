"""The model artifact: files + ``manifest.json``, written atomically and verifiable by the server.

Digest: every file except ``manifest.json`` is hashed (sha256 of its bytes); the overall digest is
``"sha256:" + sha256("<relative path>  <hex>\\n" for each file, sorted by path)`` — the same lines
``sha256sum`` prints, so ``cd artifact && sha256sum $(find . -type f ! -name manifest.json | sed
's|^./||' | LC_ALL=C sort) | sha256sum`` reproduces it by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from .exitcodes import ARTIFACT_ERROR, TrainerError

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1


# ArtifactError codes: what is wrong, as a CamelCase constant (the server's /ready reasons and the
# result of `acgs-train verify` use them as they are).
MANIFEST_INVALID = "ManifestInvalid"
HASH_MISMATCH = "ConstitutionalHashMismatch"
FILE_MISSING = "FileMissing"
FILE_DIGEST_MISMATCH = "FileDigestMismatch"
UNEXPECTED_FILES = "UnexpectedFiles"
MANIFEST_INCONSISTENT = "ManifestInconsistent"
DIGEST_MISMATCH = "DigestMismatch"
WRITE_FAILED = "ArtifactWriteFailed"
BASE_MODEL_MISSING = "BaseModelMissing"


class ArtifactError(TrainerError):
    """The artifact is missing, incomplete or does not match what was expected.

    ``code`` says what (one of the constants above); ``file`` is the file or directory concerned;
    ``expected`` and ``actual`` are the two values that differ, where there are two. The message
    says all of it in words.
    """

    exit_code = ARTIFACT_ERROR

    def __init__(self, message: str, *, code: str, file: str | os.PathLike[str] | None = None,
                 expected: str | None = None, actual: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.file = None if file is None else str(file)
        self.expected = expected
        self.actual = actual

    def fields(self) -> dict[str, str]:
        """code, file, expected and actual, leaving out the ones that do not apply."""
        values = {"code": self.code, "file": self.file, "expected": self.expected,
                  "actual": self.actual}
        return {k: v for k, v in values.items() if v is not None}


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class FileEntry(_Camel):
    path: str
    sha256: str
    size: int


class Manifest(_Camel):
    """``manifest.json``. Fields the server relies on are typed; the rest is kept as written."""

    schema_version: int = MANIFEST_SCHEMA_VERSION
    digest: str
    files: list[FileEntry]
    constitutional_hash: str
    base_model: dict[str, Any] = Field(default_factory=dict)
    adapter: dict[str, Any] = Field(default_factory=dict)
    tokenizer_path: str = "tokenizer"
    metrics: dict[str, Any] = Field(default_factory=dict)
    privacy: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    constitution: dict[str, Any] = Field(default_factory=dict)
    parent_version: str | None = None
    trainer_version: str = ""
    created_at: str = ""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_files(directory: str | os.PathLike[str]) -> list[FileEntry]:
    root = Path(directory)
    entries = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel != MANIFEST_NAME:
            entries.append(FileEntry(path=rel, sha256=sha256_file(p), size=p.stat().st_size))
    return sorted(entries, key=lambda e: e.path)


def digest_of(entries: list[FileEntry]) -> str:
    lines = "".join(f"{e.path}  {e.sha256}\n" for e in sorted(entries, key=lambda e: e.path))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def compute_digest(directory: str | os.PathLike[str]) -> str:
    """Overall digest of every file in ``directory`` except the manifest."""
    return digest_of(list_files(directory))


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with p.open("rb") as f:
                os.fsync(f.fileno())


def write_artifact(dest: str | os.PathLike[str], populate: Callable[[Path], None],
                   manifest_fields: dict[str, Any]) -> Manifest:
    """Build the artifact in a temporary sibling of ``dest``, add the manifest, rename into place.

    ``populate(tmpdir)`` writes the files; ``manifest_fields`` are Manifest fields other than
    ``files`` and ``digest``. A reader never sees a half-written ``dest``: it is either the
    previous complete artifact or the new one.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    except OSError as exc:
        raise ArtifactError(f"{dest}: cannot create a temporary directory beside it: {exc}",
                            code=WRITE_FAILED, file=dest) from exc
    try:
        populate(tmp)
        files = list_files(tmp)
        manifest = Manifest.model_validate({**manifest_fields, "files": files,
                                            "digest": digest_of(files)})
        (tmp / MANIFEST_NAME).write_text(
            json.dumps(manifest.model_dump(by_alias=True, mode="json"), indent=1, sort_keys=True)
            + "\n", encoding="utf-8")
        _fsync_tree(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; the server may run as another uid
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(dest, old)
        os.rename(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return manifest
    except ArtifactError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (OSError, ValidationError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArtifactError(f"{dest}: cannot write artifact: {exc}", code=WRITE_FAILED,
                            file=dest) from exc


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    path = Path(directory) / MANIFEST_NAME
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read manifest: {exc.strerror or exc}",
                            code=MANIFEST_INVALID, file=path) from exc
    except ValidationError as exc:
        raise ArtifactError(f"{path}: invalid manifest: {exc}", code=MANIFEST_INVALID,
                            file=path) from exc


def verify_artifact(directory: str | os.PathLike[str], expected_digest: str | None,
                    expected_hash: str) -> Manifest:
    """Check hash, every file's sha256, no missing/extra files, and the overall digest.

    Raises ArtifactError naming the file or field, the expected and the actual value.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    if manifest.constitutional_hash != expected_hash:
        raise ArtifactError(f"{root / MANIFEST_NAME}: constitutionalHash="
                            f"{manifest.constitutional_hash!r}, expected {expected_hash!r}",
                            code=HASH_MISMATCH, file=root / MANIFEST_NAME, expected=expected_hash,
                            actual=manifest.constitutional_hash)
    on_disk = {e.path: e for e in list_files(root)}
    for entry in manifest.files:
        actual = on_disk.pop(entry.path, None)
        if actual is None:
            raise ArtifactError(f"{root / entry.path}: missing (listed in the manifest)",
                                code=FILE_MISSING, file=root / entry.path)
        if actual.sha256 != entry.sha256:
            raise ArtifactError(f"{root / entry.path}: sha256 {actual.sha256}, expected "
                                f"{entry.sha256} (from the manifest)", code=FILE_DIGEST_MISMATCH,
                                file=root / entry.path, expected=entry.sha256, actual=actual.sha256)
    if on_disk:
        raise ArtifactError(f"{root}: files not in the manifest: {sorted(on_disk)}",
                            code=UNEXPECTED_FILES, file=root, actual=", ".join(sorted(on_disk)))
    recomputed = digest_of(manifest.files)
    if recomputed != manifest.digest:
        raise ArtifactError(f"{root / MANIFEST_NAME}: digest {manifest.digest}, but its file list "
                            f"hashes to {recomputed}", code=MANIFEST_INCONSISTENT,
                            file=root / MANIFEST_NAME, expected=manifest.digest, actual=recomputed)
    if expected_digest is not None and manifest.digest != expected_digest:
        raise ArtifactError(f"{root}: digest {manifest.digest}, expected {expected_digest}",
                            code=DIGEST_MISMATCH, file=root, expected=expected_digest,
                            actual=manifest.digest)
    return manifest
