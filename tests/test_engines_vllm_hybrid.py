"""``fit --engine vllm`` for hybrid models (Mamba, Mamba-2 or gated-delta-rule layers
beside attention: Jamba, Falcon-H1, Qwen3-Next), against vLLM 0.11.0's own code run here
from its wheel (it does not install CPU-only):

- ``vllm/model_executor/layers/mamba/mamba_utils.py``: ``MambaStateShapeCalculator`` and
  ``MambaStateDtypeCalculator``, called with the arguments each model's
  ``get_mamba_state_shape_from_config`` passes (``vllm/model_executor/models/jamba.py``,
  ``falcon_h1.py``, ``qwen3_next.py``);
- ``vllm/model_executor/models/config.py``: ``HybridAttentionMambaModelConfig.
  verify_and_update_config`` (the attention block raised so that its page holds the Mamba
  state; the Mamba page padded to it), run on a stand-in VllmConfig;
- ``vllm/v1/kv_cache_interface.py`` (``FullAttentionSpec``, ``MambaSpec``) with the specs
  ``gpu_model_runner.py``'s ``get_kv_cache_spec`` makes (a Mamba layer's ``block_size`` is
  max_model_len), and ``vllm/v1/core/kv_cache_utils.py``: ``get_kv_cache_groups``,
  ``get_kv_cache_config_from_groups`` (num_blocks, and the "GPU KV cache size" and
  "Maximum concurrency" it logs), ``max_memory_usage_bytes``.

The configurations: transformers' config classes' defaults, which their docstrings name
for the published checkpoints (ai21labs/Jamba-v0.1, tiiuae/Falcon-H1-1.5B-Deep-Instruct,
Qwen/Qwen3-Next-80B-A3B-Instruct).
"""

from __future__ import annotations

import ast
import logging
import re
import sys
import types
import zipfile
from typing import Any

import pytest

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.engines import Vllm
from shapecalc.analysis.fit import Fit
from shapecalc.analysis.hardware import accelerator, custom
from shapecalc.architectures import get
from shapecalc.core.errors import ShapecalcError
from tests.test_fit import WHEEL, _load_vllm

needs_wheel = pytest.mark.skipif(
    not WHEEL, reason="vLLM's wheel is not in /tmp/pkgs (it does not install CPU-only)"
)


