"""Privacy budget: noise calibration, the RDP accountant, and the 95 % halt.

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
from dataclasses import dataclass, field

import numpy as np
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.utils import get_noise_multiplier

from .exitcodes import PrivacyBudgetExhausted

log = logging.getLogger(__name__)

HALT_FRACTION = 0.95
CALIBRATION_FRACTION = 0.93  # below the halt line, with room for the calibration's tolerance
ACCOUNTANT = "rdp"


def calibrate_noise(target_epsilon: float, target_delta: float, sample_rate: float,
                    steps: int) -> float:
    budget = CALIBRATION_FRACTION * target_epsilon
    try:
        return float(get_noise_multiplier(target_epsilon=budget, target_delta=target_delta,
                                          sample_rate=sample_rate, steps=steps,
                                          accountant=ACCOUNTANT, epsilon_tolerance=0.005))
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
        probe.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
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
        self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)

    def history(self) -> list[list[float]]:
        return [[float(s), float(q), int(n)] for s, q, n in self.accountant.history]

    def restore(self, history: list[list[float]]) -> None:
        self.accountant.history = [(float(s), float(q), int(n)) for s, q, n in history]

    def summary(self) -> dict[str, object]:
        return {"enabled": True, "accountant": ACCOUNTANT, "targetEpsilon": self.target_epsilon,
                "targetDelta": self.target_delta, "epsilonSpent": self.spent(),
                "noiseMultiplier": self.noise_multiplier, "sampleRate": self.sample_rate,
                "steps": self.steps, "haltFraction": HALT_FRACTION,
                "accountantHistory": self.history()}
