"""Linear attention under tensor parallelism: Qwen3-Next's Gated DeltaNet as Megatron-LM's
``GatedDeltaNet`` splits it (megatron/core/ssm/gated_delta_net/common.py and gdn.py at
d98e8a6; its divisibility rule in megatron/core/transformer/transformer_config.py, lines
1501-1509). Megatron-LM needs CUDA and the fla kernels, so the split is checked on
transformers' own module: each rank's slice of a real ``Qwen3NextGatedDeltaNet`` cut as
Megatron cuts it (its q, k, v, z, β, a rows, its q, k, v convolution channels, its value
heads, its out_proj columns) is a module of Nk/t and Nv/t heads whose tensors are ours,
whose outputs sum to the whole layer's (the row-parallel all-reduce), and whose training
forward keeps what we count for the rank (autograd's saved tensors, measured)."""

from __future__ import annotations

import gc
import logging
import math
import warnings
import weakref
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.gdn_parallel import gated_delta_net_lines
from shapecalc.analysis.model_parallel import activation_bytes, rank_parameters
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.core.errors import InvalidArgumentError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
modeling = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")


def hf_config(h: int, nk: int, nv: int, dk: int, dv: int, w: int, layers: int = 1) -> Any:
    return transformers.Qwen3NextConfig(
        hidden_size=h, linear_num_key_heads=nk, linear_num_value_heads=nv,
        linear_key_head_dim=dk, linear_value_head_dim=dv, linear_conv_kernel_dim=w,
        num_hidden_layers=layers, layer_types=["linear_attention"] * layers,
        num_attention_heads=2, num_key_value_heads=1, head_dim=4, vocab_size=40,
        intermediate_size=8, num_experts=0,
    )  # fmt: skip


def layer(h: int, nk: int, nv: int, dk: int, dv: int, w: int) -> Any:
    """transformers' Gated DeltaNet (its torch path on CPU: no fla, no causal-conv1d)."""
    logging.getLogger("transformers").setLevel(logging.ERROR)
    return modeling.Qwen3NextGatedDeltaNet(hf_config(h, nk, nv, dk, dv, w), 0)


def rank_slice(full: Any, rank: int, tp: int) -> dict[str, Any]:
    """Rank ``rank``'s tensors as Megatron holds them, in transformers' names and layout:
    in_proj_qkvz and in_proj_ba are laid out key head by key head (fix_query_key_value_
    ordering), so the rank's q, k, v, z (and β, a) rows of its Nk/t key heads are one
    block; conv1d's channels are q, k, v of all heads, so the rank's are three blocks
    (Megatron's sharded conv1d: query, key, value); dt_bias and A_log its value heads;
    out_proj its input columns; the norm's Dv weights whole."""
    key_dim = full.key_dim
    conv = full.conv1d.weight
    q, k, v = conv[:key_dim], conv[key_dim : 2 * key_dim], conv[2 * key_dim :]

    def part(x: Any, dim: int = 0) -> Any:
        return x.chunk(tp, dim)[rank]

    return {
        "dt_bias": part(full.dt_bias),
        "A_log": part(full.A_log),
        "conv1d.weight": torch.cat([part(q), part(k), part(v)]),
        "in_proj_qkvz.weight": part(full.in_proj_qkvz.weight),
        "in_proj_ba.weight": part(full.in_proj_ba.weight),
        "norm.weight": full.norm.weight,
        "out_proj.weight": part(full.out_proj.weight, 1),
    }


@st.composite
def layers(draw: st.DrawFn) -> tuple[tuple[int, int, int, int, int, int], int]:
    tp = draw(st.sampled_from([1, 2, 4]))
    nk = tp * draw(st.integers(1, 2))
    nv = nk * draw(st.integers(1, 3))
    dk, dv = draw(st.sampled_from([2, 3, 4])), draw(st.sampled_from([2, 3, 5]))
    sizes = (draw(st.sampled_from([8, 12, 16])), nk, nv, dk, dv, draw(st.integers(2, 4)))
    return sizes, tp


def linear_attention(sizes: tuple[int, ...], tp: int) -> dict[str, Any]:
    """Our per-rank tensors of a Qwen3-Next whose layers are all linear attention, by
    their names under the layer."""
    from shapecalc.adapters.hf_config import from_hf_config

    h, nk, nv, dk, dv, w = sizes
    config = hf_config(h, nk, nv, dk, dv, w, layers=2).to_dict()
    model = from_hf_config({**config, "model_type": "qwen3_next", "num_attention_heads": tp})
    return {
        t.name.split("linear_attn.")[-1]: t
        for t in rank_parameters(model, ParallelPlan(tp=tp)).tensors
        if ".linear_attn." in t.name
    }


