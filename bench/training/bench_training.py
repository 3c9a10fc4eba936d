"""Training benchmark: the trainer's step and loop against baselines measured in the same run.

  (a) DP-SGD step / plain step   the trainer's own `_step_dp` (per-sample grads, clipping, noise)
                                 plus the privacy accounting the loop does around it, against
                                 `_step_plain` (clip_grad_norm_ + AdamW) on the same batches, same
                                 LoRA parameters, same model copy; interleaved, median of steps
                                 after warm-up. Target ≤ 1.4×.
  (b) our loop / HF Trainer      `Trainer.run()` (no DP) against `transformers.Trainer` + peft on
                                 the same model, LoRA config, batches, steps, optimizer and
                                 schedule: steady-state step time (gaps between consecutive step
                                 ends after warm-up steps, set-up excluded on both sides), real
                                 (non-pad) tokens per second from it; runs alternated, median of
                                 the pooled steps. Target ≥ 1.0×.
  (b′) set-up                    construction up to the first step (ours: Trainer() and run()'s
                                 preamble; HF: Trainer(), then optimizer, accelerator and
                                 dataloader inside train()); the model copy is outside both.

builtin:tiny-llama (overhead-bound) and builtin:llama-100m (compute-bound; batch 4 and a few steps on
CPU, batch 16 and bf16 autocast on CUDA, which is used automatically when available).

    python bench/training/bench_training.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

DP_TARGET = 1.4  # DP step time / plain step time, at most
HF_TARGET = 1.0  # our tokens/s / HF Trainer tokens/s, at least


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _threads() -> int:
    """One intra-op thread on a small shared CPU box (2 cores shared with other jobs): with two,
    OpenMP threads spin-wait on a busy core and step times swing 10×. Both sides get the same."""
    import torch

    if not torch.cuda.is_available() and (os.cpu_count() or 1) <= 2:
        torch.set_num_threads(1)
    return torch.get_num_threads()


# -- (a) DP step vs plain step ----------------------------------------------------------------
def _epsilon_uncached(budget: Any) -> float:
    """The 95 % check as first written: a fresh accountant re-derives every RDP order."""
    import copy

    from opacus.accountants import RDPAccountant

    probe = RDPAccountant()
    probe.history = copy.deepcopy(budget.accountant.history)
    probe.step(noise_multiplier=budget.noise_multiplier, sample_rate=budget.sample_rate)
    return float(probe.get_epsilon(delta=budget.target_delta))


def dp_step_ratio(w: Any, steps: int, warmup: int, block: int = 4, record: bool = True
                  ) -> dict[str, Any]:
    """Median step time of: no DP; DP as the trainer runs it; and, for the record, DP as first
    written (the uncached ε check) and DP with Opacus' ExpandedWeights mode (not the default:
    see PROFILE.md). Same batches for all, interleaved in blocks, first mover rotating."""
    import statistics

    import torch

    from acgs_trainer.privacy import calibrate_noise

    total = steps + warmup
    noise = calibrate_noise(8.0, 1e-5, min(1.0, w.batch_size / len(w.data)), total)
    plain = w.trainer(dp=False, steps=total)
    variants: dict[str, Any] = {"plain": plain}
    modes = {"dp": None, "dp_ew": "ew", "dp_first": "hooks"}
    if w.bf16 or not record:
        modes.pop("dp_ew")  # ExpandedWeights cannot run under autocast
    if not record:
        modes.pop("dp_first")
    for name, mode in modes.items():
        tr = w.trainer(dp=True, steps=total)
        if mode:
            tr.grad_sample_mode = mode
        tr._enable_dp(noise)
        variants[name] = tr
    for tr in variants.values():
        tr.model.train()
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randperm(len(w.data), generator=gen)[:w.batch_size] for _ in range(total)]

    def step(name: str, i: int, idx: torch.Tensor) -> None:
        tr = variants[name]
        if name == "plain":
            tr._step_plain(idx)
        else:  # what the loop does around a DP step: the 95 % halt check and the accountant
            if name == "dp_first":
                _epsilon_uncached(tr.budget)
            else:
                tr.budget.check_next_step()
            tr._step_dp(i, idx)
            tr.budget.record_step()
        tr.scheduler.step()

    times: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for start in range(0, total, block):
        for name in order:
            for i in range(start, min(start + block, total)):
                _sync(w.device)
                t0 = time.perf_counter()
                step(name, i, batches[i])
                _sync(w.device)
                if i >= warmup:
                    times[name].append(time.perf_counter() - t0)
        order = order[1:] + order[:1]  # rotate who goes first, so drift hits all alike
    for tr in variants.values():
        tr.close()
    ms = {name: statistics.median(v) * 1e3 for name, v in times.items()}
    return {"ms": ms, "ratio": {n: ms[n] / ms["plain"] for n in ms}, "steps": steps}


# -- (b) our loop vs HF Trainer ---------------------------------------------------------------
class _Rows:
    """Each example at its own length; the collator pads to the batch's longest."""

    def __init__(self, data: Any) -> None:
        lengths = data.attention_mask.sum(1).tolist()
        self.rows = [{"input_ids": data.input_ids[i, :n], "attention_mask": data.attention_mask[i, :n],
                      "labels": data.labels[i, :n]} for i, n in enumerate(lengths)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


class _Collator:
    def __init__(self, pad_id: int) -> None:
        self.pad_id, self.batch_tokens = pad_id, []  # HF collates one batch ahead: count per batch

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        from torch.nn.utils.rnn import pad_sequence

        self.batch_tokens.append(sum(int(r["attention_mask"].sum()) for r in rows))
        return {"input_ids": pad_sequence([r["input_ids"] for r in rows], True, self.pad_id),
                "attention_mask": pad_sequence([r["attention_mask"] for r in rows], True, 0),
                "labels": pad_sequence([r["labels"] for r in rows], True, -100)}


class _SameBatches:
    """A sampler giving HF Trainer our trainer's batches: per epoch, the concatenation of
    ``Trainer._batch_indices`` over that epoch's steps. Same examples, same padding, so the
    ratio compares the loops, not luckier batch compositions."""

    def __init__(self, w: Any) -> None:
        import math

        self.ours = w.trainer(dp=False, steps=1)
        self.per_epoch = math.ceil(len(w.data) / w.batch_size)
        self.n, self.epoch = len(w.data), 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Any:
        first = self.epoch * self.per_epoch
        self.epoch += 1
        return iter([int(i) for s in range(first, first + self.per_epoch)
                     for i in self.ours._batch_indices(s)])


class _StepClock:
    """Step-end timestamps of one training call, and when its set-up ended (first step began)."""

    def __init__(self) -> None:
        self.called = time.perf_counter()
        self.first_step: float | None = None
        self.ends: list[float] = []

    def step_begin(self) -> None:
        if self.first_step is None:
            self.first_step = time.perf_counter()

    def step_end(self) -> None:
        self.ends.append(time.perf_counter())

    def result(self, skip: int) -> dict[str, Any]:
        """Set-up seconds (constructor to first step) and each steady step's seconds: the gaps
        between consecutive step ends after ``skip`` warm-up steps (batch fetch, forward,
        backward, optimizer and scheduler, whatever the loop does between steps)."""
        assert self.first_step is not None
        gaps = [b - a for a, b in zip(self.ends[skip:], self.ends[skip + 1:])]
        return {"setup_s": self.first_step - self.called, "steps_s": gaps}


def hf_train(w: Any, steps: int, skip: int) -> dict[str, Any]:
    """``transformers.Trainer`` + peft: set-up (Trainer construction, then optimizer, accelerator
    and dataloader inside ``train()`` up to the first step) and steady per-step seconds."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class SameBatchesTrainer(Trainer):
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return _SameBatches(w)

    class Clock(TrainerCallback):
        def on_step_begin(self, *_: Any, **__: Any) -> None:
            clock.step_begin()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            clock.step_end()

    model = w.fresh_model()  # the model copy is outside the set-up on both sides
    _sync(w.device)
    clock = _StepClock()
    args = TrainingArguments(
        output_dir=str(w.workdir / "hf"), per_device_train_batch_size=w.batch_size,
        max_steps=steps, learning_rate=2e-3, lr_scheduler_type="linear", warmup_steps=0,
        weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch", seed=0,
        logging_strategy="no", save_strategy="no", eval_strategy="no", report_to="none",
        disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False,
        use_cpu=w.device.type != "cuda", bf16=w.bf16)
    trainer = SameBatchesTrainer(model=model, args=args, train_dataset=_Rows(w.data),
                                 data_collator=_Collator(w.tokenizer.pad_token_id), callbacks=[Clock()])
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a metrics dict at the end
        trainer.train()
    _sync(w.device)
    return clock.result(skip)


def ours_train(w: Any, steps: int, skip: int) -> dict[str, Any]:
    """The trainer's own ``Trainer``: set-up (construction, then ``run()`` up to the first step)
    and steady per-step seconds, the step ends taken from its per-step log callback."""
    from acgs_trainer.checkpoint import Checkpointer
    from acgs_trainer.training import Trainer

    model = w.fresh_model()
    cfg = w.config(dp=False, steps=steps).model_copy(update={"log_every": 1})
    _sync(w.device)
    clock = _StepClock()

    def on_log(step: int, *_: Any) -> None:
        _sync(w.device)
        clock.step_end()

    trainer = Trainer(cfg, model, w.data, w.device, Checkpointer(w.workdir / "ckpt", 1), "bench", on_log)
    plain = trainer._step_plain

    def first_marked(idx: Any) -> Any:  # marks the first step's start; same work otherwise
        clock.step_begin()
        return plain(idx)

    trainer._step_plain = first_marked  # type: ignore[method-assign]
    trainer.run()
    trainer.close()
    return clock.result(skip)


def loop_ratio(w: Any, steps: int, repeats: int, skip: int = 3) -> dict[str, Any]:
    """Steady-state step time, ours and HF, alternated; set-up reported apart. Same batches on
    both sides (``_SameBatches``), so real tokens per step are the same too."""
    import statistics

    ours_train(w, skip + 2, skip)  # warm-up: first-call allocations, lazy imports
    hf_train(w, skip + 2, skip)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "hf": []}
    for r in range(repeats):
        pair = [("ours", ours_train), ("hf", hf_train)]
        for name, fn in pair if r % 2 == 0 else reversed(pair):
            runs[name].append(fn(w, steps, skip))
    ref = w.trainer(dp=False, steps=steps)
    tokens = statistics.mean(w.real_tokens(ref._batch_indices(s)) for s in range(skip + 1, steps))
    ref.close()
    step_ms = {n: statistics.median(g for run in v for g in run["steps_s"]) * 1e3 for n, v in runs.items()}
    setup_ms = {n: statistics.median(run["setup_s"] for run in v) * 1e3 for n, v in runs.items()}
    per_run = [statistics.median(h["steps_s"]) / statistics.median(o["steps_s"])
               for o, h in zip(runs["ours"], runs["hf"])]
    return {"step_ms": step_ms, "setup_ms": setup_ms, "ratio": step_ms["hf"] / step_ms["ours"],
            "min_ratio": min(per_run), "tps": {n: tokens / (ms / 1e3) for n, ms in step_ms.items()},
            "repeats": repeats, "steady_steps": steps - skip - 1}


# -- report -----------------------------------------------------------------------------------
def measure(base_model: str, quick: bool, batch_size: int = 16) -> list[str]:
    import torch

    from common import verdict
    from workload import build

    gpu = torch.cuda.is_available()
    small = base_model.endswith("tiny-llama")
    # A ~100 M model on a 2-core CPU takes ~1 s a step at batch 4: few steps, fewer examples.
    w = build(base_model, records_per_type=100 if small or gpu else 20, batch_size=batch_size)
    total = sum(p.numel() for p in w.model.parameters())
    trainable = sum(p.numel() for p in w.model.parameters() if p.requires_grad)
    dp_steps, warmup = (40, 10) if quick else ((120, 20) if small or gpu else (6, 2))
    loop_steps, repeats = (20, 2) if quick else ((60, 5) if small or gpu else (5, 3))
    a = dp_step_ratio(w, dp_steps, warmup, block=4 if small or gpu else 1, record=small or gpu)
    b = loop_ratio(w, loop_steps, repeats, skip=3 if small or gpu else 1)
    mean_tokens = float(w.data.attention_mask.sum(1).float().mean())
    precision = "bf16 autocast" if w.bf16 else "fp32"
    lines = [
        f"### {base_model} on {w.device.type} ({precision})", "",
        f"{total / 1e6:.2f} M parameters, {trainable / 1e3:.1f} k trainable (LoRA r=8, α=16 on all "
        f"linear projections), batch {w.batch_size}, {len(w.data)} examples of "
        f"{mean_tokens:.0f} tokens on average (padded to each batch's longest), "
        f"torch threads {torch.get_num_threads()}.", "",
        "| measure | ours | baseline | ratio | target | |", "|---|---|---|---|---|---|",
        f"| (a) DP-SGD step (median of {a['steps']}, ms) | {a['ms']['dp']:.2f} | "
        f"{a['ms']['plain']:.2f} (same step, no DP) | {a['ratio']['dp']:.2f}× | ≤ {DP_TARGET}× | "
        f"{verdict(a['ratio']['dp'], DP_TARGET, higher_is_better=False)} |",
        f"| (b) steady-state training tokens/s, no DP (median step of {b['steady_steps']} × "
        f"{b['repeats']} runs) | {b['tps']['ours']:,.0f} ({b['step_ms']['ours']:.2f} ms/step) | "
        f"{b['tps']['hf']:,.0f} ({b['step_ms']['hf']:.2f} ms/step, HF Trainer + peft) | {b['ratio']:.2f}× "
        f"(worst run {b['min_ratio']:.2f}×) | ≥ {HF_TARGET}× | "
        f"{verdict(b['ratio'], HF_TARGET, higher_is_better=True)} |",
        f"| (b′) set-up before the first step, ms (median of {b['repeats']}) | {b['setup_ms']['ours']:.1f} | "
        f"{b['setup_ms']['hf']:.1f} (HF Trainer + peft) | {b['setup_ms']['hf'] / b['setup_ms']['ours']:.1f}× | "
        "reported, no target | |", ""]
    if "dp_first" in a["ratio"]:
        record = (("dp_first", "as first written (ε re-derived each step)"),
                  ("dp", "now (ε from cached RDP curves)"),
                  ("dp_ew", 'with grad_sample_mode="ew" (not the default)'))
        lines += ["Before/after, same run, DP step / plain step: " + "; ".join(
            f"{label} {a['ratio'][key]:.2f}× ({a['ms'][key]:.2f} ms)"
            for key, label in record if key in a["ratio"]) + ".", ""]
    shutil.rmtree(w.workdir, ignore_errors=True)
    return lines


def run(quick: bool = False) -> str:
    import torch

    from common import machine

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    threads = _threads()
    # (model, batch size): on CPU the ~100 M model runs at batch 4 to fit the time budget
    gpu = torch.cuda.is_available()
    models = [("builtin:tiny-llama", 16), ("builtin:llama-100m", 16 if gpu else 4)]
    if quick:
        models = models[:1]
    started = time.perf_counter()
    lines = ["## training", "",
             f"Machine: {machine()}; torch {torch.__version__}, {threads} intra-op thread(s).", "",
             "(a) the trainer's DP-SGD step (Opacus per-sample gradients on the LoRA matrices, "
             "clipping, noise, the 95 % ε check and the accountant) against the same step without "
             "DP; (b) `Trainer.run()` against `transformers.Trainer` + peft, both without DP, on the "
             "same batches: steady-state step time (gaps between consecutive step ends after warm-up "
             "steps), set-up excluded on both sides and reported apart as (b′), real tokens counted. "
             "Until this run (b) timed whole calls, so HF's set-up counted against it and not ours.", ""]
    for name, batch in models:
        lines += measure(name, quick, batch)
    lines += [f"Bench wall time {time.perf_counter() - started:.0f} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (smoke test)")
    print(run(parser.parse_args().quick))
