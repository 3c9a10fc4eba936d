"""Checkpoints under ``<output>/checkpoints/step-NNNNNNNN/state.pt``.

Each checkpoint is written to a temporary directory and renamed, so a SIGKILL leaves either the
previous checkpoints or a complete new one; ``load_latest`` ignores leftovers of an interrupted
write. RNG states (Python, NumPy, torch CPU/CUDA) are saved with it: DP noise and dropout draw
from torch's global generator.
"""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)
_NAME = re.compile(r"^step-(\d{8})$")


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    def __init__(self, root: Path, keep: int = 2) -> None:
        self.root = root
        self.keep = keep

    def _complete(self) -> list[tuple[int, Path]]:
        if not self.root.is_dir():
            return []
        found = []
        for d in self.root.iterdir():
            m = _NAME.match(d.name)
            if m and (d / "state.pt").is_file():
                found.append((int(m.group(1)), d))
        return sorted(found)

    def save(self, step: int, state: dict[str, Any]) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"step-{step:08d}"
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        torch.save({**state, "rng": _rng_state()}, tmp / "state.pt")
        with (tmp / "state.pt").open("rb") as f:
            os.fsync(f.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        for _, old in self._complete()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        log.info("checkpoint %s", final)
        return final

    def load_latest(self) -> dict[str, Any] | None:
        complete = self._complete()
        if not complete:
            return None
        step, path = complete[-1]
        # weights_only=False: the file holds RNG states (tuples, numpy arrays) and is our own,
        # written to the run's private output volume.
        state: dict[str, Any] = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        _set_rng_state(state.pop("rng"))
        log.info("loaded checkpoint %s", path)
        return state