@settings(max_examples=8, deadline=None)
@given(layers(), st.sampled_from([5, 70]))
def test_each_rank_holds_the_layer_of_its_heads(case: Any, seq: int) -> None:
    """Per rank: in_proj_qkvz (2·Nk·Dk/t + 2·Nv·Dv/t, H), in_proj_ba (2·Nv/t, H), conv1d
    (C/t, 1, W), dt_bias and A_log (Nv/t,), the norm (Dv,) whole, out_proj (H, Nv·Dv/t):
    the tensors of transformers' layer of Nk/t and Nv/t heads, which the rank's slice of
    the real layer fills; the ranks' outputs sum to the whole layer's."""
    sizes, tp = case
    h, nk, nv, dk, dv, w = sizes
    held = linear_attention(sizes, tp)
    local = layer(h, nk // tp, nv // tp, dk, dv, w)
    assert {name: t.local for name, t in held.items()} == {
        name: tuple(p.shape) for name, p in local.named_parameters()
    }
    for name, t in held.items():  # the norm whole, everything else split t ways
        ranks = 1 if name == "norm.weight" else tp
        assert math.prod(t.local) * ranks == math.prod(t.shape), name
    torch.manual_seed(0)
    full = layer(h, nk, nv, dk, dv, w)
    for p in full.parameters():
        p.data.normal_(0, 0.3)
    x = torch.randn(2, seq, h)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = full(x)
        summed = torch.zeros_like(whole)
        for rank in range(tp):
            local.load_state_dict(rank_slice(full, rank, tp), strict=True)
            summed += local(x)
    torch.testing.assert_close(summed, whole, rtol=1e-4, atol=1e-5)


class _Held:
    __slots__ = ("__weakref__", "tensor")

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor


def held_bytes(module: Any, inputs: list[Any]) -> int:
    """Bytes of the tensors autograd still holds for the backward pass once a training
    forward of ``module`` is done (the graph kept alive by its output), once per storage,
    parameters excluded. Saved tensors of graph parts the forward dropped (the delta
    rule's final state, not returned) are freed with them and not counted; each is held
    detached, so a saved output does not keep its own graph alive."""
    own = {p.untyped_storage().data_ptr() for p in module.parameters()}
    refs: list[Any] = []

    def pack(tensor: Any) -> _Held:
        held = _Held(tensor.detach())
        refs.append(weakref.ref(held))
        return held

    module.train()
    with (
        warnings.catch_warnings(),
        torch.autograd.graph.saved_tensors_hooks(pack, lambda held: held.tensor),
    ):
        warnings.simplefilter("ignore")
        output = module(*inputs)
    gc.collect()
    seen: dict[int, int] = {}
    for ref in refs:
        held = ref()
        if held is None:
            continue
        storage = held.tensor.untyped_storage()
        if storage.data_ptr() not in own and storage.nbytes():
            seen[storage.data_ptr()] = storage.nbytes()
    del output
    return sum(seen.values())


@settings(max_examples=10, deadline=None)
@given(
    layers(),
    st.integers(1, 2),
    st.sampled_from([1, 2, 9, 63, 64, 65, 130]),
    st.sampled_from(["bfloat16", "float16"]),
)
def test_a_rank_keeps_what_autograd_keeps(case: Any, b: int, s: int, dtype: str) -> None:
    """The rank's layer (Nk/t, Nv/t heads) run forward in bf16 or fp16 on b sequences of
    s tokens, below, at and past the 64-position chunk: autograd holds what the rank's
    lines count; with sequence parallelism in_proj's input is the rank's 1/t shard."""
    sizes, tp = case
    h, nk, nv, dk, dv, w = sizes
    module = layer(h, nk // tp, nv // tp, dk, dv, w).to(getattr(torch, dtype))
    x = torch.randn(b, s, h, dtype=getattr(torch, dtype), requires_grad=True)
    lines = gated_delta_net_lines((nk, nv, dk, dv, w), h, ParallelPlan(tp=tp), s, b, 2)
    kept = held_bytes(module, [x])
    assert sum(line[2] for line in lines) == kept
    if tp > 1 and s % tp == 0:
        plan = ParallelPlan(tp=tp, sequence_parallel=True)
        split = gated_delta_net_lines((nk, nv, dk, dv, w), h, plan, s, b, 2)
        assert sum(line[2] for line in split) == kept - 2 * b * s * h * (tp - 1) // tp


def test_a_layer_of_linear_attention_and_an_mlp() -> None:
    """A Qwen3-Next of linear-attention layers and dense MLPs: each layer keeps the two
    norms' inputs, the rank's Gated DeltaNet, the dropout masks, the MLP's input and
    Megatron's fused SwiGLU terms (3·p·s·b·F/t)."""
    from shapecalc.adapters.hf_config import from_hf_config

    config = hf_config(16, 2, 4, 3, 5, 3, layers=2).to_dict()
    model = from_hf_config({**config, "model_type": "qwen3_next", "intermediate_size": 8})
    plan = ParallelPlan(tp=2, sequence_parallel=True)
    found = activation_bytes(model, plan, 2, 70)
    s, b, h, p, t = 70, 2, 16, 2, 2
    mixer = gated_delta_net_lines((2, 4, 3, 5, 3), h, plan, s, b, p)
    rest = 2 * p * s * b * h // t + 2 * s * b * h // t + p * s * b * h // t + 3 * p * s * b * 8 // t
    assert found.per_layer == sum(x[2] for x in mixer) + rest
    assert found.layer_batches == 2 and found.sizes["Nv"] == 4


def _qwen3_next(**extra: Any) -> Any:
    from shapecalc.adapters.hf_config import from_hf_config
    from tests.test_qwen3_next import SMALL

    return from_hf_config({**SMALL, "num_hidden_layers": 4, "num_experts": 0, **extra})


def test_megatron_s_refusals() -> None:
    """tp·cp must divide the key heads (and so the value heads, a multiple of them), as
    transformer_config.py asserts; one line naming the flag. The activations: 2-byte
    ones only, none under --cp; the gated full attention beside it is not derived."""
    model = _qwen3_next()
    for plan, pattern in (
        (ParallelPlan(tp=4), r"--tp 4 must divide linear attention's key heads \(Nk = 2\)"),
        (ParallelPlan(tp=2, cp=2), r"--tp 2 × --cp 2 must divide .* key heads \(Nk = 2\)"),
    ):
        with pytest.raises(InvalidArgumentError, match=pattern) as caught:
            rank_parameters(model, plan)
        assert caught.value.field in ("--tp", "--cp") and "\n" not in str(caught.value)
    assert rank_parameters(model, ParallelPlan(tp=2)).count
    with pytest.raises(InvalidArgumentError, match="Qwen3-Next's full attention"):
        activation_bytes(model, ParallelPlan(tp=2), 1, 16)
    with pytest.raises(InvalidArgumentError, match="2-byte") as caught:
        gated_delta_net_lines((2, 4, 3, 5, 3), 16, ParallelPlan(tp=2), 9, 1, 4)
    assert caught.value.field == "itemsize"
    with pytest.raises(InvalidArgumentError, match="--cp"):
        gated_delta_net_lines((2, 4, 3, 5, 3), 16, ParallelPlan(cp=2), 8, 1, 2)


def test_other_linear_attention_stays_refused() -> None:
    """A linear-attention layer other than the Gated DeltaNet (here its rows declared by
    a plain linear layer in that role) has no published tensor-parallel split: refused
    in one line for --tp above 1."""
    from shapecalc.analysis.model_parallel import _tp_split
    from shapecalc.core.model import Layer
    from shapecalc.layers.linear import Linear

    model = _qwen3_next()
    row = next(r for r in model.rows() if r.name.endswith("linear_attn.in_proj_ba.weight"))
    other = Layer(row.layer, Linear(16, 8, bias=False), role="linear attention")
    with pytest.raises(InvalidArgumentError, match="no tensor-parallel split of it is published"):
        _tp_split(model, row, other, ParallelPlan(tp=2), 0, None)


@pytest.mark.parametrize("width", [80, 200])
def test_command_line(width: int) -> None:
    from click.testing import CliRunner

    from shapecalc.cli.app import cli

    args = [
        "qwen3-next", "--vocab", "1000", "--hidden", "64", "--layers", "4", "--heads", "8",
        "--kv-heads", "2", "--head-dim", "16", "--linear-key-heads", "4",
        "--linear-value-heads", "8", "--linear-key-dim", "16", "--linear-value-dim", "16",
        "--experts", "0", "--intermediate", "96", "--moe-intermediate", "32",
        "--shared-intermediate", "32", "--layer-types", "linear_attention", "--dtype", "bf16",
        "--shapes", "--memory", "--training", "adam", "--batch", "1", "--seq-len", "64", "--tp",
        "2",
    ]  # fmt: skip
    env = {"COLUMNS": str(width), "NO_COLOR": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None}
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "(192, 64) of (384, 64), column: q, k, v, z" in result.output
    assert "(64, 64) of (64, 128), row" in result.output
    assert "(16,) of (16,), replicated" in result.output
    assert all(len(line) <= width for line in result.output.splitlines())
    refused = CliRunner().invoke(cli, [*args[:-1], "8"], env=env)
    assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
    assert "--tp 8 must divide linear attention's key heads (Nk = 4)" in refused.output
