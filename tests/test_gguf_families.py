"""GGUF files of the families added after LLaMA's: gpt2, falcon, gptneox, mamba, deepseek2
(DeepSeek-V2 and V3), gpt-oss, gemma3 (text), olmo2, granite, phi2, command-r, mamba2.

Truth: tiny transformers models built on the meta device, converted here as llama.cpp's
``convert_hf_to_gguf.py`` converts them (each family's ``modify_tensors`` and
``set_gguf_parameters``, read at ggml-org/llama.cpp; the names by gguf-py's own
``TensorNameMap``), written by gguf-py's ``GGUFWriter`` and read back by ``inspect``; the
mixes' types by llama.cpp's ``src/llama-quant.cpp`` at commit
007dbbf3fd17eefe9b47fee45f48f7ba5e62b714 (``llama_tensor_get_type_impl``), which cannot
run here: each rule cited where it is tested.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.gguf import read_gguf
from shapecalc.adapters.gguf_arch import check_gguf
from shapecalc.core.dims import known
from shapecalc.quant import parse_weights, quantize
from shapecalc.quant.gguf import tensor_types
from shapecalc.quant.gguf_names import gguf_tensors
from tests.test_cli import run
from tests.test_gguf import _expanded, use_more_bits

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
Q = gguf.GGMLQuantizationType

_DENSE = {
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
#: case -> (GGUF architecture, model_type, a tiny config)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "gpt2": ("gpt2", "gpt2", {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 32}),
    "falcon-7b": (
        "falcon",
        "falcon",
        {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4},
    ),
    "falcon-40b": (
        "falcon",
        "falcon",
        {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_kv_heads": 2,
            "new_decoder_architecture": True,
            "bias": True,
        },
    ),
    "gpt_neox": (
        "gptneox",
        "gpt_neox",
        {
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
    ),
    "mamba": (
        "mamba",
        "mamba",
        {"hidden_size": 64, "num_hidden_layers": 2, "state_size": 8, "vocab_size": 90},
    ),
    "mamba2": (
        "mamba2",
        "mamba2",
        {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "vocab_size": 90,
            "state_size": 16,
            "head_dim": 16,
            "num_heads": 8,
            "n_groups": 2,
            "expand": 2,
        },
    ),
    "deepseek_v3": (
        "deepseek2",
        "deepseek_v3",
        {
            "hidden_size": 64,
            "intermediate_size": 96,
            "moe_intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "n_shared_experts": 1,
            "first_k_dense_replace": 1,
            "q_lora_rank": 32,
            "kv_lora_rank": 32,
            "qk_nope_head_dim": 16,
            "qk_rope_head_dim": 8,
            "v_head_dim": 24,
            "n_group": 1,
            "topk_group": 1,
        },
    ),
    "deepseek_v2": (
        "deepseek2",
        "deepseek_v2",
        {
            "hidden_size": 64,
            "intermediate_size": 96,
            "moe_intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "n_shared_experts": 2,
            "first_k_dense_replace": 1,
            "q_lora_rank": None,
            "kv_lora_rank": 32,
            "qk_nope_head_dim": 16,
            "qk_rope_head_dim": 8,
            "v_head_dim": 16,
            "n_group": 1,
            "topk_group": 1,
        },
    ),
    "gemma3_text": ("gemma3", "gemma3_text", {**_DENSE, "head_dim": 16}),
    "olmo2": ("olmo2", "olmo2", _DENSE),
    "granite": ("granite", "granite", _DENSE),
    "phi": ("phi2", "phi", {**_DENSE, "num_key_value_heads": 4, "intermediate_size": 256}),
    "cohere": ("command-r", "cohere", _DENSE),
    "gpt_oss": (
        "gpt-oss",
        "gpt_oss",
        {
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
        },
    ),
}


def hf(case: str, **change: Any) -> tuple[Any, Any]:
    """The transformers config and its model on the meta device."""
    _, model_type, kw = CASES[case]
    kw = {"vocab_size": 96, **kw, **change}
    config = transformers.AutoConfig.for_model(model_type, **kw)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    return config, model


# -- the converter, read from convert_hf_to_gguf.py ---------------------------------------------
def converted(case: str, config: Any, model: Any) -> list[tuple[str, tuple[int, ...]]]:
    """(GGUF name, torch shape) of every tensor the converter writes from the model's
    checkpoint (its state_dict, buffers it saves included), in its order."""
    arch = CASES[case][0]
    inv = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    names = gguf.get_tensor_name_map(inv[arch], config.num_hidden_layers)

    def name_of(name: str) -> str:
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert new is not None, name
        return str(new)

    out: list[tuple[str, tuple[int, ...]]] = []
    for name, tensor in model.state_dict().items():
        shape = tuple(tensor.shape)
        # a tied head is not in the checkpoint (save_pretrained leaves it out)
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        # ModelBase.prepare_tensors: "we don't need these"
        if name.endswith((".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")):
            continue
        if arch == "gpt2":
            if name.endswith((".attn.bias", ".attn.masked_bias")):
                continue
            # GPT2Model.modify_tensors: data_torch.transpose(1, 0)
            if name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
                shape = (shape[1], shape[0])
        if arch in ("mamba", "mamba2") and name.endswith("conv1d.weight"):
            shape = tuple(d for d in shape if d != 1)  # data_torch.squeeze()
        if arch == "mamba2":  # Mamba2Model.modify_tensors
            if name.endswith(".dt_bias"):
                name = name.rpartition(".dt_bias")[0] + ".dt_proj.bias"
            if name.endswith((".A_log", ".D")):
                shape = (*shape, 1)  # data_torch.reshape((*data_torch.shape, 1))
            if name.endswith("mixer.norm.weight"):  # (n_group, d_inner // n_group)
                shape = (config.n_groups, shape[0] // config.n_groups)
        if arch == "deepseek2":
            if name.endswith("mlp.experts.gate_up_proj"):
                # the checkpoint's experts.X.gate_proj / up_proj (F, H), stacked
                e, two_f, h = shape
                base = name[: -len("gate_up_proj")]
                out.append((name_of(base + "gate_proj.weight"), (e, two_f // 2, h)))
                out.append((name_of(base + "up_proj.weight"), (e, two_f // 2, h)))
                continue
            if name.endswith("mlp.experts.down_proj"):
                out.append((name_of(name + ".weight"), shape))
                continue
            if name.endswith("kv_b_proj.weight"):
                # kv_b.view(n_head_kv, v + nope, R); split; k_b.transpose(1, 2)
                kv = config.num_key_value_heads
                nope, v = config.qk_nope_head_dim, config.v_head_dim
                assert shape[0] == kv * (v + nope)
                k_b = (kv, shape[1], nope)
                v_b = (kv, v, shape[1])
                out.append((name_of(name.replace("kv_b_proj", "k_b_proj")), k_b))
                out.append((name_of(name.replace("kv_b_proj", "v_b_proj")), v_b))
                continue
            if name.endswith("e_score_correction_bias"):
                name = name.replace("e_score_correction_bias", "e_score_correction.bias")
        if arch == "gpt-oss":
            if name.endswith("sinks"):
                name += ".weight"  # GptOssModel.filter_tensors
            # GptOssModel.modify_tensors, the path of experts not in MXFP4
            if name.endswith("down_proj_bias"):
                out.append((name_of(name.replace("down_proj_bias", "down_proj.bias")), shape))
                continue
            if name.endswith("gate_up_proj_bias"):
                half = (shape[0], shape[1] // 2)  # [..., ::2] and [..., 1::2]
                out.append((name_of(name.replace("gate_up_proj_bias", "gate_proj.bias")), half))
                out.append((name_of(name.replace("gate_up_proj_bias", "up_proj.bias")), half))
                continue
            if name.endswith("experts.down_proj"):
                e, f, h = shape  # transpose(-1, -2)
                out.append((name_of(name.replace("down_proj", "down_proj.weight")), (e, h, f)))
                continue
            if name.endswith("experts.gate_up_proj"):
                e, h, two_f = shape  # transpose(-1, -2), then [:, ::2, :] and [:, 1::2, :]
                half = (e, two_f // 2, h)
                out.append((name_of(name.replace("gate_up_proj", "gate_proj.weight")), half))
                out.append((name_of(name.replace("gate_up_proj", "up_proj.weight")), half))
                continue
        out.append((name_of(name), shape))
    return out


def source_type(name: str, shape: tuple[int, ...]) -> Any:
    """ModelBase.prepare_tensors with --outtype f16: F32 for 1-D tensors, norms, the
    tensors it lists (routers, position embeddings, ssm_conv1d) and whatever does not end
    in .weight; F16 else."""
    keep = ("ffn_gate_inp.weight", "position_embd.weight", "ssm_conv1d.weight")
    if len(shape) <= 1 or name.endswith(("_norm.weight", *keep)) or not name.endswith(".weight"):
        return Q.F32
    return Q.F16


def metadata(case: str, config: Any) -> dict[str, Any]:
    """What each family's set_gguf_parameters writes of the sizes."""
    arch = CASES[case][0]
    c = config
    if arch == "gpt2":  # GPT2Model
        return {
            "block_count": c.n_layer,
            "context_length": c.n_positions,
            "embedding_length": c.n_embd,
            "feed_forward_length": 4 * c.n_embd,
            "attention.head_count": c.n_head,
        }
    if arch == "falcon":  # FalconModel (head_count_kv: the key heads llama.cpp builds)
        return {
            "context_length": 2048,
            "embedding_length": c.hidden_size,
            "feed_forward_length": 4 * c.hidden_size,
            "block_count": c.num_hidden_layers,
            "attention.head_count": c.num_attention_heads,
            "attention.head_count_kv": c.num_key_value_heads,
        }
    if arch == "gptneox":  # GPTNeoXModel
        return {
            "context_length": c.max_position_embeddings,
            "embedding_length": c.hidden_size,
            "block_count": c.num_hidden_layers,
            "feed_forward_length": c.intermediate_size,
            "attention.head_count": c.num_attention_heads,
        }
    if arch == "mamba":  # MambaModel
        return {
            "embedding_length": c.hidden_size,
            "feed_forward_length": 0,
            "attention.head_count": 0,
            "block_count": c.num_hidden_layers,
            "ssm.conv_kernel": c.conv_kernel,
            "ssm.inner_size": c.intermediate_size,
            "ssm.state_size": c.state_size,
            "ssm.time_step_rank": c.time_step_rank,
        }
    if arch == "mamba2":  # Mamba2Model
        inner = c.expand * c.hidden_size
        return {
            "embedding_length": c.hidden_size,
            "feed_forward_length": 0,
            "attention.head_count": 0,
            "block_count": c.num_hidden_layers,
            "ssm.conv_kernel": c.conv_kernel,
            "ssm.inner_size": inner,
            "ssm.state_size": c.state_size,
            "ssm.time_step_rank": inner // c.head_dim,
            "ssm.group_count": c.n_groups,
        }
    if arch == "deepseek2":  # DeepseekV2Model
        meta = {
            "block_count": c.num_hidden_layers,
            "embedding_length": c.hidden_size,
            "feed_forward_length": c.intermediate_size,
            "attention.head_count": c.num_attention_heads,
            "attention.head_count_kv": 1,
            "expert_used_count": c.num_experts_per_tok,
            "leading_dense_block_count": c.first_k_dense_replace,
            "vocab_size": c.vocab_size,
            "attention.kv_lora_rank": c.kv_lora_rank,
            "attention.key_length": c.kv_lora_rank + c.qk_rope_head_dim,
            "attention.value_length": c.kv_lora_rank,
            "attention.key_length_mla": c.qk_nope_head_dim + c.qk_rope_head_dim,
            "attention.value_length_mla": c.v_head_dim,
            "expert_feed_forward_length": c.moe_intermediate_size,
            "expert_count": c.n_routed_experts,
            "expert_shared_count": c.n_shared_experts,
            "rope.dimension_count": c.qk_rope_head_dim,
        }
        if c.q_lora_rank is not None:
            meta["attention.q_lora_rank"] = c.q_lora_rank
        return meta
    if arch == "phi2":  # Phi2Model
        return {
            "context_length": c.max_position_embeddings,
            "embedding_length": c.hidden_size,
            "feed_forward_length": 4 * c.hidden_size,
            "block_count": c.num_hidden_layers,
            "attention.head_count": c.num_attention_heads,
            "attention.head_count_kv": c.num_attention_heads,
        }
    if arch in ("gemma3", "olmo2", "granite", "command-r"):  # TextModel's, LlamaModel's
        meta = {
            "block_count": c.num_hidden_layers,
            "embedding_length": c.hidden_size,
            "feed_forward_length": c.intermediate_size,
            "attention.head_count": c.num_attention_heads,
            "attention.head_count_kv": c.num_key_value_heads,
        }
        if arch == "gemma3":  # Gemma3Model: head_dim
            meta["attention.key_length"] = c.head_dim
        return meta
    assert arch == "gpt-oss"  # GptOssModel (and TextModel's)
    return {
        "block_count": c.num_hidden_layers,
        "embedding_length": c.hidden_size,
        "feed_forward_length": c.intermediate_size,
        "attention.head_count": c.num_attention_heads,
        "attention.head_count_kv": c.num_key_value_heads,
        "attention.key_length": c.head_dim,
        "attention.value_length": c.head_dim,
        "attention.sliding_window": c.sliding_window,
        "expert_feed_forward_length": c.intermediate_size,
        "expert_count": c.num_local_experts,
        "expert_used_count": c.num_experts_per_tok,
    }


