"""Qwen's mixtures of experts (``qwen2_moe``, ``qwen3_moe``) against transformers' classes:
drawn configs through ``shapecalc hf`` (names, shapes, order, totals and the active count
worked out from the transformers model's own tensors), the published configs counted
exactly, the stack of sparse and dense layers as runs (symbolic too), the checkpoint
layout, the FLOPs of every linear layer against FlopCounterMode on a real forward, the
tensors autograd keeps, and the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.architectures.qwen_moe import QwenMoE, qwen_moe
from shapecalc.core.errors import ShapecalcError
from shapecalc.core.tree import split_name
from tests.hf_configs import hf_configs
from tests.published_moe import QWEN3_30B_A3B, QWEN3_235B_A22B, QWEN15_MOE_A27B
from tests.test_cli import run
from tests.test_transformers import MATMUL_KINDS, counted_per_module, expand

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def built(config: dict[str, Any], **options: Any) -> Any:
    """transformers' model of a config.json (its class, or the causal LM), on the meta
    device unless options ask for a real one."""
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    prefix = "Qwen2Moe" if config["model_type"] == "qwen2_moe" else "Qwen3Moe"
    cls = getattr(transformers, (config.get("architectures") or [f"{prefix}ForCausalLM"])[0])
    conf = getattr(transformers, f"{prefix}Config")(**fields)
    if options:
        return cls._from_config(conf, **options)
    with torch.device("meta"):
        return cls(conf)


def used_by_one_token(model: Any) -> tuple[int, int]:
    """(total, active) of a transformers model from its tensors: the routed experts' (a
    leading experts dimension under ``.experts.``) counted top_k of E."""
    k = model.config.num_experts_per_tok
    total = active = 0
    for name, p in model.named_parameters():
        total += p.numel()
        active += p.numel() // p.shape[0] * k if ".experts." in name else p.numel()
    return total, active


def params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


# -- drawn configs, read as shapecalc hf reads them ---------------------------------------
@pytest.mark.parametrize("model_type", ["qwen2_moe", "qwen3_moe"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_drawn_configs_equal_transformers(model_type: str, data: st.DataObject) -> None:
    config = data.draw(hf_configs(model_type), label="config")
    ours = hf_model(config).model()
    theirs = built(config)
    assert ours.named_parameters() == params(theirs)
    assert (ours.total, ours.active) == used_by_one_token(theirs)
    assert ours.trainable == ours.total


@settings(max_examples=25, deadline=None)
@given(
    layers=st.integers(1, 9),
    step=st.integers(1, 4),
    dense=st.lists(st.integers(0, 8), max_size=4),
    experts=st.integers(0, 5),
    shared=st.booleans(),
)
def test_which_layers_are_sparse_is_transformers_rule(
    layers: int, step: int, dense: list[int], experts: int, shared: bool
) -> None:
    """Every mix of mlp_only_layers and decoder_sparse_step (no experts at all too) gives
    transformers' layers, and the formulas of a symbolic layer count evaluate to them."""
    config = {
        "model_type": "qwen2_moe" if shared else "qwen3_moe",
        "vocab_size": 11,
        "hidden_size": 8,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "intermediate_size": 6,
        "moe_intermediate_size": 4,
        "shared_expert_intermediate_size": 5,
        "num_experts": experts,
        "num_experts_per_tok": min(2, max(experts, 1)),
        "decoder_sparse_step": step,
        "mlp_only_layers": [i for i in dense if i < layers],
    }
    if not shared:
        del config["shared_expert_intermediate_size"]
    ours = hf_model(config).model()
    theirs = built(config)
    assert ours.named_parameters() == params(theirs)
    assert (ours.total, ours.active) == used_by_one_token(theirs)
    sizes = {k: v for k, v in ours.sizes.items() if isinstance(v, int)}
    for row in ours.rows():
        formula = row.formula
        assert (formula if isinstance(formula, int) else formula.subs(sizes)) == row.count


