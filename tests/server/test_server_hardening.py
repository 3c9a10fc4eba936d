"""A narrow surface, tried over real HTTP against a real `acgs-serve`: malformed-but-parseable
bodies are 400 (never 500), numbers stay inside the schema's ranges, X-Request-ID is bounded,
the request's constitutional hash is required, free text stays out of the interaction log unless
enabled, log files are 0600, and /metrics lives on its own listener only."""

from __future__ import annotations

import json
import re
import stat
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import HASH, ServerProcess, launch

pytestmark = pytest.mark.ml

CANARY = "zebracanary-4711"


def scenario(dataset_type: str) -> dict[str, Any]:
    from acgs_trainer.constitution import load_constitution
    from acgs_trainer.datasets import generate

    return dict(generate(dataset_type, 1, load_constitution(), seed=21)[0]["input"]["scenario"])


def body(dataset_type: str = "multi_agent_coordination", **scenario_changes: Any) -> dict[str, Any]:
    return {"scenario": {**scenario(dataset_type), **scenario_changes}, "constitutional_hash": HASH}


@pytest.fixture(scope="module")
def served(tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    log_dir = tmp_path_factory.mktemp("interactions")
    server = launch(tiny_artifact, tmp_path_factory.mktemp("serve-logs"), "--interaction-log-dir", str(log_dir),
                    "--max-batch-wait-ms", "1")
    try:
        server.wait_ready()
        yield server, log_dir
    finally:
        server.stop()


def _template(inner: str) -> bytes:
    scenario_json = json.dumps(scenario("multi_agent_coordination"))
    return ('{"scenario": ' + scenario_json[:-1] + ', "extra": ' + inner + '}, "constitutional_hash": "'
            + HASH + '"}').encode()


MALFORMED: dict[str, Callable[[], bytes]] = {
    "deep nesting": lambda: b'{"scenario": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "5000-digit integer": lambda: re.sub(r'"agent_count": \d+', '"agent_count": ' + "9" * 5000,
                                         json.dumps(body())).encode(),
    "5000-digit integer (top level)": lambda: b'{"constitutional_hash": ' + b"7" * 5000 + b"}",
    "huge float literal": lambda: _template("1" * 400 + ".5"),
    "NaN": lambda: json.dumps(body(agent_count=float("nan"))).encode(),
    "huge string": lambda: json.dumps({**body(), "request": "x" * 60000}).encode(),
    "invalid UTF-8": lambda: b'{"scenario": "\xff\xfe"}',
    "not an object": lambda: b'"just a string"',
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_but_parseable_bodies_are_400(served: tuple[ServerProcess, Path], case: str) -> None:
    server, _ = served
    result = server.post("/multi-agent/predict", raw=MALFORMED[case]())
    assert result.status == 400, f"{case}: {result.status} {result.text[:300]}"
    assert result.body["error"]["type"] in {"InvalidInput", "ConstitutionalHashMismatch"}
    assert result.body["error"]["field"]


def test_a_body_over_the_size_limit_is_413_not_500(served: tuple[ServerProcess, Path]) -> None:
    server, _ = served
    result = server.post("/multi-agent/predict", raw=json.dumps({**body(), "request": "x" * 70000}).encode())
    assert result.status == 413, result.text[:300]
    assert result.body["error"]["type"] == "RequestEntityTooLarge"


@pytest.mark.parametrize(
    ("dataset_type", "change", "field"),
    [
        ("multi_agent_coordination", {"agent_count": 7}, "scenario.agent_count"),
        ("multi_agent_coordination", {"agent_count": -10**15}, "scenario.agent_count"),
        ("performance_optimization", {"latency_p99_ms": 12.5}, "scenario.latency_p99_ms"),
        ("wina_optimization", {"accuracy_drop_pct": 3.01}, "scenario.accuracy_drop_pct"),
        ("wina_optimization", {"sparsity": 1e308}, "scenario.sparsity"),
    ],
)
def test_numbers_outside_the_schema_range_are_400(served: tuple[ServerProcess, Path], dataset_type: str,
                                                  change: dict[str, Any], field: str) -> None:
    from acgs_trainer.datasets import SCHEMAS

    server, _ = served
    result = server.post("/v1/predict", {**body(dataset_type, **change), "type": dataset_type})
    assert result.status == 400, result.text
    assert result.body["error"]["field"] == field
    spec = SCHEMAS[dataset_type][field.split(".")[1]]
    message = result.body["error"]["message"]
    assert f"{spec.hi:g}" in message or f"{spec.lo:g}" in message, message


@pytest.mark.parametrize("request_id", ["a" * 129, "id with spaces", "<script>", "ünïcode"])
def test_an_unusable_request_id_is_400_and_not_echoed(served: tuple[ServerProcess, Path], request_id: str) -> None:
    server, _ = served
    headers = {"X-Request-ID": request_id.encode("utf-8").decode("latin-1")}
    result = server.post("/multi-agent/predict", body(), headers=headers)
    assert result.status == 400, result.text
    assert result.body["error"]["field"] == "X-Request-ID"
    assert result.headers["X-Request-ID"] != headers["X-Request-ID"] and result.headers["X-Request-ID"]


def test_a_usable_request_id_is_echoed(served: tuple[ServerProcess, Path]) -> None:
    server, _ = served
    result = server.post("/multi-agent/predict", body(), headers={"X-Request-ID": "trace-01:ab.c_d"})
    assert result.status == 200, result.text
    assert result.headers["X-Request-ID"] == result.body["request_id"] == "trace-01:ab.c_d"


@pytest.mark.parametrize("given", [None, "0000000000000000", ""])
def test_a_missing_or_wrong_request_hash_is_refused_naming_both_values(served: tuple[ServerProcess, Path],
                                                                       given: str | None) -> None:
    server, _ = served
    request = body()
    if given is None:
        request.pop("constitutional_hash")
    else:
        request["constitutional_hash"] = given
    seed_body = {"policy_type": "audit", "framework": "SOX",
                 **({} if given is None else {"constitutional_hash": given})}
    for path, payload in (("/multi-agent/predict", request), ("/policy-governance/predict", seed_body)):
        result = server.post(path, payload)
        assert result.status == 400, result.text
        error = result.body["error"]
        assert (error["type"], error["field"]) == ("ConstitutionalHashMismatch", "constitutional_hash")
        assert HASH in error["message"] and ("missing" if given is None else repr(given)) in error["message"]


def test_metrics_have_their_own_listener_and_count_every_refusal(served: tuple[ServerProcess, Path]) -> None:
    server, _ = served
    assert server.get("/metrics").status == 404, "/metrics must not be on the API port"
    for path in ("/v1/predict", "/multi-agent/predict", "/ready", "/models"):
        assert server.request("GET" if path in ("/ready", "/models") else "POST", path,
                              body=body(), base=server.metrics_url).status in (404, 405), path
    server.post("/multi-agent/predict", raw=MALFORMED["deep nesting"]())
    text = server.metrics()
    assert 'acgs_server_requests_total{endpoint="/multi-agent/predict",model_name=' in text
    assert 'status_code="400"' in text
    assert 'status_code="500"' not in text, "no malformed body may ever be a 500"


def _log_lines(log_dir: Path, total: int, server: ServerProcess) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while server.get("/v1/interactions/stats").body["total"] < total and time.monotonic() < deadline:
        time.sleep(0.05)
    files = sorted(log_dir.glob("interactions-*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_free_text_stays_out_of_the_log_by_default_and_files_are_0600(served: tuple[ServerProcess, Path]) -> None:
    server, log_dir = served
    before = server.get("/v1/interactions/stats").body["total"]
    structured = server.post("/multi-agent/predict", {**body(), "request": f"please {CANARY}"})
    seed = server.post("/constitutional-ai/predict", {"scenario": "ethical_dilemma", "user_request": CANARY,
                                                      "context": f"about {CANARY}", "constitutional_hash": HASH})
    assert structured.status == seed.status == 200, (structured.text, seed.text)
    lines = _log_lines(log_dir, before + 2, server)
    ids = {structured.body["request_id"], seed.body["request_id"]}
    logged = [line for line in lines if line["request_id"] in ids]
    assert len(logged) == 2 and all("scenario" in line["input"] for line in logged)
    assert not any(CANARY in f.read_text() for f in log_dir.glob("interactions-*.jsonl"))
    for f in log_dir.glob("interactions-*.jsonl"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_free_text_logging_and_an_optional_hash_when_configured(tiny_artifact: Path, start_server: Any,
                                                               tmp_path: Path) -> None:
    log_dir = tmp_path / "interactions"
    server = start_server(tiny_artifact, "--interaction-log-dir", str(log_dir), "--interaction-log-free-text", "true",
                          "--require-request-hash", "false", "--max-batch-wait-ms", "1")
    server.wait_ready()
    request = {**body(), "request": f"please {CANARY}"}
    request.pop("constitutional_hash")
    accepted = server.post("/multi-agent/predict", request)
    assert accepted.status == 200, accepted.text
    wrong = server.post("/multi-agent/predict", {**request, "constitutional_hash": "0000000000000000"})
    assert wrong.status == 400, "a wrong hash is refused even when a missing one is allowed"
    (line,) = _log_lines(log_dir, 1, server)
    assert line["input"]["request"] == f"please {CANARY}"
