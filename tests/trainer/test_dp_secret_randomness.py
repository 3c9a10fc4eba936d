"""DP noise and batch membership come from the run's secret, never from the public seed; the secret
stays in the run's private directory; checkpoints load without unpickling code; the released loss
is the noised one; ε recomputed by an independent accountant from what the run published.
"""

from __future__ import annotations

import json
import math
import pickle
import stat
from pathlib import Path
from typing import Any

import pytest
import torch

from acgs_trainer.checkpoint import SECRET_KEY_FILE, Checkpointer
from acgs_trainer.secret_randomness import GRADIENT_NOISE, SecretRandomness, new_key

from .conftest import read_result


# -- the secret's draws ----------------------------------------------------------------------------
def test_draws_are_a_function_of_the_secret_key_alone() -> None:
    key = new_key()
    a, b, other = SecretRandomness(key), SecretRandomness(key), SecretRandomness(new_key())
    assert torch.equal(a.poisson_batch(7, 500, 0.1), b.poisson_batch(7, 500, 0.1))
    assert (a.gaussian(GRADIENT_NOISE, 7, 2, (3, 4)) == b.gaussian(GRADIENT_NOISE, 7, 2, (3, 4))).all()
    assert not torch.equal(a.poisson_batch(7, 500, 0.1), other.poisson_batch(7, 500, 0.1))
    assert not torch.equal(a.poisson_batch(7, 500, 0.1), a.poisson_batch(8, 500, 0.1))
    assert (a.gaussian(GRADIENT_NOISE, 7, 2, (64,)) != other.gaussian(GRADIENT_NOISE, 7, 2, (64,))).all()
    # Poisson membership at rate q, unit-variance noise (sum of four halved)
    sizes = [len(a.poisson_batch(s, 1000, 0.05)) for s in range(200)]
    assert sum(sizes) / len(sizes) == pytest.approx(50, abs=2)
    noise = a.gaussian(GRADIENT_NOISE, 0, 0, (20_000,))
    assert abs(noise.mean()) < 0.03 and noise.std() == pytest.approx(1.0, abs=0.03)
    assert "key" in repr(a) and key.hex() not in repr(a)


def test_the_released_loss_carries_its_accounted_noise() -> None:
    """Its noise std is σ_L·B / (expected batch), whatever the per-example losses are."""
    pytest.importorskip("opacus")
    from acgs_trainer.privacy import LOSS_CLIP, PrivacyBudget, noised_loss

    budget = PrivacyBudget(8.0, 1e-5, 1.1, 0.1)
    secret = SecretRandomness(new_key())
    losses = torch.tensor([0.5, 2.0, 100.0, float("nan")])  # clipped to [0, B]: 0.5+2+8+8
    released = [noised_loss(secret, step, losses, budget, 10) for step in range(3000)]
    mean = sum(released) / len(released)
    std = math.sqrt(sum((x - mean) ** 2 for x in released) / len(released))
    expected_std = budget.loss_noise_multiplier * LOSS_CLIP / 10
    assert std == pytest.approx(expected_std, rel=0.06)
    assert mean == pytest.approx((0.5 + 2.0 + 2 * LOSS_CLIP) / 10, abs=4 * expected_std / 50)


# -- the secret key file, checkpoints ----------------------------------------------------------------
def test_the_secret_key_is_private_and_reused_only_by_a_resumption(tmp_path) -> None:
    ckpt = Checkpointer(tmp_path / "checkpoints")
    first = ckpt.secret_key(reuse=True)  # nothing to reuse yet: a new one
    path = tmp_path / "checkpoints" / SECRET_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ckpt.secret_key(reuse=True) == first
    fresh = ckpt.secret_key(reuse=False)  # --no-resume: a new run, a new secret
    assert fresh != first and ckpt.secret_key(reuse=True) == fresh
    path.write_text("abcd\n")
    with pytest.raises(ValueError, match="2 bytes, expected 32"):
        ckpt.secret_key(reuse=True)


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.marker),))  # type: ignore[attr-defined]


