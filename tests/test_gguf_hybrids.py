"""GGUF files of the hybrid and MTP families: jamba (per-layer key heads), falcon-h1,
glm4moe (GLM-4.5, its MTP layers counted in block_count), qwen3next (Qwen3-Next, its
in_proj_qkvz split in two) and cohere2 (Command R7B).

Truth: tiny transformers models built on the meta device, their checkpoints converted
here as llama.cpp's converter converts them (each class's ``modify_tensors`` and
``set_gguf_parameters``, read at ggml-org/llama.cpp: conversion/jamba.py JambaModel,
conversion/falcon_h1.py FalconH1Model over conversion/mamba.py Mamba2Model,
conversion/glm.py Glm4MoeModel, conversion/qwen.py Qwen3NextModel,
conversion/command_r.py Cohere2Model; the names by
gguf-py 0.19's own ``TensorNameMap``), written by gguf-py's ``GGUFWriter`` and read back by
``inspect``; the mixes by llama.cpp's src/llama-quant.cpp (commit
007dbbf3fd17eefe9b47fee45f48f7ba5e62b714), which cannot run here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shapecalc.adapters.gguf import read_gguf
from shapecalc.adapters.gguf_arch import check_gguf
from shapecalc.core.dims import known
from shapecalc.quant import parse_weights, quantize
from shapecalc.quant.gguf import tensor_types
from shapecalc.quant.gguf_names import gguf_tensors
from tests.test_cli import run
from tests.test_gguf_families import _types, quantize_refused, source_type

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
Q = gguf.GGMLQuantizationType

#: case -> (GGUF architecture, model_type, a tiny config)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "jamba": (
        "jamba",
        "jamba",
        {
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "attn_layer_offset": 1,
            "attn_layer_period": 2,
            "expert_layer_offset": 1,
            "expert_layer_period": 2,
            "mamba_d_state": 8,
        },
    ),
    "jamba-first-attends": (
        "jamba",
        "jamba",
        {
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 5,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "num_experts": 3,
            "num_experts_per_tok": 1,
            "attn_layer_offset": 0,
            "attn_layer_period": 3,
            "expert_layer_offset": 0,
            "expert_layer_period": 2,
            "mamba_d_state": 4,
            "tie_word_embeddings": True,
        },
    ),
    "falcon_h1": (
        "falcon-h1",
        "falcon_h1",
        {
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "mamba_d_ssm": 128,
            "mamba_n_heads": 8,
            "mamba_d_head": 16,
            "mamba_n_groups": 2,
            "mamba_d_state": 8,
            "mamba_rms_norm": True,
        },
    ),
    "glm4_moe": (
        "glm4moe",
        "glm4_moe",
        {
            "hidden_size": 64,
            "intermediate_size": 96,
            "moe_intermediate_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "n_shared_experts": 1,
            "first_k_dense_replace": 1,
            "use_qk_norm": True,
            "num_nextn_predict_layers": 1,
        },
    ),
    "qwen3_next": (
        "qwen3next",
        "qwen3_next",
        {
            "hidden_size": 64,
            "intermediate_size": 96,
            "moe_intermediate_size": 32,
            "shared_expert_intermediate_size": 48,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "linear_num_value_heads": 4,
            "linear_num_key_heads": 2,
            "linear_key_head_dim": 8,
            "linear_value_head_dim": 12,
            "full_attention_interval": 2,
        },
    ),
    "cohere2": (
        "cohere2",
        "cohere2",
        {
            "hidden_size": 64,
            "intermediate_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        },
    ),
}


def hf(case: str, **change: Any) -> tuple[Any, Any]:
    """The transformers config and its model on the meta device."""
    _, model_type, kw = CASES[case]
    kw = {"vocab_size": 96, **kw, **change}
    config = transformers.AutoConfig.for_model(model_type, **kw)
    if model_type == "cohere2":  # its default eos (255001) is outside a tiny vocabulary
        config.eos_token_id = config.bos_token_id = config.pad_token_id = 0
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    return config, model


def checkpoint(case: str, config: Any, model: Any) -> list[tuple[str, tuple[int, ...]]]:
    """The checkpoint's tensors (save_pretrained's): the model's state dict, a tied head
    left out, fused experts as the Hub's per-expert tensors are stacked (E, F, H); for
    glm4moe the MTP layers transformers does not build (``model.layers.L.``: a decoder
    layer with experts, eh_proj, enorm, hnorm, shared_head.norm and, in full
    checkpoints, embed_tokens and shared_head.head)."""
    out = []
    sd = {n: tuple(t.shape) for n, t in model.state_dict().items()}
    for name, shape in sd.items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        out.append((name, shape))
    if CASES[case][0] == "glm4moe":
        last = config.num_hidden_layers - 1
        h, v = config.hidden_size, config.vocab_size
        for k in range(config.num_nextn_predict_layers):
            index = config.num_hidden_layers + k
            for name, shape in sd.items():
                if name.startswith(f"model.layers.{last}."):
                    out.append((f"model.layers.{index}." + name.split(".", 3)[3], shape))
            for rest, shape in (
                ("eh_proj.weight", (h, 2 * h)),
                ("enorm.weight", (h,)),
                ("hnorm.weight", (h,)),
                ("shared_head.norm.weight", (h,)),
                ("embed_tokens.weight", (v, h)),
                ("shared_head.head.weight", (v, h)),
            ):
                out.append((f"model.layers.{index}.{rest}", shape))
    return out


def converted(
    case: str, config: Any, model: Any, full_mtp: bool = True
) -> list[tuple[str, tuple[int, ...]]]:
    """(GGUF name, torch shape) of every tensor the converter writes, in its order."""
    arch = CASES[case][0]
    inv = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    block_count = config.num_hidden_layers + getattr(config, "num_nextn_predict_layers", 0)
    names = gguf.get_tensor_name_map(inv[arch], block_count)

    def name_of(name: str) -> str:
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert new is not None, name
        return str(new)

    out: list[tuple[str, tuple[int, ...]]] = []
    for name, shape in checkpoint(case, config, model):
        if not full_mtp and name.endswith(
            ("layers.2.embed_tokens.weight", "shared_head.head.weight")
        ):
            continue
        # ModelBase.filter_tensors: the router's bias under the deepseek-v3 slot name
        if name.endswith("e_score_correction_bias"):
            name = name.replace("e_score_correction_bias", "e_score_correction.bias")
        if ".experts.gate_up_proj" in name:  # Hub checkpoints: experts.X.gate_proj, up_proj
            base = name.replace("experts.gate_up_proj", "")
            layer = base.replace("feed_forward.", "mlp.")  # JambaModel: "mlp.experts.{wid}"
            e, two_f, h = shape
            out.append((name_of(layer + "experts.gate_proj.weight"), (e, two_f // 2, h)))
            out.append((name_of(layer + "experts.up_proj.weight"), (e, two_f // 2, h)))
            continue
        if ".experts.down_proj" in name:
            layer = name.replace("experts.down_proj", "").replace("feed_forward.", "mlp.")
            out.append((name_of(layer + "experts.down_proj.weight"), shape))
            continue
        if arch == "qwen3next":  # Qwen3NextModel.modify_tensors
            if name.endswith(".dt_bias"):
                name = name.rpartition(".dt_bias")[0] + ".dt_proj.bias"
            if "conv1d" in name:
                shape = tuple(d for d in shape if d != 1)
            if name.endswith("in_proj_qkvz.weight"):
                # q, k, v of every key head cat'd (attn_qkv), z (attn_gate)
                bid = name.split(".")[2]
                z = config.linear_num_value_heads * config.linear_value_head_dim
                out.append((f"blk.{bid}.attn_qkv.weight", (shape[0] - z, shape[1])))
                out.append((f"blk.{bid}.attn_gate.weight", (z, shape[1])))
                continue
        if arch == "cohere2" and name.endswith(".bias"):
            continue  # Cohere2Model.modify_tensors: zero biases skipped
        if arch in ("jamba", "falcon-h1") and name.endswith("conv1d.weight"):
            shape = tuple(d for d in shape if d != 1)  # data_torch.squeeze()
        if arch == "falcon-h1":  # Mamba2Model.modify_tensors, FalconH1Model's
            if name.endswith(".dt_bias"):
                name = name.rpartition(".dt_bias")[0] + ".dt_proj.bias"
            if name.endswith((".A_log", ".D")):
                shape = (*shape, 1)
            if name.endswith("mamba.norm.weight"):
                groups = config.mamba_n_groups
                shape = (groups, config.mamba_d_ssm // groups)
        out.append((name_of(name), shape))
    return out


def metadata(case: str, config: Any) -> dict[str, Any]:
    """What each class's set_gguf_parameters writes of the sizes (lists: arrays)."""
    arch = CASES[case][0]
    c = config
    if arch == "jamba":  # JambaModel: head_count_kv one per layer
        offset, period = c.attn_layer_offset, c.attn_layer_period
        kv = [0] * offset + [
            c.num_key_value_heads if (i - offset) % period == 0 else 0
            for i in range(offset, c.num_hidden_layers)
        ]
        return {
            "block_count": c.num_hidden_layers,
            "context_length": c.max_position_embeddings,
            "embedding_length": c.hidden_size,
            "feed_forward_length": c.intermediate_size,
            "attention.head_count": c.num_attention_heads,
            "attention.head_count_kv": kv,
            "ssm.conv_kernel": c.mamba_d_conv,
            "ssm.inner_size": c.mamba_expand * c.hidden_size,
            "ssm.state_size": c.mamba_d_state,
            "ssm.time_step_rank": c.mamba_dt_rank,
            "expert_count": c.num_experts,
            "expert_used_count": c.num_experts_per_tok,
        }
    if arch == "falcon-h1":  # Mamba2Model's, then FalconH1Model's overrides
        return {
            "context_length": c.max_position_embeddings,
            "embedding_length": c.hidden_size,
            "feed_forward_length": c.intermediate_size,
            "attention.head_count": c.num_attention_heads,
            "block_count": c.num_hidden_layers,
            "ssm.conv_kernel": c.mamba_d_conv,
            "ssm.inner_size": c.mamba_d_ssm,
            "ssm.state_size": c.mamba_d_state,
            "ssm.time_step_rank": c.mamba_d_ssm // c.mamba_d_head,
            "ssm.group_count": c.mamba_n_groups,
            "vocab_size": c.vocab_size,
            "attention.head_count_kv": c.num_key_value_heads,
            "attention.key_length": c.head_dim,
            "attention.value_length": c.head_dim,
        }
    meta = {  # TextModel.set_gguf_parameters
        "block_count": c.num_hidden_layers + getattr(c, "num_nextn_predict_layers", 0),
        "embedding_length": c.hidden_size,
        "feed_forward_length": c.intermediate_size,
        "attention.head_count": c.num_attention_heads,
        "attention.head_count_kv": c.num_key_value_heads,
        "attention.key_length": c.head_dim,
        "attention.value_length": c.head_dim,
    }
    if arch == "glm4moe":  # Glm4MoeModel
        meta.update(
            {
                "expert_count": c.n_routed_experts,
                "expert_feed_forward_length": c.moe_intermediate_size,
                "expert_shared_count": c.n_shared_experts,
                "leading_dense_block_count": c.first_k_dense_replace,
                "expert_used_count": c.num_experts_per_tok,
                "nextn_predict_layers": c.num_nextn_predict_layers,
            }
        )
    if arch == "qwen3next":  # Qwen2MoeModel's, Qwen3NextModel's
        meta.update(
            {
                "expert_count": c.num_experts,
                "expert_used_count": c.num_experts_per_tok,
                "expert_feed_forward_length": c.moe_intermediate_size,
                "expert_shared_feed_forward_length": c.shared_expert_intermediate_size,
                "ssm.conv_kernel": c.linear_conv_kernel_dim,
                "ssm.state_size": c.linear_key_head_dim,
                "ssm.group_count": c.linear_num_key_heads,
                "ssm.time_step_rank": c.linear_num_value_heads,
                "ssm.inner_size": c.linear_value_head_dim * c.linear_num_value_heads,
                # hparams.get("full_attention_interval", 4) of the Hub's config.json
                # (transformers keeps it as layer_types)
                "full_attention_interval": _interval(c),
            }
        )
    if arch == "cohere2":  # Cohere2Model
        meta["vocab_size"] = c.vocab_size
        meta["attention.sliding_window"] = c.sliding_window
    return meta


