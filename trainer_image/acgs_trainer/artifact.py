"""The model artifact: files + ``manifest.json``, written atomically and verified byte for byte.

The manifest's shape and its digest are the contract's (``acgs_contract.manifest``): the digest is
the sha256 of the canonical manifest without its ``digest`` field, and the manifest lists every
file's sha256, so one digest seals every byte of the artifact and every field of the manifest.
``verify_artifact`` refuses anything else: an edited manifest, a changed, missing or extra file, a
symlink or special file, a path leading out of the artifact, a constitution not pinned to its hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable

from acgs_contract import constitution as contract_constitution
from acgs_contract.exitcodes import ARTIFACT_ERROR
from acgs_contract.manifest import (BASE_MODEL_DIGEST_MISMATCH, BASE_MODEL_MISSING,
                                    CONSTITUTION_MISMATCH, DIGEST_MISMATCH, FILE_DIGEST_MISMATCH,
                                    FILE_MISSING, HASH_MISMATCH, MANIFEST_INCONSISTENT,
                                    MANIFEST_INVALID, MANIFEST_NAME, SCHEMA_VERSION,
                                    UNEXPECTED_FILES, UNSAFE_FILE, WRITE_FAILED, FileEntry,
                                    Manifest, files_digest, manifest_digest, parse_manifest_bytes,
                                    seal)
from pydantic import ValidationError

from .exitcodes import TrainerError

__all__ = ["MANIFEST_NAME", "ArtifactError", "FileEntry", "Manifest", "base_model_dir",
           "compute_digest", "list_files", "read_manifest", "verify_artifact", "write_artifact"]


class ArtifactError(TrainerError):
    """The artifact is missing, incomplete or does not match what was expected.

    ``code`` says what (an ``acgs_contract.manifest`` code); ``file`` is the file or directory
    concerned; ``expected`` and ``actual`` are the two values that differ, where there are two.
    The message says all of it in words.
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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_files(directory: str | os.PathLike[str], follow_symlinks: bool = False) -> list[FileEntry]:
    """Every regular file under ``directory`` but a top-level manifest, with its sha256.

    Inside an artifact (``follow_symlinks=False``) a symlink or a special file is refused: what
    it points at is not part of what was sealed.
    """
    root = Path(directory)
    entries = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = here / name
            rel = path.relative_to(root).as_posix()
            mode = (path.stat() if follow_symlinks else path.lstat()).st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                kind = "a symlink" if stat.S_ISLNK(mode) else "not a regular file"
                target = f" -> {os.readlink(path)}" if stat.S_ISLNK(mode) else ""
                raise ArtifactError(f"{path}: {kind}{target}; an artifact holds regular files only",
                                    code=UNSAFE_FILE, file=path, actual=rel)
            if rel != MANIFEST_NAME:
                entries.append(FileEntry(path=rel, sha256=sha256_file(path),
                                         size=path.stat().st_size))
    return sorted(entries, key=lambda e: e.path)


def compute_digest(directory: str | os.PathLike[str]) -> str:
    """Digest of the files of a directory (a base model's, outside any artifact)."""
    return files_digest(list_files(directory, follow_symlinks=True))


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
        unsealed = Manifest.model_validate({**manifest_fields, "files": list_files(tmp),
                                            "digest": "sha256:" + "0" * 64})
        document = seal(unsealed.to_wire())
        (tmp / MANIFEST_NAME).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n",
                                         encoding="utf-8")
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
        return Manifest.model_validate(document)
    except ArtifactError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (OSError, ValueError) as exc:  # ValidationError is a ValueError
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArtifactError(f"{dest}: cannot write artifact: {exc}", code=WRITE_FAILED,
                            file=dest) from exc


