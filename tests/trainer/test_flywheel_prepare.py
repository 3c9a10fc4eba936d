"""The flywheel's prepare step on real interaction logs written by the server's own writer: the
snapshot and its digest, the judge's labels and the production model's live compliance, the seeded
split into the workspace, and the per-record privacy ledger across runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from acgs_contract import flywheel as fw

from acgs_trainer.constitution import CONSTITUTIONAL_HASH
from acgs_trainer.dataio import read_records
from acgs_trainer.datasets import check_record
from acgs_trainer.flywheel_ledger import Ledger, record_key

from .conftest import run_cli
from .flywheel_logs import RULES, interactions, write_log

def prepare(log: Path, workspace: Path, run_id: str, *extra: str, seed: int = 1, eval_size: int = 5,
            limit: float = 8, epsilon: float = 5, finetunes: int = 1) -> tuple[int, dict]:
    term = workspace.parent / f"{run_id}-termination-log"
    proc = run_cli("acgs-data", "flywheel-prepare", "--log-dir", str(log), "--workspace", str(workspace),
                   "--run-id", run_id, "--seed", str(seed), "--eval-size", str(eval_size),
                   "--record-epsilon-limit", str(limit), "--finetune-epsilon", str(epsilon),
                   "--finetunes", str(finetunes), "--termination-log", str(term), *extra, timeout=60)
    result = json.loads(term.read_text())
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == result
    return proc.returncode, result


def keys(path: Path) -> set[str]:
    return {record_key(r) for r in read_records(path)}


@pytest.fixture
def log(tmp_path: Path) -> Path:
    directory = tmp_path / "log"
    write_log(directory, interactions(20))
    return directory


def test_a_wrong_hash_record_is_excluded_counted_and_in_no_file(tmp_path: Path) -> None:
    good = interactions(12)
    wrong = dict(interactions(1, seed=9)[0], constitutional_hash="0" * 16)
    write_log(tmp_path / "log", [*good, wrong])
    code, result = prepare(tmp_path / "log", tmp_path / "ws", "r1")
    assert code == 0, result
    assert result["excluded"][fw.EXCLUDED_WRONG_HASH] == 1 and result["records"] == 12
    run = tmp_path / "ws" / fw.run_dir("r1")
    every = {r["id"] for name in (fw.EVAL_FILE, fw.TRAIN_FILE) for r in read_records(run / name)}
    assert len(every) == 12 and wrong["request_id"] not in every
    assert wrong["request_id"] not in (run / fw.SNAPSHOT_FILE).read_text()


def test_the_same_log_gives_the_same_snapshot_digest_and_split(log: Path, tmp_path: Path) -> None:
    _, first = prepare(log, tmp_path / "a", "r1")
    _, again = prepare(log, tmp_path / "b", "r2", "--expected-digest", first["snapshotDigest"])
    assert first["snapshotDigest"] == again["snapshotDigest"] == again["expectedDigest"]
    assert (first["evalDigest"], first["trainDigest"]) == (again["evalDigest"], again["trainDigest"])
    snapshot = (tmp_path / "a" / fw.run_dir("r1") / fw.SNAPSHOT_FILE).read_bytes()
    assert "sha256:" + hashlib.sha256(snapshot).hexdigest() == first["snapshotDigest"]
    _, other_seed = prepare(log, tmp_path / "c", "r3", seed=2)
    assert other_seed["snapshotDigest"] == first["snapshotDigest"] and other_seed["evalDigest"] != first["evalDigest"]


def test_the_judge_labels_every_record_and_scores_the_logged_decisions(tmp_path: Path) -> None:
    right = interactions(6, seed=1)
    always_approve = interactions(6, seed=2, decision="APPROVE")
    undecided = interactions(3, seed=3, decision=None)
    write_log(tmp_path / "log", [*right, *always_approve, *undecided])
    code, result = prepare(tmp_path / "log", tmp_path / "ws", "r1", eval_size=4)
    assert code == 0, result
    judge = {r["request_id"]: RULES.evaluate(r["input"]["scenario"]).decision for r in right + always_approve}
    agree = sum(1 for r in right + always_approve if r["decision"] == judge[r["request_id"]])
    assert result["judgedRecords"] == 12 and result["liveCompliance"] == pytest.approx(agree / 12)
    assert agree < 12  # some logged APPROVEs are wrong, so the figure is measured, not assumed
    run = tmp_path / "ws" / fw.run_dir("r1")
    labelled = read_records(run / fw.EVAL_FILE) + read_records(run / fw.TRAIN_FILE)
    assert len(labelled) == 15
    for record in labelled:  # the judge's labels, in the trainer's dataset format
        assert record["target_output"]["decision"] == RULES.evaluate(record["input"]["scenario"]).decision
        assert not check_record(record, RULES, CONSTITUTIONAL_HASH).problems


def test_the_ledger_retires_a_record_that_would_pass_the_limit_and_never_trains_on_it(log: Path, tmp_path: Path
                                                                                     ) -> None:
    workspace = tmp_path / "ws"
    code, first = prepare(log, workspace, "r1", seed=1, limit=8, epsilon=5)
    assert code == 0 and first["retiredRecords"] == 0 and first["budgetMaxEpsilon"] == 5
    trained_once = keys(workspace / fw.run_dir("r1") / fw.TRAIN_FILE)
    # Another run on the same log with another split: a record trained at ε 5 would reach 10 > 8.
    code, second = prepare(log, workspace, "r2", seed=2, limit=8, epsilon=5)
    assert code == 0, second
    trained_twice = trained_once & keys(workspace / fw.run_dir("r2") / fw.TRAIN_FILE)
    assert not trained_twice
    ledger = Ledger.load(workspace / fw.LEDGER_FILE)
    retired = {k for k, entry in ledger.records.items() if entry.retired_by == "r2"}
    second_eval = keys(workspace / fw.run_dir("r2") / fw.EVAL_FILE)
    assert retired == trained_once - second_eval and len(retired) == second["retiredRecords"] > 0
    assert second["retiredTotal"] == len(retired) and second["budgetMaxEpsilon"] == 5
    assert all(entry.spent() <= 8 for entry in ledger.records.values())
    # A third run may train only on records no run has trained on; here too few are left.
    fresh = keys(workspace / fw.run_dir("r1") / fw.EVAL_FILE) & second_eval
    code, third = prepare(log, workspace, "r3", seed=3, limit=8, epsilon=5)
    if len(fresh) < 3:
        assert (code, third["reason"]) == (3, fw.REASON_BUDGET_EXHAUSTED), third
    else:
        assert keys(workspace / fw.run_dir("r3") / fw.TRAIN_FILE) <= fresh


def test_a_retried_prepare_charges_its_run_once(log: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    _, first = prepare(log, workspace, "r1", limit=8, epsilon=5)
    _, retry = prepare(log, workspace, "r1", limit=8, epsilon=5)
    assert retry["retiredRecords"] == 0 and retry["trainRecords"] == first["trainRecords"]
    assert max(entry.spent() for entry in Ledger.load(workspace / fw.LEDGER_FILE).records.values()) == 5


def test_too_few_records_or_budget_fail_by_name_and_charge_nothing(log: Path, tmp_path: Path) -> None:
    code, result = prepare(log, tmp_path / "ws", "r1", eval_size=19)
    assert (code, result["phase"], result["reason"]) == (3, fw.PHASE_FAILED, fw.REASON_NOT_ENOUGH_RECORDS)
    assert "--eval-size=19" in result["message"]
    code, result = prepare(log, tmp_path / "ws", "r1", limit=8, epsilon=5, finetunes=2)
    assert (code, result["reason"]) == (3, fw.REASON_BUDGET_EXHAUSTED) and "--finetunes=2" in result["message"]
    assert not (tmp_path / "ws" / fw.LEDGER_FILE).exists()
    # Every record trained at ε 8 of 8: the next run has nothing left to train on.
    assert prepare(log, tmp_path / "ws", "r2", limit=8, epsilon=8)[0] == 0
    code, result = prepare(log, tmp_path / "ws", "r3", eval_size=15, seed=5, limit=8, epsilon=8)
    assert (code, result["reason"]) == (3, fw.REASON_BUDGET_EXHAUSTED), result
    ledger = Ledger.load(tmp_path / "ws" / fw.LEDGER_FILE)
    assert not any("r3" in entry.charges for entry in ledger.records.values())


@pytest.mark.parametrize(("flag", "value"), [("--run-id", "Run/1"), ("--eval-size", "0"),
                                             ("--expected-digest", "abc"), ("--val-ratio", "1.5")])
def test_bad_arguments_name_the_flag(log: Path, tmp_path: Path, flag: str, value: str) -> None:
    args = {"--run-id": "r1", "--eval-size": "5", "--val-ratio": "0.1", flag: value}
    proc = run_cli("acgs-data", "flywheel-prepare", "--log-dir", str(log), "--workspace", str(tmp_path),
                   "--record-epsilon-limit", "8", "--finetune-epsilon", "4", "--finetunes", "1",
                   *[x for kv in args.items() for x in kv], timeout=60)
    result = json.loads(proc.stdout)
    assert proc.returncode == 2 and result["reason"] == fw.REASON_INVALID_INPUT
    assert f"{flag}={value}" in result["message"]


def test_ledger_sums_charges_within_the_limit_and_a_retry_replaces_its_own(tmp_path: Path) -> None:
    ledger = Ledger()
    assert ledger.charge("r1", ["a", "b"], 0.1, 1e-6, limit=0.3) == (["a", "b"], [])
    assert ledger.charge("r2", ["a"], 0.1, 1e-6, limit=0.3) == (["a"], [])
    assert ledger.charge("r3", ["a", "b"], 0.1, 1e-6, limit=0.3) == (["a", "b"], [])  # 0.1+0.1+0.1 is 0.3
    assert ledger.charge("r4", ["a", "b"], 0.1, 1e-6, limit=0.3) == (["b"], ["a"])
    ledger.forget_run("r4")
    assert ledger.records["a"].retired_by is None and ledger.records["b"].spent() == pytest.approx(0.2)
    assert ledger.charge("r4", ["a"], 0.2, 1e-6, limit=0.3) == ([], ["a"])
    assert ledger.charge("r5", ["a"], 0.0, 0.0, limit=0.3) == ([], ["a"])  # retirement is final
    ledger.save(tmp_path / "ledger.json")
    again = Ledger.load(tmp_path / "ledger.json")
    assert again.records == ledger.records and again.retired_total() == 1
    assert sum(again.records["a"].deltas.values()) == pytest.approx(3e-6)


def test_a_corrupt_ledger_fails_the_run_by_name_and_is_left_alone(log: Path, tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / fw.LEDGER_FILE).write_text('{"version": 1, "records": ')
    code, result = prepare(log, tmp_path / "ws", "r1")
    assert (code, result["reason"]) == (1, fw.REASON_UNREADABLE) and "ledger.json" in result["message"]
    assert (tmp_path / "ws" / fw.LEDGER_FILE).read_text() == '{"version": 1, "records": '
    assert not (tmp_path / "ws" / fw.run_dir("r1")).exists()


def test_a_run_without_fine_tunes_charges_nothing_and_still_leaves_retired_records_out() -> None:
    ledger = Ledger()
    ledger.charge("r1", ["a"], 8.0, 1e-5, limit=8)
    assert ledger.charge("r2", ["a", "b"], 0.0, 0.0, limit=8) == (["a", "b"], [])
    assert set(ledger.records) == {"a"} and ledger.records["a"].charges == {"r1": 8.0}
    ledger.charge("r3", ["a"], 8.0, 1e-5, limit=8)
    assert ledger.charge("r4", ["a", "b"], 0.0, 0.0, limit=8) == (["b"], ["a"])
