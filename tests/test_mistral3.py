"""Mistral 3 (shapecalc/architectures/mistral3.py on _composite.py, its vision tower
pixtral.py): the published sizes, the cost of an image and a saved checkpoint against
transformers run here, and the refusals of a config whose parts cannot be counted.

Mistral-Small-3.1-24B-Instruct-2503's config is written from Mistral3Config's own
sub-config defaults (its docstring names that checkpoint), the head untied.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

import shapecalc
from shapecalc.adapters.hf_config import from_hf_config, hf_model
from shapecalc.core.errors import InvalidArgumentError
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

TEXT = {
    "model_type": "mistral",
    "head_dim": 128,
    "hidden_size": 5120,
    "intermediate_size": 32768,
    "max_position_embeddings": 131072,
    "num_attention_heads": 32,
    "num_hidden_layers": 40,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 1000000000.0,
    "sliding_window": None,
    "vocab_size": 131072,
}
VISION = {
    "model_type": "pixtral",
    "intermediate_size": 4096,
    "hidden_size": 1024,
    "patch_size": 14,
    "image_size": 1540,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "head_dim": 64,
    "hidden_act": "gelu",
}
MISTRAL_SMALL_31: dict[str, Any] = {
    "architectures": ["Mistral3ForConditionalGeneration"],
    "model_type": "mistral3",
    "image_token_index": 10,
    "multimodal_projector_bias": False,
    "projector_hidden_act": "gelu",
    "spatial_merge_size": 2,
    "vision_feature_layer": -1,
    "tie_word_embeddings": False,
    "text_config": TEXT,
    "vision_config": VISION,
}


def test_the_published_config_is_counted_as_transformers_builds_it() -> None:
    model = from_hf_config(MISTRAL_SMALL_31)
    config = transformers.Mistral3Config(
        **{k: v for k, v in MISTRAL_SMALL_31.items() if k not in ("model_type", "architectures")}
    )
    with torch.device("meta"):
        module = transformers.Mistral3ForConditionalGeneration(config)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in module.named_parameters()]
    assert model.total == sum(p.numel() for p in module.parameters()) == 24_011_361_280
    for part in ("vision_tower", "multi_modal_projector", "language_model"):
        held = sum(p.numel() for p in getattr(module.model, part).parameters())
        assert model.subtotal(f"model.{part}") == held


@pytest.mark.parametrize(
    ("sizes", "side"),
    [
        ({"vision_patch_size": 2, "merge_size": 2}, 12),
        ({"vision_patch_size": 3, "merge_size": 1}, 9),
    ],
)
def test_the_cost_of_an_image_is_what_flop_counter_mode_counts(
    sizes: dict[str, Any], side: int
) -> None:
    """The vision encoder and the projector on one image, against PyTorch's counter on
    transformers' Mistral3Model.get_image_features run on CPU (the math kernel)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model = shapecalc.mistral3(
        vocab=50, hidden=16, layers=1, heads=2, intermediate=24, vision_hidden=8,
        vision_layers=2, vision_heads=2, vision_intermediate=12, vision_image_size=side,
        **sizes,
    )  # fmt: skip
    tokens, flops = model.config.image_cost()
    reference = model.config.reference()
    config = transformers.Mistral3Config(**reference.config)
    module = transformers.Mistral3Model._from_config(config, attn_implementation="sdpa").eval()
    with (
        torch.no_grad(),
        warnings.catch_warnings(),
        sdpa_kernel(SDPBackend.MATH),
        FlopCounterMode(display=False) as counter,
    ):
        warnings.simplefilter("ignore")
        out = module.get_image_features(
            torch.randn(1, 3, side, side), image_sizes=torch.tensor([[side, side]])
        )
    assert flops == counter.get_total_flops()
    assert out.pooler_output[0].shape == (tokens, 16)
    assert f"{flops:,} FLOPs" in " ".join(model.notes)


def test_inspect_reads_the_names_transformers_saves(tmp_path: Path) -> None:
    """transformers saves Mistral 3 as LLaVA's files were (language_model.model.…,
    language_model.lm_head), renamed on load (conversion_mapping.py)."""
    from safetensors.torch import load_file

    from shapecalc.adapters.hf_checkpoint import check_folder

    model = shapecalc.mistral3(
        vocab=50, hidden=16, layers=1, heads=2, intermediate=24, vision_hidden=8,
        vision_layers=1, vision_heads=2, vision_intermediate=12, tie_weights=False,
    )  # fmt: skip
    reference = model.config.reference()
    module = transformers.Mistral3ForConditionalGeneration(
        transformers.Mistral3Config(**reference.config)
    )
    module.save_pretrained(tmp_path)
    assert "language_model.lm_head.weight" in load_file(str(tmp_path / "model.safetensors"))
    check = check_folder(str(tmp_path))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    assert check.stored_total == model.total and check.renamed
    result = run(["inspect", str(tmp_path)], 80)
    assert result.exit_code == 0 and "agrees with its config" in result.stdout


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"model_type": "mistral3"}, "text_config", "text_config is missing"),
        (
            {
                "model_type": "mistral3",
                "text_config": TEXT,
                "vision_config": {"model_type": "clip"},
            },
            "vision_config.model_type",
            'vision_config: model_type "clip" is not the vision encoder shapecalc builds for '
            "mistral3 (it builds pixtral)",
        ),
        (
            {"model_type": "mistral3", "text_config": {**TEXT, "model_type": "gemma"}},
            "text_config.model_type",
            "(it builds mistral, llama)",
        ),
        (
            {
                "model_type": "mistral3",
                "text_config": {**TEXT, "model_type": "llama", "attention_bias": True},
            },
            "attention_bias",
            'text_config: attention_bias = "all" is not modelled in mistral3\'s llama part',
        ),
        (
            {"model_type": "mistral3", "text_config": TEXT, "vision_config": {"hidden_size": 0}},
            "vision_config.hidden_size",
            "vision_config: hidden_size = 0",
        ),
        (
            {"model_type": "mistral3", "text_config": TEXT, "vision_feature_layer": "x"},
            "vision_feature_layer",
            "vision_feature_layer must be a layer index or a list of them",
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


def test_the_text_type_is_the_one_read() -> None:
    model = hf_model({"model_type": "mistral3", "text_config": {**TEXT, "model_type": "llama"}})
    assert model.architecture.text_type == "llama"  # type: ignore[attr-defined]
