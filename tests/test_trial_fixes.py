"""What a newcomer's trial found: each message or count as it should read."""

from __future__ import annotations

from pathlib import Path

import pytest

from shapecalc.adapters.checkpoint import CheckpointError, read_checkpoint
from shapecalc.adapters.hf_config import hf_model


def test_a_gguf_given_as_a_checkpoint_points_to_inspect(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + bytes(16))
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(str(path))
    said = str(caught.value)
    assert "`shapecalc inspect FILE.gguf` reads it" in said and "gguf tools" not in said


def test_a_clip_vision_part_s_vocab_size_changes_no_shape() -> None:
    """llava-hf/llava-1.5-7b-hf's vision_config, as older transformers wrote it, holds
    "vocab_size": 32000; CLIPVisionConfig declares no such field and CLIPVisionModel never
    reads it: counted as transformers builds the config, the field kept."""
    from tests.test_llava import built, params

    vision = {
        "model_type": "clip_vision_model",
        "hidden_size": 8,
        "intermediate_size": 12,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 8,
        "patch_size": 4,
        "projection_dim": 6,
        "vocab_size": 32000,
    }
    config = {
        "model_type": "llava",
        "architectures": ["LlavaForConditionalGeneration"],
        "text_config": {
            "model_type": "llama",
            "vocab_size": 40,
            "hidden_size": 8,
            "intermediate_size": 12,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        "vision_config": vision,
    }
    ours = hf_model(config).model()
    theirs = built(config, "LlavaForConditionalGeneration")
    assert theirs.config.vision_config.vocab_size == 32000
    assert ours.named_parameters() == params(theirs)
