"""The linear family: ``torch.nn.Linear``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from shapecalc.dims import Dim, dim_str
from shapecalc.spec import LayerSpec, Param, register

__all__ = ["Linear"]


@register
@dataclass(frozen=True)
class Linear(LayerSpec):
    """``nn.Linear(in_features, out_features, bias=True)``: ``y = x·Wᵀ + b``.

    >>> [(p.name, p.shape) for p in Linear(512, 65).params()]
    [('weight', (65, 512)), ('bias', (65,))]
    """

    in_features: Dim
    out_features: Dim
    bias: bool = True

    kind: ClassVar[str] = "Linear"
    size_fields: ClassVar[dict[str, int]] = {"in_features": 0, "out_features": 0}
    bool_fields: ClassVar[tuple[str, ...]] = ("bias",)

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        n_in, n_out = self.in_features, self.out_features
        yield Param(
            "weight",
            (n_out, n_in),
            f"weights of y = x·Wᵀ + b, {dim_str(n_in)} in -> {dim_str(n_out)} out, "
            "stored (out, in)",
        )
        if self.bias:
            yield Param("bias", (n_out,), f"bias b: one per output, {dim_str(n_out)}")
