"""Linear attention under tensor parallelism: Qwen3-Next's Gated DeltaNet layer as
Megatron-LM's ``GatedDeltaNet`` splits it over ``tp`` ranks, with transformers' names.

Megatron-LM (megatron/core/ssm/gated_delta_net/common.py and gdn.py at d98e8a6; the
Qwen3-Next spec in megatron/core/models/gpt/experimental_attention_variant_module_specs.py,
``get_gated_delta_net_module_spec``) gives each rank ``Nk/t`` key heads and ``Nv/t``
value heads and runs the whole layer on them:

- one column-parallel ``in_proj`` (common.py lines 211-224) whose rank holds its q, k, v,
  z, β and a sections (gdn.py lines 50-58: ``Nk·Dk/t``, ``Nk·Dk/t``, ``Nv·Dv/t``,
  ``Nv·Dv/t``, ``Nv/t``, ``Nv/t`` rows). transformers keeps it as two matrices,
  ``in_proj_qkvz`` (q, k, v, z) and ``in_proj_ba`` (β, a), each laid out key head by key
  head, so a rank's rows of each are one contiguous block of ``1/t`` of them;
- ``conv1d`` over the rank's ``C/t`` channels (lines 227-244; its sharded checkpoint
  splits it into the rank's q, k and v, lines 553-568), no bias in the Qwen3-Next spec;
- ``dt_bias`` and ``A_log`` over the rank's ``Nv/t`` value heads (lines 246-260);
- the gated norm's weight, one per value-head channel (``Dv``), whole on every rank
  (``out_norm`` over ``value_head_dim``, lines 263-268);
- ``out_proj`` row-parallel (lines 274-287): ``(H, Nv·Dv/t)``.

Megatron asserts ``linear_num_key_heads`` and ``linear_num_value_heads`` are multiples of
``tp·cp`` (megatron/core/transformer/transformer_config.py, lines 1501-1509).

The activations one rank keeps are those of a Gated DeltaNet of ``Nk/t`` and ``Nv/t``
heads, counted here term by term as autograd keeps them in transformers' torch path
(``Qwen3NextGatedDeltaNet`` with ``torch_chunk_gated_delta_rule``, the fallback without
the fla kernels), checked on CPU against a rank's slice of a real module.
"""

from __future__ import annotations

from typing import Any

from shapecalc.analysis.parallel_plan import ParallelPlan, plan_error
from shapecalc.core.dims import known
from shapecalc.core.model import Layer, Row

__all__ = [
    "GDN_CHUNK",
    "check_heads",
    "gated_delta_net_kept",
    "gated_delta_net_lines",
    "gdn_heads",
    "gdn_split",
]

#: the positions transformers' torch path of the delta rule takes at a time
GDN_CHUNK = 64

#: what each tensor of the layer is on a rank, by its name under the layer
_STYLES = {
    "in_proj_qkvz.weight": "column: q, k, v, z",
    "in_proj_ba.weight": "column: b, a",
    "conv1d.weight": "column: q, k, v",
    "dt_bias": "heads",
    "A_log": "heads",
    "norm.weight": "replicated",
    "out_proj.weight": "row",
}


def gdn_heads(spec: Any) -> tuple[int, int, int, int, int]:
    """(Nk, Nv, Dk, Dv, W) of a Gated DeltaNet spec."""
    values = [
        known(getattr(spec, name))
        for name in (
            "num_key_heads",
            "num_value_heads",
            "key_head_dim",
            "value_head_dim",
            "conv_kernel_size",
        )
    ]
    nk, nv, dk, dv, w = (v or 0 for v in values)
    return nk, nv, dk, dv, w


def check_heads(nk: int, nv: int, plan: ParallelPlan) -> None:
    """Megatron's rule: tp·cp divides the key heads and the value heads."""
    ranks = plan.tp * plan.cp
    if ranks == 1:
        return
    flag, value = ("--tp", plan.tp) if plan.tp > 1 else ("--cp", plan.cp)
    what = f"--tp {plan.tp} × --cp {plan.cp}" if plan.tp > 1 and plan.cp > 1 else f"{flag} {value}"
    for heads, letter, name in ((nk, "Nk", "key"), (nv, "Nv", "value")):
        if heads % ranks:
            raise plan_error(
                flag,
                value,
                f"{what} must divide linear attention's {name} heads ({letter} = {heads}),"
                " as Megatron-LM's GatedDeltaNet requires",
            )


