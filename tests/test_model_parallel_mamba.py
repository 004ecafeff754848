"""Tensor parallel for Mamba-2 mixers, as Megatron-LM's MambaMixer splits them
(megatron/core/ssm/mamba_mixer.py at d98e8a6): each rank's in_proj, conv1d, dt_bias,
A_log, D, gated norm and out_proj against the mixer of M/t heads and G/t groups a rank
runs (built here and run on CPU: its tensors and what autograd keeps), Megatron's
refusals, and the layers with no published split."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.model_parallel import (
    activation_bytes,
    mamba2_mixer_lines,
    rank_parameters,
)
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.architectures.mamba2 import mamba2, mixer
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.model import Model

torch = pytest.importorskip("torch")


@st.composite
def mixers(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    tp = draw(st.sampled_from([1, 2, 4]))
    groups = tp * draw(st.integers(1, 2))
    heads = groups * draw(st.integers(1, 3))
    head_dim = draw(st.sampled_from([2, 4, 8]))
    inner = heads * head_dim
    hidden = draw(st.sampled_from([h for h in (8, 16, 24, 32, 48) if inner % h == 0] or [inner]))
    sizes = {
        "vocab": 40, "hidden": hidden, "layers": 2, "heads": heads, "head_dim": head_dim,
        "state_size": draw(st.sampled_from([2, 4])), "groups": groups,
        "expand": inner // hidden, "conv_kernel": draw(st.sampled_from([2, 4])),
        "chunk_size": draw(st.sampled_from([3, 4])),
    }  # fmt: skip
    return sizes, tp


@settings(max_examples=12, deadline=None)
@given(mixers())
def test_each_rank_holds_the_mixer_of_its_heads_and_groups(case: Any) -> None:
    """Megatron's per-rank sizes (mamba_mixer.py lines 259-271, 281-308, 321-351, 378-451):
    in_proj's z, x, B, C, dt of I/t, I/t, G·N/t, G·N/t, M/t rows; conv1d over I/t + 2·G·N/t
    channels; dt_bias, A_log and D over M/t heads; the norm over I/t; out_proj (H, I/t).
    Those are the tensors of a mixer of M/t heads and G/t groups, and the t ranks hold
    the whole mixer between them."""
    sizes, tp = case
    model = mamba2(**sizes)
    held = {
        t.name.split("mixer.")[-1]: t
        for t in rank_parameters(model, ParallelPlan(tp=tp)).tensors
        if ".mixer." in t.name
    }
    m, g, n, p = sizes["heads"], sizes["groups"], sizes["state_size"], sizes["head_dim"]
    i = m * p
    assert held["in_proj.weight"].local == (
        2 * i // tp + 2 * g * n // tp + m // tp,
        sizes["hidden"],
    )
    local = mixer(
        "Mamba2Mixer", sizes["hidden"], m // tp, p, n, g // tp, sizes["conv_kernel"],
        sizes["chunk_size"], bias=False, conv_bias=True,
    )  # fmt: skip
    theirs = {row.name: tuple(row.shape) for row in Model("mixer", local).rows()}
    assert {name: t.local for name, t in held.items()} == theirs
    for t in held.values():  # nothing replicated: the ranks' pieces make the whole
        assert math.prod(t.local) * tp == math.prod(t.shape)


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_a_rank_s_mixer_keeps_what_autograd_keeps(tp: int) -> None:
    """The mixer of M/t heads and G/t groups built as a torch module (transformers' torch
    path) and run forward: autograd keeps what mamba2_mixer_lines count for the rank."""
    from shapecalc.adapters.torch_bridge import build
    from tests.measure import kept_bytes

    h, m, p, n, g, k, q = 32, 16, 8, 4, 4, 4, 4
    local = mixer("Mamba2Mixer", h, m // tp, p, n, g // tp, k, q, bias=False, conv_bias=True)
    module = build(Model("mixer", local), device="cpu")
    for param in module.parameters():
        param.data.normal_(0, 0.1)
    x = torch.randn(2, 9, h, requires_grad=True)
    lines = mamba2_mixer_lines((m, p, n, g, k, q, True, None), h, ParallelPlan(tp=tp), 9, 2,
                               x.element_size())  # fmt: skip
    assert kept_bytes(module, [x]) == sum(line.bytes for line in lines)


def test_layer_account_under_sequence_parallel() -> None:
    """Per layer: the norm's and in_proj's h-wide inputs (/t with sequence parallelism),
    the mixer's own on the rank's heads (/t: every one of its tensors is per head, group
    or channel but the chunks' masks), the dropout mask."""
    model = mamba2(vocab=40, hidden=32, layers=2, heads=16, head_dim=8, state_size=4,
                   groups=4, expand=4, chunk_size=4)  # fmt: skip
    one = {x.what: x.bytes for x in activation_bytes(model, ParallelPlan(), 2, 8, 4).layer}
    plan = ParallelPlan(tp=4, sequence_parallel=True)
    four = {x.what: x.bytes for x in activation_bytes(model, plan, 2, 8, 4).layer}
    assert four["norm's input"] * 4 == one["norm's input"] == 4 * 2 * 8 * 32
    assert four["in_proj's input"] * 4 == one["in_proj's input"]
    own = "the mixer's own (conv, scan, gated norm)"
    masks = 2 * (4 * 4 + 3 * 3)  # boolean masks, each kept twice: (Q, Q), (c+1, c+1)
    assert (four[own] - masks) * 4 == one[own] - masks


_REFUSED = [
    ({"heads": 6, "groups": 2}, 4, r"--tp 4 must divide the Mamba-2 heads \(M = 6\)"),
    ({"heads": 8, "groups": 2}, 4, r"--tp 4 must divide the Mamba-2 groups \(G = 2\)"),
    ({"heads": 8, "groups": 2, "bias": True}, 2, r"no in_proj or out_proj bias"),
    ({"heads": 8, "groups": 2, "conv_bias": False}, 2, r"asserts conv_bias"),
]


@pytest.mark.parametrize(("extra", "tp", "pattern"), _REFUSED)
def test_megatron_s_refusals(extra: dict[str, Any], tp: int, pattern: str) -> None:
    """mamba_mixer.py lines 262, 270, 276-277: heads and groups divisible by tp, no
    in_proj/out_proj bias, a convolution bias."""
    model = mamba2(vocab=40, hidden=extra["heads"] * 4, layers=2, head_dim=8, state_size=4,
                   expand=2, **extra)  # fmt: skip
    with pytest.raises(InvalidArgumentError, match=pattern) as caught:
        rank_parameters(model, ParallelPlan(tp=tp))
    assert caught.value.field == "--tp" and "\n" not in str(caught.value)


def test_layers_with_no_published_split_stay_refused() -> None:
    """Mamba-1 (Megatron's mixer is Mamba-2's) and an LSTM: no published split. One
    line, --tp 1. (Qwen3-Next's linear attention splits: test_model_parallel_gdn.py.)"""
    from shapecalc.architectures.lstm import lstm_lm
    from shapecalc.architectures.mamba import mamba

    with pytest.raises(InvalidArgumentError, match="Mamba-1 mixer"):
        rank_parameters(mamba(vocab=40, hidden=16, layers=2), ParallelPlan(tp=2))
    with pytest.raises(InvalidArgumentError, match="no published tensor-parallel split"):
        rank_parameters(lstm_lm(vocab=40, hidden=16, layers=1), ParallelPlan(tp=2))


@pytest.mark.parametrize("width", [80, 200])
def test_command_line(width: int) -> None:
    from click.testing import CliRunner

    from shapecalc.cli.app import cli

    args = [
        "mamba2", "--vocab", "1000", "--hidden", "256", "--layers", "4", "--heads", "8",
        "--head-dim", "64", "--state-size", "16", "--groups", "2", "--tp", "2", "--shapes",
        "--memory", "--training", "adam", "--batch", "1", "--seq-len", "64",
    ]  # fmt: skip
    env = {"COLUMNS": str(width), "NO_COLOR": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None}
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "(548, 256) of (1096, 256), column: z, x, B, C, dt" in result.output
    assert "(4,) of (8,), heads" in result.output
    assert all(len(line) <= width for line in result.output.splitlines())
    refused = CliRunner().invoke(cli, [*args[:-8], "--tp", "4"], env=env)
    assert refused.exit_code == 2 and refused.output.count("\n") == 1
    assert "--tp 4 must divide the Mamba-2 groups (G = 2)" in refused.output


def test_a_mixer_beside_attention_is_not_counted_as_attention_alone() -> None:
    """Falcon-H1's layers hold attention, a Mamba-2 mixer and an MLP: the paper's block
    with the mixer left out would undercount; refused, saying so."""
    from shapecalc.architectures.falcon_h1 import falcon_h1

    model = falcon_h1(
        vocab=64, hidden=32, layers=2, heads=4, kv_heads=2, intermediate=64,
        mamba_heads=4, mamba_state=4, mamba_groups=2,
    )  # fmt: skip
    assert rank_parameters(model, ParallelPlan(tp=2)).count  # its tensors split
    with pytest.raises(InvalidArgumentError, match="state-space or linear-attention mixer"):
        activation_bytes(model, ParallelPlan(tp=2), 1, 16)
