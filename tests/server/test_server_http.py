"""`acgs-serve` end to end: a real trained artifact, the real process, real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import HASH, HttpResult, ServerProcess, artifact_digest, launch

pytestmark = pytest.mark.ml

DECISIONS = {"APPROVE", "ESCALATE", "DENY"}
ENDPOINT_TYPES = {
    "/constitutional-ai/predict": "constitutional_ai",
    "/policy-governance/predict": "policy_governance",
    "/multi-agent/predict": "multi_agent_coordination",
}


def scenarios(dataset_type: str, n: int, seed: int = 3) -> list[dict[str, Any]]:
    from acgs_trainer.constitution import load_constitution
    from acgs_trainer.datasets import generate

    return [r["input"]["scenario"] for r in generate(dataset_type, n, load_constitution(), seed=seed)]


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    if not found:
        raise AssertionError(f"no sample {name}{labels} in /metrics:\n{text[:3000]}")
    return total


def wait_logged(server: ServerProcess, total: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = server.get("/v1/interactions/stats").body
        if stats["total"] >= total or time.monotonic() > deadline:
            return dict(stats)
        time.sleep(0.05)


async def post_many(url: str, bodies: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async def one(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            async with session.post(url, json=body) as resp:
                return resp.status, await resp.json()

        return list(await asyncio.gather(*(one(b) for b in bodies)))


@pytest.fixture(scope="module")
def served(tiny_artifact: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, HttpResult, Path]]:
    """The server as the operator runs it (expected digest, name, version, log dir); also the
    /ready answer seen the moment /health first answered."""
    log_dir = tmp_path_factory.mktemp("interactions")
    server = launch(
        tiny_artifact, tmp_path_factory.mktemp("serve-logs"),
        "--expected-digest", artifact_digest(tiny_artifact),
        "--model-name", "acgs-test", "--model-version", "1.2.3",
        "--interaction-log-dir", str(log_dir), "--interaction-log-max-bytes", "4096",
        "--max-batch-wait-ms", "20",
    )
    first_ready = server.get("/ready")
    try:
        server.wait_ready()
        yield server, first_ready, log_dir
    finally:
        server.stop()


class TestServing:
    def test_ready_only_after_verification_and_load(self, served: tuple[ServerProcess, HttpResult, Path],
                                                    tiny_artifact: Path) -> None:
        server, first_ready, _ = served
        assert first_ready.status == 503 and first_ready.body["ready"] is False
        assert first_ready.body["phase"] in {"Starting", "Loading"}
        ready = server.get("/ready")
        assert ready.status == 200 and ready.body["phase"] == "Ready"
        assert ready.body["model"]["digest"] == artifact_digest(tiny_artifact)
        assert "verified" in server.logs()

    def test_models_reports_digest_version_and_manifest_metrics(
            self, served: tuple[ServerProcess, HttpResult, Path], tiny_artifact: Path) -> None:
        server, _, _ = served
        body = server.get("/models").body
        (model,) = body["models"]
        manifest = json.loads((tiny_artifact / "manifest.json").read_text())
        assert (model["name"], model["version"]) == ("acgs-test", "1.2.3")
        assert model["digest"] == manifest["digest"]
        assert model["constitutional_hash"] == HASH
        assert model["base_model"] == "builtin:tiny-llama"
        assert model["metrics"] == manifest["metrics"] and model["metrics"], "the trainer's evaluation metrics"

    @pytest.mark.parametrize("path", ["/v1/predict", *ENDPOINT_TYPES])
    def test_predict_returns_the_models_decision(self, served: tuple[ServerProcess, HttpResult, Path],
                                                 tiny_artifact: Path, path: str) -> None:
        from acgs_trainer import modeling, prompting

        server, _, _ = served
        dataset_type = ENDPOINT_TYPES.get(path, "wina_optimization")
        scenario = scenarios(dataset_type, 1)[0]
        body: dict[str, Any] = {"scenario": scenario, "constitutional_hash": HASH}
        if path == "/v1/predict":
            body["type"] = dataset_type
        result = server.post(path, body)
        assert result.status == 200, result.text
        out = result.body
        assert out["decision"] in DECISIONS
        assert (out["type"], out["model_version"], out["constitutional_hash"]) == (dataset_type, "1.2.3", HASH)
        assert out["digest"] == artifact_digest(tiny_artifact) and out["latency_ms"] > 0
        assert result.headers["X-Request-ID"] == out["request_id"]
        # The served answer is what the trainer's own inference gives for the same prompt.
        model, tokenizer = modeling.load_for_inference(tiny_artifact)
        prompt = prompting.format_prompt({"type": dataset_type, "scenario": scenario})
        (expected,) = modeling.generate_continuations(model, tokenizer, [prompt], max_new_tokens=16)
        assert out["generated_text"] == expected
        assert out["decision"] == prompting.parse_decision(expected)
        # Judged against the constitution's rules on the same, complete scenario.
        from acgs_trainer.constitution import load_constitution

        verdict = load_constitution().evaluate(scenario)
        assert (out["constitution_decision"], out["missing_fields"]) == (verdict.decision, [])
        assert out["compliance_score"] == (1.0 if out["decision"] == verdict.decision else 0.0)
        if out["decision"] == verdict.decision:
            assert set(out["rules"]) <= set(verdict.rules) and bool(out["rules"]) == bool(verdict.rules)

    @pytest.mark.parametrize(
        ("path", "mutate", "field"),
        [
            ("/constitutional-ai/predict", lambda b: b["scenario"].pop("consent"), "scenario.consent"),
            ("/constitutional-ai/predict", lambda b: b["scenario"].update(risk_level="extreme"), "scenario.risk_level"),
            ("/multi-agent/predict", lambda b: b["scenario"].update(agent_count="three"), "scenario.agent_count"),
            ("/policy-governance/predict", lambda b: b.update(sceanrio={}), "sceanrio"),
            ("/policy-governance/predict", lambda b: b.pop("scenario"), "scenario"),
            ("/v1/predict", lambda b: b.update(type="weather_forecast"), "type"),
            ("/v1/predict", lambda b: b["scenario"].update(sparsity="high"), "scenario.sparsity"),
        ],
    )
    def test_bad_input_is_400_naming_the_field(self, served: tuple[ServerProcess, HttpResult, Path],
                                               path: str, mutate: Any, field: str) -> None:
        server, _, _ = served
        dataset_type = ENDPOINT_TYPES.get(path, "wina_optimization")
        body: dict[str, Any] = {"scenario": scenarios(dataset_type, 1)[0], "constitutional_hash": HASH}
        if path == "/v1/predict":
            body["type"] = dataset_type
        mutate(body)
        result = server.post(path, body)
        assert result.status == 400, result.text
        assert result.body["error"]["field"] == field
        assert field in result.body["error"]["message"]

    def test_wrong_request_hash_and_broken_json_are_400(self, served: tuple[ServerProcess, HttpResult, Path]) -> None:
        server, _, _ = served
        body = {"scenario": scenarios("constitutional_ai", 1)[0], "constitutional_hash": "0000000000000000"}
        wrong = server.post("/constitutional-ai/predict", body)
        assert wrong.status == 400 and wrong.body["error"]["field"] == "constitutional_hash"
        assert "0000000000000000" in wrong.body["error"]["message"] and HASH in wrong.body["error"]["message"]
        broken = server.post("/v1/predict", raw=b'{"type": "constitutional_ai", "scenario": ')
        assert broken.status == 400 and broken.body["error"]["field"] == "body"
        not_object = server.post("/v1/predict", raw=b"[1, 2]")
        assert not_object.status == 400 and not_object.body["error"]["field"] == "body"

    def test_concurrent_requests_are_batched_and_all_succeed(
            self, served: tuple[ServerProcess, HttpResult, Path]) -> None:
        server, _, _ = served
        before = server.metrics()
        batches_before = metric_value(before, "acgs_server_batch_size_count", model_name="acgs-test")
        requests_before = metric_value(before, "acgs_server_batch_size_sum", model_name="acgs-test")
        bodies = [{"scenario": s, "constitutional_hash": HASH}
                  for s in scenarios("multi_agent_coordination", 48, seed=11)]
        results = asyncio.run(post_many(server.url + "/multi-agent/predict", bodies))
        assert [status for status, _ in results] == [200] * 48
        assert all(body["decision"] in DECISIONS for _, body in results)
        after = server.metrics()
        batches = metric_value(after, "acgs_server_batch_size_count", model_name="acgs-test") - batches_before
        generated = metric_value(after, "acgs_server_batch_size_sum", model_name="acgs-test") - requests_before
        assert generated == 48
        assert batches < 48 / 2, f"48 concurrent requests took {batches} generate calls: not batched"

    def test_metrics_carry_endpoint_status_and_model_labels(self, served: tuple[ServerProcess, HttpResult, Path],
                                                             tiny_artifact: Path) -> None:
        server, _, _ = served
        server.post("/policy-governance/predict", {"scenario": scenarios("policy_governance", 1)[0],
                                                   "constitutional_hash": HASH})
        server.post("/policy-governance/predict", {"scenario": {}, "constitutional_hash": HASH})
        text = server.metrics()
        model = {"model_name": "acgs-test", "model_version": "1.2.3"}
        endpoint = {"endpoint": "/policy-governance/predict", **model}
        assert metric_value(text, "acgs_server_request_latency_seconds_count", **endpoint) >= 2
        assert metric_value(text, "acgs_server_request_latency_seconds_bucket", le="+Inf", **endpoint) >= 2
        assert metric_value(text, "acgs_server_requests_total", status_code="200", **endpoint) >= 1
        assert metric_value(text, "acgs_server_requests_total", status_code="400", **endpoint) >= 1
        assert metric_value(text, "acgs_server_model_info", digest=artifact_digest(tiny_artifact),
                            model_version="1.2.3", constitutional_hash=HASH) == 1
        assert metric_value(text, "acgs_server_ready") == 1

    def test_interactions_logged_hash_stamped_rotated_and_counted(
            self, served: tuple[ServerProcess, HttpResult, Path], tiny_artifact: Path) -> None:
        server, _, log_dir = served
        before = wait_logged(server, 0)
        time.sleep(0.3)
        before = server.get("/v1/interactions/stats").body
        bodies = [{"type": "constitutional_ai", "scenario": s, "constitutional_hash": HASH}
                  for s in scenarios("constitutional_ai", 12, seed=5)]
        results = asyncio.run(post_many(server.url + "/v1/predict", bodies))
        assert all(status == 200 for status, _ in results)
        after = wait_logged(server, before["total"] + 12)
        assert after["total"] - before["total"] == 12 and after["dropped"] == 0 and after["pending"] == 0
        assert after["by_endpoint"]["/v1/predict"] - before["by_endpoint"].get("/v1/predict", 0) == 12
        decisions = [body["decision"] for _, body in results]
        for decision in DECISIONS:
            grew = after["by_decision"].get(decision, 0) - before["by_decision"].get(decision, 0)
            assert grew == decisions.count(decision)
        files = sorted(log_dir.glob("interactions-*.jsonl"))
        assert [f.name for f in files] == sorted(f["name"] for f in after["files"])
        assert len(files) > 1 and all(f.stat().st_size <= 4096 for f in files), "rotated at 4096 bytes"
        records = {r["request_id"]: r for f in files for r in map(json.loads, f.read_text().splitlines())}
        assert len(records) == after["total"], "every logged interaction is on disk exactly once"
        for (_, body), request in zip(results, bodies):
            record = records[body["request_id"]]
            assert record["constitutional_hash"] == HASH and record["digest"] == artifact_digest(tiny_artifact)
            assert (record["model_version"], record["endpoint"], record["type"]) == (
                "1.2.3", "/v1/predict", "constitutional_ai")
            assert record["input"]["scenario"] == request["scenario"]
            assert record["decision"] == body["decision"] and record["latency_ms"] == body["latency_ms"]
            assert record["timestamp"].endswith("+00:00")


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", ["corrupted_file", "wrong_digest", "wrong_hash"])
def test_unverifiable_artifact_never_becomes_ready(case: str, artifact_copy: Path, start_server: Any) -> None:
    real_digest = artifact_digest(artifact_copy)
    flags = ["--expected-digest", real_digest]
    if case == "corrupted_file":
        _flip_a_byte(artifact_copy / "adapter" / "adapter_model.safetensors")
    elif case == "wrong_digest":
        flags = ["--expected-digest", "sha256:" + "0" * 64]
    else:
        flags += ["--constitutional-hash", "0123456789abcdef"]
    server = start_server(artifact_copy, *flags)
    reason = server.wait_failed().body["reason"]
    expected = {
        "corrupted_file": ("FileDigestMismatch", "adapter_model.safetensors"),
        "wrong_digest": ("DigestMismatch", "sha256:" + "0" * 64),
        "wrong_hash": ("ConstitutionalHashMismatch", "0123456789abcdef"),
    }[case]
    assert reason["reason"] == expected[0]
    assert expected[1] in reason["message"]
    if case == "corrupted_file":
        assert reason["file"].endswith("adapter/adapter_model.safetensors") and reason["expected"] != reason["actual"]
    if case == "wrong_digest":
        assert (reason["expected"], reason["actual"]) == ("sha256:" + "0" * 64, real_digest)
    if case == "wrong_hash":
        assert (reason["expected"], reason["actual"]) == ("0123456789abcdef", HASH)
    time.sleep(1.0)
    assert server.get("/ready").status == 503, "a failed artifact must stay unready"
    assert server.get("/health").status == 200, "alive, so the operator can read why"
    predict = server.post("/v1/predict",
                          {"type": "constitutional_ai", "scenario": scenarios("constitutional_ai", 1)[0]})
    assert predict.status == 503 and predict.body["error"]["reason"]["reason"] == expected[0]
    assert server.get("/models").status == 503
    assert expected[0] in server.logs(), "the reason is in the process log too"


@pytest.mark.parametrize("case", ["edited_tokenizer_path", "extra_file", "symlink_out",
                                  "relaxed_constitution", "relaxed_constitution_file"])
def test_tampered_artifact_never_becomes_ready(case: str, artifact_copy: Path, start_server: Any,
                                               tmp_path: Path) -> None:
    """Every tampering the verifier refuses, the server refuses too: it never loads, never serves."""
    from acgs_contract.constitution import PINNED_CONTENT_DIGESTS, content_digest_of_text, default_text

    from tests import tamper

    digest = artifact_digest(artifact_copy)
    flags = ["--expected-digest", digest]
    relaxed = default_text().replace("default_decision: APPROVE", "default_decision: DENY")
    if case == "edited_tokenizer_path":  # APPROVE/DENY swapped; every original file intact
        tamper.swapped_tokenizer(artifact_copy)
        tamper.write_manifest(artifact_copy, tamper.relist(artifact_copy, {
            **tamper.read_manifest(artifact_copy), "tokenizerPath": "tokenizer-swapped"}))
    elif case == "extra_file":
        (artifact_copy / "adapter" / "extra.bin").write_bytes(b"x")
    elif case == "symlink_out":
        weights = artifact_copy / "adapter" / "adapter_model.safetensors"
        outside = tmp_path / "outside.safetensors"
        weights.rename(outside)
        weights.symlink_to(outside)
    elif case == "relaxed_constitution":  # trained (or rewritten) under other rules, resealed
        (artifact_copy / "constitution.yaml").write_text(relaxed)
        document = tamper.relist(artifact_copy, tamper.read_manifest(artifact_copy))
        document["constitution"]["contentDigest"] = content_digest_of_text(relaxed)
        flags = ["--expected-digest", tamper.write_manifest(artifact_copy, document, reseal=True)]
    else:  # the constitution handed to the server (the operator's ConfigMap) is not the pinned one
        (tmp_path / "constitution.yaml").write_text(relaxed)
        flags += ["--constitution-path", str(tmp_path / "constitution.yaml")]
    server = start_server(artifact_copy, *flags)
    reason = server.wait_failed().body["reason"]
    expected = {"edited_tokenizer_path": "ManifestInconsistent", "extra_file": "UnexpectedFiles",
                "symlink_out": "UnsafeFile", "relaxed_constitution": "ConstitutionDigestMismatch",
                "relaxed_constitution_file": "ConstitutionDigestMismatch"}[case]
    assert reason["reason"] == expected, reason
    if case.startswith("relaxed"):
        pinned, actual = PINNED_CONTENT_DIGESTS[HASH], content_digest_of_text(relaxed)
        assert (reason["expected"], reason["actual"]) == (pinned, actual)
        assert pinned in reason["message"] and actual in reason["message"]
    assert server.get("/ready").status == 503 and server.get("/models").status == 503
    predict = server.post("/v1/predict",
                          {"type": "constitutional_ai", "scenario": scenarios("constitutional_ai", 1)[0]})
    assert predict.status == 503


def test_sigterm_drains_in_flight_requests_and_flushes_the_log(tiny_artifact: Path, start_server: Any,
                                                               tmp_path: Path) -> None:
    log_dir = tmp_path / "interactions"
    # A long batch wait holds the requests in the server's queue when SIGTERM arrives.
    server = start_server(tiny_artifact, "--interaction-log-dir", str(log_dir), "--max-batch-wait-ms", "2500",
                          "--max-batch-size", "64")
    server.wait_ready()
    bodies = [{"scenario": s, "constitutional_hash": HASH} for s in scenarios("constitutional_ai", 20, seed=9)]

    async def scenario() -> list[tuple[int, dict[str, Any]]]:
        pending = asyncio.ensure_future(post_many(server.url + "/constitutional-ai/predict", bodies))
        await asyncio.sleep(1.0)
        server.proc.send_signal(signal.SIGTERM)
        return await pending

    results = asyncio.run(scenario())
    assert [status for status, _ in results] == [200] * 20
    assert server.proc.wait(30) == 0
    lines = [json.loads(line) for f in log_dir.glob("interactions-*.jsonl") for line in f.read_text().splitlines()]
    assert sorted(r["request_id"] for r in lines) == sorted(body["request_id"] for _, body in results)