# -- the published configs --------------------------------------------------------------------
#: (config, total, active with the embedding and head, the model card's active figure)
PUBLISHED = {
    "Qwen1.5-MoE-A2.7B": (QWEN15_MOE_A27B, 14_315_784_192, 2_689_173_504, "2.7B"),
    "Qwen3-30B-A3B": (QWEN3_30B_A3B, 30_532_122_624, 3_353_032_704, "3.3B"),
    "Qwen3-235B-A22B": (QWEN3_235B_A22B, 235_093_634_560, 22_190_763_520, "22B"),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_configs_count_exactly(name: str, tmp_path: Path) -> None:
    """Through ``shapecalc hf``: the total and active count of the class transformers builds
    from the same file on the meta device (the card's active figure counts the embedding
    and the head: 2.69B, 3.35B and 22.2B round to 2.7B, 3.3B and 22B; without them they
    would be 2.07B, 2.73B and 20.9B)."""
    config, total, active, _card = PUBLISHED[name]
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["total"], report["active"]) == (total, active)
    assert used_by_one_token(built(config)) == (total, active)
    model = hf_model(config).model()
    assert model.named_parameters() == params(built(config))


def test_qwen3_235b_prints_as_one_run_of_94_layers(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(QWEN3_235B_A22B))
    result = run(["hf", str(tmp_path)], 200)
    assert result.exit_code == 0, result.output
    assert "model.layers.{0..93}.mlp.experts.gate_up_proj" in result.stdout
    assert "Active  22,190,763,520" in result.stdout


# -- runs: dense layers among the sparse ones, symbolic layer counts ---------------------------
QWEN3 = {
    "vocab": 151936,
    "hidden": 4096,
    "heads": 64,
    "kv_heads": 4,
    "head_dim": 128,
    "moe_intermediate": 1536,
    "experts": 128,
    "experts_per_token": 8,
    "qk_norm": True,
    "intermediate": 12288,
}


def test_a_94_layer_model_with_dense_layers_prints_as_runs() -> None:
    model = qwen_moe(**QWEN3, layers=94, dense_layers=(0, 1, 2))
    names = {r.name.split(".mlp.")[0] for r in model.rows() if ".mlp." in r.name}
    assert names == {"model.layers.{0..2}", "model.layers.{3..93}"}
    symbolic = qwen_moe(**{**QWEN3, "layers": "L"}, dense_layers=(0, 1, 2))
    names = {r.name.split(".mlp.")[0] for r in symbolic.rows() if ".mlp." in r.name}
    assert names == {"model.layers.{0..2}", "model.layers.{3..L-1}"}
    assert symbolic.evaluate(L=94).total == model.total
    # the formula column keeps the letters: 91 sparse layers are L - 3
    row = next(r for r in model.rows() if r.name.endswith("{3..93}.mlp.gate.weight"))
    assert str(row.formula) == "L·H·E - 3·H·E"


def test_a_sparse_step_cycles_and_a_dense_layer_breaks_the_sparse_run() -> None:
    model = qwen_moe(**QWEN3, layers=94, sparse_step=2, dense_layers=(9,))
    runs = [
        split_name(r.name)[2] for r in model.rows() if r.name.endswith("input_layernorm.weight")
    ]
    assert runs == ["{0,2..92}", "{1,3..7}", "9", "{11,13..93}"]
    arch = QwenMoE(**QWEN3, layers=94, sparse_step=2, dense_layers=(9,))
    assert arch.sparse_layers() == 46


def test_a_stack_of_a_trillion_layers_is_counted_without_listing_them() -> None:
    model = qwen_moe(**{**QWEN3, "layers": 10**12}, dense_layers=(5, 10**11))
    per_layer = qwen_moe(**{**QWEN3, "layers": 2}).total - qwen_moe(**{**QWEN3, "layers": 1}).total
    assert model.total > per_layer * (10**12 - 2)


# -- the checkpoint layout --------------------------------------------------------------------
def test_checkpoint_layout_names_each_expert_as_the_files_do() -> None:
    """experts.{e}.gate_proj / up_proj / down_proj, which transformers' conversion mapping
    (qwen2_moe) merges into gate_up_proj and down_proj: the same numbers."""
    sizes = {"vocab": 20, "hidden": 8, "layers": 2, "heads": 2, "moe_intermediate": 4}
    sizes |= {"experts": 3, "experts_per_token": 2, "shared_intermediate": 6}
    fused = qwen_moe(**sizes, attention_bias="qkv")
    stored = qwen_moe(**sizes, attention_bias="qkv", moe_layout="checkpoint")
    names = [n for n, _ in stored.named_parameters() if ".layers.0.mlp." in n]
    assert names[:4] == [
        "model.layers.0.mlp.gate.weight",
        "model.layers.0.mlp.experts.0.gate_proj.weight",
        "model.layers.0.mlp.experts.0.up_proj.weight",
        "model.layers.0.mlp.experts.0.down_proj.weight",
    ]
    assert names[-4:] == [
        "model.layers.0.mlp.shared_expert.gate_proj.weight",
        "model.layers.0.mlp.shared_expert.up_proj.weight",
        "model.layers.0.mlp.shared_expert.down_proj.weight",
        "model.layers.0.mlp.shared_expert_gate.weight",
    ]
    shapes = dict(stored.named_parameters())
    fused_shapes = dict(fused.named_parameters())
    gate_up = fused_shapes["model.layers.0.mlp.experts.gate_up_proj"]
    assert gate_up == (3, 2 * shapes["model.layers.0.mlp.experts.0.gate_proj.weight"][0], 8)
    assert (fused.total, fused.active) == (stored.total, stored.active)
    checkpoint = hf_model(QWEN3_30B_A3B).checkpoint_model()
    assert "model.layers.{0..47}.mlp.experts.{0..127}.up_proj.weight" in {
        r.name for r in checkpoint.rows()
    }


