"""GGUF quant mixes (llama.cpp's ``llama-quantize``), tensor by tensor: ``--weights
q4_k_m`` prices a model as llama.cpp's quantizer would store it, each tensor in the ggml
type ``llama_tensor_get_type`` gives it.

The rules are those of llama.cpp's ``src/llama-quant.cpp`` at commit
007dbbf3fd17eefe9b47fee45f48f7ba5e62b714 (ggml-org/llama.cpp), read for this module:

* ``llama_ftype_get_default_type``: the mix's base type (Q4_K for Q4_K_S and Q4_K_M).
* ``tensor_allows_quantization``: only 2-D and 3-D tensors (ggml's n_dims, trailing ones
  not counted) whose names end in ``weight`` and are no ``_norm.weight``, router
  (``ffn_gate_inp``), position or token-type embedding or ``ssm_conv1d``; the others stay
  as the conversion wrote them.
* ``llama_tensor_get_type_impl``: ``output.weight`` (and ``token_embd.weight`` when the
  output is tied to it) -> Q6_K (Q8_0 when its rows are not whole blocks, Q5_K for the
  2-bit i-quants); ``attn_v`` (and ``attn_qkv``, ``attn_kv_b``) and ``ffn_down`` take more
  bits in the _M mixes on the layers ``use_more_bits`` picks (the first and last eighth,
  and every third between); Q2_K and Q3_K mixes raise ``attn_output``; Mixtral-like
  models of 8 experts raise ``attn_v``/``attn_k`` to Q8_0; LLaMA 70B's ``attn_v``
  (80 layers, grouped heads) to Q5_K.
* ``tensor_type_fallback``: a row (``ne[0]``) that is not whole blocks of the chosen type
  takes IQ4_NL, Q4_0, Q5_0, Q5_1 or Q8_0 (blocks of 32), or F16 when even that fails.
* the counters: tensors are visited in ``weight_name_comparer``'s order (outside the
  layers first, then layer by layer, by name within a layer); ``n_attention_wv`` counts
  the attention-value tensors, ``ffn_down``'s layer is its counter in a dense model and
  the ``blk.N.`` of its name in a model with experts.

The source is a conversion by ``convert_hf_to_gguf.py --outtype f16``: 1-D tensors, norms
and routers in F32, every other weight in F16 (its ``prepare_tensors``). Tensors are named
as that conversion names them (:func:`gguf_tensors`, gguf-py's ``tensor_mapping.py``);
transformers' fused experts (``gate_up_proj``) are GGUF's ``ffn_gate_exps`` and
``ffn_up_exps``, which get one type.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from shapecalc.core.errors import InvalidArgumentError, echo
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.spec import LayerSpec, Param
from shapecalc.core.storage import GGML_BY_NAME
from shapecalc.core.tree import Block, Child, Leaf, Node, Repeat, join_name
from shapecalc.quant import Method, Quantization, Quantized, weights_error
from shapecalc.quant.gguf_names import (
    EXPERTS,
    FAMILIES,
    GLOBAL,
    LAYER,
    NAMED,
    GGUFName,
    gguf_name,
    gguf_runs,
    gguf_tensors,
    kv_heads,
    model_arch,
)

__all__ = [
    "EXPERTS",
    "FTYPES",
    "GLOBAL",
    "LAYER",
    "MAX_LAYERS",
    "METHOD",
    "GGUFMix",
    "GGUFName",
    "GGUFTypes",
    "file_layers",
    "gguf_name",
    "gguf_tensors",
    "tensor_types",
]

# ---------------------------------------------------------------------------------------
# transformers' names -> GGUF's: per GGUF architecture, in gguf_names.py
# ---------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------
# llama-quant.cpp
# ---------------------------------------------------------------------------------------

#: the mixes (llama_ftype, lower case as llama-quantize's names) -> their default type
#: (llama_ftype_get_default_type)
FTYPES: dict[str, str] = {
    "q4_0": "Q4_0",
    "q4_1": "Q4_1",
    "q5_0": "Q5_0",
    "q5_1": "Q5_1",
    "q8_0": "Q8_0",
    "f16": "F16",
    "bf16": "BF16",
    "f32": "F32",
    "q1_0": "Q1_0",
    "mxfp4_moe": "MXFP4",
    "nvfp4": "NVFP4",
    "q2_k_s": "Q2_K",
    "q2_k": "Q2_K",
    "iq3_xs": "IQ3_S",
    "q3_k_s": "Q3_K",
    "q3_k_m": "Q3_K",
    "q3_k_l": "Q3_K",
    "q4_k_s": "Q4_K",
    "q4_k_m": "Q4_K",
    "q5_k_s": "Q5_K",
    "q5_k_m": "Q5_K",
    "q6_k": "Q6_K",
    "tq1_0": "TQ1_0",
    "tq2_0": "TQ2_0",
    "iq2_xxs": "IQ2_XXS",
    "iq2_xs": "IQ2_XS",
    "iq2_s": "IQ2_XS",
    "iq2_m": "IQ2_S",
    "iq3_xxs": "IQ3_XXS",
    "iq1_s": "IQ1_S",
    "iq1_m": "IQ1_M",
    "iq4_nl": "IQ4_NL",
    "iq4_xs": "IQ4_XS",
    "iq3_s": "IQ3_S",
    "iq3_m": "IQ3_S",
}
#: types that are no quantization (ggml_is_quantized is false for them)
PLAIN = frozenset({"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"})
#: the types llama-quantize refuses to make without an importance matrix
#: (tensor_requires_imatrix), Q2_K only in a Q2_K_S mix
NEEDS_IMATRIX = frozenset({"IQ3_XXS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_M", "IQ1_S"})
#: tensor_type_fallback: a type -> its type of blocks of 32
FALLBACK = {
    **dict.fromkeys(("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS"), "IQ4_NL"),
    "IQ3_S": "IQ4_NL",
    "IQ4_XS": "IQ4_NL",
    **dict.fromkeys(("Q2_K", "Q3_K", "TQ1_0", "TQ2_0"), "Q4_0"),
    "Q4_K": "Q5_0",
    "Q5_K": "Q5_1",
    "Q6_K": "Q8_0",
}
#: names tensor_allows_quantization keeps as they are (found anywhere in the name)
KEPT = (
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
)
#: a layer's tensor: ``blk.N.`` (its layer) before its own name
_BLOCK = re.compile(r"blk\.(\d+)\.")
#: convert_hf_to_gguf.py's tensors kept in F32 whatever --outtype (prepare_tensors)
F32_SOURCE = (
    "ffn_gate_inp.",
    "ffn_gate_inp_shexp.",
    "position_embd.",
    "token_types.",
    "ssm_conv1d.",
)


def _n_dims(ne: tuple[int, ...]) -> int:
    """ggml_n_dims: the dims up to the last above one (at least one)."""
    for i in range(len(ne) - 1, 0, -1):
        if ne[i] > 1:
            return i + 1
    return 1


def source_type(name: str, ne: tuple[int, ...], outtype: str = "F16") -> str:
    """The type convert_hf_to_gguf.py writes a tensor in: 1-D tensors, norms, routers,
    position and token-type embeddings, ``ssm_conv1d`` and whatever is no ``.weight`` in
    F32; every other tensor in ``outtype``."""
    if len(ne) <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight"):
        return "F32"
    if any(f".{key}" in f".{name}" for key in F32_SOURCE):
        return "F32"
    return outtype


def _category(name: str) -> str:
    """tensor_get_category."""
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for key, category in (
        ("attn_qkv.weight", "attn_qkv"),
        ("attn_kv_b.weight", "attn_kv_b"),
        ("attn_v.weight", "attn_v"),
        ("attn_k.weight", "attn_k"),
        ("attn_q.weight", "attn_q"),
        ("attn_output.weight", "attn_output"),
        ("ffn_up", "ffn_up"),
        ("ffn_gate", "ffn_gate"),
        ("ffn_down", "ffn_down"),
    ):
        if key in name:
            return category
    return "other"


_ATTN_V = ("attn_v", "attn_qkv", "attn_kv_b")
#: the categories whose type llama_tensor_get_type_impl chooses by a layer counter it
#: keeps (i_attention_wv, i_ffn_down, i_ffn_gate, i_ffn_up) or the layer a name says
_COUNTED = (*_ATTN_V, "ffn_down", "ffn_gate", "ffn_up")
_COUNTED_NOT_GATE_UP = (*_ATTN_V, "ffn_down")


def allows_quantization(name: str, ne: tuple[int, ...]) -> bool:
    """tensor_allows_quantization (quantize_output_tensor on, as llama-quantize's
    default; the position and token-type embeddings by their LLM_TN names)."""
    if _n_dims(ne) < 2 or not name.endswith("weight"):
        return False
    if name in ("position_embd.weight", "token_types.weight"):
        return False
    return not any(key in name for key in KEPT)


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    return (
        i_layer < n_layers // 8
        or i_layer >= 7 * n_layers // 8
        or _cmod(i_layer - n_layers // 8, 3) == 2
    )


def _cdiv(a: int, b: int) -> int:
    """C's integer division (toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _cmod(a: int, b: int) -> int:
    """C's remainder (the dividend's sign)."""
    return a - b * _cdiv(a, b)