def _read_document(directory: Path) -> tuple[dict[str, Any], Manifest]:
    path = directory / MANIFEST_NAME
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            raise ArtifactError(f"{path}: not a regular file (a symlink?); expected the manifest "
                                "itself", code=UNSAFE_FILE, file=path)
        raw = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read manifest: {exc.strerror or exc}",
                            code=MANIFEST_INVALID, file=path) from exc
    try:
        document, manifest = parse_manifest_bytes(raw)
    except (ValueError, ValidationError) as exc:
        raise ArtifactError(f"{path}: invalid manifest: {exc}", code=MANIFEST_INVALID,
                            file=path) from exc
    if manifest.schema_version != SCHEMA_VERSION:
        raise ArtifactError(f"{path}: schemaVersion={manifest.schema_version}: expected "
                            f"{SCHEMA_VERSION} (an older artifact: train it again)",
                            code=MANIFEST_INVALID, file=path, expected=str(SCHEMA_VERSION),
                            actual=str(manifest.schema_version))
    return document, manifest


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """The manifest, validated (paths inside the artifact), without checking the files."""
    return _read_document(Path(directory))[1]


def _check_files(root: Path, manifest: Manifest) -> None:
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


def _check_constitution(root: Path, manifest: Manifest, pinned: str | None) -> None:
    """The constitution the model was trained under is the content pinned to its hash."""
    path = root / manifest.constitution.path
    try:
        text = path.read_text(encoding="utf-8")
        actual = contract_constitution.content_digest_of_text(text)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: cannot read the artifact's constitution: {exc}",
                            code=CONSTITUTION_MISMATCH, file=path) from exc
    try:
        contract_constitution.check_content(manifest.constitutional_hash, actual, pinned,
                                            origin=str(path))
    except contract_constitution.ConstitutionDigestMismatch as exc:
        raise ArtifactError(str(exc), code=CONSTITUTION_MISMATCH, file=path,
                            expected=exc.expected, actual=exc.actual) from exc
    if manifest.constitution.content_digest not in (None, actual):
        raise ArtifactError(f"{path}: content digest {actual}, but the manifest records "
                            f"{manifest.constitution.content_digest}", code=CONSTITUTION_MISMATCH,
                            file=path, expected=manifest.constitution.content_digest, actual=actual)


def verify_artifact(directory: str | os.PathLike[str], expected_digest: str | None,
                    expected_hash: str, constitution_digest: str | None = None) -> Manifest:
    """Check the hash, the manifest's own digest, every file, the constitution and the expected
    digest. ``constitution_digest`` is a content digest the operator's configuration pins (for a
    hash the contract does not pin). Raises ArtifactError naming the file or field, the expected
    and the actual value.
    """
    root = Path(directory)
    document, manifest = _read_document(root)
    if manifest.constitutional_hash != expected_hash:
        raise ArtifactError(f"{root / MANIFEST_NAME}: constitutionalHash="
                            f"{manifest.constitutional_hash!r}, expected {expected_hash!r}",
                            code=HASH_MISMATCH, file=root / MANIFEST_NAME, expected=expected_hash,
                            actual=manifest.constitutional_hash)
    recomputed = manifest_digest(document)
    if recomputed != manifest.digest:
        raise ArtifactError(f"{root / MANIFEST_NAME}: says digest {manifest.digest}, but its "
                            f"content hashes to {recomputed} (the manifest was edited)",
                            code=MANIFEST_INCONSISTENT, file=root / MANIFEST_NAME,
                            expected=manifest.digest, actual=recomputed)
    _check_files(root, manifest)
    if expected_digest is not None and manifest.digest != expected_digest:
        raise ArtifactError(f"{root}: digest {manifest.digest}, expected {expected_digest}",
                            code=DIGEST_MISMATCH, file=root, expected=expected_digest,
                            actual=manifest.digest)
    _check_constitution(root, manifest, constitution_digest)
    return manifest


def base_model_dir(directory: str | os.PathLike[str], manifest: Manifest) -> Path:
    """The base model's directory, checked: inside the artifact (verified with it) or outside it
    with the digest the manifest records, recomputed here before anything loads it."""
    root = Path(directory)
    info = manifest.base_model
    if info.bundled:
        base = root / info.path
    else:
        base = Path(info.path)
    if not (base / "config.json").is_file():
        raise ArtifactError(f"{base}: base model not found (manifest baseModel.path={info.path!r})",
                            code=BASE_MODEL_MISSING, file=base)
    if not info.bundled:
        actual = compute_digest(base)
        if actual != info.digest:
            raise ArtifactError(f"{base}: base model digest {actual}, expected {info.digest} "
                                "(manifest baseModel.digest)", code=BASE_MODEL_DIGEST_MISMATCH,
                                file=base, expected=info.digest, actual=actual)
    return base
