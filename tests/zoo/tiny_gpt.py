"""A small GPT-style transformer with the composition API: token and learned position
embeddings summed, L pre-norm blocks of attention and MLP, a final norm and a head tied to
the token embedding. Run by tests/test_zoo.py against a torch twin written by hand."""

from __future__ import annotations

from typing import Any

from shapecalc import (
    GELU,
    Block,
    Embedding,
    LayerNorm,
    Linear,
    Model,
    ModuleList,
    MultiheadAttention,
    Sequential,
    chain,
    parallel,
    residual,
    summed,
)
from shapecalc.core.flow import Positions


def block(width: Any, heads: int, hidden: Any) -> Block:
    """x + attn(ln_1(x)), then x + mlp(ln_2(x)); attention takes its input as query, key
    and value."""
    return Block(
        "Block",
        {
            "ln_1": LayerNorm(width),
            "attn": MultiheadAttention(width, heads, batch_first=True),
            "ln_2": LayerNorm(width),
            "mlp": Sequential(Linear(width, hidden), GELU(), Linear(hidden, width)),
        },
        flow=chain(residual("ln_1", parallel((), (), ()), "attn"), residual("ln_2", "mlp")),
    )


def tiny_gpt(vocab: Any, width: Any, heads: int, layers: Any, context: Any) -> Model:
    root = Block(
        "TinyGPT",
        {
            "wte": Embedding(vocab, width),
            "wpe": Embedding(context, width),
            "h": ModuleList(block(width, heads, 4 * width), layers),
            "ln_f": LayerNorm(width),
            "head": Linear(width, vocab, bias=False),
        },
        flow=chain(summed("wte", (Positions(), "wpe")), "h", "ln_f", "head"),
    )
    return Model(
        "tiny GPT",
        root,
        ties={"head.weight": "wte.weight"},
        input_layout=(("B", "T"),),
    )
