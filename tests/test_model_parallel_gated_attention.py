"""Qwen3-Next's gated full attention under tensor parallelism, as Megatron-LM's
``SelfAttention`` with ``attention_output_gate`` splits it (megatron/core/transformer/
attention.py at d98e8a6: lines 348-366 the heads per rank, 1686-1702 the fused
``linear_qkv`` with the gates, 1840-1897 its split into query, gate, key and value,
1632-1639 the output gate). Megatron-LM needs CUDA, so the split is checked on
transformers' own module: each rank's slice of a real ``Qwen3NextAttention`` (its query
heads with their gates, its key-value heads, its o_proj columns, the q and k norms whole)
is an attention of a/t heads whose tensors are ours, whose outputs sum to the whole
layer's (the row-parallel all-reduce), and whose training forward keeps what we count for
the rank (autograd's saved tensors, measured), without and with the core attention
recomputed (Megatron's selective recomputation). The mixture beside it (routed experts, a
shared expert and its sigmoid gate) is checked on transformers' ``Qwen3NextSparseMoeBlock``."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.gated_attention_parallel import gated_attention_lines, rotary_tables
from shapecalc.analysis.model_parallel import (
    activation_bytes,
    mixture_lines,
    rank_parameters,
    shared_expert_lines,
)
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.core.errors import InvalidArgumentError
from tests.measure import kept_bytes

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
modeling = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")


def hf_config(h: int, a: int, k: int, d: int, layers: int = 2, **extra: Any) -> Any:
    logging.getLogger("transformers").setLevel(logging.ERROR)
    config = transformers.Qwen3NextConfig(
        hidden_size=h, num_attention_heads=a, num_key_value_heads=k, head_dim=d,
        num_hidden_layers=layers, layer_types=["full_attention"] * layers, vocab_size=40,
        intermediate_size=8, num_experts=0, partial_rotary_factor=0.5,
        linear_num_key_heads=2, linear_num_value_heads=4, **extra,
    )  # fmt: skip
    config._attn_implementation = "eager"
    return config


def attention(h: int, a: int, k: int, d: int, dtype: Any = None) -> Any:
    module = modeling.Qwen3NextAttention(hf_config(h, a, k, d), 0)
    return module.to(dtype) if dtype is not None else module


def inputs(h: int, a: int, k: int, d: int, b: int, s: int, dtype: Any) -> list[Any]:
    """The layer's input, the model's rotary cos and sin, the causal mask (eager's)."""
    x = torch.randn(b, s, h, dtype=dtype, requires_grad=True)
    rotary = modeling.Qwen3NextRotaryEmbedding(hf_config(h, a, k, d))
    cos, sin = rotary(x, torch.arange(s)[None].expand(b, s))
    mask = torch.full((s, s), float("-inf")).triu(1)[None, None].to(dtype).expand(b, 1, s, s)
    return [x, (cos, sin), mask]


def rank_slice(full: Any, rank: int, tp: int, k: int) -> dict[str, Any]:
    """Rank ``rank``'s tensors as Megatron holds them, in transformers' names and layout:
    q_proj is laid out head by head (a head's query, then its gate), so the rank's a/t
    heads with their gates are one block of rows; k_proj and v_proj its k/t heads, or
    with fewer key-value heads than ranks its query group's one head; o_proj its input
    columns; the norms whole."""
    d = full.head_dim

    def part(x: Any, dim: int = 0) -> Any:
        return x.chunk(tp, dim)[rank]

    def kv(x: Any) -> Any:
        if k >= tp:
            return part(x)
        group = rank // (tp // k)
        return x[group * d : (group + 1) * d]

    return {
        "q_proj.weight": part(full.q_proj.weight),
        "k_proj.weight": kv(full.k_proj.weight),
        "v_proj.weight": kv(full.v_proj.weight),
        "o_proj.weight": part(full.o_proj.weight, 1),
        "q_norm.weight": full.q_norm.weight,
        "k_norm.weight": full.k_norm.weight,
    }


@st.composite
def layers(draw: st.DrawFn) -> tuple[tuple[int, int, int, int], int]:
    tp = draw(st.sampled_from([1, 2, 4]))
    a = tp * draw(st.integers(1, 2))
    k = draw(
        st.sampled_from([g for g in (1, 2, 4, 8) if a % g == 0 and (g % tp == 0 or tp % g == 0)])
    )
    return (draw(st.sampled_from([8, 16])), a, k, draw(st.sampled_from([4, 8]))), tp


def held(sizes: tuple[int, int, int, int], tp: int) -> dict[str, Any]:
    """Our per-rank tensors of a Qwen3-Next of full-attention layers, by their names
    under the layer's self_attn."""
    from shapecalc.adapters.hf_config import from_hf_config

    h, a, k, d = sizes
    config = {**hf_config(h, a, k, d).to_dict(), "model_type": "qwen3_next"}
    model = from_hf_config(config)
    return {
        t.name.split("self_attn.")[-1]: t
        for t in rank_parameters(model, ParallelPlan(tp=tp)).tensors
        if ".self_attn." in t.name
    }


@settings(max_examples=8, deadline=None)
@given(layers(), st.sampled_from([3, 9]))
def test_each_rank_holds_the_attention_of_its_heads(case: Any, s: int) -> None:
    """Per rank: q_proj (2·a·d/t, H), k_proj and v_proj (k·d/t, H), o_proj (H, a·d/t),
    the q and k norms (d,) whole: the tensors of transformers' attention of a/t heads,
    which the rank's slice of the real layer fills; the ranks' outputs sum to the whole
    layer's. With fewer key-value heads than ranks Megatron-LM still splits the keys and
    values evenly (part of a head each, the projection's output gathered before the
    rank attends with its group's head): the shapes are that split's, and the rank runs
    with its group's head whole."""
    sizes, tp = case
    h, a, k, d = sizes
    ours = held(sizes, tp)
    local = attention(h, a // tp, max(k // tp, 1), d)
    expected = {name: tuple(p.shape) for name, p in local.named_parameters()}
    if k < tp:
        expected.update({f"{x}_proj.weight": (k * d // tp, h) for x in "kv"})
    assert {name: t.local for name, t in ours.items()} == expected
    torch.manual_seed(0)
    full = attention(h, a, k, d)
    for p in full.parameters():
        p.data.normal_(0, 0.3)
    x, rotary, mask = inputs(h, a, k, d, 2, s, torch.float32)
    with torch.no_grad():
        whole, _ = full(x, rotary, mask)
        summed = torch.zeros_like(whole)
        for rank in range(tp):
            local.load_state_dict(rank_slice(full, rank, tp, k), strict=True)
            summed += local(x, rotary, mask)[0]
    torch.testing.assert_close(summed, whole, rtol=1e-4, atol=1e-5)


def _checkpointed(module: Any, query: Any, key: Any, value: Any, mask: Any, **kw: Any) -> Any:
    """Megatron's selective recomputation: the core attention (``softmax(q·kᵀ)·v``) run
    under a checkpoint that keeps its inputs (the mask is the model's, not kept)."""
    from torch.utils.checkpoint import checkpoint

    def core(q: Any, k: Any, v: Any) -> Any:
        return modeling.eager_attention_forward(module, q, k, v, mask, **kw)[0]

    return checkpoint(core, query, key, value, use_reentrant=True), None


@settings(max_examples=10, deadline=None)
@given(
    layers(),
    st.integers(1, 2),
    st.sampled_from([1, 5, 16]),
    st.sampled_from(["bfloat16", "float16"]),
    st.booleans(),
)
def test_a_rank_keeps_what_autograd_keeps(
    case: Any, b: int, s: int, dtype: str, selective: bool
) -> None:
    """The rank's attention (a/t query heads, k/t or one key-value head) run forward in
    bf16 or fp16: autograd keeps what the rank's lines count and the model's rotary
    tables; with sequence parallelism the projections' input is the rank's 1/t shard;
    with the core attention recomputed it keeps the core attention's inputs."""
    sizes, tp = case
    h, a, k, d = sizes
    kind = getattr(torch, dtype)
    module = attention(h, a // tp, max(k // tp, 1), d, kind)
    for p in module.parameters():
        p.data.normal_(0, 0.3)
    recompute = "selective" if selective else "none"
    if selective:
        transformers.AttentionInterface.register("checkpointed_eager", _checkpointed)
        module.config._attn_implementation = "checkpointed_eager"
    kept = kept_bytes(module, inputs(h, a, k, d, b, s, kind))
    plan = ParallelPlan(tp=tp, recompute=recompute)
    lines = gated_attention_lines((a, k, d, d // 2), h, plan, s, b, 2)
    assert sum(line[2] for line in lines) + rotary_tables(d // 2, s, b, 2)[2] == kept
    if tp > 1 and s % tp == 0:
        plan = ParallelPlan(tp=tp, sequence_parallel=True, recompute=recompute)
        split = gated_attention_lines((a, k, d, d // 2), h, plan, s, b, 2)
        assert sum(x[2] for x in split) == sum(x[2] for x in lines) - 2 * b * s * h * (tp - 1) // tp


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_mixture_and_its_gated_shared_expert(dtype: str) -> None:
    """transformers' Qwen3NextSparseMoeBlock, eager: the router and every visit keep
    mixture_lines (the routing weights cast to the activations' dtype, unlike Mixtral's
    fp32 ones), the shared expert and its sigmoid gate shared_expert_lines, beside the
    block's input (the MLP's input); and a Qwen3-Next's mixture layer counts them all."""
    from shapecalc.adapters.hf_config import from_hf_config

    h, e, k, i, shared, t = 16, 4, 2, 8, 12, 10
    config = transformers.Qwen3NextConfig(
        hidden_size=h, moe_intermediate_size=i, shared_expert_intermediate_size=shared,
        num_experts=e, num_experts_per_tok=k,
    )  # fmt: skip
    config._experts_implementation = "eager"
    block = modeling.Qwen3NextSparseMoeBlock(config).to(getattr(torch, dtype))
    for p in block.parameters():
        p.data.normal_(0, 0.1)
    x = torch.randn(1, t, h, dtype=getattr(torch, dtype), requires_grad=True)
    p = x.element_size()
    plan = ParallelPlan()
    routed = mixture_lines(e, k, i, h, plan, t, 1, p, p)
    gated = shared_expert_lines(shared, True, h, plan, t, 1, p)
    assert kept_bytes(block, [x]) == p * t * h + sum(x.bytes for x in (*routed, *gated))
    small = {**hf_config(h, 4, 2, 4).to_dict(), "model_type": "qwen3_next"}
    small.update(num_experts=e, num_experts_per_tok=k, moe_intermediate_size=i)
    small.update(shared_expert_intermediate_size=shared)
    found = activation_bytes(
        from_hf_config(small), ParallelPlan(tp=2, sequence_parallel=True), 1, t
    )
    layer = {line.what: line.bytes for line in found.layer}
    two = ParallelPlan(tp=2, sequence_parallel=True)
    lines = (
        *mixture_lines(e, k, i, h, two, t, 1, 2, 2),
        *shared_expert_lines(shared, True, h, two, t, 1, 2),
    )
    assert all(layer[line.what] == line.bytes for line in lines)
    assert layer["routing weight per visit"] == 2 * t * k


def _both_kinds(**extra: Any) -> Any:
    from shapecalc.adapters.hf_config import from_hf_config
    from tests.test_qwen3_next import SMALL

    config = {**SMALL, "num_hidden_layers": 4, "num_experts": 4, "num_experts_per_tok": 2}
    return from_hf_config({**config, "shared_expert_intermediate_size": 6, **extra})


def test_a_qwen3_next_of_both_layer_kinds() -> None:
    """Linear-attention and gated-attention layers (mixtures both), tp 2 with sequence
    parallelism: each kind's layer is the two norms' inputs, its mixer's rank terms, the
    dropout masks, the MLP's input, the routed and shared experts' terms; the ends keep
    the rotary tables once per micro-batch in flight."""
    from shapecalc.analysis.gdn_parallel import gated_delta_net_lines

    model = _both_kinds()
    plan = ParallelPlan(tp=2, sequence_parallel=True)
    s, b, h, p, t = 16, 1, 16, 2, 2
    found = activation_bytes(model, plan, b, s)
    kinds = {kind: (sum(x.bytes for x in lines), n) for kind, lines, n in found.kinds}
    mlp = mixture_lines(4, 2, 4, h, plan, s, b, p, p) + shared_expert_lines(
        6, True, h, plan, s, b, p
    )
    rest = 2 * p * s * b * h // t + 2 * s * b * h // t + p * s * b * h // t
    rest += sum(x.bytes for x in mlp)
    mixer = gated_delta_net_lines((2, 4, 3, 5, 3), h, plan, s, b, p)
    gated = gated_attention_lines((4, 2, 4, 2), h, plan, s, b, p)
    assert kinds == {
        "linear-attention mixture": (sum(x[2] for x in mixer) + rest, 3),
        "gated-attention mixture": (sum(x[2] for x in gated) + rest, 1),
    }
    ends = {x.what: x.bytes for x in found.ends}
    assert ends["rotary cos and sin (every layer's)"] == 2 * p * s * b * 2
    assert found.sizes["r"] == 2 and found.sizes["a"] == 4


def test_refusals() -> None:
    """One line each: 4-byte activations, --cp, a fused kernel; Megatron's own formula
    (plain attention) for a model of gated or linear attention."""
    from shapecalc.analysis.model_parallel import megatron_args

    model = _both_kinds()
    for plan, itemsize, field in (
        (ParallelPlan(tp=2, sequence_parallel=True), 4, "itemsize"),
        (ParallelPlan(cp=2), 2, "--cp"),
    ):
        with pytest.raises(InvalidArgumentError) as caught:
            activation_bytes(model, plan, 1, 16, itemsize)
        assert caught.value.field == field and "\n" not in str(caught.value)
    with pytest.raises(InvalidArgumentError, match="fused kernel") as caught:
        gated_attention_lines((4, 2, 4, 2), 16, ParallelPlan(tp=2), 8, 1, 2, flash=True)
    with pytest.raises(InvalidArgumentError, match="gated or linear attention") as caught:
        megatron_args(model, ParallelPlan(tp=2), 1, 16)
    assert caught.value.field == "--accounting"


def _80b(tmp_path: Path) -> str:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3_next"}))
    return str(tmp_path)


@pytest.mark.parametrize("tp", [2, 4])
def test_the_80b_per_gpu(tmp_path: Path, tp: int) -> None:
    """Qwen3-Next-80B-A3B (Qwen3NextConfig's defaults: 16 query heads over 2 key-value
    heads of 256, 16 key and 32 value heads of linear attention, 512 experts) under
    --tp 2 and 4 with sequence parallelism: each rank's q_proj holds its heads with their
    gates, and the per-GPU memory counts both layer kinds' activations."""
    from click.testing import CliRunner

    from shapecalc.cli.app import cli

    args = ["hf", _80b(tmp_path), "--dtype", "bf16", "--training", "adam", "--memory"]
    args += ["--batch", "1", "--seq-len", "4096", "--tp", str(tp), "--sequence-parallel"]
    args += ["--shapes"]
    env = {"COLUMNS": "200", "NO_COLOR": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None}
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert f"({2 * 16 * 256 // tp}, 2048) of (8192, 2048), column" in result.output
    kv = f"({512 // tp}, 2048) of (512, 2048), column"  # even at tp 4, above K = 2
    assert kv in result.output
    assert "gated-attention mixture layer" in result.output
    assert "linear-attention mixture layer" in result.output
    if tp == 4:
        plain = [a for a in args if a not in ("--memory", "--shapes")]
        fit = CliRunner().invoke(cli, ["fit", *plain, "--gpu", "h100"], env=env)
        assert fit.exit_code in (0, 1) and "activations" in fit.output, fit.output


@pytest.mark.parametrize("width", [80, 200])
def test_command_line(width: int) -> None:
    """A small Qwen3-Next of both layer kinds under --tp 2 with sequence parallelism; fit
    --training answers for it; 4-byte activations refused in one line."""
    from click.testing import CliRunner

    from shapecalc.cli.app import cli

    args = [
        "qwen3-next", "--vocab", "1000", "--hidden", "64", "--layers", "4", "--heads", "8",
        "--kv-heads", "2", "--head-dim", "16", "--linear-key-heads", "4",
        "--linear-value-heads", "8", "--linear-key-dim", "16", "--linear-value-dim", "16",
        "--experts", "8", "--experts-per-token", "2", "--moe-intermediate", "32",
        "--shared-intermediate", "32", "--dtype", "bf16", "--training", "adam",
        "--batch", "1", "--seq-len", "64", "--tp", "2", "--sequence-parallel",
    ]  # fmt: skip
    env = {"COLUMNS": str(width), "NO_COLOR": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None}
    result = CliRunner().invoke(cli, [*args, "--shapes", "--memory"], env=env)
    assert result.exit_code == 0, result.output
    assert "(128, 64) of (256, 64), column" in result.output
    assert "(64, 64) of (64, 128), row" in result.output
    assert all(len(line) <= width for line in result.output.splitlines())
    fit = CliRunner().invoke(cli, ["fit", *args, "--memory-gb", "1"], env=env)
    assert fit.exit_code == 0, fit.output
    assert "the fewest GPUs is" in fit.output
    refused = CliRunner().invoke(cli, [*args, "--memory", "--dtype", "fp32"], env=env)
    assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
    assert "2-byte" in refused.output
    refused = CliRunner().invoke(cli, [*args, "--memory", "--cp", "2"], env=env)
    assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
    assert "'--cp'" in refused.output and "gated attention" in refused.output


def test_qwen_moe_routing_weights_in_the_activations_dtype() -> None:
    """Qwen2-MoE's router casts its top-k weights as Qwen3-Next's does
    (``router_top_value.to(router_logits.dtype)``): in bf16 the experts keep 2 bytes a
    visit, and a Qwen-MoE model's mixture counts them so."""
    from transformers import Qwen2MoeConfig
    from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock

    from shapecalc.adapters.hf_config import from_hf_config

    h, e, k, i, shared, t = 16, 4, 2, 8, 12, 10
    sizes = dict(hidden_size=h, moe_intermediate_size=i, num_experts=e, num_experts_per_tok=k)
    sizes.update(shared_expert_intermediate_size=shared, norm_topk_prob=True)
    config = Qwen2MoeConfig(**sizes)
    config._experts_implementation = "eager"
    block = Qwen2MoeSparseMoeBlock(config).to(torch.bfloat16)
    for p in block.parameters():
        p.data.normal_(0, 0.1)
    x = torch.randn(1, t, h, dtype=torch.bfloat16, requires_grad=True)
    plan = ParallelPlan()
    lines = (
        *mixture_lines(e, k, i, h, plan, t, 1, 2, 2),
        *shared_expert_lines(shared, True, h, plan, t, 1, 2),
    )
    assert kept_bytes(block, [x]) == 2 * t * h + sum(line.bytes for line in lines)
    model = from_hf_config(
        {**sizes, "model_type": "qwen2_moe", "num_attention_heads": 4, "num_key_value_heads": 2,
         "num_hidden_layers": 1, "vocab_size": 40, "intermediate_size": 8}
    )  # fmt: skip
    layer = {x.what: x.bytes for x in activation_bytes(model, plan, 1, t).layer}
    assert layer["routing weight per visit"] == 2 * t * k
