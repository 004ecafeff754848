"""Model parallelism per GPU (shapecalc.analysis.model_parallel) against its anchors:
Megatron-LM's theoretical memory functions run here (tests/megatron_reference.py, its
file copied unchanged), Korthikanti et al.'s Table 2 (arXiv:2205.05198), transformers'
own ``base_model_tp_plan`` of each family's config class, and Megatron's refusals."""

from __future__ import annotations

import argparse
import math
import re
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.model_parallel import (
    MegatronArgs,
    activation_bytes,
    megatron_activation_memory,
    megatron_activation_memory_without_sp,
    megatron_args,
    megatron_weight_and_optimizer_memory,
    padded_vocab,
    rank_parameters,
    stage_layers,
    tensor_splits,
)
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.architectures.gpt2 import gpt2
from shapecalc.architectures.llama import llama
from shapecalc.core.errors import InvalidArgumentError
from tests import megatron_reference as ref

# --- Megatron-LM's own functions, on its own arguments --------------------------------


@st.composite
def megatron_cases(draw: st.DrawFn) -> tuple[dict[str, Any], int | None]:
    """Arguments as Megatron's parser leaves them (sizes it accepts), and the number of
    micro-batches its report is given."""
    tp = draw(st.sampled_from([1, 2, 4, 8]))
    pp = draw(st.sampled_from([1, 2, 4]))
    heads = tp * draw(st.integers(1, 8))
    groups = draw(st.sampled_from([g for g in range(1, heads + 1) if heads % g == 0]))
    hidden = heads * draw(st.sampled_from([16, 64, 128]))
    layers = pp * draw(st.integers(1, 6))
    vpp = draw(st.sampled_from([None, *[v for v in (2, 3) if (layers // pp) % v == 0]]))
    dp = draw(st.sampled_from([1, 2, 4, 8]))
    moe = draw(st.booleans())
    ep = draw(st.sampled_from([e for e in (1, 2, 4) if dp % e == 0])) if moe else 1
    experts = ep * draw(st.integers(1, 4)) if moe else None
    args = {
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_layers": layers,
        "ffn_hidden_size": hidden * draw(st.integers(1, 4)),
        "padded_vocab_size": padded_vocab(draw(st.integers(100, 60000)), tp),
        "seq_length": draw(st.sampled_from([128, 1024, 4096])),
        "micro_batch_size": draw(st.integers(1, 8)),
        "kv_channels": draw(st.sampled_from([None, 64, 128])),
        "group_query_attention": groups != heads,
        "num_query_groups": groups,
        "num_experts": experts,
        "moe_ffn_hidden_size": draw(st.integers(16, 512)) if moe else None,
        "moe_layer_freq": draw(st.sampled_from([1, 2])),
        "moe_router_topk": 2,
        "moe_shared_expert_intermediate_size": draw(st.sampled_from([None, 256])),
        "moe_shared_expert_gate": draw(st.booleans()),
        "moe_latent_size": None,
        "mtp_num_layers": draw(st.sampled_from([None, 1])),
        "swiglu": draw(st.booleans()),
        "normalization": draw(st.sampled_from(["LayerNorm", "RMSNorm"])),
        "add_bias_linear": draw(st.booleans()),
        "untie_embeddings_and_output_weights": draw(st.booleans()),
        "tensor_model_parallel_size": tp,
        "pipeline_model_parallel_size": pp,
        "virtual_pipeline_model_parallel_size": vpp,
        "expert_tensor_parallel_size": draw(st.sampled_from([None, 1])),
        "expert_model_parallel_size": ep,
        "data_parallel_size": dp,
        "world_size": dp * tp * pp,
        "use_distributed_optimizer": draw(st.booleans()),
    }
    return args, draw(st.sampled_from([None, 1, pp, 4 * pp]))


def _namespace(args: dict[str, Any]) -> argparse.Namespace:
    """The namespace Megatron's functions read, with what its parser fills in."""
    ns = argparse.Namespace(**{"multi_latent_attention": False, **args})
    if ns.kv_channels is None:
        ns.kv_channels = ns.hidden_size // ns.num_attention_heads
    if ns.expert_tensor_parallel_size is None:  # arguments.py line 587-588
        ns.expert_tensor_parallel_size = ns.tensor_model_parallel_size
    return ns


@settings(max_examples=60)
@given(megatron_cases())
def test_weights_and_optimizer_as_megatron_computes_them(case: Any) -> None:
    """compute_weight_and_optimizer_memory (theoretical_memory_usage.py lines 12-305):
    the same number, bit for bit, 18 bytes a parameter or 6 + 12/dp."""
    args, _ = case
    assert megatron_weight_and_optimizer_memory(
        MegatronArgs(**args)
    ) == ref.compute_weight_and_optimizer_memory(_namespace(args))


@settings(max_examples=60)
@given(megatron_cases())
def test_activations_as_megatron_computes_them(case: Any) -> None:
    """compute_activation_memory (lines 308-379) and compute_activation_memory_without_sp
    (lines 382-453), with and without a micro-batch count."""
    args, micro = case
    ours = MegatronArgs(**args)
    assert megatron_activation_memory(ours, micro) == ref.compute_activation_memory(
        _namespace(args), micro
    )
    assert megatron_activation_memory_without_sp(
        ours, micro
    ) == ref.compute_activation_memory_without_sp(_namespace(args), micro)


def test_megatron_bytes_per_parameter() -> None:
    """18 bytes a parameter without the distributed optimizer, 6 + 12/dp with it (line 296)."""
    args = {
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_layers": 2,
        "ffn_hidden_size": 256,
        "padded_vocab_size": 128,
        "seq_length": 16,
    }
    plain = megatron_weight_and_optimizer_memory(MegatronArgs(**args))
    sharded = megatron_weight_and_optimizer_memory(
        MegatronArgs(**args, data_parallel_size=4, world_size=4, use_distributed_optimizer=True)
    )
    assert plain / 18 == sharded / (6 + 12 / 4)


# --- our exact per-tensor count against Megatron's closed formula --------------------


@st.composite
def llama_plans(draw: st.DrawFn) -> tuple[Any, ParallelPlan]:
    tp = draw(st.sampled_from([1, 2, 4]))
    pp = draw(st.sampled_from([1, 2, 4]))
    heads = tp * draw(st.integers(1, 4))
    kv = draw(st.sampled_from([g for g in range(1, heads + 1) if heads % g == 0 and g % tp == 0]))
    model = llama(
        vocab=draw(st.integers(50, 3000)),
        hidden=heads * draw(st.sampled_from([8, 16])),
        layers=pp * draw(st.integers(1, 3)),
        heads=heads,
        kv_heads=kv,
        intermediate=tp * draw(st.integers(4, 64)),
    )
    return model, ParallelPlan(tp=tp, pp=pp)


@settings(max_examples=40)
@given(llama_plans())
def test_most_loaded_rank_against_megatron(case: Any) -> None:
    """A LLaMA (RMSNorm, no biases, SwiGLU, GQA, untied head) is the model Megatron's
    closed formula describes: with one stage our per-tensor count is its count exactly;
    with more, Megatron puts the embedding and a pp-th of every norm (the final one
    included) on its most loaded shard: our first stage plus H/pp."""
    model, plan = case
    megatron = megatron_weight_and_optimizer_memory(megatron_args(model, plan, 1, 16)) / 18
    ours = rank_parameters(model, plan)
    hidden = model.sizes["H"]
    if plan.pp == 1:
        assert megatron == pytest.approx(ours.count, rel=1e-12)
    else:
        assert megatron == pytest.approx(ours.stages[0].count + hidden / plan.pp, rel=1e-12)
        assert ours.most_loaded is ours.stages[-1]  # the head and final norm outweigh


def test_published_gpt3_175b_on_megatron() -> None:
    """GPT-3 175B (96 layers, h 12288, 96 heads, V 50,257) on tp 8, pp 8, as Megatron's
    formula prices it: every layer's matrices a 64th, 18 bytes each."""
    model = gpt2(vocab=50257, hidden=12288, layers=96, heads=96, context=2048)
    plan = ParallelPlan(tp=8, pp=8)
    ours = rank_parameters(model, plan)
    padded = padded_vocab(50257, 8)
    assert padded == 51200
    h = 12288
    sharded = (12 * h * h + 7 * h) // 8  # Conv1D weights, column-parallel biases
    replicated = 6 * h  # two LayerNorms, the row-parallel layers' biases
    expected = padded // 8 * h + 2048 * h + 12 * (sharded + replicated)
    assert ours.stages[0].count == expected
    assert ours.stages[0].layers == tuple(range(12))


# --- Korthikanti et al., Table 2 -----------------------------------------------------


@st.composite
def paper_cases(draw: st.DrawFn) -> tuple[Any, ParallelPlan, int, int]:
    t = draw(st.sampled_from([1, 2, 4, 8]))
    heads = t * draw(st.integers(1, 4))
    model = gpt2(
        vocab=draw(st.integers(50, 500)),
        hidden=heads * draw(st.sampled_from([8, 16])),
        layers=draw(st.integers(1, 3)),
        heads=heads,
        context=4096,
    )
    sp = t > 1 and draw(st.booleans())
    plan = ParallelPlan(
        tp=t,
        sequence_parallel=sp,
        recompute=draw(st.sampled_from(["none", "selective", "full"])),
    )
    return model, plan, draw(st.integers(1, 4)), t * draw(st.integers(1, 64))


@settings(max_examples=60)
@given(paper_cases())
def test_korthikanti_table_2(case: Any) -> None:
    """Per layer, 2-byte activations, GPT's block (a·d = h, F = 4h, dropout): no
    parallelism sbh(34 + 5as/h); tensor parallel sbh(10 + 24/t + 5as/(ht)); with sequence
    parallel sbh/t·(34 + 5as/h); selective recomputation drops the 5as/h; full keeps 2sbh
    (Table 2 and section 5)."""
    model, plan, b, s = case
    h, a, t = model.sizes["H"], model.sizes["A"], plan.tp
    sbh = Fraction(s * b * h)
    table = {
        ("none", False): sbh * (10 + Fraction(24, t) + Fraction(5 * a * s, h * t)),
        ("none", True): sbh / t * (34 + Fraction(5 * a * s, h)),
        ("selective", False): sbh * (10 + Fraction(24, t)),
        ("selective", True): sbh * 34 / t,
        ("full", False): 2 * sbh,
        ("full", True): 2 * sbh / t,
    }
    ours = activation_bytes(model, plan, b, s, 2)
    assert ours.per_layer == table[plan.recompute, plan.sequence_parallel]
    flash = activation_bytes(model, plan, b, s, 2, flash=True)
    if plan.recompute != "full":
        assert flash.per_layer == table["selective", plan.sequence_parallel]


@settings(max_examples=40)
@given(paper_cases(), st.sampled_from([1, 2, 4]), st.integers(0, 3))
def test_total_against_megatron_selective_sequence_parallel(case: Any, pp: int, extra: int) -> None:
    """Megatron's compute_activation_memory is Korthikanti's sequence-parallel selective
    account for the first stage: ours equals it, but that Megatron also divides the int64
    token ids (8·s·b per micro-batch) by tp."""
    model, plan, b, s = case
    layers = model.sizes["L"] * pp
    model = gpt2(
        vocab=model.sizes["V"], hidden=model.sizes["H"], layers=layers, heads=model.sizes["A"]
    )
    t = plan.tp
    plan = ParallelPlan(
        tp=t, pp=pp, sequence_parallel=t > 1, recompute="selective", micro_batches=pp + extra
    )
    ours = activation_bytes(model, plan, b, s, 2)
    args = megatron_args(model, plan, b, s)
    theirs = megatron_activation_memory(args, plan.micro_batches)
    assert theirs == ref.compute_activation_memory(_namespace(vars(args)), plan.micro_batches)
    assert ours.total == pytest.approx(theirs + 8 * s * b * pp * (1 - 1 / t), rel=1e-12)


def test_interleaved_in_flight() -> None:
    """Interleaving holds the paper's (1 + (pp-1)/(pp·v)) times L layers' activations on
    the first stage: Megatron's warm-up of 2(pp-1) + (v-1)·pp + 1 chunks."""
    model = gpt2(vocab=128, hidden=64, layers=16, heads=4)
    for pp, v in ((2, 2), (4, 2), (4, 4), (2, 8)):
        plan = ParallelPlan(pp=pp, virtual_stages=v, micro_batches=64, dp=1)
        ours = activation_bytes(model, plan, 1, 16)
        assert ours.layer_batches == 16 * (1 + Fraction(pp - 1, pp * v))
    plan = ParallelPlan(pp=4, micro_batches=2)
    assert activation_bytes(model, plan, 1, 16).layer_batches == 2 * 4


def test_gated_and_grouped_terms() -> None:
    """Grouped-query attention keeps k heads of keys and values; a gated MLP 3·p·s·b·F."""
    model = llama(vocab=100, hidden=64, layers=2, heads=8, kv_heads=2, intermediate=96)
    lines = {line.what: line for line in activation_bytes(model, ParallelPlan(), 1, 32).layer}
    s, b, p, d = 32, 1, 2, 8
    assert lines["Q and K"].bytes == p * s * b * (8 + 2) * d
    assert lines["V"].bytes == p * s * b * 2 * d
    assert lines["gate and up outputs, product"].bytes == 3 * p * s * b * 96


# --- transformers' tensor-parallel plans ---------------------------------------------

_STYLES = {
    "colwise": "column",
    "colwise_gather_output": "column",
    "rowwise": "row",
    "rowwise_split_input": "row",
    "embedding_rowwise": "vocab",
    "replicated_with_grad_allreduce": "replicated",
}


#: the layers with no tensor-parallel rule here
_NO_RULE = {"linear attention", "state space", "Mamba mixer", "mixer"}


def _plan_types() -> list[str]:
    import transformers

    from tests.hf_configs import TYPES

    out = []
    for model_type, (_, t) in sorted(TYPES.items()):
        plan = getattr(getattr(transformers, t.config_class, None), "base_model_tp_plan", None)
        if plan and not t.text_type:
            out.append(model_type)
    return out


@pytest.mark.parametrize("model_type", _plan_types())
@settings(max_examples=2)
@given(data=st.data())
def test_splits_as_transformers_tp_plan(model_type: str, data: Any) -> None:
    """Every module a family's ``base_model_tp_plan`` names that our model has is split
    the way the plan says (column, row, vocabulary or replicated), read from the
    installed config class; the plan's special styles (mla_kv_a_proj) are not compared."""
    import transformers

    from shapecalc.adapters.hf_config import from_hf_config
    from tests.hf_configs import TYPES, hf_configs

    t = TYPES[model_type][1]
    plan = getattr(transformers, t.config_class).base_model_tp_plan
    model = from_hf_config(data.draw(hf_configs(model_type)))
    compared = 0
    roots = {key.split(".")[0] for key in plan}
    roles = {layer.name: layer.role for layer in model.layers}
    for row, style, _ in tensor_splits(model, ParallelPlan()):
        parts = row.name.split(".")
        start = next((i for i, part in enumerate(parts) if part in roots), 0)
        name = re.sub(r"\{[^}]*\}", "0", ".".join(parts[start:]))  # a run: one of its layers
        name = re.sub(r"\.(\{[^}]*\}|\d+)(?=\.|$)", ".*", name)
        module = name.rsplit(".", 1)[0]
        key = name if name in plan else module
        if key not in plan or plan[key] not in _STYLES:
            continue
        if style == "unsplit":  # no rule here, refused for tp above 1: which layers
            assert roles[row.layer] in _NO_RULE, (row.name, roles[row.layer])
            continue
        if style == "row" and len(row.shape) == 1:
            continue  # a row-parallel layer's bias: replicated by Megatron and torch alike
        assert style == _STYLES[plan[key]], (row.name, plan[key])
        compared += 1
    assert compared or model_type in {"jamba", "falcon_h1"}


# --- pipeline stages and refusals ----------------------------------------------------


@given(st.integers(1, 8), st.integers(1, 4), st.integers(1, 6))
def test_even_stages_cover_layers_once(pp: int, v: int, per: int) -> None:
    layers = pp * v * per
    held = stage_layers(layers, pp, v)
    assert sorted(i for stage in held for i in stage) == list(range(layers))
    assert {len(stage) for stage in held} == {layers // pp}
    if v > 1 and pp > 1:
        chunk = layers // (pp * v)
        assert held[1][:chunk] == tuple(range(chunk, 2 * chunk))


def test_uneven_stages_as_megatron() -> None:
    """--decoder-first/last-pipeline-num-layers: the rest even over the middle stages
    (transformer_config.py, "Uneven PP")."""
    assert [len(s) for s in stage_layers(30, 4, first=6, last=8)] == [6, 8, 8, 8]
    assert [len(s) for s in stage_layers(12, 2, first=5)] == [5, 7]
    with pytest.raises(InvalidArgumentError, match="middle stages"):
        stage_layers(31, 4, first=6, last=8)
    with pytest.raises(InvalidArgumentError, match="--first-stage-layers"):
        stage_layers(32, 4, virtual_stages=2, first=5)


_REFUSED = [
    ({"heads": 6, "kv_heads": 2}, {"tp": 4}, r"--tp 4 must divide the attention heads \(A = 6\)"),
    ({"heads": 8, "kv_heads": 8}, {"tp": 3}, r"--tp 3 must divide the attention heads"),
    ({"heads": 12, "kv_heads": 3}, {"tp": 2}, r"key-value heads \(K = 3\)"),
    ({"heads": 4, "intermediate": 30}, {"tp": 4}, r"--tp 4 must divide I = 30"),
    ({"heads": 4}, {"pp": 3}, r"--pp 3 must divide the 4 layers"),
    ({"heads": 4}, {"pp": 2, "virtual_stages": 4}, r"--pp 2 × --virtual-stages 4"),
    (
        {"heads": 4, "experts": 6, "experts_per_token": 2},
        {"dp": 4, "ep": 4},
        r"--ep 4 must divide the 6 experts",
    ),
]


@pytest.mark.parametrize(("kwargs", "sizes", "pattern"), _REFUSED)
def test_refusals_name_flag_value_and_rule(
    kwargs: dict[str, Any], sizes: dict[str, int], pattern: str
) -> None:
    plan = ParallelPlan(**sizes)
    model = llama(vocab=100, hidden=96 if kwargs["heads"] in (6, 12) else 64, layers=4, **kwargs)
    with pytest.raises(InvalidArgumentError, match=pattern) as caught:
        rank_parameters(model, plan)
    assert caught.value.field in ("--tp", "--pp", "--ep")
    assert "\n" not in str(caught.value)


def test_fewer_kv_heads_than_ranks_split_evenly() -> None:
    """Megatron accepts tp a multiple of the query groups and still splits the fused
    query-key-value matrix evenly (attention.py at d98e8a6: num_query_groups set to the
    ranks for the layer it builds, the output gathered); transformers' tp_plan splits
    k_proj and v_proj by rows alike: a rank holds half a key head here."""
    model = llama(vocab=100, hidden=64, layers=2, heads=8, kv_heads=2, intermediate=64)
    splits = {row.name: local for row, _, local in tensor_splits(model, ParallelPlan(tp=4))}
    assert splits["model.layers.{0..1}.self_attn.k_proj.weight"] == (4, 64)
    assert splits["model.layers.{0..1}.self_attn.v_proj.weight"] == (4, 64)
    assert splits["model.layers.{0..1}.self_attn.q_proj.weight"] == (16, 64)


def test_tied_head_copied_to_last_stage() -> None:
    """Megatron keeps its own copy of a tied embedding on the last stage."""
    model = gpt2(vocab=256, hidden=64, layers=4, heads=4)
    one = rank_parameters(model, ParallelPlan())
    two = rank_parameters(model, ParallelPlan(pp=2))
    assert one.count == model.total
    head = [t for t in two.stages[1].tensors if t.name == "lm_head.weight"]
    assert head[0].count == 256 * 64 and head[0].tied_to is None
    assert sum(s.count for s in two.stages) == model.total + 256 * 64


def test_expert_parallel_checkpoint_layout() -> None:
    model = llama(
        vocab=128, hidden=64, layers=2, heads=4, experts=8, experts_per_token=2,
        intermediate=32, moe_layout="checkpoint",
    )  # fmt: skip
    ranks = rank_parameters(model, ParallelPlan(dp=4, ep=4, tp=2))
    w1 = next(t for t in ranks.tensors if t.name.endswith("w1.weight"))
    w2 = next(t for t in ranks.tensors if t.name.endswith("w2.weight"))
    assert (w1.local, w1.copies) == ((16, 64), 2 * 2)
    assert (w2.local, w2.copies) == ((64, 16), 2 * 2)
    fused = llama(
        vocab=128, hidden=64, layers=2, heads=4, experts=8, experts_per_token=2, intermediate=32
    )
    counts = rank_parameters(fused, ParallelPlan(dp=4, ep=4, tp=2)).count
    assert counts == ranks.count
    assert math.prod(w1.local) * w1.copies * 3 == 2 * 2 * 3 * 32 * 64 // 2


def test_context_parallel_splits_the_sequence() -> None:
    """Each context-parallel rank keeps its own s/cp tokens' activations; its attention
    is a fused kernel (Megatron runs Transformer Engine's), so no a·s² terms."""
    model = gpt2(vocab=128, hidden=64, layers=2, heads=4)
    whole = activation_bytes(model, ParallelPlan(dp=2), 1, 64, flash=True)
    split = activation_bytes(model, ParallelPlan(cp=2, dp=2), 1, 64)
    assert 2 * split.per_layer == whole.per_layer
    with pytest.raises(InvalidArgumentError, match="--cp 4 must divide the sequence length"):
        activation_bytes(model, ParallelPlan(cp=4), 1, 30)


def test_uneven_stages_from_the_plan() -> None:
    """The plan's first and last stages' layers (--first-stage-layers ...) place the
    embedding's stage and the head's as Megatron's uneven split does."""
    model = llama(vocab=128, hidden=64, layers=10, heads=4, intermediate=64)
    plan = ParallelPlan(pp=3, first_stage_layers=2, last_stage_layers=4)
    ranks = rank_parameters(model, plan)
    assert [s.layers for s in ranks.stages] == [(0, 1), (2, 3, 4, 5), (6, 7, 8, 9)]
    assert sum(s.count for s in ranks.stages) == model.total
    assert activation_bytes(model, plan, 1, 16).layer_batches == 1 * 2
    with pytest.raises(InvalidArgumentError, match="--first-stage-layers"):
        ParallelPlan(first_stage_layers=2)


def test_gpt_oss_sinks_and_experts() -> None:
    """gpt-oss stores its experts (in, out) with biases: the experts split over ep, the
    intermediate size over tp; a sink per head goes with its heads."""
    from shapecalc.architectures.gpt_oss import gpt_oss

    model = gpt_oss(
        vocab=128, hidden=64, layers=2, heads=4, kv_heads=2, experts=4, experts_per_token=2,
        intermediate=32, head_dim=16,
    )  # fmt: skip
    ranks = rank_parameters(model, ParallelPlan(tp=2, dp=2, ep=2))
    local = {t.name.split(".", 3)[-1]: t.local for t in ranks.tensors}
    assert local["self_attn.sinks"] == (2,)
    assert local["mlp.experts.gate_up_proj"] == (2, 64, 32)
    assert local["mlp.experts.gate_up_proj_bias"] == (2, 32)
    assert local["mlp.experts.down_proj"] == (2, 16, 64)
    assert local["mlp.experts.down_proj_bias"] == (2, 64)
    assert local["mlp.router.weight"] == (4, 64)
