"""Run one configuration in a loop for a profiler (py-spy record / pyinstrument):

    py-spy record -o dp.svg -- python bench/training/profile_step.py dp-step 300
    python bench/training/profile_step.py {dp-step|plain-step|dp-loop|plain-loop|hf} STEPS
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from workload import build  # noqa: E402


def main(mode: str, steps: int) -> None:
    w = build()
    if mode in ("dp-step", "plain-step"):
        dp = mode == "dp-step"
        tr = w.trainer(dp=dp, steps=steps)
        if dp:
            tr._enable_dp(1.0)
        tr.model.train()
        idx = torch.arange(w.batch_size)
        t0 = time.perf_counter()
        for i in range(steps):
            tr._step_dp(i, idx) if dp else tr._step_plain(idx)
        print(f"{mode}: {(time.perf_counter() - t0) / steps * 1e3:.2f} ms/step")
    elif mode in ("dp-loop", "plain-loop"):
        tr = w.trainer(dp=mode == "dp-loop", steps=steps)
        t0 = time.perf_counter()
        tr.run()
        print(f"{mode}: {(time.perf_counter() - t0) / steps * 1e3:.2f} ms/step")
    elif mode == "hf":
        from bench_training import hf_train
        print(f"hf: {hf_train(w, steps)}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
