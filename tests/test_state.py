"""The inference state layer by layer, against what transformers' cache holds after a real
CPU forward with ``use_cache=True`` (``tests/cache_truth.py``): sliding windows in the
families that had them (Mistral, Mixtral, Phi-3, Qwen2, Qwen3, Gemma 2, Starcoder2,
gpt-oss, Qwen2-MoE, Qwen3-MoE) at lengths below and past the window, fp32 and bf16; latent
attention's cache under both conventions; the state by kind, where it outgrows the
weights, the JSON section; and the refusals (a window of 0, layer_types of the wrong length
or an unknown kind, a sliding layer without a window)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import from_hf_config
from shapecalc.analysis.cost import analyze
from shapecalc.architectures.llama import llama
from shapecalc.core.errors import InvalidArgumentError
from tests.cache_truth import ours, real_cache
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SMALL = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48}


def _attention(layers: int, kv: int) -> dict[str, Any]:
    return {"num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": kv}


@st.composite
def sliding_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A tiny config of a type whose layers may slide, with its own way of saying which."""
    model_type = draw(
        st.sampled_from(
            [
                "mistral",
                "mixtral",
                "phi3",
                "qwen2",
                "qwen3",
                "gemma2",
                "starcoder2",
                "gpt_oss",
                "qwen2_moe",
                "qwen3_moe",
            ]
        )
    )
    layers = draw(st.integers(1, 5))
    kv = draw(st.sampled_from([1, 2, 4]))
    window = draw(st.integers(1, 9))
    config: dict[str, Any] = {"model_type": model_type, **SMALL, **_attention(layers, kv)}
    config["sliding_window"] = window
    if model_type in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe"):
        config["use_sliding_window"] = draw(st.booleans())
        if model_type != "qwen3_moe":
            config["max_window_layers"] = draw(st.integers(0, layers))
    if model_type in ("qwen2", "qwen3", "gemma2", "gpt_oss") and draw(st.booleans()):
        sliding = config.get("use_sliding_window", True)
        kinds = draw(
            st.lists(
                st.sampled_from(
                    ["full_attention", "sliding_attention"] if sliding else ["full_attention"]
                ),
                min_size=layers,
                max_size=layers,
            )
        )
        config["layer_types"] = kinds
    if model_type in ("qwen3", "gemma2", "gpt_oss", "qwen3_moe"):
        config["head_dim"] = 8
    if model_type in ("mixtral", "gpt_oss"):
        config.update(num_local_experts=4, num_experts_per_tok=2)
    if model_type in ("qwen2_moe", "qwen3_moe"):
        config.update(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=8)
        if model_type == "qwen2_moe":
            config["shared_expert_intermediate_size"] = 8
    if model_type == "gpt_oss":
        config["intermediate_size"] = 16
    if model_type in ("phi3", "starcoder2", "gemma2"):
        config.update(pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return config


def _truth(config: dict[str, Any], batch: int, seq_len: int, dtype: Any) -> list[int]:
    hf = transformers.AutoConfig.for_model(**config)
    return real_cache(
        hf, transformers.AutoModelForCausalLM, batch=batch, seq_len=seq_len, dtype=dtype
    )


@settings(max_examples=25, deadline=None)
@given(
    sliding_configs(),
    st.integers(1, 2),
    st.integers(1, 12),
    st.sampled_from([("fp32", None), ("bf16", "bfloat16")]),
)
def test_every_layer_holds_what_transformers_cache_holds(
    config: dict[str, Any], batch: int, seq_len: int, dtypes: tuple[str, str | None]
) -> None:
    """Every layer's bytes equal the cache transformers returns, below and past the
    window, whichever rule says which layers slide."""
    ours_dtype, torch_dtype = dtypes
    truth = _truth(
        config, batch, seq_len, None if torch_dtype is None else getattr(torch, torch_dtype)
    )
    model = from_hf_config(config)
    mine = ours(model, batch=batch, seq_len=seq_len, dtype=ours_dtype)
    assert list(mine) == list(range(len(truth)))
    assert list(mine.values()) == truth, config


def test_mistral_at_8192_tokens_keeps_its_window() -> None:
    """Mistral 7B v0.1 at 8,192 tokens and batch 4 in bf16: 32 layers of 4,095 positions
    of 8 key and value heads of 128, 2.147 GB (not 4.29 GB, every token counted)."""
    model = from_hf_config(
        {
            "model_type": "mistral",
            "vocab_size": 32000,
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "sliding_window": 4096,
        }
    )
    cost = analyze(model, batch=4, seq_len=8192, dtype="bf16", training="none")
    assert cost.state_bytes == 32 * 2 * 4 * 8 * 4095 * 128 * 2
    (group,) = cost.state_groups()
    assert (group.kind, group.sliding_window, group.layers) == ("sliding attention", 4096, 32)
    assert cost.crossover() is None  # the state stops at 2.1 GB, under the weights
    short = analyze(model, batch=4, seq_len=100, dtype="bf16", training="none")
    assert short.state_bytes == 32 * 2 * 4 * 8 * 100 * 128 * 2


def test_symbolic_state_counts_the_window_and_says_so() -> None:
    """With T a letter, a sliding layer counts its window (min(T, W − 1) is no
    polynomial), and the rule says the context is taken longer than the window."""
    model = llama(
        vocab=100,
        hidden=64,
        layers=6,
        heads=4,
        intermediate=96,
        sliding_window=16,
        layer_types="sliding_attention*2,full_attention",
    )
    cost = analyze(model, training="none")
    kinds = {g.kind: g for g in cost.state_groups()}
    assert str(kinds["full attention"].each) == "512·B·T"
    assert str(kinds["sliding attention"].each) == "7,680·B"
    assert (kinds["full attention"].layers, kinds["sliding attention"].layers) == (2, 4)
    (line,) = [m for m in cost.memory if m.label == "inference state"]
    assert "sliding layers counted at their window" in line.rule


@given(st.integers(3, 40), st.integers(1, 4), st.integers(2, 30), st.integers(1, 3))
@settings(max_examples=30, deadline=None)
def test_the_crossover_is_the_first_context_past_the_weights(
    layers: int, batch: int, window: int, period: int
) -> None:
    """crossover() is the shortest context whose state outweighs the weights: one less
    does not (checked by counting the state at both)."""
    kinds = ",".join(["sliding_attention"] * (period - 1) + ["full_attention"])
    model = llama(
        vocab=50,
        hidden=16,
        layers=layers,
        heads=2,
        intermediate=8,
        sliding_window=window,
        layer_types=kinds,
    )
    cost = analyze(model, batch=batch, seq_len=8, training="none")
    at = cost.crossover()
    weights = model.bytes("fp32")
    assert at is not None
    assert cost.state_at(at) > weights
    if at > 1:
        assert cost.state_at(at - 1) <= weights
    again = analyze(model, batch=batch, seq_len=at, training="none")
    assert again.state_bytes == cost.state_at(at)


def test_latent_attention_both_conventions() -> None:
    """DeepSeek's cache: the compressed latent, as transformers 5 keeps it (checked against
    its cache), or every head's keys and values (``--latent-cache heads``)."""
    config = {
        "model_type": "deepseek_v3",
        "vocab_size": 64,
        "hidden_size": 32,
        "intermediate_size": 48,
        "moe_intermediate_size": 16,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "n_shared_experts": 1,
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "first_k_dense_replace": 1,
        "kv_lora_rank": 8,
        "q_lora_rank": 12,
        "qk_rope_head_dim": 4,
        "qk_nope_head_dim": 6,
        "v_head_dim": 5,
        "n_group": 1,
        "topk_group": 1,
    }
    model = from_hf_config(config)
    for seq_len in (1, 7):
        truth = _truth(config, 2, seq_len, None)
        assert list(ours(model, batch=2, seq_len=seq_len).values()) == truth
        heads = ours(model, batch=2, seq_len=seq_len, cache="heads")
        assert list(heads.values()) == [2 * seq_len * 4 * (6 + 4 + 5) * 4] * 3
    cli = run(
        [
            "deepseek",
            "--vocab",
            "64",
            "--hidden",
            "32",
            "--layers",
            "2",
            "--heads",
            "4",
            "--intermediate",
            "48",
            "--moe-intermediate",
            "16",
            "--experts",
            "4",
            "--experts-per-token",
            "2",
            "--kv-lora-rank",
            "8",
            "--q-lora-rank",
            "12",
            "--rope-dim",
            "4",
            "--nope-dim",
            "6",
            "--value-dim",
            "5",
            "--memory",
            "--training",
            "none",
            "--batch",
            "1",
            "--seq-len",
            "10",
            "--latent-cache",
            "heads",
            "--format",
            "json",
        ]
    )
    assert cli.exit_code == 0, cli.output
    state = json.loads(cli.output)["cost"]["state"]
    assert state["convention"] == "heads"
    assert state["bytes"] == 2 * 10 * 4 * (6 + 4 + 5) * 4


def test_json_carries_the_state_by_kind() -> None:
    result = run(
        [
            "llama",
            "--vocab",
            "100",
            "--hidden",
            "64",
            "--layers",
            "6",
            "--heads",
            "4",
            "--intermediate",
            "96",
            "--sliding-window",
            "16",
            "--layer-types",
            "sliding_attention*5,full_attention",
            "--memory",
            "--training",
            "none",
            "--batch",
            "2",
            "--seq-len",
            "40",
            "--format",
            "json",
        ]
    )
    assert result.exit_code == 0, result.output
    state = json.loads(result.output)["cost"]["state"]
    kinds = {k["kind"]: k for k in state["kinds"]}
    assert kinds["sliding attention"]["layers"] == 5
    assert kinds["sliding attention"]["window"] == 16
    assert kinds["sliding attention"]["kept_positions"] == 15
    assert kinds["sliding attention"]["bytes_each"] == 2 * 2 * 4 * 15 * 16 * 4
    assert kinds["full attention"]["bytes_each"] == 2 * 2 * 4 * 40 * 16 * 4
    assert state["bytes"] == 5 * 2 * 2 * 4 * 15 * 16 * 4 + 2 * 2 * 4 * 40 * 16 * 4


@pytest.mark.parametrize("width", [80, 120, 200])
def test_the_state_table_fits(width: int) -> None:
    result = run(
        [
            "llama",
            "--vocab",
            "32000",
            "--hidden",
            "4096",
            "--layers",
            "32",
            "--heads",
            "32",
            "--kv-heads",
            "8",
            "--intermediate",
            "14336",
            "--sliding-window",
            "4096",
            "--layer-types",
            "sliding_attention,full_attention",
            "--memory",
            "--training",
            "none",
            "--dtype",
            "bf16",
            "--batch",
            "4",
            "--seq-len",
            "8192",
        ],
        width=width,
    )
    assert result.exit_code == 0, result.output
    assert "Inference state by kind of layer" in result.output
    assert "sliding attention, window 4,096" in result.output
    assert "outgrows the weights" in result.output
    assert "inference total" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= width


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        (["--sliding-window", "0"], "--sliding-window"),
        (["--layer-types", "sliding_attention"], "--layer-types"),
        (["--sliding-window", "4", "--layer-types", "full_attention*3"], "--layer-types"),
        (["--sliding-window", "4", "--layer-types", "global"], "--layer-types"),
        (["--sliding-window", "4", "--layer-types", "full_attention*x"], "--layer-types"),
        (["--sliding-window", "4", "--layer-types", ""], "--layer-types"),
        (["--memory", "--latent-cache", "all"], "--latent-cache"),
    ],
)
def test_bad_windows_are_refused_in_one_line(arguments: list[str], field: str) -> None:
    base = [
        "llama",
        "--vocab",
        "100",
        "--hidden",
        "64",
        "--layers",
        "2",
        "--heads",
        "4",
        "--intermediate",
        "96",
    ]
    result = run(base + arguments)
    assert result.exit_code == 2, result.output
    assert field in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sliding_window": 0}, "sliding_window"),
        ({"layer_types": ["sliding_attention"]}, "layer_types"),
        ({"layer_types": ["full_attention", "chunked"]}, "layer_types"),
        ({"layer_types": "sliding_attention"}, "layer_types"),
        ({"sliding_window": None, "layer_types": ["sliding_attention"] * 2}, "layer_types"),
    ],
)
def test_bad_configs_name_the_field(change: dict[str, Any], field: str) -> None:
    config = {"model_type": "gemma2", **SMALL, **_attention(2, 2), "head_dim": 8, **change}
    with pytest.raises(InvalidArgumentError) as err:
        from_hf_config(config)
    assert err.value.field == field


def test_qwen2_sliding_layers_need_use_sliding_window() -> None:
    config = {
        "model_type": "qwen2",
        **SMALL,
        **_attention(2, 2),
        "layer_types": ["sliding_attention", "full_attention"],
    }
    with pytest.raises(InvalidArgumentError) as err:
        from_hf_config(config)
    assert err.value.field == "layer_types"
    assert "use_sliding_window is false" in str(err.value)
