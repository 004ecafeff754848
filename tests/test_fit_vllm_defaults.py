"""fit's context and vLLM's own choices: a composite whose text config leaves its
context out takes its text class's default (transformers builds it so); under
``--engine vllm`` the dtype of ``--dtype auto`` and the default ``--max-model-len`` are
vLLM's; a KV cache that holds no request is vLLM's refusal to start, said in one row.

vLLM cannot run here: its rules are cited from vLLM's source (``vllm-project/vllm``):
``vllm/config/model.py``, ``_get_and_verify_dtype`` / ``_resolve_auto_dtype`` (a float32
config is downcast to ``supported_dtypes[0]`` of the platform, float16 dropped for the
types of ``_FLOAT16_NOT_SUPPORTED_MODELS``: gemma2, gemma3, gemma3_text, plamo2, glm4) and
``_get_and_verify_max_len`` (the smallest length field × the RoPE factor but for su,
longrope and llama3; YaRN from original_max_position_embeddings; never for gemma3);
``vllm/platforms/cuda.py``, ``supported_dtypes`` (bf16, fp16, fp32 from capability 8.0,
else fp16, fp32); ``vllm/v1/core/kv_cache_utils.py:678`` (vLLM 0.11),
``check_enough_kv_cache_memory``: "No available memory for the cache blocks" when the
KV cache's share is not positive, "To serve at least one request with the models's max
seq len ..." when it holds less than one request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import transformers as t

from shapecalc.adapters.hf_context import config_context
from shapecalc.analysis.vllm_defaults import vllm_auto_dtype, vllm_max_model_len
from tests.test_cli import run

# -- a composite's context left out: its text class's default ---------------------------
COMPOSITES = [
    {"model_type": "gemma3", "text_config": {"model_type": "gemma3_text"}},
    {"model_type": "gemma3"},
    {"model_type": "mllama", "text_config": {}},
    {"model_type": "mistral3", "text_config": {"model_type": "mistral"}},
    {"model_type": "mistral3", "text_config": {"model_type": "llama"}},
    {"model_type": "llava", "text_config": {"model_type": "llama"}},
    {"model_type": "llava", "text_config": {"model_type": "mistral"}},
    {"model_type": "llava_next", "text_config": {"model_type": "gemma2"}},
    {"model_type": "llava", "text_config": {"model_type": "qwen2"}},
    {"model_type": "qwen2_vl", "text_config": {}},
    {"model_type": "qwen2_5_vl"},
]


@pytest.mark.parametrize("config", COMPOSITES, ids=lambda c: json.dumps(c))
def test_a_composite_s_left_out_context_is_its_text_class_s_default(
    config: dict[str, Any],
) -> None:
    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    built = t.CONFIG_MAPPING[config["model_type"]](**kwargs)
    found = config_context(config)
    assert found is not None
    assert found[0] == built.text_config.max_position_embeddings
    assert found[1].startswith("text_config.max_position_embeddings, ")


GEMMA3 = {
    "architectures": ["Gemma3ForConditionalGeneration"],
    "model_type": "gemma3",
    "torch_dtype": "bfloat16",
    "text_config": {
        "model_type": "gemma3_text",
        "head_dim": 128,
        "hidden_size": 5376,
        "intermediate_size": 21504,
        "num_attention_heads": 32,
        "num_hidden_layers": 62,
        "num_key_value_heads": 16,
        "query_pre_attn_scalar": 168,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "sliding_window": 1024,
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


def words(output: str) -> str:
    """A table's text as one line (a cell wrapped over rows joined again)."""
    return " ".join(output.replace("│", " ").split())


def write(tmp_path: Path, config: dict[str, Any], name: str = "m") -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


@pytest.mark.parametrize("width", [80, 200])
def test_gemma3_s_default_context_caps_fit_sweep_and_hf(tmp_path: Path, width: int) -> None:
    path = write(tmp_path, GEMMA3)
    for command in (
        ["fit", "hf", path, "--gpu", "h100"],
        ["fit", "hf", path, "--gpu", "h100", "--engine", "vllm"],
        ["hf", path, "--memory"],
    ):
        result = run([*command, "--seq-len", "200000"], width=width)
        assert result.exit_code == 2, (command, result.output)
        assert "Traceback" not in result.output
        assert "131,072 positions" in " ".join(result.output.split())
    result = run(["fit", "hf", path, "--gpu", "h100", "--engine", "vllm", "--seq-len", "32768"], 80)
    line = next(x for x in result.output.splitlines() if "largest context at B=1" in x)
    assert "131,072 (the model's whole context)" in line, result.output
    for row in result.output.splitlines():
        assert len(row) <= 80
    # a sweep's cells stop at the context (past it: "no", as for a flat config)
    result = run(["sweep", "hf", path, "--gpu", "h100", "--batch", "1,2", "--seq-len", "32768"], 80)
    row = next((x for x in result.output.splitlines() if x.startswith("│ 1 ")), result.output)
    assert row.split("│")[-4].strip() == "131,072", result.output


# -- vLLM's --dtype auto ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("said", "model_type", "bf16", "chosen"),
    [
        ("float32", "gemma2", True, "bf16"),  # downcast to supported_dtypes[0]
        ("float32", "llama", False, "fp16"),  # Turing and older: fp16 first
        ("float32", "gemma2", False, "fp32"),  # no fp16 for Gemma 2: fp32 is left
        ("bfloat16", "llama", False, "fp16"),  # bf16 unsupported: the preferred one
        ("float16", "llama", True, "fp16"),  # a supported 16-bit dtype is kept
        (None, "llama", True, "bf16"),  # none named: float32 fallback, downcast
    ],
)
def test_vllm_auto_dtype_follows_resolve_auto_dtype(
    said: str | None, model_type: str, bf16: bool, chosen: str
) -> None:
    from shapecalc.cli.fit import _vllm_float16

    config = {"model_type": model_type, **({"torch_dtype": said} if said else {})}
    float16 = _vllm_float16(config)
    assert vllm_auto_dtype(config, bf16, float16)[0] == chosen


