"""LLaVA and LLaVA-NeXT with the language models of other types (transformers' LlavaModel
builds any text_config with AutoModel.from_config): llava-hf/llava-v1.6-mistral-7b-hf's
mistral, llava-interleave-qwen's qwen2, and gemma, qwen3, gemma2 and phi3, each built by
the family the registry gives its type with the fields the type fixes; every name, shape
and the total against transformers' classes on the meta device, the language model's
count in the notes; a type no family here builds refused in one line naming the part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.architectures.llava import TEXT_TYPES
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

VISION = {
    "model_type": "clip_vision_model",
    "hidden_size": 8,
    "intermediate_size": 12,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 28,
    "patch_size": 14,
}


def _theirs(config: dict[str, Any], class_name: str) -> Any:
    prefix = "LlavaNext" if config["model_type"] == "llava_next" else "Llava"
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    with torch.device("meta"):
        return getattr(transformers, class_name)(getattr(transformers, f"{prefix}Config")(**fields))


@settings(max_examples=14, deadline=None)
@given(
    text_type=st.sampled_from(TEXT_TYPES),
    variant=st.sampled_from(
        [
            ("llava", "LlavaForConditionalGeneration"),
            ("llava_next", "LlavaNextForConditionalGeneration"),
            ("llava", "LlavaModel"),
        ]
    ),
    heads=st.integers(1, 3),
    kv=st.booleans(),
    layers=st.integers(1, 2),
    tie=st.sampled_from([None, True, False]),
)
def test_each_text_type_equals_transformers(
    text_type: str, variant: tuple[str, str], heads: int, kv: bool, layers: int, tie: Any
) -> None:
    model_type, class_name = variant
    text: dict[str, Any] = {
        "model_type": text_type,
        "vocab_size": 40,
        "hidden_size": 8 * heads,
        "intermediate_size": 20,
        "num_hidden_layers": layers,
        "num_attention_heads": 2 * heads,
        "num_key_value_heads": heads if kv else 2 * heads,
        "pad_token_id": 0,  # Phi-3's default, 32000, is no token of 40
    }
    if tie is not None:
        text["tie_word_embeddings"] = tie
    config = {
        "model_type": model_type,
        "architectures": [class_name],
        "text_config": text,
        "vision_config": VISION,
    }
    found = hf_model(config)
    model = found.model()
    theirs = _theirs(config, class_name)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert model.total == sum(p.numel() for p in theirs.parameters())
    body = theirs.model if class_name.endswith("Generation") else theirs
    count = sum(p.numel() for p in body.language_model.parameters())
    assert any("language_model (" in n and f"{count:,}" in n for n in model.notes)
    assert found.architecture.arguments()["text_type"] == text_type


def test_the_command_builds_qwen2_s_biases_and_says_when_they_are_missing() -> None:
    args = ["llava", "--vocab", "40", "--hidden", "16", "--layers", "1", "--heads", "2"]
    args += ["--intermediate", "20", "--text-type", "qwen2"]
    refused = run(args, 80)
    assert refused.exit_code == 2
    assert "attention_bias must be 'qkv' for text_type qwen2" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    for width in (80, 200):
        built = run([*args, "--attention-bias", "qkv", "--format", "json"], width)
        assert built.exit_code == 0, built.output
        assert "model.language_model.layers.0.self_attn.q_proj.bias" in built.stdout
        assert "model.language_model.layers.0.self_attn.o_proj.bias" not in built.stdout


@pytest.mark.parametrize("text_type", ["gpt2", "granite", "t5"])
def test_a_text_type_llava_does_not_build_is_one_line(text_type: str, tmp_path: Path) -> None:
    import json

    config = {"model_type": "llava", "text_config": {"model_type": text_type}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path)], 80)
    assert result.exit_code == 2
    line = result.output.strip()
    assert len(line.splitlines()) == 1 or len(" ".join(line.split())) <= 400
    words = " ".join(line.split())
    assert f'text_config: model_type "{text_type}" is not a language model' in words
    assert "mistral" in words and "qwen2" in words


@settings(max_examples=4, deadline=None)
@given(
    text_type=st.sampled_from(["llama", "mistral", "qwen2", "gemma"]),
    layers=st.integers(1, 2),
    feature=st.sampled_from([-1, -2, [-2, -1], [-3, -1, -2]]),
    extra=st.integers(0, 4),
)
def test_each_part_s_flops_equal_flop_counter_mode(
    text_type: str, layers: int, feature: Any, extra: int
) -> None:
    """One forward of an image and its prompt on the CPU: the vision tower's, the
    language model's and the head's FLOPs as FlopCounterMode counts them module by
    module; the projector's on the tower's every token, its class token too, which
    transformers' default vision_feature_select_strategy drops: one token's more."""
    from torch.utils.flop_counter import FlopCounterMode

    image_tokens = 4  # (28 / 14)²
    text = {
        "model_type": text_type,
        "vocab_size": 40,
        "hidden_size": 16,
        "intermediate_size": 20,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "pad_token_id": 0,
    }
    config = {
        "model_type": "llava",
        "text_config": text,
        "vision_config": VISION,
        "image_token_index": 3,
        "vision_feature_layer": feature,
    }
    model = hf_model(config).model()
    seq = image_tokens + extra + 1
    cost = analyze(model, batch=1, seq_len=seq, training="none")
    mine: dict[str, int] = {}
    for row in cost.layers:
        part = ".".join(row.name.split(" ")[0].split(".")[:2])
        mine[part] = mine.get(part, 0) + 2 * row.macs
    fields = {k: v for k, v in config.items() if k != "model_type"}
    theirs = transformers.LlavaForConditionalGeneration._from_config(
        transformers.LlavaConfig(**fields), attn_implementation="eager"
    ).eval()
    ids = torch.tensor([[1, *[3] * image_tokens, *[5] * extra]])
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        theirs(input_ids=ids, pixel_values=torch.randn(1, 3, 28, 28))
    counts = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    top = "LlavaForConditionalGeneration"
    for part in ("model.vision_tower", "model.language_model", "lm_head"):
        assert mine[part] == counts[f"{top}.{part}"], part
    width = 8 * (len(feature) if isinstance(feature, list) else 1)  # the layers side by side
    one_token = 2 * (width * 16 + 16 * 16)  # linear_1 (F·W to H) and linear_2 (H to H)
    assert (
        mine["model.multi_modal_projector"]
        == counts[f"{top}.model.multi_modal_projector"] + one_token
    )