# -- FLOPs and kept tensors on a real forward ---------------------------------------------------
SMALL = {
    "qwen2": {
        "vocab": 40,
        "hidden": 32,
        "layers": 3,
        "heads": 4,
        "kv_heads": 2,
        "moe_intermediate": 6,
        "experts": 4,
        "experts_per_token": 2,
        "shared_intermediate": 10,
        "intermediate": 12,
        "attention_bias": "qkv",
        "dense_layers": (1,),
    },
    "qwen3": {
        "vocab": 40,
        "hidden": 32,
        "layers": 3,
        "heads": 4,
        "kv_heads": 2,
        "head_dim": 6,
        "moe_intermediate": 6,
        "experts": 4,
        "experts_per_token": 3,
        "intermediate": 12,
        "qk_norm": True,
        "sparse_step": 2,
    },
}


def small(kind: str) -> tuple[Any, Any]:
    """(our model, transformers' on the cpu with eager attention and experts)."""
    arch = QwenMoE(**SMALL[kind])
    reference = arch.reference()
    assert reference is not None
    config = getattr(transformers, reference.config_class)(**reference.config)
    theirs = getattr(transformers, reference.model)._from_config(
        config, attn_implementation="eager", experts_implementation="eager"
    )
    return arch.model(), theirs


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_every_linear_layer_flops_equal_flop_counter_mode(kind: str) -> None:
    ours, theirs = small(kind)
    assert ours.named_parameters() == params(theirs)
    cost = analyze(ours, batch=2, seq_len=12)
    flops, out = counted_per_module(theirs, 2, 12)
    checked = 0
    for layer in cost.layers:
        if layer.spec.kind not in MATMUL_KINDS:
            continue
        names = expand(layer.name)
        for name in names:
            assert flops.get(name, 0) == 2 * layer.macs // len(names), name
            checked += 1
    assert checked >= 3 * 5
    assert sum(v for k, v in flops.items() if "." not in k) == 2 * cost.macs
    assert cost.layers[-1].outputs[0] == tuple(out.logits.shape)


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_kept_tensors_equal_autograd_on_the_built_model(kind: str) -> None:
    from shapecalc.adapters.torch_bridge import build
    from tests.measure import kept_bytes

    model = qwen_moe(**SMALL[kind])
    module = build(model, device="cpu")
    for p in module.parameters():
        if p.dim() > 1:
            p.data.normal_(0, 0.02)
    cost = analyze(model, batch=2, seq_len=12)
    assert kept_bytes(module, [torch.randint(2, 40, (2, 12))]) == cost.activation_bytes


# -- the command line ---------------------------------------------------------------------------
EXAMPLE = QwenMoE.example.split()


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_at_80_and_200_columns(width: int) -> None:
    result = run(["qwen-moe", *EXAMPLE, "--dense-layers", "0,1,2", "--intermediate", "6144"], width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.stdout.splitlines())
    text = " ".join(result.stdout.split())
    assert "model.layers.{3..47}.mlp.experts.gate_up_proj" in text
    assert "Active" in text and "without it and the head" in text


def test_verify_against_both_classes() -> None:
    for args, cls in [
        ([*EXAMPLE], "Qwen3MoeForCausalLM"),
        (
            [
                *("--vocab", "50", "--hidden", "32", "--layers", "2", "--heads", "4"),
                *("--moe-intermediate", "8", "--experts", "4", "--experts-per-token", "2"),
                *("--shared-intermediate", "12", "--attention-bias", "qkv", "--head", "qa"),
                *("--qa-body", "model"),
            ],
            "Qwen2MoeForQuestionAnswering",
        ),
    ]:
        result = run(["qwen-moe", *args, "--verify"])
        assert result.exit_code == 0, result.output
        assert "Verified against transformers" in result.stderr and cls in result.stderr


