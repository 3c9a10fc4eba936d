"""Checkpoints under ``<output>/checkpoints/step-NNNNNNNN/state.pt``.

Each checkpoint is written to a temporary directory and renamed, so a SIGKILL leaves either the
previous checkpoints or a complete new one; ``load_latest`` ignores leftovers of an interrupted
write. The global RNG states (Python, NumPy, torch CPU/CUDA: dropout, public choices) are saved
with it as tensors and plain types, so checkpoints load with ``torch.load(weights_only=True)`` (no
pickled code runs on load).

The DP run's secret key (``secret_randomness``: noise and batch membership) is a separate file,
``secret-key`` (mode 0600), written before the first step and reused by every resumption of the
run, so that a step redone after a kill redraws exactly the noise it drew before (nothing released
twice with different noise). It lives only in the run's private output directory.
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

from .secret_randomness import KEY_BYTES, new_key

log = logging.getLogger(__name__)
_NAME = re.compile(r"^step-(\d{8})$")


SECRET_KEY_FILE = "secret-key"


def _rng_state() -> dict[str, Any]:
    version, words, gauss = random.getstate()
    legacy: Any = np.random.get_state()  # a tuple (legacy=True), whatever the stubs' union says
    kind, keys, pos, has_gauss, cached = legacy
    state: dict[str, Any] = {
        "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(int(w) for w in py["words"].tolist()), py["gauss"]))
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached"]))
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
        state: dict[str, Any] = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        _set_rng_state(state.pop("rng"))
        log.info("loaded checkpoint %s", path)
        return state

    def secret_key(self, reuse: bool) -> bytes:
        """The run's secret key: the saved one when ``reuse`` and present, else a new one, saved
        (0600, atomically) before it is used."""
        path = self.root / SECRET_KEY_FILE
        if reuse and path.is_file():
            key = bytes.fromhex(path.read_text().strip())
            if len(key) != KEY_BYTES:
                raise ValueError(f"{path}: {len(key)} bytes, expected {KEY_BYTES}; use "
                                 "--no-resume to start over")
            return key
        self.root.mkdir(parents=True, exist_ok=True)
        key = new_key()
        tmp = self.root / f".{SECRET_KEY_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key.hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return key

    def has_secret_key(self) -> bool:
        return (self.root / SECRET_KEY_FILE).is_file()
