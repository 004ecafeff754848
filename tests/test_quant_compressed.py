"""compressed-tensors against its own compressors, run on CPU through transformers'
quantizer (apply_quantization_config, then compress_model, as a pre-quantized checkpoint
is loaded): every tensor's name, shape and dtype, in order, for drawn schemes and sizes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc as sc
from shapecalc.core.errors import ShapecalcError
from shapecalc.quant import from_config, quantize
from tests.quant_truth import rows, tensors

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("compressed_tensors")


@st.composite
def schemes(draw: Any) -> dict[str, Any]:
    fmt = draw(
        st.sampled_from(
            ["pack-quantized", "float-quantized", "int-quantized", "nvfp4-pack-quantized"]
        )
    )
    inputs = None
    if fmt == "nvfp4-pack-quantized":
        weights = {
            "num_bits": 4,
            "type": "float",
            "symmetric": True,
            "strategy": "tensor_group",
            "group_size": 16,
        }
        inputs = draw(
            st.sampled_from(
                [
                    None,
                    {
                        "num_bits": 4,
                        "type": "float",
                        "symmetric": True,
                        "strategy": "tensor_group",
                        "group_size": 16,
                        "dynamic": "local",
                    },
                ]
            )
        )
    else:
        bits = draw(st.sampled_from([2, 4, 8])) if fmt == "pack-quantized" else 8
        kind = "float" if fmt == "float-quantized" else "int"
        strategy = draw(
            st.sampled_from(
                ["tensor", "channel", "group"] + (["block"] if fmt != "pack-quantized" else [])
            )
        )
        weights = {
            "num_bits": bits,
            "type": kind,
            "strategy": strategy,
            "symmetric": draw(st.booleans()) if kind == "int" else True,
        }
        if strategy == "group":
            weights["group_size"] = draw(st.sampled_from([16, 32, 64]))
        if strategy == "block":
            weights["block_structure"] = [
                draw(st.sampled_from([16, 32])),
                draw(st.sampled_from([16, 64])),
            ]
        inputs = draw(
            st.sampled_from(
                [
                    None,
                    {
                        "num_bits": 8,
                        "type": kind,
                        "symmetric": True,
                        "strategy": "token",
                        "dynamic": True,
                    },
                    {
                        "num_bits": 8,
                        "type": kind,
                        "symmetric": True,
                        "strategy": "tensor",
                        "dynamic": False,
                    },
                ]
            )
        )
    groups = {
        "group_0": {
            "targets": ["Linear"],
            "weights": weights,
            "input_activations": inputs,
            "output_activations": None,
            "format": fmt,
        }
    }
    ignore = draw(st.sampled_from([["lm_head"], ["lm_head", "re:.*mlp.down_proj$"], []]))
    return {
        "quant_method": "compressed-tensors",
        "config_groups": groups,
        "format": fmt,
        "ignore": ignore,
        "quantization_status": "compressed",
    }


@settings(max_examples=25)
@given(
    config=schemes(),
    hidden=st.sampled_from([32, 64, 96]),
    inner=st.sampled_from([32, 64, 160]),
    bias=st.booleans(),
)
def test_compressed_tensors_as_its_compressors_store_it(
    config: dict[str, Any], hidden: int, inner: int, bias: bool
) -> None:
    from transformers.quantizers.auto import AutoHfQuantizer
    from transformers.utils.quantization_config import CompressedTensorsConfig

    raw = {
        "vocab_size": 50,
        "hidden_size": hidden,
        "intermediate_size": inner,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "attention_bias": bias,
    }
    quantizer = AutoHfQuantizer.from_config(
        CompressedTensorsConfig.from_dict(config), pre_quantized=True
    )
    quantizer.use_fp8_kernel = False  # set by validate_environment: no fp8 kernel on CPU
    torch.manual_seed(0)
    module = transformers.LlamaForCausalLM(transformers.LlamaConfig(**raw)).to(torch.bfloat16)
    model = sc.from_hf_config({"model_type": "llama", **raw, "architectures": ["LlamaForCausalLM"]})
    weights = next(iter(config["config_groups"].values()))["weights"]
    group = weights.get("group_size")
    down = not any("down_proj" in i for i in config["ignore"])  # down_proj's columns: I
    if group and (hidden % group or (down and inner % group)):  # columns not in whole groups
        with pytest.raises(ShapecalcError, match="does not divide"):
            quantize(model, from_config(config))
        with pytest.raises(ValueError, match=r"divisble|divisible"):
            quantizer._process_model_before_weight_loading(module)
        return
    quantizer._process_model_before_weight_loading(module)
    real = tensors(module.state_dict())
    q = quantize(model, from_config(config))
    assert [r[:3] for r in rows(q)] == [r[:3] for r in real]


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"kv_cache_scheme": {"num_bits": 8}}, "kv_cache_scheme"),
        ({"quantization_status": "frozen"}, "compressed checkpoints"),
        ({"format": "marlin-24"}, "format"),
        ({"sparsity_config": {"format": "sparse-24"}}, "sparsity_config"),
        ({"colour": 1}, "no setting 'colour'"),
    ],
)
def test_what_is_not_modelled_is_refused(change: dict[str, Any], said: str) -> None:
    config = {
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int"}}},
    }
    config.update(change)
    if "format" in change:
        config["config_groups"]["g"]["format"] = change["format"]
    with pytest.raises(ShapecalcError, match=said):
        from_config(config)


def test_bad_groups_are_named() -> None:
    base = {"quant_method": "compressed-tensors", "format": "pack-quantized"}
    for groups, said in (
        ({"g": {"targets": ["Embedding"], "weights": {"num_bits": 4}}}, "targets"),
        ({"g": {"targets": ["Linear"], "weights": {"num_bits": 12}}}, "num_bits"),
        (
            {"g": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "float"}}},
            "pack-quantized stores int",
        ),
        (
            {"g": {"targets": ["Linear"], "weights": {"num_bits": 4, "actorder": "group"}}},
            "actorder",
        ),
        (
            {"g": {"targets": ["Linear"], "weights": {"num_bits": 4, "strategy": "group"}}},
            "group_size",
        ),
    ):
        with pytest.raises(ShapecalcError, match=said):
            from_config({**base, "config_groups": groups})
    model = sc.llama(vocab=50, hidden=64, layers=2, heads=4, intermediate=64)
    uneven = {
        **base,
        "ignore": ["model.layers.1.mlp.up_proj"],
        "config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 4}}},
    }
    with pytest.raises(ShapecalcError, match="differently"):
        quantize(model, from_config(uneven))


@pytest.mark.parametrize(
    "weights",
    [
        {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group", "group_size": 32},
        {"num_bits": 8, "type": "float", "strategy": "channel"},
        {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16},
    ],
)
def test_a_compressed_checkpoint_is_checked(tmp_path: Any, weights: dict[str, Any]) -> None:
    """A checkpoint its compressor wrote, checked by inspect tensor by tensor; a tensor
    taken out is named."""
    import json

    from safetensors.torch import save_file
    from transformers.quantizers.auto import AutoHfQuantizer
    from transformers.utils.quantization_config import CompressedTensorsConfig

    from shapecalc.adapters.hf_checkpoint import check_folder

    fmt = {"int": "pack-quantized", "float": "float-quantized"}[weights["type"]]
    if weights["num_bits"] == 4 and weights["type"] == "float":
        fmt = "nvfp4-pack-quantized"
    config = {
        "quant_method": "compressed-tensors",
        "format": fmt,
        "ignore": ["lm_head"],
        "quantization_status": "compressed",
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights, "format": fmt}},
    }
    raw = {
        "vocab_size": 50,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    }
    quantizer = AutoHfQuantizer.from_config(
        CompressedTensorsConfig.from_dict(config), pre_quantized=True
    )
    quantizer.use_fp8_kernel = False
    module = transformers.LlamaForCausalLM(transformers.LlamaConfig(**raw)).to(torch.bfloat16)
    quantizer._process_model_before_weight_loading(module)
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"), {"format": "pt"})
    saved = {
        "model_type": "llama",
        **raw,
        "architectures": ["LlamaForCausalLM"],
        "dtype": "bfloat16",
        "quantization_config": config,
    }
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check = check_folder(str(tmp_path))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape, check.wrong_dtype)
    assert check.layout == "quantized"
    gone = next(k for k in state if k.endswith("weight_scale"))
    del state[gone]
    save_file(state, str(tmp_path / "model.safetensors"), {"format": "pt"})
    assert [m[0] for m in check_folder(str(tmp_path)).missing] == [gone]