def test_explain_says_what_the_experts_and_the_shared_expert_are() -> None:
    args = ["qwen-moe", *(a for a in EXAMPLE if a != "--qk-norm"), "--shared-intermediate", "1024"]
    result = run([*args, "--sparse-step", "2", "--intermediate", "4096", "--explain"], 200)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "The shared expert is a gated MLP of S = 1024 that every token goes through" in out
    assert "Layer i has experts when (i + 1) % 2 == 0" in out
    assert "24 of the 48 layers are sparse, 24 dense" in out
    assert "Every matrix of a sparse block (layers.{1,3..47})" in out
    assert "The MLP of a dense block (layers.{0,2..46})" in out
    assert "weight memory follows the total" in out


BASE = ["qwen-moe", "--vocab", "50", "--hidden", "32", "--layers", "4", "--heads", "4"]
BASE += ["--moe-intermediate", "8", "--experts", "4", "--experts-per-token", "2"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--experts-per-token", "5"], "--experts-per-token"),
        (["--dense-layers", "4", "--intermediate", "8"], "--dense-layers"),
        (["--dense-layers", "a,b"], "--dense-layers"),
        (["--dense-layers", "-1"], "--dense-layers"),
        (["--dense-layers", "1,1", "--intermediate", "8"], "--dense-layers"),
        (["--dense-layers", "", "--intermediate", "8"], "--dense-layers"),
        (["--dense-layers", " ", "--intermediate", "8"], "--dense-layers"),
        (["--dense-layers", "1"], "--intermediate"),
        (["--sparse-step", "2"], "--intermediate"),
        (["--sparse-step", "0"], "--sparse-step"),
        (["--sparse-step", "P"], "--sparse-step"),
        (["--sparse-step", "2000", "--layers", "L", "--intermediate", "8"], "--sparse-step"),
        (["--kv-heads", "3"], "--kv-heads"),
        (["--head-dim", "7"], "--head-dim"),
        (["--labels", "3"], "--labels"),
    ],
)
def test_wrong_input_is_one_line(extra: list[str], message: str) -> None:
    result = run([*BASE, *extra])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert message in result.stderr


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mlp_only_layers": [True]}, "mlp_only_layers"),
        ({"mlp_only_layers": "0,1"}, "mlp_only_layers"),
        ({"mlp_only_layers": [48]}, "mlp_only_layers"),
        ({"decoder_sparse_step": 0}, "decoder_sparse_step"),
        ({"num_experts_per_tok": 129}, "num_experts_per_tok"),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"shared_expert_intermediate_size": 8}, "shared_expert_intermediate_size"),
        ({"num_experts": 4, "num_local_experts": 8}, "num_local_experts"),
    ],
)
def test_a_wrong_config_is_one_line(change: dict[str, Any], field: str, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**QWEN3_30B_A3B, **change}))
    result = run(["hf", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert field in result.stderr


def test_the_qwen3_spelling_of_the_experts_is_read() -> None:
    """transformers 5 writes Qwen3-MoE's num_experts as num_local_experts."""
    config = {**QWEN3_30B_A3B, "num_local_experts": 128}
    del config["num_experts"]
    assert hf_model(config).model().total == 30_532_122_624


def test_library_errors_name_the_field() -> None:
    with pytest.raises(ShapecalcError) as err:
        qwen_moe(**{**QWEN3, "layers": 4}, dense_layers=(7,))
    assert err.value.field == "dense_layers"
    with pytest.raises(ShapecalcError) as err:
        qwen_moe(**{**QWEN3, "layers": 4, "intermediate": None}, sparse_step=2)
    assert err.value.field == "intermediate"


@pytest.mark.parametrize("model_type", ["qwen2_moe", "qwen3_moe"])
def test_a_saved_checkpoint_agrees_with_its_config(model_type: str, tmp_path: Path) -> None:
    """save_pretrained writes each expert as the checkpoint layout names it; inspect
    finds every tensor, a dense layer's among them."""
    from shapecalc.adapters.hf_checkpoint import check_folder

    config = {
        "model_type": model_type,
        "vocab_size": 40,
        "hidden_size": 16,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 24,
        "moe_intermediate_size": 8,
        "shared_expert_intermediate_size": 12,
        "num_experts": 3,
        "num_experts_per_tok": 2,
        "mlp_only_layers": [1],
    }
    if model_type == "qwen3_moe":
        del config["shared_expert_intermediate_size"]
    fields = {k: v for k, v in config.items() if k != "model_type"}
    model = transformers.AutoModelForCausalLM.from_config(
        transformers.AutoConfig.for_model(model_type, **fields)
    )
    model.save_pretrained(tmp_path)
    check = check_folder(str(tmp_path))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    assert check.stored_total == check.expected_total == sum(p.numel() for p in model.parameters())


REPORTED = ["qwen-moe", "--vocab", "151936", "--hidden", "2048", "--layers", "48"]
REPORTED += ["--heads", "32", "--kv-heads", "4", "--moe-intermediate", "768"]
REPORTED += ["--experts", "0", "--intermediate", "6144"]


def test_no_experts_gives_the_dense_formula() -> None:
    """The reported case: with experts 0 the formula was the mixture's (3·L·H·E·M, no I),
    which is not the count; now the dense MLP's, at the sizes the count."""
    config = QwenMoE(
        vocab=151936,
        hidden=2048,
        layers=48,
        heads=32,
        kv_heads=4,
        moe_intermediate=768,
        experts=0,
        intermediate=6144,
    )
    m = config.model()
    assert str(m.total_formula) == "2·L·D·H·K + 2·L·H² + 3·L·H·I + 2·L·H + 2·V·H + H"
    assert m.total_formula.subs(config.sizes()) == m.total == 2_887_452_672
    assert not m.routed and m.active_formula.subs(config.sizes()) == m.active
    result = run(REPORTED)
    assert result.exit_code == 0, result.output
    total = result.stdout.split("Total")[1].split("Memory")[0]
    assert "3·L·H·I" in total and "M" not in total and "k" not in total


def test_experts_per_token_needs_experts() -> None:
    """As llama: experts_per_token with experts 0 is refused, and needed with experts."""
    result = run([*REPORTED, "--experts-per-token", "8"])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "Error: Invalid value for '--experts-per-token': qwen_moe: experts_per_token needs "
        "experts: it chooses among them (experts is 0)"
    ]
    result = run([*REPORTED[:-4], "--experts", "4"])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: Invalid value for '--experts-per-token':"), line


def test_a_config_without_experts_reads_without_experts_per_token() -> None:
    """num_experts 0: the class's num_experts_per_tok default is unused, not refused."""
    config = {
        "model_type": "qwen3_moe",
        "vocab_size": 100,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "intermediate_size": 64,
        "moe_intermediate_size": 16,
        "num_experts": 0,
        "num_experts_per_tok": 8,
    }
    read = hf_model(config)
    assert read.architecture.experts_per_token is None
    m = read.model()
    assert m.total_formula.subs(read.architecture.sizes()) == m.total


def test_dense_layers_each_once() -> None:
    """A layer listed twice is a typo, refused naming the rule; in a config it is what
    transformers makes of it (``layer_idx not in mlp_only_layers``): listed once."""
    base = {"vocab": 50, "hidden": 32, "layers": 4, "heads": 4, "moe_intermediate": 8}
    base |= {"experts": 4, "experts_per_token": 2, "intermediate": 8}
    with pytest.raises(ShapecalcError, match=r"each once .* got 1 twice"):
        QwenMoE(**base, dense_layers=(1, 1))
    assert QwenMoE(**base, dense_layers=None).dense_layers == ()
    config = {
        "model_type": "qwen3_moe",
        "vocab_size": 50,
        "hidden_size": 32,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "head_dim": 8,
        "intermediate_size": 8,
        "moe_intermediate_size": 8,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "mlp_only_layers": [2, 1, 1],
    }
    assert hf_model(config).architecture.dense_layers == (1, 2)


def test_a_sparse_step_counts_what_every_layer_has_l_times() -> None:
    """The reported case: 2·D·H·A·⌊(L + 1)/2⌋ + 2·D·H·A·⌊(L)/2⌋ is 2·L·D·H·A."""
    m = qwen_moe(
        vocab=151936,
        hidden=2048,
        layers=48,
        heads=32,
        kv_heads=4,
        moe_intermediate=768,
        experts=8,
        experts_per_token=2,
        intermediate=6144,
        sparse_step=2,
    )
    text = str(m.total_formula)
    assert text.startswith("2·L·D·H·K + 3·H·E·M·⌊(L)/2⌋ + 2·L·H² + "), text
    assert "3·H·I·⌊(L + 1)/2⌋" in text and text.count("⌊") == 3
