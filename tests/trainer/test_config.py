"""The trainer's one config: defaults and the flag/file spellings the operator relies on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from acgs_trainer.config import parse_config
from acgs_trainer.dataio import split
from acgs_trainer.exitcodes import ConfigError

BASE = ["--data", "generated:all:10", "--output", "/tmp/out"]


def test_split_seed_defaults_to_the_training_seed() -> None:
    """Runs that set no split seed split as before --split-seed existed (same data, same digest)."""
    assert parse_config([*BASE, "--seed", "7"]).data_split_seed == 7
    assert parse_config(BASE).data_split_seed == 0


def test_split_seed_flag_and_camel_case_file_key(tmp_path: Path) -> None:
    cfg = parse_config([*BASE, "--seed", "7", "--split-seed", "42"])
    assert (cfg.seed, cfg.data_split_seed) == (7, 42)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"data": "generated:all:10", "output": "/tmp/out", "seed": 7,
                                "splitSeed": 42, "valRatio": 0.2, "evalRatio": 0.15}))
    from_file = parse_config(["--config", str(path)])
    assert (from_file.seed, from_file.data_split_seed) == (7, 42)
    assert (from_file.val_ratio, from_file.eval_ratio) == (0.2, 0.15)
    assert parse_config(["--config", str(path), "--split-seed", "3"]).data_split_seed == 3


def test_a_different_split_seed_gives_a_different_split() -> None:
    records = [{"id": i, "text": f"record {i}"} for i in range(50)]
    parts = {seed: split(records, seed, 0.1, 0.2) for seed in (7, 42)}
    assert parts[7].sizes() == parts[42].sizes()
    assert [r["id"] for r in parts[7].eval] != [r["id"] for r in parts[42].eval]


def test_bad_split_seed_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--split-seed=x"):
        parse_config([*BASE, "--split-seed", "x"])
