"""The progress endpoint without a cluster: authentication, validation, throttling, no-op writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from acgs_operator.config import Settings
from acgs_operator.servers import progress

KEY = b"test-key"
URL = "/v1/progress/ns/tj/uid-1"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str, dict]]:
    calls: list[tuple[str, str, str, dict]] = []
    monkeypatch.setattr(progress, "_patch_progress", lambda ns, name, uid, p: calls.append((ns, name, uid, p)))
    return calls


async def _post_all(bodies: list[dict], token: str | None, interval: float = 0.0,
                    settle: float = 0.0) -> list[int]:
    server = progress.ProgressServer(Settings(progress_min_interval=interval), KEY)
    async with TestClient(TestServer(server.app())) as client:
        codes = []
        for body in bodies:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            resp = await client.post(URL, json=body, headers=headers)
            codes.append(resp.status)
        await asyncio.sleep(settle)
    return codes


def token() -> str:
    return progress.progress_token(KEY, "ns", "tj", "uid-1")


class TestProgressEndpoint:
    @pytest.mark.parametrize("given", [None, "wrong", progress.progress_token(KEY, "ns", "tj", "uid-2"),
                                       progress.progress_token(b"other", "ns", "tj", "uid-1")])
    def test_rejects_missing_or_foreign_tokens(self, writes: list, given: str | None) -> None:
        assert run(_post_all([{"step": 1}], given)) == [401]
        assert writes == []

    @pytest.mark.parametrize("body", [{"step": -1}, {"percent": 150, "step": 1}, {"loss": 1.0}])
    def test_rejects_invalid_reports(self, writes: list, body: dict) -> None:
        assert run(_post_all([body], token())) == [400]
        assert writes == []

    def test_writes_progress_and_skips_unchanged(self, writes: list) -> None:
        report = {"phase": "Running", "step": 10, "totalSteps": 40, "percent": 25.0, "loss": 2.5,
                  "epsilon": 1.25, "message": "step 10/40"}
        assert run(_post_all([report, report], token())) == [202, 202]
        assert writes == [("ns", "tj", "uid-1", {"percent": 25.0, "step": 10, "totalSteps": 40, "loss": 2.5,
                                                 "epsilon": 1.25})]

    def test_throttles_to_the_newest_report(self, writes: list) -> None:
        reports = [{"step": s, "totalSteps": 40, "percent": s * 2.5} for s in (10, 20, 30)]
        run(_post_all(reports, token(), interval=0.3, settle=0.6))
        assert [w[3]["step"] for w in writes] == [10, 30]  # 20 was superseded before the window ended

    def test_final_report_is_written_at_once(self, writes: list) -> None:
        reports = [{"step": 10, "percent": 50.0}, {"phase": "Succeeded", "step": 20, "percent": 100.0}]
        run(_post_all(reports, token(), interval=60))
        assert [w[3]["step"] for w in writes] == [10, 20]
