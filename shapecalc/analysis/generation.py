"""An encoder-decoder generating: what runs once per request and what runs per token.

``generate`` runs the encoder once over the S source tokens, then the decoder once per
generated token. At the first step each cross-attention layer projects the encoder's
output to keys and values and keeps them for the request (transformers'
``EncoderDecoderCache.cross_attention_cache``); at every step each self-attention layer
adds the new token's keys and values to its cache and attends to all it holds. So:

- once per request: the encoder over S tokens, and the cross-attention keys and values
  (their FLOPs over S, their bytes kept to the end);
- per generated token, at a context of t tokens: the decoder's matrix products on one
  position, self-attention over the t keys held, cross-attention over the S source keys,
  and the head; each self-attention layer's cache grows by one token.

Every number is the engine's own: the rows of one decode step (:func:`~shapecalc.analysis.
cost.analyze` at T = 1), each self-attention's products taken again with t keys.

    >>> import shapecalc
    >>> m = shapecalc.t5(vocab=100, hidden=16, layers=2, heads=2, head_dim=4, source_len=7)
    >>> g = generation(m, batch=1, context=5)
    >>> g.encoder_flops, g.cross_flops, g.step_flops
    (74816, 7168, 15232)
"""

from __future__ import annotations

from dataclasses import replace

from shapecalc.analysis.cost import LayerCost, analyze
from shapecalc.analysis.encdec import ENCODER, cross_projection, in_encoder, per_request
from shapecalc.core.dims import Dim, as_size
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.frozen import FrozenMethods, frozen
from shapecalc.core.model import Model
from shapecalc.layers.functional import ScaledDotProductAttention

__all__ = ["Generation", "generation"]


@frozen
class Generation(FrozenMethods):
    """FLOPs (2 × the multiply-adds of the matrix products, as FlopCounterMode counts)
    and bytes of an encoder-decoder's generation, at ``batch`` requests."""

    batch: Dim
    #: the keys one decode step's self-attention sees (the tokens so far, its own included)
    context: Dim
    #: the encoder over the source, once per request
    encoder_flops: Dim
    #: the cross-attention keys and values over the source, at the first step only
    cross_flops: Dim
    #: one decode step: the decoder on one position and the head
    step_flops: Dim
    #: the cross-attention keys and values kept for the request
    cross_bytes: Dim
    #: the self-attention keys and values one more token adds
    token_bytes: Dim
    #: what runs once per request, in words ("the encoder runs")
    once: str = "the encoder runs"


def _attention_over(row: LayerCost, context: Dim) -> Dim:
    """The multiply-adds of one decode step's self-attention ``row`` with ``context`` keys."""
    spec = row.spec
    assert isinstance(spec, ScaledDotProductAttention)
    q, k, v = row.inputs
    held = (*k[:-2], context, k[-1])
    return row.calls * spec.work(q, held, (*v[:-2], context, v[-1])).macs


def generation(
    model: Model, *, batch: object = 1, context: object = "t", dtype: str = "fp32"
) -> Generation:
    """The once-per-request and per-token work of ``model`` (an encoder-decoder whose
    encoder is named ``encoder``, or a model whose architecture names what runs once per
    request in ``per_request``) generating for ``batch`` requests, one step at ``context``
    tokens; a name for either keeps it a letter in the formulas."""
    owner = "generation"
    b = as_size(batch, owner=owner, field="batch")
    t = as_size(context, owner=owner, field="context")
    once = per_request(model)
    if not any(in_encoder(name, once) for name, _ in model.named_parameters()):
        rule = "generation is an encoder-decoder's: its encoder runs once per request"
        raise InvalidArgumentError(
            f"{model.name} has no encoder: {rule}",
            layer=owner,
            field="model",
            value=model.name,
            rule=rule,
        )
    step = analyze(model, batch=b, seq_len=1, dtype=dtype, training="none")
    encoder: Dim = 0
    cross: Dim = 0
    decode: Dim = 0
    for row in step.layers:
        if in_encoder(row.name, once):
            encoder += row.macs
        elif cross_projection(row.name):
            cross += row.macs
        elif isinstance(row.spec, ScaledDotProductAttention) and not row.spec.cross:
            decode += _attention_over(row, t)
        else:
            decode += row.macs
    cross_bytes: Dim = 0
    token_bytes: Dim = 0
    for _, stored in step.state:
        if stored.kind == "cross attention":
            cross_bytes += stored.kept_bytes(step.itemsize)
        else:  # at T = 1: one token's keys and values
            token_bytes += replace(stored).kept_bytes(step.itemsize)
    said = "the encoder runs" if once == (ENCODER,) else " and ".join(once) + " run"
    return Generation(b, t, 2 * encoder, 2 * cross, 2 * decode, cross_bytes, token_bytes, said)
