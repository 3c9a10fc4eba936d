"""``acgs-train verify``: check an artifact on disk against the digest a ModelVersion records.

    acgs-train verify --artifact DIR --digest sha256:<64 hex> [--constitutional-hash H]
                      [--constitution-digest sha256:<64 hex>] [--termination-log PATH]

Runs ``artifact.verify_artifact`` (constitutional hash, the manifest's own digest over all its
fields, every file's sha256, no missing, extra or linked file, the expected digest, a base model
outside the artifact present with the digest the manifest records, and the
artifact's constitution being the content pinned to the hash: the contract's pin, or
--constitution-digest / $ACGS_CONSTITUTION_DIGEST from the operator's configuration), prints one
compact JSON line and writes it to
the termination-message path (--termination-log, else $ACGS_TERMINATION_LOG, else
/dev/termination-log when writable): ``phase`` Succeeded/Failed, ``reason``, ``digest``,
``fileCount``, ``file``, ``expected``, ``actual``, ``message``; when verified also ``metrics``
(accuracy, complianceScore, evalLoss), ``epsilon`` and ``delta`` as the verified manifest records
them: the operator gates promotion on these, never on figures a ModelVersion's spec declares.
On a mismatch ``reason`` is the
ArtifactError code (FileDigestMismatch, DigestMismatch, ...). Exit codes: 0 verified,
5 (ARTIFACT_ERROR) mismatch or unreadable artifact, 2 (INVALID_CONFIG) bad arguments,
1 (UNEXPECTED_ERROR) anything else (an I/O error while hashing, say).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import traceback
from typing import Any, Sequence

from acgs_contract import env
from acgs_contract.constitution import CONSTITUTIONAL_HASH, CONTENT_DIGEST_PATTERN, HASH_PATTERN
from acgs_contract.exitcodes import ARTIFACT_ERROR, INVALID_CONFIG, SUCCESS, UNEXPECTED_ERROR, reason_of
from acgs_contract.manifest import DIGEST_PATTERN
from acgs_contract.result import BASE_METRICS, ESSENTIAL_METRICS, FAILED, SUCCEEDED, VerifyResult

from .artifact import ArtifactError, base_model_dir, verify_artifact
from .exitcodes import ConfigError
from .reporting import compact_result, write_result

log = logging.getLogger("acgs_trainer.verify")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        # Raise instead of exiting so the result still reaches the termination message.
        raise ConfigError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="acgs-train verify", description="Verify an artifact's files and digest.")
    p.add_argument("--artifact", required=True, help="artifact directory (holds manifest.json)")
    p.add_argument("--digest", required=True, help="expected digest, sha256:<64 hex>")
    p.add_argument("--constitutional-hash", default=CONSTITUTIONAL_HASH,
                   help=f"expected constitutional hash (default {CONSTITUTIONAL_HASH})")
    p.add_argument("--constitution-digest", default=os.environ.get(env.CONSTITUTION_DIGEST) or None,
                   help="content digest the operator pins to the hash (default: the contract's pin)")
    p.add_argument("--termination-log", default=os.environ.get(env.TERMINATION_LOG),
                   help="where to write the result (default $ACGS_TERMINATION_LOG or "
                   "/dev/termination-log when writable)")
    return p


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    args = _parser().parse_args(argv)
    if not re.match(DIGEST_PATTERN, args.digest):
        raise ConfigError(f"--digest={args.digest}: expected sha256: and 64 lowercase hex digits")
    if args.constitution_digest and not re.match(CONTENT_DIGEST_PATTERN, args.constitution_digest):
        raise ConfigError(f"--constitution-digest={args.constitution_digest}: expected sha256: and "
                          "64 lowercase hex digits")
    if not re.match(HASH_PATTERN, args.constitutional_hash):
        raise ConfigError(f"--constitutional-hash={args.constitutional_hash}: expected 16 lowercase "
                          "hex digits")
    return args


def verified_figures(manifest: Any) -> dict[str, Any]:
    """The figures a verified manifest records, in the ModelVersion's spec.metrics vocabulary."""
    privacy = manifest.privacy or {}
    dp = bool(privacy.get("enabled"))
    base = manifest.base_metrics
    return {"metrics": {k: manifest.metrics[k] for k in ESSENTIAL_METRICS if manifest.metrics.get(k) is not None},
            "baseMetrics": {k: base[k] for k in BASE_METRICS if base.get(k) is not None} or None,
            "epsilon": privacy.get("epsilonSpent") if dp else None,
            "delta": privacy.get("targetDelta") if dp else None}


def _result(phase: str, reason: str, **fields: Any) -> VerifyResult:
    return VerifyResult.model_validate({"phase": phase, "reason": reason, **fields})


def _termination_log(argv: Sequence[str]) -> str | None:
    """--termination-log even when the other arguments are bad, so the failure is still reported."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--termination-log" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--termination-log="):
            return arg.split("=", 1)[1]
    return os.environ.get(env.TERMINATION_LOG)


def main(argv: Sequence[str]) -> int:
    termination_log = _termination_log(argv)
    try:
        args = _parse(argv)
        termination_log = args.termination_log
        manifest = verify_artifact(args.artifact, args.digest, args.constitutional_hash,
                                   args.constitution_digest)
        # A base outside the artifact (pvc://, hf://) is part of what serves: Ready only when it
        # is where the manifest says, with the digest it records (BaseModelMissing/DigestMismatch).
        outside = ("" if manifest.base_model.bundled else
                   f"; base model {base_model_dir(args.artifact, manifest)} digest verified")
        code = SUCCESS
        result = _result(SUCCEEDED, reason_of(SUCCESS), digest=manifest.digest,
                         fileCount=len(manifest.files), **verified_figures(manifest),
                         message=f"{args.artifact}: manifest, {len(manifest.files)} files and "
                         f"digest {manifest.digest} verified{outside}")
    except ConfigError as exc:
        code = INVALID_CONFIG
        result = _result(FAILED, exc.reason, message=str(exc))
    except ArtifactError as exc:
        code = ARTIFACT_ERROR
        fields = exc.fields()
        result = _result(FAILED, fields.pop("code"), digest=args.digest, **fields,
                         message=str(exc))
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - last resort: still report a result
        code = UNEXPECTED_ERROR
        log.error("unexpected error: %s\n%s", exc, traceback.format_exc())
        result = _result(FAILED, reason_of(UNEXPECTED_ERROR), message=f"{type(exc).__name__}: {exc}")
    if code == SUCCESS:
        log.info("%s", result.message)
    else:
        log.error("%s: %s", result.reason, result.message)
    print(compact_result(result), flush=True)
    write_result(result, None, termination_log)
    return code