@dataclass(eq=False, repr=False)
class _State:
    """quantize_state_impl: the model's sizes and the counters."""

    arch: str
    #: when the model is LLM_TYPE_70B (HFType.gguf_70b): "80 layers", "80 layers,
    #: grouped heads" or empty
    seventy_b: str
    n_layer: int
    n_head: int
    n_head_kv: int
    n_expert: int
    has_imatrix: bool
    has_tied_embeddings: bool
    n_attention_wv: int
    i_attention_wv: int = 0
    i_ffn_down: int = 0
    i_ffn_gate: int = 0
    i_ffn_up: int = 0

    @property
    def n_gqa(self) -> int:
        return self.n_head // self.n_head_kv if self.n_head_kv else 0

    @property
    def is_70b(self) -> bool:
        """LLM_TYPE_70B, as load_arch_hparams sets it and the architecture declares it
        (HFType.gguf_70b): 80 layers (qwen2.cpp), or 80 layers with grouped heads and not
        8 experts (llama.cpp's src/models/llama.cpp)."""
        if self.n_layer != 80 or not self.seventy_b:
            return False
        if self.seventy_b == "80 layers":
            return True
        return self.n_expert != 8 and self.n_head != self.n_head_kv

    def layer(self, counter: int, name: str) -> int:
        """layer_info: the counter, or (with experts) the layer its name says."""
        if max(1, self.n_expert) > 1:
            m = _BLOCK.match(name)
            if m is None:
                raise ValueError(f"Failed to determine layer for tensor {name}")
            return int(m.group(1))
        return counter


_IQ2 = ("iq2_xxs", "iq2_xs", "iq1_s", "iq2_s", "iq2_m", "iq1_m")


