"""Published configs' fields that change no shape are accepted, and the advice to allow
an unknown field works for a part's field (``--allow-field vision_config.FIELD``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shapecalc.adapters.hf_config import hf_model
from shapecalc.core.errors import InvalidArgumentError
from tests.test_cli import run
from tests.test_qwen2_vl import QWEN2_5_VL_7B, built, tensors

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

#: Qwen/Qwen2.5-VL-7B-Instruct's vision_config has spatial_patch_size 14 beside
#: patch_size; Qwen2_5_VLVisionConfig declares no such field and modeling_qwen2_5_vl.py
#: never reads it
PUBLISHED = {
    **QWEN2_5_VL_7B,
    "vision_config": {**QWEN2_5_VL_7B["vision_config"], "spatial_patch_size": 14},
}


@pytest.mark.parametrize("spatial", [14, 7, 1])
def test_spatial_patch_size_changes_no_tensor(spatial: int) -> None:
    config = {**PUBLISHED, "vision_config": {**PUBLISHED["vision_config"]}}
    config["vision_config"]["spatial_patch_size"] = spatial
    ours = hf_model(config).model()
    real = tensors(built(config, "Qwen2_5_VLForConditionalGeneration"))
    assert ours.total == sum(torch.Size(s).numel() for _, s in real)
    assert ours.total == hf_model(QWEN2_5_VL_7B).model().total


def unknown_nested() -> dict[str, Any]:
    return {**PUBLISHED, "vision_config": {**PUBLISHED["vision_config"], "patch_merge": 2}}


def test_the_advice_names_the_parts_field_and_it_works(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        hf_model(unknown_nested())
    assert err.value.field == "vision_config.patch_merge"
    assert "--allow-field vision_config.patch_merge counts" in err.value.message
    path = tmp_path / "config.json"
    path.write_text(json.dumps(unknown_nested()))
    refused = run(["hf", str(path)], 200)
    assert refused.exit_code == 2
    assert "--allow-field vision_config.patch_merge counts" in refused.stderr
    allowed = run(["hf", str(path), "--allow-field", "vision_config.patch_merge"], 200)
    assert allowed.exit_code == 0, allowed.output
    assert hf_model(unknown_nested(), allow=["vision_config.patch_merge"]).model().total == (
        hf_model(PUBLISHED).model().total
    )
    absent = run(["hf", str(path), "--allow-field", "vision_config.nothing"], 200)
    assert absent.exit_code == 2
    assert 'no field "vision_config.nothing"' in absent.stderr


def test_a_text_parts_field_is_allowed_dotted() -> None:
    config = {**PUBLISHED, "text_config": {**PUBLISHED["text_config"], "odd_size": 3}}
    with pytest.raises(InvalidArgumentError) as err:
        hf_model(config)
    assert "--allow-field text_config.odd_size counts" in err.value.message
    assert hf_model(config, allow=["text_config.odd_size"]).model().total == (
        hf_model(PUBLISHED).model().total
    )


BART_LARGE: dict[str, Any] = {
    "model_type": "bart",
    "architectures": ["BartModel"],
    "vocab_size": 60,
    "d_model": 16,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 24,
    "decoder_ffn_dim": 24,
    "max_position_embeddings": 32,
}


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5])
def test_bart_large_classif_dropout_is_a_rate(rate: float) -> None:
    """facebook/bart-large's config says classif_dropout (an old name of a dropout rate):
    BartConfig declares none and transformers builds the same tensors with it."""
    config = {**BART_LARGE, "classif_dropout": rate}
    ours = hf_model(config).model()
    assert ours.total == sum(torch.Size(s).numel() for _, s in tensors(built(config, "BartModel")))
    assert ours.total == hf_model(BART_LARGE).model().total
