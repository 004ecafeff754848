"""LoRA under tensor and pipeline parallelism (shapecalc.analysis.model_parallel): each
adapter tensor on a rank as peft's own LoraParallelLinear builds it (run here on
Megatron-shaped parallel layers: ColumnParallelLinear's weight (out/t, in) and
RowParallelLinear's (out, in/t), megatron/core/tensor_parallel/layers.py lines 1038-1048
and 1408-1417 at d98e8a6), the frozen base split as without adapters, gradients and
optimizer state for the adapters alone, QLoRA's quantized base over pipeline stages, and
the refusals."""

from __future__ import annotations

import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapt.lora import LoraConfig, lora
from shapecalc.analysis.model_parallel import rank_parameters
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.architectures.llama import llama
from shapecalc.core.errors import InvalidArgumentError

torch = pytest.importorskip("torch")


def _backend(tp: int) -> Any:
    """Megatron's two parallel linear layers as one rank holds them."""
    from torch import nn

    class ColumnParallelLinear(nn.Module):  # type: ignore[misc]
        def __init__(self, input_size: int, output_size: int, **kw: Any) -> None:
            super().__init__()
            self.input_size, self.output_size = input_size, output_size
            self.gather_output = kw.get("gather_output", False)
            self.weight = nn.Parameter(torch.empty(output_size // tp, input_size, device="meta"))

    class RowParallelLinear(nn.Module):  # type: ignore[misc]
        def __init__(self, input_size: int, output_size: int, **kw: Any) -> None:
            super().__init__()
            self.input_size, self.output_size = input_size, output_size
            self.input_is_parallel = kw.get("input_is_parallel", True)
            self.weight = nn.Parameter(torch.empty(output_size, input_size // tp, device="meta"))

    return types.SimpleNamespace(
        ColumnParallelLinear=ColumnParallelLinear, RowParallelLinear=RowParallelLinear
    )


def _peft_shapes(tp: int, column: bool, n_in: int, n_out: int, r: int) -> tuple[Any, Any]:
    """lora_A's and lora_B's shapes as peft's LoraParallelLinear makes them on one rank
    (init_lora_weights=False: peft 0.21.2's update_layer would otherwise read a
    lora_bias entry it never sets)."""
    import peft
    from peft.tuners.lora.tp_layer import LoraParallelLinear

    backend = _backend(tp)
    base = (backend.ColumnParallelLinear if column else backend.RowParallelLinear)(n_in, n_out)
    config = peft.LoraConfig(r=r, init_lora_weights=False)
    layer = LoraParallelLinear(
        base, "default", config, backend, r=r, megatron_config=types.SimpleNamespace()
    )
    return tuple(layer.lora_A["default"].weight.shape), tuple(layer.lora_B["default"].weight.shape)


@settings(max_examples=8, deadline=None)
@given(st.sampled_from([2, 4]), st.integers(1, 8), st.sampled_from([1, 2]), st.data())
def test_adapters_as_peft_splits_them(tp: int, r: int, pp: int, data: Any) -> None:
    """Every adapter of an all-linear LoRA on the most loaded rank: peft's shapes for
    its base layer (column-parallel: q, k, v, gate, up; row-parallel: o, down)."""
    heads = tp * data.draw(st.integers(1, 2))
    model = llama(
        vocab=100, hidden=heads * 8, layers=2 * pp, heads=heads, kv_heads=heads,
        intermediate=tp * data.draw(st.integers(2, 12)),
    )  # fmt: skip
    adapted = lora(model, LoraConfig(r=r, targets="all-linear"))
    ranks = rank_parameters(adapted, ParallelPlan(tp=tp, pp=pp))
    held = {t.name: t for t in ranks.tensors}
    compared = 0
    for name, t in held.items():
        if ".lora_A." not in name:
            continue
        b = held[name.replace(".lora_A.", ".lora_B.")]
        column = name.split(".")[-4] not in ("o_proj", "down_proj")
        theirs = _peft_shapes(tp, column, t.shape[1], b.shape[0], r)
        assert (t.local, b.local) == theirs, name
        compared += 1
    assert compared == 7


def test_memory_prices_the_adapters_alone() -> None:
    """Weights: the rank's base share and adapters; gradients and Adam's two states: the
    rank's adapters only, at float32 (peft's adapters, LoraParallelLinear's params_dtype)."""
    from shapecalc.analysis.cost import analyze
    from shapecalc.analysis.parallel import per_gpu

    model = llama(vocab=256, hidden=64, layers=4, heads=4, intermediate=128)
    adapted = lora(model, LoraConfig(r=4, targets=("q_proj", "o_proj")))
    plan = ParallelPlan(tp=2, pp=2)
    stage = rank_parameters(adapted, plan).most_loaded
    adapters = sum(t.count for t in stage.tensors if ".lora_" in t.name)
    assert adapters == 2 * (4 * 64 + 32 * 4 + 4 * 32 + 64 * 4)  # two layers, q and o
    cost = analyze(adapted, batch=1, seq_len=16, dtype="bf16", training="adam")
    lines = {x.label: x for x in per_gpu(cost, plan).lines}
    assert lines["gradients"].bytes == 4 * adapters
    steps = 4 * sum(t.copies for t in stage.tensors if ".lora_" in t.name)  # one per tensor
    assert lines["optimizer state"].bytes == 2 * 4 * adapters + steps
    base = stage.count - adapters
    assert lines["weights"].bytes == 2 * base + 4 * adapters
    from shapecalc.analysis.model_parallel import activation_bytes

    kept = activation_bytes(adapted, plan, 1, 16, cost.activation_itemsize)
    assert lines["activations"].counted and lines["activations"].bytes == kept.total


def test_qlora_over_pipeline_stages() -> None:
    """A 4-bit base: each stage holds its layers' stored tensors whole, at their bytes."""
    from shapecalc.analysis.cost import analyze
    from shapecalc.analysis.parallel import per_gpu
    from shapecalc.quant import quantize, weights_option

    model = quantize(
        llama(vocab=256, hidden=64, layers=4, heads=4, intermediate=128), weights_option("nf4")
    )
    adapted = lora(model, LoraConfig(r=4, targets="all-linear"))
    plan = ParallelPlan(pp=2)
    cost = analyze(adapted, batch=1, seq_len=16, dtype="bf16", training="adam")
    from shapecalc.analysis.parallel import _same_run

    stage = rank_parameters(adapted, plan).most_loaded
    expected = 0
    for t in stage.tensors:  # each stored tensor at its own bytes a number, else bf16's 2
        row = next(r for r in adapted.rows() if r.name == t.name or _same_run(r.name, t.name))
        if row.param.dtype:
            expected += row.param.nbytes(1) * t.count // row.count
        else:
            expected += 2 * t.count
    assert any(t.name.endswith(".absmax") for t in stage.tensors)
    lines = {x.label: x.bytes for x in per_gpu(cost, plan).lines}
    assert lines["weights"] == expected
    with pytest.raises(InvalidArgumentError, match="stored quantized"):
        per_gpu(cost, ParallelPlan(tp=2))


@pytest.mark.parametrize(
    ("config", "pattern"),
    [
        ({"targets": ("q_proj",), "dora": True}, "does not support DoRA"),
        ({"targets": ("q_proj",), "bias": True}, "does not support lora_bias"),
        ({"targets": ("embed_tokens",)}, "not its vocabulary-parallel embedding"),
    ],
)
def test_refused_as_peft_refuses(config: dict[str, Any], pattern: str) -> None:
    """peft's LoraParallelLinear raises for DoRA and lora_bias (tp_layer.py lines 59-67)
    and wraps only Megatron's linear layers."""
    model = llama(vocab=256, hidden=64, layers=2, heads=4, intermediate=128)
    adapted = lora(model, LoraConfig(r=4, **config))
    with pytest.raises(InvalidArgumentError, match=pattern) as caught:
        rank_parameters(adapted, ParallelPlan(tp=2))
    assert caught.value.field == "--tp"


@pytest.mark.parametrize("width", [80, 200])
def test_command_line(width: int) -> None:
    from click.testing import CliRunner

    from shapecalc.cli.app import cli

    args = [
        "llama", "--vocab", "1000", "--hidden", "64", "--layers", "4", "--heads", "4",
        "--tp", "2", "--pp", "2", "--dp", "2", "--lora-rank", "8", "--lora-targets",
        "all-linear", "--shapes", "--memory", "--training", "adam", "--batch", "1",
        "--seq-len", "64",
    ]  # fmt: skip
    env = {"COLUMNS": str(width), "NO_COLOR": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None}
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "(32, 8) of (64, 8), adapter, column" in result.output
    assert "(8, 32) of (8, 64), adapter, row" in result.output
    assert all(len(line) <= width for line in result.output.splitlines())
    refused = CliRunner().invoke(cli, [*args, "--weights", "nf4"], env=env)
    assert refused.exit_code == 2 and refused.output.count("\n") == 1
    assert "'--tp'" in refused.output