def _impl(
    qs: _State,
    new: str,
    name: str,
    ne: tuple[int, ...],
    ftype: str,
    cat: str,
    output_type: str = "",
) -> str:
    """llama_tensor_get_type_impl, branch by branch (``output_type``:
    ``--output-tensor-type``, which a tied token embedding takes too)."""
    arch, n_layer = qs.arch, qs.n_layer
    if cat == "output" or (qs.has_tied_embeddings and cat == "token_embd"):
        if output_type:
            return output_type
        block = GGML_BY_NAME[new].block
        if ftype == "mxfp4_moe":
            return "Q8_0"
        if arch == "falcon" or ne[0] % block:
            return "Q8_0"
        if ftype in ("iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s", "iq2_s", "iq2_m", "iq1_m"):
            return "Q5_K"
        return "Q6_K" if new != "Q8_0" else new
    if ftype == "mxfp4_moe":
        return "MXFP4" if len(ne) > 2 and ne[2] > 1 else "Q8_0"
    if cat == "token_embd":
        if ftype in ("iq2_xxs", "iq2_xs", "iq1_s", "iq1_m"):
            return "Q2_K"
        if ftype in ("iq2_s", "iq2_m", "iq3_xxs"):
            return "IQ3_S"
        if ftype in ("tq1_0", "tq2_0"):
            return "Q4_K"
        return new
    if ftype in _IQ2:
        if cat in _ATTN_V:
            if qs.n_gqa >= 4 or qs.n_expert >= 4:
                new = "Q4_K"
            else:
                new = "IQ3_S" if ftype in ("iq2_s", "iq2_m") else "Q2_K"
            qs.i_attention_wv += 1
        elif qs.n_expert == 8 and cat == "attn_k":
            new = "Q4_K"
        elif cat == "ffn_down":
            if qs.i_ffn_down < n_layer // 8:
                new = "IQ3_S" if ftype in ("iq2_s", "iq2_m") else "Q2_K"
            qs.i_ffn_down += 1
        elif cat == "attn_output":
            if qs.n_expert == 8:
                new = "Q5_K"
            elif ftype in ("iq1_s", "iq1_m"):
                new = "IQ2_XXS"
            elif ftype in ("iq2_s", "iq2_m"):
                new = "IQ3_S"
        return new
    if cat in _ATTN_V:
        gqa = qs.n_gqa
        if ftype == "q2_k":
            new = "Q4_K" if gqa >= 4 else "Q3_K"
        elif ftype == "q2_k_s" and gqa >= 4:
            new = "Q4_K"
        elif ftype == "iq3_xxs":
            new = "Q4_K" if gqa >= 4 else ("IQ3_S" if not qs.has_imatrix else "IQ3_XXS")
        elif (ftype in ("iq3_xs", "iq3_s") and gqa >= 4) or ftype == "iq3_m":
            new = "Q4_K"
        elif ftype == "q3_k_m":
            new = "Q5_K" if qs.i_attention_wv < 2 else "Q4_K"
        elif ftype == "q3_k_l" or (ftype in ("iq4_nl", "iq4_xs") and gqa >= 4):
            new = "Q5_K"
        elif ftype in ("q4_k_m", "q5_k_m") and _use_more_bits(qs.i_attention_wv, qs.n_attention_wv):
            new = "Q6_K"
        elif ftype == "q4_k_s" and qs.i_attention_wv < 4:
            new = "Q5_K"
        if qs.is_70b and new in ("Q3_K", "Q4_K"):
            new = "Q5_K"
        if qs.n_expert == 8:
            new = "Q8_0"
        qs.i_attention_wv += 1
        return new
    if cat == "attn_k":
        if qs.n_expert == 8:
            return "Q8_0"
        if ftype == "iq3_xs":
            return "IQ3_XXS"
        if ftype == "iq3_xxs":
            return "IQ2_S"
        return new
    if cat == "attn_q":
        if ftype == "iq3_xs":
            return "IQ3_XXS"
        if ftype == "iq3_xxs":
            return "IQ2_S"
        return new
    if cat == "ffn_down":
        i_layer = qs.layer(qs.i_ffn_down, name)
        falcon = arch == "falcon"
        if ftype == "q2_k":
            new = "Q3_K"
        elif ftype == "q2_k_s":
            if i_layer < n_layer // 8:
                new = "Q4_K"
        elif ftype == "iq3_xxs" and not qs.has_imatrix:
            new = "Q4_K" if i_layer < n_layer // 8 else "Q3_K"
        elif ftype == "q3_k_m":
            if i_layer < n_layer // 16:
                new = "Q5_K"
            elif not falcon or _use_more_bits(i_layer, n_layer):
                new = "Q4_K"
            else:
                new = "Q3_K"
        elif ftype == "iq3_m" and (
            i_layer < n_layer // 8 or (qs.n_expert == 8 and _use_more_bits(i_layer, n_layer))
        ):
            new = "Q4_K"
        elif ftype == "q3_k_l":
            new = "Q4_K" if falcon else "Q5_K"
        elif ftype == "q4_k_m":
            if falcon:
                if i_layer < n_layer // 16:
                    new = "Q6_K"
                elif _use_more_bits(i_layer, n_layer):
                    new = "Q5_K"
                else:
                    new = "Q4_K"
            elif _use_more_bits(i_layer, n_layer):
                new = "Q6_K"
        elif i_layer < n_layer // 8 and ftype in ("iq4_nl", "iq4_xs") and not qs.has_imatrix:
            new = "Q5_K"
        elif ftype == "q5_k_m" and _use_more_bits(i_layer, n_layer):
            new = "Q6_K"
        elif ftype == "q4_k_s" and not falcon and i_layer < n_layer // 8:
            new = "Q5_K"
        elif ftype in ("q4_0", "q5_0") and qs.has_imatrix and i_layer < n_layer // 8:
            new = "Q4_1" if ftype == "q4_0" else "Q5_1"
        qs.i_ffn_down += 1
        return new
    if cat == "attn_output":
        if arch != "falcon":
            if qs.n_expert == 8:
                if ftype in (
                    "q2_k", "iq3_xs", "iq3_xxs", "q3_k_s", "q3_k_m", "iq4_nl", "q4_k_s",
                    "q4_k_m", "iq3_s", "iq3_m", "iq4_xs",
                ):  # fmt: skip
                    new = "Q5_K"
            else:
                new = {
                    "q2_k": "Q3_K",
                    "iq3_xxs": "IQ3_S",
                    "q3_k_m": "Q4_K",
                    "q3_k_l": "Q5_K",
                    "iq3_m": "Q4_K",
                }.get(ftype, new)
        elif ftype == "q3_k_l":
            new = "Q4_K"
        return new
    if cat == "attn_qkv":  # unreachable: attn_qkv is an attention-value category above
        return new
    if cat in ("ffn_gate", "ffn_up"):
        counter = qs.i_ffn_gate if cat == "ffn_gate" else qs.i_ffn_up
        i_layer = qs.layer(counter, name)
        if ftype == "iq3_xs" and n_layer // 8 <= i_layer < 7 * n_layer // 8:
            new = "IQ3_XXS"
        if cat == "ffn_gate":
            qs.i_ffn_gate += 1
        else:
            qs.i_ffn_up += 1
        return new
    return new


def _fallback(new: str, ne: tuple[int, ...]) -> tuple[str, bool]:
    """tensor_type_fallback: (the type, whether it fell back)."""
    ncols = ne[0]
    if ncols % GGML_BY_NAME[new].block == 0:
        return new, False
    if new not in FALLBACK:
        raise ValueError(f"no tensor type fallback is defined for type {new}")
    back = FALLBACK[new]
    if ncols % GGML_BY_NAME[back].block:
        back = "F16"
    return back, True


