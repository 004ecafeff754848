"""CLIP and SigLIP: their published configs counted exactly against transformers' classes
built on the meta device (every name, shape and the total, through the library and the
command), the towers' FLOPs per image and per text against FlopCounterMode on an eager
forward of drawn tiny towers (and shapecalc's own torch build running the same input), and
a nested config that names another type refused in one line naming the part. Drawn
configs of the six model types are tests/test_hf.py's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.model import Model
from tests.test_cli import run
from tests.twins import hf

torch = pytest.importorskip("torch")
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode
t = hf()

#: openai/clip-vit-large-patch14-336's sizes (its config.json's size fields; the rest at
#: CLIPConfig's defaults, which change no tensor)
CLIP_L14_336 = {
    "model_type": "clip",
    "architectures": ["CLIPModel"],
    "projection_dim": 768,
    "text_config": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "projection_dim": 768,
    },
    "vision_config": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_attention_heads": 16,
        "num_hidden_layers": 24,
        "image_size": 336,
        "patch_size": 14,
        "projection_dim": 768,
    },
}
#: google/siglip-so400m-patch14-384's sizes
SIGLIP_SO400M = {
    "model_type": "siglip",
    "architectures": ["SiglipModel"],
    "text_config": {
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_attention_heads": 16,
        "num_hidden_layers": 27,
        "max_position_embeddings": 64,
        "vocab_size": 32000,
    },
    "vision_config": {
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_attention_heads": 16,
        "num_hidden_layers": 27,
        "image_size": 384,
        "patch_size": 14,
    },
}
#: openai/clip-vit-base-patch32 and google/siglip-base-patch16-224 are their config
#: classes' defaults
PUBLISHED = [
    ({"model_type": "clip", "architectures": ["CLIPModel"]}, "CLIPConfig", 151_277_313),
    (CLIP_L14_336, "CLIPConfig", 427_944_193),
    ({"model_type": "siglip", "architectures": ["SiglipModel"]}, "SiglipConfig", 203_155_970),
    (SIGLIP_SO400M, "SiglipConfig", 877_960_498),
]


def params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


def built(config: dict[str, Any], config_class: str) -> Any:
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    with torch.device("meta"):
        return getattr(t, config["architectures"][0])(getattr(t, config_class)(**fields))


@pytest.mark.parametrize(("config", "config_class", "total"), PUBLISHED)
def test_published_configs_count_exactly(
    config: dict[str, Any], config_class: str, total: int, tmp_path: Path
) -> None:
    model = hf_model(config).model()
    theirs = built(config, config_class)
    assert model.named_parameters() == params(theirs)
    assert model.total == sum(p.numel() for p in theirs.parameters()) == total
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"] == total
    for width in (80, 200):  # the table fits the terminal, the towers' counts said
        shown = run(["hf", str(tmp_path)], width)
        assert shown.exit_code == 0, shown.output
        assert max(len(line) for line in shown.stdout.splitlines()) <= width
        assert "vision_model:" in " ".join(shown.stdout.split())


# -- FLOPs of tiny towers against FlopCounterMode ------------------------------------------
@st.composite
def towers(draw: st.DrawFn) -> dict[str, Any]:
    heads = draw(st.integers(1, 4))
    patch = draw(st.integers(1, 6))
    return {
        "family": draw(st.sampled_from(["CLIP", "Siglip"])),
        "hidden_size": heads * draw(st.integers(1, 6)),
        "num_attention_heads": heads,
        "num_hidden_layers": draw(st.integers(1, 3)),
        "intermediate_size": draw(st.integers(1, 20)),
        "patch_size": patch,
        "image_size": patch * draw(st.integers(1, 4)) + draw(st.integers(0, patch - 1)),
        "num_channels": draw(st.integers(1, 3)),
    }


def _flops(module: Any, *inputs: Any) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return int(counter.get_total_flops())


@settings(max_examples=6, deadline=None)
@given(sizes=towers(), batch=st.integers(1, 2))
def test_vision_tower_flops_per_image_equal_flop_counter_mode(
    sizes: dict[str, Any], batch: int
) -> None:
    family = sizes.pop("family")
    config = {"model_type": f"{family.lower()}_vision_model", **sizes}
    model = hf_model(config).model()
    fields = {k: v for k, v in config.items() if k != "model_type"}
    theirs = getattr(t, f"{family}VisionModel")(
        getattr(t, f"{family}VisionConfig")(**fields, attn_implementation="eager")
    ).eval()
    side, channels = sizes["image_size"], sizes["num_channels"]
    pixels = torch.randn(batch, channels, side, side)
    cost = analyze(model, batch=batch)
    assert 2 * cost.macs == _flops(theirs, pixels)
    per_image = 2 * analyze(model, batch=1).macs
    assert 2 * cost.macs == batch * per_image
    from shapecalc.adapters.torch_build import build

    ours = build(model, "cpu").eval()  # shapecalc's own module runs the same image
    with torch.no_grad():
        out = ours(pixels)
    assert tuple(out.shape) == (batch, sizes["hidden_size"])


@settings(max_examples=4, deadline=None)
@given(sizes=towers(), seq=st.integers(1, 6))
def test_text_tower_flops_equal_flop_counter_mode(sizes: dict[str, Any], seq: int) -> None:
    family = sizes.pop("family")
    config = {
        "model_type": f"{family.lower()}_text_model",
        "vocab_size": 30,
        "max_position_embeddings": 8,
        "hidden_size": sizes["hidden_size"],
        "num_attention_heads": sizes["num_attention_heads"],
        "num_hidden_layers": sizes["num_hidden_layers"],
        "intermediate_size": sizes["intermediate_size"],
        "eos_token_id": 2,
        "bos_token_id": 1,
    }
    model = hf_model(config).model()
    fields = {k: v for k, v in config.items() if k != "model_type"}
    theirs = getattr(t, f"{family}TextModel")(
        getattr(t, f"{family}TextConfig")(**fields, attn_implementation="eager")
    ).eval()
    ids = torch.randint(3, 30, (2, seq))
    assert 2 * analyze(model, batch=2, seq_len=seq).macs == _flops(theirs, ids)


def test_the_whole_model_counts_each_tower_as_its_own_class() -> None:
    """CLIPModel's towers are CLIPTextModel and CLIPVisionModel, counted in the notes."""
    model = hf_model(CLIP_L14_336).model()
    text = hf_model({"model_type": "clip_text_model", **CLIP_L14_336["text_config"]}).model()
    vision = hf_model({"model_type": "clip_vision_model", **CLIP_L14_336["vision_config"]}).model()
    assert f"text_model: {text.total:,} parameters" in model.notes
    assert f"vision_model: {vision.total:,} parameters" in model.notes
    assert model.total == text.total + vision.total + (768 + 1024) * 768 + 1


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {"vision_config": {"model_type": "siglip_vision_model"}},
            'config: vision_config: model_type "siglip_vision_model" is not a vision tower',
        ),
        ({"text_config": [1]}, "config: text_config = [1]: text_config must be an object"),
        (
            {"vision_config": {"hidden_size": 30, "num_attention_heads": 4}},
            "config: vision_config: num_attention_heads = 4: vision_heads must divide",
        ),
        (
            {"vision_config": {"image_size": 8, "patch_size": 16}},
            "config: vision_config: patch_size = 16: patch_size must be at most image_size",
        ),
        ({"text_config": {"rope_theta": 3}}, 'config: text_config: field "rope_theta"'),
    ],
)
def test_a_bad_nested_config_is_one_line_naming_the_part(
    change: dict[str, Any], words: str, tmp_path: Path
) -> None:
    config = {"model_type": "clip", **change}
    with pytest.raises(InvalidArgumentError) as err:
        hf_model(config)
    assert words in str(err.value)
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 2  # the message, wrapped once at most


def test_the_model_runs_in_shapecalcs_own_torch_build() -> None:
    """The whole model's flow: each tower on its own input, each into its projection."""
    from shapecalc.adapters.torch_build import build
    from shapecalc.architectures.clip import clip

    model: Model = clip(
        vocab=20,
        hidden=8,
        layers=1,
        heads=2,
        intermediate=12,
        context=6,
        vision_hidden=8,
        vision_layers=1,
        vision_heads=2,
        vision_intermediate=12,
        image_size=8,
        patch_size=4,
        projection=5,
    )
    module = build(model, "cpu").eval()
    with torch.no_grad():
        text, image = module(torch.randint(0, 20, (3, 6)), torch.randn(2, 3, 8, 8))
    assert tuple(text.shape) == (3, 5) and tuple(image.shape) == (2, 5)
