"""What of an encoder-decoder's forward runs at one generated token's step.

``generate`` runs the encoder once over the S source tokens and keeps its output for the
request (``model_kwargs["encoder_outputs"]``, transformers' generation/utils.py); at the
first step each cross-attention layer projects that output to keys and values and caches
them (``EncoderDecoderCache.cross_attention_cache``; T5Attention and BartAttention skip
the projections once ``is_updated`` is set). So one decode step is the decoder on one
token: its self-attention over the cache, its cross-attention's queries against the
cached keys and values, its feed-forward and the head; the encoder and the cross keys'
and values' projections do not run, and the encoder's output is held, not made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from shapecalc.core.model import Model
from shapecalc.core.spec import Shape
from shapecalc.layers.functional import Pick, ScaledDotProductAttention

if TYPE_CHECKING:
    from shapecalc.analysis.cost import LayerCost

__all__ = ["CROSS", "ENCODER", "cross_projection", "decode_rows", "in_encoder", "per_request"]

#: the stack run once per request (transformers' ``encoder``, at the top or in the body)
ENCODER = "encoder"
#: cross-attention modules (T5's, BART's and Whisper's; Mllama's cross_attn) -> their key
#: and value projections
CROSS = {
    "EncDecAttention": ("k", "v"),
    "encoder_attn": ("k_proj", "v_proj"),
    "cross_attn": ("k_proj", "v_proj"),
}


def per_request(model: Model) -> tuple[str, ...]:
    """The stacks run once per request: the encoder, or those the architecture names
    (``per_request``: Mllama's vision model and projector, whose output every
    cross-attention layer reads)."""
    named: tuple[str, ...] = getattr(model.config, "per_request", ())
    return named or (ENCODER,)


def in_encoder(name: str, once: tuple[str, ...] = (ENCODER,)) -> bool:
    """A row of a stack run once per request (by default the encoder: a name part
    ``encoder``)."""
    parts = name.split(" (")[0].split(".")
    return any(stack in parts for stack in once)


def cross_projection(name: str) -> bool:
    """A cross-attention's key or value projection (its input is the encoder's output)."""
    parts = name.split(" (")[0].split(".")
    return len(parts) >= 2 and parts[-1] in CROSS.get(parts[-2], ())


def _cross_attention(row: LayerCost) -> bool:
    return isinstance(row.spec, ScaledDotProductAttention) and row.spec.cross


def decode_rows(
    rows: Sequence[LayerCost], once: tuple[str, ...] = (ENCODER,)
) -> tuple[tuple[LayerCost, ...], Shape | None]:
    """The rows of a forward at one target token that one decode step runs, and the shape
    of the encoder's output it holds; the rows unchanged and None for a model without
    cross-attention over an encoder. Left out: the encoder's rows, the cross keys' and
    values' projections, and the picks of a tuple (a pick makes no tensor); a
    cross-attention reads its keys and values from the cache (the inference state), so
    its row keeps the queries alone as inputs. ``once``: the stacks run once per request
    (:func:`per_request`: the encoder, or Mllama's vision model and projector); of a
    model without cross-attention whose architecture names them (Gemma 3's, LLaVA's and
    Mistral 3's vision tower and projector), the rows without those stacks, holding
    nothing."""
    if not any(in_encoder(r.name, once) for r in rows):
        return tuple(rows), None
    if not any(_cross_attention(r) for r in rows):
        if once == (ENCODER,):  # an encoder alone (BERT's): its forward is the step
            return tuple(rows), None
        # a vision tower and projector run at prefill (Gemma 3, LLaVA, Mistral 3): the
        # step is the language model on one token, holding nothing of the image
        return tuple(r for r in rows if not in_encoder(r.name, once)), None
    held: Shape | None = None
    out: list[LayerCost] = []
    for row in rows:
        if cross_projection(row.name):
            held = held or row.inputs[0]
            continue
        if in_encoder(row.name, once) or isinstance(row.spec, Pick):
            continue
        out.append(replace(row, inputs=row.inputs[:1]) if _cross_attention(row) else row)
    return tuple(out), held
