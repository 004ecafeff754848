"""``Embedding``, apart from :mod:`shapecalc.layers.embedding`'s ``EmbeddingBag``, so that a
language model loads only what it builds. Import it from
:mod:`shapecalc.layers.embedding`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, int_text, known
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, register

__all__ = ["Embedding"]


class _Table(LayerSpec):
    """What Embedding and EmbeddingBag share: the table and the padding_idx rule."""

    num_embeddings: Dim
    embedding_dim: Dim
    padding_idx: int | None
    max_norm: float | None
    norm_type: float

    family: ClassVar[str] = "embedding"
    size_fields: ClassVar[dict[str, int]] = {"num_embeddings": 0, "embedding_dim": 0}

    def __post_init__(self) -> None:
        self._check_fields()
        self._check_padding_idx()

    def _check_padding_idx(self) -> None:
        self._check_number("max_norm", optional=True)
        self._check_number("norm_type")
        idx = self.padding_idx
        if idx is None:
            return
        if isinstance(idx, bool) or not isinstance(idx, int):
            self._fail(
                "padding_idx", idx, "padding_idx must be an integer or None", f"got {echo(idx)}"
            )
        n = known(self.num_embeddings)
        if n is not None and not -n <= idx < n:
            self._fail(
                "padding_idx",
                idx,
                "padding_idx must be within num_embeddings",
                f"{int_text(idx)} is outside [-{n}, {n})",
                "num_embeddings",
            )

    def params(self) -> Iterator[Param]:
        n, d = self.num_embeddings, self.embedding_dim
        yield Param(
            "weight",
            (n, d),
            f"lookup table: one {dim_str(d)}-vector for each of {dim_str(n)} tokens",
        )


@register
@frozen
class Embedding(_Table):
    """``nn.Embedding(num_embeddings, embedding_dim, ...)``: a lookup table, one row per token.

    Example:

        >>> [(p.name, p.shape) for p in Embedding(65, 512).params()]
        [('weight', (65, 512))]
    """

    num_embeddings: Dim
    embedding_dim: Dim
    padding_idx: int | None = None
    max_norm: float | None = None
    norm_type: float = 2.0
    scale_grad_by_freq: bool = False
    sparse: bool = False

    kind: ClassVar[str] = "Embedding"
    summary: ClassVar[str] = "lookup table: weight (num_embeddings, embedding_dim)"
    example: ClassVar[dict[str, Any]] = {"num_embeddings": 65, "embedding_dim": 512}
    formula_args: ClassVar[dict[str, Any]] = {"num_embeddings": "V", "embedding_dim": "E"}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 100),)
    bool_fields: ClassVar[tuple[str, ...]] = ("scale_grad_by_freq", "sparse")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """Indices of any shape (*) -> (*, embedding_dim)."""
        if len(inputs) != 1:
            self._fail_shape(f"takes one input shape, got {len(inputs)}", inputs)
        return ((*inputs[0], self.embedding_dim),)

    def work(self, *inputs: Shape) -> Work:
        """A lookup: no FLOPs. Keeps the indices (int64, 8 bytes each) to scatter the
        gradient back into the rows they read."""
        return Work(
            self.output_shapes(*inputs),
            saved=(Stored("indices", inputs[0], itemsize=8, of="input"),),
        )