def _layer_key(name: str) -> tuple[int, str]:
    """weight_name_comparer: the layer of ``blk.N.`` (-1 outside the layers), then the
    name."""
    m = _BLOCK.match(name)
    return (int(m.group(1)) if m else -1, name)


#: one visit of llama_model_quantize_impl (:func:`_visits`): (name, ne, its source
#: type, whether it may be quantized, its category)
Visit = tuple[str, tuple[int, ...], str, bool, str]


@functools.lru_cache(maxsize=16)
def _visits(tensors: tuple[tuple[str, tuple[int, ...]], ...], outtype: str) -> tuple[Visit, ...]:
    """The tensors in the order llama_model_quantize_impl visits them, each with what
    does not depend on the mix: (name, ne, its source type, whether it may be quantized,
    its category); kept for the next mix of the same model."""
    ordered = sorted(tensors, key=lambda t: _layer_key(t[0]))
    # what a layer's tensor is depends on its name after ``blk.N.`` (every key the rules
    # look for is within it, or starts with the dot that ends ``blk.N.``): worked out
    # once for the layers' tensors of one name and shape
    seen: dict[tuple[str, tuple[int, ...]], tuple[str, bool, str]] = {}
    out = []
    for name, ne in ordered:
        m = _BLOCK.match(name)
        key = (name[m.end() :] if m else "\0" + name, ne)
        facts = seen.get(key)
        if facts is None:
            facts = seen[key] = (
                source_type(name, ne, outtype),
                allows_quantization(name, ne),
                _category(name),
            )
        out.append((name, ne, *facts))
    return tuple(out)


def tensor_types(
    tensors: Sequence[tuple[str, tuple[int, ...]]],
    ftype: str,
    *,
    arch: str,
    seventy_b: str = "",
    n_layer: int,
    n_head: int,
    n_head_kv: int,
    n_expert: int = 0,
    imatrix: bool = False,
    pure: bool = False,
    output_type: str = "",
    embedding_type: str = "",
    outtype: str = "F16",
) -> dict[str, tuple[str, str]]:
    """Each GGUF tensor (name, ne) -> (its source type, the type llama-quantize gives it
    in the mix ``ftype``), as llama_model_quantize_impl visits them."""
    visits = _visits(tuple(tensors), outtype)
    typing = _Typing(
        _visit_facts(visits),
        ftype,
        arch=arch,
        seventy_b=seventy_b,
        n_layer=n_layer,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_expert=n_expert,
        imatrix=imatrix,
        pure=pure,
        output_type=output_type,
        embedding_type=embedding_type,
    )
    types = [typing.one(*visit) for visit in visits]
    return {v[0]: (v[2], new) for v, new in zip(visits, types, strict=True)}


class _Typing:
    """llama_tensor_get_type over one mix's visits, a visit at a time (:meth:`one`), in
    llama-quantize's order for the categories it counts layers of."""

    def __init__(
        self,
        facts: tuple[bool, int],
        ftype: str,
        *,
        arch: str,
        seventy_b: str,
        n_layer: int,
        n_head: int,
        n_head_kv: int,
        n_expert: int,
        imatrix: bool,
        pure: bool,
        output_type: str,
        embedding_type: str,
    ) -> None:
        tied, n_attention_wv = facts  # :func:`_visit_facts`
        self.qs = _State(
            arch=arch,
            seventy_b=seventy_b,
            n_layer=n_layer,
            n_head=n_head,
            n_head_kv=n_head_kv,
            n_expert=n_expert,
            has_imatrix=imatrix,
            has_tied_embeddings=tied,
            n_attention_wv=n_attention_wv,
        )
        self.ftype, self.default, self.pure = ftype, FTYPES[ftype], pure
        self.output_type, self.embedding_type = output_type, embedding_type
        # a category llama-quantize counts no layers of (all but the attention values and
        # the feed-forward's) gets its type from its shape alone: worked out once per
        # shape. The gate's and up projection's counters decide only iq3_xs's types, and
        # without experts (whose layer a name says, or layer_info throws) nothing else
        # reads them
        self.counting = (
            _COUNTED if ftype == "iq3_xs" or max(1, n_expert) > 1 else _COUNTED_NOT_GATE_UP
        )
        self.typed: dict[tuple[str, tuple[int, ...]], str] = {}

    def one(self, name: str, ne: tuple[int, ...], source: str, allowed: bool, cat: str) -> str:
        """The type of the next visit (a counted category's counter moves on)."""
        if not allowed:
            return source
        if self.embedding_type and cat == "token_embd":
            return self.embedding_type
        if self.output_type and cat == "output":
            return self.output_type
        new = self.default
        if new in PLAIN:
            return new
        counted = cat in self.counting
        found = None if counted else self.typed.get((cat, ne))
        if found is not None:
            return found
        if not self.pure:
            new = _impl(self.qs, new, name, ne, self.ftype, cat, self.output_type)
        try:
            new, _ = _fallback(new, ne)
        except ValueError as err:
            raise ValueError(f"{name} (rows of {ne[0]:,}): {err}") from None
        if not counted:
            self.typed[(cat, ne)] = new
        return new


@functools.lru_cache(maxsize=16)
def _visit_facts(visits: tuple[Visit, ...]) -> tuple[bool, int]:
    """(the token embedding is tied: no output.weight; how many attention-value tensors
    there are), kept for the next mix of the same model."""
    return (
        all(v[0] != "output.weight" for v in visits),
        sum(1 for v in visits if v[4] in _ATTN_V),
    )


# ---------------------------------------------------------------------------------------
# the method
# ---------------------------------------------------------------------------------------


#: how one transformers tensor is stored in a mix: a ggml type, or the parts the
#: conversion splits it into, each (name, torch shape, ggml type)
Stored = str | tuple[tuple[str, tuple[int, ...], str], ...]


