"""Privacy budget: noise calibration, the RDP accountant, and the 95 % halt.

Noise is calibrated so the *planned* run spends at most CALIBRATION_FRACTION of the target ε. The
halt is the guard for everything else (a fixed --noise-multiplier, more steps than planned): before
each step the trainer asks whether that step would take ε past HALT_FRACTION of the target, and
stops first, so the reported ε never exceeds the target.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

from opacus.accountants import RDPAccountant
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

    @property
    def steps(self) -> int:
        return sum(n for _, _, n in self.accountant.history)

    @property
    def halt_epsilon(self) -> float:
        return HALT_FRACTION * self.target_epsilon

    def spent(self) -> float:
        if not self.accountant.history:
            return 0.0
        return float(self.accountant.get_epsilon(delta=self.target_delta))

    def epsilon_after_next_step(self) -> float:
        probe = RDPAccountant()
        probe.history = copy.deepcopy(self.accountant.history)
        probe.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        return float(probe.get_epsilon(delta=self.target_delta))

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
