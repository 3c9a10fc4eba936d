"""The flywheel steps' results as they travel in a termination message: camelCase on the wire, read
back by the operator, and anything that is not a result (a crash's log tail) read as None."""

from __future__ import annotations

import json

from acgs_contract import flywheel as fw
from acgs_contract.result import MAX_TERMINATION_MESSAGE_BYTES, termination_message


def _prepare() -> fw.PrepareResult:
    return fw.PrepareResult(
        phase=fw.PHASE_SUCCEEDED, reason=fw.REASON_PREPARED, run_id="r1", snapshot_digest="sha256:" + "a" * 64,
        expected_digest="sha256:" + "b" * 64, records=30, excluded={fw.EXCLUDED_WRONG_HASH: 2}, eval_records=10,
        train_records=19, retired_records=1, retired_total=3, judged_records=28, live_compliance=0.75,
        budget_max_epsilon=8.0, budget_mean_epsilon=4.2, eval_digest="sha256:" + "c" * 64,
        train_digest="sha256:" + "d" * 64)


def test_prepare_result_round_trips_through_a_termination_message() -> None:
    text = termination_message(_prepare())
    assert len(text.encode()) <= MAX_TERMINATION_MESSAGE_BYTES
    wire = json.loads(text)
    assert wire["liveCompliance"] == 0.75 and wire["retiredTotal"] == 3 and wire["budgetMaxEpsilon"] == 8.0
    assert fw.parse_prepare_result(wire) == _prepare()


def test_eval_result_round_trips_and_names_its_eval_set() -> None:
    result = fw.EvalResult(phase=fw.PHASE_SUCCEEDED, reason=fw.REASON_EVALUATED, run_id="r1", candidate="icl",
                           kind=fw.KIND_IN_CONTEXT, accuracy=0.5, compliance_score=0.9, latency_ms=12.5,
                           eval_records=10, eval_digest="sha256:" + "c" * 64, model="tiny")
    wire = json.loads(termination_message(result))
    assert wire["complianceScore"] == 0.9 and wire["latencyMs"] == 12.5 and wire["evalDigest"].endswith("c" * 64)
    assert fw.parse_eval_result(wire) == result


def test_a_log_tail_or_an_impossible_score_is_not_a_result() -> None:
    assert fw.parse_prepare_result(None) is None and fw.parse_eval_result({}) is None
    assert fw.parse_prepare_result({"log": "Traceback ..."}) is None
    assert fw.parse_eval_result({"phase": "Succeeded", "reason": "Evaluated", "accuracy": 1.5}) is None
    assert fw.parse_collect_result({"phase": "Succeeded", "reason": "Collected", "recordsUsable": 3}) is not None


def test_kinds_and_layout_constants_are_the_ones_the_design_names() -> None:
    assert fw.CANDIDATE_KINDS == ("base", "in-context", "fine-tune", "production")
    assert set(fw.ARTIFACT_KINDS) == {"fine-tune", "production"}
    assert fw.run_dir("r7") == "runs/r7"
    assert (fw.SNAPSHOT_FILE, fw.EVAL_FILE, fw.TRAIN_FILE, fw.PREPARE_FILE) == (
        "snapshot.jsonl", "eval.jsonl", "train.jsonl", "prepare.json")
