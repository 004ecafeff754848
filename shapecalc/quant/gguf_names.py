"""transformers' tensor names -> GGUF's, per GGUF architecture, as llama.cpp's converter
(``convert_hf_to_gguf.py``) writes them: gguf-py's ``tensor_mapping.py`` for the names
(only the tensors ``constants.py``'s ``MODEL_TENSORS`` lists for the architecture), and
each model class's ``modify_tensors`` for what it does to a tensor on the way:

* the LLaMA-like families (llama, qwen2, qwen3, qwen2moe, qwen3moe, gemma, gemma2,
  gemma3, phi3, starcoder2, granite, and any model named ``model.layers.N.``):
  :data:`GLOBAL`, :data:`LAYER`,
  :data:`EXPERTS`; fused experts ``gate_up_proj`` (E, 2F, H) split into ``ffn_gate_exps``
  and ``ffn_up_exps`` (E, F, H) each;
* gpt2 (GPT2Model): GPT-2's Conv1D weights ``c_attn``, ``c_proj``, ``c_fc`` stored
  transposed (``data_torch.transpose(1, 0)``), so as nn.Linear's (out, in);
* falcon (FalconModel): the fused ``query_key_value`` regrouped (q heads, then k, then v;
  the shape kept); ``ln_attn`` is ``attn_norm_2`` and ``ln_mlp`` ``attn_norm``;
* gptneox (GPTNeoXModel): the fused ``query_key_value`` regrouped (the shape kept);
* mamba (MambaModel): ``A_log`` written as ``-exp(A_log)`` under ``ssm_a`` and ``D`` as
  ``ssm_d`` (no ``.weight``), ``conv1d.weight`` (C, 1, K) squeezed to (C, K);
* mamba2 (Mamba2Model): ``dt_bias`` as ``ssm_dt.bias``, ``A_log`` (as ``-exp``) and
  ``D`` unsqueezed to (heads, 1), the gated norm (d_inner,) as (groups, d_inner /
  groups), ``conv1d.weight`` squeezed;
* deepseek2 (DeepseekV2Model, for DeepSeek-V2 and V3): ``kv_b_proj`` (A·(Dn + Dv), R)
  split per head into ``attn_k_b`` (A, R, Dn) (transposed) and ``attn_v_b``
  (A, Dv, R); the router's ``e_score_correction_bias`` buffer as ``exp_probs_b.bias``;
* olmo2 (Olmo2Model): ``post_attention_layernorm`` (after attention) is
  ``post_attention_norm``; phi2 (Phi2Model): ``dense``, ``fc1``, ``fc2``,
  ``final_layernorm`` and the head's bias; command-r (CommandR2Model): no output tensor
  (the head is the embedding);
* gpt-oss (GptOssModel): ``sinks`` as ``attn_sinks.weight``, the router as
  ``ffn_gate_inp``, the experts' ``gate_up_proj`` (E, H, 2F) transposed and split by
  alternate rows into ``ffn_gate_exps`` and ``ffn_up_exps`` (E, F, H), its bias (E, 2F)
  likewise, ``down_proj`` (E, F, H) transposed to ``ffn_down_exps`` (E, H, F) (the
  original MXFP4 checkpoint's blocks are repacked to these shapes);
* jamba (JambaModel): Mamba's mixer under ``mamba.``, its A_log and conv1d as Mamba's, the
  experts stacked; falcon-h1 (FalconH1Model over Mamba2Model): Mamba-2's reshaping,
  ``pre_ff_layernorm.weight`` written whole as ``ffn_norm`` (no ``.weight``);
  glm4moe (Glm4MoeModel): the MTP layers after the model's (:func:`mtp_tensors`);
  qwen3next (Qwen3NextModel): ``in_proj_qkvz`` split into ``attn_qkv`` and ``attn_gate``;
  cohere2 (Cohere2Model): no biases, no output tensor.

Sources: ggml-org/llama.cpp ``convert_hf_to_gguf.py`` (GPT2Model, FalconModel,
GPTNeoXModel, MambaModel, DeepseekV2Model, GptOssModel, Olmo2Model, Phi2Model,
CommandR2Model, Gemma3Model, GraniteModel; conversion/jamba.py, falcon_h1.py, glm.py,
qwen.py, command_r.py for JambaModel, FalconH1Model, Glm4MoeModel, Qwen3NextModel,
Cohere2Model) and gguf-py 0.19's
``tensor_mapping.py``; tests/test_gguf_families.py checks every name against gguf-py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from shapecalc.core.frozen import FrozenMethods, frozen
from shapecalc.core.model import Model, full_name
from shapecalc.core.spec import expand
from shapecalc.core.tree import Leaf, Node, Repeat, join_name

__all__ = [
    "EXPERTS",
    "FAMILIES",
    "GLOBAL",
    "LAYER",
    "NAMED",
    "NEXTN",
    "Family",
    "GGUFName",
    "gguf_name",
    "gguf_tensors",
    "kv_heads",
    "model_arch",
]

#: the model's own tensors, by transformers' name
GLOBAL = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "model.norm.bias": "output_norm.bias",
    "lm_head.weight": "output.weight",
}
#: a layer's tensors: transformers' name within ``model.layers.N.`` -> GGUF's within
#: ``blk.N.`` (tensor_mapping.py's block mappings, for the families shapecalc maps)
LAYER = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.qkv_proj": "attn_qkv",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "mlp.gate_up_proj": "ffn_up",
    "mlp.c_fc": "ffn_up",
    "mlp.c_proj": "ffn_down",
    "mlp.gate": "ffn_gate_inp",
    "mlp.shared_expert.gate_proj": "ffn_gate_shexp",
    "mlp.shared_expert.up_proj": "ffn_up_shexp",
    "mlp.shared_expert.down_proj": "ffn_down_shexp",
    "mlp.shared_expert_gate": "ffn_gate_inp_shexp",
}
#: transformers' fused experts (a parameter without .weight) -> GGUF's merged experts
EXPERTS = {
    "mlp.experts.down_proj": ("ffn_down_exps",),
    "mlp.experts.gate_up_proj": ("ffn_gate_exps", "ffn_up_exps"),
}


@frozen
class GGUFName(FrozenMethods):
    """One GGUF tensor made from a transformers tensor: its name, torch shape, and the
    transformers name it comes from (a fused tensor split gives two); ``how`` says what
    the conversion does to it ("" for nothing but the name)."""

    name: str
    shape: tuple[int, ...]
    source: str
    how: str = ""

    @property
    def ne(self) -> tuple[int, ...]:
        return tuple(reversed(self.shape))


@frozen
class Family(FrozenMethods):
    """One GGUF architecture's names: ``top`` (whole transformers names), ``layer``
    (a module within ``<layers>.N.`` -> GGUF's within ``blk.N.``, ``.weight`` and
    ``.bias`` kept), ``bare`` (a parameter within a layer with no ``.weight`` -> its
    whole GGUF name within ``blk.N.``), ``experts`` (fused experts -> their GGUF parts),
    ``transposed`` and ``squeezed`` (modules whose weight is stored so), ``buffers``
    (persistent buffers the checkpoint holds and the conversion writes)."""

    arch: str
    layers: str
    top: Mapping[str, str]
    layer: Mapping[str, str]
    bare: Mapping[str, str] = field(default_factory=dict)
    experts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    transposed: frozenset[str] = frozenset()
    squeezed: frozenset[str] = frozenset()
    buffers: Mapping[str, str] = field(default_factory=dict)
    #: a parameter within a layer -> how the conversion reshapes it: "unsqueeze" (a
    #: trailing 1), "groups" (to (n_groups, n / n_groups))
    reshape: Mapping[str, str] = field(default_factory=dict)
    #: gpt-oss: experts stored (E, in, out), gate and up interleaved by row
    experts_interleaved: bool = False
    #: deepseek2: kv_b_proj split into attn_k_b and attn_v_b
    split_kv_b: bool = False
    #: the argument saying the groups of a "groups" reshape (Mamba-2's, Falcon-H1's)
    groups_argument: str = "groups"
    #: qwen3next: in_proj_qkvz split into attn_qkv (q, k, v of every key head) and
    #: attn_gate (z)
    split_qkvz: bool = False
    #: glm4moe: the file's last ``nextn_predict_layers`` blocks are MTP layers
    #: (a decoder layer of the model's last kind, plus :data:`NEXTN`)
    mtp: bool = False
    #: what the conversion does beyond renaming, said once by ``inspect``
    notes: tuple[str, ...] = ()

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(rf"^{re.escape(self.layers)}\.(\d+)\.(.+)$")


_LLAMA_LIKE = Family("", "model.layers", GLOBAL, LAYER, experts=EXPERTS)

_GPT2_CONV1D = frozenset({"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"})
_DEEPSEEK_LAYER = {
    "self_attn.q_proj": "attn_q",
    "self_attn.q_a_proj": "attn_q_a",
    "self_attn.q_a_layernorm": "attn_q_a_norm",
    "self_attn.q_b_proj": "attn_q_b",
    "self_attn.kv_a_proj_with_mqa": "attn_kv_a_mqa",
    "self_attn.kv_a_layernorm": "attn_kv_a_norm",
    "self_attn.o_proj": "attn_output",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "mlp.gate": "ffn_gate_inp",
    "mlp.shared_experts.gate_proj": "ffn_gate_shexp",
    "mlp.shared_experts.up_proj": "ffn_up_shexp",
    "mlp.shared_experts.down_proj": "ffn_down_shexp",
}

#: the families with names of their own, by GGUF architecture
FAMILIES: dict[str, Family] = {
    "gpt2": Family(
        "gpt2",
        "transformer.h",
        {
            "transformer.wte.weight": "token_embd.weight",
            "transformer.wpe.weight": "position_embd.weight",
            "transformer.ln_f.weight": "output_norm.weight",
            "transformer.ln_f.bias": "output_norm.bias",
            "lm_head.weight": "output.weight",
        },
        {
            "ln_1": "attn_norm",
            "attn.c_attn": "attn_qkv",
            "attn.c_proj": "attn_output",
            "ln_2": "ffn_norm",
            "mlp.c_fc": "ffn_up",
            "mlp.c_proj": "ffn_down",
        },
        transposed=_GPT2_CONV1D,
        notes=("GPT-2's Conv1D weights (in, out) are stored transposed, as (out, in)",),
    ),
    "falcon": Family(
        "falcon",
        "transformer.h",
        {
            "transformer.word_embeddings.weight": "token_embd.weight",
            "transformer.ln_f.weight": "output_norm.weight",
            "transformer.ln_f.bias": "output_norm.bias",
            "lm_head.weight": "output.weight",
        },
        {
            "input_layernorm": "attn_norm",
            "ln_mlp": "attn_norm",
            "ln_attn": "attn_norm_2",
            "self_attention.query_key_value": "attn_qkv",
            "self_attention.dense": "attn_output",
            "mlp.dense_h_to_4h": "ffn_up",
            "mlp.dense_4h_to_h": "ffn_down",
        },
        notes=(
            "query_key_value's rows are regrouped (every query head, then the keys, then "
            "the values; shape kept)",
        ),
    ),
    "gptneox": Family(
        "gptneox",
        "gpt_neox.layers",
        {
            "gpt_neox.embed_in.weight": "token_embd.weight",
            "gpt_neox.final_layer_norm.weight": "output_norm.weight",
            "gpt_neox.final_layer_norm.bias": "output_norm.bias",
            "lm_head.weight": "output.weight",
        },
        {
            "input_layernorm": "attn_norm",
            "post_attention_layernorm": "ffn_norm",
            "attention.query_key_value": "attn_qkv",
            "attention.dense": "attn_output",
            "mlp.dense_h_to_4h": "ffn_up",
            "mlp.dense_4h_to_h": "ffn_down",
        },
        notes=(
            "query_key_value's rows are regrouped (q of every head, then k, then v; shape kept)",
        ),
    ),
    "mamba": Family(
        "mamba",
        "backbone.layers",
        {
            "backbone.embeddings.weight": "token_embd.weight",
            "backbone.norm_f.weight": "output_norm.weight",
            "lm_head.weight": "output.weight",
        },
        {
            "norm": "attn_norm",
            "mixer.in_proj": "ssm_in",
            "mixer.conv1d": "ssm_conv1d",
            "mixer.x_proj": "ssm_x",
            "mixer.dt_proj": "ssm_dt",
            "mixer.out_proj": "ssm_out",
        },
        bare={"mixer.A_log": "ssm_a", "mixer.D": "ssm_d"},
        squeezed=frozenset({"mixer.conv1d"}),
        notes=("A_log is stored as A = -exp(A_log) (ssm_a); conv1d (C, 1, K) as (C, K)",),
    ),
    "mamba2": Family(
        "mamba2",
        "backbone.layers",
        {
            "backbone.embeddings.weight": "token_embd.weight",
            "backbone.norm_f.weight": "output_norm.weight",
            "lm_head.weight": "output.weight",
        },
        {
            "norm": "attn_norm",
            "mixer.in_proj": "ssm_in",
            "mixer.conv1d": "ssm_conv1d",
            "mixer.norm": "ssm_norm",
            "mixer.out_proj": "ssm_out",
        },
        bare={"mixer.A_log": "ssm_a", "mixer.D": "ssm_d", "mixer.dt_bias": "ssm_dt.bias"},
        squeezed=frozenset({"mixer.conv1d"}),
        reshape={"mixer.A_log": "unsqueeze", "mixer.D": "unsqueeze", "mixer.norm.weight": "groups"},
        notes=(
            "A_log is stored as A = -exp(A_log) (ssm_a), A and D as (heads, 1); conv1d "
            "(C, 1, K) as (C, K); the gated norm as (groups, d_inner / groups); dt_bias "
            "as ssm_dt.bias",
        ),
    ),
    "deepseek2": Family(
        "deepseek2",
        "model.layers",
        GLOBAL,
        _DEEPSEEK_LAYER,
        experts=EXPERTS,
        buffers={"mlp.gate.e_score_correction_bias": "exp_probs_b.bias"},
        split_kv_b=True,
        notes=(
            "kv_b_proj is split per head into attn_k_b (transposed) and attn_v_b",
            "the router's e_score_correction_bias buffer is exp_probs_b.bias",
        ),
    ),
    "olmo2": Family(
        "olmo2",
        "model.layers",
        GLOBAL,
        {**LAYER, "post_attention_layernorm": "post_attention_norm"},
    ),
    "phi2": Family(
        "phi2",
        "model.layers",
        {
            "model.embed_tokens.weight": "token_embd.weight",
            "model.final_layernorm.weight": "output_norm.weight",
            "model.final_layernorm.bias": "output_norm.bias",
            "lm_head.weight": "output.weight",
            "lm_head.bias": "output.bias",
        },
        {
            "input_layernorm": "attn_norm",
            "self_attn.q_proj": "attn_q",
            "self_attn.k_proj": "attn_k",
            "self_attn.v_proj": "attn_v",
            "self_attn.dense": "attn_output",
            "mlp.fc1": "ffn_up",
            "mlp.fc2": "ffn_down",
        },
    ),
    "command-r": Family(
        "command-r",
        "model.layers",
        {k: v for k, v in GLOBAL.items() if k != "lm_head.weight"},  # no output tensor
        LAYER,
    ),
    "gpt-oss": Family(
        "gpt-oss",
        "model.layers",
        GLOBAL,
        {
            "self_attn.q_proj": "attn_q",
            "self_attn.k_proj": "attn_k",
            "self_attn.v_proj": "attn_v",
            "self_attn.o_proj": "attn_output",
            "input_layernorm": "attn_norm",
            "post_attention_layernorm": "post_attention_norm",
            "mlp.router": "ffn_gate_inp",
        },
        bare={"self_attn.sinks": "attn_sinks.weight"},
        experts={
            "mlp.experts.gate_up_proj": ("ffn_gate_exps.weight", "ffn_up_exps.weight"),
            "mlp.experts.gate_up_proj_bias": ("ffn_gate_exps.bias", "ffn_up_exps.bias"),
            "mlp.experts.down_proj": ("ffn_down_exps.weight",),
            "mlp.experts.down_proj_bias": ("ffn_down_exps.bias",),
        },
        experts_interleaved=True,
        notes=(
            "the experts' gate_up_proj (E, H, 2F) is stored transposed and split by "
            "alternate rows into ffn_gate_exps and ffn_up_exps (E, F, H); down_proj "
            "(E, F, H) as (E, H, F)",
        ),
    ),
}

_JAMBA_EXPERTS = {
    "feed_forward.experts.down_proj": ("ffn_down_exps",),
    "feed_forward.experts.gate_up_proj": ("ffn_gate_exps", "ffn_up_exps"),
}
_GLM4MOE_LAYER = {
    **{k: v for k, v in LAYER.items() if not k.startswith("mlp.shared_expert")},
    "post_attention_layernorm": "post_attention_norm",
    "mlp.shared_experts.gate_proj": "ffn_gate_shexp",
    "mlp.shared_experts.up_proj": "ffn_up_shexp",
    "mlp.shared_experts.down_proj": "ffn_down_shexp",
}
#: an MTP (nextn) layer's own tensors, after its decoder layer's (gguf-py's
#: tensor_mapping.py, NEXTN_*): checkpoint name within ``model.layers.N.`` -> GGUF's within
#: ``blk.N.``, each (V, H), (H, 2H) or (H,) by what it is
NEXTN = {
    "eh_proj.weight": "nextn.eh_proj.weight",
    "embed_tokens.weight": "nextn.embed_tokens.weight",
    "enorm.weight": "nextn.enorm.weight",
    "hnorm.weight": "nextn.hnorm.weight",
    "shared_head.head.weight": "nextn.shared_head_head.weight",
    "shared_head.norm.weight": "nextn.shared_head_norm.weight",
}
FAMILIES.update(
    {
        "jamba": Family(
            "jamba",
            "model.layers",
            {
                "model.embed_tokens.weight": "token_embd.weight",
                "model.final_layernorm.weight": "output_norm.weight",
                "lm_head.weight": "output.weight",
            },
            {
                "input_layernorm": "attn_norm",
                "self_attn.q_proj": "attn_q",
                "self_attn.k_proj": "attn_k",
                "self_attn.v_proj": "attn_v",
                "self_attn.o_proj": "attn_output",
                "mamba.in_proj": "ssm_in",
                "mamba.conv1d": "ssm_conv1d",
                "mamba.x_proj": "ssm_x",
                "mamba.dt_proj": "ssm_dt",
                "mamba.dt_layernorm": "ssm_dt_norm",
                "mamba.b_layernorm": "ssm_b_norm",
                "mamba.c_layernorm": "ssm_c_norm",
                "mamba.out_proj": "ssm_out",
                "pre_ff_layernorm": "ffn_norm",
                "feed_forward.router": "ffn_gate_inp",
                "feed_forward.gate_proj": "ffn_gate",
                "feed_forward.up_proj": "ffn_up",
                "feed_forward.down_proj": "ffn_down",
            },
            bare={"mamba.A_log": "ssm_a", "mamba.D": "ssm_d"},
            experts=_JAMBA_EXPERTS,
            squeezed=frozenset({"mamba.conv1d"}),
            notes=(
                "A_log is stored as A = -exp(A_log) (ssm_a); conv1d (C, 1, K) as (C, K); "
                "the experts stacked as ffn_gate_exps, ffn_up_exps, ffn_down_exps",
                "attention layers are those whose head_count_kv entry is not 0",
            ),
        ),
        "falcon-h1": Family(
            "falcon-h1",
            "model.layers",
            {
                "model.embed_tokens.weight": "token_embd.weight",
                "model.final_layernorm.weight": "output_norm.weight",
                "lm_head.weight": "output.weight",
            },
            {
                "input_layernorm": "attn_norm",
                "self_attn.q_proj": "attn_q",
                "self_attn.k_proj": "attn_k",
                "self_attn.v_proj": "attn_v",
                "self_attn.o_proj": "attn_output",
                "mamba.in_proj": "ssm_in",
                "mamba.conv1d": "ssm_conv1d",
                "mamba.norm": "ssm_norm",
                "mamba.out_proj": "ssm_out",
                "feed_forward.gate_proj": "ffn_gate",
                "feed_forward.up_proj": "ffn_up",
                "feed_forward.down_proj": "ffn_down",
            },
            # tensor_mapping.py maps "model.layers.{bid}.pre_ff_layernorm.weight" whole
            # (FFN_PRE_NORM): the converter writes it without a .weight
            bare={
                "mamba.A_log": "ssm_a",
                "mamba.D": "ssm_d",
                "mamba.dt_bias": "ssm_dt.bias",
                "pre_ff_layernorm.weight": "ffn_norm",
            },
            squeezed=frozenset({"mamba.conv1d"}),
            reshape={
                "mamba.A_log": "unsqueeze",
                "mamba.D": "unsqueeze",
                "mamba.norm.weight": "groups",
            },
            groups_argument="mamba_groups",
            notes=(
                "A_log is stored as A = -exp(A_log) (ssm_a), A and D as (heads, 1); conv1d "
                "(C, 1, K) as (C, K); the gated norm as (groups, d_inner / groups); dt_bias "
                "as ssm_dt.bias; pre_ff_layernorm as ffn_norm (no .weight); the "
                "multipliers folded into the weights (shapes kept)",
            ),
        ),
        "glm4moe": Family(
            "glm4moe",
            "model.layers",
            GLOBAL,
            _GLM4MOE_LAYER,
            experts=EXPERTS,
            buffers={"mlp.gate.e_score_correction_bias": "exp_probs_b.bias"},
            mtp=True,
            notes=("the router's e_score_correction_bias buffer is exp_probs_b.bias",),
        ),
        "qwen3next": Family(
            "qwen3next",
            "model.layers",
            GLOBAL,
            {
                **{k: v for k, v in LAYER.items() if k != "self_attn.qkv_proj"},
                "post_attention_layernorm": "post_attention_norm",
                "linear_attn.in_proj_ba": "ssm_ba",
                "linear_attn.conv1d": "ssm_conv1d",
                "linear_attn.norm": "ssm_norm",
                "linear_attn.out_proj": "ssm_out",
            },
            bare={"linear_attn.A_log": "ssm_a", "linear_attn.dt_bias": "ssm_dt.bias"},
            experts=EXPERTS,
            squeezed=frozenset({"linear_attn.conv1d"}),
            split_qkvz=True,
            notes=(
                "in_proj_qkvz is split into attn_qkv (the q, k and v rows of every key "
                "head) and attn_gate (z); A_log is stored as A = -exp(A_log) (ssm_a); "
                "conv1d (C, 1, K) as (C, K); dt_bias as ssm_dt.bias; norms other than "
                "the gated one as 1 + weight (shapes kept)",
            ),
        ),
        "cohere2": Family(
            "cohere2",
            "model.layers",
            {k: v for k, v in GLOBAL.items() if k != "lm_head.weight"},  # no output tensor
            {k: v for k, v in LAYER.items() if k != "post_attention_layernorm"},
        ),
    }
)

#: the families named, as an error message says them
NAMED = (
    "the LLaMA, Qwen, Gemma, Phi, StarCoder2, Granite, OLMo 2, Command R, Command R7B, "
    "GPT-2, Falcon, GPT-NeoX, Mamba, Mamba-2, Jamba, Falcon-H1, DeepSeek-V2/V3, GLM-4.5, "
    "Qwen3-Next and gpt-oss families"
)


def model_arch(model: Model) -> str:
    """The GGUF architecture a model converts to, as the transformers type it is
    declares it (``HFType.gguf``): by its class, else by its kind as a model_type or a
    command; empty when none."""
    from shapecalc.architectures import commands, get

    cls = model.name.split(" ")[0]
    kind = str(getattr(model.config, "model_type", "") or model.kind or "")
    names = commands()
    # the model's own command first: the others are imported only when it has no match
    own = get(kind).hf if kind in names else ()
    found = next((t for t in own if cls in t.classes), None)
    found = found or next((t for t in own if t.model_type == kind), None)
    if found is None:
        types = [t for command in names for t in get(command).hf]
        found = next((t for t in types if cls in t.classes), None)
        found = found or next((t for t in types if t.model_type == kind), None)
    if found is None and kind in names:
        found = next((t for t in get(kind).hf if t.gguf), None)
    return found.gguf if found else ""


def gguf_name(name: str, gemma_norms: bool = False, arch: str = "") -> str | None:
    """The GGUF name of a transformers tensor, or None when it has none here
    (``gemma_norms``: the layer has ``pre_feedforward_layernorm``, so its
    ``post_attention_layernorm`` is ``post_attention_norm``, as Gemma 2's; ``arch``:
    the GGUF architecture, for the families with names of their own)."""
    family = FAMILIES.get(arch, _LLAMA_LIKE)
    return _renamed(family, name, family.pattern.match(name), gemma_norms)


def _renamed(family: Family, name: str, m: re.Match[str] | None, gemma_norms: bool) -> str | None:
    """:func:`gguf_name`, the name's match of the family's layer pattern given."""
    if name in family.top:
        return family.top[name]
    if m is None:
        return None
    index, rest = m.groups()
    if rest in family.bare:
        return f"blk.{index}.{family.bare[rest]}"
    base, dot, suffix = rest.rpartition(".")
    if suffix not in ("weight", "bias") or not dot:
        return None
    if gemma_norms and base == "post_attention_layernorm":
        return f"blk.{index}.post_attention_norm.{suffix}"
    short = family.layer.get(base)
    return None if short is None else f"blk.{index}.{short}.{suffix}"


def _experts(
    family: Family, index: str, rest: str, name: str, shape: tuple[int, ...]
) -> list[GGUFName]:
    parts = family.experts[rest]
    full = [p if p.endswith((".weight", ".bias")) else f"{p}.weight" for p in parts]
    if family.experts_interleaved:  # gpt-oss: (E, in, out), gate and up row by row
        if len(shape) == 3:
            experts, rows, cols = shape
            if len(parts) == 1:
                return [GGUFName(f"blk.{index}.{full[0]}", (experts, cols, rows), name, "T")]
            half = (experts, cols // 2, rows)
            return [GGUFName(f"blk.{index}.{p}", half, name, "T, alternate rows") for p in full]
        if len(parts) == 1:
            return [GGUFName(f"blk.{index}.{full[0]}", shape, name)]
        experts, cols = shape
        return [
            GGUFName(f"blk.{index}.{p}", (experts, cols // 2), name, "alternate rows") for p in full
        ]
    if len(parts) == 1:
        return [GGUFName(f"blk.{index}.{full[0]}", shape, name)]
    experts, rows, cols = shape
    half = (experts, rows // 2, cols)
    return [GGUFName(f"blk.{index}.{p}", half, name, "half of") for p in full]


def _kv_b(model: Model, index: str, name: str, shape: tuple[int, ...]) -> list[GGUFName]:
    """DeepseekV2Model.modify_tensors: kv_b (A·(Dn + Dv), R) viewed (A, Dn + Dv, R),
    split into k_b (A, Dn, R) transposed to (A, R, Dn), and v_b (A, Dv, R)."""
    args: dict[str, Any] = dict(model.arguments)
    heads, nope, value = args.get("heads"), args.get("nope_dim"), args.get("value_dim")
    rows, rank = shape
    if not (isinstance(heads, int) and isinstance(nope, int) and isinstance(value, int)):
        return []
    if rows != heads * (nope + value):
        return []
    return [
        GGUFName(f"blk.{index}.attn_k_b.weight", (heads, rank, nope), name, "k part, T"),
        GGUFName(f"blk.{index}.attn_v_b.weight", (heads, value, rank), name, "v part"),
    ]


def _qkvz(model: Model, index: str, name: str, shape: tuple[int, ...]) -> list[GGUFName]:
    """Qwen3NextModel.modify_tensors: in_proj_qkvz (rows of [q, k, v, z] per key head, H)
    regrouped and split into attn_qkv (every head's q, k and v rows, H) and attn_gate
    (the z rows: linear_value_heads · linear_value_dim, H)."""
    args: dict[str, Any] = dict(model.arguments)
    heads, dim = args.get("linear_value_heads"), args.get("linear_value_dim")
    if not (isinstance(heads, int) and isinstance(dim, int)) or len(shape) != 2:
        return []
    rows, hidden = shape
    z = heads * dim
    if not 0 < z < rows:
        return []
    return [
        GGUFName(f"blk.{index}.attn_qkv.weight", (rows - z, hidden), name, "q, k, v part"),
        GGUFName(f"blk.{index}.attn_gate.weight", (z, hidden), name, "z part"),
    ]


def _gemma_norms(rest: str) -> bool:
    """A layer's parameter (its name within the layer) that says the layer has Gemma 2's
    four norms, so that its ``post_attention_layernorm`` is ``post_attention_norm``."""
    return rest.startswith("pre_feedforward_layernorm.")


def _converted(
    model: Model,
    family: Family,
    name: str,
    shape: tuple[int, ...],
    m: re.Match[str] | None,
    gemma_norms: bool,
    kv_b: bool,
    groups: Any,
) -> list[GGUFName] | None:
    """The GGUF tensors one transformers tensor converts to (:func:`gguf_tensors`), or
    None when it has no GGUF name here."""
    index, rest = m.groups() if m else ("", "")
    if m and rest in family.experts and len(shape) >= 2:
        return _experts(family, index, rest, name, shape)
    if m and family.split_kv_b and rest.startswith("self_attn.kv_b_proj.") and kv_b:
        return [GGUFName(f"blk.{index}.attn_kv_b.{rest.rpartition('.')[2]}", shape, name)]
    if m and family.split_qkvz and rest == "linear_attn.in_proj_qkvz.weight":
        return _qkvz(model, index, name, shape) or None
    if m and family.split_kv_b and rest == "self_attn.kv_b_proj.weight" and len(shape) == 2:
        return _kv_b(model, index, name, shape) or None
    new = _renamed(family, name, m, gemma_norms)
    if new is None:
        return None
    base = rest.rpartition(".")[0]
    how = family.reshape.get(rest)
    if how == "unsqueeze":
        return [GGUFName(new, (*shape, 1), name, "unsqueezed")]
    if how == "groups" and isinstance(groups, int) and groups and len(shape) == 1:
        return [GGUFName(new, (groups, shape[0] // groups), name, "by group")]
    if base in family.transposed and rest.endswith(".weight") and len(shape) == 2:
        return [GGUFName(new, (shape[1], shape[0]), name, "T")]
    if base in family.squeezed and rest.endswith(".weight"):
        return [GGUFName(new, tuple(d for d in shape if d != 1), name, "squeezed")]
    return [GGUFName(new, shape, name)]


def gguf_tensors(
    model: Model,
    arch: str | None = None,
    buffers: bool = False,
    kv_b: bool = False,
    mtp: int = 0,
) -> tuple[list[GGUFName], list[str]]:
    """Every tensor a conversion of ``model`` writes, in the model's order, and the
    transformers tensors it has no GGUF name for. A tied output head is not written
    (llama.cpp reads ``token_embd`` for it). ``arch``: the GGUF architecture (by
    default the one the model's transformers type converts to); ``buffers``: with the
    buffers the checkpoint holds and the conversion writes (DeepSeek-V3's router bias),
    after the parameters (``how`` "buffer"); ``kv_b``: DeepSeek's ``kv_b_proj`` whole, as
    ``attn_kv_b``, as the converter wrote it before splitting it (files of early
    2025); ``mtp``: the MTP (nextn) layers a glm4moe file holds after the model's own
    (:func:`mtp_tensors`)."""
    if arch is None:
        arch = model_arch(model)
    family = FAMILIES.get(arch, _LLAMA_LIKE)
    pattern = family.pattern
    params = [
        (n, tuple(d for d in s if isinstance(d, int)), pattern.match(n))
        for n, s in model.named_parameters()
    ]
    gemma = {m.group(1) for _, _, m in params if m and _gemma_norms(m.group(2))}
    groups = dict(model.arguments).get(family.groups_argument)
    out: list[GGUFName] = []
    unmapped: list[str] = []
    for name, shape, m in params:
        if name in model.ties:
            continue
        gemma_norms = m is not None and m.group(1) in gemma
        made = _converted(model, family, name, shape, m, gemma_norms, kv_b, groups)
        if made is None:
            unmapped.append(name)
        else:
            out.extend(made)
    if buffers and family.buffers:
        for name, dims_of in model.named_buffers():
            m = pattern.match(name)
            if m and m.group(2) in family.buffers:
                dims = tuple(d for d in dims_of if isinstance(d, int))
                out.append(
                    GGUFName(f"blk.{m.group(1)}.{family.buffers[m.group(2)]}", dims, name, "buffer")
                )
    if family.mtp and mtp > 0:
        out.extend(t for t in mtp_tensors(model, out, family, mtp) if buffers or t.how != "buffer")
    return out, unmapped


class _NotByRuns(Exception):
    """A model :func:`gguf_runs` cannot list a run at a time."""


def gguf_runs(model: Model, arch: str | None = None) -> list[tuple[GGUFName, range]] | None:
    """The tensors :func:`gguf_tensors` lists (no buffers, no MTP layers), a run of
    layers at a time: each of the run's first layer with the layers it stands for
    (``range(0)`` for a tensor outside the layers), without naming every layer's. None
    where the model has tensors without a GGUF name, a run within a run or of unknown
    length, a tie within a run, or a run that is not the family's list of layers (then
    :func:`gguf_tensors` names them)."""
    if arch is None:
        arch = model_arch(model)
    family = FAMILIES.get(arch, _LLAMA_LIKE)
    pattern = family.pattern
    if any(pattern.match(t) for t in model.ties):
        return None
    groups = dict(model.arguments).get(family.groups_argument)
    out: list[tuple[GGUFName, range]] = []
    outside = range(0)

    def walk(node: Node, parts: tuple[str, ...], run: range) -> list[tuple[str, tuple[int, ...]]]:
        """The parameters under ``node`` (the run's first layer's names), converted
        outside a run and returned within one (for its layers' norms to be known)."""
        found: list[tuple[str, tuple[int, ...]]] = []
        if isinstance(node, Leaf):
            path = join_name(*parts)
            for p in expand(node.spec.params()):
                name = full_name(path, p.name)
                shape = tuple(d for d in p.shape if isinstance(d, int))
                if run:
                    found.append((name, shape))
                elif name not in model.ties:
                    out.extend((t, outside) for t in _one(name, shape, None, False))
            return found
        for entry in node.children:
            if isinstance(entry, Repeat):
                layers = entry.indices()
                if run or layers is None or not layers:
                    raise _NotByRuns
                params = walk(entry.node, (*parts, str(layers[0])), layers)
                _run(params, layers)
            else:
                found += walk(entry.node, (*parts, entry.name), run)
        return found

    def _one(
        name: str, shape: tuple[int, ...], m: re.Match[str] | None, gemma: bool
    ) -> list[GGUFName]:
        made = _converted(model, family, name, shape, m, gemma, False, groups)
        if made is None:
            raise _NotByRuns
        return made

    def _run(params: list[tuple[str, tuple[int, ...]]], layers: range) -> None:
        first = str(layers[0])
        matched = [(name, shape, pattern.match(name)) for name, shape in params]
        gemma = any(m and _gemma_norms(m.group(2)) for _, _, m in matched)
        for name, shape, m in matched:
            if m is None or m.group(1) != first:
                raise _NotByRuns
            made = _one(name, shape, m, gemma)
            if not all(t.name.startswith(f"blk.{first}.") for t in made):
                raise _NotByRuns
            out.extend((t, layers) for t in made)

    try:
        walk(model.root, (), outside)
    except _NotByRuns:
        return None
    return out


def mtp_tensors(model: Model, made: list[GGUFName], family: Family, count: int) -> list[GGUFName]:
    """The ``count`` MTP (nextn) layers a glm4moe conversion writes after the model's
    own: Glm4MoeModel's block_count is num_hidden_layers + num_nextn_predict_layers, and
    each MTP layer of the checkpoint (``model.layers.L.``, which transformers does not
    build) is a decoder layer with experts (llama.cpp's src/models/glm4-moe.cpp:
    ``use_moe = i >= n_layer_dense_lead``) named as the model's last layer, plus
    ``nextn.eh_proj`` (H, 2H), ``nextn.enorm`` and ``nextn.hnorm`` (H,), required, and
    ``nextn.embed_tokens`` (V, H), ``nextn.shared_head_head`` (V, H) and
    ``nextn.shared_head_norm`` (H,), which the loader takes when there
    (TENSOR_NOT_REQUIRED): ``how`` says "mtp" or "mtp, optional"."""
    args: dict[str, Any] = dict(model.arguments)
    layers, hidden, vocab = args.get("layers"), args.get("hidden"), args.get("vocab")
    if not (isinstance(layers, int) and isinstance(hidden, int) and isinstance(vocab, int)):
        return []
    if not layers:
        return []
    last = f"blk.{layers - 1}."
    source = f"{family.layers}.{layers - 1}."
    out: list[GGUFName] = []
    for index in range(layers, layers + count):
        for t in made:
            if not t.name.startswith(last):
                continue
            how = "buffer" if t.how == "buffer" else "mtp"
            out.append(
                GGUFName(
                    f"blk.{index}.{t.name[len(last) :]}",
                    t.shape,
                    f"{family.layers}.{index}.{t.source[len(source) :]}",
                    how,
                )
            )
        for rest, short in NEXTN.items():
            shape = {
                "eh_proj.weight": (hidden, 2 * hidden),
                "embed_tokens.weight": (vocab, hidden),
                "shared_head.head.weight": (vocab, hidden),
            }.get(rest, (hidden,))
            optional = rest.startswith(("embed_tokens", "shared_head"))
            out.append(
                GGUFName(
                    f"blk.{index}.{short}",
                    shape,
                    f"{family.layers}.{index}.{rest}",
                    "mtp, optional" if optional else "mtp",
                )
            )
    return out


def kv_heads(model: Model, arch: str) -> int | None:
    """The key heads llama.cpp reads from the file (``<arch>.attention.head_count_kv``,
    which llama-quant.cpp's n_gqa divides by) where the architecture's converter writes
    other than the model's kv_heads argument: falcon's (1 for multi-query, num_kv_heads
    with the new decoder, else every head), deepseek2's (1: latent attention as one key
    head), jamba's (layer 0's entry of its per-layer array, llama_hparams::n_gqa's
    default layer: 0 when layer 0 is a Mamba layer); None: the model's own."""
    args: dict[str, Any] = dict(model.arguments)
    heads = args.get("heads")
    if arch == "deepseek2":
        return 1
    if arch == "jamba":  # n_gqa() reads layer 0's: 0 key heads on a Mamba layer
        offset, period = args.get("attn_layer_offset"), args.get("attn_layer_period")
        if isinstance(offset, int) and isinstance(period, int) and period and offset:
            return 0
    if arch == "falcon" and isinstance(heads, int):
        if args.get("new_decoder_architecture"):
            kv = args.get("kv_heads")
            return kv if isinstance(kv, int) else heads
        return 1 if args.get("multi_query", True) else heads
    return None
