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
  ``expert_used_count``, ``expert_feed_forward_length``.
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
        full = f"{self.arch}.{key}"
        value = self.file.metadata.get(full, default)
        if value is None:
            return None
        if isinstance(value, GGUFArray):
            raise self.fail(
                f"{full} is an array (one value per layer): shapecalc checks models whose "
                "layers are alike"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"{full} = {echo(value)}: must be a non-negative integer")
        return value

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
}
