"""Cohere2 (Command R7B, Command A) against transformers' classes: drawn configs through
``shapecalc hf``, which layers slide (three in four unless told), the published sizes,
what the cache holds after a real forward (fp32 and bf16, below and past the window), the
FLOPs of every module against FlopCounterMode (the global layers turn no positions), the
tensors autograd keeps, and the command line with its refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.architectures.cohere2 import Cohere2, cohere2
from shapecalc.core.errors import ShapecalcError
from tests.hf_configs import hf_configs
from tests.test_cli import run
from tests.test_gemma3 import (
    FULL,
    SLIDING,
    built,
    check_cache,
    check_flops,
    expanded,
    layer_kinds,
    params,
    small_configs,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_drawn_configs_equal_transformers(data: st.DataObject) -> None:
    config = data.draw(hf_configs("cohere2"), label="config")
    model = hf_model(config).model()
    theirs = built(config)
    assert model.named_parameters() == params(theirs)
    assert model.total == sum(p.numel() for p in theirs.parameters())


@settings(max_examples=25, deadline=None)
@given(
    layers=st.integers(1, 11),
    every=st.one_of(st.none(), st.integers(1, 6)),
    listed=st.one_of(st.none(), st.lists(st.sampled_from([SLIDING, FULL]), min_size=11)),
)
def test_which_layers_slide_is_transformers_rule(
    layers: int, every: int | None, listed: list[str] | None
) -> None:
    """layer_types as given, else sliding_window_pattern's rule (4 unless given): a
    sliding layer attends over its window with rotary positions, a global one over
    everything without."""
    config: dict[str, Any] = {
        "model_type": "cohere2",
        "vocab_size": 11,
        "hidden_size": 8,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
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
    layers_of = analyze(model, batch=1, seq_len=4).layers
    sliding, turned = set(), set()
    for layer in (layer for layer in layers_of if ".layers." in layer.name):
        numbers = {int(n.split(".")[2]) for n in expanded(layer.name.split(" (")[0])}
        if "scaled_dot_product_attention" in layer.name and layer.spec.window is not None:
            sliding |= numbers
        if "(rotary)" in layer.name:
            turned |= numbers
    assert sliding == turned == {i for i, k in enumerate(kinds) if k == SLIDING}
    assert found.architecture.sliding_layers() == kinds.count(SLIDING)


#: Command R7B's sizes (CohereLabs/c4ai-command-r7b-12-2024's size fields; the rest at
#: Cohere2Config's defaults, which change no tensor)
COMMAND_R7B = {
    "model_type": "cohere2",
    "architectures": ["Cohere2ForCausalLM"],
    "vocab_size": 256000,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "sliding_window": 4096,
    "sliding_window_pattern": 4,
}


def test_published_sizes_count_exactly(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(COMMAND_R7B))
    result = run(["hf", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"] == 8_028_033_024
    found = hf_model(COMMAND_R7B)
    theirs = built(COMMAND_R7B)
    assert found.model().named_parameters() == params(theirs)
    assert sum(p.numel() for p in theirs.parameters()) == 8_028_033_024
    assert found.architecture.sliding_layers() == 24 == layer_kinds(theirs).count(SLIDING)


@settings(max_examples=6, deadline=None)
@given(config=small_configs("cohere2"))
def test_the_cache_is_what_transformers_keeps(config: dict[str, Any]) -> None:
    check_cache(config)


@pytest.mark.parametrize("every", [2, 4])
def test_every_module_flops_equal_flop_counter_mode(every: int) -> None:
    check_flops(
        {
            "model_type": "cohere2",
            "vocab_size": 40,
            "hidden_size": 16,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 24,
            "sliding_window": 4,
            "sliding_window_pattern": every,
            "tie_word_embeddings": every == 4,
        }
    )


def test_kept_tensors_equal_autograd_on_the_built_model() -> None:
    from shapecalc.adapters.torch_bridge import build
    from tests.measure import kept_bytes

    model = cohere2(vocab=40, hidden=16, layers=4, heads=4, kv_heads=2, sliding_window=4)
    module = build(model, device="cpu")
    for p in module.parameters():
        if p.dim() > 1:
            p.data.normal_(0, 0.02)
    cost = analyze(model, batch=2, seq_len=9)
    assert kept_bytes(module, [torch.randint(2, 40, (2, 9))]) == cost.activation_bytes


EXAMPLE = Cohere2.example.split()


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_at_80_and_200_columns(width: int) -> None:
    result = run(["cohere2", *EXAMPLE, "--memory", "--seq-len", "16384", "--explain"], width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.stdout.splitlines())
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "model.layers.{3,7..31}.self_attn.q_proj.weight" in text
    assert "8,028,033,024" in text
    assert "24 of the 32 layers attend over the last W = 4,096 tokens" in text
    assert "without any position information" in text


def test_verify_against_transformers() -> None:
    small = ["--vocab", "50", "--hidden", "32", "--layers", "5", "--heads", "4"]
    for extra, cls in [
        ([], "Cohere2ForCausalLM"),
        (["--head", "none", "--layer-types", "sliding_attention,full_attention"], "Cohere2Model"),
    ]:
        result = run(["cohere2", *small, "--kv-heads", "2", *extra, "--verify"])
        assert result.exit_code == 0, result.output
        assert "Verified against transformers" in result.stderr and cls in result.stderr


BASE = ["cohere2", "--vocab", "50", "--hidden", "32", "--layers", "4", "--heads", "4"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sliding-window", "0"], "--sliding-window"),
        (["--sliding-window", "-3"], "--sliding-window"),
        (["--layer-types", "full_attention*5"], "--layer-types"),
        (["--layer-types", "global"], "--layer-types"),
        (["--kv-heads", "3"], "--kv-heads"),
        (["--heads", "3"], "--heads"),
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
        ({"sliding_window": 0}, "sliding_window"),
        ({"layer_types": [SLIDING] * 31}, "layer_types"),
        ({"layer_types": [SLIDING] * 31 + ["mamba2"]}, "layer_types"),
        ({"sliding_window_pattern": -1}, "sliding_window_pattern"),
        ({"num_key_value_heads": 5}, "num_key_value_heads"),
    ],
)
def test_a_wrong_config_is_one_line(change: dict[str, Any], field: str, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**COMMAND_R7B, **change}))
    result = run(["hf", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert field in result.stderr


def test_library_errors_name_the_field() -> None:
    with pytest.raises(ShapecalcError) as err:
        cohere2(vocab=50, hidden=32, layers=2, heads=4, layer_types=(FULL,) * 3)
    assert err.value.field == "layer_types"
    with pytest.raises(ShapecalcError) as err:
        cohere2(vocab=50, hidden=32, layers=2, heads=4, sliding_window=0)
    assert err.value.field == "sliding_window"
