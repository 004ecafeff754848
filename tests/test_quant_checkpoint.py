"""Quantized checkpoints written by the real libraries (bitsandbytes on CPU; fp8 tensors
named, shaped and typed as transformers' FP8Linear and FP8Experts build them), checked by
``shapecalc inspect FOLDER`` against their config; ``shapecalc hf PATH`` prices the
config's quantization by default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shapecalc.adapters.hf_checkpoint import check_folder
from tests.quant_truth import bnb_transformers, meta_quantized
from tests.test_cli import run
from tests.test_schema import validator

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

LLAMA = {
    "vocab_size": 100,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def _write(folder: Path, state: dict[str, Any], config: Any, quantization: dict[str, Any]) -> Path:
    folder.mkdir()
    tensors = {k: v.contiguous() for k, v in state.items()}
    safetensors_torch.save_file(tensors, str(folder / "model.safetensors"), {"format": "pt"})
    saved = config.to_dict()
    saved["quantization_config"] = quantization
    saved["architectures"] = [type(config).__name__.replace("Config", "ForCausalLM")]
    (folder / "config.json").write_text(json.dumps(saved, default=str))
    return folder


def _bnb(folder: Path, options: dict[str, Any]) -> Path:
    pytest.importorskip("bitsandbytes")
    config = transformers.LlamaConfig(**LLAMA, dtype="bfloat16")
    quantization = transformers.BitsAndBytesConfig(**options)
    state = bnb_transformers(transformers.LlamaForCausalLM, config, quantization)
    saved = {**quantization.to_dict(), "quant_method": "bitsandbytes"}
    return _write(folder, state, config, saved)


@pytest.mark.parametrize(
    "options",
    [
        {"load_in_8bit": True},
        {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True},
        {"load_in_4bit": True, "bnb_4bit_quant_storage": "bfloat16"},
    ],
)
def test_a_bitsandbytes_checkpoint_is_checked_tensor_by_tensor(
    tmp_path: Path, options: dict[str, Any]
) -> None:
    folder = _bnb(tmp_path / "q", options)
    check = check_folder(str(folder))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape, check.wrong_dtype)
    assert check.layout == "quantized" and "bitsandbytes" in check.notes[0]
    assert "all checked" in check.notes[0]
    for width in (80, 200):
        result = run(["inspect", str(folder)], width)
        assert result.exit_code == 0, result.output
        assert max(len(line) for line in result.stdout.splitlines()) <= width
    report = json.loads(run(["inspect", str(folder), "--format", "json"]).stdout)
    validator("inspect").validate(report)


def test_a_missing_tensor_and_a_wrong_dtype_are_named(tmp_path: Path) -> None:
    folder = _bnb(tmp_path / "q", {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"})
    path = folder / "model.safetensors"
    state = safetensors_torch.load_file(str(path))
    del state["model.layers.1.mlp.up_proj.weight.quant_map"]
    absmax = "model.layers.0.self_attn.k_proj.weight.absmax"
    state[absmax] = state[absmax].to(torch.float16)
    safetensors_torch.save_file(state, str(path), {"format": "pt"})
    check = check_folder(str(folder))
    assert [m[0] for m in check.missing] == ["model.layers.1.mlp.up_proj.weight.quant_map"]
    assert [(m.name, m.expected, m.found) for m in check.wrong_dtype] == [
        (absmax, "float32", "float16")
    ]
    result = run(["inspect", str(folder)], 200)
    assert "model.layers.1.mlp.up_proj.weight.quant_map" in result.output
    assert absmax in result.output


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("llama", {"weight_block_size": None}),
        ("llama", {"weight_block_size": [32, 32], "activation_scheme": "static"}),
        ("mixtral", {"weight_block_size": [32, 64], "scale_fmt": "ue8m0"}),
    ],
)
def test_an_fp8_checkpoint_is_checked(tmp_path: Path, kind: str, options: dict[str, Any]) -> None:
    """The tensors FP8Linear and FP8Experts hold (built by transformers on the meta
    device), written with their dtypes."""
    if kind == "llama":
        model_cls, config = transformers.LlamaForCausalLM, transformers.LlamaConfig(**LLAMA)
    else:
        model_cls = transformers.MixtralForCausalLM
        config = transformers.MixtralConfig(**LLAMA, num_local_experts=4)
    config.dtype = "bfloat16"
    quantization = transformers.FineGrainedFP8Config(**options)
    meta = meta_quantized(model_cls, config, quantization)
    state = {
        k: torch.zeros(v.shape, dtype=v.dtype if v.dtype != torch.float32 else torch.bfloat16)
        for k, v in meta.items()
    }
    for k, v in meta.items():  # the scales keep float32
        if k.endswith(("scale_inv", "activation_scale")) and v.dtype == torch.float32:
            state[k] = torch.zeros(v.shape, dtype=torch.float32)
    saved = {**quantization.to_dict(), "quant_method": "fp8"}
    folder = _write(tmp_path / "fp8", state, config, saved)
    check = check_folder(str(folder))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape, check.wrong_dtype)


def test_hf_prices_the_config_quantization(tmp_path: Path) -> None:
    folder = _bnb(tmp_path / "q", {"load_in_8bit": True})
    quantized = json.loads(run(["hf", str(folder), "--format", "json"]).stdout)
    assert quantized["quantization"]["method"] == "bitsandbytes"
    assert quantized["quantization"]["source"] == "quantization_config"
    names = [p["name"] for layer in quantized["layers"] for p in layer["params"]]
    assert "model.layers.{0..1}.self_attn.q_proj.SCB" in names
    plain = json.loads(run(["hf", str(folder), "--format", "json", "--weights", "none"]).stdout)
    assert "quantization" not in plain and plain["total"] == quantized["quantization"]["parameters"]
    other = json.loads(run(["hf", str(folder), "--format", "json", "--weights", "nf4"]).stdout)
    assert other["quantization"]["describe"] == "bitsandbytes 4-bit nf4"
    validator("report").validate(quantized)
    text = run(["hf", str(folder), "--memory"], 80)
    assert text.exit_code == 0 and "bitsandbytes 8-bit" in text.stdout
    assert f"{plain['total']:,} parameters" in text.stdout


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"bnb_4bit_quant_type": "int3"}, "bnb_4bit_quant_type = 'int3'"),
        ({"load_in_8bit": True}, "one of load_in_8bit and load_in_4bit"),
        ({"bnb_4bit_blocksize": 32}, "no setting 'bnb_4bit_blocksize'"),
        ({"llm_int8_skip_modules": "lm_head"}, "list of module names"),
    ],
)
def test_a_bad_quantization_config_is_one_line(
    tmp_path: Path, change: dict[str, Any], said: str
) -> None:
    folder = _bnb(tmp_path / "q", {"load_in_4bit": True})
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"].update(change)
    (folder / "config.json").write_text(json.dumps(config))
    for args in (["hf", str(folder)], ["inspect", str(folder)]):
        result = run(args, 200)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and said in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("quantization", "said"),
    [
        ({"quant_method": 7}, "quantization_config"),
        ({"quant_method": "bitsandbytes", "load_in_4bit": "yes"}, "true or false"),
        ({"quant_method": "fp8", "weight_block_size": [0, 128]}, "weight_block_size"),
        ({"quant_method": "x" * 5000}, "quantization_config"),
        (
            {
                "quant_method": "compressed-tensors",
                "format": "pack-quantized",
                "config_groups": {"g": {"targets": ["re:("], "weights": {"num_bits": 4}}},
            },
            "not a regular expression",
        ),
        (
            {"quant_method": "compressed-tensors", "config_groups": [1, 2]},
            "config_groups",
        ),
        ({"quant_method": "mxfp4"}, "converts no layer"),
    ],
)
def test_a_hostile_quantization_config_is_one_line(
    tmp_path: Path, quantization: dict[str, Any], said: str
) -> None:
    config = {"model_type": "llama", **LLAMA, "quantization_config": quantization}
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path)], 200)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and said in lines[0], result.stderr
    assert len(lines[0]) < 1200  # a value from the file is cut
