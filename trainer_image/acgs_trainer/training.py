"""SFT loop: loss on target tokens, grad accumulation, clipping, LR schedule, optional DP-SGD,
checkpoints that carry everything a resumed run needs (weights, optimizer, schedule, step, RNG,
accountant history).

Batches are a pure function of (seed, step) without DP (shuffled epochs, public seed). With DP,
Poisson batch membership, gradient noise and the released loss's noise are a pure function of
(the run's secret key, step) (``secret_randomness``; the public seed never touches them). A resumed
run therefore sees exactly the batches and noise the killed run would have seen.

In a gang (torchrun, ``distributed.Gang``) every rank draws the same global batch and trains on its
share; gradients are summed over the gang (DDP, or Opacus' distributed DP optimizer with DP), so
the run takes the steps one process would take with the same global batch: the same sampling rate,
noise and steps, hence the same ε. Rank 0 alone holds the checkpoints and the secret key and hands
them to the others when a gang resumes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from .checkpoint import Checkpointer
from .config import TrainConfig
from .distributed import Gang
from .exitcodes import ConfigError, PrivacyBudgetExhausted
from .privacy import (PrivacyBudget, SecretNoiseDistributedDPOptimizer, SecretNoiseDPOptimizer,
                      calibrate_noise, noised_loss)
from .secret_randomness import SecretRandomness, new_key

log = logging.getLogger(__name__)


@dataclass
class EncodedData:
    input_ids: torch.Tensor  # (N, L), right-padded
    attention_mask: torch.Tensor
    labels: torch.Tensor  # -100 except on target tokens

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


def encode(prompts: Sequence[str], targets: Sequence[str], tokenizer: Any, max_len: int
           ) -> EncodedData:
    """prompt + " " + target + EOS; labels only on target and EOS, so the loss is SFT on answers."""
    rows: list[tuple[list[int], list[int]]] = []
    for prompt, target in zip(prompts, targets):
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        t_ids = tokenizer(" " + target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        p_ids = p_ids[-max(1, max_len - len(t_ids)):]  # keep the end of the prompt (the marker)
        rows.append((p_ids, t_ids))
    length = max(len(p) + len(t) for p, t in rows)
    ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    labels = torch.full((len(rows), length), -100, dtype=torch.long)
    for i, (p, t) in enumerate(rows):
        seq = p + t
        ids[i, :len(seq)] = torch.tensor(seq)
        mask[i, :len(seq)] = 1
        labels[i, len(p):len(seq)] = torch.tensor(t)
    return EncodedData(ids, mask, labels)


def sequence_losses(model: Any, batch: EncodedData | dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-example mean loss over its target tokens, shape (B,).

    Per-example (not per-token over the batch) so that, under DP, each example's gradient depends
    on that example alone.
    """
    ids, mask, labels = ((batch.input_ids, batch.attention_mask, batch.labels)
                         if isinstance(batch, EncodedData)
                         else (batch["input_ids"], batch["attention_mask"], batch["labels"]))
    # input_ids positional: Opacus' ExpandedWeights wrapper reads the batch size from argument 0
    logits = model(ids, attention_mask=mask).logits[:, :-1].float()
    shifted = labels[:, 1:]
    ce = F.cross_entropy(logits.transpose(1, 2), shifted.clamp(min=0), reduction="none")
    valid = (shifted != -100).float()
    return (ce * valid).sum(1) / valid.sum(1).clamp(min=1.0)


