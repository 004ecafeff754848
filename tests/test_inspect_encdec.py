"""``shapecalc inspect FOLDER`` on what transformers saves (``save_pretrained``) for tiny
encoder-decoders (T5, mT5, BART, mBART) and models made of several (LLaVA, Gemma 3):
every tensor matched, the count the config implies, and the tied tensors as downloads
store them. transformers 5 writes a tied group once (``shared.weight``, BART's
``model.shared.weight``); files converted earlier may hold the group again under its
other names (``encoder.embed_tokens.weight`` beside ``shared.weight``) or under a tied
name alone. transformers loads all three alike (checked here with ``from_pretrained``:
nothing missing or unexpected), and inspect says so: a copy counted once, a group
stored under another of its names taken as stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shapecalc.adapters.hf_checkpoint import check_folder
from shapecalc.adapters.hf_config import hf_model
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

T5 = {
    "model_type": "t5",
    "vocab_size": 40,
    "d_model": 16,
    "d_kv": 4,
    "d_ff": 24,
    "num_layers": 2,
    "num_decoder_layers": 1,
    "num_heads": 2,
    "relative_attention_num_buckets": 8,
}
BART = {
    "model_type": "bart",
    "vocab_size": 40,
    "d_model": 12,
    "encoder_layers": 2,
    "decoder_layers": 1,
    "encoder_attention_heads": 3,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 20,
    "decoder_ffn_dim": 16,
    "max_position_embeddings": 16,
}
LLAVA = {
    "model_type": "llava",
    "text_config": {
        "model_type": "llama",
        "vocab_size": 40,
        "hidden_size": 16,
        "intermediate_size": 24,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
    },
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 8,
        "intermediate_size": 12,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 28,
        "patch_size": 14,
        "projection_dim": 8,
    },
}
GEMMA3 = {
    "model_type": "gemma3",
    "text_config": {
        "model_type": "gemma3_text",
        "vocab_size": 40,
        "hidden_size": 16,
        "intermediate_size": 24,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 8,
        "sliding_window": 4,
    },
    "vision_config": {
        "model_type": "siglip_vision_model",
        "hidden_size": 8,
        "intermediate_size": 12,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": 56,
        "patch_size": 14,
    },
    "mm_tokens_per_image": 4,
}
CONFIGS = {
    "t5": T5,
    "mt5": {**T5, "model_type": "mt5", "feed_forward_proj": "gated-gelu"},
    "bart": BART,
    "mbart": {**BART, "model_type": "mbart"},
    "llava": LLAVA,
    "gemma3": GEMMA3,
}


def _saved(config: dict[str, Any], folder: Path) -> Any:
    """transformers' model of ``config`` (the class its type maps to), saved in ``folder``."""
    fields = {k: v for k, v in config.items() if k != "model_type"}
    conf = transformers.AutoConfig.for_model(config["model_type"], **fields)
    auto = (
        transformers.AutoModelForSeq2SeqLM
        if conf.is_encoder_decoder
        else transformers.AutoModelForImageTextToText
    )
    module = auto.from_config(conf)
    module.save_pretrained(folder)
    return module


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_saved_model_agrees_with_its_config(name: str, tmp_path: Path) -> None:
    config = CONFIGS[name]
    module = _saved(config, tmp_path)
    total = sum(p.numel() for p in module.parameters())
    assert hf_model(json.loads((tmp_path / "config.json").read_text())).model().total == total
    check = check_folder(str(tmp_path))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape, check.wrong_dtype)
    assert check.expected_total == total
    buffers = {"final_logits_bias"}  # BART's, saved with the weights, no parameter
    stored = sum(t.count for t in check.checkpoint.tensors if t.name not in buffers)
    assert stored == total
    for width in (80, 200):
        result = run(["inspect", str(tmp_path)], width)
        assert result.exit_code == 0, result.output
        assert "agrees with its config" in result.stdout
        assert max(len(line) for line in result.stdout.splitlines()) <= width


def _restored(folder: Path, add: list[str], drop: list[str]) -> None:
    path = folder / "model.safetensors"
    tensors = safetensors_torch.load_file(str(path))
    source = next(n for n in tensors if n.endswith("shared.weight"))
    for name in add:
        tensors[name] = tensors[source].clone()
    for name in drop:
        del tensors[name]
    safetensors_torch.save_file(tensors, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize(
    ("name", "add", "drop", "copies", "absent"),
    [
        # the group again under every name
        (
            "t5",
            ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"],
            [],
            ["decoder.embed_tokens.weight", "encoder.embed_tokens.weight", "lm_head.weight"],
            [],
        ),
        # under the encoder's and decoder's names, not shared's
        (
            "t5",
            ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"],
            ["shared.weight"],
            ["decoder.embed_tokens.weight"],
            ["shared.weight", "lm_head.weight"],
        ),
        (
            "bart",
            ["model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"],
            [],
            ["model.decoder.embed_tokens.weight", "model.encoder.embed_tokens.weight"],
            ["lm_head.weight"],
        ),
    ],
)
def test_tied_tensors_as_downloads_store_them(
    name: str, add: list[str], drop: list[str], copies: list[str], absent: list[str], tmp_path: Path
) -> None:
    module = _saved(CONFIGS[name], tmp_path)
    _restored(tmp_path, add, drop)
    _, info = type(module).from_pretrained(str(tmp_path), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]  # transformers loads it
    check = check_folder(str(tmp_path))
    assert check.ok, (check.missing, check.unexpected)
    assert sorted(n for n, _ in check.tied_copies) == copies
    assert sorted(check.tied_absent) == sorted(absent)
    # each tensor once; BART's final_logits_bias (1 × V) is a buffer saved beside them
    bias = CONFIGS[name]["vocab_size"] if name == "bart" else 0
    assert check.stored_total == check.expected_total + bias
    result = run(["inspect", str(tmp_path)], 80)
    assert result.exit_code == 0, result.output
    assert "stored again beside" in result.stdout
    # a copy of the wrong shape is no copy: it is refused
    tensors = safetensors_torch.load_file(str(tmp_path / "model.safetensors"))
    tensors[copies[0]] = torch.zeros(3, 3)
    safetensors_torch.save_file(tensors, str(tmp_path / "model.safetensors"))
    wrong = check_folder(str(tmp_path))
    assert not wrong.ok and [m.name for m in wrong.wrong_shape] == [copies[0]]
