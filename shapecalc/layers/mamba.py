"""The Mamba (v1) selective state-space mixer, as ``transformers`` builds it
(``MambaMixer``, and Jamba's ``JambaMambaMixer`` with its three RMSNorms).

One spec holds the whole mixer: its tensors are named as ``named_parameters()`` names
them (the mixer's own ``A_log`` and ``D`` first, then ``conv1d``, ``in_proj``, ``x_proj``,
``dt_proj``, ``out_proj`` and Jamba's norms), and its work is the forward transformers
runs without the CUDA kernels (the "slow" path: a depthwise causal convolution and a loop
over the positions).

    >>> mixer = MambaMixer(hidden_size=768, intermediate_size=1536, time_step_rank=48)
    >>> mixer.total()
    3770880
    >>> work = mixer.work((1, 10, 768))
    >>> work.outputs, work.macs
    (((1, 10, 768),), 37681152)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from shapecalc.core.dims import Dim, dim_str, product
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work
from shapecalc.layers._shapes import check_features, one_input

__all__ = ["MambaMixer"]


@frozen
class MambaMixer(LayerSpec):
    """Mamba's selective state-space mixer: H in, H out, through an inner width of
    ``intermediate_size`` (D, expand · H) and a state of ``state_size`` (N) numbers per
    inner channel.

    Tensors: ``A_log`` (D, N), the log of −A, each channel's N decay rates, and ``D``
    (D,), the skip that adds each channel's input to the scan's output (both input
    independent); ``conv1d`` a depthwise causal convolution of ``conv_kernel`` (K) taps,
    weight (D, 1, K) and a bias (D,) with ``use_conv_bias``; ``in_proj`` (2·D, H), the
    inner input and the gate z; ``x_proj`` (R + 2·N, D), each position's time step (R
    numbers, the ``time_step_rank``) and its B and C (N each), what makes the scan
    selective; ``dt_proj`` (D, R) and its bias (D,), the time step per channel;
    ``out_proj`` (H, D). ``use_bias``: biases of in_proj and out_proj. ``layernorms``:
    Jamba's RMSNorms of the time step (R,), B and C (N,) each.

    Work, as transformers' forward on the CPU computes it (no ``mamba_ssm`` kernels):
    in_proj, the convolution over T + K − 1 positions (padded K − 1 on both sides, the
    last K − 1 outputs cut: the counter sees the padded length; with a cache and T < K
    transformers pads the input to K first), SiLU, x_proj, dt_proj's product (its bias
    added inside the scan), then per position the state h ← exp(Δ·A)·h + Δ·B·x and the
    output C·h, a batched product of (D, N) by (N, 1) per position, which
    FlopCounterMode counts (D·N MACs per token); out_proj. What the counter does not see,
    estimated in ``other``: the discretisation and the state update (6 per token, channel
    and state number: exp(Δ·A) 2, Δ·B·x 2, the update 2), softplus of Δ and its bias
    (4 per token and channel), the D skip and the gate SiLU(z) (5 per token and channel),
    SiLU after the convolution (2), the biases, and Jamba's norms (4 per number).

    Inference state, as transformers' cache holds it after a forward (per sequence, the
    same size whatever the context): the convolution's last K inputs (B, D, K), in the
    model's dtype, and the SSM state h (B, D, N), kept in fp32 whatever the model's dtype
    (the scan computes it from fp32 A).
    """

    hidden_size: Dim
    intermediate_size: Dim
    time_step_rank: Dim
    state_size: Dim = 16
    conv_kernel: Dim = 4
    use_bias: bool = False
    use_conv_bias: bool = True
    layernorms: bool = False

    kind: ClassVar[str] = "MambaMixer"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "Mamba's selective state-space mixer (convolution and scan)"
    size_fields: ClassVar[dict[str, int]] = {
        "hidden_size": 1,
        "intermediate_size": 1,
        "time_step_rank": 1,
        "state_size": 1,
        "conv_kernel": 1,
    }

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        h, d, n, k, r = (
            self.hidden_size,
            self.intermediate_size,
            self.state_size,
            self.conv_kernel,
            self.time_step_rank,
        )
        yield Param(
            "A_log",
            (d, n),
            f"log of each channel's {dim_str(n)} decay rates (A = −exp(A_log)), not "
            "input dependent",
        )
        yield Param("D", (d,), "the skip: each channel's input added to the scan's output")
        yield Param("conv1d.weight", (d, 1, k), f"depthwise causal convolution, {dim_str(k)} taps")
        if self.use_conv_bias:
            yield Param("conv1d.bias", (d,), "the convolution's bias")
        yield Param(
            "in_proj.weight",
            (2 * d, h),
            f"the inner input and the gate z: {dim_str(h)} in -> 2 × {dim_str(d)} out",
        )
        if self.use_bias:
            yield Param("in_proj.bias", (2 * d,), "in_proj's bias")
        yield Param(
            "x_proj.weight",
            (r + 2 * n, d),
            f"each position's time step ({dim_str(r)}), B and C ({dim_str(n)} each): "
            "what makes the scan selective",
        )
        yield Param(
            "dt_proj.weight",
            (d, r),
            f"the time step per channel: {dim_str(r)} in -> {dim_str(d)} out",
        )
        yield Param("dt_proj.bias", (d,), "the time step's bias (added before softplus)")
        yield Param("out_proj.weight", (h, d), f"{dim_str(d)} in -> {dim_str(h)} out")
        if self.use_bias:
            yield Param("out_proj.bias", (h,), "out_proj's bias")
        if self.layernorms:
            yield Param("dt_layernorm.weight", (r,), "RMSNorm of the time step (Jamba)")
            yield Param("b_layernorm.weight", (n,), "RMSNorm of B (Jamba)")
            yield Param("c_layernorm.weight", (n,), "RMSNorm of C (Jamba)")

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(…, T, H) -> (…, T, H)."""
        shape = one_input(self, inputs)
        if len(shape) < 2:
            self._fail_shape("takes (…, T, hidden_size): positions and features", inputs)
        check_features(self, shape, -1, self.hidden_size, "hidden_size")
        return (shape,)

    def work(self, *inputs: Shape) -> Work:
        outputs = self.output_shapes(*inputs)
        shape = inputs[0]
        h, d, n, k, r = (
            self.hidden_size,
            self.intermediate_size,
            self.state_size,
            self.conv_kernel,
            self.time_step_rank,
        )
        batch, length = product(shape[:-2]), shape[-2]
        tokens = batch * length
        macs = (
            tokens * h * 2 * d  # in_proj
            + batch * (length + k - 1) * d * k  # the padded depthwise convolution
            + tokens * d * (r + 2 * n)  # x_proj
            + tokens * r * d  # dt_proj's product
            + tokens * d * n  # C·h per position
            + tokens * d * h  # out_proj
        )
        per_token = (
            6 * d * n  # discretisation and state update
            + 4 * d  # dt bias and softplus
            + 5 * d  # D skip, SiLU(z), the gate
            + 2 * d  # SiLU after the convolution
            + (d if self.use_conv_bias else 0)
            + ((2 * d + h) if self.use_bias else 0)
            + (4 * (r + 2 * n) if self.layernorms else 0)
        )
        rule = (
            "state update and discretisation (6 per token, channel and state number), "
            "softplus of the time step (4), D skip and gate (5), SiLU (2) per token and "
            "channel, biases, A = −exp(A_log)"
            + (", RMSNorms of Δ, B, C (4 per number)" if self.layernorms else "")
        )
        return Work(
            outputs,
            macs=macs,
            other=tokens * per_token + 2 * d * n,
            other_rule=rule,
            saved=self._saved(shape, batch, length),
            state=(
                Stored(
                    "convolution state (the last K inputs)",
                    (batch, d, k),
                    kind="state space",
                ),
                Stored(
                    "SSM state h, fp32",
                    (batch, d, n),
                    itemsize=4,
                    kind="state space",
                ),
            ),
        )

    def _saved(self, shape: Shape, batch: Dim, length: Dim) -> tuple[Stored, ...]:
        """What autograd keeps of transformers' slow path in training (measured on its
        MambaMixer in fp32): the input, in_proj's output, the padded convolution's output,
        SiLU's output and its copy made contiguous for x_proj, x_proj's output, the time
        step before and after softplus (fp32), exp(Δ·A) and Δ·B for every position and
        state number (fp32), the state before each position and after the last (fp32),
        the skip's sum (fp32), SiLU(z), out_proj's input made contiguous, and A with
        exp(A_log) (computed twice by Mamba, once for the fused kernel's path; once by
        Jamba, whose norms keep their input normalised, their output and 1/rms). Under bf16 the scan
        also keeps a bf16 copy of each state for its product with C, not counted here."""
        d, n, k, r = self.intermediate_size, self.state_size, self.conv_kernel, self.time_step_rank
        tokens = batch * length
        out = [
            Stored("input", shape, of="input"),
            Stored("in_proj's output (x and z)", (tokens, 2 * d)),
            Stored("the convolution's output, padded", (batch, d, length + k - 1)),
            Stored("SiLU's output, and its copy for x_proj", (tokens, d), copies=2),
            Stored("x_proj's output (Δ, B, C)", (tokens, r + 2 * n)),
            Stored("the time step before and after softplus", (tokens, d), itemsize=4, copies=2),
            Stored("exp(Δ·A) and Δ·B per state number", (tokens, d, n), itemsize=4, copies=2),
            Stored(
                "the state before each position and after the last",
                (length + 1, batch, d, n),
                itemsize=4,
            ),
            Stored("the scan's output with the skip", (tokens, d), itemsize=4),
            Stored("SiLU(z), and out_proj's input", (tokens, d), copies=2),
        ]
        if self.layernorms:  # Jamba: A once; each norm's input normalised, its output, and
            # the reciprocal root (fp32) per token
            out += [
                Stored("A and exp(A_log)", (d, n), itemsize=4, copies=2),
                Stored(
                    "Δ, B and C normalised, before and after the weight",
                    (tokens, r + 2 * n),
                    copies=2,
                ),
                Stored("the norms' 1/rms per token", (tokens, 3), itemsize=4),
            ]
        else:  # Mamba: A twice (its forward makes one for the fused kernel)
            out.append(Stored("A and exp(A_log), twice", (d, n), itemsize=4, copies=3))
        return tuple(out)
