"""A layer spec of one's own: ConvNeXt-V2's Global Response Normalization (GRN), as
facebookresearch/ConvNeXt-V2 writes it (models/utils.py): on an (N, H, W, C) input,
``gamma * (x * Nx) + beta + x`` with ``Gx`` the L2 norm of each channel over H and W and
``Nx = Gx / (mean of Gx over the channels + 1e-6)``. This is the example of
docs/howto/own-layer.md, run by tests/test_own_layer.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from shapecalc import LayerSpec, Param, ShapeError
from shapecalc.core.spec import Shape, Stored, Work


@dataclass(frozen=True)
class GRN(LayerSpec):
    """``GRN(dim)``: gamma and beta, (1, 1, 1, dim) each."""

    # 1. the fields: the torch module's own arguments, by its names
    dim: Any

    kind: ClassVar[str] = "GRN"
    summary: ClassVar[str] = "global response normalization (ConvNeXt-V2)"

    # 2. the tensors: named, ordered and shaped as named_parameters() gives them
    def params(self) -> Iterator[Param]:
        yield Param("gamma", (1, 1, 1, self.dim), "scale per channel")
        yield Param("beta", (1, 1, 1, self.dim), "shift per channel")

    # 3. the shape rule: what forward returns, or a ShapeError naming what does not fit
    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        if len(inputs) != 1 or len(inputs[0]) != 4 or inputs[0][-1] != self.dim:
            raise ShapeError(
                f"GRN({self.dim}) takes one (N, H, W, {self.dim}) input, got {inputs}",
                layer=str(self),
                field="input",
                value=inputs,
                rule=f"an (N, H, W, {self.dim}) input",
            )
        return (inputs[0],)

    # 4. the work: no matrix product (0 multiply-accumulates); the elementwise FLOPs by a
    #    stated rule; what autograd keeps for the backward pass
    def work(self, *inputs: Shape) -> Work:
        (shape,) = outputs = self.output_shapes(*inputs)
        n, h, w, c = shape
        return Work(
            outputs,
            macs=0,
            other=6 * n * h * w * c + 3 * n * c,
            other_rule="per number: square and add (2), x·Nx (1), ·gamma (1), +beta (1), +x (1); "
            "per channel: the root, the mean's add and the division (3)",
            saved=(  # autograd's rules: norm keeps x and Gx, the division both of its
                # operands, x * Nx both factors, gamma * (x * Nx) the product
                Stored("input", shape, of="input"),
                Stored("Gx and Nx", (n, 1, 1, c), copies=2),
                Stored("mean of Gx + 1e-6", (n, 1, 1, 1)),
                Stored("x·Nx", shape),
            ),
        )


def make(spec: GRN, device: str) -> Any:
    """5. its torch module, for shapecalc.build: ConvNeXt-V2's own code."""
    import torch
    from torch import nn

    class TorchGRN(nn.Module):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim, device=device))
            self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim, device=device))

        def forward(self, x: Any) -> Any:
            gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
            nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
            return self.gamma * (x * nx) + self.beta + x

    return TorchGRN(spec.dim)
