"""fit takes a model's own context where its config names it: a composite model's
language model's (``text_config.max_position_embeddings``: Gemma 3, Llama 3.2 Vision,
LLaVA), Whisper's decoder's ``max_target_positions``; llama.cpp refuses Whisper."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shapecalc.adapters.hf_config import from_hf_config
from shapecalc.adapters.hf_context import config_context
from shapecalc.analysis.cost import analyze
from shapecalc.analysis.fit import Fit
from shapecalc.analysis.hardware import accelerator
from shapecalc.architectures import get
from shapecalc.cli.app import cli

GEMMA3 = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3",
    "mm_tokens_per_image": 256,
    "torch_dtype": "bfloat16",
    "text_config": {
        "model_type": "gemma3_text",
        "head_dim": 256,
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "num_attention_heads": 8,
        "num_hidden_layers": 34,
        "num_key_value_heads": 4,
        "sliding_window": 1024,
        "vocab_size": 262208,
        "max_position_embeddings": 131072,
    },
    "vision_config": {
        "model_type": "siglip_vision_model",
        "hidden_size": 1152,
        "image_size": 896,
        "intermediate_size": 4304,
        "num_attention_heads": 16,
        "num_hidden_layers": 27,
        "patch_size": 14,
        "vision_use_head": False,
    },
}
MLLAMA = {
    "architectures": ["MllamaForConditionalGeneration"],
    "model_type": "mllama",
    "torch_dtype": "bfloat16",
    "text_config": {
        "model_type": "mllama_text_model",
        "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_hidden_layers": 40,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
    },
    "vision_config": {"model_type": "mllama_vision_model"},
}
LLAVA = {
    "architectures": ["LlavaForConditionalGeneration"],
    "model_type": "llava",
    "torch_dtype": "float16",
    "text_config": {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32064,
        "max_position_embeddings": 4096,
    },
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 1024,
        "image_size": 336,
        "intermediate_size": 4096,
        "num_attention_heads": 16,
        "num_hidden_layers": 24,
        "patch_size": 14,
        "projection_dim": 768,
    },
}
WHISPER_CAUSAL = {
    "architectures": ["WhisperForCausalLM"],
    "model_type": "whisper",
    "vocab_size": 51866,
    "d_model": 1280,
    "num_mel_bins": 128,
    "encoder_layers": 32,
    "decoder_layers": 2,
    "encoder_attention_heads": 20,
    "decoder_attention_heads": 20,
    "encoder_ffn_dim": 5120,
    "decoder_ffn_dim": 5120,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "torch_dtype": "float16",
}
WHISPER = {**WHISPER_CAUSAL, "architectures": ["WhisperForConditionalGeneration"]}
TINY_WHISPER = ["--vocab", "51865", "--hidden", "384", "--layers", "4", "--heads", "6"]


def run(args: list[str], width: int = 80) -> Any:
    return CliRunner().invoke(cli, args, env={"COLUMNS": str(width)}, prog_name="shapecalc")


def write(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def largest_line(output: str) -> str:
    return next(line for line in output.splitlines() if "largest context" in line)


def test_config_context_reads_the_language_model_s() -> None:
    assert config_context(GEMMA3) == (131072, "text_config.max_position_embeddings")
    assert config_context(LLAVA)[0] == 4096  # type: ignore[index]
    assert config_context(WHISPER) == (448, "max_target_positions")
    assert config_context({"max_position_embeddings": 2048, "text_config": {}}) == (
        2048,
        "max_position_embeddings",
    )
    assert config_context({"max_position_embeddings": True}) is None


@pytest.mark.parametrize(
    ("config", "engine", "context"),
    [(GEMMA3, None, "131,072"), (GEMMA3, "vllm", "131,072"), (LLAVA, None, "4,096")],
)
def test_a_composite_model_takes_its_language_model_s_context(
    tmp_path: Path, config: dict[str, Any], engine: str | None, context: str
) -> None:
    """Before: the search ran past it (882,342 positions of Gemma 3 4B on an H100,
    3,203,840 under vLLM; 119,282 of LLaVA's 4,096)."""
    args = ["fit", "hf", write(tmp_path, config), "--gpu", "h100"]
    args += ["--engine", engine] if engine else []
    result = run(args)
    assert result.exit_code == 0, result.output
    assert f"{context} (the model's whole context)" in largest_line(result.output)
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_a_context_past_a_composite_model_s_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, MLLAMA)
    for command in (["fit", "hf", path, "--gpu", "b200"], ["hf", path, "--memory"]):
        result = run([*command, "--seq-len", "200000"], width=200)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert "131,072 positions (text_config.max_position_embeddings)" in result.output


