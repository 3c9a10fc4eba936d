"""Constitution rules, dataset generation/validation in all formats, filter, dedupe and split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from acgs_contract.constitution import PINNED_CONTENT_DIGESTS, content_digest_of_text

from acgs_trainer import data_cli
from acgs_trainer.constitution import (CONSTITUTIONAL_HASH, ConstitutionError, default_text,
                                       load_constitution)
from acgs_trainer.dataio import dedupe, read_records, split, write_records
from acgs_trainer.datasets import DATASET_TYPES, generate
from acgs_trainer.filtering import constitutional_filter
from acgs_trainer.prompting import format_prompt, parse_decision, parse_principles, target_of

from .conftest import read_result, run_cli

C = load_constitution()


def _scenario(**overrides: object) -> dict[str, object]:
    base = {"action": "data_access_request", "actor_role": "employee",
            "data_sensitivity": "internal", "consent": True, "risk_level": "low",
            "audit_logging": True, "human_oversight": True, "explanation_provided": True,
            "affects_protected_group": False, "bias_tested": True}
    return {**base, **overrides}


@pytest.mark.parametrize("overrides, decision, principles", [
    ({}, "APPROVE", ()),
    ({"data_sensitivity": "restricted", "consent": False}, "DENY", ("privacy",)),
    ({"actor_role": "contractor", "data_sensitivity": "confidential"}, "ESCALATE", ("privacy",)),
    ({"risk_level": "critical", "human_oversight": False}, "ESCALATE", ("accountability",)),
    # DENY outranks ESCALATE; only the rules that set the decision are reported
    ({"risk_level": "critical", "human_oversight": False, "affects_protected_group": True,
      "bias_tested": False}, "DENY", ("fairness",)),
])
def test_rules_derive_the_strictest_decision(overrides, decision, principles) -> None:
    verdict = C.evaluate(_scenario(**overrides))
    assert (verdict.decision, verdict.principles) == (decision, principles)


def test_constitution_override_must_carry_the_expected_hash(tmp_path: Path) -> None:
    other = tmp_path / "c.yaml"
    other.write_text(default_text().replace(CONSTITUTIONAL_HASH, "deadbeefdeadbeef"))
    with pytest.raises(ConstitutionError, match="expected 'cdd01ef066bc6cf2'"):
        load_constitution(other)


def test_relaxed_rules_under_the_same_hash_are_refused_naming_both_digests(tmp_path: Path) -> None:
    """The hash is a label the file gives itself; the content pinned to it is what counts."""
    text = default_text().replace(
        "decision: DENY\n    when: [{field: disables_safety_checks",
        "decision: APPROVE\n    when: [{field: disables_safety_checks")
    assert text != default_text() and f'constitutional_hash: "{CONSTITUTIONAL_HASH}"' in text
    relaxed = tmp_path / "relaxed.yaml"
    relaxed.write_text(text)
    pinned = PINNED_CONTENT_DIGESTS[CONSTITUTIONAL_HASH]
    actual = content_digest_of_text(text)
    with pytest.raises(ConstitutionError) as caught:
        load_constitution(relaxed)
    assert actual in str(caught.value) and pinned in str(caught.value) and actual != pinned
    # a digest handed in by configuration cannot re-pin a hash the contract pins
    with pytest.raises(ConstitutionError, match="differs from the pinned"):
        load_constitution(relaxed, pinned_digest=actual)
    # comments and layout are not content: the reformatted default still loads
    reformatted = tmp_path / "reformatted.yaml"
    reformatted.write_text("# a comment\n" + default_text().replace("version: \"1.0\"", "version: '1.0'"))
    assert load_constitution(reformatted).content_digest == pinned


def test_relaxed_rules_neither_generate_data_nor_train(tmp_path: Path, dataset: Path) -> None:
    """The project's own relaxed-rules run, now refused by acgs-data and acgs-train (exit 2)."""
    relaxed = tmp_path / "relaxed.yaml"
    relaxed.write_text(default_text().replace("default_decision: APPROVE", "default_decision: DENY"))
    proc = run_cli("acgs-data", "--constitution", str(relaxed), "generate", "--type",
                   "constitutional_ai", "--size", "5", "--out", str(tmp_path / "d.jsonl"))
    assert proc.returncode == 2 and PINNED_CONTENT_DIGESTS[CONSTITUTIONAL_HASH] in proc.stderr
    assert not (tmp_path / "d.jsonl").exists()
    out = tmp_path / "out"
    proc = run_cli("acgs-train", "--data", str(dataset), "--output", str(out), "--max-steps", "2",
                   "--constitution", str(relaxed))
    result = read_result(out)
    assert proc.returncode == 2 and result["reason"] == "InvalidConfig"
    assert content_digest_of_text(relaxed.read_text()) in result["message"]
    assert PINNED_CONTENT_DIGESTS[CONSTITUTIONAL_HASH] in result["message"]
    assert not (out / "artifact").exists()


@pytest.mark.parametrize("dataset_type", DATASET_TYPES)
def test_generated_targets_agree_with_the_rules_and_cover_every_decision(dataset_type) -> None:
    records = generate(dataset_type, 150, C, seed=2)
    assert all(r["constitutional_hash"] == CONSTITUTIONAL_HASH for r in records)
    for r in records:
        assert r["target_output"]["decision"] == C.evaluate(r["input"]["scenario"]).decision
    assert {r["target_output"]["decision"] for r in records} == {"APPROVE", "ESCALATE", "DENY"}
    assert generate(dataset_type, 5, C, seed=2) == records[:5]  # seeded


