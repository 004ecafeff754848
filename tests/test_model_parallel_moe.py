"""A mixture of experts under tensor and expert parallelism (shapecalc.analysis.
model_parallel): the activation terms derived per Korthikanti et al. checked against the
tensors autograd keeps in transformers' own eager MoE blocks run here (Mixtral's routed
experts, Qwen2-MoE's shared expert and its gate, one rank's slice of the experts), and
Megatron-LM's MoE weight accounting (theoretical_memory_usage.py, its file copied in
tests/megatron_reference.py) against our per-rank tensors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.model_parallel import (
    activation_bytes,
    megatron_args,
    megatron_weight_and_optimizer_memory,
    mixture_lines,
    rank_parameters,
    shared_expert_lines,
)
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.architectures.llama import llama
from shapecalc.core.errors import InvalidArgumentError
from tests import megatron_reference as ref
from tests.test_model_parallel import _namespace

torch = pytest.importorskip("torch")


def _sizes(draw: st.DrawFn) -> dict[str, int]:
    experts = draw(st.integers(2, 8))
    return {
        "E": experts,
        "k": draw(st.integers(1, min(experts, 3))),
        "h": draw(st.sampled_from([8, 16, 32])),
        "I": draw(st.sampled_from([4, 8, 12])),
        "T": draw(st.integers(1, 12)),
    }


@settings(max_examples=8, deadline=None)
@given(st.data(), st.sampled_from(["float32", "bfloat16"]))
def test_routed_experts_keep_what_autograd_keeps(data: Any, dtype: str) -> None:
    """transformers' MixtralSparseMoeBlock, eager: the router's and every visit's kept
    tensors are mixture_lines at tp = ep = 1, with the block's input (the MLP's input)."""
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    from tests.measure import kept_bytes

    z = _sizes(data.draw)
    config = MixtralConfig(
        hidden_size=z["h"], intermediate_size=z["I"], num_local_experts=z["E"],
        num_experts_per_tok=z["k"], router_jitter_noise=0.0,
    )  # fmt: skip
    config._experts_implementation = "eager"
    block = MixtralSparseMoeBlock(config).to(getattr(torch, dtype))
    for p in block.parameters():
        p.data.normal_(0, 0.1)
    x = torch.randn(1, z["T"], z["h"], dtype=getattr(torch, dtype), requires_grad=True)
    p = x.element_size()
    lines = mixture_lines(z["E"], z["k"], z["I"], z["h"], ParallelPlan(), z["T"], 1, p)
    assert kept_bytes(block, [x]) == p * z["T"] * z["h"] + sum(x.bytes for x in lines)


@settings(max_examples=6, deadline=None)
@given(st.data(), st.sampled_from([1, 2, 4]), st.sampled_from([1, 2, 4]))
def test_one_rank_s_experts_keep_what_autograd_keeps(data: Any, tp: int, ep: int) -> None:
    """One rank's experts: E/ep of them, each I/tp wide (the per-rank shapes
    rank_parameters gives), sent the s·b·k visits balanced routing gives it out of the
    ep·s·b tokens of its expert-parallel group; the other ranks' experts are the index
    transformers' MixtralExperts skips (num_experts). Autograd keeps what the per-visit
    lines say, the I-wide terms over tp."""
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralExperts

    from tests.measure import kept_bytes

    z = _sizes(data.draw)
    k, s = z["k"], z["T"]
    local = max(k, z["E"])
    width = tp * z["I"]
    model = llama(
        vocab=64, hidden=z["h"] * 4, layers=1, heads=4, experts=local * ep,
        experts_per_token=k, intermediate=width,
    )  # fmt: skip
    sp = tp > 1
    plan = ParallelPlan(tp=tp, ep=ep, dp=ep, sequence_parallel=sp)
    held = {t.name.rsplit(".", 1)[-1]: t.local for t in rank_parameters(model, plan).tensors}
    h = z["h"] * 4
    assert held["gate_up_proj"] == (local, 2 * width // tp, h)
    config = MixtralConfig(hidden_size=h, intermediate_size=width // tp, num_local_experts=local)
    config._experts_implementation = "eager"
    experts = MixtralExperts(config)
    for p in experts.parameters():
        p.data.normal_(0, 0.1)
    group = ep * s  # the group's tokens; the first s send all k of their visits here
    index = torch.full((group, k), local, dtype=torch.long)
    choice = torch.stack([torch.randperm(local)[:k] for _ in range(s)])
    index[:s] = choice
    weights = torch.rand(group, k, requires_grad=True)
    x = torch.randn(group, h, requires_grad=True)
    kept = kept_bytes(experts, [x, index, weights])
    lines = mixture_lines(local * ep, k, width, h, plan, s, 1, 4)
    assert kept == sum(line.bytes for line in lines if "visit" in line.what)


def test_shared_expert_and_gate_keep_what_autograd_keeps() -> None:
    """Qwen2-MoE's block (fp32, norm_topk_prob: the router keeps Mixtral's tensors):
    the routed terms, the shared expert's 4·p·s·b·S and its gate's p·s·b·(h+1)."""
    from transformers import Qwen2MoeConfig
    from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock

    from tests.measure import kept_bytes

    for e, k, h, i, shared, t in ((4, 2, 16, 8, 12, 10), (8, 3, 32, 12, 8, 7)):
        config = Qwen2MoeConfig(
            hidden_size=h, moe_intermediate_size=i, shared_expert_intermediate_size=shared,
            num_experts=e, num_experts_per_tok=k, norm_topk_prob=True,
        )  # fmt: skip
        config._experts_implementation = "eager"
        block = Qwen2MoeSparseMoeBlock(config)
        for p in block.parameters():
            p.data.normal_(0, 0.1)
        x = torch.randn(1, t, h, requires_grad=True)
        plan = ParallelPlan()
        lines = (
            *mixture_lines(e, k, i, h, plan, t, 1, 4),
            *shared_expert_lines(shared, True, h, plan, t, 1, 4),
        )
        assert kept_bytes(block, [x]) == 4 * t * h + sum(line.bytes for line in lines)


def _mixtral(**extra: Any) -> Any:
    return llama(
        vocab=500, hidden=64, layers=4, heads=8, kv_heads=4, experts=8, experts_per_token=2,
        intermediate=48, **extra,
    )  # fmt: skip


def test_tensor_and_expert_parallel_scale_the_terms() -> None:
    """Sequence parallel divides the router's tokens and the layer's h-wide inputs by t;
    the visits stay s·b·k per rank (gathered over tp, balanced over ep), their I-wide
    tensors split over t."""
    model = _mixtral()
    one = {x.what: x.bytes for x in activation_bytes(model, ParallelPlan(dp=4), 2, 32).layer}
    plan = ParallelPlan(tp=2, ep=4, dp=4, sequence_parallel=True)
    two = {x.what: x.bytes for x in activation_bytes(model, plan, 2, 32).layer}
    assert two["router softmax (fp32)"] * 2 == one["router softmax (fp32)"] == 4 * 64 * 8
    assert two["MLP's input"] * 2 == one["MLP's input"]
    visits = "tokens, experts' outputs, weighted (per visit)"
    assert two[visits] == one[visits] == 3 * 2 * 64 * 2 * 64
    wide = "gate and up outputs, SiLU, product (per visit)"
    assert two[wide] * 2 == one[wide] == 4 * 2 * 64 * 2 * 48


def test_mixture_with_tensor_parallel_needs_sequence_parallel() -> None:
    """Megatron-LM raises in training for MoE with tp and no sequence parallelism
    (megatron/core/transformer/moe/moe_layer.py lines 636-640 at d98e8a6)."""
    with pytest.raises(InvalidArgumentError, match="needs --sequence-parallel") as caught:
        activation_bytes(_mixtral(), ParallelPlan(tp=2), 1, 16)
    assert caught.value.field == "--tp"


def test_gpt_oss_experts_refused_for_activations() -> None:
    from shapecalc.architectures.gpt_oss import gpt_oss

    model = gpt_oss(
        vocab=128, hidden=64, layers=2, heads=4, kv_heads=2, experts=4, experts_per_token=2,
        intermediate=32, head_dim=16,
    )  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="experts differ"):
        activation_bytes(model, ParallelPlan(), 1, 16)


def _qwen2_moe(layers: int, dense: list[int]) -> Any:
    from shapecalc.adapters.hf_config import from_hf_config

    return from_hf_config(
        {
            "model_type": "qwen2_moe", "hidden_size": 32, "num_attention_heads": 4,
            "num_key_value_heads": 2, "num_hidden_layers": layers, "intermediate_size": 64,
            "moe_intermediate_size": 16, "shared_expert_intermediate_size": 24,
            "num_experts": 4, "num_experts_per_tok": 2, "vocab_size": 100,
            "mlp_only_layers": dense,
        }
    )  # fmt: skip


def test_dense_and_mixture_layers_counted_each() -> None:
    """A dense first layer before mixture layers: the first stage's layers of each kind,
    each for the micro-batches in flight; interleaving such a stage is refused."""
    model = _qwen2_moe(4, [0])
    plan = ParallelPlan(pp=2, micro_batches=4)
    found = activation_bytes(model, plan, 1, 16)
    kinds = {kind: (sum(x.bytes for x in lines), n) for kind, lines, n in found.kinds}
    assert kinds.keys() == {"dense", "mixture"}
    assert kinds["dense"][1] == 2 * 1 and kinds["mixture"][1] == 2 * 1
    ends = sum(line.bytes for line in found.ends)
    assert found.total == 2 * (kinds["dense"][0] + kinds["mixture"][0]) + ends
    texts = [line.what for line in found.lines()]
    assert "one dense layer, one micro-batch" in texts
    assert "× 2 mixture layer·micro-batches in flight" in texts
    last = activation_bytes(model, ParallelPlan(pp=2, first_stage_layers=1), 1, 16)
    assert [kind for kind, _, _ in last.kinds] == [""]  # the first stage: layer 0 alone
    with pytest.raises(InvalidArgumentError, match="--virtual-stages 1"):
        activation_bytes(model, ParallelPlan(pp=2, virtual_stages=2), 1, 16)


@settings(max_examples=10, deadline=None)
@given(
    st.sampled_from([1, 2, 4]),
    st.sampled_from([1, 2, 4]),
    st.sampled_from([1, 2]),
    st.booleans(),
)
def test_mixture_weights_against_megatron(tp: int, ep: int, pp: int, shared: bool) -> None:
    """Megatron's compute_weight_and_optimizer_memory on the arguments megatron_args
    reads from a mixture (experts, top-k, moe_ffn_hidden_size, the shared expert and its
    gate, moe_layer_freq as a list, expert parallel): 18 bytes a parameter of its most
    loaded shard, and with one stage that shard is our rank, but for the biases
    Megatron's formula leaves out (Qwen2-MoE's query, key and value)."""
    model = _qwen2_moe(4, [0, 2]) if shared else _mixtral()
    plan = ParallelPlan(tp=tp, ep=ep, dp=4, pp=pp)
    args = megatron_args(model, plan, 1, 16)
    ours_megatron = megatron_weight_and_optimizer_memory(args)
    assert ours_megatron == ref.compute_weight_and_optimizer_memory(_namespace(vars(args)))
    if shared:
        assert args.moe_layer_freq == [0, 1, 0, 1]
        assert args.moe_shared_expert_intermediate_size == 24 and args.moe_shared_expert_gate
    assert args.num_experts == (4 if shared else 8) and args.moe_router_topk == 2
    if pp > 1:
        return
    rank = rank_parameters(model, plan)
    biases = sum(t.count for t in rank.tensors if t.name.endswith(".bias"))
    # more ranks than key-value heads too: the fused matrix split evenly, as its closed
    # formula divides it by tp
    assert ours_megatron / 18 == pytest.approx(rank.count - biases, rel=1e-12)


def test_per_gpu_memory_of_a_mixture_on_the_command_line() -> None:
    """--memory with --tp/--ep on a mixture: the activations line is activation_bytes'
    total; without --sequence-parallel, one line naming --tp, exit 2."""
    from click.testing import CliRunner

    from shapecalc.cli.app import cli

    base = [
        "llama", "--vocab", "500", "--hidden", "64", "--layers", "4", "--heads", "8",
        "--kv-heads", "4", "--experts", "8", "--experts-per-token", "2", "--intermediate",
        "48", "--tp", "2", "--ep", "2", "--dp", "2", "--memory", "--training", "adam",
        "--batch", "2", "--seq-len", "32", "--dtype", "bf16",
    ]  # fmt: skip
    env = {"COLUMNS": "80", "NO_COLOR": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None}
    result = CliRunner().invoke(cli, [*base, "--sequence-parallel"], env=env)
    assert result.exit_code == 0, result.output
    plan = ParallelPlan(tp=2, ep=2, dp=2, sequence_parallel=True)
    total = activation_bytes(_mixtral(), plan, 2, 32, 2).total
    assert f"({total:,} bytes)" in result.output
    assert all(len(line) <= 80 for line in result.output.splitlines())
    refused = CliRunner().invoke(cli, base, env=env)
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1 and "'--tp'" in refused.output