@frozen
class GGUFTypes(Method):
    """One layer's tensors as a GGUF mix stores them: param name -> ggml type."""

    types: tuple[tuple[str, Stored], ...] = ()
    mix: str = ""

    quant_method: ClassVar[str] = "gguf"

    def describe(self) -> str:
        return f"GGUF {self.mix.upper()}"

    def converts(self, parts: tuple[str, ...], spec: LayerSpec, head: bool) -> bool:
        return True

    def stored(self, spec: LayerSpec, param: Param) -> tuple[Param, ...] | None:
        found = dict(self.types).get(param.name)
        if found is None:
            return None
        if isinstance(found, str):
            role = f"{param.role}; GGUF {found}" if param.role else f"GGUF {found}"
            return (dataclasses.replace(param, role=role, dtype=GGML_BY_NAME[found].storage),)
        base = param.name.rpartition(".")[0]  # a parameter of a module within the leaf
        return tuple(  # the parts the conversion writes, each of its own type
            Param(
                f"{base}.{name}" if base else name,
                shape,
                f"{param.name}'s {name.partition('.')[0]} part as the GGUF file holds it; "
                f"GGUF {kind}",
                dtype=GGML_BY_NAME[kind].storage,
            )
            for name, shape, kind in found
        )


@frozen
class GGUFMix(Method):
    """A llama-quantize mix (``ftype``: q4_k_m, q8_0, ...): each tensor's ggml type as
    llama_tensor_get_type gives it. ``imatrix``: an importance matrix is given (it
    changes a few choices, and the 1- and 2-bit i-quants need one); ``pure``:
    ``--pure`` (every tensor the mix's base type); ``output_type`` and
    ``embedding_type``: ``--output-tensor-type`` and ``--token-embedding-type``."""

    ftype: str = "q4_k_m"
    imatrix: bool = False
    pure: bool = False
    output_type: str = ""
    embedding_type: str = ""
    #: the GGUF architecture (general.architecture) the model converts to: it decides
    #: LLaMA 70B's attn_v rule (llama, qwen2) and Falcon's; empty: by the model's kind
    arch: str = ""

    quant_method: ClassVar[str] = "gguf"
    aliases: ClassVar[dict[str, dict[str, Any]]] = {
        name: {"ftype": name} for name in FTYPES if name not in ("f16", "bf16", "f32")
    }
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"skip": ("modules_to_not_convert",)}

    def check(self, where: str) -> None:
        if self.ftype not in FTYPES:
            raise weights_error(
                where,
                self.ftype,
                f"{where}: ftype = {echo(self.ftype)} is not a llama-quantize mix "
                f"(mixes: {', '.join(FTYPES)})",
                "a llama-quantize mix",
            )
        for key in ("imatrix", "pure"):
            if not isinstance(getattr(self, key), bool):
                raise weights_error(
                    where,
                    getattr(self, key),
                    f"{where}: {key} must be true or false",
                    f"{key} is true or false",
                )
        for key in ("output_type", "embedding_type"):
            value = getattr(self, key)
            if value and (not isinstance(value, str) or value.upper() not in GGML_BY_NAME):
                raise weights_error(
                    where,
                    value,
                    f"{where}: {key} = {echo(value)} is not a ggml type (Q6_K, Q8_0, F16, ...)",
                    f"{key} is a ggml type",
                )
        if self.arch and self.arch not in _gguf_archs():
            raise weights_error(
                where,
                self.arch,
                f"{where}: arch = {echo(self.arch)} is not a GGUF architecture shapecalc "
                f"converts to (architectures: {', '.join(_gguf_archs())})",
                "a GGUF architecture",
            )
        if self.skip:
            raise weights_error(
                where,
                self.skip,
                f"{where}: a GGUF mix converts every tensor llama-quantize does; "
                "modules_to_not_convert does not apply",
                "no modules_to_not_convert",
            )

    def describe(self) -> str:
        extra = " with an importance matrix" if self.imatrix else ""
        return f"GGUF {self.ftype.upper()} (llama-quantize's mix{extra})"

    def converts(self, parts: tuple[str, ...], spec: LayerSpec, head: bool) -> bool:
        return False  # quantize_model places each type

    def stored(self, spec: LayerSpec, param: Param) -> tuple[Param, ...] | None:
        return None

    def quantize_model(self, model: Model, quantization: Quantization) -> Model:
        return _quantize(model, self, quantization)

    def stored_tensors(
        self, model: Model, quantization: Quantization
    ) -> tuple[tuple[str, Param], ...] | None:
        tensors, types = _typed(model, self, quantization)
        return tuple(
            (t.source, Param(t.name, t.shape, "", dtype=GGML_BY_NAME[types[t.name]].storage))
            for t in tensors
        )

    def stored_shapes(
        self, model: Model, quantization: Quantization
    ) -> dict[tuple[tuple[int, ...], str], int]:
        setting = _setting(model, self, quantization)
        by_runs = (
            None
            if _mtp_layers(model, self.arch)
            else model.memo(f"gguf.runs:{self.arch}", lambda: _by_runs(model, self))
        )
        typed = None
        if by_runs is not None:
            groups, counted, facts = by_runs
            typed = _priced(groups, counted, _plan(model, self, facts, *setting), self)
        if typed is None:  # not listed by runs, or a refusal: named as the visits meet it
            typed = _counted(model, self, quantization)
        out: dict[tuple[tuple[int, ...], str], int] = {}
        for (shape, kind), n in typed.items():
            key = (shape, GGML_BY_NAME[kind].storage)
            out[key] = out.get(key, 0) + n
        return out


def _counted(
    model: Model, method: GGUFMix, quantization: Quantization
) -> dict[tuple[tuple[int, ...], str], int]:
    """How many tensors of each (torch shape, ggml type) the mix makes, visit by visit
    (:func:`_visit_types`, refused as llama-quantize refuses)."""
    tensors, visits, types = _visit_types(model, method, quantization)
    shape = {t.name: t.shape for t in tensors}
    out: dict[tuple[tuple[int, ...], str], int] = {}
    for visit, kind in zip(visits, types, strict=True):
        key = (shape[visit[0]], kind)
        out[key] = out.get(key, 0) + 1
    return out


#: visits alike but for their layer (category, ne, source type, may be quantized): the
#: first of them, and how many there are of each torch shape
Group = tuple[Visit, dict[tuple[int, ...], int]]


