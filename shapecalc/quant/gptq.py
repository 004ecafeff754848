"""GPTQ (transformers' ``GPTQConfig``, ``quant_method: gptq``), as transformers loads it
today: optimum's ``GPTQQuantizer.convert_model`` puts a GPTQModel ``QuantLinear`` in place
of each linear layer of the decoder blocks (``optimum/gptq/quantizer.py``), whose buffers
are what the checkpoint stores (``gptqmodel/nn_modules/qlinear/__init__.py``:
``GPTQQuantLinear._register_gptq_buffers``), in this order:

- ``qweight`` int32 (⌈in·bits/32⌉, out): the integers packed 32/bits to a word down the
  input dimension (3-bit: 32 numbers in 3 words);
- ``qzeros`` int32 (G, ⌈out·bits/32⌉): a zero point per group and output, packed;
- ``scales`` float16 (G, out): a scale per group and output;
- ``g_idx`` int32 (in,): the group of each input (``desc_act`` reorders it, its size
  stays);
- ``bias`` float16 (out,), where the layer has one.

G = ⌈in/group_size⌉ groups (one with ``group_size: -1``). Symmetric or not, v1
(``gptq``) or v2 (``gptq_v2``) zero points: the same tensors. The embeddings, norms and
the head stay at the model's dtype (GPTQModel's ``lm_head: true`` quantizes the head too).
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param
from shapecalc.quant import weights_error
from shapecalc.quant._packed import PackedMethod, ceil_div, divides, matrices

__all__ = ["GPTQ", "METHOD"]

#: transformers' GPTQConfig.post_init: "Only support quantization to [2,3,4,8] bits"
BITS = (2, 3, 4, 8)
#: GPTQModel's TorchLinear.SUPPORTS_GROUP_SIZE (gptqmodel/nn_modules/qlinear/torch.py),
#: the kernel transformers selects on a CPU; a group of the whole input is taken too
GROUP_SIZES = (-1, 16, 32, 64, 128, 256, 512, 1024)
#: checkpoint formats whose tensors are the packed layout above
FORMATS = ("gptq", "gptq_v2")

#: keys GPTQ configs carry (transformers' GPTQConfig, optimum's GPTQQuantizer, AutoGPTQ's
#: and GPTQModel's quantize_config.json) that change no stored tensor
IGNORED = (
    "quant_method",
    "damp_percent",
    "damp_auto_increment",
    "static_groups",
    "true_sequential",
    "act_group_aware",
    "model_name_or_path",
    "model_file_base_name",
    "meta",
    "tokenizer",
    "dataset",
    "batch_size",
    "pad_token_id",
    "model_seqlen",
    "module_name_preceding_first_block",
    "cache_block_outputs",
    "use_exllama",
    "disable_exllama",
    "exllama_config",
    "max_input_length",
    "use_cuda_fp16",
    "backend",
    "quantizer",
    "mse",
    "v2",
    "v2_alpha",
    "hyb_act",
    "offload_to_disk",
    "offload_to_disk_path",
    "rotation",
    "is_marlin_format",
    "dynamic",
)


@frozen
class GPTQ(PackedMethod):
    """GPTQ's packed weights (``qweight``, ``qzeros``, ``scales``, ``g_idx``), ``bits`` a
    weight, one scale and zero per ``group_size`` inputs, ``desc_act`` as configured."""

    bits: int = 4
    group_size: int = 128
    desc_act: bool = False
    sym: bool = True
    checkpoint_format: str = "gptq"
    pack_dtype: str = "int32"
    lm_head: bool = False
    block_name_to_quantize: str = ""
    modules_in_block_to_quantize: Any = None
    is_marlin_format: bool = False
    dynamic: Any = None

    quant_method: ClassVar[str] = "gptq"
    library: ClassVar[str] = "optimum"
    aliases: ClassVar[dict[str, dict[str, Any]]] = {
        "gptq": {},
        "gptq-int4": {"bits": 4},
        "gptq-int8": {"bits": 8},
        "gptq-int3": {"bits": 3},
        "gptq-int2": {"bits": 2},
    }
    keys: ClassVar[dict[str, tuple[str, ...]]] = {
        **PackedMethod.keys,
        "checkpoint_format": ("checkpoint_format", "format"),
    }
    ignored_keys: ClassVar[tuple[str, ...]] = tuple(
        k for k in IGNORED if k not in ("is_marlin_format", "dynamic")
    )

    def check(self, where: str) -> None:
        def refuse(key: str, value: Any, rule: str) -> None:
            raise weights_error(where, value, f"{where}: {key} = {echo(value)}: {rule}", rule)

        if isinstance(self.bits, bool) or self.bits not in BITS:
            refuse("bits", self.bits, "GPTQ takes 2, 3, 4 or 8 bits (transformers' GPTQConfig)")
        if isinstance(self.group_size, bool) or self.group_size not in GROUP_SIZES:
            refuse(
                "group_size",
                self.group_size,
                "GPTQModel's kernels take -1 (one group) or 16, 32, ..., 1024",
            )
        for key in ("desc_act", "sym", "lm_head", "is_marlin_format"):
            if not isinstance(getattr(self, key), bool):
                refuse(key, getattr(self, key), f"{key} is true or false")
        fmt = self.checkpoint_format
        if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
            refuse(
                "checkpoint_format",
                fmt,
                "shapecalc stores gptq and gptq_v2 (packed qweight, qzeros, scales, g_idx)",
            )
        if self.is_marlin_format:
            refuse("is_marlin_format", True, "Marlin checkpoints store other tensors")
        if self.pack_dtype not in ("int32", "torch.int32"):
            refuse("pack_dtype", self.pack_dtype, "transformers' GPTQ layers pack into int32")
        if self.dynamic:
            refuse(
                "dynamic",
                self.dynamic,
                "per-module overrides are GPTQModel's own; transformers' GPTQ path takes none",
            )
        if not isinstance(self.block_name_to_quantize, str):
            refuse("block_name_to_quantize", self.block_name_to_quantize, "a module name")
        keep = self.modules_in_block_to_quantize
        if keep is not None and not (
            isinstance(keep, (list, tuple))
            and all(
                isinstance(group, (list, tuple)) and all(isinstance(n, str) for n in group)
                for group in keep
            )
        ):
            refuse(
                "modules_in_block_to_quantize",
                keep,
                "a list of lists of module names within a block",
            )

    def describe(self) -> str:
        groups = "one group" if self.group_size == -1 else f"groups of {self.group_size}"
        return f"GPTQ {self.bits}-bit, {groups}"

    def kinds(self) -> str:
        return "nn.Linear and Conv1D"

    def block_name(self) -> str:
        return self.block_name_to_quantize

    def takes(self, spec: LayerSpec) -> bool:
        from shapecalc.layers._linear import Linear
        from shapecalc.quant import CONV1D, loaded
        from shapecalc.quant._packed import _per_expert

        return isinstance(spec, Linear) or loaded(spec, CONV1D) is not None or _per_expert(spec)

    def converts(self, parts: tuple[str, ...], spec: LayerSpec, head: bool) -> bool:
        if head:
            # GPTQModel's lm_head option; optimum's convert_model leaves the head
            if self.lm_head and self.takes(spec):
                for _, n_in, n_out in matrices(spec):
                    self.check_sizes(".".join(parts), n_in, n_out)
                return True
            return False
        if self.modules_in_block_to_quantize is not None:
            # optimum's convert_model: only names that end with one listed
            name = ".".join(parts)
            listed = [n for group in self.modules_in_block_to_quantize for n in group]
            if not any(name.endswith(n) for n in listed):
                return False
        return super().converts(parts, spec, head)

    def check_sizes(self, where: str, n_in: Dim, n_out: Dim) -> None:
        if self.bits == 3:
            # pack_original packs 3-bit numbers 32 at a time, into 3 words
            for field, value in (("in_features", n_in), ("out_features", n_out)):
                if divides(value, 32) is False:
                    self.refuse_size(
                        where, field, value, "3-bit GPTQ packs 32 numbers into 3 words"
                    )

    def packed(self, n_in: Dim, n_out: Dim) -> tuple[Param, ...]:
        bits = self.bits
        groups: Dim = 1 if self.group_size == -1 else ceil_div(n_in, self.group_size)
        per = f"{32 // bits} to a word" if 32 % bits == 0 else "32 to 3 words"
        size = "the whole input" if self.group_size == -1 else f"{self.group_size} inputs"
        return (
            Param(
                "qweight",
                (_words(n_in, bits), n_out),
                f"the {bits}-bit weights packed down the inputs, {per} "
                f"(⌈{dim_str(n_in)}·{bits}/32⌉, {dim_str(n_out)})",
                dtype="int32",
            ),
            Param(
                "qzeros",
                (groups, _words(n_out, bits)),
                f"a {bits}-bit zero point per group and output, packed {per}",
                dtype="int32",
            ),
            Param(
                "scales",
                (groups, n_out),
                f"a scale per group of {size} and output",
                dtype="float16",
            ),
            Param("g_idx", (n_in,), "the group of each input", dtype="int32"),
        )


def _words(n: Dim, bits: int) -> Dim:
    """⌈n·bits/32⌉: 32-bit words holding n numbers of ``bits`` bits."""
    if 32 % bits == 0:
        return ceil_div(n, 32 // bits)
    return ceil_div(n * bits, 32)


METHOD = GPTQ