def test_checkpoints_load_with_weights_only_and_refuse_pickled_code(tmp_path) -> None:
    import random

    import numpy as np

    ckpt = Checkpointer(tmp_path)
    ckpt.save(3, {"step": 3, "weights": {"w": torch.ones(2)}, "history": [[1.0, 0.1, 3]]})
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.random(), np.random.rand(), torch.rand(1)  # move every global generator on
    state = ckpt.load_latest()
    assert state is not None and state["step"] == 3 and torch.equal(state["weights"]["w"], torch.ones(2))
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected

    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = str(marker)  # type: ignore[attr-defined]
    evil = tmp_path / "step-00000009"
    evil.mkdir()
    torch.save({"step": 9, "x": payload, "rng": {}}, evil / "state.pt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        ckpt.load_latest()
    assert not marker.exists()


# -- real training: two runs with the same public seed -----------------------------------------------
class _RecordingTrainer:
    """Builds the real Trainer on a tiny model and records the batch each step sampled."""

    @staticmethod
    def run(tmp: Path, steps: int = 6, resume: bool = True
            ) -> tuple[list[list[int]], dict[str, torch.Tensor], Any]:
        from acgs_trainer.config import validate_config
        from acgs_trainer.constitution import load_constitution
        from acgs_trainer.datasets import generate
        from acgs_trainer.modeling import ALL_LINEAR, apply_lora, build_base_model, build_tokenizer
        from acgs_trainer.prompting import format_prompt, target_of
        from acgs_trainer.training import Trainer, encode

        records = generate("constitutional_ai", 40, load_constitution(), 1)
        prompts, targets = [format_prompt(r) for r in records], [target_of(r) for r in records]
        tok = build_tokenizer([p + " " + t for p, t in zip(prompts, targets)])
        torch.manual_seed(3)
        model = apply_lora(build_base_model("builtin:tiny-llama", len(tok), 3, tok), 4, 8, 0.0,
                           ALL_LINEAR)
        cfg = validate_config({"data": "x", "output": str(tmp), "max_steps": steps, "seed": 3,
                               "batch_size": 4, "checkpoint_every": 0, "log_every": steps,
                               "resume": resume})
        batches: list[list[int]] = []

        class Recording(Trainer):
            def _batch_indices(self, step: int) -> torch.Tensor:
                idx = super()._batch_indices(step)
                batches.append(idx.tolist())
                return idx

        trainer = Recording(cfg, model, encode(prompts, targets, tok, 64), torch.device("cpu"),
                            Checkpointer(tmp / "checkpoints"), "d", lambda *a: None)
        trainer.run()
        trainer.close()
        return batches, {n: p.detach().clone() for n, p in trainer.named.items()}, trainer


@pytest.mark.ml
def test_two_runs_with_the_same_public_seed_draw_different_batches_and_noise(tmp_path) -> None:
    pytest.importorskip("opacus")
    batches_a, weights_a, trainer_a = _RecordingTrainer.run(tmp_path / "a")
    batches_b, weights_b, _ = _RecordingTrainer.run(tmp_path / "b")
    assert len(batches_a) == len(batches_b) == 6
    assert batches_a != batches_b, "batch membership followed the public seed"
    assert all(not torch.equal(weights_a[n], weights_b[n]) for n in weights_a)
    keys = [(tmp_path / d / "checkpoints" / SECRET_KEY_FILE).read_text() for d in ("a", "b")]
    assert keys[0] != keys[1]
    # The batches are the ones the run's own secret draws, at the public sampling rate.
    secret = SecretRandomness(bytes.fromhex(keys[0].strip()))
    assert batches_a == [secret.poisson_batch(s, 40, trainer_a.sample_rate).tolist()
                         for s in range(6)]
    assert trainer_a.sample_rate == 4 / 40


@pytest.mark.ml
def test_a_checkpoint_without_its_secret_key_is_not_resumed(tmp_path) -> None:
    """Another key would redo already-released steps with other noise."""
    pytest.importorskip("opacus")
    from acgs_trainer.exitcodes import ConfigError

    Checkpointer(tmp_path / "checkpoints").save(2, {"step": 2, "data_digest": "d", "dp": True})
    with pytest.raises(ConfigError, match="not the run's secret key"):
        _RecordingTrainer.run(tmp_path)
    _RecordingTrainer.run(tmp_path, steps=1, resume=False)  # --no-resume: a new run, a new key
    assert (tmp_path / "checkpoints" / SECRET_KEY_FILE).is_file()


# -- what the baseline CLI run published --------------------------------------------------------------
@pytest.mark.ml
def test_the_secret_never_leaves_the_runs_private_directory(baseline_run) -> None:
    output = baseline_run["output"]
    assert baseline_run["proc"].returncode == 0, baseline_run["proc"].stderr[-2000:]
    key_hex = (output / "checkpoints" / SECRET_KEY_FILE).read_text().strip()
    key = bytes.fromhex(key_hex)
    published = [p for p in (output / "artifact").rglob("*") if p.is_file()]
    published += [output / "result.json", baseline_run["termination"]]
    for path in published:
        blob = path.read_bytes()
        assert key not in blob and key_hex.encode() not in blob, path
    text = json.dumps([b for b, _ in baseline_run["posts"]]) + baseline_run["proc"].stderr
    assert key_hex not in text


@pytest.mark.ml
def test_epsilon_recomputed_by_google_dp_accounting_from_what_the_run_published(baseline_run) -> None:
    dp_accounting = pytest.importorskip("dp_accounting")
    manifest = json.loads((baseline_run["output"] / "artifact" / "manifest.json").read_text())
    privacy, training = manifest["privacy"], manifest["training"]
    # the sampling rate observed from the published sizes, not the accountant's own figure
    q = training["batchSize"] * training["gradAccum"] / manifest["data"]["splitSizes"]["train"]
    assert q == pytest.approx(privacy["sampleRate"], rel=1e-12)
    sigma_eff = (privacy["noiseMultiplier"] ** -2 + privacy["lossNoiseMultiplier"] ** -2) ** -0.5
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma_eff)),
        training["steps"]))
    independent = accountant.get_epsilon(privacy["targetDelta"])
    assert independent == pytest.approx(privacy["epsilonSpent"], rel=0.01)
    assert independent < privacy["targetEpsilon"]
    assert read_result(baseline_run["output"])["epsilon"] == pytest.approx(independent, rel=0.01)
