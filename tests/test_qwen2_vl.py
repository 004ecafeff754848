"""Qwen2-VL and Qwen2.5-VL, models made of several (shapecalc/architectures/qwen2_vl.py on
_composite.py): every name, shape and count against transformers' classes built on the
meta device from the same config (published sizes, drawn tiny configs), each part's count,
and the refusals of a config whose parts cannot be counted, in one line.

The published configs are written from transformers' config classes (Qwen2VLConfig,
Qwen2_5_VLConfig: their docstrings name Qwen/Qwen2-VL-7B-Instruct and
Qwen/Qwen2.5-VL-7B-Instruct, their defaults are that checkpoint's vision tower) with the
7B language model's sizes; Qwen2-VL's file keeps its text fields at the top level, as the
Hub's does (Qwen2VLConfig.__post_init__ reads them from there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc.adapters.hf_config import from_hf_config, hf_model
from shapecalc.core.errors import InvalidArgumentError
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

TEXT_7B = {
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_window_layers": 28,
    "rope_theta": 1000000.0,
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "use_sliding_window": False,
    "sliding_window": 32768,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-06,
    "max_position_embeddings": 128000,
}
QWEN2_VL_7B: dict[str, Any] = {
    "architectures": ["Qwen2VLForConditionalGeneration"],
    "model_type": "qwen2_vl",
    "tie_word_embeddings": False,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "torch_dtype": "bfloat16",
    **TEXT_7B,
    "vision_config": {
        "depth": 32,
        "embed_dim": 1280,
        "mlp_ratio": 4,
        "num_heads": 16,
        "in_chans": 3,
        "hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    },
}
QWEN2_5_VL_7B: dict[str, Any] = {
    "architectures": ["Qwen2_5_VLForConditionalGeneration"],
    "model_type": "qwen2_5_vl",
    "tie_word_embeddings": False,
    "text_config": {"model_type": "qwen2_5_vl_text", **TEXT_7B},
    "vision_config": {
        "model_type": "qwen2_5_vl",
        "depth": 32,
        "hidden_act": "silu",
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "in_chans": 3,
        "out_hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "tokens_per_second": 2,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
    },
}


def built(config: dict[str, Any], class_name: str) -> Any:
    """transformers' class from the config dict, on the meta device."""
    model_type = config["model_type"]
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    made = transformers.AutoConfig.for_model(model_type, **fields)
    with torch.device("meta"):
        return getattr(transformers, class_name)(made)


