"""Privacy budget: noise calibration, the RDP accountant, the 95 % halt, and the noised step.

Each DP step releases two things about its Poisson batch: the clipped gradient sum plus Gaussian
noise (σ·C), and the clipped per-example loss sum plus Gaussian noise (σ_L·B, with σ_L =
LOSS_NOISE_RATIO·σ) — the training loss that progress, logs and metrics report. Scaled by their
noise, each record's contribution to the pair has L2 norm ≤ sqrt(σ⁻² + σ_L⁻²), so the step is one
sampled Gaussian mechanism with noise multiplier σ_eff = (σ⁻² + σ_L⁻²)^(-1/2): the accountant
records σ_eff (``accounted_noise``), never the gradient's σ alone. docs/privacy.md states the
guarantee.

Noise is calibrated so the *planned* run spends at most CALIBRATION_FRACTION of the target ε. The
halt is the guard for everything else (a fixed --noise-multiplier, more steps than planned): before
each step the trainer asks whether that step would take ε past HALT_FRACTION of the target, and
stops first, so the reported ε never exceeds the target.

ε is computed here from the accountant's own history with Opacus' own formulas, but the per-step
RDP curve of each (noise multiplier, sampling rate) is computed once and cached: Opacus'
``compute_rdp(q, σ, steps=n)`` is exactly ``curve(q, σ) * n``, so the figures are bit-for-bit the
accountant's (``RDPAccountant.get_epsilon``), without re-deriving ~150 RDP orders (≈ 25 ms, as long
as a whole training step of the tiny model) twice per step.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.utils import get_noise_multiplier
from opacus.optimizers import DistributedDPOptimizer, DPOptimizer
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed

from .exitcodes import PrivacyBudgetExhausted
from .secret_randomness import GRADIENT_NOISE, LOSS_NOISE, SecretRandomness

log = logging.getLogger(__name__)

HALT_FRACTION = 0.95
CALIBRATION_FRACTION = 0.93  # below the halt line, with room for the calibration's tolerance
ACCOUNTANT = "rdp"
# The released loss: per-example loss clipped to [0, LOSS_CLIP] nats, noise σ_L = ratio × σ. Ratio
# 3 costs ~5 % more gradient noise for the same ε (σ = σ_eff·sqrt(1 + 1/9)).
LOSS_CLIP = 8.0
LOSS_NOISE_RATIO = 3.0


def accounted_noise(noise_multiplier: float) -> float:
    """σ_eff of a step that releases the noised gradient (σ) and the noised loss (ratio·σ)."""
    return noise_multiplier / math.sqrt(1.0 + LOSS_NOISE_RATIO ** -2)


def calibrate_noise(target_epsilon: float, target_delta: float, sample_rate: float,
                    steps: int) -> float:
    """The gradient noise multiplier σ whose σ_eff spends ≤ 93 % of the target in ``steps``."""
    budget = CALIBRATION_FRACTION * target_epsilon
    try:
        sigma_eff = float(get_noise_multiplier(target_epsilon=budget, target_delta=target_delta,
                                               sample_rate=sample_rate, steps=steps,
                                               accountant=ACCOUNTANT, epsilon_tolerance=0.005))
        return sigma_eff * math.sqrt(1.0 + LOSS_NOISE_RATIO ** -2)
    except ValueError as exc:
        raise PrivacyBudgetExhausted(
            f"--target-epsilon={target_epsilon}: no noise level reaches ε ≤ {budget:.4g} over "
            f"{steps} steps at sampling rate {sample_rate:.4g} ({exc}); raise the budget or "
            "lower --max-steps/--epochs") from exc


@dataclass
class PrivacyBudget:
    target_epsilon: float
    target_delta: float
    noise_multiplier: float
    sample_rate: float
    accountant: RDPAccountant = field(default_factory=RDPAccountant)
    _curves: dict[tuple[float, float], np.ndarray] = field(default_factory=dict, init=False,
                                                           repr=False, compare=False)

    @property
    def steps(self) -> int:
        return sum(n for _, _, n in self.accountant.history)

    @property
    def accounted_noise(self) -> float:
        return accounted_noise(self.noise_multiplier)

    @property
    def loss_noise_multiplier(self) -> float:
        return LOSS_NOISE_RATIO * self.noise_multiplier

    @property
    def halt_epsilon(self) -> float:
        return HALT_FRACTION * self.target_epsilon

    def _curve(self, noise_multiplier: float, sample_rate: float) -> np.ndarray:
        """RDP of one step at every order of the accountant (cached per (σ, q))."""
        key = (noise_multiplier, sample_rate)
        if key not in self._curves:
            self._curves[key] = rdp_analysis.compute_rdp(
                q=sample_rate, noise_multiplier=noise_multiplier, steps=1,
                orders=RDPAccountant.DEFAULT_ALPHAS)
        return self._curves[key]

    def _epsilon(self, history: list[tuple[float, float, int]]) -> float:
        """``RDPAccountant.get_epsilon`` for this history, term for term."""
        if not history:
            return 0.0
        rdp = sum([self._curve(s, q) * n for s, q, n in history])
        eps, _ = rdp_analysis.get_privacy_spent(orders=RDPAccountant.DEFAULT_ALPHAS, rdp=rdp,
                                                delta=self.target_delta)
        return float(eps)

    def spent(self) -> float:
        return self._epsilon(self.accountant.history)

    def epsilon_after_next_step(self) -> float:
        probe = RDPAccountant()
        probe.history = copy.deepcopy(self.accountant.history)
        probe.step(noise_multiplier=self.accounted_noise, sample_rate=self.sample_rate)
        return self._epsilon(probe.history)

    def check_next_step(self) -> None:
        """Raise PrivacyBudgetExhausted if the next step would pass 95 % of the target."""
        nxt = self.epsilon_after_next_step()
        if nxt > self.halt_epsilon:
            raise PrivacyBudgetExhausted(
                f"privacy budget: ε would reach {nxt:.4f} after step {self.steps + 1}, past "
                f"{HALT_FRACTION:.0%} of --target-epsilon={self.target_epsilon} "
                f"(ε spent {self.spent():.4f} after {self.steps} steps)")

    def record_step(self) -> None:
        self.accountant.step(noise_multiplier=self.accounted_noise, sample_rate=self.sample_rate)

    def history(self) -> list[list[float]]:
        return [[float(s), float(q), int(n)] for s, q, n in self.accountant.history]

    def restore(self, history: list[list[float]]) -> None:
        self.accountant.history = [(float(s), float(q), int(n)) for s, q, n in history]

    def summary(self) -> dict[str, object]:
        return {"enabled": True, "accountant": ACCOUNTANT, "targetEpsilon": self.target_epsilon,
                "targetDelta": self.target_delta, "epsilonSpent": self.spent(),
                "noiseMultiplier": self.noise_multiplier,
                "accountedNoiseMultiplier": self.accounted_noise,
                "lossNoiseMultiplier": self.loss_noise_multiplier, "lossClip": LOSS_CLIP,
                "sampleRate": self.sample_rate,
                "steps": self.steps, "haltFraction": HALT_FRACTION,
                "accountantHistory": self.history()}


class SecretNoiseDPOptimizer(DPOptimizer):
    """Opacus' DPOptimizer with its Gaussian noise drawn from the run's secret randomness.

    Opacus draws noise with ``torch.normal(generator=...)``; a torch generator holds at most a
    64-bit seed (32 bits on CPU), so the noise comes from ``SecretRandomness`` instead, per
    (step, parameter index): a resumed run redraws exactly the noise it would have drawn.
    """

    def __init__(self, *args: object, secret: SecretRandomness, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.secret = secret
        self.noise_step = 0  # set by the trainer before each step

    def add_noise(self) -> None:
        _add_secret_noise(self)


class SecretNoiseDistributedDPOptimizer(DistributedDPOptimizer):
    """Opacus' distributed DP optimizer (the noise once, on rank 0; the noised sums of every rank
    added up) with rank 0's noise from the run's secret randomness. Each rank divides by its share
    of the expected batch (expected / world size) and the all-reduce averages, so the update is
    (Σ clipped gradients of the global batch + noise) / the global expected batch: the one-process
    step, hence the same ε for the same global batch, noise and steps."""

    def __init__(self, *args: object, secret: SecretRandomness, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.secret = secret
        self.noise_step = 0

    def add_noise(self) -> None:
        if self.rank == 0:
            _add_secret_noise(self)
        else:
            for p in self.params:
                p.grad = p.summed_grad.view_as(p)


def _add_secret_noise(opt: SecretNoiseDPOptimizer | SecretNoiseDistributedDPOptimizer) -> None:
    std = opt.noise_multiplier * opt.max_grad_norm
    for index, p in enumerate(opt.params):
        _check_processed_flag(p.summed_grad)
        unit = opt.secret.gaussian(GRADIENT_NOISE, opt.noise_step, index,
                                   tuple(p.summed_grad.shape))
        noise = torch.from_numpy(unit * np.float32(std)).to(device=p.summed_grad.device,
                                                            dtype=p.summed_grad.dtype)
        p.grad = (p.summed_grad + noise).view_as(p)
        _mark_as_processed(p.summed_grad)


def noised_loss(secret: SecretRandomness, step: int, per_example: torch.Tensor,
                budget: PrivacyBudget, expected_batch: int,
                gang_sum: Callable[[float], float] = float) -> float:
    """The step's released loss: (Σ clip(loss_i, 0, B) + N(0, (σ_L·B)²)) / expected batch size.

    The denominator is the public expected batch size, not the (private) sampled one. In a gang,
    ``gang_sum`` adds the ranks' clipped sums, so Σ runs over the global batch and every rank
    draws the same noise from the shared key: one release, as in one process.
    """
    clipped = gang_sum(float(torch.nan_to_num(per_example, nan=LOSS_CLIP).clamp(0.0, LOSS_CLIP).sum()))
    unit = float(secret.gaussian(LOSS_NOISE, step, 0, ()))
    return (clipped + unit * budget.loss_noise_multiplier * LOSS_CLIP) / max(1, expected_batch)
