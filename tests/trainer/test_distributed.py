"""A gang of two real trainer processes under torchrun (gloo, CPU), started the way the operator
starts an Indexed Job's pods: one ``acgs-torchrun`` agent per "pod", c10d rendezvous at the
index-0 agent, ``JOB_COMPLETION_INDEX`` set. Real steps, real files, real processes."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from acgs_trainer.launch import exit_code_of, torchrun_args
from acgs_contract.exitcodes import PRIVACY_BUDGET_EXHAUSTED, UNEXPECTED_ERROR

from .conftest import BIN, child_env, read_result, run_cli

TINY = ["--data", "generated:constitutional_ai:60", "--batch-size", "8", "--seed", "3",
        "--log-every", "4", "--checkpoint-every", "5", "--eval-max-examples", "8"]
LOSS = re.compile(r"step (\d+)/\d+ loss ([-\d.]+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_gang(output: Path, *args: str, workers: int = 2, timeout: float = 600
             ) -> list[subprocess.CompletedProcess[str]]:
    """One acgs-torchrun agent per worker "pod", one process each, as the Indexed Job runs them."""
    port, run_id = _free_port(), uuid.uuid4().hex[:12]
    procs = [subprocess.Popen(
        [str(BIN / "acgs-torchrun"), f"--nnodes={workers}", "--nproc-per-node=1",
         "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id={run_id}",
         "--max-restarts=0", "--local-addr=127.0.0.1", "--no-python", str(BIN / "acgs-train"),
         *TINY, "--output", str(output), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(JOB_COMPLETION_INDEX=str(index)))
        for index in range(workers)]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def _manifest(output: Path) -> dict[str, Any]:
    return json.loads((output / "artifact" / "manifest.json").read_text())


def _losses(stderr: str) -> list[float]:
    return [float(m.group(2)) for m in LOSS.finditer(stderr)]


@pytest.mark.ml
@pytest.mark.slow
def test_a_dp_gang_of_two_spends_the_epsilon_of_one_process_and_its_artifact_verifies(
        tmp_path: Path, builtin_base: None) -> None:
    gang = run_gang(tmp_path / "gang", "--max-steps", "12")
    assert [p.returncode for p in gang] == [0, 0], gang[0].stderr[-3000:] + gang[1].stderr[-3000:]
    single = run_cli("acgs-train", *TINY, "--max-steps", "12", "--output", str(tmp_path / "one"),
                     timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]

    result, alone = read_result(tmp_path / "gang"), read_result(tmp_path / "one")
    gang_privacy, one_privacy = _manifest(tmp_path / "gang")["privacy"], _manifest(tmp_path / "one")["privacy"]
    # The same global batch (sampling rate), noise and steps: the accountant's very same figure.
    for key in ("sampleRate", "noiseMultiplier", "steps", "accountantHistory"):
        assert gang_privacy[key] == one_privacy[key], key
    assert result["epsilon"] == alone["epsilon"] and 0 < result["epsilon"] <= 8 * 0.95
    assert _manifest(tmp_path / "gang")["training"]["worldSize"] == 2
    assert "on 2 processes" in result["message"]
    # Both ranks released the same (noised) losses: one release per step, as in one process.
    assert _losses(gang[0].stderr) == _losses(gang[1].stderr) and _losses(gang[0].stderr)

    verify = run_cli("acgs-train", "verify", "--artifact", str(tmp_path / "gang" / "artifact"),
                     "--digest", result["digest"])
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # Killed after step 10 (its checkpoint is on rank 0's volume): a new gang resumes from it,
    # rank 1 included (it gets rank 0's state and secret key), and accounts the same ε.
    resumed = run_gang(tmp_path / "gang", "--max-steps", "12")
    assert [p.returncode for p in resumed] == [0, 0], resumed[0].stderr[-3000:]
    again = _manifest(tmp_path / "gang")
    assert again["training"]["resumedFrom"] == 10 and again["training"]["steps"] == 12
    assert read_result(tmp_path / "gang")["epsilon"] == result["epsilon"]
    assert "resumed from checkpoint at step 10" in resumed[1].stderr


@pytest.mark.ml
@pytest.mark.slow
def test_a_gang_without_dp_learns(tmp_path: Path, builtin_base: None) -> None:
    # A high learning rate first wrecks the pre-trained base's answers, so there is a loss to
    # bring down again: the DDP-averaged steps must bring it down on both ranks alike.
    gang = run_gang(tmp_path / "out", "--no-dp", "--max-steps", "40", "--lr", "0.02",
                    "--log-every", "10")
    assert [p.returncode for p in gang] == [0, 0], gang[0].stderr[-3000:] + gang[1].stderr[-3000:]
    losses = _losses(gang[0].stderr)
    assert len(losses) == 4 and losses == _losses(gang[1].stderr)
    assert losses[-1] < losses[1], losses
    assert read_result(tmp_path / "out")["phase"] == "Succeeded"


@pytest.mark.ml
def test_a_budget_halt_in_the_gang_exits_with_the_trainers_code(tmp_path: Path, builtin_base: None) -> None:
    # torchrun alone would exit 1 (retriable); the podFailurePolicy needs the trainer's 4.
    gang = run_gang(tmp_path / "out", "--max-steps", "50", "--noise-multiplier", "0.3",
                    "--target-epsilon", "1")
    assert [p.returncode for p in gang] == [PRIVACY_BUDGET_EXHAUSTED] * 2, gang[0].stderr[-3000:]
    assert read_result(tmp_path / "out")["reason"] == "PrivacyBudgetExhausted"


class _Failure:
    def __init__(self, exitcode: int, timestamp: int) -> None:
        self.exitcode, self.timestamp = exitcode, timestamp


def test_the_first_failure_decides_the_exit_code() -> None:
    assert exit_code_of({1: _Failure(1, 20), 0: _Failure(4, 10)}) == 4
    assert exit_code_of({0: _Failure(-9, 10)}) == UNEXPECTED_ERROR  # killed by a signal: retriable


@pytest.mark.parametrize(("index", "expected"), [("0", "is_host=true"), ("1", "is_host=false")])
def test_the_index_0_pod_hosts_the_rendezvous(index: str, expected: str) -> None:
    args = torchrun_args(["--nnodes=2", "x"], {"JOB_COMPLETION_INDEX": index})
    assert args == [f"--rdzv-conf={expected}", "--nnodes=2", "x"]
    assert torchrun_args(["--rdzv-conf=is_host=false", "x"], {"JOB_COMPLETION_INDEX": "0"}) == \
        ["--rdzv-conf=is_host=false", "x"]
    assert torchrun_args(["x"], {}) == ["x"]
