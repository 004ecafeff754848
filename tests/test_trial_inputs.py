"""Inputs a newcomer's trial found accepted, or answered with a traceback: each refused
in one line naming the flag or field, the value and the rule, exit status 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shapecalc.adapt import LoraConfig
from shapecalc.core.errors import ShapecalcError
from tests.test_cli import run

LLAMA: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 64,
    "hidden_size": 16,
    "intermediate_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}


def config(tmp_path: Path, **changes: Any) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA, **changes}))
    return str(path)


def refused(args: list[str], *said: str) -> str:
    result = run(args, 80)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for part in said:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("alpha", ["nan", "inf", "-inf"])
def test_lora_alpha_must_be_finite(alpha: str, tmp_path: Path) -> None:
    lora = ["--lora-rank", "4", "--lora-targets", "all-linear", "--lora-alpha", alpha]
    refused(["hf", config(tmp_path), *lora], "--lora-alpha", alpha, "finite")
    with pytest.raises(ShapecalcError, match="finite"):
        LoraConfig(r=4, targets="all-linear", alpha=float(alpha))


def test_a_whole_or_fractional_alpha_is_kept(tmp_path: Path) -> None:
    for alpha, shown in (("16", "alpha=16,"), ("2.5", "alpha=2.5,")):
        lora = ["--lora-rank", "4", "--lora-targets", "all-linear", "--lora-alpha", alpha]
        result = run(["hf", config(tmp_path), *lora], 200)
        assert result.exit_code == 0, result.output
        assert shown in result.stdout


@pytest.mark.parametrize("value", [0, -1])
@pytest.mark.parametrize("field", ["max_position_embeddings", "original_max_position_embeddings"])
def test_a_context_of_no_positions_is_refused(field: str, value: int, tmp_path: Path) -> None:
    refused(["hf", config(tmp_path, **{field: value})], field, str(value), ">= 1")


def test_hf_refuses_a_length_past_the_context_as_fit_does(tmp_path: Path) -> None:
    path = config(tmp_path)
    refused(["hf", path, "--memory", "--seq-len", "129"], "--seq-len", "128", "context")
    refused(["fit", "hf", path, "--gpu", "l4", "--seq-len", "129"], "--seq-len", "128")
    assert run(["hf", path, "--memory", "--seq-len", "128"]).exit_code == 0


@pytest.mark.parametrize("flags", [["--zero", "3"], ["--fsdp", "full"], ["--zero", "1"]])
def test_sharding_over_one_rank_is_refused(flags: list[str], tmp_path: Path) -> None:
    refused(["hf", config(tmp_path), *flags], "--dp", flags[1], "2 or more")
    assert run(["hf", config(tmp_path), *flags, "--dp", "2"]).exit_code == 0
    assert run(["hf", config(tmp_path), "--fsdp", "no-shard"]).exit_code == 0


@pytest.mark.parametrize("weights", ["awq", "nf4", "fp8", "gptq"])
def test_llama_cpp_takes_gguf_types_only(weights: str, tmp_path: Path) -> None:
    args = ["fit", "hf", config(tmp_path), "--gpu", "l4", "--engine", "llama.cpp"]
    refused([*args, "--weights", weights], "--weights", weights, "GGUF")
    sized = ["fit", "hf", config(tmp_path, hidden_size=64, intermediate_size=64)]
    assert run([*sized, *args[3:], "--weights", "q8_0"]).exit_code == 0


def test_llama_cpp_and_a_config_s_own_quantization(tmp_path: Path) -> None:
    """A config's quantization_config (a safetensors format) under llama.cpp: the error
    says it is the config's and how to price the model otherwise."""
    fp8 = {"quant_method": "fp8", "weight_block_size": [8, 8]}
    path = config(tmp_path, hidden_size=64, intermediate_size=64, quantization_config=fp8)
    args = ["fit", "hf", path, "--gpu", "l4", "--engine", "llama.cpp"]
    refused(args, "--weights", "the config's fp8", "--weights none")
    assert run([*args, "--weights", "none"]).exit_code == 0
    assert run([*args, "--weights", "q8_0"]).exit_code == 0


@pytest.mark.parametrize(("key", "value"), [("head_count", 0), ("embedding_length", 0)])
def test_gguf_metadata_describing_no_model_is_one_line(
    key: str, value: int, tmp_path: Path
) -> None:
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    sizes = {"head_count": 4, "embedding_length": 64, **{key: value}}
    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    writer.add_block_count(2)
    writer.add_context_length(512)
    writer.add_embedding_length(sizes["embedding_length"])
    writer.add_feed_forward_length(128)
    writer.add_head_count(sizes["head_count"])
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(256)
    writer.add_tensor("token_embd.weight", np.zeros((256, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    refused(["inspect", str(tmp_path / "m.gguf")], "= 0", "must be")
