"""Qwen3-Next (``qwen3_next``) against transformers' classes: drawn configs through
``shapecalc hf`` (names, shapes, order, totals and the active count worked out from the
transformers model's own tensors), the class defaults (Qwen3-Next-80B-A3B) counted exactly,
which layers attend fully and which are sparse (layer_types, full_attention_interval,
decoder_sparse_step, mlp_only_layers; symbolic too), the inference state per layer against
what transformers' cache holds after a real forward (fp32 and bf16, lengths below, at and
past the chunk), the FLOPs of every layer against FlopCounterMode on a real forward, and
the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.architectures.qwen3_next import Qwen3Next, qwen3_next
from shapecalc.core.dims import symbol
from shapecalc.core.errors import ShapecalcError
from shapecalc.core.tree import run_indices, split_name
from shapecalc.layers.linear_attention import GatedDeltaNet
from tests.cache_truth import ours, real_cache
from tests.hf_configs import hf_configs
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode


def config_class(config: dict[str, Any]) -> Any:
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    return transformers.Qwen3NextConfig(**fields)


def built(config: dict[str, Any]) -> Any:
    """transformers' model of a config.json (its class, or the causal LM) on the meta
    device."""
    cls = getattr(transformers, (config.get("architectures") or ["Qwen3NextForCausalLM"])[0])
    with torch.device("meta"):
        return cls(config_class(config))


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
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_drawn_configs_equal_transformers(data: st.DataObject) -> None:
    config = data.draw(hf_configs("qwen3_next"), label="config")
    ours_model = hf_model(config).model()
    theirs = built(config)
    assert ours_model.named_parameters() == params(theirs)
    assert (ours_model.total, ours_model.active) == used_by_one_token(theirs)


SMALL: dict[str, Any] = {
    "model_type": "qwen3_next",
    "vocab_size": 40,
    "hidden_size": 16,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 4,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 4,
    "linear_key_head_dim": 3,
    "linear_value_head_dim": 5,
    "linear_conv_kernel_dim": 3,
    "intermediate_size": 6,
    "moe_intermediate_size": 4,
    "shared_expert_intermediate_size": 5,
}


@settings(max_examples=30, deadline=None)
@given(
    layers=st.integers(1, 9),
    interval=st.integers(1, 4),
    pattern=st.lists(st.sampled_from(["linear_attention", "full_attention"]), max_size=3),
    step=st.integers(1, 3),
    dense=st.lists(st.integers(0, 8), max_size=3),
    experts=st.integers(0, 4),
)
def test_which_layers_attend_and_which_are_sparse_is_transformers_rule(
    layers: int, interval: int, pattern: list[str], step: int, dense: list[int], experts: int
) -> None:
    """Every mix of layer_types (or full_attention_interval's rule), decoder_sparse_step
    and mlp_only_layers gives transformers' layers, and the formulas evaluate to them."""
    config = {
        **SMALL,
        "num_hidden_layers": layers,
        "full_attention_interval": interval,
        "num_experts": experts,
        "num_experts_per_tok": min(2, max(experts, 1)),
        "decoder_sparse_step": step,
        "mlp_only_layers": sorted({i for i in dense if i < layers}),
    }
    if pattern:
        config["layer_types"] = [pattern[i % len(pattern)] for i in range(layers)]
    read = hf_model(config)
    model = read.model()
    theirs = built(config)
    assert model.named_parameters() == params(theirs)
    assert (model.total, model.active) == used_by_one_token(theirs)
    sizes = {k: v for k, v in model.sizes.items() if isinstance(v, int)}
    for row in model.rows():
        formula = row.formula
        assert (formula if isinstance(formula, int) else formula.subs(sizes)) == row.count


def test_default_rule_is_every_fourth_layer_and_a_pattern_repeats() -> None:
    arch = Qwen3Next(
        **{**SIZES, "layers": 8, "experts": 4, "experts_per_token": 2},
    )
    assert arch.mixers() == ("linear_attention",) * 3 + ("full_attention",) + (
        "linear_attention",
    ) * 3 + ("full_attention",)
    patterned = Qwen3Next(
        **{**SIZES, "layers": 5, "experts": 4, "experts_per_token": 2},
        layer_types="full_attention,linear_attention*2",
    )
    assert patterned.mixers() == (
        "full_attention",
        "linear_attention",
        "linear_attention",
        "full_attention",
        "linear_attention",
    )
    rows = patterned.model().rows()
    names = {split_name(r.name)[2] for r in rows if ".self_attn." in r.name}
    assert names == {"{0,3..3}"}


#: the sizes of a small model, as the library takes them
SIZES: dict[str, Any] = {
    "vocab": 40,
    "hidden": 16,
    "layers": 6,
    "heads": 4,
    "kv_heads": 2,
    "head_dim": 4,
    "linear_key_heads": 2,
    "linear_value_heads": 4,
    "linear_key_dim": 3,
    "linear_value_dim": 5,
    "conv_kernel": 3,
    "moe_intermediate": 4,
    "shared_intermediate": 5,
    "intermediate": 6,
}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"sparse_step": 2},
        {"dense_layers": (0, 5)},
        {"layer_types": ("full_attention", "linear_attention")},
        {"full_attention_interval": 3, "sparse_step": 2, "dense_layers": (4,)},
    ],
)
def test_a_letter_for_the_layers_evaluates_to_every_count(extra: dict[str, Any]) -> None:
    """With L a letter the stack is the pattern repeated (the dense layers listed first);
    at any number of layers it counts what the numbers count."""
    sizes = {**SIZES, "experts": 4, "experts_per_token": 2, **extra}
    symbolic = qwen3_next(**{**sizes, "layers": "L"})
    for n in (8, 9, 12, 13, 17):  # past the dense layers listed first
        assert symbolic.evaluate(L=n).total == qwen3_next(**{**sizes, "layers": n}).total
        assert symbolic.evaluate(L=n).active == qwen3_next(**{**sizes, "layers": n}).active


