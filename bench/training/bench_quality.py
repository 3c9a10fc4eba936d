"""Model quality benchmark: what DP fine-tuning on top of the public pre-trained base achieves.

Per dataset type, on the same generated (private-half) data, split and budget of steps:
the built-in base before fine-tuning (its score on the same held-out records), a fine-tune
without DP, and DP fine-tunes at ε ∈ {1, 3, 8} (δ = 1e-5), each with steps, wall time and ε
spent. Then the sample pipeline exactly as `make demo` trains it (manifests/samples/
trainingjob.yaml through the operator's own config builder), against the issue's targets:
compliance ≥ 0.95, accuracy ≥ 0.90, ≤ 180 s on this machine, and DP accuracy at ε = 8 ≥ 0.97×
the non-DP accuracy.

    python bench/training/bench_quality.py [--types constitutional_ai,...] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

EPSILONS = (1.0, 3.0, 8.0)
DEMO_SECONDS = 180.0
TARGETS = {"complianceScore": 0.95, "accuracy": 0.90}
UTILITY_RATIO = 0.97


def _train(config: dict[str, Any], workdir: Path) -> tuple[dict[str, Any], float]:
    from acgs_trainer.config import validate_config
    from acgs_trainer.pipeline import main

    cfg = validate_config({**config, "output": str(workdir), "resume": False,
                           "checkpointEvery": 0, "progressUrl": None, "terminationLog": None})
    started = time.perf_counter()
    result = main(cfg)
    return result, time.perf_counter() - started


def _sample_config() -> dict[str, Any]:
    """The sample TrainingJob's trainer config, as the operator writes it."""
    import yaml

    from acgs_operator.api.trainingjob import TrainingJobSpec
    from acgs_operator.builders.trainingjob import Owner, build_trainer_config
    from acgs_operator.config import Settings

    doc = yaml.safe_load((ROOT / "manifests/samples/trainingjob.yaml").read_text())
    spec = TrainingJobSpec.model_validate(doc["spec"])
    config = build_trainer_config(spec, Owner("TrainingJob", "bench", "bench", "0" * 8),
                                  Settings(progress_port=0))
    gen = spec.data.generate
    assert gen is not None
    config["data"] = f"generated:{gen.type}:{gen.size}"  # what the init container writes
    config.pop("constitution")  # the pod's ConfigMap path; here the packaged (same, pinned) one
    config.pop("metricsPort", None)  # no metrics server inside the benchmark process
    return config


def _cold_run(config: dict[str, Any], workdir: Path) -> tuple[dict[str, Any], float]:
    """One `acgs-train --config` process, timed from its start to its exit, as the demo's pod runs
    it (interpreter start and imports included; the in-process ``_train`` of a warm process
    leaves those out), with the 2 CPUs the sample asks for."""
    import json
    import os
    import subprocess

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.json"
    path.write_text(json.dumps({**config, "output": str(workdir / "out"), "resume": False,
                                "checkpointEvery": 0}))
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    env.pop("ACGS_PROGRESS_URL", None)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "acgs_trainer.cli", "--config", str(path)],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"acgs-train exited {proc.returncode}: {proc.stderr[-2000:]}")
    return json.loads((workdir / "out" / "result.json").read_text()), seconds