def _by_runs(
    model: Model, method: GGUFMix
) -> tuple[list[Group], list[tuple[Visit, tuple[int, ...]]], tuple[bool, int]] | None:
    """The visits grouped alike (:data:`Group`), those of the categories a mix may count
    layers of (each with its torch shape, named layer by layer, in llama-quantize's
    order) and :func:`_visit_facts`, worked out a run of layers at a time
    (:func:`~shapecalc.quant.gguf_names.gguf_runs`); None where the model is not listed
    by runs."""
    runs = gguf_runs(model, method.arch or None)
    if not runs:
        return None
    groups: dict[tuple[str, tuple[int, ...], str, bool], Group] = {}
    counted: list[tuple[tuple[int, str], Visit, tuple[int, ...]]] = []
    tied, n_attention_wv = True, 0
    for t, layers in runs:
        ne = t.ne
        facts = (source_type(t.name, ne, "F16"), allows_quantization(t.name, ne), _category(t.name))
        cat = facts[2]
        n = len(layers) or 1
        tied = tied and t.name != "output.weight"
        n_attention_wv += n if cat in _ATTN_V else 0
        group = groups.setdefault((cat, ne, *facts[:2]), ((t.name, ne, *facts), {}))
        group[1][t.shape] = group[1].get(t.shape, 0) + n
        if cat not in _COUNTED:
            continue
        if not layers:
            counted.append(((-1, t.name), (t.name, ne, *facts), t.shape))
            continue
        block = _BLOCK.match(t.name)
        assert block is not None  # gguf_runs names a run's tensors blk.<first layer>.
        suffix = t.name[block.end() :]
        for index in layers:
            name = f"blk.{index}.{suffix}"
            counted.append(((index, name), (name, ne, *facts), t.shape))
    counted.sort(key=lambda c: c[0])  # weight_name_comparer: the layer, then the name
    return (
        list(groups.values()),
        [(visit, shape) for _, visit, shape in counted],
        (tied, n_attention_wv),
    )


def _priced(
    groups: list[Group],
    counted: list[tuple[Visit, tuple[int, ...]]],
    typing: _Typing,
    method: GGUFMix,
) -> dict[tuple[tuple[int, ...], str], int] | None:
    """How many tensors of each (torch shape, ggml type) the mix makes: a group of visits
    of a category the mix counts no layers of typed once, the others visit by visit in
    llama-quantize's order; None where llama-quantize would stop or ask for an
    importance matrix (the caller names the tensor it stops on)."""
    out: dict[tuple[tuple[int, ...], str], int] = {}
    try:
        for visit, shapes in groups:
            if visit[4] in typing.counting:
                continue
            kind = typing.one(*visit)
            for shape, n in shapes.items():
                out[shape, kind] = out.get((shape, kind), 0) + n
        for visit, shape in counted:
            if visit[4] in typing.counting:
                kind = typing.one(*visit)
                out[shape, kind] = out.get((shape, kind), 0) + 1
    except ValueError:
        return None
    if not method.imatrix and any(_needs_imatrix(kind, method.ftype) for _, kind in out):
        return None
    return out


def _sizes(model: Model) -> dict[str, int]:
    """n_layer, n_head, n_head_kv, n_expert from the model's arguments."""
    args = dict(model.arguments)
    out = {}
    for key, names in (
        ("n_layer", ("layers",)),
        ("n_head", ("heads",)),
        ("n_head_kv", ("kv_heads", "heads")),
        ("n_expert", ("experts",)),
    ):
        value = next((args[n] for n in names if isinstance(args.get(n), int)), 0)
        out[key] = value
    return out


def _quantize(model: Model, method: GGUFMix, quantization: Quantization) -> Model:
    tensors, types = _typed(model, method, quantization)
    parts: dict[str, list[GGUFName]] = {}
    for t in tensors:
        parts.setdefault(t.source, []).append(t)
    by_source: dict[str, Stored] = {}
    for source, found in parts.items():
        kinds = {types[t.name] for t in found}
        if len(kinds) == 1:
            by_source[source] = kinds.pop()
        else:  # a tensor the conversion splits, its parts of other types (DeepSeek's kv_b)
            by_source[source] = tuple(
                (t.name.rpartition(".")[0].rpartition(".")[2] + ".weight", t.shape, types[t.name])
                for t in found
            )
    root = _rewrite(model.root, (), by_source, method.ftype)
    mtp = _mtp_layers(model, method.arch)
    if mtp:
        root = _with_mtp(model, root, mtp, by_source, method.ftype)
    return dataclasses.replace(
        model,
        root=root,
        quantization=quantization,
        unquantized=model,
        make_template=None,
        factory=None,
    )


def _with_mtp(model: Model, root: Node, count: int, types: Mapping[str, Stored], mix: str) -> Node:
    """``root`` with the ``count`` MTP layers a glm4moe file holds after the model's own,
    typed: each the model's last layer (as the checkpoint's ``model.layers.<L + i>``,
    which transformers does not build) with NEXTN's tensors (eh_proj (H, 2H), enorm,
    hnorm, embed_tokens (V, H), shared_head.norm, shared_head.head (V, H)), held in the
    list of layers but not run: the list's flow stays its own layers
    (:func:`~shapecalc.quant.gguf_names.mtp_tensors` names them)."""
    from shapecalc.layers._embedding import Embedding
    from shapecalc.layers._linear import Linear
    from shapecalc.layers._norm import RMSNorm

    family = FAMILIES.get(model_arch(model))
    args = dict(model.arguments)
    layers, hidden, vocab = args.get("layers"), args.get("hidden"), args.get("vocab")
    if family is None or not all(isinstance(v, int) for v in (layers, hidden, vocab)):
        return root
    assert isinstance(layers, int) and isinstance(hidden, int) and isinstance(vocab, int)
    path = tuple(family.layers.split("."))
    original = _node_at(model.root, path)
    listed = _node_at(root, path)
    if not isinstance(original, Block) or not isinstance(listed, Block):
        return root
    last = next(
        (e.node for e in original.children if isinstance(e, Repeat) and e.holds(layers - 1)),
        None,
    )
    if not isinstance(last, Block):
        return root
    norm = next(
        (
            c.node.spec
            for c in last.children
            if isinstance(c, Child)
            and isinstance(c.node, Leaf)
            and isinstance(c.node.spec, RMSNorm)
        ),
        RMSNorm(hidden),
    )
    extra = [
        Child("eh_proj", Leaf(Linear(2 * hidden, hidden, bias=False), role="MTP projection")),
        Child("enorm", Leaf(norm, role="MTP embedding norm")),
        Child("hnorm", Leaf(norm, role="MTP hidden norm")),
        Child("embed_tokens", Leaf(Embedding(vocab, hidden), role="MTP token embedding")),
        Child(
            "shared_head",
            Block(
                "SharedHead",
                [
                    Child("norm", Leaf(norm, role="MTP head norm")),
                    Child("head", Leaf(Linear(hidden, vocab, bias=False), role="MTP head")),
                ],
            ),
        ),
    ]
    layer = Block(
        last.kind, [*last.children, *extra], last.flow, "MTP (nextn) layer: held, not run"
    )
    runs = [
        Repeat(_rewrite(layer, (*path, str(index)), types, mix), 1, index)
        for index in range(layers, layers + count)
    ]
    flow = listed.flow if listed.flow is not None else listed.steps()
    grown = Block(listed.kind, [*listed.children, *runs], flow, listed.description)
    return _replace_at(root, path, grown)