def write_file(
    path: Path,
    arch: str,
    meta: dict[str, Any],
    tensors: list[tuple[str, tuple[int, ...]]],
    vocab: int,
    types: dict[str, Any] | None = None,
) -> Path:
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in meta.items():
        writer.add_uint32(f"{arch}.{key}", value)
    writer.add_token_list([f"t{i}" for i in range(vocab)])
    for name, shape in tensors:
        qtype = (types or {}).get(name, source_type(name, shape))
        if qtype in (Q.F32, Q.F16):
            writer.add_tensor(name, np.zeros(shape, np.float32 if qtype == Q.F32 else np.float16))
        else:
            raw = np.zeros(gguf.quants.quant_shape_to_byte_shape(shape, qtype), np.uint8)
            writer.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def convert(case: str, tmp_path: Path, **change: Any) -> tuple[Path, Any, Any]:
    config, model = hf(case, **change)
    tensors = converted(case, config, model)
    vocab = config.vocab_size
    if CASES[case][0] == "mamba":  # MambaModel.set_vocab: padded to a multiple of 8
        vocab = -(vocab // -8) * 8
    if CASES[case][0] == "mamba2":  # Mamba2Model.set_vocab: to a multiple of 16
        vocab = -(vocab // -16) * 16
    path = write_file(
        tmp_path / f"{case}.gguf", CASES[case][0], metadata(case, config), tensors, vocab
    )
    return path, config, model


# -- the names ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_names_and_shapes_are_the_converters(case: str) -> None:
    from shapecalc.adapters.hf_config import hf_model

    config, model = hf(case)
    mine = hf_model(config.to_dict()).model()
    made, unmapped = gguf_tensors(mine, buffers=True)
    assert not unmapped
    assert sorted((t.name, t.shape) for t in made) == sorted(converted(case, config, model))
    priced, _ = gguf_tensors(mine)  # the parameters alone, as a mix prices them
    assert [t for t in made if t.how != "buffer"] == priced


# -- the check of a file ------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_converted_file_agrees_with_its_metadata(case: str, tmp_path: Path) -> None:
    path, _, model = convert(case, tmp_path)
    check = check_gguf(read_gguf(str(path)))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    assert check.model_type == CASES[case][1]
    assert check.expected_total == sum(p.numel() for p in model.parameters())
    result = run(["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "The file agrees with its metadata." in result.stdout


@settings(max_examples=6, deadline=None)
@given(
    layers=st.integers(1, 3),
    heads=st.sampled_from([2, 4, 8]),
    state=st.integers(2, 12),
    case=st.sampled_from(["gpt2", "falcon-40b", "mamba", "gpt_neox"]),
)
def test_drawn_sizes_agree(
    layers: int, heads: int, state: int, case: str, tmp_path_factory: Any
) -> None:
    change: dict[str, Any] = {
        "gpt2": {"n_layer": layers, "n_head": heads},
        "falcon-40b": {"num_hidden_layers": layers, "num_attention_heads": heads},
        "mamba": {"num_hidden_layers": layers, "state_size": state},
        "gpt_neox": {"num_hidden_layers": layers, "num_attention_heads": heads},
    }[case]
    path, _, model = convert(case, tmp_path_factory.mktemp("g"), **change)
    check = check_gguf(read_gguf(str(path)))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    assert check.expected_total == sum(p.numel() for p in model.parameters())


def test_gpt_oss_in_mxfp4_agrees(tmp_path: Path) -> None:
    """The original checkpoint's experts, repacked to MXFP4 (GptOssModel.repack_mxfp4):
    the same shapes, in 4.25 bits."""
    config, model = hf("gpt_oss")
    tensors = converted("gpt_oss", config, model)
    types = {n: Q.MXFP4 for n, s in tensors if "_exps.weight" in n}
    path = write_file(
        tmp_path / "oss.gguf", "gpt-oss", metadata("gpt_oss", config), tensors, 96, types
    )
    check = check_gguf(read_gguf(str(path)))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    result = run(["inspect", str(path)])
    assert result.exit_code == 0 and "MXFP4" in result.stdout, result.output


def _tampered(case: str, tmp_path: Path, how: str) -> Path:
    config, model = hf(case)
    tensors = converted(case, config, model)
    meta = metadata(case, config)
    arch = CASES[case][0]
    if how == "missing":
        tensors = [t for t in tensors if t[0] != "blk.1.ffn_down.weight"]
    elif how == "shape":
        tensors = [(n, tuple(reversed(s)) if n == "blk.0.ssm_a" else s) for n, s in tensors]
    elif how == "metadata":
        meta = {**meta, "ssm.state_size": meta["ssm.state_size"] + 1}
    elif how == "flat norm":  # the gated norm not reshaped by groups
        tensors = [(n, (s[0] * s[1],) if n == "blk.1.ssm_norm.weight" else s) for n, s in tensors]
    pad = {"mamba": 8, "mamba2": 16}.get(arch, 1)
    vocab = -(config.vocab_size // -pad) * pad
    return write_file(tmp_path / f"{how.replace(' ', '_')}.gguf", arch, meta, tensors, vocab)


@pytest.mark.parametrize(
    ("case", "how", "said"),
    [
        ("gpt2", "missing", r"missing +blk\.1\.ffn_down\.weight \(64, 256\)"),
        ("mamba", "shape", r"wrong shape blk\.0\.ssm_a"),
        ("mamba", "metadata", r"wrong shape blk\.0\.ssm_x\.weight"),
        ("mamba2", "flat norm", r"wrong shape blk\.1\.ssm_norm\.weight"),
    ],
)
def test_a_tampered_file_is_refused(case: str, how: str, said: str, tmp_path: Path) -> None:
    path = _tampered(case, tmp_path, how)
    result = run(["inspect", str(path)])
    assert result.exit_code == 1, result.output
    assert re.search(said, result.stdout), result.stdout
    verdicts = [ln for ln in result.stdout.splitlines() if "does not agree" in ln]
    assert len(verdicts) == 1, result.stdout


def test_metadata_no_model_has_is_said(tmp_path: Path) -> None:
    """Metadata no model can have: the file is listed, not checked, the reason said
    (the field, its value and the rule) in one line on stderr, and the exit status is 2."""
    config, model = hf("deepseek_v3")
    meta = {**metadata("deepseek_v3", config), "attention.key_length_mla": 4}
    path = write_file(
        tmp_path / "d.gguf", "deepseek2", meta, converted("deepseek_v3", config, model), 96
    )
    result = run(["inspect", str(path)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1, result.stderr
    said = result.stderr
    assert "not checked against its architecture: deepseek2.attention.key_length_mla = 4" in said
    assert "is less than deepseek2.rope.dimension_count = 8: it is Dn + Dr" in said


# -- the mixes ----------------------------------------------------------------------------------
def _shapecalc(case: str, **change: Any) -> Any:
    from shapecalc.adapters.hf_config import hf_model

    config, _ = hf(case, **change)
    return hf_model(config.to_dict()).model()


def _types(model: Any, mix: str) -> dict[str, str]:
    """GGUF name -> the ggml type shapecalc prices it in (by the transformers tensor it
    comes from)."""
    q = quantize(model, parse_weights(mix))
    stored = {p.name: p.dtype for p in _expanded(q)}
    made, _ = gguf_tensors(model)
    out = {}
    for t in made:
        if t.how == "buffer":
            continue
        # a tensor whose parts get other types is stored as its parts (kv_b_proj's
        # attn_k_b.weight and attn_v_b.weight)
        if t.source in stored:
            out[t.name] = stored[t.source]
        else:
            out[t.name] = stored[t.source.rpartition(".")[0] + "." + t.name.split(".", 2)[2]]
    return out


BIG = {"n_embd": 256, "n_layer": 16, "n_head": 4, "vocab_size": 512}
FALCON = {"hidden_size": 256, "num_hidden_layers": 16, "num_attention_heads": 4, "vocab_size": 512}


def test_falcon_q4_k_m() -> None:
    """llama-quant.cpp: the output (and the tied token_embd) of Falcon in Q8_0
    (``arch == LLM_ARCH_FALCON || nx % qk_k != 0``); attn_qkv an attention-value tensor
    (category_is_attn_v): Q6_K where use_more_bits; ffn_down in Q4_K_M, Falcon's own
    rule: Q6_K below n_layer/16, Q5_K where use_more_bits, Q4_K else; attn_output keeps
    the base type (Falcon changes it in Q3_K_L only)."""
    types = _types(_shapecalc("falcon-7b", **FALCON), "q4_k_m")
    assert types["token_embd.weight"] == "Q8_0"
    for i in range(16):
        assert types[f"blk.{i}.attn_qkv.weight"] == ("Q6_K" if use_more_bits(i, 16) else "Q4_K")
        down = "Q6_K" if i < 1 else "Q5_K" if use_more_bits(i, 16) else "Q4_K"
        assert types[f"blk.{i}.ffn_down.weight"] == down, i
        assert types[f"blk.{i}.attn_output.weight"] == "Q4_K"
        assert types[f"blk.{i}.ffn_up.weight"] == "Q4_K"
        assert types[f"blk.{i}.attn_norm.weight"] == "float32"


def test_falcon_q3_k_m_and_q3_k_l() -> None:
    """Q3_K_M ffn_down: Q5_K below n/16, then Q4_K where use_more_bits and Q3_K else
    (``arch != LLM_ARCH_FALCON || use_more_bits``); Q3_K_L: Falcon's ffn_down and
    attn_output Q4_K (others' Q5_K)."""
    model = _shapecalc("falcon-7b", **FALCON)
    m = _types(model, "q3_k_m")
    for i in range(16):
        want = "Q5_K" if i < 1 else "Q4_K" if use_more_bits(i, 16) else "Q3_K"
        assert m[f"blk.{i}.ffn_down.weight"] == want, i
        assert m[f"blk.{i}.attn_output.weight"] == "Q3_K"  # falcon: only Q3_K_L raises it
    el = _types(model, "q3_k_l")
    assert {el[f"blk.{i}.ffn_down.weight"] for i in range(16)} == {"Q4_K"}
    assert {el[f"blk.{i}.attn_output.weight"] for i in range(16)} == {"Q4_K"}
    # Q2_K: attn_qkv by n_gqa = n_head / n_head_kv, Falcon-7B's one key head: 4 / 1
    assert _types(model, "q2_k")["blk.0.attn_qkv.weight"] == "Q4_K"


def test_gpt2_q4_k_m() -> None:
    """GPT-2: the tied token_embd takes the output's Q6_K; position_embd is never
    quantized (tensor_allows_quantization, LLM_TENSOR_POS_EMBD); attn_qkv by
    use_more_bits(i_attention_wv, n_attention_wv), ffn_down by use_more_bits."""
    types = _types(_shapecalc("gpt2", **BIG), "q4_k_m")
    assert types["token_embd.weight"] == "Q6_K"
    assert types["position_embd.weight"] == "float32"
    for i in range(16):
        more = use_more_bits(i, 16)
        assert types[f"blk.{i}.attn_qkv.weight"] == ("Q6_K" if more else "Q4_K")
        assert types[f"blk.{i}.ffn_down.weight"] == ("Q6_K" if more else "Q4_K")
        assert types[f"blk.{i}.attn_output.weight"] == "Q4_K"


def test_mamba_q4_k_m() -> None:
    """Mamba: ssm_conv1d, ssm_a and ssm_d are not quantized (``ssm_conv1d``, names not
    ending in weight, 1-D); ssm_x and ssm_dt fall back where their rows (d_inner, dt_rank)
    are not whole blocks of 256 (tensor_type_fallback: Q4_K -> Q5_0, else F16)."""
    model = _shapecalc("mamba", hidden_size=256, num_hidden_layers=4, vocab_size=512)
    types = _types(model, "q4_k_m")
    assert types["token_embd.weight"] == "Q6_K"  # tied
    assert types["blk.0.ssm_in.weight"] == "Q4_K"  # rows of 256
    assert types["blk.0.ssm_x.weight"] == "Q4_K"  # rows of d_inner 512
    assert types["blk.0.ssm_dt.weight"] == "float16"  # rows of dt_rank 16: not even 32
    assert types["blk.0.ssm_out.weight"] == "Q4_K"
    assert types["blk.0.ssm_conv1d.weight"] == "float32"
    assert types["blk.0.ssm_a"] == "float32" and types["blk.0.ssm_d"] == "float32"


def test_gpt_oss_mixes() -> None:
    """gpt-oss: MXFP4_MOE puts the 3-D experts (ne[2] > 1) in MXFP4 and every other
    quantized tensor in Q8_0; in Q4_K_M the sinks and routers stay F32."""
    model = _shapecalc(
        "gpt_oss", hidden_size=256, intermediate_size=256, num_attention_heads=8, head_dim=32
    )
    types = _types(model, "mxfp4_moe")
    assert types["blk.0.ffn_gate_exps.weight"] == "MXFP4"
    assert types["blk.0.ffn_down_exps.weight"] == "MXFP4"
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["output.weight"] == "Q8_0"
    assert types["blk.0.ffn_gate_inp.weight"] == "float32"
    types = _types(model, "q4_k_m")
    assert types["blk.0.attn_sinks.weight"] == "float32"
    assert types["blk.0.ffn_gate_exps.bias"] == "float32"
    assert types["blk.1.ffn_down_exps.weight"] == "Q6_K"  # use_more_bits(1, 2)


def test_deepseek_kv_b_halves() -> None:
    """DeepSeek's attn_k_b (rows of Dn) and attn_v_b (rows of R) are no attention-value
    tensors (tensor_get_category finds no ``attn_v.weight`` in ``attn_v_b.weight``):
    the base type, with the fallback. Where the two halves of kv_b_proj get two types
    (rows of 128 fall back to Q5_0, rows of 512 stay Q4_K), kv_b_proj is stored as its
    two parts, each in its type, as the file holds them."""
    model = _shapecalc("deepseek_v3", hidden_size=256, kv_lora_rank=256, qk_nope_head_dim=256)
    types = _types(model, "q4_k_m")
    assert types["blk.0.attn_k_b.weight"] == "Q4_K" and types["blk.0.attn_v_b.weight"] == "Q4_K"
    assert types["blk.1.ffn_gate_exps.weight"] == "Q4_K"
    result = run(
        [
            "deepseek",
            "--vocab",
            "512",
            "--hidden",
            "256",
            "--layers",
            "2",
            "--heads",
            "4",
            "--intermediate",
            "512",
            "--moe-intermediate",
            "256",
            "--experts",
            "4",
            "--experts-per-token",
            "2",
            "--shared-experts",
            "1",
            "--dense-layers",
            "1",
            "--kv-lora-rank",
            "512",
            "--weights",
            "q4_k_m",
            "--all",
        ]
    )
    assert result.exit_code == 0, result.output
    for part in ("attn_k_b", "attn_v_b"):
        assert f"model.layers.0.self_attn.kv_b_proj.{part}.weight" in result.stdout
    wide = _shapecalc("deepseek_v3", hidden_size=256, kv_lora_rank=512, qk_nope_head_dim=128)
    stored = {p.name: p.dtype for p in _expanded(quantize(wide, parse_weights("q4_k_m")))}
    kv_b = "model.layers.0.self_attn.kv_b_proj"
    assert f"{kv_b}.weight" not in stored
    assert stored[f"{kv_b}.attn_k_b.weight"] == "Q5_0"  # rows of Dn = 128: the fallback
    assert stored[f"{kv_b}.attn_v_b.weight"] == "Q4_K"  # rows of R = 512


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("mix", ["q8_0", "q4_k_m"])
def test_priced_types_are_the_rules(case: str, mix: str) -> None:
    """Every family priced tensor by tensor: shapecalc's types are tensor_types' on the
    converter's names and ne (the ported rules), the file's sizes as llama.cpp reads
    them."""
    from shapecalc.adapters.hf_config import hf_model

    config, model = hf(case)
    mine = hf_model(config.to_dict()).model()
    tensors = [(n, tuple(reversed(s))) for n, s in converted(case, config, model)]
    meta = metadata(case, config)
    heads = meta.get("attention.head_count", 0)
    try:
        plan = tensor_types(
            tensors,
            mix,
            arch=CASES[case][0],
            n_layer=meta["block_count"],
            n_head=heads,
            n_head_kv=meta.get("attention.head_count_kv", heads),
            n_expert=meta.get("expert_count", 0),
        )
    except ValueError as err:  # llama-quantize stops: shapecalc says so in one line
        result = quantize_refused(mine, mix)
        assert str(err) in result, (err, result)
        return
    want = {
        n: {"F32": "float32", "F16": "float16"}.get(t, t)
        for n, (_, t) in plan.items()
        if not n.endswith("exp_probs_b.bias")
    }
    halves: dict[str, set[str]] = {}
    made, _ = gguf_tensors(mine)
    for t in made:
        if t.name in want:
            halves.setdefault(t.source, set()).add(want[t.name])
    assert _types(mine, mix) == want  # kv_b_proj's parts each in its own type
    split = [s for s, v in halves.items() if len(v) > 1]
    if split:  # stored as its parts, the fast pricing of fit agreeing
        q = quantize(mine, parse_weights(mix))
        assert not any(p.name == split[0] for p in _expanded(q))
        fast = parse_weights(mix).method.stored_tensors(mine, parse_weights(mix)) or ()
        assert sum(known(p.nbytes(2)) for _, p in fast) == q.bytes("bf16")


def quantize_refused(model: Any, mix: str) -> str:
    from shapecalc.core.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError) as info:
        quantize(model, parse_weights(mix))
    return f"{info.value.message} {info.value.rule}"


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("case", ["gpt_oss", "deepseek_v3", "mamba2", "falcon-40b"])
def test_the_listing_fits(case: str, width: int, tmp_path: Path) -> None:
    path, _, _ = convert(case, tmp_path)
    for extra in ([], ["--format", "json"]):
        result = run(["inspect", str(path), *extra], width)
        assert result.exit_code == 0, result.output
        if not extra:
            assert max(len(line) for line in result.stdout.splitlines()) <= width


def test_published_headers_count_the_tensors_shapecalc_names() -> None:
    """The tensor counts llama.cpp's loader printed for published files:
    deepseek-v3-Q4_K_S.gguf, "1025 tensors" (ggml-org/llama.cpp issue #10981, build
    4407, converted before kv_b_proj was split); DeepSeek-V3-0324-UD-Q2_K_XL, "1086
    tensors" (ikawrakow/ik_llama.cpp pull 394: attn_k_b and attn_v_b for attn_kv_b);
    falcon-mamba-7b-Q4_K_S.gguf, "643 tensors" (ggml-org/llama.cpp issue #10109:
    Falcon-Mamba-7B, 64 Mamba layers of H 4096, its head not tied)."""
    from shapecalc.adapters.hf_config import hf_model

    v3 = hf_model({"model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"]})
    model = v3.model()
    split, unmapped = gguf_tensors(model, buffers=True)
    assert not unmapped and len(split) == 1086
    whole, _ = gguf_tensors(model, buffers=True, kv_b=True)
    assert len(whole) == 1025
    mamba = hf_model(
        {
            "model_type": "mamba",
            "architectures": ["MambaForCausalLM"],
            "hidden_size": 4096,
            "num_hidden_layers": 64,
            "vocab_size": 65024,
            "state_size": 16,
            "tie_word_embeddings": False,
        }
    ).model()
    assert len(gguf_tensors(mamba)[0]) == 643


def test_deepseek_before_the_split_agrees(tmp_path: Path) -> None:
    """A DeepSeek file converted before kv_b_proj was split holds attn_kv_b
    (A·(Dn + Dv), R): it agrees, and the note says which layout it is."""
    config, model = hf("deepseek_v3")
    tensors = []
    for name, shape in converted("deepseek_v3", config, model):
        if name.endswith("attn_k_b.weight"):
            heads, rank, nope = shape
            rows = heads * (nope + config.v_head_dim)
            tensors.append((name.replace("attn_k_b", "attn_kv_b"), (rows, rank)))
        elif not name.endswith("attn_v_b.weight"):
            tensors.append((name, shape))
    path = write_file(
        tmp_path / "old.gguf", "deepseek2", metadata("deepseek_v3", config), tensors, 96
    )
    check = check_gguf(read_gguf(str(path)))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    assert any("whole (attn_kv_b)" in n for n in check.notes)
