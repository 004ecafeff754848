"""Embeddings: ``torch.nn.Embedding``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from shapecalc.dims import Dim, dim_str, known
from shapecalc.spec import LayerSpec, Param, register

__all__ = ["Embedding"]


@register
@dataclass(frozen=True)
class Embedding(LayerSpec):
    """``nn.Embedding(num_embeddings, embedding_dim, ...)``: a lookup table, one row per token.

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
    size_fields: ClassVar[dict[str, int]] = {"num_embeddings": 0, "embedding_dim": 0}
    bool_fields: ClassVar[tuple[str, ...]] = ("scale_grad_by_freq", "sparse")

    def __post_init__(self) -> None:
        self._check_fields()
        idx = self.padding_idx
        if idx is None:
            return
        if isinstance(idx, bool) or not isinstance(idx, int):
            self._fail("padding_idx", idx, "padding_idx must be an integer or None", f"got {idx!r}")
        n = known(self.num_embeddings)
        if n is not None and not -n <= idx < n:
            self._fail(
                "padding_idx",
                idx,
                "padding_idx must be within num_embeddings",
                f"{idx} is outside [-{n}, {n})",
                "num_embeddings",
            )

    def params(self) -> Iterator[Param]:
        n, d = self.num_embeddings, self.embedding_dim
        yield Param(
            "weight",
            (n, d),
            f"lookup table: one {dim_str(d)}-vector for each of {dim_str(n)} tokens",
        )