def _node_at(node: Node, path: tuple[str, ...]) -> Node | None:
    for part in path:
        if not isinstance(node, Block):
            return None
        found = next((c for c in node.children if isinstance(c, Child) and c.name == part), None)
        if found is None:
            return None
        node = found.node
    return node


def _replace_at(node: Node, path: tuple[str, ...], new: Node) -> Node:
    if not path:
        return new
    assert isinstance(node, Block)
    children = [
        Child(c.name, _replace_at(c.node, path[1:], new))
        if isinstance(c, Child) and c.name == path[0]
        else c
        for c in node.children
    ]
    return Block(node.kind, children, node.flow, node.description)


def _symbolic(model: Model) -> str | None:
    """The first tensor with a size name, or None."""
    return next(
        (n for n, shape in model.named_parameters() if not all(isinstance(d, int) for d in shape)),
        None,
    )


def _typed(
    model: Model, method: GGUFMix, quantization: Quantization
) -> tuple[list[GGUFName], dict[str, str]]:
    """The GGUF tensors of ``model`` and the ggml type of each (by its GGUF name), as
    llama-quantize's mix gives them; refused as llama-quantize refuses."""
    tensors, visits, types = _visit_types(model, method, quantization)
    return tensors, {v[0]: new for v, new in zip(visits, types, strict=True)}


def _visit_types(
    model: Model, method: GGUFMix, quantization: Quantization
) -> tuple[list[GGUFName], tuple[Visit, ...], list[str]]:
    """The GGUF tensors of ``model``, llama-quantize's visits of them (:func:`_visits`)
    and the ggml type it gives each visit in the mix; refused as llama-quantize refuses.
    What depends on the model alone is worked out once per model."""
    tensors, visits, typing = _prepared(model, method, quantization)
    try:
        types = [typing.one(*visit) for visit in visits]
    except ValueError as err:  # llama-quantize stops (no fallback, no layer)
        raise _stops(model, method, quantization, err) from None
    if not method.imatrix:
        needs = next(
            (
                (v[0], t)
                for v, t in zip(visits, types, strict=True)
                if _needs_imatrix(t, method.ftype)
                and v[0] not in ("token_embd.weight", "output.weight")
            ),
            None,
        )
        if needs:
            where = _where(quantization)
            raise weights_error(
                "weights",
                method.ftype,
                f"{where} {method.ftype}: llama-quantize makes {needs[1]} "
                f"({needs[0]}) only with an importance matrix; add :imatrix=true",
                "the 1- and 2-bit i-quants need an importance matrix",
            )
    return tensors, visits, types


def _where(quantization: Quantization) -> str:
    return quantization.source if quantization.source != "--weights" else "--weights"


def _needs_imatrix(kind: str, ftype: str) -> bool:
    return kind in NEEDS_IMATRIX or (kind == "Q2_K" and ftype == "q2_k_s")


def _stops(
    model: Model, method: GGUFMix, quantization: Quantization, err: ValueError
) -> InvalidArgumentError:
    return weights_error(
        "weights",
        method.ftype,
        f"{_where(quantization)} {method.ftype}: llama-quantize stops on {model.name}: {err}",
        "a mix llama-quantize can make",
    )


def _prepared(
    model: Model, method: GGUFMix, quantization: Quantization
) -> tuple[list[GGUFName], tuple[Visit, ...], _Typing]:
    """The GGUF tensors of ``model``, llama-quantize's visits of them, and the mix's
    typing of them, none done yet; refused where the model has no GGUF file."""
    arch, seventy_b = _setting(model, method, quantization)
    mtp = _mtp_layers(model, method.arch)
    tensors, unmapped = model.memo(
        f"gguf.tensors:{method.arch}:{mtp}",
        lambda: gguf_tensors(model, method.arch or None, mtp=mtp),
    )
    if unmapped or not tensors:
        said = ", ".join(unmapped[:3]) if unmapped else "no tensor"
        raise weights_error(
            "weights",
            method.ftype,
            f"{_where(quantization)} {method.ftype}: {model.name} has tensors without a GGUF "
            f"name ({said}); shapecalc names those of {NAMED}",
            "a model whose tensors have GGUF names",
        )
    listed = model.memo(
        f"gguf.listed:{method.arch}:{mtp}", lambda: tuple((t.name, t.ne) for t in tensors)
    )
    visits = _visits(listed, "F16")
    return tensors, visits, _plan(model, method, _visit_facts(visits), arch, seventy_b)


#: llama.cpp's LLAMA_MAX_LAYERS (src/llama-hparams.h): its loader, which llama-quantize
#: runs too, throws "n > N_MAX" for a file of more layers (llama_model_loader::
#: get_key_or_arr, reading the per-layer sizes in load_hparams)
MAX_LAYERS = 512