def tensors(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


@pytest.mark.parametrize(
    ("config", "total", "tower"),
    [(QWEN2_VL_7B, 8_291_375_616, 675_759_104), (QWEN2_5_VL_7B, 8_292_166_656, 676_550_144)],
)
def test_published_configs_are_counted_as_transformers_builds_them(
    config: dict[str, Any], total: int, tower: int
) -> None:
    model = from_hf_config(config)
    module = built(config, config["architectures"][0])
    assert model.named_parameters() == tensors(module)
    assert model.total == sum(p.numel() for p in module.parameters()) == total
    # each part counted, and the parts sum to the total
    assert model.subtotal("model.visual") == tower
    visual = sum(p.numel() for p in module.model.visual.parameters())
    language = sum(p.numel() for p in module.model.language_model.parameters())
    assert (visual, language) == (tower, model.subtotal("model.language_model"))
    assert visual + language + module.lm_head.weight.numel() == total
    assert model.notes[0] == (
        f"model.visual (the vision transformer, vision_config): {tower:,} parameters"
    )


@settings(max_examples=6, deadline=None)
@given(
    version=st.sampled_from(["2", "2.5"]),
    hidden=st.sampled_from([8, 16, 24]),
    heads=st.sampled_from([1, 2, 4]),
    vision=st.sampled_from([4, 6, 8]),
    vision_heads=st.sampled_from([1, 2]),
    ratio=st.integers(1, 3),
    merge=st.integers(1, 3),
    tie=st.booleans(),
    head=st.sampled_from(["lm", "none"]),
)
def test_drawn_models_equal_transformers(
    version: str,
    hidden: int,
    heads: int,
    vision: int,
    vision_heads: int,
    ratio: int,
    merge: int,
    tie: bool,
    head: str,
) -> None:
    heads = heads if (hidden // heads) % 2 == 0 else 1
    model = shapecalc.qwen2_vl(
        version=version,
        vocab=11,
        hidden=hidden,
        layers=2,
        heads=heads,
        intermediate=3 * hidden,
        vision_hidden=vision,
        vision_layers=3,
        vision_heads=vision_heads,
        vision_intermediate=ratio * vision,
        merge_size=merge,
        patch_size=2,
        temporal_patch=1,
        tie_weights=tie,
        fullatt_blocks=(0, 2) if version == "2.5" else (),
        head=head,
    )
    reference = model.config.reference()
    config = getattr(transformers, reference.config_class)(**reference.config)
    with torch.device("meta"):
        module = getattr(transformers, reference.model)(config)
    assert model.named_parameters() == tensors(module)
    assert model.total == sum(p.numel() for p in module.parameters())
    # the same config through the reader: the same model
    written = {"model_type": {"2": "qwen2_vl", "2.5": "qwen2_5_vl"}[version], **reference.config}
    assert from_hf_config(written, class_name=reference.model).named_parameters() == (
        model.named_parameters()
    )


TEXT = {"model_type": "qwen2_5_vl_text", **TEXT_7B}


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"model_type": "qwen2_5_vl"}, "text_config", "text_config is missing"),
        (
            {"model_type": "qwen2_vl", "vision_config": {}},
            "text_config",
            "no field of the language model (qwen2_vl_text) is at the top level",
        ),
        (
            {"model_type": "qwen2_5_vl", "text_config": {**TEXT, "model_type": "llama"}},
            "text_config.model_type",
            'model_type "llama" is not the language model shapecalc builds for qwen2_5_vl',
        ),
        (
            {
                "model_type": "qwen2_5_vl",
                "text_config": TEXT,
                "vision_config": {"model_type": "siglip_vision_model"},
            },
            "vision_config.model_type",
            "is not the vision transformer shapecalc builds for qwen2_5_vl",
        ),
        (
            {"model_type": "qwen2_5_vl", "text_config": TEXT, "vision_config": {"depth": 0}},
            "vision_config.depth",
            "vision_config: depth = 0",
        ),
        (
            {"model_type": "qwen2_5_vl", "text_config": {**TEXT, "num_attention_heads": 5}},
            "text_config.num_attention_heads",
            "text_config: num_attention_heads",
        ),
        (
            {"model_type": "qwen2_5_vl", "text_config": TEXT, "vision_config": {"extra": 1}},
            "vision_config.extra",
            'vision_config: field "extra" is not one shapecalc knows',
        ),
        (
            {"model_type": "qwen2_vl", "text_config": TEXT_7B, "vision_config": {"mlp_ratio": 0}},
            "vision_config.mlp_ratio",
            "mlp_ratio must be a positive number",
        ),
    ],
)
def test_a_part_that_cannot_be_counted_is_refused_by_name(
    config: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        hf_model(config).model()
    assert err.value.field == field
    assert words in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_reads_a_composite_config(tmp_path: Path, width: int) -> None:
    (tmp_path / "config.json").write_text(json.dumps(QWEN2_5_VL_7B))
    result = run(["hf", str(tmp_path)], width)
    assert result.exit_code == 0, result.output
    assert "8,292,166,656" in result.stdout
    assert "model.visual (the vision transformer, vision_config): 676,550,144" in " ".join(
        result.stdout.split()
    )
    assert max(len(line) for line in result.stdout.splitlines()) <= width
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    result = run(["hf", str(bad)], width)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "text_config" in result.stderr


FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode


@pytest.mark.parametrize(
    "sizes",
    [
        {"version": "2", "image_size": 16, "patch_size": 2, "merge_size": 2},
        {"version": "2", "image_size": 18, "patch_size": 3, "merge_size": 1, "temporal_patch": 1},
        {
            "version": "2.5",
            "image_size": 32,
            "window": 8,
            "patch_size": 2,
            "vision_intermediate": 40,
            "fullatt_blocks": (1, 3),
        },
        {"version": "2.5", "image_size": 24, "window": 12, "patch_size": 3, "merge_size": 2},
    ],
)
def test_the_cost_of_an_image_is_what_flop_counter_mode_counts(sizes: dict[str, Any]) -> None:
    """The vision transformer's matrix products on one image, against PyTorch's counter
    on transformers' tower run on CPU (its attention split by image, and by window in
    Qwen2.5-VL's windowed blocks), with the math kernel the counter sees."""
    import importlib
    import warnings

    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = shapecalc.qwen2_vl(
        vocab=10, hidden=16, layers=1, heads=2, intermediate=8, vision_hidden=16,
        vision_layers=4, vision_heads=2, **sizes,
    )  # fmt: skip
    c = model.config
    patches, flops = c.image_cost()
    reference = c.reference()
    config = getattr(transformers, reference.config_class)(**reference.config).vision_config
    module = importlib.import_module(
        "transformers.models.qwen2_vl.modeling_qwen2_vl"
        if c.version == "2"
        else "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl"
    )
    name = {"2": "Qwen2VisionTransformerPretrainedModel"}.get(
        c.version, "Qwen2_5_VisionTransformerPretrainedModel"
    )
    tower = getattr(module, name)._from_config(config, attn_implementation="sdpa").eval()
    side = c.image_size // c.patch_size
    pixels = torch.randn(patches, c.channels * c.temporal_patch * c.patch_size**2)
    with (
        torch.no_grad(),
        warnings.catch_warnings(),
        sdpa_kernel(SDPBackend.MATH),
        FlopCounterMode(display=False) as counter,
    ):
        warnings.simplefilter("ignore")
        out = tower(pixels, grid_thw=torch.tensor([[1, side, side]]))
    assert flops == counter.get_total_flops()
    assert out.pooler_output.shape == (patches // c.merge_size**2, c.merger_out)
    assert f"{flops:,} FLOPs" in " ".join(model.notes)


def test_an_image_that_does_not_tile_is_said_not_counted() -> None:
    model = shapecalc.qwen2_vl(
        vocab=10, hidden=16, layers=1, heads=2, intermediate=8, image_size=450
    )  # fmt: skip
    assert model.notes[-1] == (
        "no cost of an image: image_size 450 is not a multiple of patch_size · merge_size "
        "(28) (--image-size)"
    )


@pytest.mark.parametrize("old_names", [False, True])
def test_inspect_checks_a_download_against_its_config(tmp_path: Path, old_names: bool) -> None:
    """A small Qwen2.5-VL saved by transformers, which writes the names the Hub's files
    keep (``visual.…`` and ``model.layers.…``, renamed on load by transformers'
    conversion_mapping.py), and the same tensors under the class's own names."""
    from safetensors.torch import load_file, save_file

    from shapecalc.adapters.hf_checkpoint import check_folder

    model = shapecalc.qwen2_vl(
        version="2.5", vocab=20, hidden=16, layers=2, heads=2, intermediate=24,
        vision_hidden=8, vision_layers=2, vision_heads=2, vision_intermediate=12,
        fullatt_blocks=(1,),
    )  # fmt: skip
    reference = model.config.reference()
    config = getattr(transformers, reference.config_class)(**reference.config)
    module = getattr(transformers, reference.model)(config)
    folder = tmp_path / "qwen"
    module.save_pretrained(folder)
    path = folder / "model.safetensors"
    weights = load_file(str(path))
    assert "visual.merger.ln_q.weight" in weights and "model.norm.weight" in weights
    if not old_names:
        renamed = {
            (
                "model." + n
                if n.startswith("visual.")
                else n.replace("model.", "model.language_model.")
            ): w
            for n, w in weights.items()
        }
        assert "model.language_model.norm.weight" in renamed
        save_file(renamed, str(path), metadata={"format": "pt"})
    check = check_folder(str(folder))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    assert check.stored_total == check.expected_total == model.total
    assert bool(check.renamed) is old_names
    result = run(["inspect", str(folder)], 80)
    assert result.exit_code == 0, result.output
    assert "agrees with its config" in result.stdout
