"""The budget's ε (cached per-step RDP curves, for speed) is exactly the Opacus accountant's."""

from __future__ import annotations

import pytest

pytest.importorskip("opacus")


@pytest.mark.parametrize("sigma,q", [(0.9, 16 / 600), (0.55, 0.2)])
def test_cached_epsilon_is_the_accountants_own_figure(sigma: float, q: float) -> None:
    from opacus.accountants import RDPAccountant

    from acgs_trainer.privacy import PrivacyBudget

    budget = PrivacyBudget(8.0, 1e-5, sigma, q)
    budget.restore([[1.1, q, 7]])  # a history that starts with another noise level
    for _ in range(40):
        probe = RDPAccountant()
        probe.history = list(budget.accountant.history)
        probe.step(noise_multiplier=sigma, sample_rate=q)
        assert budget.epsilon_after_next_step() == probe.get_epsilon(delta=1e-5)
        budget.record_step()
        assert budget.spent() == budget.accountant.get_epsilon(delta=1e-5)
