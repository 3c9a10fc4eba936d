"""One training run over several processes (torchrun): who this process is, and the few collectives
the trainer needs.

torchrun (``acgs-torchrun``, launch.py) starts one process per device on every pod and sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; without them the run is a gang of one and nothing here
touches ``torch.distributed``. The backend is NCCL on GPUs and gloo on CPUs.

Division of labour, so a gang behaves like the one process it replaces:
- every rank reads the same data and the same split (deterministic, checked: the data digests must
  agree) and computes the same global batch indices, then trains on its share (``shard``);
- rank 0 alone reads and writes checkpoints, the secret DP key, the artifact, result.json, progress
  and the released loss; what others need of that (the resumed state, the key) it broadcasts;
- gradients are summed over the gang (DDP without DP, Opacus' distributed DP optimizer with DP), so
  every rank holds the same weights after each step.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")
# Rank 0 evaluates the base and writes the artifact while the others wait at a collective: longer
# than gloo's 30-minute default, shorter than a stuck gang should hold its GPUs.
COLLECTIVE_TIMEOUT = dt.timedelta(minutes=60)


@dataclass(frozen=True)
class Gang:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Gang:
        """torchrun's variables; a plain ``acgs-train`` (none set) is a gang of one."""
        e = os.environ if environ is None else environ
        try:
            gang = cls(int(e.get("RANK", "0")), int(e.get("WORLD_SIZE", "1")),
                       int(e.get("LOCAL_RANK", "0")))
        except ValueError as exc:
            raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK: expected integers (torchrun sets "
                             f"them): {exc}") from None
        if gang.world_size < 1 or not 0 <= gang.rank < gang.world_size:
            raise ValueError(f"RANK={gang.rank} WORLD_SIZE={gang.world_size}: expected "
                             "0 ≤ RANK < WORLD_SIZE")
        return gang

    def device(self, want_cuda: bool) -> torch.device:
        if want_cuda:
            return torch.device("cuda", self.local_rank) if self.active else torch.device("cuda")
        return torch.device("cpu")

    def start(self, device: torch.device) -> None:
        if not self.active or torch.distributed.is_initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)

    def stop(self) -> None:
        if self.active and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch: every world_size-th index from its rank on."""
        return indices[self.rank::self.world_size] if self.active else indices

    def from_main(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (small Python objects: state dicts, keys, errors)."""
        if not self.active:
            return value
        box: list[Any] = [value if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[no-any-return]

    def sum(self, value: float, device: torch.device) -> float:
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        return float(t.item())

    def all_equal(self, value: str) -> bool:
        if not self.active:
            return True
        values: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(values, value)
        return len(set(values)) == 1

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()