def _load_hybrid(interface: Any) -> tuple[Any, Any]:
    """mamba_utils.py and HybridAttentionMambaModelConfig from the wheel, unchanged, with
    the names they import stood in for by the wheel's own definitions (cdiv, divide,
    STR_DTYPE_TO_TORCH_DTYPE, get_kv_cache_torch_dtype) or plain objects."""
    import torch

    wheel = zipfile.ZipFile(WHEEL[-1])

    def read(name: str) -> str:
        return wheel.read(name).decode()

    def pick(source: str, names: set[str]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for node in ast.parse(source).body:
            named = isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in names
            assigned = isinstance(node, ast.Assign) and any(
                getattr(t, "id", "") in names for t in node.targets
            )
            if named or assigned:
                out.append(node)
        return out

    space: dict[str, Any] = {"torch": torch, "Optional": Any, "Union": Any}
    for source, names in (
        (read("vllm/utils/__init__.py"), {"cdiv", "STR_DTYPE_TO_TORCH_DTYPE"}),
        (read("vllm/utils/__init__.py"), {"get_kv_cache_torch_dtype"}),
        (read("vllm/distributed/utils.py"), {"ensure_divisibility", "divide"}),
    ):
        exec(compile(ast.Module(body=pick(source, names), type_ignores=[]), "vllm", "exec"), space)
    saved = {k: v for k, v in sys.modules.items() if k == "vllm" or k.startswith("vllm.")}
    try:
        for name, attrs in (
            ("vllm", {}),
            ("vllm.config", {"MambaDType": str, "ModelDType": str}),
            ("vllm.distributed", {"divide": space["divide"]}),
            (
                "vllm.utils",
                {
                    "STR_DTYPE_TO_TORCH_DTYPE": space["STR_DTYPE_TO_TORCH_DTYPE"],
                    "get_kv_cache_torch_dtype": space["get_kv_cache_torch_dtype"],
                },
            ),
        ):
            m = types.ModuleType(name)
            m.__dict__.update(attrs)
            sys.modules[name] = m
        utils = types.ModuleType("vllm.model_executor.layers.mamba.mamba_utils")
        source = read("vllm/model_executor/layers/mamba/mamba_utils.py")
        exec(compile(source, "mamba_utils.py", "exec"), utils.__dict__)
    finally:
        for k in [k for k in sys.modules if k == "vllm" or k.startswith("vllm.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    config = {
        "envs": types.SimpleNamespace(VLLM_USE_V1=True),
        "VerifyAndUpdateConfig": object,
        "MambaModelConfig": types.SimpleNamespace(verify_and_update_config=lambda c: None),
        "STR_DTYPE_TO_TORCH_DTYPE": space["STR_DTYPE_TO_TORCH_DTYPE"],
        "FullAttentionSpec": interface.FullAttentionSpec,
        "MambaSpec": interface.MambaSpec,
        "cdiv": space["cdiv"],
        "logger": logging.getLogger("vllm.config"),
    }
    body = pick(read("vllm/model_executor/models/config.py"), {"HybridAttentionMambaModelConfig"})
    exec(compile(ast.Module(body=body, type_ignores=[]), "config.py", "exec"), config)
    return utils, config


def _state(utils: Any, family: str, hf: Any, tp: int) -> tuple[Any, Any]:
    """(shapes, dtypes) as the model's classmethods pass them."""
    shapes, dtypes = utils.MambaStateShapeCalculator, utils.MambaStateDtypeCalculator
    bf16 = "bfloat16"
    if family == "jamba":  # jamba.py JambaForCausalLM.get_mamba_state_shape_from_config
        return (
            shapes.mamba1_state_shape(
                tp_world_size=tp,
                intermediate_size=hf.mamba_expand * hf.hidden_size,
                state_size=hf.mamba_d_state,
                conv_kernel=hf.mamba_d_conv,
            ),
            dtypes.mamba1_state_dtype(bf16, "auto", "auto"),
        )
    if family == "falcon_h1":  # falcon_h1.py FalconH1ForCausalLM
        inner = int(hf.mamba_expand * hf.hidden_size) if hf.mamba_d_ssm is None else hf.mamba_d_ssm
        return (
            shapes.mamba2_state_shape(
                intermediate_size=inner,
                tp_world_size=tp,
                n_groups=hf.mamba_n_groups,
                num_heads=hf.mamba_n_heads,
                head_dim=hf.mamba_d_head,
                state_size=hf.mamba_d_state,
                conv_kernel=hf.mamba_d_conv,
            ),
            dtypes.mamba2_state_dtype(bf16, "auto", "auto"),
        )
    # qwen3_next.py Qwen3NextForCausalLM
    return (
        shapes.gated_delta_net_state_shape(
            tp,
            hf.linear_num_key_heads,
            hf.linear_num_value_heads,
            hf.linear_key_head_dim,
            hf.linear_value_head_dim,
            hf.linear_conv_kernel_dim,
            0,
        ),
        dtypes.gated_delta_net_state_dtype(bf16, "auto"),
    )


def _layers(family: str, hf: Any) -> tuple[int, int]:
    """(attention layers, Mamba-like layers) as the vLLM model registers them."""
    n = hf.num_hidden_layers
    if family == "jamba":
        attention = sum(i % hf.attn_layer_period == hf.attn_layer_offset for i in range(n))
        return attention, n - attention
    if family == "falcon_h1":  # every decoder layer: attention and Mamba-2 in parallel
        return n, n
    attention = sum(t == "full_attention" for t in hf.layer_types)
    return attention, n - attention


CASES = [("jamba", "JambaConfig", 1), ("jamba", "JambaConfig", 2)]
CASES += [("falcon_h1", "FalconH1Config", tp) for tp in (1, 2)]
CASES += [("qwen3_next", "Qwen3NextConfig", tp) for tp in (1, 2, 4)]


@needs_wheel
@pytest.mark.parametrize(("family", "config_class", "tp"), CASES)
def test_vllm_s_own_code_agrees_on_published_hybrids(
    family: str, config_class: str, tp: int, caplog: Any
) -> None:
    import torch
    import transformers

    interface, kv_utils = _load_vllm()
    mamba_utils, config_ns = _load_hybrid(interface)
    hf = getattr(transformers, config_class)()
    model = hf_model(hf.to_dict()).model()
    max_model_len = 8192
    fit = Fit(model, accelerator("h100"), dtype="bf16", seq_len=max_model_len, engine=Vllm())
    pages = Vllm().pages(fit, tp)

    shapes, dtypes = _state(mamba_utils, family, hf, tp)
    head = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
    kv = max(1, hf.num_key_value_heads // tp)
    cls = types.SimpleNamespace(
        get_mamba_state_shape_from_config=lambda c: shapes,
        get_mamba_state_dtype_from_config=lambda c: dtypes,
    )
    cache = types.SimpleNamespace(
        cache_dtype="auto",
        block_size=None,
        mamba_page_size_padded=None,
        num_gpu_blocks_override=None,
    )
    vllm_config = types.SimpleNamespace(
        cache_config=cache,
        model_config=types.SimpleNamespace(
            dtype=torch.bfloat16,
            get_num_kv_heads=lambda p: kv,
            get_head_size=lambda: head,
            max_model_len=max_model_len,
            architecture="",
        ),
        parallel_config=types.SimpleNamespace(
            tensor_parallel_size=tp, decode_context_parallel_size=1
        ),
        scheduler_config=types.SimpleNamespace(
            disable_hybrid_kv_cache_manager=False, max_num_batched_tokens=8192
        ),
    )
    config_ns["ModelRegistry"] = types.SimpleNamespace(resolve_model_cls=lambda *a, **k: (cls, ""))
    config_ns["HybridAttentionMambaModelConfig"].verify_and_update_config(vllm_config)
    assert pages.block_size == cache.block_size
    attention, mamba = _layers(family, hf)
    assert (pages.kinds, pages.mamba) == (((attention, None),), mamba)
    specs: dict[str, Any] = {}
    for i in range(attention):
        specs[f"attn.{i}"] = interface.FullAttentionSpec(
            block_size=cache.block_size, num_kv_heads=kv, head_size=head, dtype=torch.bfloat16
        )
    for i in range(mamba):  # gpu_model_runner.py get_kv_cache_spec: block_size=max_model_len
        specs[f"mamba.{i}"] = interface.MambaSpec(
            shapes=shapes,
            dtypes=dtypes,
            block_size=max_model_len,
            page_size_padded=cache.mamba_page_size_padded,
        )
    assert {s.page_size_bytes for s in specs.values()} == {pages.page}
    unpadded = interface.MambaSpec(shapes=shapes, dtypes=dtypes, block_size=max_model_len)
    assert pages.mamba_state == unpadded.page_size_bytes
    groups = kv_utils.get_kv_cache_groups(vllm_config, dict(specs))
    assert len(groups) == len(pages.groups)
    for available in (10**9, 3 * 10**10 + 12345, 61_987_654_321):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            kv_config = kv_utils.get_kv_cache_config_from_groups(
                vllm_config, groups, specs, available
            )
        assert pages.num_blocks(available) == kv_config.num_blocks
        logged = re.search(r"GPU KV cache size: ([\d,]+) tokens", caplog.text)
        assert logged is not None
        assert f"{pages.tokens(kv_config.num_blocks, max_model_len):,}" == logged.group(1)
        concurrency = pages.concurrency(kv_config.num_blocks, max_model_len, 8192)
        assert concurrency == pytest.approx(
            kv_utils.get_max_concurrency_for_kv_cache_config(vllm_config, kv_config)
        )
        assert f"{concurrency:.2f}x" in caplog.text
        size = sum(t.size for t in kv_config.kv_cache_tensors)
        assert pages.cache_bytes(kv_config.num_blocks) == size
    assert pages.needed(max_model_len, 8192) == kv_utils.max_memory_usage_bytes(
        vllm_config, specs.values()
    )


def test_qwen3_next_on_four_gpus_worked_through() -> None:
    """Qwen3-Next-80B-A3B (Qwen3NextConfig's defaults) at tensor parallel 4, by the rules
    of vLLM 0.11's source: the gated delta rule's state (gated_delta_net_state_shape):
    conv (4 − 1, (2·16·128 + 32·128) / 4) = 3 × 2,048 and SSM (32 / 4, 128, 128), in bf16:
    (6,144 + 131,072) × 2 = 274,432 bytes; an attention token: 2 × max(1, 2 / 4) KV heads ×
    256 × 2 = 1,024 bytes; the block 16 × cdiv(274,432, 16 × 1,024) = 272 tokens
    (HybridAttentionMambaModelConfig), the page 272 × 1,024 = 278,528 bytes; 12 full
    attention layers and 36 linear ones: groups of 12, 1 + 3 groups; a request of 8,192
    tokens needs cdiv(8,192, 272) + 3 = 34 blocks (get_max_concurrency_for_kv_cache_config)."""
    import transformers

    model = hf_model(transformers.Qwen3NextConfig().to_dict()).model()
    fit = Fit(model, accelerator("h100"), dtype="bf16", seq_len=8192, engine=Vllm(), gpus=4)
    pages = Vllm().pages(fit, 4)
    assert (pages.mamba_state, pages.token_page) == (274_432, 1_024)
    assert (pages.block_size, pages.page) == (272, 278_528)
    assert pages.group_size == 12 and len(pages.groups) == 4
    assert pages.blocks_per_request(8192, 8192) == 34
    blocks = pages.num_blocks(10**10)
    assert blocks == 10**10 // 278_528 // 12
    assert pages.tokens(blocks, 8192) == blocks // 4 * 272
    account = fit.account()
    line = account.line("KV cache")
    assert line is not None and "36 Mamba-like layers keep 274,432 bytes" in line.rule


def test_a_mamba_model_alone_takes_one_block_of_max_model_len_a_request() -> None:
    """Mamba layers alone: one MambaSpec kind (no padding, no attention); a block is
    max_model_len tokens (gpu_model_runner.py), so the cache holds num_blocks requests."""
    model = get("mamba")(vocab=1000, hidden=64, layers=4).model()
    fit = Fit(model, custom(1.0), dtype="bf16", seq_len=2048, engine=Vllm())
    pages = Vllm().pages(fit, 1)
    inner = 2 * 64  # expand 2
    assert pages.page == pages.mamba_state == ((4 - 1) * inner + inner * 16) * 2
    assert pages.kinds == () and pages.mamba == 4
    blocks = pages.num_blocks(10**6)
    assert blocks == 10**6 // pages.page // 4
    assert pages.concurrency(blocks, 2048, 2048) == blocks
    assert pages.tokens(blocks, 2048) == blocks * 2048


def test_a_state_split_unevenly_is_refused_naming_the_rule() -> None:
    model = get("jamba")(vocab=1000, hidden=96, layers=8, heads=4, intermediate=128).model()
    fit = Fit(model, custom(10.0), dtype="bf16", seq_len=512, engine=Vllm())
    Vllm().pages(fit, 1)
    with pytest.raises(ShapecalcError, match="evenly"):
        Vllm().pages(fit, 5)
