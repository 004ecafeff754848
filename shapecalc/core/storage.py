"""How a tensor's numbers are stored: bytes per number, or bytes per block of numbers.

A tensor of the model's dtype (fp32, bf16) costs the same bytes per number; a tensor that
keeps a dtype of its own whatever the model's (MXFP4's uint8 blocks, a quantized
checkpoint's int32 ``qweight`` and fp16 ``scales``, a GGUF file's ``Q4_K`` blocks) names
that dtype, and this table says what it costs. A dtype stored in blocks (GGUF's block
quantizations: 256 numbers in 144 bytes for ``Q4_K``) costs its block's bytes per block,
exactly; its tensors' rows hold whole blocks.

Example:

    >>> STORAGE["float8_e4m3fn"].nbytes(1000)
    1000
    >>> STORAGE["bfloat16"].nbytes(6)
    12
"""

from __future__ import annotations

from dataclasses import dataclass

from shapecalc.core.dims import Dim, exact_div, floor_div

__all__ = ["GGML_TYPES", "STORAGE", "GGMLType", "Storage", "ggml_storage", "storage_of"]


@dataclass(frozen=True)
class Storage:
    """A dtype's cost: ``block_bytes`` bytes for every ``block`` numbers."""

    name: str
    block_bytes: int
    block: int = 1
    #: what it is, for a table's rule column (``4-bit integers, two to a byte``)
    about: str = ""

    def nbytes(self, count: Dim) -> Dim:
        """Bytes of ``count`` numbers (whole blocks: a partial block costs a whole one)."""
        if self.block == 1:
            return count * self.block_bytes
        whole = exact_div(count, self.block)
        if whole is None:
            whole = floor_div(count + (self.block - 1), self.block)
        return whole * self.block_bytes

    @property
    def bits(self) -> float:
        """Bits per number (4.5 for Q4_0's 18 bytes per 32)."""
        return 8 * self.block_bytes / self.block

    @property
    def itemsize(self) -> int | None:
        """Bytes per number of a dtype stored number by number; None for block types."""
        return self.block_bytes if self.block == 1 else None


#: every dtype a tensor may be stored in, by torch's name (and GGUF's type names, added
#: by the GGUF reader's table); the model's own dtypes too, under torch's names
STORAGE: dict[str, Storage] = {
    s.name: s
    for s in (
        Storage("float32", 4, about="32-bit floats"),
        Storage("float16", 2, about="16-bit floats"),
        Storage("bfloat16", 2, about="bfloat16"),
        Storage("float8_e4m3fn", 1, about="8-bit floats (e4m3)"),
        Storage("float8_e5m2", 1, about="8-bit floats (e5m2)"),
        Storage("float8_e8m0fnu", 1, about="8-bit powers of two (e8m0)"),
        Storage("float64", 8, about="64-bit floats"),
        Storage("int8", 1, about="8-bit integers"),
        Storage("uint8", 1, about="bytes"),
        Storage("int16", 2, about="16-bit integers"),
        Storage("int32", 4, about="32-bit integers"),
        Storage("int64", 8, about="64-bit integers"),
        Storage("bool", 1, about="booleans, a byte each"),
    )
}


@dataclass(frozen=True)
class GGMLType:
    """A GGUF tensor type: its id in a file (``ggml_type`` in ggml.h), its name, and the
    :data:`STORAGE` entry that prices it (torch's name for the plain types, ggml's for
    the blocks)."""

    id: int
    name: str
    block: int
    block_bytes: int
    about: str

    @property
    def storage(self) -> str:
        return _GGML_PLAIN.get(self.name, self.name)


#: the ggml types that are torch's dtypes under another name
_GGML_PLAIN = {
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F64": "float64",
    "I8": "int8",
    "I16": "int16",
    "I32": "int32",
    "I64": "int64",
}

