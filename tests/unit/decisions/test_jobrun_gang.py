"""jobrun.observe on a gang's Indexed Job: every pod succeeds, only rank 0's pod carries the
trainer's result, and it must be the one read whatever pod finished last."""

from __future__ import annotations

import json
from typing import Any

from acgs_operator.decisions import jobrun

DIGEST = "sha256:" + "a" * 64


def pod(name: str, created: str, message: str) -> dict[str, Any]:
    term = {"exitCode": 0, "message": message}
    return {"metadata": {"name": name, "creationTimestamp": created},
            "status": {"phase": "Succeeded",
                       "containerStatuses": [{"name": "trainer", "state": {"terminated": term}}]}}


def test_the_result_comes_from_the_pod_that_wrote_one_even_when_another_is_newer() -> None:
    job = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    rank0 = pod("x-train-0-abc", "2026-11-30T05:00:00Z", json.dumps({"phase": "Succeeded", "digest": DIGEST}))
    rank1 = pod("x-train-1-def", "2026-11-30T05:00:05Z", "")  # the other worker writes no result
    seen = jobrun.observe(job, [rank1, rank0], "trainer")
    assert seen.phase is jobrun.SUCCEEDED and (seen.result or {}).get("digest") == DIGEST
    assert jobrun.observe(job, [rank0, rank1], "trainer").result == seen.result
