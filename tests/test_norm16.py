"""Activations at 16 bits: what autograd keeps where the libraries compute in float32.

torch's ``rms_norm`` (CPU, torch 2.13) and transformers' ``LlamaRMSNorm`` (Mistral's,
Qwen's, ... the same code) keep a float32 copy of a bf16/fp16 input in place of the input
and 1/rms in float32; the normalised input the weight multiplies is float32 in torch's,
the activations' dtype in transformers' (it casts back first). LayerNorm and GroupNorm on
the CPU keep their statistics in the input's dtype. Gemma's norms (times 1 + weight) keep
all in float32, 1 + weight too. Each is measured here with
saved_tensors_hooks (tests/measure.py), at fp32, bf16 and fp16, against shapecalc's
account: byte for byte."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from shapecalc import analyze  # noqa: E402
from shapecalc.adapters.hf_config import from_hf_config  # noqa: E402
from shapecalc.adapters.torch_bridge import build  # noqa: E402
from shapecalc.layers._norm import LlamaRMSNorm  # noqa: E402
from shapecalc.layers.norm import GroupNorm, LayerNorm, RMSNorm  # noqa: E402
from shapecalc.layers.transformers import Gemma3RMSNorm  # noqa: E402
from tests.measure import kept_bytes  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SIZES = {"fp32": 4, "bf16": 2, "fp16": 2}


def _layer_bytes(spec: Any, shape: tuple[int, ...], dtype: str) -> int:
    """The layer's own account: every tensor it keeps, its input included."""
    return int(sum(s.nbytes(SIZES[dtype]) for s in spec.work(shape).saved))


def _measured(module: Any, shape: tuple[int, ...], dtype: str) -> int:
    module = module.to(DTYPES[dtype])
    x = torch.randn(*shape, dtype=DTYPES[dtype], requires_grad=True)
    return int(kept_bytes(module, [x]))


@settings(deadline=None, max_examples=12)
@given(
    kind=st.sampled_from(["RMSNorm", "LlamaRMSNorm", "LayerNorm", "GroupNorm"]),
    dtype=st.sampled_from(sorted(DTYPES)),
    lead=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    width=st.integers(1, 12),
    affine=st.booleans(),
)
def test_norm_layers_keep_what_autograd_keeps(
    kind: str, dtype: str, lead: list[int], width: int, affine: bool
) -> None:
    shape = (*lead, width)
    spec: Any
    if kind == "GroupNorm":
        shape = (lead[0], 2 * width, *lead[1:], 2)  # two numbers a group at least
        spec = GroupNorm(2, 2 * width, affine=affine)
    elif kind == "LayerNorm":
        spec = LayerNorm(width, elementwise_affine=affine)
    else:
        spec = (RMSNorm if kind == "RMSNorm" else LlamaRMSNorm)(width, elementwise_affine=affine)
    module = build(spec, device="cpu")
    assert _measured(module, shape, dtype) == _layer_bytes(spec, shape, dtype)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize(
    ("theirs", "spec"),
    [
        ("llama.modeling_llama.LlamaRMSNorm", LlamaRMSNorm(8)),
        ("qwen3.modeling_qwen3.Qwen3RMSNorm", LlamaRMSNorm(8)),
        ("deepseek_v3.modeling_deepseek_v3.DeepseekV3RMSNorm", LlamaRMSNorm(8)),
        ("glm4_moe.modeling_glm4_moe.Glm4MoeRMSNorm", LlamaRMSNorm(8)),
        ("jamba.modeling_jamba.JambaRMSNorm", LlamaRMSNorm(8)),
        ("falcon_h1.modeling_falcon_h1.FalconH1RMSNorm", LlamaRMSNorm(8)),
        ("mllama.modeling_mllama.MllamaTextRMSNorm", LlamaRMSNorm(8)),
        ("pixtral.modeling_pixtral.PixtralRMSNorm", LlamaRMSNorm(8)),
        ("mistral3.modeling_mistral3.Mistral3RMSNorm", LlamaRMSNorm(8)),
        ("qwen2_5_vl.modeling_qwen2_5_vl.Qwen2_5_VLRMSNorm", LlamaRMSNorm(8)),
        ("mamba.modeling_mamba.MambaRMSNorm", LlamaRMSNorm(8)),
        ("mamba2.modeling_mamba2.Mamba2RMSNorm", LlamaRMSNorm(8)),
        ("olmo2.modeling_olmo2.Olmo2RMSNorm", RMSNorm(8)),
        ("gpt_oss.modeling_gpt_oss.GptOssRMSNorm", RMSNorm(8)),
        ("qwen3_next.modeling_qwen3_next.Qwen3NextRMSNorm", Gemma3RMSNorm(8)),
        ("gemma.modeling_gemma.GemmaRMSNorm", Gemma3RMSNorm(8)),
        ("gemma2.modeling_gemma2.Gemma2RMSNorm", Gemma3RMSNorm(8)),
        ("gemma3.modeling_gemma3.Gemma3RMSNorm", Gemma3RMSNorm(8)),
    ],
    ids=lambda v: v.rsplit(".", 1)[-1] if isinstance(v, str) else "",
)
def test_transformers_norms_keep_what_their_specs_declare(
    theirs: str, spec: Any, dtype: str
) -> None:
    """transformers' own norm classes and the modules shapecalc builds for their specs."""
    import importlib

    where, name = theirs.rsplit(".", 1)
    cls = getattr(importlib.import_module(f"transformers.models.{where}"), name)
    expected = _layer_bytes(spec, (3, 5, 8), dtype)
    assert _measured(cls(8), (3, 5, 8), dtype) == expected
    assert _measured(build(spec, device="cpu"), (3, 5, 8), dtype) == expected


