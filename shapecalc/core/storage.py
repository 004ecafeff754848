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

__all__ = ["STORAGE", "Storage", "storage_of"]


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
