"""``manifest.json``: what an artifact holds, and the digest that seals it.

Digest (schema 2): ``"sha256:" + sha256(canonical JSON of the manifest without its "digest" field)``.
The manifest lists every file with its sha256, so the digest covers every file's bytes *and* every
other field (tokenizer path, base model, metrics, ε, ...): editing any of them changes it. Canonical
JSON: sorted keys, no whitespace, UTF-8. By hand::

    python -c 'import json,hashlib,sys; m=json.load(open(sys.argv[1])); m.pop("digest");
               print(hashlib.sha256(json.dumps(m,sort_keys=True,separators=(",",":"),
               ensure_ascii=False).encode()).hexdigest())' manifest.json

Paths in a manifest are relative, normalised (no ``.``/``..``/empty segments, no backslash) and
stay inside the artifact. A base model outside the artifact (``baseModel.bundled: false``) carries
the digest of its own files, checked before it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from ._model import WireModel

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 2
#: an artifact (or base model) digest
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
SHA256_HEX_PATTERN = r"^[0-9a-f]{64}$"

# What is wrong with an artifact (ArtifactError codes): the server's /ready reasons and the
# ``reason`` of a failed ``acgs-train verify`` use them as they are.
MANIFEST_INVALID = "ManifestInvalid"
HASH_MISMATCH = "ConstitutionalHashMismatch"
CONSTITUTION_MISMATCH = "ConstitutionDigestMismatch"
FILE_MISSING = "FileMissing"
FILE_DIGEST_MISMATCH = "FileDigestMismatch"
UNEXPECTED_FILES = "UnexpectedFiles"
UNSAFE_FILE = "UnsafeFile"
MANIFEST_INCONSISTENT = "ManifestInconsistent"
DIGEST_MISMATCH = "DigestMismatch"
WRITE_FAILED = "ArtifactWriteFailed"
BASE_MODEL_MISSING = "BaseModelMissing"
BASE_MODEL_DIGEST_MISMATCH = "BaseModelDigestMismatch"
#: the codes verification raises (a server that meets one never becomes ready)
VERIFICATION_CODES = frozenset({MANIFEST_INVALID, HASH_MISMATCH, CONSTITUTION_MISMATCH, FILE_MISSING,
                                FILE_DIGEST_MISMATCH, UNEXPECTED_FILES, UNSAFE_FILE,
                                MANIFEST_INCONSISTENT, DIGEST_MISMATCH, BASE_MODEL_MISSING,
                                BASE_MODEL_DIGEST_MISMATCH})


def relative_path(value: str, field: str) -> str:
    """``value`` if it is a normalised relative POSIX path inside the artifact; ValueError naming
    ``field`` otherwise."""
    problem = None
    if not isinstance(value, str) or not value:
        problem = "empty"
    elif value.startswith("/") or re.match(r"^[A-Za-z]:", value):
        problem = "absolute"
    elif "\\" in value or "\x00" in value:
        problem = "holds a backslash or NUL"
    elif posixpath.normpath(value) != value or any(p in ("", ".", "..") for p in value.split("/")):
        problem = "not normalised (., .. or empty segments)"
    if problem:
        raise ValueError(f"{field}={value!r}: {problem}; expected a normalised path relative to "
                         "the artifact, inside it")
    return value


def _inside_the_artifact(value: str, info: ValidationInfo) -> str:
    return relative_path(value, to_camel(info.field_name or "path"))


#: a path in a manifest: relative, normalised, inside the artifact
ArtifactPath = Annotated[str, AfterValidator(_inside_the_artifact)]


class FileEntry(WireModel):
    path: ArtifactPath
    sha256: str = Field(pattern=SHA256_HEX_PATTERN)
    size: int = Field(ge=0)


class BaseModelInfo(WireModel):
    """The base model the adapter applies to: bundled in the artifact (``path`` relative) or
    outside it (``path`` absolute, ``digest`` of its files required)."""

    model_config = ConfigDict(extra="allow")

    name: str = ""
    bundled: bool = True
    path: str = "base"
    digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    parameters: int | None = None

    @model_validator(mode="after")
    def _path_and_digest(self) -> BaseModelInfo:
        if self.bundled:
            relative_path(self.path, "baseModel.path")
        elif not self.digest:
            raise ValueError(f"baseModel.digest: missing for a base model outside the artifact "
                             f"(path={self.path!r}); expected sha256:<64 hex> of its files")
        return self


class AdapterInfo(WireModel):
    model_config = ConfigDict(extra="allow")

    type: str = "lora"
    path: ArtifactPath = "adapter"


class ConstitutionInfo(WireModel):
    model_config = ConfigDict(extra="allow")

    version: str = ""
    #: the constitution's file in the artifact
    path: ArtifactPath = "constitution.yaml"
    #: content digest (acgs_contract.constitution.content_digest) of that file
    content_digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)


class Manifest(WireModel):
    """``manifest.json``. The fields the server relies on are typed; the rest is kept as written
    (and covered by the digest all the same)."""

    model_config = ConfigDict(extra="allow")

    schema_version: int = SCHEMA_VERSION
    digest: str = Field(pattern=DIGEST_PATTERN)
    files: list[FileEntry]
    constitutional_hash: str
    base_model: BaseModelInfo = Field(default_factory=BaseModelInfo)
    adapter: AdapterInfo = Field(default_factory=AdapterInfo)
    tokenizer_path: ArtifactPath = "tokenizer"
    metrics: dict[str, Any] = Field(default_factory=dict)
    #: the base model's own held-out score, before fine-tuning (absent in older artifacts)
    base_metrics: dict[str, Any] = Field(default_factory=dict)
    privacy: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    constitution: ConstitutionInfo = Field(default_factory=ConstitutionInfo)
    parent_version: str | None = None
    trainer_version: str = ""
    created_at: str = ""

    @field_validator("files")
    @classmethod
    def _unique(cls, value: list[FileEntry]) -> list[FileEntry]:
        paths = [e.path for e in value]
        if len(set(paths)) != len(paths):
            dupes = sorted({p for p in paths if paths.count(p) > 1})
            raise ValueError(f"files: paths listed twice: {dupes}; expected each file once")
        if MANIFEST_NAME in paths:
            raise ValueError(f"files: lists {MANIFEST_NAME}; expected every file but the manifest")
        return value


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def manifest_digest(document: dict[str, Any]) -> str:
    """The digest of a manifest as written (a JSON object): every field but ``digest``."""
    body = {k: v for k, v in document.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def seal(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its ``digest`` set."""
    return {**{k: v for k, v in document.items() if k != "digest"},
            "digest": manifest_digest(document)}


def files_digest(entries: list[FileEntry]) -> str:
    """Digest of a file list alone (a base model directory outside the artifact): the lines
    ``sha256sum`` prints, sorted by path, hashed."""
    lines = "".join(f"{e.path}  {e.sha256}\n" for e in sorted(entries, key=lambda e: e.path))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def parse_manifest_bytes(raw: bytes) -> tuple[dict[str, Any], Manifest]:
    """(the JSON object as written, the validated Manifest). ValueError on invalid JSON, a
    duplicated key (which a second reader could resolve differently) or an invalid field."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"keys given twice: {dupes}")
        return dict(pairs)

    document = json.loads(raw, object_pairs_hook=no_duplicates)
    if not isinstance(document, dict):
        raise ValueError(f"expected a JSON object, got {type(document).__name__}")
    return document, Manifest.model_validate(document)
