"""Block-scaled fp8 (transformers' ``FineGrainedFP8Config``, ``quant_method: fp8``; the
DeepSeek-V3 checkpoints): each Linear's weight stored as ``float8_e4m3fn`` (out, in), and
``weight_scale_inv``, one scale per block of ``weight_block_size`` (128 × 128 by default)
numbers, (⌈out/128⌉, ⌈in/128⌉), float32 (or ``float8_e8m0fnu`` powers of two with
``scale_fmt: ue8m0``); ``weight_block_size: null`` scales the whole tensor by one number.
Biases stay at the model's dtype. The tensors in ``FP8Linear``'s order: ``weight``,
``bias``, ``weight_scale_inv``, ``activation_scale`` (``activation_scheme: static``).

The fused experts of a mixture (``FP8Experts``): ``gate_up_proj`` (E, 2·I, H) and
``down_proj`` (E, H, I) in fp8, each followed by its ``*_scale_inv`` (E, ⌈rows/128⌉,
⌈cols/128⌉), the gate_up scale at least 2 rows; with ``expert_dtype: fp4`` the weights
are int8 bytes of two 4-bit numbers (E, rows, cols/2) and the scales one per row and 32
columns (E, rows, ⌈cols/32⌉); static activations add ``gate_up_proj_activation_scale``
and ``down_proj_activation_scale`` (E,).

Left alone: the output head and tied tensors when ``modules_to_not_convert`` is null
(transformers' ``get_modules_to_not_convert`` adds them only then), and the modules it
names (``transformers/integrations/finegrained_fp8.py``: ``FP8Linear``, ``FP8Experts``,
``_alloc_expert_proj``, ``replace_with_fp8_linear``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, floor_div, known
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param
from shapecalc.layers._linear import Linear
from shapecalc.quant import EXPERTS, Method, loaded, require_choices, weights_error

if TYPE_CHECKING:
    from shapecalc.layers._experts import Experts

__all__ = ["METHOD", "FineGrainedFP8"]


def ceil_div(n: Dim, d: int) -> Dim:
    return floor_div(n + (d - 1), d)


@frozen
class FineGrainedFP8(Method):
    """Block-scaled fp8 (transformers' ``fp8`` quant_method): float8_e4m3 weights and a
    ``weight_scale_inv`` per block of ``weight_block_size``."""

    weight_block_size: Any = (128, 128)
    scale_fmt: str = "float"
    activation_scheme: str = "dynamic"
    expert_dtype: str = "fp8"
    #: DeepSeek-V3's configs say the float format (``fmt: e4m3``)
    fmt: str = "e4m3"
    modules_to_convert: Any = None
    #: transformers leaves the head unconverted only when modules_to_not_convert is None
    default_skips: bool = True

    quant_method: ClassVar[str] = "fp8"
    aliases: ClassVar[dict[str, dict[str, Any]]] = {"fp8": {}}
    ignored_keys: ClassVar[tuple[str, ...]] = ("quant_method", "dequantize")
    keys: ClassVar[dict[str, tuple[str, ...]]] = {
        "skip": ("modules_to_not_convert",),
        "default_skips": (),
    }

    @classmethod
    def from_options(cls, options: Any, where: str) -> Method:
        method = super().from_options(options, where)
        if "weight_block_size" in options and options["weight_block_size"] is None:
            object.__setattr__(method, "weight_block_size", None)  # per tensor, said so
        if options.get("modules_to_not_convert") is not None:
            object.__setattr__(method, "default_skips", False)
        return method

    def check(self, where: str) -> None:
        if self.modules_to_convert:
            raise weights_error(
                where,
                self.modules_to_convert,
                f"{where}: modules_to_convert = {echo(self.modules_to_convert)}: fp8 "
                "embeddings (FP8Embedding) are not modelled by shapecalc",
                "modules_to_convert is null",
            )
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
        require_choices(
            where,
            (
                ("scale_fmt", self.scale_fmt, ("float", "ue8m0")),
                ("activation_scheme", self.activation_scheme, ("dynamic", "static")),
                ("expert_dtype", self.expert_dtype, ("fp8", "fp4")),
                ("fmt", self.fmt, ("e4m3",)),
            ),
        )

    def describe(self) -> str:
        block = self.weight_block_size
        scaled = "per tensor" if block is None else f"blocks of {block[0]}×{block[1]}"
        return f"fp8 (e4m3), scaled {scaled}"

    def converts(self, parts: tuple[str, ...], spec: LayerSpec, head: bool) -> bool:
        if head and self.default_skips:
            return False
        experts = loaded(spec, EXPERTS)
        if experts is not None:
            return bool(experts.layout == "fused" and parts and parts[-1] == "experts")
        return type(spec) is Linear

    def stored(self, spec: LayerSpec, param: Param) -> tuple[Param, ...] | None:
        experts = loaded(spec, EXPERTS)
        if experts is not None:
            return self._experts(experts, param)
        if param.name != "weight" or not isinstance(spec, Linear):
            return None
        return (
            Param(
                "weight",
                param.shape,
                f"{param.role}; fp8 (e4m3), one byte each",
                dtype="float8_e4m3fn",
            ),
        )

    def appended(self, spec: LayerSpec, twin: LayerSpec | None = None) -> tuple[Param, ...]:
        experts = loaded(spec, EXPERTS)
        if experts is not None:
            if self.activation_scheme != "static":
                return ()
            return tuple(
                Param(
                    f"{name}_activation_scale",
                    (experts.num_experts,),
                    "each expert's input scale",
                    dtype="float32",
                )
                for name in ("gate_up_proj", "down_proj")
            )
        if not isinstance(spec, Linear):
            return ()
        n_out, n_in = spec.out_features, spec.in_features
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
        out = [scale]
        if self.activation_scheme == "static":
            out.append(Param("activation_scale", (), "the input's scale", dtype="float32"))
        return tuple(out)

    def _experts(self, spec: Experts, param: Param) -> tuple[Param, ...]:
        """``FP8Experts``: each projection and its scales (``_alloc_expert_proj``)."""
        e, h, i = spec.num_experts, spec.hidden_size, spec.intermediate_size
        rows, cols = (2 * i, h) if param.name == "gate_up_proj" else (h, i)
        least = 2 if param.name == "gate_up_proj" else 1
        scale_dtype = "float8_e8m0fnu" if self.scale_fmt == "ue8m0" else "float32"
        if self.expert_dtype == "fp4":
            n = known(cols)
            if n is not None and n % 2:
                raise weights_error(
                    "expert_dtype",
                    "fp4",
                    f"fp8 with expert_dtype fp4: {param.name} has {n} columns, not a whole "
                    "number of bytes of two 4-bit numbers",
                    "the experts' columns are even",
                )
            weight = Param(
                param.name,
                (e, rows, floor_div(cols, 2)),
                f"{param.role}; fp4 (e2m1), two to an int8 byte",
                dtype="int8",
            )
            scale_shape: tuple[Dim, ...] = (e, _at_least(rows, least), ceil_div(cols, 32))
            what = "one scale per row and 32 columns"
        else:
            weight = Param(
                param.name,
                param.shape,
                f"{param.role}; fp8 (e4m3), one byte each",
                dtype="float8_e4m3fn",
            )
            block = self.weight_block_size
            if block is None:
                scale_shape = (e, least, 1)
                what = "one scale per expert"
            else:
                scale_shape = (
                    e,
                    _at_least(ceil_div(rows, block[0]), least),
                    ceil_div(cols, block[1]),
                )
                what = f"one scale per block of {block[0]}×{block[1]}"
        return weight, Param(f"{param.name}_scale_inv", scale_shape, what, dtype=scale_dtype)


def _at_least(n: Dim, least: int) -> Dim:
    """max(n, least) for a scale's rows (a symbolic count is taken as at least ``least``)."""
    value = known(n)
    if value is None or least == 1:
        return n
    return max(value, least)


METHOD = FineGrainedFP8