def test_the_types_vllm_never_runs_in_float16_are_declared_so() -> None:
    """``_FLOAT16_NOT_SUPPORTED_MODELS`` (vllm/config/model.py): gemma2, gemma3,
    gemma3_text, plamo2, glm4; shapecalc has the first three."""
    from shapecalc.architectures import commands, get

    declared = {t.model_type for c in commands() for t in get(c).hf if t.vllm_no_float16}
    assert declared == {"gemma2", "gemma3", "gemma3_text"}


GEMMA2 = {
    "architectures": ["Gemma2ForCausalLM"],
    "model_type": "gemma2",
    "head_dim": 32,
    "hidden_size": 128,
    "intermediate_size": 256,
    "max_position_embeddings": 8192,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "query_pre_attn_scalar": 32,
    "sliding_window": 4096,
    "torch_dtype": "float32",
    "vocab_size": 1024,
}


def fit_json(args: list[str]) -> dict[str, Any]:
    result = run([*args, "--format", "json"], 80)
    assert result.exit_code in (0, 1), result.output
    return dict(json.loads(result.output))


def test_a_float32_config_is_priced_in_vllm_s_16_bits(tmp_path: Path) -> None:
    path = write(tmp_path, GEMMA2)
    own = fit_json(["fit", "hf", path, "--gpu", "h100"])
    vllm = fit_json(["fit", "hf", path, "--gpu", "h100", "--engine", "vllm"])
    given = fit_json(["fit", "hf", path, "--gpu", "h100", "--engine", "vllm", "--dtype", "fp32"])
    assert own["setting"]["dtype"] == "fp32"  # transformers loads the config's dtype
    assert vllm["setting"]["dtype"] == "bf16"
    assert given["setting"]["dtype"] == "fp32"  # --dtype says
    weights = vllm["account"]["lines"][0]
    assert weights["bytes"] * 2 == given["account"]["lines"][0]["bytes"]
    assert "float32 config loaded as bfloat16 (vLLM --dtype auto)" in weights["rule"]


# -- vLLM's default max_model_len -------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "length"),
    [
        ({"max_position_embeddings": 131072, "rope_scaling": {"rope_type": "llama3"}}, 131072),
        ({"max_position_embeddings": 4096, "rope_scaling": {"type": "linear", "factor": 4}}, 16384),
        ({"max_position_embeddings": 4096, "rope_scaling": {"type": "dynamic", "factor": 2}}, 8192),
        (
            {
                "max_position_embeddings": 131072,
                "rope_scaling": {
                    "rope_type": "yarn",
                    "factor": 4.0,
                    "original_max_position_embeddings": 32768,
                },
            },
            131072,
        ),
        ({"max_position_embeddings": 4096, "seq_length": 2048}, 2048),  # the smallest
        ({"model_type": "gemma3", "text_config": {"rope_scaling": {"factor": 8.0}}}, 131072),
        ({"max_position_embeddings": 4096, "rope_scaling": {"rope_type": "longrope"}}, 4096),
    ],
)
def test_vllm_max_model_len_follows_get_and_verify_max_len(
    config: dict[str, Any], length: int
) -> None:
    found = vllm_max_model_len(
        config, config_context(config)[0] if config_context(config) else None
    )
    assert found is not None and found[0] == length


LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "max_position_embeddings": 131072,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "torch_dtype": "bfloat16",
    "vocab_size": 1024,
}


def test_vllm_answers_at_its_default_max_model_len(tmp_path: Path) -> None:
    path = write(tmp_path, LLAMA)
    vllm = fit_json(["fit", "hf", path, "--gpu", "l4", "--engine", "vllm"])
    assert vllm["setting"]["seq_len"] == 131072
    kv = next(x for x in vllm["account"]["lines"] if x["label"] == "KV cache")
    assert "max_model_len 131,072, vLLM's default" in kv["rule"]
    own = fit_json(["fit", "hf", path, "--gpu", "l4"])
    assert own["setting"]["seq_len"] == 4096  # fit's own default
    given = fit_json(["fit", "hf", path, "--gpu", "l4", "--engine", "vllm", "--seq-len", "8192"])
    assert given["setting"]["seq_len"] == 8192  # --seq-len is --max-model-len
    result = run(["fit", "hf", path, "--gpu", "l4", "--engine", "vllm"], 80)
    assert "for 131,072 tokens per request" in " ".join(result.output.split())


# -- no KV block: vLLM does not start ---------------------------------------------------
def test_a_kv_cache_without_room_is_vllm_s_refusal(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            **LLAMA,
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "vocab_size": 128256,
        },
    )
    for width in (80, 200):
        result = run(
            [
                "fit",
                "hf",
                path,
                "--memory-gb",
                "8",
                "--bandwidth-gbs",
                "300",
                "--tflops",
                "50",
                "--engine",
                "vllm",
                "--seq-len",
                "4096",
            ],
            width,
        )
        text = words(result.output)
        assert result.exit_code == 1, result.output
        assert all(len(row) <= width for row in result.output.splitlines())
        assert "0.00x" not in text and "Maximum concurrency" not in text
        assert "ValueError: No available memory for the cache blocks" in text
    result = run(["fit", "hf", path, "--gpu", "rtx-4090", "--engine", "vllm"], 200)
    text = words(result.output)
    assert "To serve at least one request with the models's max seq len (131072)" in text
    assert result.exit_code == 1
