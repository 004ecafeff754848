"""bitsandbytes, 8-bit and 4-bit (transformers' ``BitsAndBytesConfig``, ``quant_method:
bitsandbytes``), as a saved state dict holds the layers transformers converts.

Converted: every ``nn.Linear`` and GPT-2's ``Conv1D`` (its weight quantized transposed,
(out, in)), except the output head (``lm_head``), tied tensors and
``llm_int8_skip_modules``. When the config names ``llm_int8_skip_modules`` those are the
only ones left (transformers' ``get_modules_to_not_convert`` adds the head only when it
is None). Fused experts, embeddings and norms are not ``nn.Linear``: they stay.

8-bit (``load_in_8bit``, LLM.int8, ``bnb.nn.Linear8bitLt``): ``weight`` int8 (out, in),
``bias`` at the model's dtype, ``SCB`` float32 (out,), one scale per row, and
``weight_format`` uint8 (), a 0 kept for older readers.

4-bit (``load_in_4bit``, ``bnb.nn.Linear4bit``, blocks of 64 numbers): ``weight`` the
packed 4-bit numbers, two to a byte, viewed as ``bnb_4bit_quant_storage``: ((out·in +
1) // (2·itemsize), 1); ``bias``; ``weight.absmax`` one float32 per block (⌈out·in/64⌉,),
or with ``bnb_4bit_use_double_quant`` one uint8 per block, itself quantized in blocks of
256: ``weight.nested_absmax`` float32 (⌈blocks/256⌉,) and ``weight.nested_quant_map``
float32 (256,); ``weight.quant_map`` float32 (16,), the 16 values of fp4 or nf4; and
``weight.quant_state.bitsandbytes__nf4`` (or ``__fp4``), uint8 bytes of a JSON text:
quant type, block size, the weights' dtype, their shape and, double-quantized, the
offset subtracted before the second quantization, a float whose printed length depends
on the numbers (priced at 19 characters, ``0.05173492431640625``).

Sources: ``transformers/integrations/bitsandbytes.py`` (``replace_with_bnb_linear``),
``transformers/quantizers/base.py`` (``get_keys_to_not_convert``),
``bitsandbytes/nn/modules.py`` (``Linear8bitLt._save_to_state_dict``,
``Linear4bit._save_to_state_dict``), ``bitsandbytes/functional.py``
(``QuantState.as_dict``, ``quantize_4bit``), ``bitsandbytes/_ops.py`` (the packed shape).
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, floor_div, known
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param
from shapecalc.layers._linear import Linear
from shapecalc.quant import CONV1D, Method, loaded, require_choices, weights_error

__all__ = ["METHOD", "BitsAndBytes"]

#: numbers per absmax block (``Params4bit``'s default, which transformers keeps)
BLOCK = 64
#: absmax values per block of the second quantization (``quantize_4bit``)
NESTED_BLOCK = 256
#: what ``bnb_4bit_quant_storage`` may be, with bytes per element
#: (``BitsAndBytesConfig.__init__``)
QUANT_STORAGE = {
    "uint8": 1,
    "int8": 1,
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
}
#: the dtypes bitsandbytes quantizes from (``quantize_4bit``: 16- and 32-bit floats)
WEIGHT_DTYPES = ("float32", "float16", "bfloat16")
#: a double quantization's offset as ``json.dumps`` writes it, at its usual length
OFFSET = 0.05173492431640625


def ceil_div(n: Dim, d: int) -> Dim:
    return floor_div(n + (d - 1), d)


def state_text(
    quant_type: str, dtype: str, shape: tuple[int, int], nested: bool, offset: float = OFFSET
) -> str:
    """The JSON text ``QuantState.as_dict(packed=True)`` packs into its uint8 tensor, as
    ``json.dumps`` writes it (the names are plain words, a float is its ``repr``;
    written out here: the json module is a few milliseconds to import)."""
    text = (
        f'{{"quant_type": "{quant_type}", "blocksize": {BLOCK}, "dtype": "{dtype}", '
        f'"shape": [{", ".join(str(int(n)) for n in shape)}]'
    )
    if nested:
        text += (
            f', "nested_blocksize": {NESTED_BLOCK}, "nested_dtype": "float32", '
            f'"nested_offset": {float(offset)!r}'
        )
    return text + "}"


def _bool(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise weights_error(
            where,
            value,
            f"{where}: {key} = {echo(value)}: must be true or false",
            f"{key} is a boolean",
        )
    return value


@frozen
class BitsAndBytes(Method):
    """bitsandbytes' 8-bit (LLM.int8: int8 weights, one fp32 scale a row) and 4-bit
    (fp4 or nf4 in blocks of 64, double quantization of the scales optional) Linear
    layers, as ``BitsAndBytesConfig`` sets them."""

    load_in_8bit: bool = False
    load_in_4bit: bool = False
    bnb_4bit_quant_type: str = "fp4"
    bnb_4bit_use_double_quant: bool = False
    bnb_4bit_quant_storage: str = "uint8"
    llm_int8_has_fp16_weight: bool = False
    #: the dtype the weights were quantized from, written in each 4-bit layer's state
    #: (a config's ``dtype``; shapecalc's own setting, not the quantization_config's)
    dtype: str = "bfloat16"
    #: transformers leaves the head unconverted only when llm_int8_skip_modules is None
    default_skips: bool = True

    quant_method: ClassVar[str] = "bitsandbytes"
    aliases: ClassVar[dict[str, dict[str, Any]]] = {
        "int8": {"load_in_8bit": True},
        "bnb8": {"load_in_8bit": True},
        "nf4": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
        "fp4": {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4"},
        "bnb4": {"load_in_4bit": True},
    }
    keys: ClassVar[dict[str, tuple[str, ...]]] = {
        "skip": ("llm_int8_skip_modules",),
        "load_in_8bit": ("load_in_8bit", "_load_in_8bit"),
        "load_in_4bit": ("load_in_4bit", "_load_in_4bit"),
        "default_skips": (),
    }
    ignored_keys: ClassVar[tuple[str, ...]] = (
        "quant_method",
        "llm_int8_threshold",
        "llm_int8_enable_fp32_cpu_offload",
        "bnb_4bit_compute_dtype",
    )

    @classmethod
    def from_options(cls, options: Any, where: str) -> Method:
        method = super().from_options(options, where)
        assert isinstance(method, BitsAndBytes)
        if options.get("llm_int8_skip_modules") is not None:
            object.__setattr__(method, "default_skips", False)
        return method

    def check(self, where: str) -> None:
        for key in (
            "load_in_8bit",
            "load_in_4bit",
            "bnb_4bit_use_double_quant",
            "llm_int8_has_fp16_weight",
        ):
            _bool(where, key, getattr(self, key))
        if self.load_in_8bit == self.load_in_4bit:
            raise weights_error(
                where,
                self.load_in_8bit,
                f"{where}: bitsandbytes takes one of load_in_8bit and load_in_4bit "
                f"(got load_in_8bit = {echo(self.load_in_8bit)}, load_in_4bit = "
                f"{echo(self.load_in_4bit)})",
                "one of load_in_8bit and load_in_4bit",
            )
        require_choices(
            where,
            (
                ("bnb_4bit_quant_type", self.bnb_4bit_quant_type, ("fp4", "nf4")),
                ("bnb_4bit_quant_storage", self.bnb_4bit_quant_storage, tuple(QUANT_STORAGE)),
                ("dtype", self.dtype, WEIGHT_DTYPES),
            ),
        )

    def describe(self) -> str:
        if self.load_in_8bit:
            if self.llm_int8_has_fp16_weight:
                return "bitsandbytes 8-bit, weights kept in 16 bits"
            return "bitsandbytes 8-bit (LLM.int8)"
        double = ", double-quantized" if self.bnb_4bit_use_double_quant else ""
        return f"bitsandbytes 4-bit {self.bnb_4bit_quant_type}{double}"

    def converts(self, parts: tuple[str, ...], spec: LayerSpec, head: bool) -> bool:
        if self.load_in_8bit and self.llm_int8_has_fp16_weight:
            return False  # Int8Params with has_fp16_weights keep the weight as it is
        if head and self.default_skips:
            return False
        return type(spec) is Linear or loaded(spec, CONV1D) is not None

    def varies(self, name: str) -> bool:
        return self.bnb_4bit_use_double_quant and ".quant_state.bitsandbytes__" in name

    def _features(self, spec: LayerSpec) -> tuple[Dim, Dim]:
        conv = loaded(spec, CONV1D)
        if conv is not None:
            return conv.nf, conv.nx
        assert isinstance(spec, Linear)
        return spec.out_features, spec.in_features

    def stored(self, spec: LayerSpec, param: Param) -> tuple[Param, ...] | None:
        if param.name != "weight":
            return None
        n_out, n_in = self._features(spec)
        conv = loaded(spec, CONV1D) is not None
        flip = ", transposed from Conv1D's (in, out)" if conv else ""
        if self.load_in_8bit:
            return (
                Param(
                    "weight",
                    (n_out, n_in),
                    f"{param.role}; int8, one byte each, stored (out, in){flip}",
                    trainable=False,
                    dtype="int8",
                ),
            )
        storage = self.bnb_4bit_quant_storage
        size = QUANT_STORAGE[storage]
        numbers = n_out * n_in
        count = known(numbers)
        if count is not None and (((count + 1) // 2) % size or (storage != "uint8" and count <= 2)):
            raise weights_error(
                "bnb_4bit_quant_storage",
                storage,
                f"bitsandbytes 4-bit as {storage}: a weight of {dim_str(n_out)} × "
                f"{dim_str(n_in)} packs into {(count + 1) // 2} byte(s), which bitsandbytes "
                f"cannot view as {size}-byte {storage} elements (it takes a multiple of "
                f"{size}, and more than one byte)",
                f"out·in packs into a multiple of {size} bytes",
            )
        return (
            Param(
                "weight",
                (floor_div(numbers + 1, 2 * size), 1),
                f"{param.role}; {self.bnb_4bit_quant_type}: {dim_str(n_out)}·{dim_str(n_in)} "
                f"4-bit numbers, two to a byte, as {storage} ({size} byte(s) each){flip}",
                trainable=False,
                dtype=storage,
            ),
        )

    def appended(self, spec: LayerSpec, twin: LayerSpec | None = None) -> tuple[Param, ...]:
        n_out, n_in = self._features(spec)
        if self.load_in_8bit:
            return (
                Param(
                    "SCB",
                    (n_out,),
                    "one float32 scale per row (absmax / 127)",
                    trainable=False,
                    dtype="float32",
                ),
                Param(
                    "weight_format",
                    (),
                    "0: row-major (kept for older readers)",
                    trainable=False,
                    dtype="uint8",
                ),
            )
        blocks = ceil_div(n_out * n_in, BLOCK)
        nested = self.bnb_4bit_use_double_quant
        out = [
            Param(
                "weight.absmax",
                (blocks,),
                f"each block of {BLOCK} numbers' absolute maximum"
                + (f", quantized to a byte (blocks of {NESTED_BLOCK})" if nested else ""),
                trainable=False,
                dtype="uint8" if nested else "float32",
            ),
            Param(
                "weight.quant_map",
                (16,),
                f"the 16 values a 4-bit {self.bnb_4bit_quant_type} number stands for",
                trainable=False,
                dtype="float32",
            ),
        ]
        if nested:
            out += [
                Param(
                    "weight.nested_absmax",
                    (ceil_div(blocks, NESTED_BLOCK),),
                    f"the absolute maximum of each block of {NESTED_BLOCK} absmax values",
                    trainable=False,
                    dtype="float32",
                ),
                Param(
                    "weight.nested_quant_map",
                    (256,),
                    "the 256 values an absmax byte stands for (bitsandbytes' dynamic map)",
                    trainable=False,
                    dtype="float32",
                ),
            ]
        out.append(self._state(n_out, n_in, twin))
        return tuple(out)

    def _state(self, n_out: Dim, n_in: Dim, twin: LayerSpec | None) -> Param:
        shape = (known(n_out), known(n_in))
        if (shape[0] is None or shape[1] is None) and twin is not None:
            twin_out, twin_in = self._features(twin)
            shape = (known(twin_out), known(twin_in))
        if shape[0] is None or shape[1] is None:
            raise weights_error(
                "weights",
                self.describe(),
                f"{self.describe()}: each layer stores its shape as JSON text, whose "
                "length no formula writes; give the sizes as numbers",
                "4-bit bitsandbytes needs concrete sizes",
            )
        text = state_text(
            self.bnb_4bit_quant_type,
            self.dtype,
            (shape[0], shape[1]),
            self.bnb_4bit_use_double_quant,
        )
        offset = " and the offset (about 19 characters)" if self.bnb_4bit_use_double_quant else ""
        return Param(
            f"weight.quant_state.bitsandbytes__{self.bnb_4bit_quant_type}",
            (len(text.encode()),),
            f"the quantization state as JSON text, a byte a character: type, block size, "
            f"dtype, shape{offset}",
            trainable=False,
            dtype="uint8",
        )


METHOD = BitsAndBytes