def gdn_split(
    row: Row, layer: Layer, spec: Any, shape: tuple[int, ...], plan: ParallelPlan
) -> tuple[str, tuple[int, ...], int]:
    """(style, one rank's shape, 1) of one tensor of a Gated DeltaNet layer under
    ``plan`` (see the module's text); refused where Megatron refuses."""
    nk, nv, _, _, _ = gdn_heads(spec)
    check_heads(nk, nv, plan)
    t = plan.tp
    if t == 1:
        return "unsplit", shape, 1
    name = row.name[len(layer.name) + 1 :] if row.name.startswith(layer.name + ".") else ""
    style = _STYLES.get(name)
    if style is None:
        raise plan_error(
            "--tp",
            t,
            f"--tp {t}: {row.name} is not a part of Megatron-LM's GatedDeltaNet; give --tp 1",
        )
    if style == "replicated":
        return style, shape, 1
    if style == "row":
        return style, (shape[0], shape[1] // t), 1
    return style, (shape[0] // t, *shape[1:]), 1


def gated_delta_net_kept(
    h: int, nk: int, nv: int, dk: int, dv: int, w: int, b: int, s: int, p: int
) -> tuple[tuple[str, str, int], ...]:
    """What autograd keeps for one training forward of transformers' Gated DeltaNet of
    ``nk`` key and ``nv`` value heads (``Qwen3NextGatedDeltaNet``, torch path, no cache)
    on ``b`` sequences of ``s`` tokens of width ``h``, activations ``p`` = 2 bytes (bf16
    or fp16): (what, formula, bytes), counted once per storage. The delta rule works in
    fp32 on the sequence padded to T = 64·⌈s/64⌉ (n = T/64 chunks of c = 64), each key
    head serving r = nv/nk value heads.

    >>> sum(x[2] for x in gated_delta_net_kept(16, 2, 4, 3, 5, 3, 2, 70, 2))
    1566240
    """
    if p != 2:
        raise plan_error(
            "itemsize",
            p,
            f"{p}-byte activations: linear attention's are derived for 2-byte ones"
            " (--dtype bf16 or fp16); in fp32 transformers' torch path keeps copies or"
            " views by the sequence length's layout",
        )
    c = GDN_CHUNK
    n = -(-s // c)
    big = b * n * c  # padded positions of a sequence batch
    conv = 2 * nk * dk + nv * dv
    tokens = b * s
    values = tokens * nv * dv
    out: list[tuple[str, str, int]] = [
        ("in_proj's input", "p·s·b·h", p * tokens * h),
        (
            "the convolution's input and output, β",
            "p·b·C·(2s + W − 1) + p·s·b·Nv",
            p * b * conv * (2 * s + w - 1) + p * tokens * nv,
        ),
        (
            "the decay: softplus in and out, A (fp32)",
            "4·(2·s·b·Nv + 2·Nv)",
            4 * (2 * tokens * nv + 2 * nv),
        ),
        (
            "q and k per value head, l2 norms (fp32)",
            "2·4·s·b·Nv·(Dk + 1)",
            2 * 4 * tokens * nv * (dk + 1),
        ),
        (
            "padded β, v, k, q, kβ; new v, kβ (fp32)",
            "4·b·Nv·T·(1 + 2·Dv + 4·Dk)",
            4 * big * nv * (1 + 2 * dv + 4 * dk),
        ),
        (
            "a chunk's pairs: decays, kβ·kᵀ, q·kᵀ (fp32)",
            "5·4·b·Nv·T·c + c² (mask)",
            5 * 4 * big * nv * c + c * c,
        ),
        ("the chunks' decays (fp32)", "2·4·b·Nv·T", 2 * 4 * big * nv),
        (
            "per chunk: state, values written (fp32)",
            "4·n·b·Nv·Dv·(Dk + c)",
            4 * n * b * nv * dv * (dk + c),
        ),
    ]
    if n >= 2:
        out.append(
            (
                "two chunks or more: q, k decayed (fp32)",
                "4·b·Nv·(T·(2·Dk + 1) + n)",
                4 * b * nv * (n * c * (2 * dk + 1) + n),
            )
        )
    out.append(
        (
            "the gated norm, out_proj's input",
            "4·s·b·Nv·(3·Dv + 1) + 3·p·s·b·Nv·Dv",
            4 * tokens * nv * (3 * dv + 1) + 3 * p * values,
        )
    )
    return tuple(out)


def gated_delta_net_lines(
    heads: tuple[int, int, int, int, int], h: int, plan: ParallelPlan, s: int, b: int, p: int
) -> tuple[tuple[str, str, int], ...]:
    """What one Gated DeltaNet layer keeps on one of ``tp`` ranks, one micro-batch of
    ``b`` sequences of ``s`` tokens: the layer of Nk/t and Nv/t heads a rank runs (see
    :func:`gated_delta_net_kept`), with in_proj's h-wide input ``/t`` under sequence
    parallelism (each rank keeps its shard and gathers it again for the backward pass,
    as for Megatron's other column-parallel layers). (what, formula, bytes) each.

    ``heads`` is (Nk, Nv, Dk, Dv, W) of the whole layer."""
    nk, nv, dk, dv, w = heads
    t = plan.tp
    if plan.cp > 1:
        raise plan_error(
            "--cp", plan.cp, "linear attention's activations under --cp are not derived here"
        )
    check_heads(nk, nv, plan)
    sp = t if plan.sequence_parallel else 1
    kept = gated_delta_net_kept(h, nk // t, nv // t, dk, dv, w, b, s, p)
    (what, _, _), *rest = kept
    per = "/t" if t > 1 else ""
    first = (what, f"p·s·b·h{'/t' if sp > 1 else ''}", p * s * b * h // sp)
    return (
        first,
        *((x, f.replace("Nv", f"Nv{per}").replace("C", f"C{per}"), v) for x, f, v in rest),
    )
