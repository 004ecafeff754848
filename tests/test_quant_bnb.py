"""bitsandbytes 8-bit and 4-bit against bitsandbytes 0.50 and transformers' bnb path, run
on CPU: every saved tensor's name, shape, dtype and bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import shapecalc as sc
from shapecalc.core.errors import ShapecalcError
from shapecalc.quant import from_config, parse_weights, quantize
from shapecalc.quant.bnb import QUANT_STORAGE, state_text
from tests.quant_truth import bnb_transformers, rows, tensors

torch = pytest.importorskip("torch")
bnb = pytest.importorskip("bitsandbytes")
transformers = pytest.importorskip("transformers")

MODES = st.one_of(
    st.just({"load_in_8bit": True}),
    st.fixed_dictionaries(
        {
            "load_in_4bit": st.just(True),
            "bnb_4bit_quant_type": st.sampled_from(["nf4", "fp4"]),
            "bnb_4bit_use_double_quant": st.booleans(),
            "bnb_4bit_quant_storage": st.sampled_from(sorted(QUANT_STORAGE)),
        }
    ),
)


def _layer(n_in: int, n_out: int, bias: bool, options: dict[str, Any]) -> Any:
    """A Linear quantized by bitsandbytes as transformers' loader does it."""
    torch.manual_seed(n_in * 1000 + n_out)
    dense = torch.nn.Linear(n_in, n_out, bias=bias).to(torch.bfloat16)
    if options.get("load_in_8bit"):
        layer = bnb.nn.Linear8bitLt(n_in, n_out, bias, has_fp16_weights=False, device="meta")
        layer.weight = bnb.nn.Int8Params(
            dense.weight.data, requires_grad=False, has_fp16_weights=False
        ).to("cpu")
    else:
        storage = getattr(torch, options["bnb_4bit_quant_storage"])
        layer = bnb.nn.Linear4bit(
            n_in,
            n_out,
            bias,
            compress_statistics=options["bnb_4bit_use_double_quant"],
            quant_type=options["bnb_4bit_quant_type"],
            quant_storage=storage,
            device="meta",
        )
        layer.weight = bnb.nn.Params4bit(
            dense.weight.data,
            requires_grad=False,
            compress_statistics=options["bnb_4bit_use_double_quant"],
            quant_type=options["bnb_4bit_quant_type"],
            quant_storage=storage,
            module=layer,
        ).to("cpu")
    if bias:
        layer.bias = torch.nn.Parameter(dense.bias.data, requires_grad=False)
    return layer


def _offset_free(state: dict[str, Any], found: list[Any], options: dict[str, Any]) -> list[Any]:
    """The real rows with the JSON state's length as shapecalc prices it when only the
    double quantization's offset (a float printed at its own length) differs."""
    out = []
    for name, shape, dtype, size in found:
        if "quant_state" in name and options.get("bnb_4bit_use_double_quant"):
            text = bytes(state[name].tolist()).decode()
            saved = json.loads(text)
            assert text == state_text(
                saved["quant_type"],
                saved["dtype"],
                tuple(saved["shape"]),
                True,
                saved["nested_offset"],
            )
            priced = len(
                state_text(saved["quant_type"], saved["dtype"], tuple(saved["shape"]), True)
            )
            shape, size = (priced,), priced
        out.append((name, shape, dtype, size))
    return out


@given(
    n_in=st.integers(1, 200),
    n_out=st.integers(1, 70),
    bias=st.booleans(),
    options=MODES,
)
def test_a_linear_layer_as_bitsandbytes_saves_it(
    n_in: int, n_out: int, bias: bool, options: dict[str, Any]
) -> None:
    model = sc.Model("net", {"fc": sc.Linear(n_in, n_out, bias=bias)})
    # a skip list given (empty): the layer itself, not left alone as a model's last module
    method = from_config({"quant_method": "bitsandbytes", "llm_int8_skip_modules": [], **options})
    size = QUANT_STORAGE.get(options.get("bnb_4bit_quant_storage", "uint8"), 1)
    packed = (n_in * n_out + 1) // 2
    storage = options.get("bnb_4bit_quant_storage", "uint8")
    if options.get("load_in_4bit") and (packed % size or (storage != "uint8" and packed == 1)):
        with pytest.raises(ShapecalcError, match=r"bnb_4bit_quant_storage|cannot"):
            quantize(model, method).rows()
        with pytest.raises((RuntimeError, ValueError, IndexError)):
            _layer(n_in, n_out, bias, options)
        return
    state = {f"fc.{k}": v for k, v in _layer(n_in, n_out, bias, options).state_dict().items()}
    found = _offset_free(state, tensors(state), options)
    q = quantize(model, method)
    assert rows(q) == found
    assert q.parameters == n_in * n_out + (n_out if bias else 0)
    assert q.bytes("bf16") == sum(r[3] for r in found)


def _tiny(kind: str) -> tuple[Any, Any, dict[str, Any]]:
    if kind == "llama":
        config = {
            "model_type": "llama",
            "vocab_size": 100,
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        }
        return transformers.LlamaForCausalLM, transformers.LlamaConfig(**config), config
    config = {
        "model_type": "gpt2",
        "vocab_size": 100,
        "n_embd": 64,
        "n_layer": 2,
        "n_head": 4,
        "n_positions": 32,
    }
    return transformers.GPT2LMHeadModel, transformers.GPT2Config(**config), config


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("llama", {"load_in_8bit": True}),
        (
            "llama",
            {
                "load_in_4bit": True,
                "bnb_4bit_quant_type": "nf4",
                "bnb_4bit_use_double_quant": True,
                "bnb_4bit_quant_storage": "bfloat16",
            },
        ),
        ("llama", {"load_in_4bit": True, "llm_int8_skip_modules": ["mlp.down_proj"]}),
        ("gpt2", {"load_in_8bit": True}),
        ("gpt2", {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}),
    ],
)
def test_a_model_as_transformers_quantizes_and_saves_it(kind: str, options: dict[str, Any]) -> None:
    """Which modules are converted (the head left alone unless llm_int8_skip_modules is
    given, Conv1D converted and transposed), and every tensor saved."""
    cls, config, raw = _tiny(kind)
    quantization = transformers.BitsAndBytesConfig(**options)
    state = bnb_transformers(cls, config, quantization)
    found = _offset_free(state, tensors(state), options)
    saved = quantization.to_dict()
    saved["quant_method"] = "bitsandbytes"
    saved.pop("bnb_4bit_compute_dtype")
    model = sc.from_hf_config({**raw, "architectures": [cls.__name__]})
    q = quantize(model, from_config(saved))
    assert rows(q) == found
    assert q.bytes("bf16") == sum(r[3] for r in found)


def test_aliases_and_refusals() -> None:
    assert parse_weights("nf4").describe() == "bitsandbytes 4-bit nf4"
    assert parse_weights("int8").describe() == "bitsandbytes 8-bit (LLM.int8)"
    for text, said in (
        ("nf4:bnb_4bit_quant_type=int3", "bnb_4bit_quant_type"),
        ("bitsandbytes", "one of load_in_8bit and load_in_4bit"),
        ("nf4:load_in_8bit=true", "one of load_in_8bit"),
        ("nf4:blocksize=32", "no setting 'blocksize'"),
        ("nf4:bnb_4bit_use_double_quant=3", "true or false"),
    ):
        with pytest.raises(ShapecalcError, match=said):
            parse_weights(text)
