"""A vision tower keeps no inference state: transformers passes no cache to SigLIP's,
CLIP's, Pixtral's or Qwen2.5-VL's encoder (SiglipEncoder.forward, CLIPEncoder.forward and
PixtralTransformer.forward take none), so a composite's cache after a real forward with
an image holds the language model's layers only."""

from __future__ import annotations

from typing import Any

import pytest

from shapecalc.adapters.hf_config import from_hf_config
from shapecalc.analysis.cost import analyze
from shapecalc.layers.functional import ScaledDotProductAttention
from tests.cache_truth import cache_layers

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

IMAGE = 5  # the image token's id in the tiny vocabularies below

GEMMA3: dict[str, Any] = {
    "model_type": "gemma3",
    "mm_tokens_per_image": 4,
    "image_token_index": IMAGE,
    "boi_token_index": 6,
    "eoi_token_index": 7,
    "text_config": {
        "vocab_size": 40,
        "hidden_size": 8,
        "intermediate_size": 12,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 4,
        "sliding_window": 3,
        "sliding_window_pattern": 2,
    },
    "vision_config": {
        "model_type": "siglip_vision_model",
        "hidden_size": 8,
        "intermediate_size": 12,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 8,
        "patch_size": 2,
        "vision_use_head": False,
    },
}
LLAVA: dict[str, Any] = {
    "model_type": "llava",
    "image_token_index": IMAGE,
    "text_config": {
        "model_type": "llama",
        "vocab_size": 40,
        "hidden_size": 8,
        "intermediate_size": 12,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
    },
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 8,
        "intermediate_size": 12,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "image_size": 8,
        "patch_size": 4,
    },
}


def _real(config: dict[str, Any], image_tokens: int, batch: int) -> list[int]:
    """The bytes per layer of the cache after a forward of ``batch`` prompts, each with
    one image among its tokens (the tower runs)."""
    torch.manual_seed(0)
    conf = transformers.AutoConfig.for_model(**config)
    conf._attn_implementation = "eager"
    name = {"gemma3": "Gemma3", "llava": "Llava"}[config["model_type"]]
    model = getattr(transformers, f"{name}ForConditionalGeneration")(conf).eval()
    ids = torch.tensor([[1, 2] + [IMAGE] * image_tokens + [3, 4]] * batch)
    side = config["vision_config"]["image_size"]
    extra: dict[str, Any] = {}
    if name == "Gemma3":
        extra["token_type_ids"] = (ids == IMAGE).long()
    with torch.no_grad():
        out = model(
            input_ids=ids, pixel_values=torch.randn(batch, 3, side, side), use_cache=True, **extra
        )
    cache = getattr(out, "cache", None) or out.past_key_values
    return cache_layers(cache)


@pytest.mark.parametrize(("config", "image_tokens"), [(GEMMA3, 4), (LLAVA, 4)])
@pytest.mark.parametrize("batch", [1, 2])
def test_a_composite_keeps_its_language_models_cache_only(
    config: dict[str, Any], image_tokens: int, batch: int
) -> None:
    real = _real(config, image_tokens, batch)
    cost = analyze(
        from_hf_config(config), batch=batch, seq_len=image_tokens + 4, dtype="fp32", training="none"
    )
    assert all(".language_model." in name for name, _ in cost.state)
    assert list(cost.state_per_layer().values()) == real
    assert cost.state_bytes == sum(real)


@pytest.mark.parametrize(
    ("config", "tower"),
    [
        (GEMMA3, "vision_tower"),
        (LLAVA, "vision_tower"),
        ({**GEMMA3["vision_config"]}, "encoder"),
        ({**LLAVA["vision_config"]}, "encoder"),
        (
            {
                "model_type": "pixtral",
                "hidden_size": 8,
                "intermediate_size": 12,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "head_dim": 4,
                "image_size": 8,
                "patch_size": 4,
            },
            "transformer",
        ),
    ],
)
def test_no_tower_layer_keeps_state(config: dict[str, Any], tower: str) -> None:
    """Every attention of a tower, run or not, keeps nothing for a next call."""
    cost = analyze(from_hf_config(config), batch=1, seq_len=4, dtype="fp32", training="none")
    assert not [name for name, _ in cost.state if tower in name]
    ran = [c.name for c in cost.layers if tower in c.name and "scaled_dot_product" in c.name]
    assert ran, "the tower's attention runs in the forward"


def test_causal_and_cross_attention_keep_their_cache_by_default() -> None:
    assert ScaledDotProductAttention(2, 2, 4).keeps_cache
    assert ScaledDotProductAttention(2, 2, 4, causal=False, cross=True).keeps_cache
    assert not ScaledDotProductAttention(2, 2, 4, causal=False).keeps_cache
    assert not ScaledDotProductAttention(2, 2, 4, cached=False).keeps_cache