def _slice(data: EncodedData, idx: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
    mask = data.attention_mask[idx]
    width = int(mask.sum(1).max().item()) if len(idx) else 1  # trim shared right padding
    return {"input_ids": data.input_ids[idx, :width].to(device),
            "attention_mask": mask[:, :width].to(device),
            "labels": data.labels[idx, :width].to(device)}


def planned_steps(cfg: TrainConfig, n_train: int) -> int:
    if cfg.max_steps is not None:
        return cfg.max_steps
    per_epoch = math.ceil(n_train / (cfg.batch_size * cfg.grad_accum))
    return max(1, math.ceil((cfg.epochs or 1.0) * per_epoch))


def _schedule(cfg: TrainConfig, total: int) -> Callable[[int], float]:
    warmup = int(cfg.warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.lr_schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        if cfg.lr_schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return max(0.0, 1.0 - progress)
    return factor


@dataclass
class TrainOutcome:
    steps: int
    planned_steps: int
    final_loss: float | None
    resumed_from: int | None
    budget: PrivacyBudget | None
    step_seconds: list[float] = field(default_factory=list)
    examples: int = 0


class Trainer:
    grad_sample_mode = "hooks"  # or "ew" without autocast: see _enable_dp

    def __init__(self, cfg: TrainConfig, model: Any, data: EncodedData, device: torch.device,
                 checkpointer: Checkpointer, data_digest: str,
                 on_log: Callable[[int, int, float | None, float | None], None],
                 gang: Gang | None = None) -> None:
        self.cfg, self.model, self.data, self.device = cfg, model, data, device
        self.gang = gang or Gang()
        self.checkpointer, self.data_digest, self.on_log = checkpointer, data_digest, on_log
        self.total = planned_steps(cfg, len(data))
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.named = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.logical_batch = cfg.batch_size * cfg.grad_accum
        self.sample_rate = min(1.0, self.logical_batch / len(data))
        self.optimizer: Any = torch.optim.AdamW(self.params, lr=cfg.lr,
                                                weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(cfg, self.total))
        self.budget: PrivacyBudget | None = None
        self.secret: SecretRandomness | None = None
        # The public expected batch size q·n: the DP mean's denominator, and what the examples
        # counter adds per DP step (the sampled sizes are private).
        self.expected_batch = max(1, round(self.sample_rate * len(data)))
        self.forward_model: Any = model
        self.autocast = device.type == "cuda" and cfg.bf16

    # -- DP setup -------------------------------------------------------------------------------
    def _enable_dp(self, noise_multiplier: float, secret_key: bytes | None = None) -> None:
        from opacus import GradSampleModule

        self.secret = SecretRandomness(secret_key or new_key())
        self.budget = PrivacyBudget(self.cfg.target_epsilon, self.cfg.target_delta,
                                    noise_multiplier, self.sample_rate)
        # Per-sample gradients of the trainable parameters only (the LoRA matrices): Opacus puts
        # hooks on modules that own a trainable parameter, so frozen layers compute none.
        # grad_sample_mode="ew" (Opacus' ExpandedWeights, fp32 only: its backward multiplies bf16
        # gradients with fp32 weights) makes the DP step ~13 % faster on CPU but applies the 1/n
        # of the mean loss in another order, so weights (and artifact digests) differ from the
        # hooks' in the last bits; the default keeps the hooks (bench/training/PROFILE.md).
        wrapped: Any = self.model
        if self.gang.active:
            from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP

            wrapped = DPDDP(self.model)  # rank 0's weights everywhere; the optimizer reduces
        if self.grad_sample_mode == "ew" and not self.autocast and not self.gang.active:
            from opacus.grad_sample.gsm_exp_weights import GradSampleModuleExpandedWeights

            GradSampleModule.validate(self.model, strict=True)  # as the hooks' constructor does
            self.forward_model = GradSampleModuleExpandedWeights(self.model, batch_first=True,
                                                                 loss_reduction="mean")
        else:
            self.forward_model = GradSampleModule(wrapped, batch_first=True,
                                                  loss_reduction="mean")
        if self.gang.active:
            # Each rank scales by its share of the expected batch; the all-reduce averages (as
            # Opacus' make_private does for a DPDDP module).
            self.optimizer = SecretNoiseDistributedDPOptimizer(
                self.optimizer, noise_multiplier=noise_multiplier,
                max_grad_norm=self.cfg.max_grad_norm,
                expected_batch_size=self.expected_batch / self.gang.world_size,
                loss_reduction="mean", secret=self.secret)
        else:
            self.optimizer = SecretNoiseDPOptimizer(
                self.optimizer, noise_multiplier=noise_multiplier,
                max_grad_norm=self.cfg.max_grad_norm, expected_batch_size=self.expected_batch,
                loss_reduction="mean", secret=self.secret)

    def _enable_ddp(self) -> None:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        self.forward_model = DDP(self.model, device_ids=ids)

    def close(self) -> None:
        if self.forward_model is not self.model:
            if hasattr(self.forward_model, "remove_hooks"):
                self.forward_model.remove_hooks()  # leave a plain peft model for eval and saving
            self.forward_model = self.model

    # -- batches --------------------------------------------------------------------------------
    def _batch_indices(self, step: int) -> torch.Tensor:
        """The global batch of ``step`` (the same on every rank of a gang)."""
        n = len(self.data)
        if self.secret is not None:
            # Poisson sampling: each example joins with probability q, independently per step.
            return self.secret.poisson_batch(step, n, self.sample_rate)
        per_epoch = math.ceil(n / self.logical_batch)
        epoch, pos = divmod(step, per_epoch)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.seed * 7919 + epoch))
        return order[pos * self.logical_batch:(pos + 1) * self.logical_batch]

    def _loss(self, idx: torch.Tensor) -> torch.Tensor:
        batch = _slice(self.data, idx, self.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            return sequence_losses(self.forward_model, batch)

    def _step_dp(self, step: int, idx: torch.Tensor) -> float:
        """One DP-SGD step on this rank's share of the global batch ``idx``; returns the step's
        noised loss (the only loss released under DP)."""
        opt = self.optimizer
        assert self.secret is not None and self.budget is not None
        opt.noise_step = step
        idx = self.gang.shard(idx)
        losses = []
        if len(idx) == 0:
            # An empty Poisson batch is still a DP step: the update is pure noise.
            for p in self.params:
                p.grad_sample = torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype)
        chunks = idx.split(self.cfg.batch_size) if len(idx) else ()
        for k, chunk in enumerate(chunks):
            per = self._loss(chunk)
            per.mean().backward()
            losses.append(per.detach().float().cpu())
            if k < len(chunks) - 1:
                opt.signal_skip_step(do_skip=True)  # clip + accumulate now, noise once at the end
                opt.step()
                opt.zero_grad()
        opt.step()
        opt.zero_grad()
        per_example = torch.cat(losses) if losses else torch.zeros(0)
        return noised_loss(self.secret, step, per_example, self.budget, self.expected_batch,
                           lambda x: self.gang.sum(x, self.device))

    def _step_plain(self, idx: torch.Tensor) -> float:
        """One step on this rank's share of the global batch ``idx``. In a gang DDP averages the
        ranks' gradients, so each rank scales its sum by world/|global batch| (a mean over the
        global batch after averaging), and syncs on its last micro-batch only."""
        mine = self.gang.shard(idx)
        chunks = list(mine.split(self.cfg.batch_size)) or [idx[:1]]  # an empty share still syncs
        world = self.gang.world_size if len(mine) else 0
        total = 0.0
        for k, chunk in enumerate(chunks):
            sync = k == len(chunks) - 1 or not self.gang.active
            with contextlib.nullcontext() if sync else self.forward_model.no_sync():
                per = self._loss(chunk)
                (per.sum() * world / len(idx)).backward()
            total += float(per.detach().sum()) if len(mine) else 0.0
        torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return self.gang.sum(total, self.device) / len(idx)

    # -- checkpoints ----------------------------------------------------------------------------
    def _state(self, step: int) -> dict[str, Any]:
        return {"step": step, "data_digest": self.data_digest, "dp": self.cfg.dp,
                "trainable": {n: p.detach().cpu().clone() for n, p in self.named.items()},
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "privacy": None if self.budget is None else {
                    "noise_multiplier": self.budget.noise_multiplier,
                    "sample_rate": self.budget.sample_rate, "history": self.budget.history()}}

    def _restore(self, state: dict[str, Any]) -> int:
        with torch.no_grad():
            for n, t in state["trainable"].items():
                self.named[n].copy_(t.to(self.named[n].device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.budget is not None and state["privacy"] is not None:
            self.budget.restore(state["privacy"]["history"])
        return int(state["step"])

    # -- the loop -------------------------------------------------------------------------------
    def _resume_point(self) -> tuple[dict[str, Any] | None, bytes | None]:
        """(the checkpoint to resume from, the run's secret DP key): rank 0's files."""
        cfg = self.cfg
        state = self.checkpointer.load_latest() if cfg.resume else None
        if state is not None and (state["data_digest"] != self.data_digest or state["dp"] != cfg.dp):
            raise ValueError(f"{self.checkpointer.root}: the checkpoint was made with other data "
                             "or --dp setting; use a fresh --output or --no-resume")
        if not cfg.dp:
            return state, None
        # Resuming with another key would redo released steps with other noise: refuse (a retry
        # cannot fix it, hence ConfigError: exit 2, not retried).
        if state is not None and not self.checkpointer.has_secret_key():
            raise ConfigError(f"--resume: {self.checkpointer.root} holds a checkpoint but not "
                              "the run's secret key, so the same noise cannot be redrawn; use "
                              "--no-resume or a fresh --output")
        try:
            return state, self.checkpointer.secret_key(reuse=cfg.resume)
        except ValueError as exc:
            raise ConfigError(f"--resume: {exc}") from exc

    def _shared_resume_point(self) -> tuple[dict[str, Any] | None, bytes | None]:
        """Rank 0's resume point on every rank; its refusal, if any, raised on every rank (so no
        rank waits for a peer that has given up). The key crosses only the gang's own links."""
        found: tuple[str, Any, Any] | None = None
        if self.gang.is_main:
            try:
                found = ("ok", *self._resume_point())
            except (ConfigError, ValueError) as exc:
                found = (type(exc).__name__, str(exc), None)
        kind, first, second = self.gang.from_main(found) or ("ok", None, None)
        if kind == "ConfigError":
            raise ConfigError(str(first))
        if kind != "ok":
            raise ValueError(str(first))
        return first, second

    def run(self) -> TrainOutcome:
        cfg = self.cfg
        state, secret_key = self._shared_resume_point()
        if not self.gang.all_equal(self.data_digest):
            raise ConfigError(f"--data={cfg.data}: the ranks of the gang read different data "
                              "(digests differ); every worker must see the same records")
        if cfg.dp:
            if state is not None and state["privacy"]:
                noise = float(state["privacy"]["noise_multiplier"])  # keep the accounting consistent
            else:
                noise = cfg.noise_multiplier or calibrate_noise(
                    cfg.target_epsilon, cfg.target_delta, self.sample_rate, self.total)
            self._enable_dp(noise, secret_key)
            log.info("DP-SGD: noise multiplier %.4f (accounted %.4f with the noised loss), "
                     "sampling rate %.5f, %d planned steps, target ε=%s δ=%s", noise,
                     self.budget.accounted_noise if self.budget else noise, self.sample_rate,
                     self.total, cfg.target_epsilon, cfg.target_delta)
        elif self.gang.active:
            self._enable_ddp()
        step = 0
        resumed_from = None
        if state is not None:
            step = resumed_from = self._restore(state)
            log.info("resumed from checkpoint at step %d (ε spent so far %.4f)", step,
                     self.budget.spent() if self.budget else 0.0)
        self.model.train()  # from_pretrained leaves models in eval mode
        outcome = TrainOutcome(step, self.total, None, resumed_from, self.budget)
        window: list[float] = []
        try:
            while step < self.total:
                if self.budget is not None:
                    self.budget.check_next_step()
                started = time.perf_counter()
                idx = self._batch_indices(step)
                outcome.examples += self.expected_batch if self.budget is not None else len(idx)
                loss = (self._step_dp(step, idx) if self.budget is not None
                        else self._step_plain(idx))
                if self.budget is not None:
                    self.budget.record_step()
                self.scheduler.step()
                step += 1
                outcome.step_seconds.append(time.perf_counter() - started)
                if loss is not None and math.isfinite(loss):
                    window.append(loss)
                if step % cfg.log_every == 0 or step == self.total:
                    mean = sum(window) / len(window) if window else None
                    outcome.final_loss = mean if mean is not None else outcome.final_loss
                    window = []
                    self.on_log(step, self.total, mean, self.budget.spent() if self.budget else None)
                if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0
                        and step < self.total and self.gang.is_main):
                    self.checkpointer.save(step, self._state(step))
        except PrivacyBudgetExhausted:
            if step > (resumed_from or 0) and self.gang.is_main:
                self.checkpointer.save(step, self._state(step))
            raise
        finally:
            outcome.steps = step
        return outcome
