"""Lines the trial found too wide or missing a word: the training verdict wrapped to the
terminal, an unknown --gpu or --weights answered in one short line with the closest
names, a buffer named in the memory account."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shapecalc.adapters.hf_config import from_hf_config
from shapecalc.analysis.cost import analyze
from tests.test_cli import run
from tests.test_tower_state import GEMMA3
from tests.test_trial_inputs import LLAMA


@pytest.mark.parametrize("width", [80, 200])
def test_the_training_verdict_fits_the_terminal(width: int, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA))
    args = ["fit", "hf", str(path), "--memory-gb", "0.00001", "--training", "adamw"]
    result = run([*args, "--mixed-precision", "--seq-len", "64"], width)
    assert result.exit_code == 1, result.output
    assert "no number of GPUs fits" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= width
    said = " ".join(result.stdout.split())
    assert "(what is not sharded does not shrink) (10,000 bytes a GPU)" in said


@pytest.mark.parametrize(
    ("args", "near"),
    [
        (["--gpu", "nope"], "h100, h200"),
        (["--gpu", "rtx409"], "did you mean rtx-4090?"),
        (["--gpu", "x" * 500], "h100, h200"),
        (["--weights", "q4km"], "did you mean q4_k_m"),
        (["--weights", "nope"], "fp8, nf4"),
        (["--weights", "y" * 500], "fp8, nf4"),
    ],
)
def test_an_unknown_name_is_one_short_line(args: list[str], near: str, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA))
    gpu = [] if args[0] == "--gpu" else ["--gpu", "l4"]
    result = run(["fit", "hf", str(path), *gpu, *args], 80)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= 200, lines
    assert near in lines[0] and args[0] in lines[0]


def test_a_leaf_buffer_is_named_in_the_memory_account() -> None:
    """SigLIP's position_ids is a leaf of its own (its name is the leaf's): the rule says
    it, not an empty name."""
    cost = analyze(from_hf_config(GEMMA3), batch=1, seq_len=8, dtype="bf16")
    rule = next(line.rule for line in cost.memory if line.label == "buffers")
    assert rule.startswith("position_ids (int64, 8 bytes each)"), rule
