"""Leader election's decision (leader.decide) and its timing rules: pure, no cluster. The cluster
chaos test (tests/chaos/test_operator_ha.py) runs two real operator processes."""

from __future__ import annotations

import pytest

from acgs_operator.config import Settings
from acgs_operator.leader import Move, Observed, Timing, decide

T = Timing(lease_seconds=15, renew_deadline_seconds=10, retry_seconds=2)


def lease(holder: str | None, renew: str = "2026-01-01T00:00:00.000000Z", transitions: int = 0) -> dict:
    return {"metadata": {"resourceVersion": "1"},
            "spec": {"holderIdentity": holder, "renewTime": renew, "leaseTransitions": transitions}}


def test_no_lease_is_created():
    assert decide(None, "a", Observed(), 0.0, T) == Move.CREATE


def test_own_lease_is_renewed():
    assert decide(lease("a"), "a", Observed(), 0.0, T) == Move.RENEW


def test_released_lease_is_taken_at_once():
    assert decide(lease(None), "b", Observed(), 0.0, T) == Move.TAKE


def test_a_renewing_holder_is_never_overtaken():
    seen = Observed()
    for second in range(0, 60, 2):  # the holder renews every 2 s: the record changes each look
        stamp = f"2026-01-01T00:00:{second:02d}.000000Z"
        assert decide(lease("a", stamp), "b", seen, float(second), T) == Move.WAIT


def test_a_silent_holder_is_taken_over_after_a_full_lease_on_the_candidates_own_clock():
    seen = Observed()
    assert decide(lease("a"), "b", seen, 100.0, T) == Move.WAIT  # first sight starts the clock
    assert decide(lease("a"), "b", seen, 114.9, T) == Move.WAIT
    assert decide(lease("a"), "b", seen, 115.0, T) == Move.TAKE


def test_a_renewtime_far_in_the_past_does_not_shorten_the_wait():
    """Clock skew: an old-looking renewTime is not trusted; only an unchanged record for a full lease."""
    seen = Observed()
    assert decide(lease("a", "1999-01-01T00:00:00.000000Z"), "b", seen, 5.0, T) == Move.WAIT


@pytest.mark.parametrize("lease_s,deadline_s,retry_s", [(10, 10, 2), (15, 10, 10), (5, 10, 2)])
def test_unsafe_timing_is_refused_naming_the_settings(lease_s: float, deadline_s: float, retry_s: float):
    env = {"ACGS_LEADER_LEASE_SECONDS": str(lease_s), "ACGS_LEADER_RENEW_DEADLINE_SECONDS": str(deadline_s),
           "ACGS_LEADER_RETRY_SECONDS": str(retry_s)}
    with pytest.raises(ValueError, match="ACGS_LEADER_LEASE_SECONDS"):
        Settings.from_env(env)


def test_default_timing_leaves_a_margin_between_giving_up_and_expiry():
    timing = Settings().leader_timing
    assert timing.lease_seconds - timing.renew_deadline_seconds >= 2 * timing.retry_seconds


def test_the_manifests_run_two_replicas_with_a_disruption_budget_and_distinct_identities():
    from pathlib import Path

    import yaml

    docs = list(yaml.safe_load_all((Path(__file__).resolve().parents[2] / "manifests/base/operator.yaml").read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["ACGS_LEADER_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert {c["topologyKey"] for c in pod["spec"]["topologySpreadConstraints"]} == {
        "kubernetes.io/hostname", "topology.kubernetes.io/zone"}
