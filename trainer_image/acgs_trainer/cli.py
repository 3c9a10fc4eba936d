"""``acgs-train``: parse the config, run ``pipeline.main``, map the outcome to an exit code and a
result JSON (``<output>/result.json`` and the termination-message path). ``acgs-train verify ...``
checks an artifact instead (verify_cli.py); ``acgs-train build-base`` pre-trains and caches a
built-in base (bases.py); ``acgs-train flywheel-eval ...`` scores a flywheel candidate on its run's
eval set (flywheel_eval.py). See README.md."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Sequence

from acgs_contract import env
from acgs_contract.exitcodes import SUCCESS, UNEXPECTED_ERROR, reason_of
from acgs_contract.result import FAILED, SUCCEEDED, TrainerResult
from pydantic import ValidationError

from .exitcodes import TrainerError

log = logging.getLogger("acgs_trainer")


def _quiet_libraries() -> None:
    # Progress bars and advisory warnings from transformers/peft drown the training log.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    warnings.filterwarnings("ignore", module="peft")
    warnings.filterwarnings("ignore", module="opacus")
    warnings.filterwarnings("ignore", module="transformers")
    # Opacus' hooks on a frozen-input model trigger this torch notice on every backward.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")


def _guess_output(argv: Sequence[str]) -> Path | None:
    """The --output of a config that failed validation, so result.json still lands there."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--output" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--output="):
            return Path(arg.split("=", 1)[1])
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            try:
                value = json.loads(Path(args[i + 1]).read_text()).get("output")
                return Path(value) if isinstance(value, str) else None
            except (OSError, ValueError, AttributeError):
                return None
    return None


def _result(phase: str, code: int, **fields: Any) -> TrainerResult:
    base = {"phase": phase, "reason": reason_of(code), "exitCode": code}
    try:
        return TrainerResult.model_validate({**base, **fields})
    except ValidationError as exc:  # a detail of the wrong shape must not cost the result itself
        log.error("result fields do not fit the contract, kept out: %s", exc)
        keep = {k: fields[k] for k in ("message", "digest", "artifactPath") if k in fields}
        return TrainerResult.model_validate({**base, **keep})


def _is_main_rank() -> bool:
    """Rank 0 of a torchrun gang (or a plain run) writes the result; the others stay quiet."""
    return os.environ.get("RANK", "0") == "0"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get(env.LOG_LEVEL, "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["verify"]:
        from .verify_cli import main as verify

        return verify(args[1:])
    _quiet_libraries()
    if args[:1] == ["build-base"]:
        from .bases import main as build_base

        return build_base(args[1:])
    if args[:1] == ["flywheel-eval"]:
        from .flywheel_eval import main as flywheel_eval

        return flywheel_eval(args[1:])
    from .config import parse_config
    from .reporting import write_result

    output: Path | None = None
    termination_log = os.environ.get(env.TERMINATION_LOG)
    try:
        output = _guess_output(args)
        cfg = parse_config(args)
        output, termination_log = cfg.output_dir, cfg.termination_log
        from .pipeline import main as run

        result = _result(SUCCEEDED, SUCCESS, **run(cfg))
        code = SUCCESS
    except TrainerError as exc:
        code = exc.exit_code
        log.error("%s: %s", exc.reason, exc)
        result = _result(FAILED, code, **exc.details, message=str(exc))
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - last resort: still report a result
        code = UNEXPECTED_ERROR
        log.error("unexpected error: %s\n%s", exc, traceback.format_exc())
        result = _result(FAILED, code, message=f"{type(exc).__name__}: {exc}")
    if _is_main_rank():
        write_result(result, output, termination_log)
    elif code != SUCCESS:
        # Another rank's failure still reaches its pod's termination message (the operator shows
        # the failing pod's), never rank 0's result.json.
        write_result(result, None, termination_log)
    if code == SUCCESS:
        log.info("succeeded: artifact %s digest %s", result.artifact_path, result.digest)
    return code


if __name__ == "__main__":
    sys.exit(main())
