"""A GGUF file's ``<arch>.*`` metadata read into shapecalc's arguments, for the families
whose metadata is not LLaMA's: what each of llama.cpp's converter classes writes
(``set_gguf_parameters``) and what the tensors themselves say (a bias, a second norm).

* gpt2 (GPT2Model): ``block_count``, ``context_length`` (the position embedding's
  rows), ``embedding_length``, ``feed_forward_length`` (always 4·H), ``head_count``;
* falcon (FalconModel): ``head_count_kv`` (``num_kv_heads``, or 1 for multi-query);
  ``feed_forward_length`` always 4·H; ``attn_norm_2`` is there with the new decoder
  architecture's two norms (``ln_attn``, ``ln_mlp``);
* gptneox (GPTNeoXModel): no ``head_count_kv``; ``use_parallel_residual``;
* mamba (MambaModel): ``ssm.inner_size``, ``ssm.state_size``, ``ssm.conv_kernel``,
  ``ssm.time_step_rank``; ``head_count`` 0; the token list padded to a multiple of 8
  (``pad_vocab_size_multiple``), so the vocabulary is the token embedding's rows;
* mamba2 (Mamba2Model): as Mamba's, with ``ssm.time_step_rank`` the heads (d_inner /
  head_dim), ``ssm.group_count``, the token list padded to a multiple of 16;
* deepseek2 (DeepseekV2Model): ``head_count_kv`` 1 (latent attention written as one
  key head), ``vocab_size``, ``leading_dense_block_count``, ``attention.q_lora_rank``
  (absent without one), ``attention.kv_lora_rank``, ``attention.key_length_mla`` (Dn +
  Dr), ``attention.value_length_mla`` (Dv), ``rope.dimension_count`` (Dr),
  ``expert_count``, ``expert_used_count``, ``expert_shared_count``,
  ``expert_feed_forward_length`` (``expert_group_count`` and ``expert_group_used_count``
  where written: no tensor depends on them); DeepSeek-V3's router bias (``exp_probs_b``)
  says V3;
* gpt-oss (GptOssModel): ``attention.key_length`` (head_dim), ``expert_count``,
  ``expert_used_count``, ``expert_feed_forward_length``;
* jamba, falcon-h1, glm4moe, qwen3next, cohere2: each reader's docstring (Jamba's
  ``attention.head_count_kv`` one value per layer, GLM-4.5's ``block_count`` with its
  MTP layers).

A per-layer array (llama.cpp's ``get_key_or_arr``) must hold ``block_count`` integers,
else the key is named; in a family whose layers are alike, one value on every layer is
that value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shapecalc.adapters.gguf import GGUFArray, GGUFFile
from shapecalc.core.errors import InvalidArgumentError, echo

__all__ = ["ARGUMENTS", "Meta", "file_vocab"]


def file_vocab(file: GGUFFile) -> int | None:
    """The vocabulary when the file has no ``<arch>.vocab_size``: the tokenizer's token
    list, else the rows of ``token_embd.weight`` (a file written without a tokenizer);
    None without either."""
    tokens = file.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, GGUFArray):
        return tokens.length
    embedding = next((t for t in file.tensors if t.name == "token_embd.weight"), None)
    return None if embedding is None or len(embedding.ne) != 2 else embedding.ne[1]


_INTEGERS = frozenset({"uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"})


def per_layer(file: GGUFFile, key: str, layers: int) -> list[int]:
    """A per-layer array's numbers (llama.cpp's ``get_key_or_arr``: an array holds one
    value per layer, ``block_count`` of them), refused naming the key when it holds
    other than non-negative integers or another count."""
    value = file.metadata.get(key)
    assert isinstance(value, GGUFArray)

    def fail(message: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            message,
            field="target",
            value=file.path,
            rule="a GGUF file's metadata describes its model",
        )

    if value.item_type not in _INTEGERS or value.items is None:
        raise fail(
            f"{key} is an array of {value.length:,} {value.item_type}: a per-layer value is "
            "one integer per layer"
        )
    if value.length != layers:
        raise fail(
            f"{key} has {value.length:,} values for {layers:,} layers (block_count): a "
            "per-layer value has one per layer"
        )
    items = [int(v) for v in value.items]
    bad = next((v for v in items if v < 0), None)
    if bad is not None:
        raise fail(f"{key} holds {bad}: must be non-negative integers")
    return items


@dataclass(frozen=True)
class Meta:
    """A file's ``<arch>.*`` metadata, read as numbers, and its tensor names."""

    file: GGUFFile
    arch: str

    def fail(self, message: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            message,
            field="target",
            value=self.file.path,
            rule="a GGUF file's metadata describes its model",
        )

    @property
    def names(self) -> set[str]:
        return {t.name for t in self.file.tensors}

    def get(self, key: str, default: int | None = None) -> int | None:
        """A number; an array of one per layer (llama.cpp's loader takes either for the
        head counts and feed_forward_length) when every layer's is the same."""
        full = f"{self.arch}.{key}"
        value = self.file.metadata.get(full, default)
        if value is None:
            return None
        if isinstance(value, GGUFArray):
            if key == "block_count":
                raise self.fail(f"{full} is an array: the layers are counted by one number")
            values = per_layer(self.file, full, self.need("block_count"))
            if len(set(values)) > 1:
                raise self.fail(
                    f"{full} differs from layer to layer ({', '.join(map(str, values[:4]))}"
                    f"{', ...' if len(values) > 4 else ''}): shapecalc checks {self.arch} "
                    "models whose layers are alike"
                )
            return values[0] if values else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"{full} = {echo(value)}: must be a non-negative integer")
        return value

    def layer_values(self, key: str) -> list[int] | None:
        """One number per layer: an array of ``block_count`` numbers, or one number
        for every layer; None when the key is not there."""
        full = f"{self.arch}.{key}"
        value = self.file.metadata.get(full)
        if value is None:
            return None
        layers = self.need("block_count")
        if isinstance(value, GGUFArray):
            return per_layer(self.file, full, layers)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"{full} = {echo(value)}: must be a non-negative integer")
        return [value] * layers

    def need(self, key: str) -> int:
        value = self.get(key)
        if value is None:
            raise self.fail(f"{self.arch}.{key} is missing")
        return value

    def vocab(self) -> int:
        value = self.get("vocab_size")
        if value is None:
            value = file_vocab(self.file)
        if value is None:
            raise self.fail(
                f"neither {self.arch}.vocab_size, tokenizer.ggml.tokens nor token_embd.weight "
                "is there"
            )
        return value

    def unpadded_vocab(self, listed: int, multiple: int) -> int:
        """The token embedding's rows where the token list is those rows padded to a
        multiple of ``multiple`` (the converter pads the list; the model's table is the
        unpadded vocabulary), else ``listed``."""
        rows = self.rows("token_embd.weight")
        if rows is not None and rows < listed <= -(rows // -multiple) * multiple:
            return rows
        return listed

    def rows(self, name: str) -> int | None:
        """The rows (torch's first dim, ggml's last ne) of a 2-D tensor the file holds."""
        found = next((t for t in self.file.tensors if t.name == name), None)
        return found.shape[0] if found is not None and len(found.shape) == 2 else None

    def common(self) -> dict[str, Any]:
        return {
            "hidden": self.need("embedding_length"),
            "layers": self.need("block_count"),
            "vocab": self.vocab(),
            "tie_weights": "output.weight" not in self.names,
        }


def _gpt2(meta: Meta) -> dict[str, Any]:
    args = meta.common()
    args["heads"] = meta.need("attention.head_count")
    context = meta.get("context_length")
    if context is not None:
        args["context"] = context
    ff = meta.get("feed_forward_length")
    if ff is not None and ff != 4 * args["hidden"]:
        args["intermediate"] = ff
    return args


def _falcon(meta: Meta) -> dict[str, Any]:
    args = meta.common()
    heads = meta.need("attention.head_count")
    kv = meta.get("attention.head_count_kv", 1)
    args["heads"] = heads
    names = meta.names
    new = "blk.0.attn_norm_2.weight" in names or (kv not in (1, heads))
    args["new_decoder_architecture"] = new
    if new:
        args["kv_heads"] = kv
        args["parallel_norms"] = 2 if "blk.0.attn_norm_2.weight" in names else 1
    else:
        args["multi_query"] = kv == 1
    args["bias"] = "blk.0.attn_qkv.bias" in names
    ff = meta.get("feed_forward_length")
    if ff is not None and ff != 4 * args["hidden"]:
        args["intermediate"] = ff
    return args


def _gptneox(meta: Meta) -> dict[str, Any]:
    args = meta.common()
    args["heads"] = meta.need("attention.head_count")
    args["intermediate"] = meta.need("feed_forward_length")
    args["attention_bias"] = "blk.0.attn_qkv.bias" in meta.names
    return args


def _mamba(meta: Meta) -> dict[str, Any]:
    args = meta.common()
    args["vocab"] = meta.unpadded_vocab(args["vocab"], 8)
    inner = meta.need("ssm.inner_size")
    args["intermediate"] = inner
    if args["hidden"] and inner % args["hidden"] == 0:
        args["expand"] = inner // args["hidden"]
    args["state_size"] = meta.need("ssm.state_size")
    args["conv_kernel"] = meta.need("ssm.conv_kernel")
    args["time_step_rank"] = meta.need("ssm.time_step_rank")
    names = meta.names
    args["use_conv_bias"] = "blk.0.ssm_conv1d.bias" in names
    args["use_bias"] = "blk.0.ssm_in.bias" in names
    return args


def _mamba2(meta: Meta) -> dict[str, Any]:
    args = meta.common()
    args["vocab"] = meta.unpadded_vocab(args["vocab"], 16)
    inner = meta.need("ssm.inner_size")
    heads = meta.need("ssm.time_step_rank")
    if not heads or inner % heads:
        raise meta.fail(
            f"{meta.arch}.ssm.time_step_rank = {heads} does not divide "
            f"{meta.arch}.ssm.inner_size = {inner}: it is the heads of d_inner / head_dim"
        )
    args["heads"] = heads
    args["head_dim"] = inner // heads
    if args["hidden"] and inner % args["hidden"] == 0:
        args["expand"] = inner // args["hidden"]
    args["state_size"] = meta.need("ssm.state_size")
    args["conv_kernel"] = meta.need("ssm.conv_kernel")
    args["groups"] = meta.get("ssm.group_count", 1)
    names = meta.names
    args["conv_bias"] = "blk.0.ssm_conv1d.bias" in names
    args["bias"] = "blk.0.ssm_in.bias" in names
    return args


def _deepseek2(meta: Meta) -> dict[str, Any]:
    args = meta.common()
    args["heads"] = meta.need("attention.head_count")
    args["intermediate"] = meta.need("feed_forward_length")
    rope = meta.need("rope.dimension_count")
    key = meta.need("attention.key_length_mla")
    if key < rope:
        raise meta.fail(
            f"{meta.arch}.attention.key_length_mla = {key} is less than "
            f"{meta.arch}.rope.dimension_count = {rope}: it is Dn + Dr"
        )
    args["rope_dim"] = rope
    args["nope_dim"] = key - rope
    args["value_dim"] = meta.need("attention.value_length_mla")
    args["kv_lora_rank"] = meta.need("attention.kv_lora_rank")
    args["q_lora_rank"] = meta.get("attention.q_lora_rank")
    for argument, name in (
        ("experts", "expert_count"),
        ("experts_per_token", "expert_used_count"),
        ("moe_intermediate", "expert_feed_forward_length"),
        ("shared_experts", "expert_shared_count"),
        ("dense_layers", "leading_dense_block_count"),
        ("expert_groups", "expert_group_count"),
        ("topk_groups", "expert_group_used_count"),
    ):
        value = meta.get(name)
        if value is not None:
            args[argument] = value
    # the router's groups change no tensor: one group where the file says none
    args.setdefault("expert_groups", 1)
    args.setdefault("topk_groups", 1)
    v3 = any(n.endswith(".exp_probs_b.bias") for n in meta.names)
    args["_fixed"] = {"correction_bias": v3}  # V3's type, by what it fixes
    # transformers' own key heads: one per head (kv_b_proj makes every head's)
    args["_config"] = {"num_key_value_heads": args["heads"]}
    return args


def _gpt_oss(meta: Meta) -> dict[str, Any]:
    args = meta.common()
    heads = meta.need("attention.head_count")
    args["heads"] = heads
    args["kv_heads"] = meta.get("attention.head_count_kv", heads)
    head_dim = meta.get("attention.key_length")
    if head_dim is not None:
        args["head_dim"] = head_dim
    args["experts"] = meta.need("expert_count")
    args["experts_per_token"] = meta.need("expert_used_count")
    args["intermediate"] = meta.need("expert_feed_forward_length")
    args["attention_bias"] = "blk.0.attn_q.bias" in meta.names
    return args


def _every(indices: list[int], layers: int) -> tuple[int, int] | None:
    """(offset, period) such that layer i is in ``indices`` exactly when i % period ==
    offset (transformers' Jamba rule, offset < period), or None; no index: an offset
    past the last layer."""
    if not indices:
        return layers, layers + 1
    offset = indices[0]
    period = indices[1] - offset if len(indices) > 1 else max(offset + 1, layers - offset)
    if offset >= period or [i for i in range(layers) if i % period == offset] != indices:
        return None
    return offset, period


def _jamba(meta: Meta) -> dict[str, Any]:
    """JambaModel.set_gguf_parameters: ``attention.head_count_kv`` one value per layer
    (num_key_value_heads on the attention layers, 0 on the Mamba layers); which layers
    have experts is not written: llama.cpp's loader (src/models/jamba.cpp) takes a
    layer's ``ffn_gate_inp`` as its experts, and so does this reader."""
    args = meta.common()
    layers = args["layers"]
    heads = meta.need("attention.head_count")
    kv = meta.layer_values("attention.head_count_kv")
    if kv is None:
        raise meta.fail(f"{meta.arch}.attention.head_count_kv is missing")
    attends = [i for i, v in enumerate(kv) if v]
    key = f"{meta.arch}.attention.head_count_kv"
    if len({kv[i] for i in attends}) > 1:
        raise meta.fail(f"{key} gives the attention layers other key heads: Jamba's are alike")
    names = meta.names
    sparse = [i for i in range(layers) if f"blk.{i}.ffn_gate_inp.weight" in names]
    for what, indices, label in (
        ("attn_layer", attends, f"the attention layers ({key} not 0)"),
        ("expert_layer", sparse, "the layers with experts (ffn_gate_inp)"),
    ):
        found = _every(indices, layers)
        if found is None:
            shown = ", ".join(map(str, indices[:6])) + (", ..." if len(indices) > 6 else "")
            raise meta.fail(
                f"{label} are {shown}: Jamba's are every period-th layer from an offset "
                "below the period"
            )
        args[f"{what}_offset"], args[f"{what}_period"] = found
    args["heads"] = heads
    args["kv_heads"] = kv[attends[0]] if attends else heads
    args["intermediate"] = meta.need("feed_forward_length")
    args["experts"] = meta.need("expert_count")
    args["experts_per_token"] = meta.need("expert_used_count")
    inner = meta.need("ssm.inner_size")
    if not args["hidden"] or inner % args["hidden"]:
        raise meta.fail(
            f"{meta.arch}.ssm.inner_size = {inner} is not a multiple of "
            f"{meta.arch}.embedding_length = {args['hidden']}: it is mamba_expand times it"
        )
    args["expand"] = inner // args["hidden"]
    args["state_size"] = meta.need("ssm.state_size")
    args["conv_kernel"] = meta.need("ssm.conv_kernel")
    args["time_step_rank"] = meta.need("ssm.time_step_rank")
    mamba = next((i for i in range(layers) if i not in attends), 0)
    args["conv_bias"] = f"blk.{mamba}.ssm_conv1d.bias" in names
    args["proj_bias"] = f"blk.{mamba}.ssm_in.bias" in names
    return args


def _falcon_h1(meta: Meta) -> dict[str, Any]:
    """FalconH1Model.set_gguf_parameters (after Mamba2Model's): the attention's
    ``head_count``, ``head_count_kv``, ``key_length``; ``feed_forward_length``; the
    mixer's ``ssm.inner_size`` (mamba_d_ssm), ``ssm.time_step_rank`` (its heads),
    ``ssm.state_size``, ``ssm.group_count``, ``ssm.conv_kernel``; ``vocab_size``."""
    args = meta.common()
    heads = meta.need("attention.head_count")
    args["heads"] = heads
    args["kv_heads"] = meta.get("attention.head_count_kv", heads)
    head_dim = meta.get("attention.key_length")
    if head_dim is not None:
        args["head_dim"] = head_dim
    args["intermediate"] = meta.need("feed_forward_length")
    inner = meta.need("ssm.inner_size")
    mixer_heads = meta.need("ssm.time_step_rank")
    if not mixer_heads or inner % mixer_heads:
        raise meta.fail(
            f"{meta.arch}.ssm.time_step_rank = {mixer_heads} does not divide "
            f"{meta.arch}.ssm.inner_size = {inner}: it is the mixer's heads of d_ssm / d_head"
        )
    args["mamba_inner"] = inner
    args["mamba_heads"] = mixer_heads
    args["mamba_state"] = meta.need("ssm.state_size")
    args["mamba_groups"] = meta.get("ssm.group_count", 1)
    args["mamba_conv"] = meta.need("ssm.conv_kernel")
    names = meta.names
    args["mamba_rms_norm"] = "blk.0.ssm_norm.weight" in names
    args["mamba_conv_bias"] = "blk.0.ssm_conv1d.bias" in names
    args["mamba_proj_bias"] = "blk.0.ssm_in.bias" in names
    args["projectors_bias"] = "blk.0.ssm_out.bias" in names
    args["attention_bias"] = "blk.0.attn_q.bias" in names
    args["mlp_bias"] = "blk.0.ffn_up.bias" in names
    return args


def _glm4moe(meta: Meta) -> dict[str, Any]:
    """Glm4MoeModel.set_gguf_parameters: ``block_count`` counts the MTP layers too
    (num_hidden_layers + ``nextn_predict_layers``), which this reader takes off; the
    experts' ``expert_count``, ``expert_used_count``, ``expert_feed_forward_length``,
    ``expert_shared_count``, ``leading_dense_block_count``; ``attention.key_length``
    (head_dim) where written; the q and k norms where the tensors are."""
    args = meta.common()
    nextn = meta.get("nextn_predict_layers", 0) or 0
    if nextn >= args["layers"]:
        raise meta.fail(
            f"{meta.arch}.nextn_predict_layers = {nextn} is not below "
            f"{meta.arch}.block_count = {args['layers']}: the block count holds the "
            "model's layers and its MTP layers"
        )
    args["layers"] -= nextn
    heads = meta.need("attention.head_count")
    args["heads"] = heads
    args["kv_heads"] = meta.get("attention.head_count_kv", heads)
    head_dim = meta.get("attention.key_length")
    if head_dim is not None:
        args["head_dim"] = head_dim
    args["intermediate"] = meta.need("feed_forward_length")
    for argument, name in (
        ("experts", "expert_count"),
        ("experts_per_token", "expert_used_count"),
        ("moe_intermediate", "expert_feed_forward_length"),
        ("shared_experts", "expert_shared_count"),
        ("dense_layers", "leading_dense_block_count"),
    ):
        value = meta.get(name)
        if value is not None:
            args[argument] = value
    names = meta.names
    args["qk_norm"] = "blk.0.attn_q_norm.weight" in names
    args["attention_bias"] = "blk.0.attn_q.bias" in names
    args["_mtp"] = nextn
    return args


def _qwen3next(meta: Meta) -> dict[str, Any]:
    """Qwen3NextModel.set_gguf_parameters (after Qwen2MoeModel's and TextModel's): the
    linear attention's ``ssm.group_count`` (its key heads), ``ssm.time_step_rank`` (its
    value heads), ``ssm.state_size`` (the key head's dim), ``ssm.inner_size`` (value
    heads · value dim), ``ssm.conv_kernel``; ``full_attention_interval`` (llama.cpp's
    loader: layer i attends in full when (i + 1) % interval == 0); the experts'
    ``expert_count``, ``expert_used_count``, ``expert_feed_forward_length``,
    ``expert_shared_feed_forward_length``. Layers without ``ffn_gate_inp`` are dense
    (mlp_only_layers)."""
    args = meta.common()
    heads = meta.need("attention.head_count")
    args["heads"] = heads
    args["kv_heads"] = meta.get("attention.head_count_kv", heads)
    head_dim = meta.get("attention.key_length")
    if head_dim is not None:
        args["head_dim"] = head_dim
    args["intermediate"] = meta.need("feed_forward_length")
    args["experts"] = meta.need("expert_count")
    args["experts_per_token"] = meta.need("expert_used_count")
    args["moe_intermediate"] = meta.need("expert_feed_forward_length")
    args["shared_intermediate"] = meta.need("expert_shared_feed_forward_length")
    value_heads = meta.need("ssm.time_step_rank")
    inner = meta.need("ssm.inner_size")
    if not value_heads or inner % value_heads:
        raise meta.fail(
            f"{meta.arch}.ssm.time_step_rank = {value_heads} does not divide "
            f"{meta.arch}.ssm.inner_size = {inner}: it is the value heads of the inner size"
        )
    args["linear_value_heads"] = value_heads
    args["linear_value_dim"] = inner // value_heads
    args["linear_key_heads"] = meta.need("ssm.group_count")
    args["linear_key_dim"] = meta.need("ssm.state_size")
    args["conv_kernel"] = meta.need("ssm.conv_kernel")
    args["full_attention_interval"] = meta.need("full_attention_interval")
    names = meta.names
    dense = [i for i in range(args["layers"]) if f"blk.{i}.ffn_gate_inp.weight" not in names]
    if dense:
        args["dense_layers"] = dense
    args["attention_bias"] = any(n.endswith(".attn_q.bias") for n in names)
    return args


def _cohere2(meta: Meta) -> dict[str, Any]:
    """Cohere2Model.set_gguf_parameters (TextModel's, and ``vocab_size``); its biases
    are dropped by the conversion (all zero), so none is read."""
    args = meta.common()
    heads = meta.need("attention.head_count")
    args["heads"] = heads
    args["kv_heads"] = meta.get("attention.head_count_kv", heads)
    head_dim = meta.get("attention.key_length")
    if head_dim is not None:
        args["head_dim"] = head_dim
    args["intermediate"] = meta.need("feed_forward_length")
    return args


#: GGUF architecture -> its metadata read into shapecalc's arguments (``_fixed``: the
#: fixed arguments of the transformers type the file is, where the architecture has
#: several; ``_config``: config fields no argument says)
ARGUMENTS: dict[str, Callable[[Meta], dict[str, Any]]] = {
    "gpt2": _gpt2,
    "falcon": _falcon,
    "gptneox": _gptneox,
    "mamba": _mamba,
    "mamba2": _mamba2,
    "deepseek2": _deepseek2,
    "gpt-oss": _gpt_oss,
    "jamba": _jamba,
    "falcon-h1": _falcon_h1,
    "glm4moe": _glm4moe,
    "cohere2": _cohere2,
    "qwen3next": _qwen3next,
}
