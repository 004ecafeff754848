"""Gemma 3 (``gemma3_text``, and a ``gemma3`` config's language model) against
transformers' classes: drawn configs through ``shapecalc hf`` (names, shapes, order,
totals), which layers slide (layer_types, sliding_window_pattern), the published sizes,
what the cache holds after a real forward (fp32 and bf16, below and past the window), the
FLOPs of every module against FlopCounterMode, the tensors autograd keeps, and the
command line with its refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.architectures.gemma3 import Gemma3, gemma3
from shapecalc.core.errors import ShapecalcError
from shapecalc.core.tree import run_indices, split_name
from tests.cache_truth import ours, real_cache
from tests.hf_configs import hf_configs
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode

SLIDING, FULL = "sliding_attention", "full_attention"


def params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


def built(config: dict[str, Any], device: str = "meta", **options: Any) -> Any:
    """transformers' model of a config.json (its class, or the type's first), on the meta
    device, or on the cpu with ``options`` (eager attention)."""
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    conf = transformers.AutoConfig.for_model(config["model_type"], **fields)
    default = {
        "gemma3_text": "Gemma3ForCausalLM",
        "gemma3": "Gemma3ForConditionalGeneration",
        "cohere2": "Cohere2ForCausalLM",
    }[config["model_type"]]
    cls = getattr(transformers, (config.get("architectures") or [default])[0])
    if device == "cpu":
        return cls._from_config(conf, **options)
    with torch.device("meta"):
        return cls(conf)


def expanded(name: str) -> list[str]:
    """``layers.{0,6..24}.x`` as the names of every layer of the run."""
    found = re.search(r"\{\d+(?:,\d+)?\.\.\d+\}", name)
    if found is None:
        return [name]
    numbers = run_indices(found.group(0))
    assert numbers is not None, name
    return [
        n for i in numbers for n in expanded(name[: found.start()] + str(i) + name[found.end() :])
    ]


def layer_kinds(module: Any) -> list[str]:
    config = module.config.get_text_config()
    return list(config.layer_types)


# -- drawn configs ---------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", ["gemma3_text", "gemma3"])
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_drawn_configs_equal_transformers(model_type: str, data: st.DataObject) -> None:
    config = data.draw(hf_configs(model_type), label="config")
    ours_model = hf_model(config).model()
    theirs = built(config)
    assert ours_model.named_parameters() == params(theirs)
    assert ours_model.total == sum(p.numel() for p in theirs.parameters())


@settings(max_examples=25, deadline=None)
@given(
    layers=st.integers(1, 13),
    every=st.one_of(st.none(), st.integers(1, 8)),
    listed=st.one_of(st.none(), st.lists(st.sampled_from([SLIDING, FULL]), min_size=13)),
)
def test_which_layers_slide_is_transformers_rule(
    layers: int, every: int | None, listed: list[str] | None
) -> None:
    """layer_types as given, else sliding_window_pattern's rule (6 unless given): each
    sliding layer's window (its own run) where transformers' layer slides, and the
    formulas of every row evaluate to its count."""
    config: dict[str, Any] = {
        "model_type": "gemma3_text",
        "vocab_size": 11,
        "hidden_size": 8,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 4,
        "intermediate_size": 6,
        "sliding_window": 3,
    }
    if every is not None:
        config["sliding_window_pattern"] = every
    if listed is not None:
        config["layer_types"] = listed[:layers]
    found = hf_model(config)
    model = found.model()
    theirs = built(config)
    assert model.named_parameters() == params(theirs)
    kinds = layer_kinds(theirs)
    sliding = {
        i
        for layer in analyze(model, batch=1, seq_len=4).layers
        if "scaled_dot_product_attention" in layer.name and layer.spec.window is not None
        for i in [int(n.split(".")[2]) for n in expanded(layer.name)]
    }
    assert sliding == {i for i, k in enumerate(kinds) if k == SLIDING}
    assert found.architecture.sliding_layers() == kinds.count(SLIDING)
    sizes = {k: v for k, v in model.sizes.items() if isinstance(v, int)}
    for row in model.rows():
        formula = row.formula
        assert (formula if isinstance(formula, int) else formula.subs(sizes)) == row.count


def test_a_symbolic_layer_count_gives_runs_as_formulas() -> None:
    sizes = {"vocab": 100, "hidden": 64, "heads": 4, "kv_heads": 2, "intermediate": 96}
    symbolic = gemma3(**sizes, layers="L")
    assert symbolic.evaluate(L=26).total == gemma3(**sizes, layers=26).total
    runs = {split_name(r.name)[2] for r in symbolic.rows() if ".layers." in r.name}
    assert "{5,11..6·⌊(L)/6⌋-1}" in runs
    patterned = gemma3(**sizes, layers="L", layer_types=(SLIDING, FULL))
    assert patterned.evaluate(L=7).total == gemma3(**sizes, layers=7).total


# -- published models --------------------------------------------------------------------------
#: google/gemma-3-1b-it's sizes (its config.json's size fields; the rest at
#: Gemma3TextConfig's defaults, which change no tensor)
GEMMA3_1B = {
    "model_type": "gemma3_text",
    "architectures": ["Gemma3ForCausalLM"],
    "vocab_size": 262144,
    "hidden_size": 1152,
    "intermediate_size": 6912,
    "num_hidden_layers": 26,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "sliding_window": 512,
    "sliding_window_pattern": 6,
}
#: google/gemma-3-4b-it's text_config and vision_config sizes (the rest at Gemma3Config's,
#: Gemma3TextConfig's and SiglipVisionConfig's defaults, which change no tensor)
GEMMA3_4B = {
    "model_type": "gemma3",
    "architectures": ["Gemma3ForConditionalGeneration"],
    "mm_tokens_per_image": 256,
    "text_config": {
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "num_hidden_layers": 34,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "sliding_window": 1024,
    },
    "vision_config": {
        "model_type": "siglip_vision_model",
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_attention_heads": 16,
        "num_hidden_layers": 27,
        "image_size": 896,
        "patch_size": 14,
        "vision_use_head": False,
    },
}


@pytest.mark.parametrize(
    ("config", "total", "sliding"),
    [(GEMMA3_1B, 999_885_952, 22), (GEMMA3_4B, 4_300_079_472, 29)],
)
def test_published_sizes_count_exactly(
    config: dict[str, Any], total: int, sliding: int, tmp_path: Path
) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"] == total
    found = hf_model(config)
    theirs = built(config)
    assert found.model().named_parameters() == params(theirs)
    assert found.architecture.sliding_layers() == sliding == layer_kinds(theirs).count(SLIDING)


def test_the_4b_config_counts_its_vision_tower_and_projector(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(GEMMA3_4B))
    result = run(["hf", str(tmp_path)], 200)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "model.language_model.layers.{5,11..29}.self_attn.q_proj.weight" in text
    assert "model.multi_modal_projector.mm_input_projection_weight" in text
    theirs = built(GEMMA3_4B)
    for part in ("vision_tower", "multi_modal_projector", "language_model"):
        count = sum(p.numel() for p in getattr(theirs.model, part).parameters())
        assert f"model.{part}: {count:,} parameters" in text
    assert "29 of the 34 layers attend over the last 1,024 positions" in text
    verify = run(["hf", str(tmp_path), "--verify"], 200)  # every tensor, none left out
    assert verify.exit_code == 0, verify.output
    assert "Verified against transformers" in verify.stderr
    assert "left out" not in verify.stderr


# -- the cache after a real forward -----------------------------------------------------------
@st.composite
def small_configs(draw: st.DrawFn, model_type: str) -> dict[str, Any]:
    kv = draw(st.integers(1, 2))
    config: dict[str, Any] = {
        "model_type": model_type,
        "vocab_size": 32,
        "hidden_size": 8 * kv,
        "num_hidden_layers": draw(st.integers(1, 7)),
        "num_attention_heads": 2 * kv,
        "num_key_value_heads": kv,
        "intermediate_size": 12,
        "sliding_window": draw(st.integers(1, 6)),
    }
    if model_type == "gemma3_text":
        config["head_dim"] = 2 * draw(st.integers(1, 3))
    if draw(st.booleans()):
        config["sliding_window_pattern"] = draw(st.integers(1, 4))
    return config


def check_cache(config: dict[str, Any]) -> None:
    """Every layer's cache bytes equal transformers' at lengths below, at and past the
    window, in fp32 and bf16."""
    model = hf_model(config).model()
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    conf = transformers.AutoConfig.for_model(config["model_type"], **fields)
    cls = getattr(transformers, built(config).__class__.__name__)
    w = config["sliding_window"]
    for dtype, name in ((None, "fp32"), (torch.bfloat16, "bf16")):
        for seq in sorted({1, max(w - 1, 1), w, w + 1, 2 * w + 3}):
            real = real_cache(conf, cls, batch=2, seq_len=seq, dtype=dtype)
            counted = ours(model, batch=2, seq_len=seq, dtype=name)
            assert [counted[i] for i in range(len(real))] == real, (name, seq)


@settings(max_examples=6, deadline=None)
@given(config=small_configs("gemma3_text"))
def test_the_cache_is_what_transformers_keeps(config: dict[str, Any]) -> None:
    check_cache(config)


def test_sliding_layers_keep_window_minus_one() -> None:
    model = gemma3(
        vocab=32, hidden=16, layers=6, heads=2, head_dim=8, intermediate=8, sliding_window=4
    )
    cost = analyze(model, batch=1, seq_len=100, training="none")
    per_layer = cost.state_per_layer()
    token = 2 * 2 * 8 * 4  # keys and values, 2 kv heads of 8, fp32
    assert [per_layer[i] for i in range(6)] == [3 * token] * 5 + [100 * token]
    groups = {g.kind: g for g in cost.state_groups()}
    assert set(groups) == {"sliding attention", "full attention"}


# -- FLOPs and kept tensors --------------------------------------------------------------------
def check_flops(config: dict[str, Any]) -> None:
    """Every module's FLOPs (each linear layer, each attention with its two products, each
    block) equal FlopCounterMode's on an eager forward, and the whole forward."""
    model = hf_model(config).model()
    theirs = built(config, "cpu", attn_implementation="eager").eval()
    batch, seq = 2, 9
    cost = analyze(model, batch=batch, seq_len=seq)
    ids = torch.randint(2, 30, (batch, seq))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        theirs(ids)
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    mine: dict[str, int] = {}
    for layer in cost.layers:
        names = expanded(layer.name.split(" (")[0])
        for name in names:
            parts = name.split(".")
            for k in range(1, len(parts) + 1):
                prefix = ".".join(parts[:k])
                mine[prefix] = mine.get(prefix, 0) + 2 * layer.macs // len(names)
    top = type(theirs).__name__
    checked = 0
    for name, flops in counts.items():
        if name == "Global":
            assert flops == 2 * cost.macs
            continue
        inside = name.split(".", 1)[1] if "." in name else None
        if inside is None:
            assert name == top
            continue
        assert mine.get(inside, 0) == flops, inside
        checked += 1
    assert checked >= 4 * config["num_hidden_layers"]


