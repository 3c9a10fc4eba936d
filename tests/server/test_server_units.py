"""Model-server parts that need no model: configuration, interaction log, batcher."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

import pytest

from acgs_server.backend import classify_artifact_error
from acgs_server.batcher import DynamicBatcher
from acgs_trainer.artifact import ArtifactError
from acgs_server.config import load_config
from acgs_server.interactions import InteractionLogger

DIGEST = "sha256:" + "ab" * 32


class TestArtifactFailure:
    def test_reason_and_details_come_from_the_error_fields_not_its_text(self) -> None:
        error = ArtifactError("any wording at all", code="DigestMismatch", file="/a",
                              expected=DIGEST, actual="sha256:" + "cd" * 32)
        failure = classify_artifact_error(error)
        assert failure.to_json() == {"reason": "DigestMismatch", "message": "any wording at all",
                                     "file": "/a", "expected": DIGEST, "actual": "sha256:" + "cd" * 32}

    def test_a_code_the_server_does_not_know_is_reported_as_verification_failed(self) -> None:
        failure = classify_artifact_error(ArtifactError("/a: cannot write artifact", code="ArtifactWriteFailed",
                                                        file="/a"))
        assert (failure.reason, failure.details) == ("ArtifactVerificationFailed", {"file": "/a"})


class TestConfig:
    def test_flags_override_environment(self) -> None:
        cfg = load_config(["--artifact", "/a", "--port", "9001"],
                          {"ACGS_ARTIFACT": "/env", "ACGS_PORT": "9000", "ACGS_EXPECTED_DIGEST": DIGEST,
                           "ACGS_MODEL_VERSION": "1.2.3", "ACGS_INTERACTION_LOG_DIR": "/logs"})
        assert (str(cfg.artifact), cfg.port) == ("/a", 9001)
        assert (cfg.expected_digest, cfg.model_version, str(cfg.interaction_log_dir)) == (DIGEST, "1.2.3", "/logs")

    def test_environment_alone_is_enough(self) -> None:
        cfg = load_config([], {"ACGS_ARTIFACT": "/env", "ACGS_MAX_BATCH_SIZE": "8",
                               "ACGS_CONSTITUTIONAL_HASH": "0123456789abcdef"})
        assert (str(cfg.artifact), cfg.max_batch_size, cfg.constitutional_hash) == ("/env", 8, "0123456789abcdef")

    @pytest.mark.parametrize(
        ("args", "named"),
        [
            (["--artifact", "/a", "--expected-digest", "md5:abc"], "--expected-digest [ACGS_EXPECTED_DIGEST]"),
            (["--artifact", "/a", "--port", "70000"], "--port [ACGS_PORT]"),
            ([], "--artifact [ACGS_ARTIFACT]"),
            (["--artifact", "/a", "--metrics-port", "8080"], "--metrics-port [ACGS_METRICS_PORT]"),
        ],
    )
    def test_bad_config_exits_2_naming_flag_and_env(self, args: list[str], named: str) -> None:
        result = subprocess.run([sys.executable, "-m", "acgs_server", *args], capture_output=True, text=True,
                                env={"PATH": "/usr/bin"}, timeout=60)
        assert result.returncode == 2, result.stderr
        assert named in result.stderr


def _read_lines(directory: Path) -> list[dict[str, object]]:
    return [json.loads(line) for path in sorted(directory.glob("interactions-*.jsonl"))
            for line in path.read_text().splitlines()]


class TestInteractionLogger:
    def test_rotation_keeps_every_record_until_max_files(self, tmp_path: Path) -> None:
        log = InteractionLogger(tmp_path, max_bytes=1024, max_files=100)
        log.start()
        for i in range(200):
            log.log({"request_id": str(i), "endpoint": "/v1/predict", "decision": "DENY" if i % 2 else "APPROVE",
                     "payload": "x" * 50})
        log.close()
        files = sorted(tmp_path.glob("interactions-*.jsonl"))
        assert len(files) > 5, "records past max_bytes must go to new files"
        assert all(p.stat().st_size <= 1024 for p in files)
        records = _read_lines(tmp_path)
        assert [r["request_id"] for r in records] == [str(i) for i in range(200)]
        stats = log.stats()
        assert stats["total"] == 200 and stats["dropped"] == 0
        assert stats["by_decision"] == {"APPROVE": 100, "DENY": 100}
        assert len(stats["files"]) == len(files)

    def test_oldest_files_removed_beyond_max_files(self, tmp_path: Path) -> None:
        log = InteractionLogger(tmp_path, max_bytes=1024, max_files=3)
        log.start()
        for i in range(200):
            log.log({"request_id": str(i), "endpoint": "/x", "decision": "DENY", "payload": "x" * 50})
        log.close()
        assert len(list(tmp_path.glob("interactions-*.jsonl"))) == 3
        kept = [int(str(r["request_id"])) for r in _read_lines(tmp_path)]
        assert kept == list(range(kept[0], 200)), "the newest records are the ones kept"

    def test_full_queue_drops_and_counts_instead_of_blocking(self, tmp_path: Path) -> None:
        dropped: list[int] = []
        log = InteractionLogger(tmp_path, queue_size=5, on_drop=lambda: dropped.append(1))
        # Not started: nothing drains the queue, as with a disk that has stopped answering.
        started = time.perf_counter()
        accepted = [log.log({"endpoint": "/x", "decision": "DENY"}) for _ in range(50)]
        assert time.perf_counter() - started < 0.5
        assert accepted.count(True) == 5 and accepted.count(False) == 45
        assert log.stats()["dropped"] == 45 == len(dropped)


class TestBatcher:
    def test_concurrent_submissions_share_generate_calls(self) -> None:
        calls: list[int] = []
        lock = threading.Lock()

        def generate(prompts: Sequence[str]) -> list[str]:
            with lock:
                calls.append(len(prompts))
            time.sleep(0.02)  # a model call takes time; meanwhile more requests queue
            return [p.upper() for p in prompts]

        async def run() -> list[str]:
            batcher = DynamicBatcher(generate, max_batch_size=8, max_wait_s=0.01)
            batcher.start()
            results = await asyncio.gather(*(batcher.submit(f"p{i}") for i in range(40)))
            await batcher.stop()
            return list(results)

        results = asyncio.run(run())
        assert results == [f"P{i}" for i in range(40)], "each caller gets its own prompt's result"
        assert sum(calls) == 40 and max(calls) == 8 and len(calls) <= 6

    def test_pipelined_batcher_sends_the_next_batch_while_one_generates(self) -> None:
        """max_in_flight=2: the model gets batch N+1 before N returns, so it never waits for the
        event loop between batches; every caller still gets its own result."""
        active = 0
        most_active = 0
        sizes: list[int] = []
        lock = threading.Lock()

        def generate(prompts: Sequence[str]) -> list[str]:
            nonlocal active, most_active
            with lock:
                active += 1
                most_active = max(most_active, active)
                sizes.append(len(prompts))
            time.sleep(0.05)
            with lock:
                active -= 1
            return [p.upper() for p in prompts]

        async def run() -> list[str]:
            batcher = DynamicBatcher(generate, max_batch_size=8, max_wait_s=0.01, max_in_flight=2)
            batcher.start()
            results = await asyncio.gather(*(batcher.submit(f"p{i}") for i in range(40)))
            await batcher.stop()
            return list(results)

        results = asyncio.run(run())
        assert results == [f"P{i}" for i in range(40)]
        assert most_active == 2, "a second batch was handed over while the first was generating"
        assert sum(sizes) == 40 and max(sizes) <= 8 and len(sizes) <= 6

    def test_stop_answers_queued_and_in_flight_requests(self) -> None:
        """Graceful drain with pipelining: stop() returns only after every submitted prompt,
        queued or in flight, has its answer."""
        def generate(prompts: Sequence[str]) -> list[str]:
            time.sleep(0.03)
            return [p + "!" for p in prompts]

        async def run() -> list[str]:
            batcher = DynamicBatcher(generate, max_batch_size=4, max_wait_s=0.005, max_in_flight=2)
            batcher.start()
            waiters = [asyncio.ensure_future(batcher.submit(f"p{i}")) for i in range(30)]
            await asyncio.sleep(0)  # all 30 queued, a first batch taken
            await batcher.stop()
            assert all(w.done() for w in waiters), "stop() returned with requests unanswered"
            return [w.result() for w in waiters]

        assert asyncio.run(run()) == [f"p{i}!" for i in range(30)]

    @pytest.mark.parametrize("max_wait_s, expected", [(0.0, [1, 1]), (2.0, [2])])
    def test_idle_model_takes_a_lone_request_at_once(self, max_wait_s: float, expected: list[int]) -> None:
        """max_wait_s=0 (the server's default): a request that finds the model idle is sent alone,
        not held for batch-mates; one arriving 20 ms later gets its own batch. With a wait (the
        old default was 5 ms), the first is held and the two share a batch."""
        sizes: list[int] = []

        def generate(prompts: Sequence[str]) -> list[str]:
            sizes.append(len(prompts))
            return list(prompts)

        async def run() -> list[str]:
            batcher = DynamicBatcher(generate, max_batch_size=8, max_wait_s=max_wait_s)
            batcher.start()
            first = asyncio.ensure_future(batcher.submit("a"))
            await asyncio.sleep(0.02)
            second = await batcher.submit("b")
            out = [await first, second]
            await batcher.stop()
            return out

        assert asyncio.run(run()) == ["a", "b"]
        assert sizes == expected

    def test_generate_failure_reaches_every_waiter(self) -> None:
        def generate(prompts: Sequence[str]) -> list[str]:
            raise RuntimeError("out of memory")

        async def run() -> list[BaseException | str]:
            batcher = DynamicBatcher(generate, max_batch_size=4, max_wait_s=0.01)
            batcher.start()
            out = await asyncio.gather(*(batcher.submit("p") for _ in range(3)), return_exceptions=True)
            await batcher.stop()
            return list(out)

        outcomes = asyncio.run(run())
        assert all(isinstance(o, RuntimeError) and "out of memory" in str(o) for o in outcomes)


class TestJsonBody:
    def test_brackets_inside_strings_do_not_count_as_nesting(self) -> None:
        from acgs_server.jsonbody import MAX_DEPTH, parse_json_body

        text = '{"a": "' + "[" * (MAX_DEPTH * 4) + '\\"[", "b": [[1]]}'
        assert parse_json_body(text.encode())["b"] == [[1]]

    @pytest.mark.parametrize("raw", [b"[" * 40 + b"]" * 40, b'{"n": ' + b"1" * 5000 + b"}", b'{"n": -Infinity}'])
    def test_what_python_would_choke_on_is_invalid_input(self, raw: bytes) -> None:
        from acgs_server.errors import InvalidInput
        from acgs_server.jsonbody import parse_json_body

        with pytest.raises(InvalidInput) as caught:
            parse_json_body(raw)
        assert caught.value.status == 400 and caught.value.field == "body"


class TestReasoning:
    def test_a_decision_the_rules_derive_names_its_rule_and_scores_1(self) -> None:
        from acgs_server.reasoning import judge
        from acgs_trainer.constitution import load_constitution

        constitution = load_constitution()
        scenario = {"data_sensitivity": "restricted", "consent": False, "actor_role": "employee"}
        judged = judge(constitution, scenario, "DENY privacy")
        assert (judged.decision, judged.compliance_score, judged.constitution_decision) == ("DENY", 1.0, "DENY")
        assert judged.rules == ["privacy.restricted_without_consent"]
        assert constitution.principles["privacy"] in judged.reasoning

    def test_a_decision_the_rules_do_not_support_scores_0_and_says_why(self) -> None:
        from acgs_server.reasoning import judge
        from acgs_trainer.constitution import load_constitution

        judged = judge(load_constitution(), {"actor_role": "employee"}, "ESCALATE fairness")
        assert (judged.compliance_score, judged.rules, judged.principles) == (0.0, [], ["fairness"])
        assert "APPROVE" in judged.reasoning and "ESCALATE" in judged.reasoning
        assert judge(load_constitution(), {}, "gibberish").decision is None


class TestInteractionRecord:
    def test_free_text_is_left_out_unless_enabled_and_files_are_0600(self, tmp_path: Path) -> None:
        from acgs_server.backend import ModelCard
        from acgs_server.interactions import build_record

        card = ModelCard("m", "1", "sha256:" + "0" * 64, "cdd01ef066bc6cf2", "builtin:tiny-llama")
        record = {"type": "constitutional_ai", "input": {"scenario": {"consent": True}, "text": "secret words"}}
        args = dict(request_id="r", endpoint="/x", card=card, record=record, generated_text="APPROVE none",
                    decision="APPROVE", latency_ms=1.0)
        assert build_record(**args, free_text=False)["input"] == {"scenario": {"consent": True}}  # type: ignore[arg-type]
        assert build_record(**args, free_text=True)["input"]["text"] == "secret words"  # type: ignore[arg-type]
        log = InteractionLogger(tmp_path / "logs")
        log.start()
        log.log(build_record(**args, free_text=False))  # type: ignore[arg-type]
        log.close()
        (path,) = (tmp_path / "logs").glob("*.jsonl")
        assert path.stat().st_mode & 0o777 == 0o600 and "secret" not in path.read_text()
