"""``--accounting deepspeed`` against DeepSpeed's own estimators, imported and called
(``deepspeed/runtime/zero/stage_1_and_2.py``: ``estimate_zero2_model_states_mem_needs``,
``model_to_params``; ``stage3.py``: ``estimate_zero3_model_states_mem_needs``,
``model_to_params``, deepspeed 0.19.8), their parameter counts taken from the built
model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.cost import analyze
from shapecalc.analysis.parallel import largest_layer, per_gpu, tensors
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.architectures import get

stage2 = pytest.importorskip("deepspeed.runtime.zero.stage_1_and_2")
stage3 = pytest.importorskip("deepspeed.runtime.zero.stage3")


@settings(max_examples=10)
@given(
    st.integers(2, 300),
    st.integers(1, 3),
    st.booleans(),
    st.integers(1, 4),
    st.integers(1, 16),
    st.sampled_from([1.0, 1.5, 2.25]),
    st.booleans(),
    st.booleans(),
)
def test_our_deepspeed_accounting_is_deepspeeds(
    vocab: int,
    heads: int,
    tie: bool,
    nodes: int,
    per_node: int,
    factor: float,
    offload: bool,
    zero_init: bool,
) -> None:
    from shapecalc.adapters.torch_bridge import build
    from shapecalc.analysis.parallel import Accounting

    model = get("llama")(
        vocab=vocab, hidden=4 * heads, layers=2, heads=heads, intermediate=11, tie_weights=tie
    ).model()
    module = build(model, device="cpu")
    total, largest = stage3.model_to_params(module)
    assert stage2.model_to_params(module) == total
    assert sum(t.copies * t.numel for t in tensors(model)) == total
    assert largest_layer(model) == largest
    cost = analyze(model, batch=1, seq_len=3, dtype="bf16", mixed_precision=True)
    gpus = nodes * per_node
    ask = Accounting("deepspeed", factor, zero_init)
    for zero, params in ((2, False), (3, False), (3, True)):
        plan = ParallelPlan(
            dp=gpus,
            zero=zero,
            gpus_per_node=per_node,
            offload_optimizer=offload or params,
            offload_parameters=params,
        )
        ours = per_gpu(cost, plan, ask)
        if zero == 2:
            cpu, gpu = stage2.estimate_zero2_model_states_mem_needs(
                total, per_node, nodes, offload, factor
            )
        else:
            cpu, gpu, _ = stage3.estimate_zero3_model_states_mem_needs(
                total, largest, per_node, nodes, offload or params, params, zero_init, factor
            )
        assert (ours.gpu_bytes, ours.cpu_bytes) == (gpu, cpu), plan