@pytest.mark.parametrize("config", [WHISPER_CAUSAL, WHISPER])
def test_whisper_fits_within_its_decoder_s_448_positions(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    """Before: the context search probed 2**40 positions, which Whisper's decoder's
    table refuses (exit 2), and the default context was 4,096."""
    path = write(tmp_path, config)
    for extra in ([], ["--seq-len", "448"]):
        result = run(["fit", "hf", path, "--gpu", "l4", *extra])
        assert result.exit_code == 0, result.output
        assert "fits at B=1, T=448" in result.output.replace("\n", " ")
        assert "448 (the model's whole context)" in largest_line(result.output)
    past = run(["fit", "hf", path, "--gpu", "l4", "--seq-len", "449"], width=200)
    assert past.exit_code == 2
    assert "448 positions (max_target_positions)" in past.output


def test_whisper_by_its_command_and_in_a_sweep(tmp_path: Path) -> None:
    fit = run(["fit", "whisper", *TINY_WHISPER, "--gpu", "h100"])
    assert fit.exit_code == 0, fit.output
    assert "448 (the model's whole context)" in largest_line(fit.output)
    for args in (
        ["sweep", "whisper", *TINY_WHISPER, "--gpu", "l4", "--batch", "1,2"],
        ["sweep", "hf", write(tmp_path, WHISPER), "--gpu", "l4", "--batch", "1,2"],
    ):
        result = run(args)
        assert result.exit_code == 0, result.output
        assert "T=448" in result.output
        rows = [line for line in result.output.splitlines() if line.startswith("│ ")]
        assert len(rows) == 2 and all("yes │   448 │" in row for row in rows), rows


def test_the_api_searches_whisper_up_to_its_positions() -> None:
    model = get("whisper")(vocab=51865, hidden=384, layers=4, heads=6).model()
    fit = Fit(model, accelerator("h100"), seq_len=448)
    assert fit.context == 448 and fit.largest_context() == 448
    assert fit.fits(1, 448) and not fit.fits(1, 449)


@pytest.mark.parametrize("source", ["hf", "whisper"])
def test_llama_cpp_refuses_whisper_in_one_line(tmp_path: Path, source: str) -> None:
    """llama.cpp's architectures (LLM_ARCH_NAMES, src/llama-arch.cpp, ggml-org/llama.cpp
    00395eb, lines 8-151) hold t5 and t5encoder and no whisper."""
    args = ["hf", write(tmp_path, WHISPER_CAUSAL)] if source == "hf" else ["whisper"]
    args += [] if source == "hf" else TINY_WHISPER
    result = run(["fit", *args, "--gpu", "l4", "--engine", "llama.cpp"], width=200)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "--engine" in errors[0]
    assert "llama.cpp does not run Whisper" in errors[0] and "whisper.cpp" in errors[0]
    t5 = {
        "architectures": ["T5ForConditionalGeneration"],
        "model_type": "t5",
        "d_model": 64,
        "d_ff": 128,
        "num_layers": 1,
        "num_heads": 2,
        "d_kv": 32,
        "vocab_size": 100,
    }
    ok = run(["fit", "hf", write(tmp_path, t5), "--gpu", "l4", "--engine", "llama.cpp"])
    assert ok.exit_code == 0, ok.output


def test_vllm_s_refusal_of_cross_attention_says_cross_attention(tmp_path: Path) -> None:
    """Before: "keeps a state vLLM's Mamba pages do not hold"."""
    result = run(["fit", "hf", write(tmp_path, MLLAMA), "--gpu", "h100", "--engine", "vllm"])
    assert result.exit_code == 2
    assert "cross_attn" in result.output and "a cross-attention cache" in result.output
    assert "Mamba" not in result.output


def test_whisper_s_state_never_outgrows_its_weights_within_its_context() -> None:
    """Before: "outgrows the weights from a context of 23,328 positions", past 448."""
    model = from_hf_config(WHISPER_CAUSAL)
    cost = analyze(model, batch=1, seq_len=448, dtype="fp16")
    assert cost.context == 448 and cost.crossover() is None
    gpt2 = get("gpt2")(vocab=50257, hidden=768, layers=12, heads=12).model()
    assert analyze(gpt2, batch=64, seq_len=1024, dtype="fp16").crossover() == 106
    assert analyze(gpt2, batch=1, seq_len=1024, dtype="fp16").crossover() is None


def test_whisper_s_state_line_at_80_columns(tmp_path: Path) -> None:
    result = run(["hf", write(tmp_path, WHISPER_CAUSAL), "--memory", "--seq-len", "448"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "outgrows" not in text
    assert "within the model's context, 448 positions, the inference state" in text
    assert "never outweighs the weights, 238,873,600 bytes" in text
    assert max(len(line) for line in result.output.splitlines()) <= 80
