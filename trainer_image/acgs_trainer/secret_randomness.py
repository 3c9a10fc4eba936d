"""The secret randomness of DP-SGD: Poisson batch membership, gradient noise, loss noise.

DP-SGD's guarantee assumes the adversary cannot predict the noise or which records a step sampled.
So none of it may derive from anything published (``spec.training.seed`` is in the ConfigMap and
the manifest): every draw comes from a 256-bit key read from the OS CSPRNG (``secrets``) when a run
starts. The public seed keeps the non-private choices only (initialisation, split, dropout).

Every draw is a pure function of (key, purpose, step, index): a generator is derived for it through
NumPy's ``SeedSequence`` (hash-mixing of all 256 bits) into a Philox counter-based generator. A
resumed run therefore needs only the key, which the checkpointer keeps beside the checkpoints, in
the run's private output directory, never in the artifact.

Why not torch generators: ``torch.Generator().manual_seed(s)`` on CPU keeps only the low 32 bits of
``s`` (a 2**32 search would recover the noise), and a CUDA generator's 64-bit seed is still far less
than the key.
"""

from __future__ import annotations

import secrets

import numpy as np
import torch

KEY_BYTES = 32

# Purposes: independent streams per use, so adding a draw of one kind never shifts another.
BATCH = 0
GRADIENT_NOISE = 1
LOSS_NOISE = 2


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


class SecretRandomness:
    """Draws of one run, keyed by its secret. Deliberately has no way to print the key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"secret key: {len(key)} bytes, expected {KEY_BYTES}")
        self._entropy = int.from_bytes(key, "big")

    def __repr__(self) -> str:
        return "SecretRandomness(<key hidden>)"

    def _generator(self, purpose: int, step: int, index: int = 0) -> np.random.Generator:
        seq = np.random.SeedSequence(self._entropy, spawn_key=(purpose, step, index))
        return np.random.Generator(np.random.Philox(seq))

    def poisson_batch(self, step: int, n: int, sample_rate: float) -> torch.Tensor:
        """Indices of the records in step ``step``'s batch: each joins with probability q."""
        joined = self._generator(BATCH, step).random(n) < sample_rate
        return torch.from_numpy(np.flatnonzero(joined)).long()

    def gaussian(self, purpose: int, step: int, index: int, shape: tuple[int, ...]) -> np.ndarray:
        """Standard normal float32 noise of ``shape`` (the trained parameters are float32; half
        the cost of float64 draws).

        The sum of four draws halved (unit variance): the low-order bits of the result are not those
        of one floating-point sample, the defence against the floating-point attacks on Gaussian
        noise (Jin et al. 2021, arXiv:2107.10138) that Opacus' ``secure_mode`` also uses.
        """
        draws = self._generator(purpose, step, index).standard_normal((4, *shape),
                                                                      dtype=np.float32)
        return draws.sum(axis=0) / np.float32(2.0)
