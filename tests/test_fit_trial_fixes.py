"""A quantized model with nothing trainable has no backward; the least quantized format
on a tie is the plain mix; a training run on one rank says it shards nothing."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from shapecalc.analysis.cost import analyze
from shapecalc.architectures import get
from shapecalc.cli.app import cli
from shapecalc.core.errors import ShapecalcError
from shapecalc.quant import parse_weights, quantize

TINY = ["--vocab", "1000", "--hidden", "64", "--layers", "2", "--heads", "2"]
TINY += ["--intermediate", "128"]
LLAMA_70B = ["--vocab", "128256", "--hidden", "8192", "--layers", "80", "--heads", "64"]
LLAMA_70B += ["--kv-heads", "8", "--intermediate", "28672"]


def run(args: list[str], width: int = 80) -> Any:
    return CliRunner().invoke(cli, args, env={"COLUMNS": str(width)}, prog_name="shapecalc")


@pytest.mark.parametrize(
    "command",
    [
        ["llama", *TINY, "--memory"],
        ["fit", "llama", *TINY, "--gpu", "h100"],
    ],
)
def test_training_a_model_with_nothing_trainable_is_refused(command: list[str]) -> None:
    """Before: gradients and optimizer 0 B, yet activations "kept for backward"."""
    result = run([*command, "--weights", "q4_k_m", "--training", "adam"], width=200)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "--training adam: nothing in" in lines[0] and "--lora-rank" in lines[0]


def test_the_api_refuses_it_and_adapters_or_nf4_s_embeddings_still_train() -> None:
    model = get("llama")(vocab=1000, hidden=64, layers=2, heads=2, intermediate=128).model()
    frozen = quantize(model, parse_weights("q4_k_m"))
    assert frozen.trainable == 0
    with pytest.raises(ShapecalcError) as err:
        analyze(frozen, batch=1, seq_len=16, training="adam")
    assert err.value.field == "training"
    analyze(frozen, batch=1, seq_len=16, training="none")  # inference is unchanged
    nf4 = quantize(model, parse_weights("nf4"))  # the embeddings stay trainable
    cost = analyze(nf4, batch=1, seq_len=16, training="adam")
    grads = next(line for line in cost.memory if line.label == "gradients")
    assert grads.bytes == nf4.trainable * 4
    lora = run(["llama", *TINY, "--memory", "--weights", "q4_k_m", "--training", "adam",
                "--lora-rank", "8", "--lora-targets", "all-linear"])  # fmt: skip
    assert lora.exit_code == 0, lora.output


def test_on_a_tie_the_least_quantized_is_the_plain_mix() -> None:
    """A dense model: mxfp4_moe stores what q8_0 does (it differs for experts only)."""
    result = run(["fit", "llama", *LLAMA_70B, "--gpu", "h100", "--formats"])
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.replace("│", " ").split())
    assert "q8_0 75.0 GB, mxfp4_moe 75.0 GB; the least quantized that fits: q8_0" in said
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_training_on_one_rank_says_nothing_is_sharded() -> None:
    """Before: "dp=1, FSDP full" for a run on one GPU."""
    result = run(["fit", "llama", *TINY, "--gpu", "h100", "--training", "adamw"])
    assert result.exit_code == 0, result.output
    head = next(line for line in result.output.splitlines() if "Memory per GPU" in line)
    assert head == "Memory per GPU (dp=1, FSDP on one rank: unsharded; shapecalc accounting)"
    assert max(len(line) for line in result.output.splitlines()) <= 80