def test_a_stack_of_a_trillion_layers_is_counted_without_listing_them() -> None:
    sizes = {**SIZES, "experts": 4, "experts_per_token": 2}
    model = qwen3_next(**{**sizes, "layers": 10**12})
    four = qwen3_next(**{**sizes, "layers": 8}).total - qwen3_next(**{**sizes, "layers": 4}).total
    assert model.total > four * (10**12 // 4 - 2)
    assert model.evaluate().total == model.total


# -- the class defaults: Qwen3-Next-80B-A3B -----------------------------------------------------
def test_the_class_defaults_count_exactly(tmp_path: Path) -> None:
    """Qwen3NextConfig's defaults describe Qwen3-Next-80B-A3B (its docstring's checkpoint);
    the Hub's config.json is not written out here: a file of the model type alone is read
    with those defaults. Total and active as transformers' class on the meta device has
    them (the active count with the embedding and the head: 3.87B; without the embedding
    3.56B, without both 3.25B, the card's "A3B")."""
    config: dict[str, Any] = {"model_type": "qwen3_next", "architectures": ["Qwen3NextForCausalLM"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["total"], report["active"]) == (79_674_391_296, 3_874_929_408)
    assert used_by_one_token(built(config)) == (79_674_391_296, 3_874_929_408)
    assert hf_model(config).model().named_parameters() == params(built(config))


def test_the_80b_prints_its_runs_and_active_line(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3_next"}))
    result = run(["hf", str(tmp_path)], 200)
    assert result.exit_code == 0, result.output
    assert "model.layers.{3,7..47}.self_attn.q_proj.weight" in result.stdout
    assert "model.layers.{0,4..44}.linear_attn.A_log" in result.stdout
    assert "Active\n  3,874,929,408 parameters per token" in result.stdout


# -- the inference state against transformers' cache -------------------------------------------
def _cache_configs() -> list[dict[str, Any]]:
    return [
        {**SMALL, "num_hidden_layers": 5, "num_experts": 4, "num_experts_per_tok": 2},
        {
            **SMALL,
            "num_hidden_layers": 4,
            "num_experts": 0,
            "linear_num_key_heads": 1,
            "linear_num_value_heads": 3,
            "linear_conv_kernel_dim": 5,
            "layer_types": ["full_attention", "linear_attention"] * 2,
            "mlp_only_layers": [1],
        },
    ]


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_the_state_is_what_transformers_cache_holds(index: int, dtype: str) -> None:
    """Every layer, at lengths below the convolution's width, within a chunk, at it and
    past it: full attention's keys and values grow; linear attention keeps the
    convolution's last W inputs (the model's dtype) and the recurrent state (fp32)."""
    config = _cache_configs()[index]
    model = hf_model(config).model()
    theirs = config_class(config)
    theirs._experts_implementation = "eager"  # grouped_mm refuses bf16 rows of 4 experts
    torch_dtype = torch.bfloat16 if dtype == "bf16" else None
    for length in (1, 2, 7, 64, 70) if dtype == "fp32" else (2, 70):
        real = real_cache(
            theirs, transformers.Qwen3NextForCausalLM, batch=2, seq_len=length, dtype=torch_dtype
        )
        counted = ours(model, batch=2, seq_len=length, dtype=dtype)
        assert list(counted) == list(range(len(real)))
        assert list(counted.values()) == real, length


@settings(max_examples=5, deadline=None)
@given(data=st.data(), length=st.integers(1, 80), bf16=st.booleans())
def test_drawn_configs_state_equals_the_cache(data: st.DataObject, length: int, bf16: bool) -> None:
    config = data.draw(hf_configs("qwen3_next"), label="config")
    config = {**config, "architectures": ["Qwen3NextForCausalLM"]}
    read = hf_model(config)
    # transformers' cache cannot make the attention mask when no layer attends fully
    assume("full_attention" in (read.architecture.mixers() or ()))
    model = read.model()
    theirs = config_class(config)
    theirs._experts_implementation = "eager"
    real = real_cache(
        theirs,
        transformers.Qwen3NextForCausalLM,
        batch=1,
        seq_len=length,
        dtype=torch.bfloat16 if bf16 else None,
    )
    counted = ours(model, batch=1, seq_len=length, dtype="bf16" if bf16 else "fp32")
    assert list(counted.values()) == real


def test_the_state_by_kind_says_what_grows() -> None:
    model = qwen3_next(**{**SIZES, "layers": 8, "experts": 4, "experts_per_token": 2})
    cost = analyze(model, batch=1, seq_len=1000, dtype="bf16", training="none")
    groups = {g.kind: g for g in cost.state_groups()}
    assert set(groups) == {"full attention", "linear attention"}
    full, linear = groups["full attention"], groups["linear attention"]
    assert (full.layers, full.grows) == (2, True)
    assert (linear.layers, linear.grows) == (6, False)
    conv = 2 * 2 * 3 + 4 * 5  # q, k and v's channels
    assert linear.each == conv * 3 * 2 + 4 * 3 * 5 * 4  # bf16 conv, fp32 state
    assert full.each == 2 * 2 * 1000 * 4 * 2  # keys and values, 2 heads of 4, bf16
    longer = analyze(model, batch=1, seq_len=9000, dtype="bf16", training="none")
    assert {g.kind: g.each for g in longer.state_groups()}["linear attention"] == linear.each


# -- FLOPs on a real forward -----------------------------------------------------------------------
def _names(name: str) -> list[str]:
    """model.layers.{0,4..8}.linear_attn -> the name of each layer of the run."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        numbers = run_indices(part)
        if numbers is not None:
            return [".".join([*parts[:i], str(n), *parts[i + 1 :]]) for n in numbers]
    return [name.split(" ")[0]]


COUNTED = {"Linear", "Experts", "TopkRouter", "GatedDeltaNet"}


@pytest.mark.parametrize("length", [2, 70])
def test_flops_equal_flop_counter_mode_per_module(length: int) -> None:
    """Every layer with matrix products, each attention module whole (its projections
    and the attention's products), and the whole forward, as FlopCounterMode counts
    transformers' eager forward (the torch path of the delta rule, from an empty cache)."""
    config = {
        **SMALL,
        "num_hidden_layers": 6,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "full_attention_interval": 3,
        "mlp_only_layers": [1],
    }
    model = hf_model(config).model()
    theirs = transformers.Qwen3NextForCausalLM._from_config(
        config_class(config), attn_implementation="eager", experts_implementation="eager"
    ).eval()
    ids = torch.randint(2, 40, (2, length))
    with FlopCounterMode(display=False) as counter:  # the hub kernels' wrappers need grad on
        # shorter than the convolution's width, a cached prefill would pad it: no cache
        out = theirs(ids, use_cache=length >= config["linear_conv_kernel_dim"])
    flops = {
        name.split(".", 1)[1]: sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
        if "." in name
    }
    cost = analyze(model, batch=2, seq_len=length)
    checked = 0
    attention: dict[str, int] = {}
    for layer in cost.layers:
        names = _names(layer.name)
        for name in names:
            share = 2 * layer.macs // len(names)
            if layer.spec.kind in COUNTED:
                assert flops.get(name, 0) == share, name
                checked += 1
            if ".self_attn" in name:
                module = name.split(".self_attn")[0] + ".self_attn"
                attention[module] = attention.get(module, 0) + share
    assert checked >= 6 * 4
    assert attention and all(flops[m] == f for m, f in attention.items())
    assert sum(v for k, v in flops.items() if "." not in k) == 2 * cost.macs
    assert cost.layers[-1].outputs[0] == tuple(out.logits.shape)


def test_the_delta_rule_pads_to_the_chunk() -> None:
    spec = GatedDeltaNet(16, 2, 4, 3, 5, 3)
    assert spec.chunks(1) == spec.chunks(64) == 1 and spec.chunks(65) == 2
    once, twice = spec.work((1, 64, 16)).macs, spec.work((1, 65, 16)).macs
    assert twice > once
    work = spec.work((1, symbol("T"), 16))  # with T a letter: T ≥ W assumed
    for length in (1, 3, 64, 65, 70, 200):
        assert work.macs.subs({"T": length}) == spec.work((1, length, 16)).macs


# -- the command line ---------------------------------------------------------------------------
EXAMPLE = Qwen3Next.example.split()


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_at_80_and_200_columns(width: int) -> None:
    result = run(["qwen3-next", *EXAMPLE], width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.stdout.splitlines())
    text = " ".join(result.stdout.split())
    assert "model.layers.{3,7..47}.self_attn.q_proj.weight" in text
    assert "Active 3,874,929,408 parameters per token" in text


def test_verify_against_the_classes() -> None:
    for args, cls in [
        ([*EXAMPLE], "Qwen3NextForCausalLM"),
        (
            [
                *("--vocab", "50", "--hidden", "16", "--layers", "3", "--heads", "4"),
                *("--linear-key-heads", "2", "--linear-value-heads", "4"),
                *("--linear-key-dim", "4", "--linear-value-dim", "4"),
                *("--moe-intermediate", "8", "--shared-intermediate", "6", "--experts", "4"),
                *("--experts-per-token", "2", "--head", "qa"),
                *("--layer-types", "full_attention,linear_attention"),
            ],
            "Qwen3NextForQuestionAnswering",
        ),
    ]:
        result = run(["qwen3-next", *args, "--verify"])
        assert result.exit_code == 0, result.output
        assert "Verified against transformers" in result.stderr and cls in result.stderr


def test_explain_says_what_linear_attention_keeps() -> None:
    result = run(["qwen3-next", *EXAMPLE, "--explain"], 200)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "layer i attends fully when (i + 1) % 4 == 0" in out
    assert "12 of the 48 layers attend fully (3, 7, 11" in out
    assert "A_log and dt_bias (32,)" in out
    assert "Nothing grows with the context" in out
    assert "fp32 as transformers keeps it even in a bf16 model" in out
    assert "Every matrix of a linear-attention block with a sparse MLP" in out
    assert "Every matrix of a full-attention block with a sparse MLP" in out


BASE = ["qwen3-next", "--vocab", "50", "--hidden", "16", "--layers", "4", "--heads", "4"]
BASE += ["--moe-intermediate", "8", "--shared-intermediate", "6", "--experts", "4"]
BASE += ["--experts-per-token", "2"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layer-types", "sliding_attention"], "--layer-types"),
        (["--layer-types", "full_attention*5"], "--layer-types"),
        (["--layer-types", ""], "--layer-types"),
        (["--layer-types", "full_attention*x"], "--layer-types"),
        (["--full-attention-interval", "0"], "--full-attention-interval"),
        (["--full-attention-interval", "R"], "--full-attention-interval"),
        (["--linear-key-heads", "3"], "--linear-key-heads"),
        (["--linear-value-heads", "0"], "--linear-value-heads"),
        (["--conv-kernel", "0"], "--conv-kernel"),
        (["--experts-per-token", "5"], "--experts-per-token"),
        (["--dense-layers", "4", "--intermediate", "8"], "--dense-layers"),
        (["--dense-layers", "1"], "--intermediate"),
        (["--sparse-step", "2"], "--intermediate"),
        (["--kv-heads", "3"], "--kv-heads"),
        (["--labels", "3"], "--labels"),
        (["--rotary-pct", "2"], "--rotary-pct"),
        (
            [
                "--full-attention-interval",
                "5000",
                "--sparse-step",
                "4999",
                "--layers",
                "L",
                "--intermediate",
                "8",
            ],
            "--sparse-step",
        ),
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
        ({"layer_types": ["linear_attention"] * 47}, "layer_types"),
        ({"layer_types": ["sliding_attention"] * 48}, "layer_types"),
        ({"layer_types": "full_attention"}, "layer_types"),
        ({"full_attention_interval": 0}, "full_attention_interval"),
        ({"linear_num_key_heads": 3}, "linear_num_key_heads"),
        ({"linear_conv_kernel_dim": 0}, "linear_conv_kernel_dim"),
        ({"mlp_only_layers": [48]}, "mlp_only_layers"),
        ({"num_experts_per_tok": 513}, "num_experts_per_tok"),
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"head_dim": None}, "head_dim"),
    ],
)
def test_a_wrong_config_is_one_line(change: dict[str, Any], field: str, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3_next", **change}))
    result = run(["hf", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert field in result.stderr


def test_library_errors_name_the_field() -> None:
    with pytest.raises(ShapecalcError) as err:
        qwen3_next(**SIZES, experts=4, experts_per_token=2, layer_types=("full_attention",) * 7)
    assert err.value.field == "layer_types"
    with pytest.raises(ShapecalcError) as err:
        qwen3_next(**{**SIZES, "linear_value_heads": 5}, experts=0)
    assert err.value.field == "linear_key_heads"


def test_a_saved_checkpoint_agrees_with_its_config(tmp_path: Path) -> None:
    """save_pretrained writes the experts as the checkpoint layout names them; inspect
    finds every tensor, the linear-attention layers' and a dense layer's among them."""
    from shapecalc.adapters.hf_checkpoint import check_folder

    config = {**SMALL, "num_hidden_layers": 4, "num_experts": 3, "num_experts_per_tok": 2}
    config["mlp_only_layers"] = [1]
    model = transformers.Qwen3NextForCausalLM(config_class(config))
    model.save_pretrained(tmp_path)
    check = check_folder(str(tmp_path))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    assert check.stored_total == check.expected_total == sum(p.numel() for p in model.parameters())


def test_the_built_model_computes_what_transformers_does() -> None:
    """shapecalc.build's Gated DeltaNet (the rule token by token) gives transformers'
    chunked output, past a chunk; the whole model runs and names its tensors as ours."""
    import shapecalc

    config = {**SMALL, "num_hidden_layers": 4, "num_experts": 4, "num_experts_per_tok": 2}
    model = hf_model(config).model()
    module = shapecalc.build(model, device="cpu")
    assert [n for n, _ in module.named_parameters()] == [n for n, _ in model.named_parameters()]
    theirs = transformers.Qwen3NextForCausalLM(config_class(config)).eval()
    prefix = "model.layers.0.linear_attn."
    state = {k[len(prefix) :]: v for k, v in theirs.state_dict().items() if k.startswith(prefix)}
    ours_layer = module.model.layers[0].linear_attn
    ours_layer.load_state_dict(state)
    x = torch.randn(2, 70, 16)
    with torch.no_grad():
        assert torch.allclose(ours_layer(x), theirs.model.layers[0].linear_attn(x), atol=1e-6)
        assert module(torch.randint(0, 40, (2, 9))).shape == (2, 9, 40)