@pytest.mark.parametrize("every", [2, 6])
def test_every_module_flops_equal_flop_counter_mode(every: int) -> None:
    check_flops(
        {
            "model_type": "gemma3_text",
            "vocab_size": 40,
            "hidden_size": 16,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 6,
            "intermediate_size": 24,
            "sliding_window": 4,
            "sliding_window_pattern": every,
            "tie_word_embeddings": every == 6,
        }
    )


def test_kept_tensors_equal_autograd_on_the_built_model() -> None:
    from shapecalc.adapters.torch_bridge import build
    from tests.measure import kept_bytes

    model = gemma3(vocab=40, hidden=16, layers=3, heads=4, kv_heads=2, head_dim=6, sliding_window=4)
    module = build(model, device="cpu")
    for p in module.parameters():
        if p.dim() > 1:
            p.data.normal_(0, 0.02)
    cost = analyze(model, batch=2, seq_len=9)
    assert kept_bytes(module, [torch.randint(2, 40, (2, 9))]) == cost.activation_bytes


# -- the command line ---------------------------------------------------------------------------
EXAMPLE = Gemma3.example.split()


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_at_80_and_200_columns(width: int) -> None:
    result = run(["gemma3", *EXAMPLE, "--memory", "--seq-len", "32768", "--explain"], width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.stdout.splitlines())
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "model.layers.{5,11..23}.self_attn.q_norm.weight" in text
    assert "999,885,952" in text
    assert "22 of the 26 layers attend over the last W = 512 tokens" in text
    assert "the last 511 positions at most" in text


