"""Published configs of the supported types that shapecalc refused before their mapping
was declared with the architectures: each counted exactly as ``transformers`` builds it
from the same dict on the meta device (the truth), and at the published total.

The dicts are the published ``config.json`` files of the Hub repositories named (long
``rope_scaling`` factor lists shortened: they change no tensor)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from shapecalc.adapters.hf_config import from_hf_config, hf_model
from shapecalc.core.errors import InvalidArgumentError
from tests.twins import hf

torch = pytest.importorskip("torch")
t = hf()

#: google/gemma-2-9b
GEMMA_2_9B: dict[str, Any] = {
    "architectures": ["Gemma2ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": 50.0,
    "bos_token_id": 2,
    "cache_implementation": "hybrid",
    "eos_token_id": 1,
    "final_logit_softcapping": 30.0,
    "head_dim": 256,
    "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 8192,
    "model_type": "gemma2",
    "num_attention_heads": 16,
    "num_hidden_layers": 42,
    "num_key_value_heads": 8,
    "pad_token_id": 0,
    "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "sliding_window_size": 4096,
    "torch_dtype": "float32",
    "transformers_version": "4.42.0.dev0",
    "use_cache": True,
    "vocab_size": 256000,
}
#: google/gemma-2-27b
GEMMA_2_27B = {
    **GEMMA_2_9B,
    "head_dim": 128,
    "hidden_size": 4608,
    "intermediate_size": 36864,
    "num_attention_heads": 32,
    "num_hidden_layers": 46,
    "num_key_value_heads": 16,
    "query_pre_attn_scalar": 144,
}
#: microsoft/Phi-4-mini-instruct
PHI_4_MINI: dict[str, Any] = {
    "architectures": ["Phi3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 199999,
    "embd_pdrop": 0.0,
    "eos_token_id": 199999,
    "full_attn_mod": 1,
    "hidden_act": "silu",
    "hidden_size": 3072,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "interpolate_factor": 1,
    "lm_head_bias": False,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "phi3",
    "num_attention_heads": 24,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "original_max_position_embeddings": 4096,
    "pad_token_id": 199999,
    "partial_rotary_factor": 0.75,
    "resid_pdrop": 0.0,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"long_factor": [1.0] * 48, "short_factor": [1.0] * 48, "type": "longrope"},
    "rope_theta": 10000.0,
    "sliding_window": 262144,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0",
    "use_cache": True,
    "vocab_size": 200064,
}
#: mistralai/Mixtral-8x7B-v0.1, its experts spelled num_experts (as some exports write it)
MIXTRAL_NUM_EXPERTS: dict[str, Any] = {
    "architectures": ["MixtralForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "model_type": "mixtral",
    "num_attention_heads": 32,
    "num_experts_per_tok": 2,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "num_experts": 8,
    "output_router_logits": False,
    "rms_norm_eps": 1e-05,
    "rope_theta": 1000000.0,
    "router_aux_loss_coef": 0.02,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 32000,
}
#: Qwen/Qwen2.5-7B with attention_bias, a field its class ignores (q, k and v always
#: have biases, o_proj none)
QWEN2_ATTENTION_BIAS: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_bias": True,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "hidden_act": "silu",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 18944,
    "max_position_embeddings": 131072,
    "max_window_layers": 28,
    "model_type": "qwen2",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 152064,
}
#: a LLaMA whose rotary positions turn part of each head (transformers 5 reads
#: partial_rotary_factor for every rotary model; no tensor changes)
LLAMA_PARTIAL = {
    "model_type": "llama",
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "intermediate_size": 512,
    "vocab_size": 1000,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "partial_rotary_factor": 0.5,
    },
}

OFFICIAL = [
    ("gemma-2-9b", GEMMA_2_9B, 9_241_705_984),
    ("gemma-2-27b", GEMMA_2_27B, 27_227_128_320),
    ("Phi-4-mini-instruct", PHI_4_MINI, 3_836_021_760),
    ("Mixtral-8x7B (num_experts)", MIXTRAL_NUM_EXPERTS, 46_702_792_704),
    ("Qwen2.5-7B (attention_bias)", QWEN2_ATTENTION_BIAS, 7_615_616_512),
    ("llama (partial rotary)", LLAMA_PARTIAL, None),
]


def built(config: dict[str, Any]) -> Any:
    """transformers' class of the config, built from the same dict on the meta device."""
    cls = getattr(t, hf_model(config).class_name)
    fields = {k: v for k, v in config.items() if k != "model_type"}
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        return cls(t.AutoConfig.for_model(config["model_type"], **fields))


@pytest.mark.parametrize(("name", "config", "total"), OFFICIAL, ids=[o[0] for o in OFFICIAL])
def test_published_configs_count_as_transformers_builds_them(
    name: str, config: dict[str, Any], total: int | None
) -> None:
    model = from_hf_config(config)
    module = built(config)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in module.named_parameters()]
    assert model.total == sum(p.numel() for p in module.parameters())
    if total is not None:
        assert model.total == total


def test_partial_rotary_turns_part_of_each_head() -> None:
    found = hf_model(LLAMA_PARTIAL)
    assert found.architecture.rotary_pct == 0.5  # type: ignore[attr-defined]


@pytest.mark.parametrize("model_type", ["qwen2", "phi3"])
def test_a_null_head_dim_is_refused_where_transformers_breaks(model_type: str) -> None:
    """Qwen2 and Phi-3 read head_dim with getattr: absent is H / A, null breaks them."""
    config = {
        "model_type": model_type,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "num_hidden_layers": 1,
        "intermediate_size": 32,
        "vocab_size": 100,
        "pad_token_id": 0,
        "head_dim": None,
    }
    with pytest.raises(InvalidArgumentError, match="head_dim must be an integer"):
        from_hf_config(config)
    del config["head_dim"]
    assert from_hf_config(config).total == sum(p.numel() for p in built(config).parameters())
