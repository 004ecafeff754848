"""ZeRO-3's share of each parameter is whole elements: DeepSpeed pads a parameter of n
numbers to a multiple of N (``Init._aligned_size`` and ``_padding_size``) and gives every
rank ``_aligned_size // N`` of them (``Init._partition_param``,
``deepspeed/runtime/zero/partition_parameters.py``, deepspeed 0.19.8), called here."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.cost import analyze
from shapecalc.analysis.parallel import per_gpu, tensors
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.architectures import get

zero = pytest.importorskip("deepspeed.runtime.zero.partition_parameters")


def deepspeed_partition(numel: int, ranks: int) -> int:
    """The numbers of one parameter every rank holds, by DeepSpeed's own methods."""
    init: Any = SimpleNamespace(_partition_world_size=lambda _: ranks)
    init._padding_size = lambda p: zero.Init._padding_size(init, p)
    aligned: int = zero.Init._aligned_size(init, SimpleNamespace(ds_numel=numel))
    return aligned // ranks


def line(cost: Any, plan: ParallelPlan, label: str) -> int:
    return int(next(x.bytes for x in per_gpu(cost, plan).lines if x.label == label))


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 5), st.integers(2, 41), st.integers(2, 10**12))
def test_bf16_weights_are_whole_elements_as_deepspeed_partitions(
    heads: int, vocab: int, ranks: int
) -> None:
    model = get("llama")(vocab=vocab, hidden=2 * heads, layers=2, heads=heads, intermediate=7)
    model = model.model()
    cost = analyze(model, batch=1, seq_len=2, dtype="bf16", training="adamw")
    plan = ParallelPlan(dp=ranks, zero=3)
    expected = sum(t.copies * deepspeed_partition(t.numel, ranks) * 2 for t in tensors(model))
    weights = line(cost, plan, "weights")
    assert weights == expected
    assert weights % 2 == 0
    assert weights == line(cost, plan, "gradients")  # bf16 both, every tensor trained


def test_llama_8b_over_3_and_ten_billion_ranks() -> None:
    """The trial's figures: 5,353,507,627 bytes (a byte count split, not elements) and 291
    bytes (one byte of each of 291 tensors) before."""
    config = {
        "model_type": "llama",
        "vocab_size": 128256,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
    }
    from shapecalc.adapters.hf_config import from_hf_config

    model = from_hf_config(config)
    cost = analyze(model, batch=1, seq_len=2, dtype="bf16", training="adamw")
    assert line(cost, ParallelPlan(dp=3, zero=3), "weights") == 5_353_507_820
    assert line(cost, ParallelPlan(dp=10**10, zero=3), "weights") == 291 * 2