def test_verify_against_transformers() -> None:
    for extra, cls in [
        ([], "Gemma3ForCausalLM"),
        (
            ["--head", "seq-cls", "--layer-types", "full_attention,sliding_attention*2"],
            "Gemma3TextForSequenceClassification",
        ),
    ]:
        small = ["--vocab", "50", "--hidden", "32", "--layers", "5", "--heads", "4"]
        result = run(["gemma3", *small, "--kv-heads", "2", "--head-dim", "6", *extra, "--verify"])
        assert result.exit_code == 0, result.output
        assert "Verified against transformers" in result.stderr and cls in result.stderr


BASE = ["gemma3", "--vocab", "50", "--hidden", "32", "--layers", "4", "--heads", "4"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sliding-window", "0"], "--sliding-window"),
        (["--sliding-window", "W"], "--sliding-window"),
        (["--layer-types", "sliding_attention*5"], "--layer-types"),
        (["--layer-types", "local_attention"], "--layer-types"),
        (["--layer-types", ""], "--layer-types"),
        (["--layer-types", "sliding_attention*x"], "--layer-types"),
        (["--kv-heads", "3"], "--kv-heads"),
        (["--head-dim", "7"], "--head-dim"),
        (["--labels", "3"], "--labels"),
        (["--sliding-pattern", "0"], "--sliding-pattern"),
        (["--sliding-pattern", "2", "--layer-types", "full_attention"], "--sliding-pattern"),
        (["--sliding-pattern", "2000", "--layers", "L"], "--sliding-pattern"),
    ],
)
def test_wrong_input_is_one_line(extra: list[str], message: str) -> None:
    result = run([*BASE, *extra])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert message in result.stderr


