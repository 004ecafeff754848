"""Normalisation: ``BatchNorm1d/2d/3d``, ``InstanceNorm1d/2d/3d``, ``LayerNorm``,
``GroupNorm`` and ``RMSNorm``.

Affine parameters (``weight`` = gamma, ``bias`` = beta) are trained; running statistics
(``running_mean``, ``running_var``, ``num_batches_tracked``) are buffers: state that is
saved with the model but not trained, listed apart from the parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, known, product, shape_str
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work, register
from shapecalc.layers._norm import RMSNorm, _norm_work, _ShapeNorm
from shapecalc.layers._shapes import check_features, one_input

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerNorm",
    "RMSNorm",
]


class _NormBase(LayerSpec):
    """BatchNorm and InstanceNorm: per-channel affine parameters and running statistics."""

    num_features: Dim
    eps: float
    momentum: float | None
    affine: bool
    track_running_stats: bool
    bias: bool

    family: ClassVar[str] = "norm"
    size_fields: ClassVar[dict[str, int]] = {"num_features": 0}
    bool_fields: ClassVar[tuple[str, ...]] = ("affine", "track_running_stats", "bias")
    #: accepted input ranks, without and with the batch dimension
    ranks: ClassVar[tuple[int, ...]]

    def __post_init__(self) -> None:
        self._check_fields()
        self._check_number("eps")
        self._check_number("momentum", optional=True)

    def params(self) -> Iterator[Param]:
        c = self.num_features
        if self.affine:
            yield Param("weight", (c,), f"scale gamma, one per channel: {dim_str(c)}")
            if self.bias:
                yield Param("bias", (c,), f"shift beta, one per channel: {dim_str(c)}")

    def buffers(self) -> Iterator[Param]:
        c = self.num_features
        if self.track_running_stats:
            yield Param("running_mean", (c,), "running mean per channel", trainable=False)
            yield Param("running_var", (c,), "running variance per channel", trainable=False)
            yield Param(
                "num_batches_tracked",
                (),
                "batches seen (an int64 scalar)",
                trainable=False,
                dtype="int64",
            )

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """The input shape, once its channel dimension matches num_features."""
        shape = one_input(self, inputs, *self.ranks)
        axis = self._channel_axis(shape)
        if self._checks_channels():
            check_features(self, shape, axis, self.num_features, "num_features")
        return (shape,)

    def work(self, *inputs: Shape) -> Work:
        """Training mode: statistics per channel (BatchNorm) or per sample and channel
        (InstanceNorm)."""
        outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        axis = self._channel_axis(shape)
        sets = shape[axis] if isinstance(self, _BatchNorm) else product(shape[: axis + 1])
        affine = self.affine
        work = _norm_work(outputs, shape, sets, affine, affine and self.bias, rms=False)
        if isinstance(self, _BatchNorm):
            return work
        # InstanceNorm runs batch_norm over N·C channels, on copies of the scale and the
        # running statistics repeated N times
        copies = int(affine) + 2 * int(self.track_running_stats)
        if not copies:
            return work
        repeated = Stored("scale and running statistics per sample", (sets,), copies=copies)
        return dataclasses.replace(work, saved=(*work.saved, repeated))

    def _channel_axis(self, shape: Shape) -> int:
        return 1

    def _checks_channels(self) -> bool:
        return True


@frozen
class _BatchNorm(_NormBase):
    num_features: Dim
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = True
    track_running_stats: bool = True
    bias: bool = True


@frozen
class _InstanceNorm(_NormBase):
    num_features: Dim
    eps: float = 1e-5
    momentum: float | None = 0.1
    affine: bool = False
    track_running_stats: bool = False
    bias: bool = True

    def _channel_axis(self, shape: Shape) -> int:
        return 0 if len(shape) == self.ranks[0] else 1

    def _checks_channels(self) -> bool:
        return self.affine  # without affine parameters torch only warns on a mismatch


@register
class BatchNorm1d(_BatchNorm):
    """``nn.BatchNorm1d(num_features, eps=1e-05, momentum=0.1, affine=True,
    track_running_stats=True, *, bias=True)``: input (N, C) or (N, C, L)."""

    kind: ClassVar[str] = "BatchNorm1d"
    summary: ClassVar[str] = "batch norm over (N, C) or (N, C, L): gamma, beta + running stats"
    example: ClassVar[dict[str, Any]] = {"num_features": 100}
    formula_args: ClassVar[dict[str, Any]] = {"num_features": "C"}
    example_input: ClassVar[tuple[Shape, ...]] = ((20, 100),)
    ranks: ClassVar[tuple[int, ...]] = (2, 3)


@register
class BatchNorm2d(_BatchNorm):
    """``nn.BatchNorm2d(num_features, ...)``: input (N, C, H, W).

    Example:

        >>> [b.name for b in BatchNorm2d(64).buffers()]
        ['running_mean', 'running_var', 'num_batches_tracked']
    """

    kind: ClassVar[str] = "BatchNorm2d"
    summary: ClassVar[str] = "batch norm over (N, C, H, W): gamma, beta + running stats"
    example: ClassVar[dict[str, Any]] = {"num_features": 64}
    formula_args: ClassVar[dict[str, Any]] = {"num_features": "C"}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 64, 56, 56),)
    ranks: ClassVar[tuple[int, ...]] = (4,)


@register
class BatchNorm3d(_BatchNorm):
    """``nn.BatchNorm3d(num_features, ...)``: input (N, C, D, H, W)."""

    kind: ClassVar[str] = "BatchNorm3d"
    summary: ClassVar[str] = "batch norm over (N, C, D, H, W): gamma, beta + running stats"
    example: ClassVar[dict[str, Any]] = {"num_features": 16}
    formula_args: ClassVar[dict[str, Any]] = {"num_features": "C"}
    example_input: ClassVar[tuple[Shape, ...]] = ((8, 16, 4, 32, 32),)
    ranks: ClassVar[tuple[int, ...]] = (5,)


@register
class InstanceNorm1d(_InstanceNorm):
    """``nn.InstanceNorm1d(num_features, eps=1e-05, momentum=0.1, affine=False,
    track_running_stats=False, *, bias=True)``: input (C, L) or (N, C, L)."""

    kind: ClassVar[str] = "InstanceNorm1d"
    summary: ClassVar[str] = "instance norm over (N, C, L): no parameters unless affine"
    example: ClassVar[dict[str, Any]] = {"num_features": 100, "affine": True}
    formula_args: ClassVar[dict[str, Any]] = {"num_features": "C", "affine": True}
    example_input: ClassVar[tuple[Shape, ...]] = ((20, 100, 40),)
    ranks: ClassVar[tuple[int, ...]] = (2, 3)


@register
class InstanceNorm2d(_InstanceNorm):
    """``nn.InstanceNorm2d(num_features, ...)``: input (C, H, W) or (N, C, H, W)."""

    kind: ClassVar[str] = "InstanceNorm2d"
    summary: ClassVar[str] = "instance norm over (N, C, H, W): no parameters unless affine"
    example: ClassVar[dict[str, Any]] = {"num_features": 64, "affine": True}
    formula_args: ClassVar[dict[str, Any]] = {"num_features": "C", "affine": True}
    example_input: ClassVar[tuple[Shape, ...]] = ((8, 64, 32, 32),)
    ranks: ClassVar[tuple[int, ...]] = (3, 4)


@register
class InstanceNorm3d(_InstanceNorm):
    """``nn.InstanceNorm3d(num_features, ...)``: input (C, D, H, W) or (N, C, D, H, W)."""

    kind: ClassVar[str] = "InstanceNorm3d"
    summary: ClassVar[str] = "instance norm over (N, C, D, H, W): no parameters unless affine"
    example: ClassVar[dict[str, Any]] = {"num_features": 16, "affine": True}
    formula_args: ClassVar[dict[str, Any]] = {"num_features": "C", "affine": True}
    example_input: ClassVar[tuple[Shape, ...]] = ((8, 16, 4, 32, 32),)
    ranks: ClassVar[tuple[int, ...]] = (4, 5)


@register
@frozen
class LayerNorm(_ShapeNorm):
    """``nn.LayerNorm(normalized_shape, eps=1e-05, elementwise_affine=True, bias=True)``.

    Example:

        >>> LayerNorm(768).total()
        1536
    """

    normalized_shape: Any
    eps: float = 1e-5
    elementwise_affine: bool = True
    bias: bool = True

    kind: ClassVar[str] = "LayerNorm"
    summary: ClassVar[str] = "normalises the last dims: weight and bias of normalized_shape"
    example: ClassVar[dict[str, Any]] = {"normalized_shape": 768}
    formula_args: ClassVar[dict[str, Any]] = {"normalized_shape": "D"}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 128, 768),)
    bool_fields: ClassVar[tuple[str, ...]] = ("elementwise_affine", "bias")

    def __post_init__(self) -> None:
        self._check_fields()
        self._normalize_shape()
        self._check_number("eps")

    def params(self) -> Iterator[Param]:
        if self.elementwise_affine:
            dims = self.dims
            yield Param("weight", dims, f"scale gamma per normalised element: {shape_str(dims)}")
            if self.bias:
                yield Param("bias", dims, f"shift beta per normalised element: {shape_str(dims)}")


@register
@frozen
class GroupNorm(LayerSpec):
    """``nn.GroupNorm(num_groups, num_channels, eps=1e-05, affine=True, *, bias=True)``.

    Example:

        >>> GroupNorm(32, 256).total()
        512
    """

    num_groups: Dim
    num_channels: Dim
    eps: float = 1e-5
    affine: bool = True
    bias: bool = True

    kind: ClassVar[str] = "GroupNorm"
    family: ClassVar[str] = "norm"
    summary: ClassVar[str] = "normalises groups of channels: weight and bias per channel"
    example: ClassVar[dict[str, Any]] = {"num_groups": 32, "num_channels": 256}
    formula_args: ClassVar[dict[str, Any]] = {"num_groups": 32, "num_channels": "C"}
    example_input: ClassVar[tuple[Shape, ...]] = ((8, 256, 28, 28),)
    size_fields: ClassVar[dict[str, int]] = {"num_groups": 1, "num_channels": 0}
    bool_fields: ClassVar[tuple[str, ...]] = ("affine", "bias")

    def __post_init__(self) -> None:
        self._check_fields()
        self._check_number("eps")
        groups, channels = known(self.num_groups), known(self.num_channels)
        if groups is not None and channels is not None and channels % groups:
            self._fail(
                "num_channels",
                channels,
                "num_channels must be divisible by num_groups",
                f"{channels} % {groups} = {channels % groups}",
                "num_groups",
            )

    def deferred_rules(self) -> list[str]:
        groups, channels = self.num_groups, self.num_channels
        return self._deferred(
            (
                known(groups) is None or known(channels) is None,
                f"num_channels must be divisible by num_groups: "
                f"{dim_str(channels)} % {dim_str(groups)} = 0",
            )
        )

    def params(self) -> Iterator[Param]:
        c = self.num_channels
        if self.affine:
            yield Param("weight", (c,), f"scale gamma, one per channel: {dim_str(c)}")
            if self.bias:
                yield Param("bias", (c,), f"shift beta, one per channel: {dim_str(c)}")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(N, C, *) -> the same, once C equals num_channels."""
        shape = one_input(self, inputs)
        if len(shape) < 2:
            self._fail_shape(f"expects (N, C, *), got {shape_str(shape)}", shape)
        check_features(self, shape, 1, self.num_channels, "num_channels")
        per_group = product((shape[0], self.num_channels, *shape[2:]))
        groups = self.num_groups
        if isinstance(per_group, int) and isinstance(groups, int) and per_group // groups <= 1:
            self._fail_shape(
                f"input {shape_str(shape)} gives one value per group of {groups}; "
                "normalising needs more than one",
                shape,
            )
        return (shape,)

    def work(self, *inputs: Shape) -> Work:
        """Statistics per sample and group."""
        outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        affine = self.affine
        return _norm_work(
            outputs, shape, shape[0] * self.num_groups, affine, affine and self.bias, rms=False
        )
