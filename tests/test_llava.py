"""LLaVA and LLaVA-NeXT: llava-hf/llava-1.5-7b-hf counted exactly against transformers'
class built on the meta device (every name, shape, the total, each part's count); which
tie each type takes; a nested config of a type not built refused in one line naming the
part and the type, never a partial total. Drawn configs of both types are
tests/test_hf.py's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shapecalc.adapters.hf_config import hf_model
from shapecalc.core.errors import InvalidArgumentError
from tests.test_cli import run
from tests.twins import hf

torch = pytest.importorskip("torch")
t = hf()

#: llava-hf/llava-1.5-7b-hf's config.json (its vision_config left to LlavaConfig's own:
#: CLIP ViT-L/14 at 336 pixels)
LLAVA_15_7B = {
    "model_type": "llava",
    "architectures": ["LlavaForConditionalGeneration"],
    "image_token_index": 32000,
    "projector_hidden_act": "gelu",
    "vision_feature_layer": -2,
    "vision_feature_select_strategy": "default",
    "text_config": {
        "model_type": "llama",
        "vocab_size": 32064,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
    },
}


def params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


def built(config: dict[str, Any], class_name: str) -> Any:
    prefix = "LlavaNext" if config["model_type"] == "llava_next" else "Llava"
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    with torch.device("meta"):
        return getattr(t, class_name)(getattr(t, f"{prefix}Config")(**fields))


def test_llava_15_7b_counts_exactly(tmp_path: Path) -> None:
    found = hf_model(LLAVA_15_7B)
    model = found.model()
    theirs = built(LLAVA_15_7B, "LlavaForConditionalGeneration")
    assert model.named_parameters() == params(theirs)
    assert model.total == sum(p.numel() for p in theirs.parameters()) == 7_063_427_072
    for part in ("vision_tower", "multi_modal_projector", "language_model"):
        count = sum(p.numel() for p in getattr(theirs.model, part).parameters())
        assert any(n.startswith(f"model.{part} ") and f"{count:,}" in n for n in model.notes)
    (tmp_path / "config.json").write_text(json.dumps(LLAVA_15_7B))
    result = run(["hf", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"] == 7_063_427_072
    shown = run(["hf", str(tmp_path)], 80)
    assert shown.exit_code == 0, shown.output
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80


SMALL = {
    "text_config": {
        "model_type": "llama",
        "vocab_size": 40,
        "hidden_size": 8,
        "intermediate_size": 12,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "tie_word_embeddings": True,
    },
    "vision_config": {
        "hidden_size": 8,
        "intermediate_size": 12,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 8,
        "patch_size": 4,
    },
    "vision_feature_layer": [-2, -1],
    "multimodal_projector_bias": False,
}


@pytest.mark.parametrize(
    ("model_type", "class_name"),
    [
        ("llava", "LlavaForConditionalGeneration"),
        ("llava", "LlavaModel"),
        ("llava_next", "LlavaNextForConditionalGeneration"),
        ("llava_next", "LlavaNextModel"),
    ],
)
def test_the_text_configs_tie_counts_for_llava_only(model_type: str, class_name: str) -> None:
    """LlavaConfig ties the head when its text_config does; LlavaNextConfig does not."""
    config = {"model_type": model_type, "architectures": [class_name], **SMALL}
    model = hf_model(config).model()
    theirs = built(config, class_name)
    assert model.named_parameters() == params(theirs)
    assert model.total == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {"text_config": {"model_type": "gpt_neox"}},
            'config: text_config: model_type "gpt_neox" is not a language model',
        ),
        (
            {"vision_config": {"model_type": "siglip_vision_model"}},
            'config: vision_config: model_type "siglip_vision_model" is not a vision tower',
        ),
        (
            {"text_config": {"model_type": "llama", "qk_norm": True}},
            'config: text_config: field "qk_norm"',
        ),
        (
            {"text_config": {"model_type": "llama", "partial_rotary_factor": 0.5}},
            "text_config: rotary_pct = 0.5 is not modelled",
        ),
        ({"vision_feature_layer": "last"}, "vision_feature_layer must be an integer or a list"),
    ],
)
def test_a_part_we_do_not_build_is_one_line(
    change: dict[str, Any], words: str, tmp_path: Path
) -> None:
    config = {"model_type": "llava", **change}
    with pytest.raises(InvalidArgumentError) as err:
        hf_model(config)
    assert words in str(err.value)
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "parameters" not in result.output