def test_a_window_larger_than_anything_is_taken() -> None:
    """transformers takes it: every layer then keeps every position."""
    model = gemma3(vocab=50, hidden=32, layers=2, heads=4, sliding_window=10**9)
    cost = analyze(model, batch=1, seq_len=64, training="none")
    assert len(set(cost.state_per_layer().values())) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sliding_window": 0}, "sliding_window"),
        ({"sliding_window": None}, "sliding_window"),
        ({"layer_types": [SLIDING] * 25}, "layer_types"),
        ({"layer_types": [SLIDING] * 25 + ["chunked_attention"]}, "layer_types"),
        ({"layer_types": "sliding_attention"}, "layer_types"),
        ({"sliding_window_pattern": 0}, "sliding_window_pattern"),
        ({"sliding_window_pattern": True}, "sliding_window_pattern"),
        ({"use_bidirectional_attention": True}, "use_bidirectional_attention"),
        ({"num_attention_heads": 5}, "num_attention_heads"),
        ({"model_type": "llama"}, "text_config"),
    ],
)
def test_a_wrong_config_is_one_line(change: dict[str, Any], field: str, tmp_path: Path) -> None:
    text = {k: v for k, v in {**GEMMA3_1B, **change}.items() if k != "architectures"}
    configs = [{**GEMMA3_4B, "text_config": text}]
    if "model_type" not in change:
        configs.append({**GEMMA3_1B, **change})
    for config in configs:
        (tmp_path / "config.json").write_text(json.dumps(config))
        result = run(["hf", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
        assert field in result.stderr


def test_a_long_pattern_is_runs_of_consecutive_layers() -> None:
    """sliding_window_pattern 2000 over 5000 layers: two global layers, as transformers
    lays them out, in five runs (not 2000 runs a step apart)."""
    sizes = {"vocab": 50, "hidden": 32, "heads": 4, "sliding_window": 8}
    model = gemma3(**sizes, layers=5000, sliding_pattern=2000)
    runs = [split_name(r.name)[2] for r in model.rows() if r.name.endswith("q_proj.weight")]
    assert runs == ["{0..1998}", "1999", "{2000..3998}", "3999", "{4000..4999}"]
    assert model.total == gemma3(**sizes, layers=5000).total  # every layer, once
    assert Gemma3(**sizes, layers=5000, sliding_pattern=2000).sliding_layers() == 4998


def test_library_errors_name_the_field() -> None:
    with pytest.raises(ShapecalcError) as err:
        gemma3(vocab=50, hidden=32, layers=2, heads=4, layer_types=(SLIDING,) * 3)
    assert err.value.field == "layer_types"
    with pytest.raises(ShapecalcError) as err:
        gemma3(vocab=50, hidden=32, layers=2, heads=4, sliding_window=0)
    assert err.value.field == "sliding_window"
