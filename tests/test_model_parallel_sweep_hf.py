"""``shapecalc sweep hf CONFIG`` over the parallel sizes (--dp/--tp/--pp lists and
ranges), as the model commands' sweep: each point is the per-GPU account of the config's
model at that plan; the model's sizes and the input stay fixed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from shapecalc.adapters.hf_config import from_hf_config
from shapecalc.analysis.cost import analyze
from shapecalc.analysis.parallel import per_gpu
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.cli.app import cli

CONFIG = {
    "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 1000,
    "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 4, "intermediate_size": 128, "max_position_embeddings": 2048,
}  # fmt: skip
ENV = {"NO_COLOR": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None}


def run(args: list[str], width: int = 80) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, env={**ENV, "COLUMNS": str(width)})
    return result.exit_code, result.output


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    return str(path)


def test_each_point_is_the_per_gpu_account(config: str) -> None:
    args = ["sweep", "hf", config, "--tp", "1,2,4", "--pp", "1..2", "--dp", "2"]
    args += ["--zero", "1", "--batch", "2", "--seq-len", "32", "--dtype", "bf16"]
    code, out = run([*args, "--format", "csv"])
    assert code == 0, out
    header, *rows = [line.split(",") for line in out.splitlines()]
    assert header == ["tp", "pp", "states", "gathered", "activations", "per GPU"]
    assert len(rows) == 6
    cost = analyze(from_hf_config(CONFIG), batch=2, seq_len=32, dtype="bf16")
    for row in rows:
        tp, pp, *_, total = map(int, row)
        plan = ParallelPlan(dp=2, zero=1, tp=tp, pp=pp)
        assert per_gpu(cost, plan).gpu_bytes == total
    for width in (80, 200):
        code, shown = run(args, width)
        assert code == 0 and "Memory per GPU over the plans" in shown
        assert all(len(line) <= width for line in shown.splitlines())


@pytest.mark.parametrize(
    ("extra", "flag", "rule"),
    [
        (["--tp", "1,3"], "--tp", "--tp 3 must divide the attention heads (A = 4)"),
        (["--tp", "1,2", "--seq-len", "32,64"], "--seq-len", "holds the input fixed"),
        (["--tp", "1,2", "--vary", "layers=2,4"], "--vary", "leave out --vary"),
    ],
)
def test_refusals_are_one_line(config: str, extra: list[str], flag: str, rule: str) -> None:
    code, out = run(["sweep", "hf", config, "--batch", "1", *extra])
    assert code == 2, out
    assert out.count("\n") == 1 and f"'{flag}'" in out and rule in out
