"""``acgs-train flywheel-eval``: score one flywheel candidate on its run's eval set.

    acgs-train flywheel-eval --workspace /workspace --run-id RUN --candidate NAME
        --kind base|in-context|fine-tune|production
        (--base-model SPEC [--in-context-examples K] | --artifact DIR --expected-digest sha256:...)
        [--constitutional-hash H] [--constitution-digest sha256:...] [--max-new-tokens N]
        [--seed S] [--device auto|cpu|cuda] [--termination-log PATH]

Every candidate of a run is scored the same way, so the operator compares like with like: the
records of ``runs/RUN/eval.jsonl`` (checked against the digest ``prepare.json`` records), the
trainer's prompt format, greedy generation one request at a time (``generate_continuations``, as
the server generates) and the training evaluator's scores (``evaluate.score_generations``:
complianceScore = the decision is the judge's; accuracy = decision and principles are the judge's
label). A base or in-context candidate loads its base as a TrainingJob does (``pipeline.prepare_base``,
a built-in base digest-checked); an artifact is verified first (``artifact.verify_artifact``: hash,
manifest, every file, the expected digest, the constitution) and refused on any mismatch, then
loaded as the server loads it. In-context prepends K train records (a seeded pick), each as its
prompt followed by its label, to every eval prompt. Latency is the mean wall time of one
request's generation, after one warm-up request.

The ``EvalResult`` goes to stdout, ``runs/RUN/evals/NAME.json`` and --termination-log. Exit codes:
0 scored, 2 bad arguments or a run that was not prepared, 5 the artifact failed verification,
1 anything else.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

from acgs_contract import flywheel as fw
from acgs_contract.constitution import CONSTITUTIONAL_HASH
from acgs_contract.exitcodes import ARTIFACT_ERROR, INVALID_CONFIG, SUCCESS, UNEXPECTED_ERROR
from acgs_contract.manifest import DIGEST_PATTERN

from .artifact import ArtifactError, verify_artifact
from .constitution import Constitution, ConstitutionError, load_constitution
from .dataio import DataReadError, canonical, read_records, records_digest
from .exitcodes import ConfigError
from .flywheel_prepare import RUN_ID, write_jsonl
from .prompting import format_prompt, target_of
from .reporting import compact_result, write_result

log = logging.getLogger("acgs_trainer.flywheel_eval")
#: a candidate's name is a Kubernetes object name (the policy's ``candidates[].name``), and a file name
#: in evals/: no '/', no leading '.', at most 253 characters
CANDIDATE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")  # so the failure still reaches the result


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="acgs-train flywheel-eval", description="Score a flywheel candidate on a run's eval set.")
    p.add_argument("--workspace", required=True, help="the policy's workspace (runs/RUN/ from flywheel-prepare)")
    p.add_argument("--run-id", required=True)
    p.add_argument("--candidate", required=True, help="the candidate's name (evals/NAME.json)")
    p.add_argument("--kind", required=True, choices=fw.CANDIDATE_KINDS)
    p.add_argument("--base-model", help="base / in-context: a base-model spec as TrainingJob.spec.baseModel takes it")
    p.add_argument("--in-context-examples", type=int, default=4, help="in-context: train records in the prompt")
    p.add_argument("--artifact", help="fine-tune / production: the artifact directory")
    p.add_argument("--expected-digest", help="fine-tune / production: the artifact's digest, sha256:<64 hex>")
    p.add_argument("--constitutional-hash", default=CONSTITUTIONAL_HASH)
    p.add_argument("--constitution-digest", default=None,
                   help="content digest the operator pins to the hash (default: the contract's pin)")
    p.add_argument("--max-new-tokens", type=int, default=8, help="tokens generated per request (training uses 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the in-context pick")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--termination-log", help="also write the result here")
    return p


def _check(args: argparse.Namespace) -> None:
    problems = []
    if not RUN_ID.match(args.run_id):
        problems.append(f"--run-id={args.run_id}: expected a Kubernetes name (lowercase, digits, '-', '.')")
    if not CANDIDATE.match(args.candidate):
        problems.append(f"--candidate={args.candidate}: expected a Kubernetes name (lowercase, digits, '-', '.')")
    if args.kind in fw.ARTIFACT_KINDS:
        if not args.artifact or not args.expected_digest:
            problems.append(f"--kind={args.kind}: expected --artifact and --expected-digest")
        elif not re.match(DIGEST_PATTERN, args.expected_digest):
            problems.append(f"--expected-digest={args.expected_digest}: expected sha256: and 64 lowercase hex digits")
    elif not args.base_model:
        problems.append(f"--kind={args.kind}: expected --base-model")
    if args.kind == fw.KIND_IN_CONTEXT and args.in_context_examples < 1:
        problems.append(f"--in-context-examples={args.in_context_examples}: expected ≥ 1")
    if args.max_new_tokens < 1:
        problems.append(f"--max-new-tokens={args.max_new_tokens}: expected ≥ 1")
    if problems:
        raise ConfigError("; ".join(problems))


def run_files(workspace: Path, run_id: str) -> tuple[list[dict[str, Any]], str, Path]:
    """(eval records, their digest, the run directory); ConfigError when the run was not prepared or
    its eval set is not the one prepare recorded."""
    run = workspace / fw.run_dir(run_id)
    try:
        prepared = fw.parse_prepare_result(json.loads((run / fw.PREPARE_FILE).read_text(encoding="utf-8")))
        records = read_records(run / fw.EVAL_FILE)
    except (OSError, ValueError, DataReadError) as exc:
        raise ConfigError(f"--run-id={run_id}: run not prepared in {workspace}: {exc}") from exc
    if prepared is None or prepared.phase != fw.PHASE_SUCCEEDED:
        raise ConfigError(f"--run-id={run_id}: {run / fw.PREPARE_FILE} is not a succeeded prepare result")
    digest = records_digest(records)
    if digest != prepared.eval_digest:
        raise ConfigError(f"{run / fw.EVAL_FILE}: digest {digest}, but prepare recorded {prepared.eval_digest} "
                          "(the eval set changed after prepare)")
    return records, digest, run


def in_context_prefix(train: list[dict[str, Any]], k: int, seed: int) -> str:
    """K train records, a seeded pick, each as its prompt and its label: the training format."""
    if len(train) < k:
        raise ConfigError(f"--in-context-examples={k}: the run's train file has {len(train)} records")
    picks = random.Random(seed).sample(sorted(train, key=canonical), k)
    return "".join(f"{format_prompt(r)} {target_of(r)} " for r in picks)


def load_candidate(args: argparse.Namespace, constitution: Constitution, device: str, work: Path
                   ) -> tuple[Any, Any, str]:
    """(model, tokenizer, what was loaded: the base spec or the verified artifact's digest)."""
    if args.kind in fw.ARTIFACT_KINDS:
        from .modeling import load_for_inference

        manifest = verify_artifact(args.artifact, args.expected_digest, args.constitutional_hash,
                                   args.constitution_digest)
        model, tokenizer = load_for_inference(args.artifact, device=device, merge=True)
        return model, tokenizer, manifest.digest
    from .config import TrainConfig
    from .pipeline import prepare_base

    cfg = TrainConfig(data="-", output=str(work), base_model=args.base_model,
                      constitutional_hash=args.constitutional_hash, seed=args.seed)
    tokenizer, model, _, _ = prepare_base(cfg, constitution, work)
    model.to(device)
    model.eval()
    return model, tokenizer, args.base_model


def timed_generations(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int
                      ) -> tuple[list[str], float]:
    """(one continuation per prompt, mean ms per request): batch 1, after one warm-up request."""
    from .modeling import generate_continuations

    generate_continuations(model, tokenizer, prompts[:1], max_new_tokens, batch_size=1)
    outputs: list[str] = []
    elapsed = 0.0
    for prompt in prompts:
        started = time.perf_counter()
        outputs.extend(generate_continuations(model, tokenizer, [prompt], max_new_tokens, batch_size=1))
        elapsed += time.perf_counter() - started
    return outputs, 1000 * elapsed / max(1, len(prompts))


def _fits(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int, k: int) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    longest = max(len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"])
    if limit is not None and longest + max_new_tokens > limit:
        raise ConfigError(f"--in-context-examples={k}: the longest prompt is {longest} tokens, + "
                          f"--max-new-tokens={max_new_tokens} passes the model's {limit} positions")


def evaluate_candidate(args: argparse.Namespace) -> fw.EvalResult:
    import torch

    from .evaluate import score_generations

    try:
        constitution = load_constitution(None, args.constitutional_hash, args.constitution_digest)
    except ConstitutionError as exc:
        raise ConfigError(f"--constitutional-hash: {exc}") from exc
    records, digest, run = run_files(Path(args.workspace), args.run_id)
    prefix = ""
    if args.kind == fw.KIND_IN_CONTEXT:
        try:
            train = read_records(run / fw.TRAIN_FILE)
        except DataReadError as exc:
            raise ConfigError(f"--run-id={args.run_id}: {exc}") from exc
        prefix = in_context_prefix(train, args.in_context_examples, args.seed)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device=cuda: no CUDA device is available")
    device = "cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="acgs-flywheel-eval-") as work:
        model, tokenizer, loaded = load_candidate(args, constitution, device, Path(work))
        prompts = [prefix + format_prompt(r) for r in records]
        _fits(model, tokenizer, prompts, args.max_new_tokens, args.in_context_examples)
        outputs, latency_ms = timed_generations(model, tokenizer, prompts, args.max_new_tokens)
    scores = score_generations(records, outputs, constitution)
    what = f"{loaded} with {args.in_context_examples} in-context examples" if prefix else loaded
    return fw.EvalResult(
        phase=fw.PHASE_SUCCEEDED, reason=fw.REASON_EVALUATED, run_id=args.run_id, candidate=args.candidate,
        kind=args.kind, accuracy=scores["accuracy"], compliance_score=scores["complianceScore"],
        latency_ms=latency_ms, eval_records=len(records), eval_digest=digest, model=loaded,
        message=(f"{what}: compliance {scores['complianceScore']:.3f}, accuracy {scores['accuracy']:.3f}, "
                 f"{latency_ms:.1f} ms per request over {len(records)} eval records on {device}"))


def _flag(argv: Sequence[str], name: str) -> str | None:
    """A flag's value even when the other arguments are bad, so a failure is still reported."""
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv: Sequence[str]) -> int:
    termination_log = _flag(argv, "--termination-log")
    identity = {"run_id": _flag(argv, "--run-id"), "candidate": _flag(argv, "--candidate"),
                "kind": _flag(argv, "--kind")}
    args: argparse.Namespace | None = None
    try:
        args = _parser().parse_args(argv)
        _check(args)
        result = evaluate_candidate(args)
        code = SUCCESS
    except ConfigError as exc:
        code = INVALID_CONFIG
        result = fw.EvalResult(phase=fw.PHASE_FAILED, reason=fw.REASON_INVALID_INPUT, message=str(exc), **identity)
    except ArtifactError as exc:
        code = ARTIFACT_ERROR
        result = fw.EvalResult(phase=fw.PHASE_FAILED, reason=fw.REASON_ARTIFACT_INVALID, **identity,
                               message=f"{exc.code}: {exc}")
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - last resort: still report a result
        code = UNEXPECTED_ERROR
        log.error("unexpected error: %s\n%s", exc, traceback.format_exc())
        result = fw.EvalResult(phase=fw.PHASE_FAILED, reason="UnexpectedError", message=f"{type(exc).__name__}: {exc}",
                               **identity)
    (log.info if code == SUCCESS else log.error)("%s: %s", result.reason, result.message)
    print(compact_result(result), flush=True)
    if args is not None and code != INVALID_CONFIG:
        evals = Path(args.workspace) / fw.run_dir(args.run_id) / fw.EVALS_DIR
        try:
            evals.mkdir(parents=True, exist_ok=True)
            write_jsonl(evals / f"{args.candidate}.json", [json.dumps(result.to_wire(), sort_keys=True)])
        except OSError as exc:
            log.error("cannot write %s: %s", evals, exc)
    write_result(result, None, termination_log)
    return code
