"""Layers torchvision has and torch.nn lacks: ``torchvision.ops.StochasticDepth``,
ConvNeXt's ``LayerNorm2d``, Swin's ``ShiftedWindowAttention`` and ``PatchMerging``, and
CLIP's ``QuickGELU``. None is a torch.nn kind, so none is in ``LAYER_KINDS``; a model's tree
uses each where its module holds one (EfficientNet's ``block.N.M.stochastic_depth``). The
torch bridge builds each as its own code computes it (torchvision/ops/stochastic_depth.py,
torchvision/models/convnext.py and swin_transformer.py, transformers/activations.py).

    >>> LayerNorm2d(96, eps=1e-6).output_shapes((2, 96, 56, 56))
    ((2, 96, 56, 56),)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, floor_div, known, product, same_size, shape_str
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work
from shapecalc.layers._norm import _norm_work
from shapecalc.layers._shapes import one_input
from shapecalc.layers.norm import LayerNorm

__all__ = [
    "CPB_HIDDEN",
    "LayerNorm2d",
    "PatchMerging",
    "PatchMergingV2",
    "QuickGELU",
    "ShiftedWindowAttention",
    "ShiftedWindowAttentionV2",
    "StochasticDepth",
]


@frozen
class StochasticDepth(LayerSpec):
    """``torchvision.ops.StochasticDepth(p, mode)``: in training, each sample's residual
    branch (``mode="row"``) or the whole batch's (``"batch"``) is zeroed with probability
    ``p`` and the rest scaled by 1/(1 - p); at inference, and for p = 0, the input itself.
    No parameters. Not a torch.nn kind, so not in ``LAYER_KINDS``.

    torchvision's ``stochastic_depth`` (torchvision/ops/stochastic_depth.py) draws a noise
    tensor of shape (B, 1, ...) for "row" and (1, ...) for "batch" and returns
    ``input * noise``, which autograd keeps for backward.

        >>> StochasticDepth(0.2, "row").work((8, 64, 7, 7)).saved[0].shape
        (8, 1, 1, 1)
    """

    p: float
    mode: str

    kind: ClassVar[str] = "StochasticDepth"
    family: ClassVar[str] = "torchvision"
    summary: ClassVar[str] = "drops a residual branch per sample in training; identity at inference"
    example: ClassVar[dict[str, Any]] = {"p": 0.2, "mode": "row"}
    formula_args: ClassVar[dict[str, Any]] = {}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 64, 28, 28),)

    def __post_init__(self) -> None:
        self._check_number("p", 0, 1)
        self._check_choice("mode", ("batch", "row"))

    def params(self) -> Iterator[Param]:
        return iter(())

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """The input shape."""
        return (one_input(self, inputs),)

    def work(self, *inputs: Shape) -> Work:
        """In training a multiply per number by the noise (and the noise's 1/(1 - p)),
        which autograd keeps: one number per sample in "row" mode, one for the batch in
        "batch" mode. For p = 0, the input itself."""
        outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        if self.p == 0:  # stochastic_depth returns its input
            return Work(outputs, inplace=True)
        ones = tuple(1 for _ in shape[1:])
        noise = (shape[0], *ones) if self.mode == "row" else (1, *ones)
        return Work(
            outputs,
            other=product(shape) + (product(noise) if self.p < 1 else 0),
            other_rule="training: the noise's 1/(1 - p) (1 per row), times the noise (1 each)",
            saved=(Stored("noise", noise),),
        )


@frozen
class LayerNorm2d(LayerNorm):
    """ConvNeXt's ``LayerNorm2d(normalized_shape, eps)``: ``nn.LayerNorm`` over the channels
    of an (N, C, H, W) input: permuted to (N, H, W, C), normalised, permuted back
    (torchvision/models/convnext.py). Its tensors are LayerNorm's, ``weight`` and ``bias``
    (C,); statistics per pixel, N·H·W of them."""

    kind: ClassVar[str] = "LayerNorm2d"
    family: ClassVar[str] = "vision"
    summary: ClassVar[str] = "LayerNorm over the channels of an NCHW input"
    example: ClassVar[dict[str, Any]] = {"normalized_shape": 96, "eps": 1e-6}
    formula_args: ClassVar[dict[str, Any]] = {"normalized_shape": "C"}
    example_input: ClassVar[tuple[Shape, ...]] = ((32, 96, 56, 56),)

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        shape = one_input(self, inputs, 4)
        dims = self.dims
        if len(dims) != 1 or not same_size(shape[1], dims[0]):
            self._fail_shape(
                f"input {shape_str(shape)} must have normalized_shape {shape_str(dims)} channels "
                "at dim 1",
                shape,
            )
        return (shape,)

    def work(self, *inputs: Shape) -> Work:
        """LayerNorm's work on the permuted input: statistics per pixel (N·H·W); it keeps
        the input (the permuted view of it) and the mean and 1/std per pixel."""
        outputs = self.output_shapes(*inputs)
        n, _, h, w = inputs[0]
        shift = self.elementwise_affine and self.bias
        return _norm_work(outputs, inputs[0], n * h * w, self.elementwise_affine, shift, rms=False)


def _pair(spec: LayerSpec, field: str, least: int) -> None:
    value = getattr(spec, field)
    value = tuple(value) if isinstance(value, list) else value
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= least for v in value)
    ):
        spec._fail(field, value, f"{field} is two integers >= {least}", f"got {value!r}"[:80])
    object.__setattr__(spec, field, value)


@frozen
class ShiftedWindowAttention(LayerSpec):
    """torchvision's Swin ``ShiftedWindowAttention(dim, window_size, shift_size,
    num_heads, qkv_bias=True, proj_bias=True, attention_dropout=0.0, dropout=0.0)`` on an
    (N, H, W, C) input: padded to whole windows, shifted (when a window is smaller than
    the map), each window's tokens attending to each other with a learned bias per
    relative position and head, shifted back (torchvision/models/swin_transformer.py).

    Tensors: ``relative_position_bias_table`` ((2·Wh-1)·(2·Ww-1), heads), the module's own
    and so listed first, ``qkv`` (3C, C) and ``proj`` (C, C) with their biases; the buffer
    ``relative_position_index`` (Wh·Ww·Wh·Ww,), int64.

    MACs over the T = N·H'·W' tokens of the padded map, windows of M = Wh·Ww: qkv
    3·T·C², q·kᵀ and weights·v 2·T·M·C, proj T·C²."""

    dim: Any
    window_size: Any
    shift_size: Any
    num_heads: Any
    qkv_bias: bool = True
    proj_bias: bool = True
    attention_dropout: float = 0.0
    dropout: float = 0.0

    kind: ClassVar[str] = "ShiftedWindowAttention"
    family: ClassVar[str] = "vision"
    summary: ClassVar[str] = "Swin's window attention with a relative position bias"
    size_fields: ClassVar[dict[str, int]] = {"dim": 1, "num_heads": 1}

    def __post_init__(self) -> None:
        self._check_fields()
        _pair(self, "window_size", 1)
        _pair(self, "shift_size", 0)
        self._check_number("attention_dropout", 0, 1)
        self._check_number("dropout", 0, 1)

    @property
    def window(self) -> int:
        wh, ww = self.window_size
        return int(wh * ww)

    def params(self) -> Iterator[Param]:
        wh, ww = self.window_size
        c, a = self.dim, self.num_heads
        table = (2 * wh - 1) * (2 * ww - 1)
        yield Param(
            "relative_position_bias_table",
            (table, a),
            f"a bias per relative position in a {wh}×{ww} window and head",
        )
        yield Param("qkv.weight", (3 * c, c), "query, key and value projections, stacked")
        if self.qkv_bias:
            yield Param("qkv.bias", (3 * c,), "query, key and value biases")
        yield Param("proj.weight", (c, c), "output projection")
        if self.proj_bias:
            yield Param("proj.bias", (c,), "output projection's bias")

    def buffers(self) -> Iterator[Param]:
        m = self.window
        yield Param(
            "relative_position_index",
            (m * m,),
            "each pair of a window's tokens: its row of the table",
            trainable=False,
            dtype="int64",
        )

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        shape = one_input(self, inputs, 4)
        if not same_size(shape[-1], self.dim):
            self._fail_shape(f"input {shape_str(shape)} must have {self.dim} channels last", shape)
        c, a = known(self.dim), known(self.num_heads)
        if c is not None and a is not None and c % a:
            self._fail_shape(f"dim {c} is not divisible by num_heads {a}", shape)
        return (shape,)

    def _padded(self, shape: Shape) -> tuple[Dim, Dim]:
        wh, ww = self.window_size
        _, h, w, _ = shape
        return wh * floor_div(h + wh - 1, wh), ww * floor_div(w + ww - 1, ww)

    def work(self, *inputs: Shape) -> Work:
        """MACs as above; the softmax and the bias's and mask's adds per score; kept, as
        autograd keeps them: qkv's input, q (scaled), k and v (copies, or qkv's output),
        the softmax of the scores, the heads' output (proj's input)."""
        outputs = self.output_shapes(*inputs)
        n, _, _, c = inputs[0]
        ph, pw = self._padded(inputs[0])
        tokens = n * ph * pw
        m = self.window
        scores = tokens * m * self.num_heads
        # k and v are copied to batch their products, unless one window in all or one head
        # lets both stay views of qkv's output (which is then kept whole)
        wh, ww = self.window_size
        rows = known(n * floor_div(ph, wh) * floor_div(pw, ww))
        views = rows == 1 or known(self.num_heads) == 1
        kv = (
            Stored("qkv's output (k and v are views of it)", (tokens, 3 * c))
            if views
            else Stored("k and v, copied to batch the products", (tokens, c), copies=2)
        )
        return Work(
            outputs,
            macs=4 * tokens * c * c + 2 * tokens * m * c,
            other=tokens * c * (1 + int(self.qkv_bias) * 3 + int(self.proj_bias)) + 7 * scores,
            other_rule="scale q (1 per number), biases (1 per output), relative position bias "
            "and shift mask (2 per score), softmax (5 per score)",
            saved=(
                Stored("windows (qkv's input)", (tokens, c)),
                Stored("q, scaled", (tokens, c)),
                kv,
                Stored("attention weights", (scores,)),
                Stored("heads' output (proj's input)", (tokens, c)),
            ),
        )


#: the hidden width of Swin V2's continuous position bias MLP (torchvision's cpb_mlp)
CPB_HIDDEN = 512


@frozen
class ShiftedWindowAttentionV2(ShiftedWindowAttention):
    """torchvision's Swin V2 ``ShiftedWindowAttentionV2(dim, window_size, shift_size,
    num_heads, qkv_bias=True, proj_bias=True, attention_dropout=0.0, dropout=0.0)``: V1's
    window attention with cosine scores scaled by a learned ``logit_scale`` per head, and
    the position bias made by a small MLP (``cpb_mlp``: Linear(2, 512), ReLU,
    Linear(512, heads, bias=False)) from each relative position's log-spaced coordinates
    (torchvision/models/swin_transformer.py). The key's third of ``qkv.bias`` is zeroed
    at every call but is still a parameter.

    Tensors: ``logit_scale`` (heads, 1, 1), the module's own and so listed first; ``qkv``,
    ``proj``; ``cpb_mlp.0`` (512, 2) with its bias, ``cpb_mlp.2`` (heads, 512). Buffers:
    ``relative_coords_table`` (1, 2·Wh-1, 2·Ww-1, 2), float, and
    ``relative_position_index`` (Wh·Ww·Wh·Ww,), int64.

    MACs: V1's, and the bias MLP once per call over the (2·Wh-1)·(2·Ww-1) relative
    positions: 2·512 + 512·heads each, whatever the batch."""

    kind: ClassVar[str] = "ShiftedWindowAttentionV2"
    summary: ClassVar[str] = "Swin V2's cosine window attention with an MLP position bias"

    @property
    def relative_positions(self) -> int:
        wh, ww = self.window_size
        return int((2 * wh - 1) * (2 * ww - 1))

    def params(self) -> Iterator[Param]:
        a = self.num_heads
        yield Param("logit_scale", (a, 1, 1), "the cosine scores' scale per head (log)")
        for param in super().params():
            if param.name != "relative_position_bias_table":
                yield param
        yield Param("cpb_mlp.0.weight", (CPB_HIDDEN, 2), "position bias MLP: coordinates -> 512")
        yield Param("cpb_mlp.0.bias", (CPB_HIDDEN,), "position bias MLP's first bias")
        yield Param(
            "cpb_mlp.2.weight", (a, CPB_HIDDEN), "position bias MLP: 512 -> a bias per head"
        )

    def buffers(self) -> Iterator[Param]:
        wh, ww = self.window_size
        yield Param(
            "relative_coords_table",
            (1, 2 * wh - 1, 2 * ww - 1, 2),
            "each relative position's log-spaced coordinates",
            trainable=False,
        )
        yield from super().buffers()

    def work(self, *inputs: Shape) -> Work:
        """V1's MACs with the bias MLP's added; elementwise V1's with q and k normalised in
        place of q scaled, the logit scale per score, the bias MLP's bias and ReLU and
        16·sigmoid of the bias. Kept, as autograd keeps them: qkv's input and its whole
        output (q and k, views of it, go into the normalisation), each row's norm of q and
        of k and its clamp (4 per token and head), q and k normalised, v copied to batch
        its product (a view of qkv's output with one window in all or one head), the
        scale's exponential (per head), the cosine scores and their softmax, the heads'
        output, the bias MLP's hidden (after the in-place ReLU) and the sigmoid of the
        bias (heads × M × M)."""
        base = super().work(*inputs)
        table, a = self.relative_positions, self.num_heads
        n, _, _, c = inputs[0]
        ph, pw = self._padded(inputs[0])
        tokens = n * ph * pw
        m = self.window
        scores = tokens * m * a
        wh, ww = self.window_size
        rows = known(n * floor_div(ph, wh) * floor_div(pw, ww))
        views = rows == 1 or known(a) == 1
        saved = [
            Stored("windows (qkv's input)", (tokens, c)),
            Stored("qkv's output (q and k are views of it)", (tokens, 3 * c)),
            Stored("the norms of q's and k's rows and their clamps", (tokens, a), copies=4),
            Stored("q and k, normalised", (tokens, c), copies=2),
        ]
        if not views:
            saved.append(Stored("v, copied to batch the product", (tokens, c)))
        saved += [
            Stored("the logit scale's exponential", (a,)),
            Stored("cosine scores and attention weights", (scores,), copies=2),
            Stored("heads' output (proj's input)", (tokens, c)),
            Stored("the position bias MLP's hidden", (table, CPB_HIDDEN)),
            Stored("the sigmoid of the position bias", (a, m, m)),
        ]
        return Work(
            base.outputs,
            macs=base.macs + table * (2 * CPB_HIDDEN + CPB_HIDDEN * a),
            other=base.other + table * (2 * CPB_HIDDEN + 2 * a) + 5 * tokens * c + scores,
            other_rule=base.other_rule + "; V2: q and k normalised in place of q scaled (3 "
            "per number of each), the logit scale (1 per score), the bias MLP's bias and ReLU "
            "(2 per hidden number) and 16·sigmoid (2 per bias)",
            saved=tuple(saved),
        )


@frozen
class PatchMergingV2(LayerSpec):
    """torchvision's Swin V2 ``PatchMergingV2(dim)`` on (..., H, W, C): padded to even H
    and W, each 2×2 patch's four C-vectors concatenated (4C), ``reduction``
    Linear(4C, 2C, bias=False), then ``norm`` LayerNorm(2C): V1 normalises before the
    reduction, V2 after. Tensors: ``reduction.weight``, ``norm.weight``, ``norm.bias``."""

    dim: Any

    kind: ClassVar[str] = "PatchMergingV2"
    family: ClassVar[str] = "vision"
    summary: ClassVar[str] = "Swin V2's 2×2 patch merging: 4C concatenated, to 2C, normalised"
    size_fields: ClassVar[dict[str, int]] = {"dim": 1}

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        c = self.dim
        yield Param("reduction.weight", (2 * c, 4 * c), "4C -> 2C, stored (out, in)")
        yield Param("norm.weight", (2 * c,), "scale of the 2C reduction")
        yield Param("norm.bias", (2 * c,), "shift of the 2C reduction")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        return PatchMerging(self.dim).output_shapes(*inputs)

    def work(self, *inputs: Shape) -> Work:
        """The reduction's MACs; LayerNorm's work on its output; kept: the concatenation
        (the reduction's input), the reduction's output, its mean and 1/std."""
        (out,) = outputs = self.output_shapes(*inputs)
        rows = product(out[:-1])
        c = self.dim
        return Work(
            outputs,
            macs=rows * 4 * c * 2 * c,
            other=8 * rows * 2 * c,
            other_rule="LayerNorm per number: mean (1), variance (3), subtract and multiply "
            "by 1/std (2), scale (1), shift (1)",
            saved=(
                Stored("the 2×2 patches concatenated (the reduction's input)", (*out[:-1], 4 * c)),
                Stored("the reduction's output (the norm's input)", (*out[:-1], 2 * c)),
                Stored("mean and 1/std per patch", (rows,), copies=2),
            ),
        )


@frozen
class PatchMerging(LayerSpec):
    """torchvision's Swin ``PatchMerging(dim)`` on (..., H, W, C): padded to even H and W,
    each 2×2 patch's four C-vectors concatenated (4C), ``norm`` LayerNorm(4C), then
    ``reduction`` Linear(4C, 2C, bias=False): (..., ⌈H/2⌉, ⌈W/2⌉, 2C). Its tensors, in
    torchvision's order: ``reduction.weight``, ``norm.weight``, ``norm.bias``."""

    dim: Any

    kind: ClassVar[str] = "PatchMerging"
    family: ClassVar[str] = "vision"
    summary: ClassVar[str] = "Swin's 2×2 patch merging: 4C concatenated, normalised, to 2C"
    size_fields: ClassVar[dict[str, int]] = {"dim": 1}

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        c = self.dim
        yield Param("reduction.weight", (2 * c, 4 * c), "4C -> 2C, stored (out, in)")
        yield Param("norm.weight", (4 * c,), "scale of the 4C concatenation")
        yield Param("norm.bias", (4 * c,), "shift of the 4C concatenation")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        shape = one_input(self, inputs, least=3)
        if not same_size(shape[-1], self.dim):
            self._fail_shape(f"input {shape_str(shape)} must have {self.dim} channels last", shape)
        h, w = shape[-3], shape[-2]
        return ((*shape[:-3], floor_div(h + 1, 2), floor_div(w + 1, 2), 2 * self.dim),)

    def work(self, *inputs: Shape) -> Work:
        """The reduction's MACs; LayerNorm's work on the concatenation; kept: the
        concatenation, its mean and 1/std, the norm's output (the reduction's input)."""
        (out,) = outputs = self.output_shapes(*inputs)
        rows = product(out[:-1])
        c = self.dim
        return Work(
            outputs,
            macs=rows * 4 * c * 2 * c,
            other=8 * rows * 4 * c,
            other_rule="LayerNorm per number: mean (1), variance (3), subtract and multiply "
            "by 1/std (2), scale (1), shift (1)",
            saved=(
                Stored("the 2×2 patches concatenated", (*out[:-1], 4 * c)),
                Stored("mean and 1/std per patch", (rows,), copies=2),
                Stored("normalised (the reduction's input)", (*out[:-1], 4 * c)),
            ),
        )


@frozen
class QuickGELU(LayerSpec):
    """transformers' ``QuickGELUActivation`` (CLIP's ``quick_gelu``):
    ``x * sigmoid(1.702 * x)``. No tensors; autograd keeps the input and the sigmoid."""

    kind: ClassVar[str] = "QuickGELUActivation"
    family: ClassVar[str] = "vision"
    summary: ClassVar[str] = "x·sigmoid(1.702·x), CLIP's activation"

    def params(self) -> Iterator[Param]:
        return iter(())

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        return (one_input(self, inputs, least=0),)

    def work(self, *inputs: Shape) -> Work:
        (shape,) = outputs = self.output_shapes(*inputs)
        return Work(
            outputs,
            other=3 * product(shape),
            other_rule="×1.702, sigmoid and ×x: 3 per number",
            saved=(Stored("input", shape, of="input"), Stored("sigmoid(1.702·x)", shape)),
        )
