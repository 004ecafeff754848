"""Embeddings: ``Embedding`` (a lookup table) and ``EmbeddingBag`` (sums or means of rows)."""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.core.dims import Dim, product, shape_str
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import Shape, Stored, Work, register
from shapecalc.layers._embedding import Embedding, _Table
from shapecalc.layers._shapes import one_input

__all__ = ["Embedding", "EmbeddingBag"]


@register
@frozen
class EmbeddingBag(_Table):
    """``nn.EmbeddingBag(num_embeddings, embedding_dim, max_norm=None, norm_type=2.0,
    scale_grad_by_freq=False, mode='mean', sparse=False, include_last_offset=False,
    padding_idx=None)``: reduces each bag of rows to one vector.

    torch's constructor accepts any ``mode`` and fails at the first forward; shapecalc
    refuses anything but ``'sum'``, ``'mean'`` and ``'max'`` at once.
    """

    num_embeddings: Dim
    embedding_dim: Dim
    max_norm: float | None = None
    norm_type: float = 2.0
    scale_grad_by_freq: bool = False
    mode: str = "mean"
    sparse: bool = False
    include_last_offset: bool = False
    padding_idx: int | None = None

    kind: ClassVar[str] = "EmbeddingBag"
    summary: ClassVar[str] = "sum, mean or max of bags of rows: weight (num_embeddings, dim)"
    example: ClassVar[dict[str, Any]] = {
        "num_embeddings": 10000,
        "embedding_dim": 64,
        "mode": "sum",
    }
    formula_args: ClassVar[dict[str, Any]] = {"num_embeddings": "V", "embedding_dim": "E"}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 20),)
    bool_fields: ClassVar[tuple[str, ...]] = (
        "scale_grad_by_freq",
        "sparse",
        "include_last_offset",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_choice("mode", ("sum", "mean", "max"))

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(B, N) bags of N indices -> (B, embedding_dim); or a 1-D input with offsets (B,)
        -> (B, embedding_dim), one fewer bag with ``include_last_offset``."""
        if len(inputs) == 1:
            shape = one_input(self, inputs, 2)
            return ((shape[0], self.embedding_dim),)
        if len(inputs) != 2:
            self._fail_shape(f"takes an input and optional offsets, got {len(inputs)}", inputs)
        indices, offsets = inputs
        if len(indices) != 1 or len(offsets) != 1:
            self._fail_shape(
                f"with offsets the input must be 1-D and the offsets 1-D, got "
                f"{shape_str(indices)} and {shape_str(offsets)}",
                inputs,
            )
        if self.include_last_offset and isinstance(offsets[0], int) and offsets[0] < 2:
            # torch aborts the process here in mode='max'
            self._fail_shape(
                "include_last_offset needs at least 2 offsets (the last one closes the last "
                f"bag), got {offsets[0]}",
                offsets,
            )
        bags = offsets[0] - 1 if self.include_last_offset else offsets[0]
        return ((bags, self.embedding_dim),)

    def work(self, *inputs: Shape) -> Work:
        """One add (sum, mean) or comparison (max) per number read, and for mean one
        divide per output number. Keeps int64 bookkeeping as PyTorch's kernel does: the
        indices, the offsets, the bag of each index (mean, max, or with a padding_idx),
        the bag sizes, and for max the index of each maximum."""
        outputs = self.output_shapes(*inputs)
        read = product(inputs[0]) * self.embedding_dim
        bags = outputs[0][0]
        mean = self.mode == "mean"
        n = product(inputs[0])
        offsets = inputs[1][0] if len(inputs) == 2 else bags
        ints: Dim = n + offsets + 2 * bags
        if self.mode != "sum" or self.padding_idx is not None:
            ints += n + 1  # offset2bag
        if self.mode == "max":
            ints += bags * self.embedding_dim - bags
        return Work(
            outputs,
            other=read + (product(outputs[0]) if mean else 0),
            other_rule="1 add or comparison per number read"
            + (", 1 divide per output number" if mean else ""),
            saved=(Stored("indices, offsets and bag bookkeeping", (ints,), itemsize=8),),
        )
