"""Gated full attention under tensor parallelism: Qwen3-Next's ``Qwen3NextAttention``
(a query projection of twice the width holding each head's output gate, q and k norms,
partial rotary) as Megatron-LM's ``SelfAttention`` with ``attention_output_gate`` splits
it over ``tp`` ranks, and the activations one rank keeps.

Megatron-LM (megatron/core/transformer/attention.py at d98e8a6, ``SelfAttention``): the
fused ``linear_qkv`` is column-parallel and holds, per query group, the group's query
heads, their gates, its key and its value head (lines 1686-1702 and 1840-1897); each
rank holds ``a/t`` query heads with their gates and ``k/t`` key and value heads (lines
348-366; fewer groups than ranks: the rank works on one group, as the dense attention
here); ``q_layernorm`` and ``k_layernorm`` are over one head's ``d`` numbers, whole on
every rank (lines 1712-1750); ``_apply_output_gate`` multiplies the core attention's
output by the sigmoid of the rank's gate (lines 1632-1639) before the row-parallel
``linear_proj``. transformers lays ``q_proj`` out head by head (each head's query, then
its gate: ``view(..., -1, 2·d)`` and ``chunk``), so a rank's rows are one contiguous
block of ``1/t`` of them, and k_proj and v_proj split as a dense attention's.

The activations one rank keeps are those of a ``Qwen3NextAttention`` of the rank's heads
run eager, counted term by term as autograd keeps them (checked on CPU against a rank's
slice of a real module): bf16 or fp16 activations, no attention dropout (the published
configs' ``attention_dropout`` 0).
"""

from __future__ import annotations

from typing import Any

from shapecalc.analysis.parallel_plan import ParallelPlan, plan_error
from shapecalc.core.dims import known

__all__ = [
    "gated_attention_kept",
    "gated_attention_lines",
    "rotary_tables",
    "rotary_width",
]


def rotary_width(flow: Any, head_dim: int) -> int:
    """The numbers of each head that turn (the cos and sin tables' width): the first
    Rotary step found in an attention block's ``flow``, or the whole head."""
    stack = [flow]
    while stack:
        step = stack.pop()
        if type(step).__name__ == "Rotary":
            return known(step.turned) or head_dim
        for name in ("steps", "branches"):
            stack.extend(reversed(getattr(step, name, ())))
    return head_dim


def gated_attention_kept(
    h: int, a: int, k: int, d: int, b: int, s: int, p: int, *, selective: bool = False
) -> tuple[tuple[str, str, int], ...]:
    """What autograd keeps for one training forward of transformers' eager
    ``Qwen3NextAttention`` of ``a`` query heads and ``k`` key-value heads of ``d`` on
    ``b`` sequences of ``s`` tokens of width ``h``, activations ``p`` = 2 bytes: (what,
    formula, bytes), counted once per storage. The rotary cos and sin tables are the
    model's, shared by every layer (:func:`rotary_tables`). With ``selective``
    (Megatron's recomputed core attention: ``softmax(q·kᵀ)·v`` checkpointed), the core
    attention keeps its inputs instead of its insides. The keys and values ``repeat_kv``
    repeats to ``a`` heads are copies (matmul's batched reshape copies them), except for
    one key-value head and one sequence, where every reshape is a view of the head's.

    >>> sum(x[2] for x in gated_attention_kept(16, 4, 2, 8, 2, 5, 2))
    9504
    """
    if p != 2:
        raise plan_error(
            "itemsize",
            p,
            f"{p}-byte activations: Qwen3-Next's gated attention's are derived for 2-byte"
            " ones (--dtype bf16 or fp16); in fp32 its norms keep views of q_proj's output",
        )
    tokens = s * b
    out = [
        ("q, k, v projections' input", "p·s·b·h", p * tokens * h),
        (
            "q and k norms in fp32: input, normalised; 1 + w",
            "4·s·b·(a + k)·(2·d + 1) + 2·4·d",
            4 * tokens * (a + k) * (2 * d + 1) + 2 * 4 * d,
        ),
    ]
    if selective:
        out.append(
            (
                "core attention's inputs: rotated q and k, v",
                "p·s·b·(a + 2·k)·d",
                p * tokens * (a + 2 * k) * d,
            )
        )
    else:
        out.append(("rotated q", "p·s·b·a·d", p * tokens * a * d))
        if b == 1 and k == 1:  # repeat_kv's expand and matmul's reshape stay views
            out.append(
                ("k and v (views of one head, one sequence)", "2·p·s·b·d", 2 * p * tokens * d)
            )
        else:
            out.append(
                ("keys and values repeated to a heads", "2·p·s·b·a·d", 2 * p * tokens * a * d)
            )
        out += [
            (
                "softmax output (fp32) and its p-byte copy",
                "(4 + p)·a·s²·b",
                (4 + p) * a * s * s * b,
            ),
        ]
    out += [
        ("attention output, sigmoid of the gate", "2·p·s·b·a·d", 2 * p * tokens * a * d),
        ("o_proj's input (the gated output)", "p·s·b·a·d", p * tokens * a * d),
    ]
    return tuple(out)


def gated_attention_lines(
    dims: tuple[int, int, int, int],
    h: int,
    plan: ParallelPlan,
    s: int,
    b: int,
    p: int,
    *,
    flash: bool = False,
) -> tuple[tuple[str, str, int], ...]:
    """What one gated attention layer keeps on one of ``tp`` ranks, one micro-batch: the
    attention of ``a/t`` query heads and ``k/t`` key-value heads (one when ``k`` < ``t``)
    a rank runs (see :func:`gated_attention_kept`), with the projections' h-wide input
    ``/t`` under sequence parallelism (each rank keeps its shard and gathers it again
    for the backward pass, as for Megatron's other column-parallel layers); with
    ``--recompute selective`` the core attention's inputs instead of its insides.
    ``dims`` is (a, k, d, r) of the whole layer. (what, formula, bytes) each."""
    a, k, d, _ = dims
    t = plan.tp
    if plan.cp > 1:
        raise plan_error(
            "--cp", plan.cp, "Qwen3-Next's gated attention's activations under --cp are not derived"
        )
    if flash:
        raise plan_error(
            "flash",
            True,
            "Qwen3-Next's gated attention's activations are derived for eager attention,"
            " not a fused kernel's",
        )
    kv = k // t if k >= t else 1
    sp = t if plan.sequence_parallel else 1
    selective = plan.recompute == "selective"
    kept = gated_attention_kept(h, a // t, kv, d, b, s, p, selective=selective)
    (what, _, _), *rest = kept
    heads = "a/t" if t > 1 else "a"
    groups = "k" if t == 1 else "k/t" if k >= t else "1"

    def per_rank(formula: str) -> str:
        return formula.replace("a", "\0").replace("k", groups).replace("\0", heads)

    first = (what, f"p·s·b·h{'/t' if sp > 1 else ''}", p * s * b * h // sp)
    return (first, *((x, per_rank(f), v) for x, f, v in rest))


def rotary_tables(r: int, s: int, b: int, p: int) -> tuple[str, str, int]:
    """The rotary cos and sin tables the model makes once per forward and every full
    attention layer keeps (views of the same two tensors): (b, s, r) each, p bytes."""
    return ("rotary cos and sin (every layer's)", "2·p·s·b·r", 2 * p * s * b * r)
