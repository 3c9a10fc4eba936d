"""The constitutional hash, and the content each hash stands for.

A constitutional hash is a label: the constitution YAML declares it about itself, so on its own it
proves nothing about the rules. What binds a label to rules is the *content digest*: the sha256 of
the constitution's canonical content (the parsed YAML written as canonical JSON: sorted keys, no
whitespace, UTF-8), so comments, key order and quoting do not matter but every rule does.
``PINNED_CONTENT_DIGESTS`` says which content each known hash names; the trainer, the verification
Job and the server refuse a constitution whose content digest is not the pinned one.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from typing import Any

#: the hash of the constitution the seeds were written against
CONSTITUTIONAL_HASH = "cdd01ef066bc6cf2"
#: what a constitutional hash looks like (the CRDs' pattern too)
HASH_PATTERN = r"^[0-9a-f]{16}$"
#: what a content digest looks like
CONTENT_DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
#: the file name of a constitution in a ConfigMap, an artifact and a pod's mount
CONSTITUTION_FILE = "constitution.yaml"

#: constitutional hash -> sha256 of the canonical content it names. Amending the constitution means
#: a new hash and a new line here (tests/unit/test_contract.py recomputes the default's digest).
PINNED_CONTENT_DIGESTS: dict[str, str] = {
    CONSTITUTIONAL_HASH: "sha256:91a7bedf9a7619c3fa92c8b3793da01713000049f9d94c255c3112d0fedfa14a",
}


class ConstitutionDigestMismatch(ValueError):
    """The constitution's content is not the content pinned to its hash."""

    def __init__(self, message: str, expected: str | None, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


def is_constitutional_hash(value: object) -> bool:
    return isinstance(value, str) and re.match(HASH_PATTERN, value) is not None


def canonical_json(document: Any) -> bytes:
    """``document`` as canonical JSON bytes; ValueError when it holds something JSON cannot."""
    try:
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"constitution content is not plain JSON data: {exc}") from exc
    return text.encode("utf-8")


def content_digest(document: Any) -> str:
    """``sha256:<hex>`` of the canonical content of a parsed constitution."""
    return "sha256:" + hashlib.sha256(canonical_json(document)).hexdigest()


def content_digest_of_text(text: str) -> str:
    """The content digest of constitution YAML text (needs PyYAML, which every image has)."""
    import yaml  # imported here: the contract itself depends on pydantic only

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"constitution is not valid YAML: {exc}") from exc
    return content_digest(document)


def pinned_digest(constitutional_hash: str, configured: str | None = None) -> str:
    """The content digest ``constitutional_hash`` must have.

    ``configured`` is a digest the operator's configuration pins (for an amended constitution not
    yet in ``PINNED_CONTENT_DIGESTS``); it may not re-pin a hash the contract already pins.
    Raises ValueError naming the hash and both digests when there is no single answer.
    """
    pinned = PINNED_CONTENT_DIGESTS.get(constitutional_hash)
    if configured:
        if not re.match(CONTENT_DIGEST_PATTERN, configured):
            raise ValueError(f"constitution digest {configured!r}: expected sha256: and 64 lowercase "
                             "hex digits")
        if pinned is not None and configured != pinned:
            raise ValueError(f"constitutional hash {constitutional_hash}: configured content digest "
                             f"{configured} differs from the pinned {pinned}")
        return configured
    if pinned is None:
        raise ValueError(f"constitutional hash {constitutional_hash}: no content digest is pinned to "
                         f"it (pinned hashes: {sorted(PINNED_CONTENT_DIGESTS)}); configure one")
    return pinned


def check_content(constitutional_hash: str, actual: str, configured: str | None = None,
                  origin: str = "constitution") -> str:
    """Refuse content whose digest is not the one pinned to ``constitutional_hash``.

    Returns the digest; raises ConstitutionDigestMismatch naming both digests otherwise.
    """
    try:
        expected = pinned_digest(constitutional_hash, configured)
    except ValueError as exc:
        raise ConstitutionDigestMismatch(f"{origin}: content digest {actual}: {exc}", None,
                                         actual) from exc
    if actual != expected:
        raise ConstitutionDigestMismatch(
            f"{origin}: content digest {actual}, expected {expected} (the content pinned to "
            f"constitutional hash {constitutional_hash}); a constitution cannot change its rules "
            "under the same hash", expected, actual)
    return actual


def default_text() -> str:
    """The default constitution (the one ``CONSTITUTIONAL_HASH`` names), as shipped."""
    return resources.files(__package__).joinpath(CONSTITUTION_FILE).read_text(encoding="utf-8")