def _config(model_type: str, hidden: int, heads: int, kv: int, layers: int) -> dict[str, Any]:
    return {
        "model_type": model_type,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "num_hidden_layers": layers,
        "intermediate_size": 2 * hidden,
        "vocab_size": 40,
        "head_dim": hidden // heads,
    }


@settings(deadline=None, max_examples=6)
@given(
    model_type=st.sampled_from(["llama", "mistral", "qwen2", "qwen3", "gemma"]),
    dtype=st.sampled_from(sorted(DTYPES)),
    heads=st.sampled_from([2, 4]),
    per_head=st.sampled_from([4, 8]),
    layers=st.integers(1, 2),
    batch=st.integers(1, 2),
    seq_len=st.integers(2, 7),
)
def test_whole_transformers_models_at_16_bits(
    model_type: str, dtype: str, heads: int, per_head: int, layers: int, batch: int, seq_len: int
) -> None:
    """transformers' own model (sdpa attention, as shapecalc assumes), cast to the dtype."""
    config = _config(model_type, heads * per_head, heads, heads // 2, layers)
    ours = from_hf_config(config)
    torch.manual_seed(0)
    theirs = transformers.AutoModelForCausalLM.from_config(
        transformers.AutoConfig.for_model(**config), attn_implementation="sdpa"
    ).to(DTYPES[dtype])
    ids = torch.randint(2, 40, (batch, seq_len))
    cost = analyze(ours, batch=batch, seq_len=seq_len, dtype=dtype)
    assert kept_bytes(theirs, [ids]) == cost.activation_bytes


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2},
        {
            "model_type": "qwen2_moe",
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 16,
            "shared_expert_intermediate_size": 24,
        },
        {"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 16},
        {"model_type": "gemma3_text", "sliding_window": 4},
        {"model_type": "gemma2"},
    ],
    ids=lambda c: c["model_type"],
)
def test_built_models_at_16_bits(config: dict[str, Any], dtype: str) -> None:
    """The model shapecalc builds, cast to the dtype: its mixtures' experts are
    shapecalc's own module (transformers 5's differ at float32 already); Gemma 2's
    transformers model runs eager attention and Gemma 3's passes sdpa a mask and every
    query head's keys and values, where shapecalc's attention is sdpa's causal kernel."""
    common = {} if config["model_type"] == "gpt2" else _config("", 32, 4, 2, 2)
    ours = from_hf_config({**common, **config, "vocab_size": 40})
    module = build(ours, device="cpu").to(DTYPES[dtype])
    for p in module.parameters():
        if p.dim() > 1:
            p.data.normal_(0, 0.02)
    cost = analyze(ours, batch=2, seq_len=9, dtype=dtype)
    assert kept_bytes(module, [torch.randint(2, 40, (2, 9))]) == cost.activation_bytes