@pytest.mark.parametrize("ext", [".jsonl", ".json", ".csv", ".parquet"])
def test_generate_then_validate_round_trip(tmp_path: Path, ext: str, capsys) -> None:
    out = tmp_path / f"d{ext}"
    assert data_cli.main(["generate", "--type", "all", "--size", "4", "--out", str(out)]) == 0
    records = read_records(out)
    assert records == generate("constitutional_ai", 4, C) + [
        r for t in DATASET_TYPES[1:] for r in generate(t, 4, C)]
    assert data_cli.main(["validate", str(out)]) == 0
    assert "24/24 records compliant (compliance rate 100.00%)" in capsys.readouterr().out


@pytest.mark.parametrize("ext", [".jsonl", ".csv", ".parquet"])
def test_validate_names_each_bad_record_and_fails(tmp_path: Path, ext: str) -> None:
    records = generate("policy_governance", 6, C)
    records[1]["constitutional_hash"] = "deadbeefdeadbeef"
    del records[3]["input"]["scenario"]["framework"]
    records[4]["target_output"]["decision"] = (
        "APPROVE" if records[4]["target_output"]["decision"] != "APPROVE" else "DENY")
    path = write_records(records, tmp_path / f"bad{ext}")
    proc = run_cli("acgs-data", "validate", str(path))
    assert proc.returncode == 3
    assert "3/6 records compliant (compliance rate 50.00%)" in proc.stdout
    assert "record 1 (id=policy_governance-0-000001): wrong_hash: constitutional_hash='deadbeefdeadbeef': expected 'cdd01ef066bc6cf2'" in proc.stdout  # noqa: E501
    assert "record 3 (id=policy_governance-0-000003): bad_structure: missing field input.scenario.framework" in proc.stdout  # noqa: E501
    assert "record 4 (id=policy_governance-0-000004): target_disagrees" in proc.stdout
    assert "record 0 " not in proc.stdout


def test_validate_reports_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"id": 1}\nnot json\n')
    proc = run_cli("acgs-data", "validate", str(path))
    assert proc.returncode == 3 and "broken.jsonl:2: not JSON" in proc.stderr


def test_filter_revises_recoverable_and_drops_the_rest() -> None:
    records = generate("constitutional_ai", 10, C, seed=5)
    del records[0]["constitutional_hash"]                      # revise: stamp hash
    wrong = records[1]["target_output"]["decision"]
    records[1]["target_output"]["decision"] = "APPROVE" if wrong != "APPROVE" else "DENY"
    del records[2]["target_output"]                            # revise: derive target
    records[3]["constitutional_hash"] = "1111111111111111"     # drop: another constitution
    records[4]["input"]["scenario"]["risk_level"] = "extreme"  # drop: rules cannot apply
    records.append("not a record")                              # drop
    report = constitutional_filter(records, C, CONSTITUTIONAL_HASH)
    counts = report.counts
    assert (counts["input"], counts["kept"], counts["revised"], counts["dropped"]) == (11, 8, 3, 3)
    assert counts["revisedByReason"] == {"missing_hash": 1, "missing_target": 1,
                                         "target_disagrees": 1}
    assert counts["droppedByReason"] == {"bad_structure": 2, "wrong_hash": 1}
    for r in report.kept:  # every kept record now agrees with the rules and carries the hash
        assert r["constitutional_hash"] == CONSTITUTIONAL_HASH
        assert r["target_output"]["decision"] == C.evaluate(r["input"]["scenario"]).decision


def test_dedupe_and_split_are_reproducible() -> None:
    records = generate("multi_agent_coordination", 200, C, seed=9)
    unique, removed = dedupe(records + [json.loads(json.dumps(records[7]))])
    assert removed >= 1 and len(unique) == len(records) - (removed - 1)
    a = split(unique, seed=4, val_ratio=0.1, eval_ratio=0.2)
    b = split(list(reversed(unique)), seed=4, val_ratio=0.1, eval_ratio=0.2)  # file order moot
    c = split(unique, seed=5, val_ratio=0.1, eval_ratio=0.2)
    assert a == b and a != c
    assert a.sizes() == {"train": len(unique) - round(0.1 * len(unique)) - round(0.2 * len(unique)),
                         "val": round(0.1 * len(unique)), "eval": round(0.2 * len(unique))}
    ids = [r["id"] for part in (a.train, a.val, a.eval) for r in part]
    assert len(ids) == len(set(ids)) == len(unique)  # disjoint and complete


def test_prompt_contract_round_trip() -> None:
    record = generate("wina_optimization", 1, C)[0]
    prompt = format_prompt(record)
    assert prompt.startswith("task: wina_optimization sparsity=") and prompt.endswith("decision:")
    assert format_prompt({"type": "wina_optimization", "scenario": record["input"]["scenario"]}) \
        == prompt  # the server's request shape gives the same text
    target = target_of(record)
    assert parse_decision(" " + target) == record["target_output"]["decision"]
    assert parse_principles(target, C.principles) == record["target_output"]["principles"]
    assert parse_decision("privacy . none 3") is None
    assert parse_decision("escalate accountability") == "ESCALATE"
