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


STREAM = "a" * 32


def numbered(bodies: list[dict], stream: str = STREAM, start: int = 1) -> list[dict]:
    """What the trainer's reporter sends: its stream id and a rising sequence on every report."""
    return [{"stream": stream, "sequence": start + i, **body} for i, body in enumerate(bodies)]


async def _post_all(bodies: list[dict | bytes], token: str | None, interval: float = 0.0,
                    settle: float = 0.0, raw_headers: dict[str, Any] | None = None) -> list[int]:
    server = progress.ProgressServer(Settings(progress_min_interval=interval), KEY)
    async with TestClient(TestServer(server.app())) as client:
        codes = []
        for body in bodies:
            headers = raw_headers or ({"Authorization": f"Bearer {token}"} if token else {})
            if isinstance(body, bytes):
                resp = await client.post(URL, data=body, headers={**headers, "Content-Type": "application/json"})
            else:
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
        assert run(_post_all(numbered([{"step": 1}]), given)) == [401]
        assert writes == []

    @pytest.mark.parametrize("body", [{"step": -1}, {"percent": 150, "step": 1}, {"loss": 1.0}])
    def test_rejects_invalid_reports(self, writes: list, body: dict) -> None:
        assert run(_post_all(numbered([body]), token())) == [400]
        assert writes == []

    def test_non_ascii_bearer_is_401_not_500(self, writes: list) -> None:
        headers = {"Authorization": "Bearer tökén-ü".encode().decode("latin-1")}
        assert run(_post_all(numbered([{"step": 1}]), None, raw_headers=headers)) == [401]
        assert writes == []

    @pytest.mark.parametrize("raw", [
        b'{"stream": "%s", "sequence": 1, "step": 1, "loss": NaN}' % STREAM.encode(),
        b'{"stream": "%s", "sequence": 1, "step": 1, "epsilon": Infinity}' % STREAM.encode(),
        b'{"stream": "%s", "sequence": 1, "step": 1, "loss": 1e999}' % STREAM.encode(),
        b"[" * 5000 + b"]" * 5000,
        b"\xff\xfe not utf-8",
    ])
    def test_non_finite_numbers_and_malformed_bodies_are_400(self, writes: list, raw: bytes) -> None:
        assert run(_post_all([raw], token())) == [400]
        assert writes == []

    @pytest.mark.parametrize("missing", ["stream", "sequence"])
    def test_reports_without_stream_and_sequence_are_400(self, writes: list, missing: str) -> None:
        body = {k: v for k, v in numbered([{"step": 1}])[0].items() if k != missing}
        assert run(_post_all([body], token())) == [400]

    def test_replayed_report_is_refused(self, writes: list) -> None:
        first, second = numbered([{"step": 10, "percent": 25.0}, {"step": 20, "percent": 50.0}])
        # the same report again, and an older one after a newer one: both refused, nothing written
        assert run(_post_all([first, first, second, first], token())) == [202, 409, 202, 409]
        assert [w[3]["step"] for w in writes] == [10, 20]

    def test_retried_pod_is_a_new_stream_that_retires_the_old_one(self, writes: list) -> None:
        old = numbered([{"step": 12, "percent": 30.0}], stream="o" * 32, start=40)
        new = numbered([{"step": 10, "percent": 25.0}], stream="n" * 32)  # resumed from a checkpoint
        late_old = numbered([{"step": 13, "percent": 32.5}], stream="o" * 32, start=41)
        assert run(_post_all(old + new + late_old, token())) == [202, 202, 409]
        assert [w[3]["step"] for w in writes] == [12, 10]

    def test_replayed_final_report_is_refused(self, writes: list) -> None:
        final = numbered([{"phase": "Succeeded", "step": 20, "percent": 100.0}])
        assert run(_post_all(final + final, token())) == [202, 409]

    def test_writes_progress_and_skips_unchanged(self, writes: list) -> None:
        report = {"phase": "Running", "step": 10, "totalSteps": 40, "percent": 25.0, "loss": 2.5,
                  "epsilon": 1.25, "message": "step 10/40"}
        assert run(_post_all(numbered([report, report]), token())) == [202, 202]
        assert writes == [("ns", "tj", "uid-1", {"percent": 25.0, "step": 10, "totalSteps": 40, "loss": 2.5,
                                                 "epsilon": 1.25})]

    def test_throttles_to_the_newest_report(self, writes: list) -> None:
        reports = [{"step": s, "totalSteps": 40, "percent": s * 2.5} for s in (10, 20, 30)]
        run(_post_all(numbered(reports), token(), interval=0.3, settle=0.6))
        assert [w[3]["step"] for w in writes] == [10, 30]  # 20 was superseded before the window ended

    def test_final_report_is_written_at_once(self, writes: list) -> None:
        reports = [{"step": 10, "percent": 50.0}, {"phase": "Succeeded", "step": 20, "percent": 100.0}]
        run(_post_all(numbered(reports), token(), interval=60))
        assert [w[3]["step"] for w in writes] == [10, 20]
