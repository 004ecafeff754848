"""Block-scaled fp8 (transformers' ``FineGrainedFP8Config``, ``quant_method: fp8``; the
DeepSeek-V3 checkpoints): each Linear's weight stored as ``float8_e4m3fn`` (out, in), and
``weight_scale_inv``, one scale per block of ``weight_block_size`` (128 × 128 by default)
numbers, (⌈out/128⌉, ⌈in/128⌉), float32 (or ``float8_e8m0fnu`` powers of two with
``scale_fmt: ue8m0``); ``weight_block_size: null`` scales the whole tensor by one number.
Biases stay at the model's dtype; the output head is not converted
(``transformers/integrations/finegrained_fp8.py``: ``FP8Linear``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, floor_div
from shapecalc.core.errors import echo
from shapecalc.core.spec import LayerSpec, Param
from shapecalc.layers.linear import Linear
from shapecalc.quant import Method, weights_error

__all__ = ["METHOD", "FineGrainedFP8"]


def ceil_div(n: Dim, d: int) -> Dim:
    return floor_div(n + (d - 1), d)


@dataclass(frozen=True)
class FineGrainedFP8(Method):
    weight_block_size: Any = (128, 128)
    scale_fmt: str = "float"
    activation_scheme: str = "dynamic"

    quant_method: ClassVar[str] = "fp8"
    aliases: ClassVar[dict[str, dict[str, Any]]] = {"fp8": {}}
    ignored_keys: ClassVar[tuple[str, ...]] = ("quant_method", "dequantize")

    def check(self, where: str) -> None:
        block = self.weight_block_size
        if block is not None and (
            not isinstance(block, (list, tuple))
            or len(block) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)
        ):
            raise weights_error(
                where,
                block,
                f"{where}: weight_block_size = {echo(block)}: must be two positive integers "
                "(rows, columns) or null",
                "weight_block_size is two positive integers",
            )
        for key, value, options in (
            ("scale_fmt", self.scale_fmt, ("float", "ue8m0")),
            ("activation_scheme", self.activation_scheme, ("dynamic", "static")),
        ):
            if value not in options:
                raise weights_error(
                    where,
                    value,
                    f"{where}: {key} = {echo(value)}: must be one of {', '.join(options)}",
                    f"{key} is one of {', '.join(options)}",
                )

    def describe(self) -> str:
        block = self.weight_block_size
        scaled = "per tensor" if block is None else f"blocks of {block[0]}×{block[1]}"
        return f"fp8 (e4m3), scaled {scaled}"

    def converts(self, parts: tuple[str, ...], spec: LayerSpec, head: bool) -> bool:
        return isinstance(spec, Linear) and not head

    def stored(self, spec: LayerSpec, param: Param) -> tuple[Param, ...] | None:
        if param.name != "weight" or not isinstance(spec, Linear):
            return None
        n_out, n_in = spec.out_features, spec.in_features
        weight = Param(
            "weight",
            param.shape,
            f"{param.role}; fp8 (e4m3), one byte each",
            dtype="float8_e4m3fn",
        )
        block = self.weight_block_size
        scale_dtype = "float8_e8m0fnu" if self.scale_fmt == "ue8m0" else "float32"
        if block is None:
            scale = Param("weight_scale_inv", (), "one scale for the whole weight", dtype="float32")
        else:
            rows, cols = block
            scale = Param(
                "weight_scale_inv",
                (ceil_div(n_out, rows), ceil_div(n_in, cols)),
                f"one scale per block of {rows}×{cols} weights "
                f"(⌈{dim_str(n_out)}/{rows}⌉, ⌈{dim_str(n_in)}/{cols}⌉)",
                dtype=scale_dtype,
            )
        out = [weight, scale]
        if self.activation_scheme == "static":
            out.append(Param("activation_scale", (), "the input's scale", dtype="float32"))
        return tuple(out)


METHOD = FineGrainedFP8
