"""``RMSNorm`` and what LayerNorm shares with it, apart from
:mod:`shapecalc.layers.norm`'s other kinds, so that a model normalised by RMSNorm (LLaMA-like
models) loads only what it builds. Import them from :mod:`shapecalc.layers.norm`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, as_size, product, same_size, shape_str
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, register
from shapecalc.layers._shapes import one_input

__all__ = ["LlamaRMSNorm", "RMSNorm"]


def _norm_work(
    outputs: tuple[Shape, ...],
    shape: Shape,
    groups: Dim,
    scale: bool,
    shift: bool,
    rms: bool,
    normalised: int | None = 4,
) -> Work:
    """A normalisation in training mode over ``groups`` sets of numbers: statistics,
    normalising and the affine step, per number; keeps the input and per set the
    statistics backward needs (mean and 1/std; 1/rms alone for RMSNorm).

    An RMSNorm computes in float32 (torch's ``rms_norm`` in the op-math type of half
    precision, transformers' RMSNorms by ``.to(torch.float32)``): it keeps a float32 copy
    of a half-precision input instead of the input, 1/rms in float32, and the normalised
    input the scale multiplies at ``normalised`` bytes (float32 for torch's, None: the
    activations' dtype for transformers' ``LlamaRMSNorm``, which casts back before the
    scale). LayerNorm and GroupNorm on the CPU keep their statistics in the input's dtype."""
    numbers = product(shape)
    per = (3 if rms else 6) + (1 if scale else 0) + (1 if shift else 0)
    rule = (
        "per number: square and add (2), multiply by 1/rms (1)"
        if rms
        else "per number: mean (1), variance (3), subtract and multiply by 1/std (2)"
    )
    rule += ", scale (1)" if scale else ""
    rule += ", shift (1)" if shift else ""
    first = Stored("input", shape, of="input")
    if rms:  # composed of plain ops: x in float32, 1/rms and (for the scale's gradient) x/rms
        first = Stored("input in float32", shape, itemsize=4, of="input", cast=True)
        stats: tuple[Stored, ...] = (Stored("1/rms per row", (groups,), itemsize=4),)
        stats += (Stored("normalised input", shape, itemsize=normalised),) if scale else ()
    else:
        stats = (Stored("mean and 1/std per set", (groups,), copies=2),)
    return Work(outputs, other=per * numbers, other_rule=rule, saved=(first, *stats))


class _ShapeNorm(LayerSpec):
    """LayerNorm and RMSNorm: parameters shaped like the normalised trailing dimensions."""

    normalized_shape: Any
    family: ClassVar[str] = "norm"

    def _normalize_shape(self) -> None:
        value = self.normalized_shape
        items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        label = self.label("normalized_shape")
        sizes = tuple(
            as_size(item, owner=label, field="normalized_shape", minimum=0) for item in items
        )
        object.__setattr__(self, "normalized_shape", sizes[0] if len(sizes) == 1 else sizes)

    @property
    def dims(self) -> tuple[Dim, ...]:
        value = self.normalized_shape
        return tuple(value) if isinstance(value, tuple) else (value,)

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """The input shape, once its trailing dimensions equal normalized_shape."""
        shape = one_input(self, inputs)
        dims = self.dims
        tail = shape[len(shape) - len(dims) :] if len(shape) >= len(dims) else ()
        if len(tail) != len(dims) or not all(
            same_size(a, b) for a, b in zip(tail, dims, strict=True)
        ):
            self._fail_shape(
                f"input {shape_str(shape)} must end in normalized_shape {shape_str(dims)}",
                shape,
            )
        return (shape,)

    def work(self, *inputs: Shape) -> Work:
        """Statistics per row: every leading dimension before normalized_shape."""
        outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        rows = product(shape[: len(shape) - len(self.dims)])
        affine: bool = getattr(self, "elementwise_affine", False)
        shift = affine and bool(getattr(self, "bias", False))
        return _norm_work(outputs, shape, rows, affine, shift, rms=self.kind == "RMSNorm")


@register
@frozen
class RMSNorm(_ShapeNorm):
    """``nn.RMSNorm(normalized_shape, eps=None, elementwise_affine=True)``: a scale, no shift."""

    normalized_shape: Any
    eps: float | None = None
    elementwise_affine: bool = True

    kind: ClassVar[str] = "RMSNorm"
    summary: ClassVar[str] = "root-mean-square norm of the last dims: weight only"
    example: ClassVar[dict[str, Any]] = {"normalized_shape": 4096}
    formula_args: ClassVar[dict[str, Any]] = {"normalized_shape": "D"}
    example_input: ClassVar[tuple[Shape, ...]] = ((1, 2048, 4096),)
    bool_fields: ClassVar[tuple[str, ...]] = ("elementwise_affine",)

    def __post_init__(self) -> None:
        self._check_fields()
        self._normalize_shape()
        self._check_number("eps", optional=True)

    def params(self) -> Iterator[Param]:
        if self.elementwise_affine:
            dims = self.dims
            yield Param("weight", dims, f"scale per normalised element: {shape_str(dims)}")


@frozen
class LlamaRMSNorm(RMSNorm):
    """transformers' ``LlamaRMSNorm(hidden_size, eps)`` (Mistral's, Mixtral's, Qwen's,
    Phi-3's are the same code): ``x.to(float32)``, times ``rsqrt(mean(x²) + eps)``,
    ``.to(input dtype)``, times ``weight``. Its parameter is nn.RMSNorm's; what it keeps
    differs with half-precision activations: the normalised input the weight multiplies is
    cast back to the activations' dtype (nn.RMSNorm's stays float32)."""

    normalized_shape: Any
    eps: float | None = None
    elementwise_affine: bool = True

    kind: ClassVar[str] = "LlamaRMSNorm"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "transformers' RMSNorm: float32 inside, weight × x/rms"

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        rows = product(shape[: len(shape) - len(self.dims)])
        scale = self.elementwise_affine
        return _norm_work(outputs, shape, rows, scale, False, rms=True, normalised=None)