def _setting(model: Model, method: GGUFMix, quantization: Quantization) -> tuple[str, str]:
    """The GGUF architecture the mix's rules read and its 70B rule
    (:attr:`HFType.gguf_70b`); refused where a size is a name."""
    symbolic = _symbolic(model) if model.symbolic else None
    if symbolic is not None:
        raise weights_error(
            "weights",
            method.ftype,
            f"{_where(quantization)} {method.ftype}: a GGUF mix needs every size as a number "
            "(each tensor's type depends on its rows' length and its layer); "
            f"{symbolic} has a size name",
            "numbers for a GGUF mix",
        )
    layers = file_layers(model, method.arch)
    if layers > MAX_LAYERS:
        raise weights_error(
            "weights",
            method.ftype,
            f"{_where(quantization)} {method.ftype}: llama-quantize stops on {model.name}: "
            f"llama.cpp loads at most {MAX_LAYERS} layers (LLAMA_MAX_LAYERS) and the file "
            f"would hold {layers:,}",
            f"at most {MAX_LAYERS} layers in a GGUF model",
        )
    kind = str(getattr(model.config, "model_type", "") or model.kind or "")
    declared = model.memo(f"gguf.declared:{method.arch}", lambda: _declared(model, method.arch))
    arch = method.arch or (declared.gguf if declared else "") or kind
    return arch, declared.gguf_70b if declared else ""


@functools.lru_cache(maxsize=1)
def _gguf_archs() -> tuple[str, ...]:
    """Every GGUF architecture (general.architecture) a type shapecalc has converts to."""
    from shapecalc.architectures import commands, get

    return tuple(sorted({t.gguf for c in commands() for t in get(c).hf if t.gguf}))


def _declared(model: Model, arch: str) -> HFType | None:
    """The transformers type the model is (its class, as a config's model is named; else
    the type of its architecture's own name), or with ``arch`` the first type that
    converts to that GGUF architecture."""
    from shapecalc.architectures import command_for, commands, get

    cls = model.name.split(" ")[0]
    if not arch and not cls.isidentifier():  # no class name: the type's own module only
        own = command_for(model.kind or "")
        return next((t for t in get(own).hf if t.model_type == model.kind), None) if own else None
    types = [t for command in commands() for t in get(command).hf]
    if arch:
        return next((t for t in types if t.gguf == arch), None)
    found = next((t for t in types if cls in t.classes), None)
    return found or next((t for t in types if t.model_type == model.kind), None)


def file_layers(model: Model, arch: str = "") -> int:
    """The layers a GGUF file of ``model`` holds (its ``block_count``): the model's own
    and the MTP layers the conversion keeps (:func:`_mtp_layers`)."""
    return _sizes(model)["n_layer"] + _mtp_layers(model, arch)


def _mtp_layers(model: Model, arch: str = "") -> int:
    """The MTP (nextn) layers a conversion of ``model`` writes after its own: its
    ``mtp_layers`` (num_nextn_predict_layers) where the GGUF architecture keeps them
    (Glm4MoeModel: ``block_count`` = num_hidden_layers + num_nextn_predict_layers, and
    every tensor of ``model.layers.<L + i>.`` written); 0 for the others (DeepSeek's
    converter drops them)."""
    family = FAMILIES.get(arch or model_arch(model))
    if family is None or not family.mtp:
        return 0
    value = model.arguments.get("mtp_layers")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _plan(
    model: Model, method: GGUFMix, facts: tuple[bool, int], arch: str, seventy_b: str
) -> _Typing:
    sizes = _sizes(model)
    # llama-quant.cpp: qs.n_ffn_down = hparams.n_layer, the file's block_count
    sizes["n_layer"] = file_layers(model, method.arch)
    kv = kv_heads(model, arch)
    if kv is not None:
        sizes["n_head_kv"] = kv
    return _Typing(
        facts,
        method.ftype,
        arch=arch,
        seventy_b=seventy_b,
        imatrix=method.imatrix,
        pure=method.pure,
        output_type=method.output_type.upper(),
        embedding_type=method.embedding_type.upper(),
        n_layer=sizes["n_layer"],
        n_head=sizes["n_head"],
        n_head_kv=sizes["n_head_kv"],
        n_expert=sizes["n_expert"],
    )


def _names(node: Node, parts: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """(full name, param name) of every parameter under ``node`` at concrete ``parts``."""
    if isinstance(node, Leaf):
        for p in node.spec.params():
            yield join_name(*parts, p.name), p.name
        return
    for entry in node.children:
        if isinstance(entry, Repeat):
            for index in entry.indices() or ():
                yield from _names(entry.node, (*parts, str(index)))
        else:
            yield from _names(entry.node, (*parts, entry.name))


def _rewrite(node: Node, parts: tuple[str, ...], types: Mapping[str, Stored], mix: str) -> Node:
    """The tree with each leaf's tensors typed; a run whose layers differ split into runs
    of consecutive layers alike."""
    if isinstance(node, Leaf):
        own = tuple(
            (p.name, types[join_name(*parts, p.name)])
            for p in node.spec.params()
            if join_name(*parts, p.name) in types
        )
        if not own:
            return node
        return dataclasses.replace(node, spec=Quantized(node.spec, GGUFTypes(types=own, mix=mix)))
    entries: list[Any] = []
    for entry in node.children:
        if isinstance(entry, Child):
            entries.append(
                Child(entry.name, _rewrite(entry.node, (*parts, entry.name), types, mix))
            )
            continue
        indices = list(entry.indices() or ())
        groups: list[tuple[int, int, tuple[tuple[str, Stored], ...]]] = []
        for index in indices:
            here = (*parts, str(index))
            start = len(join_name(*here)) + 1
            sign = tuple(
                (full[start:], types.get(full, "")) for full, _ in _names(entry.node, here)
            )
            if groups and groups[-1][2] == sign:
                first, count, _ = groups[-1]
                groups[-1] = (first, count + 1, sign)
            else:
                groups.append((index, 1, sign))
        for first, count, _ in groups:
            inner = _rewrite(entry.node, (*parts, str(first)), types, mix)
            entries.append(Repeat(inner, count, first, entry.step))
    return Block(node.kind, entries, node.flow, node.description)


METHOD = GGUFMix