def sample_section(sample: dict[str, Any], work: Path, compare_steps: int | None) -> list[str]:
    """The sample TrainingJob as the demo runs it, against the issue's targets; with
    ``compare_steps``, the same recipe at that many steps too, interleaved (twice each), so the
    time ratio comes from one run on one (busy) machine."""
    runs: dict[int, list[tuple[dict[str, Any], float]]] = {sample["maxSteps"]: []}
    order = [sample["maxSteps"]]
    if compare_steps:
        runs[compare_steps] = []
        order = [compare_steps, sample["maxSteps"]] * 2
    for k, steps in enumerate(order):
        runs[steps].append(_cold_run({**sample, "maxSteps": steps}, work / f"sample-{k}"))
    result, seconds = min(runs[sample["maxSteps"]], key=lambda r: r[1])
    config = sample
    m = result["metrics"]
    checks = [("compliance", m["complianceScore"], f"≥ {TARGETS['complianceScore']}",
               m["complianceScore"] >= TARGETS["complianceScore"]),
              ("accuracy", m["accuracy"], f"≥ {TARGETS['accuracy']}",
               m["accuracy"] >= TARGETS["accuracy"]),
              ("ε spent", result["epsilon"], f"≤ {config['targetEpsilon']}",
               result["epsilon"] is not None and result["epsilon"] <= config["targetEpsilon"]),
              ("training wall time, s (one `acgs-train` process: start, imports, data, base, "
               "train, eval, artifact; best of the runs)", seconds,
               f"≤ {DEMO_SECONDS:.0f}", seconds <= DEMO_SECONDS)]
    lines = ["### The sample pipeline (`make demo`'s TrainingJob: manifests/samples/trainingjob.yaml)",
             "", f"`{config['data']}`, {result['steps']} steps, batch {config['batchSize']}, "
             f"lr {config.get('lr')}, DP ε target {config['targetEpsilon']}, δ "
             f"{config['targetDelta']}; base before fine-tuning: compliance "
             f"{result['baseMetrics']['complianceScore']:.3f}, accuracy "
             f"{result['baseMetrics']['accuracy']:.3f}.", "",
             "| measure | measured | target | |", "|---|---|---|---|",
             *[f"| {n} | {v:.3f} | {t} | {'met' if ok else 'not met'} |" for n, v, t, ok in checks],
             ""]
    if compare_steps:
        lines += [f"Same recipe, {compare_steps} vs {sample['maxSteps']} steps, interleaved "
                  "(seconds of each `acgs-train` process, compliance / accuracy / ε):", "",
                  "| steps | runs, s | compliance | accuracy | ε |", "|---|---|---|---|---|"]
        for steps, done in runs.items():
            r = done[-1][0]
            lines.append(f"| {steps} | {', '.join(f'{t:.0f}' for _, t in done)} | "
                         f"{r['metrics']['complianceScore']:.3f} | {r['metrics']['accuracy']:.3f} "
                         f"| {r['epsilon']:.2f} |")
        lines.append("")
    return lines


def _row(name: str, result: dict[str, Any], seconds: float, base: bool = False) -> list[str]:
    m = result["baseMetrics" if base else "metrics"]
    eps = result.get("epsilon")
    # The held-out loss too: where the base already answers every held-out record right, the
    # scores cannot tell the fine-tunes apart, and the loss still can.
    return [name, "–" if base else str(result["steps"]), "–" if base else f"{seconds:.0f}",
            "–" if base or eps is None else f"{eps:.2f}", f"{m['complianceScore']:.3f}",
            f"{m['accuracy']:.3f}", "–" if base else f"{m['evalLoss']:.4f}"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(r) + " |" for r in rows]]


