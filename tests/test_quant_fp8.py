"""Block-scaled fp8 against transformers' FP8Linear and FP8Experts, built by its quantizer
on the meta device: every tensor's name, shape and dtype, in order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc as sc
from shapecalc.core.errors import ShapecalcError
from shapecalc.quant import from_config, parse_weights, quantize
from tests.quant_truth import meta_quantized, rows, tensors

transformers = pytest.importorskip("transformers")

OPTIONS = st.fixed_dictionaries(
    {
        "weight_block_size": st.one_of(
            st.none(), st.tuples(st.sampled_from([16, 32, 128]), st.sampled_from([16, 64, 128]))
        ),
        "activation_scheme": st.sampled_from(["dynamic", "static"]),
        "scale_fmt": st.sampled_from(["float", "ue8m0"]),
        "expert_dtype": st.sampled_from(["fp8", "fp4"]),
        "modules_to_not_convert": st.sampled_from([None, ["mlp.gate"], ["self_attn.o_proj"]]),
    }
)


@st.composite
def configs(draw: Any) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(["llama", "mixtral"]))
    heads = draw(st.sampled_from([2, 4]))
    config = {
        "model_type": kind,
        "vocab_size": draw(st.integers(8, 64)),
        "hidden_size": heads * 2 * draw(st.integers(2, 24)),
        "intermediate_size": 2 * draw(st.integers(1, 80)),
        "num_hidden_layers": draw(st.integers(1, 2)),
        "num_attention_heads": heads,
        "num_key_value_heads": draw(st.sampled_from([1, heads])),
    }
    if kind == "mixtral":
        config["num_local_experts"] = draw(st.integers(2, 4))
        config["num_experts_per_tok"] = 2
    else:
        config["attention_bias"] = draw(st.booleans())
    return kind, config


@settings(max_examples=30)
@given(made=configs(), options=OPTIONS)
def test_fp8_as_transformers_builds_it(
    made: tuple[str, dict[str, Any]], options: dict[str, Any]
) -> None:
    kind, config = made
    classes = {
        "llama": (transformers.LlamaForCausalLM, transformers.LlamaConfig),
        "mixtral": (transformers.MixtralForCausalLM, transformers.MixtralConfig),
    }
    model_cls, config_cls = classes[kind]
    quantization = transformers.FineGrainedFP8Config(**options)
    real = tensors(meta_quantized(model_cls, config_cls(**config), quantization))
    model = sc.from_hf_config({**config, "architectures": [model_cls.__name__]})
    q = quantize(model, from_config({"quant_method": "fp8", **options}))
    assert [r[:3] for r in rows(q, 4, "float32")] == [r[:3] for r in real]


def test_fp8_refusals() -> None:
    for text, said in (
        ("fp8:weight_block_size=3", "weight_block_size"),
        ("fp8:scale_fmt=e5m2", "scale_fmt"),
        ("fp8:expert_dtype=int4", "expert_dtype"),
        ("fp8:modules_to_convert=embed_tokens", "FP8Embedding"),
    ):
        with pytest.raises(ShapecalcError, match=said):
            parse_weights(text)
    with pytest.raises(ShapecalcError, match="converts no layer"):
        quantize(sc.Model("net", {"n": sc.LayerNorm(8)}), parse_weights("fp8"))