def _interval(config: Any) -> int:
    """The full_attention_interval config.json says, as transformers' layer_types
    spell it (layer i full when (i + 1) % interval == 0)."""
    interval = CASES["qwen3_next"][2]["full_attention_interval"]
    full = ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(4)]
    assert list(config.layer_types)[:4] == full[: len(config.layer_types)]
    return int(interval)


def write_file(
    path: Path,
    arch: str,
    meta: dict[str, Any],
    tensors: list[tuple[str, tuple[int, ...]]],
    vocab: int,
) -> Path:
    writer = gguf.GGUFWriter(str(path), arch)
    for key, value in meta.items():
        if isinstance(value, list):
            writer.add_array(f"{arch}.{key}", value)  # add_head_count_kv(list)
        else:
            writer.add_uint32(f"{arch}.{key}", value)
    writer.add_token_list([f"t{i}" for i in range(vocab)])
    for name, shape in tensors:
        qtype = source_type(name, shape)
        writer.add_tensor(name, np.zeros(shape, np.float32 if qtype == Q.F32 else np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def convert(case: str, tmp_path: Path, **change: Any) -> tuple[Path, Any, Any]:
    config, model = hf(case, **change)
    path = write_file(
        tmp_path / f"{case}.gguf",
        CASES[case][0],
        metadata(case, config),
        converted(case, config, model),
        config.vocab_size,
    )
    return path, config, model


def _mine(case: str, **change: Any) -> Any:
    from shapecalc.adapters.hf_config import hf_model

    config, _ = hf(case, **change)
    return hf_model(config.to_dict()).model()


# -- the names ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_names_and_shapes_are_the_converters(case: str) -> None:
    config, model = hf(case)
    mtp = getattr(config, "num_nextn_predict_layers", 0)
    made, unmapped = gguf_tensors(_mine(case), buffers=True, mtp=mtp)
    assert not unmapped
    assert sorted((t.name, t.shape) for t in made) == sorted(converted(case, config, model))


# -- the check of a file ------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_converted_file_agrees_with_its_metadata(case: str, tmp_path: Path) -> None:
    path, _, model = convert(case, tmp_path)
    file = read_gguf(str(path))
    check = check_gguf(file)
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    assert check.model_type == CASES[case][1]
    # every tensor the file holds is one the check expected, the MTP layers' included
    assert check.matched == len(file.tensors)
    stored = sum(t.count for t in file.tensors if not t.name.endswith("exp_probs_b.bias"))
    assert check.expected_total == stored
    own = sum(p.numel() for n, p in model.named_parameters())
    if case != "glm4_moe":
        assert own == stored
    else:  # the MTP layer transformers does not build is in the file and the total
        assert stored > own and any("MTP (nextn)" in n for n in check.notes)
    result = run(["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "The file agrees with its metadata." in result.stdout


def test_glm4moe_without_the_optional_mtp_tensors_agrees(tmp_path: Path) -> None:
    """src/models/glm4-moe.cpp: nextn.embed_tokens and nextn.shared_head_head are
    TENSOR_NOT_REQUIRED (the main embedding and head serve): a file without them agrees;
    without eh_proj (required) it does not."""
    config, model = hf("glm4_moe")
    tensors = converted("glm4_moe", config, model, full_mtp=False)
    meta = metadata("glm4_moe", config)
    path = write_file(tmp_path / "lean.gguf", "glm4moe", meta, tensors, 96)
    check = check_gguf(read_gguf(str(path)))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    tensors = [t for t in tensors if t[0] != "blk.2.nextn.eh_proj.weight"]
    path = write_file(tmp_path / "no_eh.gguf", "glm4moe", meta, tensors, 96)
    result = run(["inspect", str(path)])
    assert result.exit_code == 1, result.output
    assert re.search(r"missing +blk\.2\.nextn\.eh_proj\.weight \(64, 128\)", result.stdout)


@settings(max_examples=6, deadline=None)
@example(layers=1, period=3, offset=2, expert_period=1, expert_offset=0)  # past the last
@given(
    layers=st.integers(1, 7),
    period=st.integers(1, 4),
    offset=st.integers(0, 3),
    expert_period=st.integers(1, 3),
    expert_offset=st.integers(0, 2),
)
def test_drawn_jamba_layouts_agree(
    layers: int,
    period: int,
    offset: int,
    expert_period: int,
    expert_offset: int,
    tmp_path_factory: Any,
) -> None:
    """Any layout transformers builds (offset < period): the per-layer key heads and the
    layers holding ffn_gate_inp give it back. With the first attention layer past the
    last layer, JambaModel's ``[0] * attn_offset + [...]`` holds more values than layers,
    a file llama.cpp refuses too (llama-model-loader.cpp, get_key_or_arr: "has wrong
    array length"): refused in one Error line naming the key, exit 2."""
    offset, expert_offset = offset % period, expert_offset % expert_period
    change = {
        "num_hidden_layers": layers,
        "attn_layer_period": period,
        "attn_layer_offset": offset,
        "expert_layer_period": expert_period,
        "expert_layer_offset": expert_offset,
    }
    path, _, model = convert("jamba", tmp_path_factory.mktemp("j"), **change)
    if offset > layers:
        result = run(["inspect", str(path)])
        assert result.exit_code == 2, result.output  # metadata that describes no model
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, result.output
        said = f"jamba.attention.head_count_kv has {offset} values for {layers} layers"
        assert said in errors[0], result.output
        return
    check = check_gguf(read_gguf(str(path)))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    assert check.expected_total == sum(p.numel() for p in model.parameters())


def _written(tmp_path: Path, case: str, **meta_change: Any) -> Path:
    config, model = hf(case)
    meta = {**metadata(case, config), **meta_change}
    return write_file(tmp_path / "t.gguf", CASES[case][0], meta, converted(case, config, model), 96)


@pytest.mark.parametrize(
    ("case", "change", "said"),
    [
        (
            "jamba",
            {"attention.head_count_kv": [0, 2, 0]},
            "jamba.attention.head_count_kv has 3 values for 4 layers (block_count): a "
            "per-layer value has one per layer",
        ),
        (
            "jamba",
            {"attention.head_count_kv": [0, 2, 2, 0]},
            "the attention layers (jamba.attention.head_count_kv not 0) are 1, 2: Jamba's "
            "are every period-th layer",
        ),
        (
            "jamba",
            {"attention.head_count_kv": [0, 2, 0, 1]},
            "jamba.attention.head_count_kv gives the attention layers other key heads",
        ),
        (
            "glm4_moe",
            {"nextn_predict_layers": 3},
            "glm4moe.nextn_predict_layers = 3 is not below glm4moe.block_count = 3",
        ),
        (
            "cohere2",
            {"attention.head_count": [4, 2]},
            "cohere2.attention.head_count differs from layer to layer (4, 2): shapecalc "
            "checks cohere2 models whose layers are alike",
        ),
    ],
)
def test_metadata_no_model_has_is_said(
    case: str, change: dict[str, Any], said: str, tmp_path: Path
) -> None:
    """Per-layer arrays of the wrong length or a layout no model has: the file is listed,
    not checked, and the error says so in one line naming the key, exit 2 (metadata that
    describes no model is bad input)."""
    result = run(["inspect", str(_written(tmp_path, case, **change))])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and said in errors[0], result.output


def test_a_per_layer_array_of_one_value_is_that_value(tmp_path: Path) -> None:
    """llama.cpp's loader (get_key_or_arr) takes an array of block_count values for a
    head count: the same value on every layer is a model whose layers are alike."""
    path = _written(tmp_path, "cohere2", **{"attention.head_count_kv": [2, 2]})
    check = check_gguf(read_gguf(str(path)))
    assert check.ok and check.config["num_key_value_heads"] == 2


def test_per_layer_arrays_in_a_family_of_alike_layers(tmp_path: Path) -> None:
    """OLMo 2 (metadata read the LLaMA way): head_count_kv as an array of one value per
    layer is that value; of another length it is refused, the key named."""
    from tests.test_gguf_families import converted as family_converted
    from tests.test_gguf_families import hf as family_hf
    from tests.test_gguf_families import metadata as family_metadata

    config, model = family_hf("olmo2")
    tensors = family_converted("olmo2", config, model)
    for kv, ok in (([2, 2], True), ([2, 2, 2], False)):
        meta = {**family_metadata("olmo2", config), "attention.head_count_kv": kv}
        path = write_file(tmp_path / f"o{len(kv)}.gguf", "olmo2", meta, tensors, 96)
        result = run(["inspect", str(path)])
        assert result.exit_code == (0 if ok else 2), result.output
        if not ok:
            errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
            assert len(errors) == 1, result.output
            assert "olmo2.attention.head_count_kv has 3 values for 2 layers" in errors[0]


def test_a_tampered_falcon_h1_is_refused(tmp_path: Path) -> None:
    """ffn_norm written with a .weight (as other families name it) is not Falcon-H1's:
    llama.cpp's loader asks for ``tn(LLM_TENSOR_FFN_NORM, i)`` (src/models/falcon-h1.cpp)."""
    config, model = hf("falcon_h1")
    tensors = [
        (n + ".weight" if n == "blk.1.ffn_norm" else n, s)
        for n, s in converted("falcon_h1", config, model)
    ]
    path = write_file(tmp_path / "f.gguf", "falcon-h1", metadata("falcon_h1", config), tensors, 96)
    result = run(["inspect", str(path)])
    assert result.exit_code == 1, result.output
    assert re.search(r"missing +blk\.1\.ffn_norm ", result.stdout), result.stdout
    assert re.search(r"unexpected +blk\.1\.ffn_norm\.weight", result.stdout), result.stdout


# -- the mixes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case", ["jamba", "jamba-first-attends", "falcon_h1", "qwen3_next", "cohere2"]
)
@pytest.mark.parametrize("mix", ["q8_0", "q4_k_m", "q2_k"])
def test_priced_types_are_the_rules(case: str, mix: str) -> None:
    """shapecalc's types are tensor_types' on the converter's names and ne, with the
    sizes llama.cpp reads from the file: n_gqa() is layer 0's (llama_hparams::n_gqa,
    src/llama-hparams.cpp: 0 when layer 0 has no key heads, a Jamba Mamba layer)."""
    config, model = hf(case)
    tensors = [(n, tuple(reversed(s))) for n, s in converted(case, config, model)]
    meta = metadata(case, config)
    kv = meta["attention.head_count_kv"]
    try:
        plan = tensor_types(
            tensors,
            mix,
            arch=CASES[case][0],
            n_layer=meta["block_count"],
            n_head=meta["attention.head_count"],
            n_head_kv=kv[0] if isinstance(kv, list) else kv,
            n_expert=meta.get("expert_count", 0),
        )
    except ValueError as err:  # llama-quantize stops (Q8_0 has no fallback for ssm_dt's
        said = quantize_refused(_mine(case), mix)  # rows of dt_rank 4): said in one line
        assert str(err) in said, (err, said)
        return
    want = {n: {"F32": "float32", "F16": "float16"}.get(t, t) for n, (_, t) in plan.items()}
    mine = _mine(case)
    assert _types(mine, mix) == want  # Qwen3-Next's in_proj_qkvz as its two parts
    weights = parse_weights(mix)
    fast = weights.method.stored_tensors(mine, weights) or ()  # fit's pricing agrees
    assert sum(known(p.nbytes(2)) for _, p in fast) == quantize(mine, weights).bytes("bf16")


def test_jamba_q2_k_attn_v_by_layer_zero() -> None:
    """Q2_K's attn_v: Q4_K when n_gqa() >= 4, else Q3_K (llama-quant.cpp,
    llama_tensor_get_type_impl); Jamba's n_gqa() is layer 0's: a Mamba layer 0 gives 0
    (Q3_K) even where the attention layers share one key head among 4."""
    big = {"hidden_size": 256, "intermediate_size": 256, "num_key_value_heads": 1}
    mamba_first = _types(_mine("jamba", **big), "q2_k")
    assert mamba_first["blk.1.attn_v.weight"] == "Q3_K"
    attends_first = _types(_mine("jamba-first-attends", **big), "q2_k")
    assert attends_first["blk.0.attn_v.weight"] == "Q4_K"


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("case", ["jamba", "glm4_moe", "qwen3_next"])
def test_the_listing_fits(case: str, width: int, tmp_path: Path) -> None:
    path, _, _ = convert(case, tmp_path)
    for extra in ([], ["--format", "json"]):
        result = run(["inspect", str(path), *extra], width)
        assert result.exit_code == 0, result.output
        if not extra:
            assert max(len(line) for line in result.stdout.splitlines()) <= width