def run(types: list[str] | None = None, quick: bool = False, partial: Path | None = None,
        sample_pipeline: bool = True, reduced: dict[str, Any] | None = None,
        compare_steps: int | None = None) -> str:
    """The report; with ``partial``, each dataset type's table is appended there as soon as it is
    measured (a long run on a busy machine leaves what it finished). ``reduced`` overrides the
    sample recipe for the per-type tables (size, maxSteps, batchSize, evalMaxExamples), for a
    machine too busy for the full recipe; the report says so."""
    import torch

    from acgs_trainer.datasets import DATASET_TYPES

    logging.getLogger("acgs_trainer").setLevel(logging.WARNING)
    types = types or (["constitutional_ai"] if quick else list(DATASET_TYPES))
    work = Path(tempfile.mkdtemp(prefix="acgs-bench-quality-"))
    sample = _sample_config()  # one recipe for every type: the sample TrainingJob's settings
    size = sample["data"].rsplit(":", 1)[1]
    recipe = dict(sample)
    if reduced:
        size = str(reduced.pop("size", size))
        recipe.update(reduced)
    modules = ",".join(sample.get("loraTargetModules") or ["all linear projections"])
    lines = ["## training quality (bench/training/bench_quality.py)", "",
             f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads. Base: "
             "builtin:tiny-llama pre-trained on the public half of the scenario space (shipped "
             "build; not timed here). Fine-tuning, the sample TrainingJob's settings for every "
             f"type{' (REDUCED from the sample recipe for time)' if reduced else ''}: LoRA "
             f"r={recipe['loraR']} on {modules}, {size} generated records "
             f"(private half), {recipe['maxSteps']} steps, expected batch {recipe['batchSize']}, "
             f"lr {recipe['lr']}, clipping norm {recipe['maxGradNorm']}, held-out examples ≤ "
             f"{recipe.get('evalMaxExamples', 200)}; DP: Poisson sampling, "
             "RDP accountant, δ = 1e-5. Held-out: the trainer's own eval split, scored from the "
             "models' greedy generations; the base is scored on the same records.", ""]
    verdicts = []
    for dataset_type in ([] if types == ["none"] else types):
        common = {**recipe, "data": f"generated:{dataset_type}:{size}"}
        rows = []
        plain, seconds = _train({**common, "dp": False, "noiseMultiplier": None},
                                work / f"{dataset_type}-nodp")
        rows += [_row("base (before fine-tuning)", plain, 0, base=True),
                 _row("fine-tune, no DP", plain, seconds)]
        for eps in EPSILONS:
            dp, seconds = _train({**common, "dp": True, "targetEpsilon": eps},
                                 work / f"{dataset_type}-dp{eps:g}")
            rows.append(_row(f"fine-tune, DP ε ≤ {eps:g}", dp, seconds))
            if eps == 8.0:
                ratio = dp["metrics"]["accuracy"] / max(plain["metrics"]["accuracy"], 1e-9)
                verdicts.append(f"| {dataset_type} | {ratio:.3f} | ≥ {UTILITY_RATIO} | "
                                f"{'met' if ratio >= UTILITY_RATIO else 'not met'} |")
        section = [f"### {dataset_type}", "",
                   *_table(["model", "steps", "wall s", "ε spent", "compliance", "accuracy", "eval loss"], rows),
                   "", verdicts[-1], ""]
        lines += section[:-2]
        if partial is not None:
            with partial.open("a", encoding="utf-8") as f:
                f.write("\n".join(section) + "\n")
    if verdicts:
        lines += ["### DP accuracy at ε = 8 ÷ non-DP accuracy (same data, steps)", "",
                  "| dataset type | ratio | target | |", "|---|---|---|---|", *verdicts, ""]
    if not sample_pipeline:
        return "\n".join(lines)
    lines += sample_section(sample, work, compare_steps)
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--types", help="comma-separated dataset types (default: all six; none: "
                        "only the sample pipeline)")
    parser.add_argument("--quick", action="store_true", help="constitutional_ai only")
    parser.add_argument("--partial", type=Path, help="append each type's table here as it is done")
    parser.add_argument("--no-sample", action="store_true", help="skip the sample pipeline run")
    parser.add_argument("--reduced", metavar="JSON", help='override the per-type recipe, e.g. '
                        '{"size": 800, "maxSteps": 40, "batchSize": 32, "evalMaxExamples": 100}')
    parser.add_argument("--compare-steps", type=int, help="also time the sample at this many "
                        "steps, interleaved with the shipped recipe")
    args = parser.parse_args()
    import json

    print(run(args.types.split(",") if args.types else None, args.quick, args.partial,
              not args.no_sample, json.loads(args.reduced) if args.reduced else None,
              args.compare_steps))
