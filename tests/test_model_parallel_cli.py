"""The model-parallel flags on the command line: --shapes lists the most loaded rank's
tensors with their per-rank shapes, at 80 and 200 columns, and sizes Megatron refuses
are one line naming the flag, the value and the rule (exit 2)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from shapecalc.cli.app import cli

ENV = {"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}
LLAMA = ["llama", "--vocab", "32000", "--hidden", "512", "--layers", "8", "--heads", "8"]


def run(args: list[str], width: int = 80) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, args, env={**ENV, "COLUMNS": str(width)}, prog_name="shapecalc"
    )
    return result.exit_code, result.output


@pytest.mark.parametrize("width", [80, 200])
def test_per_rank_shapes_fit(width: int) -> None:
    args = [*LLAMA, "--kv-heads", "4", "--tp", "4", "--pp", "2", "--shapes"]
    code, out = run([*args, "--batch", "1", "--seq-len", "64"], width)
    assert code == 0, out
    assert "One GPU of the model-parallel run (tp 4, pp 2)" in out
    assert "(128, 512) of (512, 512), column" in out  # q_proj: 512 / 4 rows
    assert "(8064, 512) of (32000, 512), vocab" in out  # 32,256 / 4: Megatron's padding
    assert "model.layers.{4..7}" in out and "model.layers.{0..3}" not in out.split("One GPU")[1]
    assert all(len(line) <= width for line in out.splitlines())


def test_no_per_rank_table_without_shapes() -> None:
    args = [*LLAMA, "--tp", "2", "--memory", "--batch", "1", "--seq-len", "64"]
    code, out = run(args)
    assert code == 0, out
    assert "One GPU of the model-parallel run" not in out


@pytest.mark.parametrize(
    ("extra", "flag", "rule"),
    [
        (["--tp", "3"], "--tp", "--tp 3 must divide the attention heads (A = 8)"),
        (["--pp", "3"], "--pp", "--pp 3 must divide the 8 layers (L)"),
        (["--pp", "2", "--virtual-stages", "8"], "--pp", "× --virtual-stages 8"),
        (["--experts", "6", "--dp", "4", "--ep", "4"], "--ep", "--ep 4 must divide the 6 experts"),
        (["--sequence-parallel"], "--sequence-parallel", "give --tp 2 or more"),
        (["--tp", "0"], "--tp", "at least 1"),
        (["--pp", "3", "--first-stage-layers", "3"], "--pp", "left after the first and last"),
        (["--first-stage-layers", "3"], "--first-stage-layers", "give --pp 2 or more"),
    ],
)
def test_refusals_are_one_line(extra: list[str], flag: str, rule: str) -> None:
    code, out = run([*LLAMA, *extra, "--shapes", "--batch", "1", "--seq-len", "64"])
    assert code == 2, out
    assert out.count("\n") == 1 and "Traceback" not in out
    assert f"'{flag}'" in out and rule in out


def test_fit_counts_every_gpu_of_a_model_parallel_rank() -> None:
    """fit --training searches the data-parallel ranks; with --tp and --pp each of them is
    tp·pp GPUs, and the answer counts them all."""
    import json

    args = [*LLAMA, "--kv-heads", "4", "--training", "adam", "--tp", "2", "--pp", "2"]
    args += ["--batch", "1", "--seq-len", "64", "--memory-gb", "0.05"]
    code, out = run(["fit", *args, "--format", "json"])
    assert code == 0, out
    data = json.loads(out)
    assert data["gpus"] == 4 * data["dp"] and data["dp"] >= 1
    code, out = run(["fit", *args])
    assert f"the fewest GPUs is {data['gpus']} = {data['dp']} × 4" in out
