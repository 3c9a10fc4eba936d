"""The privacy accounting, checked against Opacus' accountant and against an implementation that
shares no code with it (Google's ``dp-accounting``), and the 95 % halt.

Pure functions: no model, no training. The end-to-end checks on real runs are in
test_dp_secret_randomness.py.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("opacus")
dp_accounting = pytest.importorskip("dp_accounting")

DELTA = 1e-5


def google_epsilon(history: list[tuple[float, float, int]], delta: float = DELTA) -> float:
    """ε of a DP-SGD history by dp-accounting's own RDP accountant (its default orders)."""
    accountant = dp_accounting.rdp.RdpAccountant()
    for sigma, q, steps in history:
        accountant.compose(dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), int(steps)))
    return float(accountant.get_epsilon(delta))


@pytest.mark.parametrize("sigma,q", [(0.9, 16 / 600), (0.55, 0.2)])
def test_cached_epsilon_is_the_accountants_own_figure(sigma: float, q: float) -> None:
    from opacus.accountants import RDPAccountant

    from acgs_trainer.privacy import PrivacyBudget

    budget = PrivacyBudget(8.0, DELTA, sigma, q)
    budget.restore([[1.1, q, 7]])  # a history that starts with another noise level
    for _ in range(15):
        probe = RDPAccountant()
        probe.history = list(budget.accountant.history)
        probe.step(noise_multiplier=budget.accounted_noise, sample_rate=q)
        assert budget.epsilon_after_next_step() == probe.get_epsilon(delta=DELTA)
        budget.record_step()
        assert budget.spent() == budget.accountant.get_epsilon(delta=DELTA)


def test_each_step_is_accounted_with_the_loss_release_folded_in() -> None:
    """A step releases the noised gradient (σ) and the noised loss (σ_L = 3σ): one sampled Gaussian
    with σ_eff = (σ⁻² + σ_L⁻²)^-½, strictly noisier in ε than the gradient alone."""
    from acgs_trainer.privacy import LOSS_NOISE_RATIO, PrivacyBudget

    budget = PrivacyBudget(8.0, DELTA, 1.2, 0.05)
    budget.record_step()
    sigma_eff = 1.0 / math.sqrt(1.2 ** -2 + (LOSS_NOISE_RATIO * 1.2) ** -2)
    assert budget.accountant.history == [(pytest.approx(sigma_eff, rel=1e-12), 0.05, 1)]
    assert budget.spent() > google_epsilon([(1.2, 0.05, 1)])


@pytest.mark.parametrize("sigma,q,steps", [
    (1.0107, 1 / 6, 30),      # a tiny CPU run
    (1.2, 8 / 96, 200),       # the end-to-end tests' baseline shape
    (0.9, 16 / 600, 1000),
    (2.0, 0.01, 5000),
])
def test_epsilon_agrees_with_an_independent_accountant_within_1_percent(sigma, q, steps) -> None:
    from acgs_trainer.privacy import PrivacyBudget

    budget = PrivacyBudget(8.0, DELTA, sigma, q)
    budget.restore([[budget.accounted_noise, q, steps]])
    independent = google_epsilon([(budget.accounted_noise, q, steps)])
    assert budget.spent() == pytest.approx(independent, rel=0.01)


@pytest.mark.parametrize("target,sigma,q", [(2.0, 1.5, 16 / 120), (1.0, 2.0, 0.02),
                                            (8.0, 0.7, 0.1), (0.5, 5.0, 0.05)])
def test_the_halt_stops_before_95_percent_and_no_accountant_sees_an_overshoot(target, sigma,
                                                                             q) -> None:
    from acgs_trainer.exitcodes import PrivacyBudgetExhausted
    from acgs_trainer.privacy import PrivacyBudget

    budget = PrivacyBudget(target, DELTA, sigma, q)
    with pytest.raises(PrivacyBudgetExhausted, match="past 95% of --target-epsilon"):
        for _ in range(100_000):
            budget.check_next_step()
            budget.record_step()
    spent = budget.spent()
    assert budget.steps >= 1 and spent <= 0.95 * target
    assert budget.epsilon_after_next_step() > 0.95 * target  # it stopped at the last safe step
    independent = google_epsilon([(s, qq, n) for s, qq, n in budget.accountant.history])
    assert independent <= target and independent == pytest.approx(spent, rel=0.01)


def test_calibrated_noise_plans_at_most_93_percent_of_the_target() -> None:
    from acgs_trainer.privacy import PrivacyBudget, calibrate_noise

    q, steps = 8 / 96, 200
    sigma = calibrate_noise(8.0, DELTA, q, steps)
    budget = PrivacyBudget(8.0, DELTA, sigma, q)
    budget.restore([[budget.accounted_noise, q, steps]])
    assert 0.9 * 8.0 <= budget.spent() <= 0.93 * 8.0
    assert google_epsilon([(budget.accounted_noise, q, steps)]) < 0.95 * 8.0
