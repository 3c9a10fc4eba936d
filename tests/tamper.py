"""Ways an attacker with write access to an artifact volume might change a verified artifact, for
the tests that prove `acgs-train verify`, the verification Job and the server refuse each one."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from acgs_contract.manifest import MANIFEST_NAME, manifest_digest


def read_manifest(artifact: Path) -> dict[str, Any]:
    return json.loads((artifact / MANIFEST_NAME).read_text())


def write_manifest(artifact: Path, document: dict[str, Any], reseal: bool = False) -> str:
    """Write ``document``; ``reseal`` recomputes its digest, as a forger who knows the scheme would."""
    if reseal:
        document = {**document, "digest": manifest_digest(document)}
    (artifact / MANIFEST_NAME).write_text(json.dumps(document, indent=1, sort_keys=True))
    return str(document["digest"])


def relist(artifact: Path, document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with a files list that matches what is on disk now (sha256 and size)."""
    files = []
    for path in sorted(p for p in artifact.rglob("*") if p.is_file() and p.name != MANIFEST_NAME):
        data = path.read_bytes()
        files.append({"path": path.relative_to(artifact).as_posix(),
                      "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    return {**document, "files": files}


def swapped_tokenizer(artifact: Path, name: str = "tokenizer-swapped") -> Path:
    """A copy of the artifact's tokenizer with the APPROVE and DENY tokens swapped: pointed at by
    the manifest, it flips the served decisions while every original file stays intact."""
    source = artifact / read_manifest(artifact)["tokenizerPath"]
    target = artifact / name
    shutil.copytree(source, target)
    tokenizer_json = target / "tokenizer.json"
    text = tokenizer_json.read_text()
    assert '"APPROVE"' in text and '"DENY"' in text, "the tokenizer knows both decisions"
    tokenizer_json.write_text(text.replace('"APPROVE"', '"\0"').replace('"DENY"', '"APPROVE"')
                              .replace('"\0"', '"DENY"'))
    return target