#: every ggml type a GGUF file may hold, by id: (block of numbers, bytes per block), as
#: gguf-py's ``GGML_QUANT_SIZES`` (gguf 0.19, llama.cpp's gguf-py/gguf/constants.py) and
#: ggml-common.h's ``block_*`` structs give them (QK_K = 256)
GGML_TYPES: dict[int, GGMLType] = {
    t.id: t
    for t in (
        GGMLType(0, "F32", 1, 4, "32-bit floats"),
        GGMLType(1, "F16", 1, 2, "16-bit floats"),
        GGMLType(2, "Q4_0", 32, 18, "4-bit, one fp16 scale per 32"),
        GGMLType(3, "Q4_1", 32, 20, "4-bit, fp16 scale and min per 32"),
        GGMLType(6, "Q5_0", 32, 22, "5-bit, one fp16 scale per 32"),
        GGMLType(7, "Q5_1", 32, 24, "5-bit, fp16 scale and min per 32"),
        GGMLType(8, "Q8_0", 32, 34, "8-bit, one fp16 scale per 32"),
        GGMLType(9, "Q8_1", 32, 40, "8-bit, fp32 scale and sum per 32"),
        GGMLType(10, "Q2_K", 256, 84, "2-bit k-quant, 4-bit scales per 16"),
        GGMLType(11, "Q3_K", 256, 110, "3-bit k-quant, 6-bit scales per 16"),
        GGMLType(12, "Q4_K", 256, 144, "4-bit k-quant, 6-bit scales per 32"),
        GGMLType(13, "Q5_K", 256, 176, "5-bit k-quant, 6-bit scales per 32"),
        GGMLType(14, "Q6_K", 256, 210, "6-bit k-quant, 8-bit scales per 16"),
        GGMLType(15, "Q8_K", 256, 292, "8-bit k-quant (intermediate)"),
        GGMLType(16, "IQ2_XXS", 256, 66, "2.06-bit i-quant (lattice)"),
        GGMLType(17, "IQ2_XS", 256, 74, "2.31-bit i-quant (lattice)"),
        GGMLType(18, "IQ3_XXS", 256, 98, "3.06-bit i-quant (lattice)"),
        GGMLType(19, "IQ1_S", 256, 50, "1.56-bit i-quant"),
        GGMLType(20, "IQ4_NL", 32, 18, "4-bit non-linear, per 32"),
        GGMLType(21, "IQ3_S", 256, 110, "3.44-bit i-quant"),
        GGMLType(22, "IQ2_S", 256, 82, "2.56-bit i-quant"),
        GGMLType(23, "IQ4_XS", 256, 136, "4.25-bit non-linear, per 256"),
        GGMLType(24, "I8", 1, 1, "8-bit integers"),
        GGMLType(25, "I16", 1, 2, "16-bit integers"),
        GGMLType(26, "I32", 1, 4, "32-bit integers"),
        GGMLType(27, "I64", 1, 8, "64-bit integers"),
        GGMLType(28, "F64", 1, 8, "64-bit floats"),
        GGMLType(29, "IQ1_M", 256, 56, "1.75-bit i-quant"),
        GGMLType(30, "BF16", 1, 2, "bfloat16"),
        GGMLType(34, "TQ1_0", 256, 54, "ternary, 1.69 bits"),
        GGMLType(35, "TQ2_0", 256, 66, "ternary, 2.06 bits"),
        GGMLType(39, "MXFP4", 32, 17, "4-bit floats (e2m1), e8m0 scale per 32"),
        GGMLType(40, "NVFP4", 64, 36, "4-bit floats (e2m1), fp8 scales per 16"),
        GGMLType(41, "Q1_0", 128, 18, "1-bit, one fp16 scale per 128"),
    )
}

#: ggml type name -> the type
GGML_BY_NAME: dict[str, GGMLType] = {t.name: t for t in GGML_TYPES.values()}

for _t in GGML_TYPES.values():
    if _t.name not in _GGML_PLAIN:
        STORAGE[_t.name] = Storage(_t.name, _t.block_bytes, _t.block, f"GGUF {_t.about}")


def ggml_storage(name: str) -> Storage:
    """The storage of a ggml type by its name (``Q4_K``, ``F16``)."""
    return STORAGE[GGML_BY_NAME[name].storage]


#: shapecalc's short dtype names (``--dtype``) to torch's
SHORT_NAMES: dict[str, str] = {
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
    "fp8": "float8_e4m3fn",
    "int8": "int8",
}


def storage_of(dtype: str) -> Storage:
    """The storage of a dtype by torch's name or shapecalc's short one (``bf16``)."""
    return STORAGE[SHORT_NAMES.get(dtype, dtype)]
