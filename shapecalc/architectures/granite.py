"""``shapecalc granite``: IBM Granite 3, named as ``transformers``' ``GraniteForCausalLM``
names it.

Granite's tensors are LLaMA's: the same blocks, names and shapes. Its multipliers (of the
embeddings, the residuals, the attention scores and the logits) scale what flows through
and hold no parameters.
"""

from __future__ import annotations

from typing import ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures.llama import _BIASES, LLaMA, _defaults, _member
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType

__all__ = ["Granite", "granite"]


@frozen(kw_only=True)
class Granite(LLaMA):
    """IBM Granite 3: a LLaMA-style decoder (see :class:`LLaMA`) whose multipliers change
    no shape. Granite 3's models share the embedding with the head (tie_weights).

        >>> m = granite(vocab=49155, hidden=2048, layers=40, heads=32, kv_heads=8,
        ...             intermediate=8192, tie_weights=True)
        >>> m.total
        2533531648
        >>> print(m.total_formula)
        2·L·D·H·K + 2·L·H² + 3·L·H·I + 2·L·H + V·H + H
    """

    command: ClassVar[str] = "granite"
    function: ClassVar[str] = "granite"
    title: ClassVar[str] = "IBM Granite 3 decoder"
    example: ClassVar[str] = (
        "--vocab 49155 --hidden 2048 --layers 40 --heads 32 --kv-heads 8 --intermediate 8192 "
        "--tie-weights"
    )
    budget: ClassVar[str] = "2B"

    head: str = tf.lm_head("GraniteForCausalLM", "GraniteModel")

    hf: ClassVar[tuple[HFType, ...]] = (
        _member(
            model_type="granite",
            gguf="granite",
            prefix="Granite",
            kinds=(),
            defaults=_defaults(
                vocab_size=32000,
                hidden_size=4096,
                num_hidden_layers=32,
                num_attention_heads=32,
                intermediate_size=11008,
                attention_bias=False,
                mlp_bias=False,
                hidden_act="silu",
            ),
            keys={"attention_bias": "attention_bias", "mlp_bias": "mlp_bias"},
            values={"attention_bias": _BIASES},
            free={
                "embedding_multiplier",
                "logits_scaling",
                "residual_multiplier",
                "attention_multiplier",
            },
        ),
    )


granite = Granite.function_for()
