"""The per-GPU account on the command line: --dp --zero --fsdp ... on a model command,
``fit --training``, bad input (one line naming the flag, exit 2), the output at 80 and
200 columns; and the account against the ZeRO paper's formulas where nothing pads."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.cost import analyze
from shapecalc.analysis.parallel import per_gpu
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.architectures import get

SMALL = [
    "llama", "--vocab", "1000", "--hidden", "64", "--layers", "2", "--heads", "4",
    "--intermediate", "160", "--batch", "2", "--seq-len", "16",
]  # fmt: skip
BIG = [
    "llama", "--vocab", "32000", "--hidden", "4096", "--layers", "32", "--heads", "32",
    "--intermediate", "11008",
]  # fmt: skip


def run(args: list[str], width: int = 80) -> Any:
    from click.testing import CliRunner

    from shapecalc.cli import cli

    env = {"COLUMNS": str(width), "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}
    return CliRunner().invoke(cli, args, env=env, prog_name="shapecalc")


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize(
    "flags",
    [
        ["--dp", "8", "--zero", "3", "--mixed-precision", "--dtype", "bf16", "--explain"],
        [
            "--dp",
            "8",
            "--fsdp",
            "hybrid",
            "--shard-group",
            "4",
            "--offload-parameters",
            "--offload-optimizer",
        ],
        [
            "--dp",
            "16",
            "--zero",
            "3",
            "--accounting",
            "deepspeed",
            "--gpus-per-node",
            "8",
            "--offload-optimizer",
        ],
    ],
)
def test_the_per_gpu_table_at_80_and_200_columns(width: int, flags: list[str]) -> None:
    result = run([*SMALL, *flags], width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.stdout.splitlines())
    assert "Memory per GPU (dp=" in result.stdout
    assert "per-GPU total" in result.stdout
    assert "Warning" not in result.output  # --batch and --dtype price the per-GPU account


@pytest.mark.parametrize(
    ("flags", "flag", "rule"),
    [
        (["--dp", "0"], "--dp", "at least 1"),
        (["--dp", "6", "--fsdp", "hybrid", "--shard-group", "4"], "--shard-group", "divide"),
        (["--dp", "8", "--fsdp", "hybrid"], "--shard-group", "give --shard-group"),
        (["--dp", "8", "--shard-group", "4"], "--shard-group", "with --fsdp hybrid"),
        (["--dp", "4", "--zero", "2", "--offload-parameters"], "--offload-parameters", "--zero 3"),
        (["--dp", "4", "--fsdp", "grad-op", "--offload-parameters"], "--offload-parameters", ""),
        (["--dp", "4", "--offload-optimizer"], "--offload-optimizer", "ZeRO"),
        (["--dp", "4", "--fsdp", "full", "--offload-optimizer"], "--offload-optimizer", "together"),
        (["--dp", "6", "--zero", "2", "--gpus-per-node", "4"], "--gpus-per-node", "divide"),
        (["--dp", "4", "--zero", "1", "--accounting", "deepspeed"], "--accounting", "ZeRO-2"),
        (
            ["--dp", "4", "--zero", "3", "--offload-parameters", "--accounting", "deepspeed"],
            "--offload-parameters",
            "--offload-optimizer",
        ),
        (["--dp", "4", "--zero", "2", "--accounting", "megatron"], "--accounting", "--zero 1"),
        (["--dp", "2", "--tp", "3"], "--tp", "divide the attention heads"),
        (["--dp", "4", "--zero", "1", "--fsdp", "full"], "--fsdp", "give one"),
        (["--dp", "4", "--zero", "2", "--training", "none"], "--training", "training step"),
        (["--dp", "4", "--zero", "2", "--buffer-factor", "0.5"], "--buffer-factor", "at least 1"),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(flags: list[str], flag: str, rule: str) -> None:
    result = run([*SMALL, *flags])
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error) == 1 and f"'{flag}'" in error[0] and rule in error[0], result.output
    assert "Traceback" not in result.output


def test_json_carries_the_per_gpu_account() -> None:
    result = run([*SMALL, "--dp", "4", "--zero", "2", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["per_gpu"]
    assert data["plan"]["zero"] == 2 and data["accounting"] == "shapecalc"
    assert data["gpu_bytes"] == sum(x["bytes"] for x in data["lines"] if not x["cpu"])


@pytest.mark.parametrize("fmt", ["markdown", "latex"])
def test_the_text_formats_carry_it(fmt: str) -> None:
    result = run([*SMALL, "--dp", "4", "--fsdp", "full", "--format", fmt])
    assert result.exit_code == 0, result.output
    assert "Memory per GPU (dp=4, FSDP full; shapecalc accounting)" in result.stdout


def test_fit_answers_the_fewest_gpus_and_the_account_there() -> None:
    args = ["fit", *BIG, "--gpu", "h100", "--batch", "1", "--seq-len", "2048"]
    result = run([*args, "--training", "adamw", "--mixed-precision", "--format", "json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    gpus, capacity = found["gpus"], found["memory"]
    model = get("llama")(vocab=32000, hidden=4096, layers=32, heads=32, intermediate=11008).model()
    cost = analyze(
        model, batch=1, seq_len=2048, dtype="bf16", training="adamw", mixed_precision=True
    )
    at = per_gpu(cost, ParallelPlan(dp=gpus, fsdp="full")).gpu_bytes
    below = per_gpu(cost, ParallelPlan(dp=gpus - 1, fsdp="full")).gpu_bytes
    assert gpus > 1 and at <= capacity < below
    assert found["per_gpu"]["gpu_bytes"] == at
    # replicated (ZeRO-0 is not sharding): no number of GPUs fits, exit 1
    result = run([*args, "--training", "adamw", "--mixed-precision", "--zero", "0", "--fsdp",
                  "no-shard"])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "no number of GPUs fits" in result.stdout
    assert run([*args, "--training", "adam", "--dp", "4"]).exit_code == 2


@settings(max_examples=20)
@given(st.integers(1, 6), st.sampled_from([2, 4, 8]), st.integers(1, 3))
def test_zero_paper_formulas_where_nothing_pads(k: int, n: int, stage: int) -> None:
    """ZeRO (arXiv:1910.02054, section 5): with mixed-precision Adam (K = 12) a rank
    holds 4Ψ + KΨ/N (optimizer sharded), 2Ψ + (2 + K)Ψ/N (and gradients), 16Ψ/N (and
    parameters), the figure of every stage being ours when the partitions do not pad;
    the optimizer's step tensors aside."""
    width = 2 * n * k  # every tensor's rows and sizes divide by N: no padding
    model = get("llama")(
        vocab=width, hidden=width, layers=1, heads=1, intermediate=width, tie_weights=True
    ).model()
    cost = analyze(model, batch=1, seq_len=1, dtype="bf16", mixed_precision=True)
    lines = per_gpu(cost, ParallelPlan(dp=n, zero=stage)).lines
    states = sum(x.bytes for x in lines if x.label not in ("activations", "gathered for compute"))
    p = model.total
    expected = {1: 4 * p + 12 * p // n, 2: 2 * p + 14 * p // n, 3: 16 * p // n}[stage]
    assert p % (2 * n) == 0 and states - 4 == expected  # one 4-byte step a flat partition


@pytest.mark.parametrize(
    ("training", "weights", "rank"),
    [("adam", None, 0), ("adamw-8bit", None, 0), ("adamw", None, 4), ("adamw", "nf4", 8)],
)
def test_one_rank_holds_the_single_device_account(
    training: str, weights: str | None, rank: int
) -> None:
    """Nothing sharded (dp 1, or --fsdp no-shard over 4): the single-device lines
    (LoRA's trainable-only gradients and state, QLoRA's 4-bit base, bitsandbytes' 8-bit
    state) with torch Adam's 4-byte step a trained tensor."""
    from shapecalc.adapt import LoraConfig, lora
    from shapecalc.quant import quantize, weights_option

    model = get("llama")(vocab=300, hidden=64, layers=2, heads=4, intermediate=96).model()
    if weights:
        model = quantize(model, weights_option(weights))
    if rank:
        model = lora(model, LoraConfig(r=rank, targets="all-linear"))
    cost = analyze(model, batch=2, seq_len=5, dtype="bf16", training=training)
    single = {x.label: x.bytes for x in cost.memory if x.training}
    trained = sum(r.param.repeat for r in model.rows() if r.param.trainable and not r.tied_to)
    steps = 0 if "8bit" in training else 4 * trained
    for plan in (ParallelPlan(), ParallelPlan(dp=4, fsdp="no-shard")):
        ours = {x.label: x.bytes for x in per_gpu(cost, plan).lines}
        assert ours["weights"] == single["weights"]
        assert ours["gradients"] == single["gradients"]
        assert ours["optimizer state"] == single["optimizer state"] + steps
        assert ours["activations"] == single["activations"]


@settings(max_examples=10)
@given(
    st.sampled_from([1, 2, 4]),
    st.sampled_from([1, 2]),
    st.sampled_from([1, 2]),
    st.sampled_from(["none", "selective", "full"]),
    st.sampled_from([(0, None), (1, None), (3, None), (0, "full")]),
)
def test_model_parallel_ranks_are_sharded_over_dp(
    dp: int, tp: int, pp: int, recompute: str, sharding: tuple[int, str | None]
) -> None:
    """With --tp/--pp the rank's own tensors (rank_parameters) are what data parallelism
    shards, and the activations are Korthikanti's (activation_bytes); Megatron's
    accounting is its theoretical memory."""
    from shapecalc.analysis.model_parallel import (
        activation_bytes,
        megatron_activation_memory_without_sp,
        megatron_args,
        megatron_weight_and_optimizer_memory,
        rank_parameters,
    )

    zero, fsdp = sharding
    model = get("llama")(vocab=500, hidden=64, layers=4, heads=4, intermediate=96).model()
    cost = analyze(model, batch=2, seq_len=8, dtype="bf16", mixed_precision=True)
    plan = ParallelPlan(dp=dp, tp=tp, pp=pp, zero=zero, fsdp=fsdp, recompute=recompute)
    lines = {x.label: x.bytes for x in per_gpu(cost, plan).lines}
    # one rank whole: the model as transformers holds it (Megatron pads the vocabulary)
    held = rank_parameters(model, plan).count if tp * pp > 1 else model.total
    if zero < 3 and fsdp is None:
        assert lines["weights"] == 2 * held
    if zero == 0 and fsdp is None:
        assert lines["fp32 master weights"] == 4 * held
    if tp * pp > 1 or recompute == "selective":
        assert lines["activations"] == activation_bytes(model, plan, 2, 8, 2).total
    if zero <= 1 and fsdp is None:
        megatron = {x.label: x.bytes for x in per_gpu(cost, plan, "megatron").lines}
        args = megatron_args(model, plan, 2, 8, distributed_optimizer=zero == 1)
        assert megatron["weights and optimizer"] == round(
            megatron_weight_and_optimizer_memory(args)
        )
        assert megatron["activations"] == round(megatron_activation_memory_without_sp(args, 1))


def test_sweep_over_the_plans_is_the_account_at_each() -> None:
    args = ["sweep", *SMALL, "--dp", "1,2,4", "--zero", "1..3", "--mixed-precision"]
    args += ["--dtype", "bf16"]
    result = run([*args, "--format", "csv"])
    assert result.exit_code == 0, result.output
    header, *rows = [line.split(",") for line in result.stdout.splitlines()]
    assert header == ["dp", "zero", "states", "gathered", "activations", "per GPU"]
    model = get("llama")(vocab=1000, hidden=64, layers=2, heads=4, intermediate=160).model()
    cost = analyze(model, batch=2, seq_len=16, dtype="bf16", mixed_precision=True)
    assert len(rows) == 9
    for row in rows:
        dp, zero, *_, total = map(int, row)
        assert per_gpu(cost, ParallelPlan(dp=dp, zero=zero)).gpu_bytes == total
    for width in (80, 200):
        shown = run(args, width)
        assert shown.exit_code == 0 and all(len(x) <= width for x in shown.stdout.splitlines())
    refused = run(["sweep", *SMALL[:4], "64,128", *SMALL[5:], "--dp", "1,2"])
    assert refused.exit_code == 2 and "'--hidden'" in refused.output


def test_the_flag_block_offers_the_engine_choices() -> None:
    from shapecalc.analysis import parallel, parallel_plan
    from shapecalc.cli import parallel_options as cli

    assert cli.ACCOUNTINGS == parallel.ACCOUNTINGS
    assert cli.FSDP_MODES == parallel_plan.FSDP_MODES
    assert cli.RECOMPUTE == parallel_plan.RECOMPUTE
