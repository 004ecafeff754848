"""A Hugging Face config's own context: the most positions its language model takes.

A flat config names it at the top (``max_position_embeddings``); a composite one
(Gemma 3, Llama 3.2 Vision, LLaVA: ``text_config`` beside ``vision_config``, as
transformers' ``Gemma3Config``, ``MllamaConfig`` and ``LlavaConfig`` hold their language
model) names it in its language model's config; Whisper's decoder names its positions
``max_target_positions`` (``WhisperConfig``; the encoder's ``max_source_positions`` are
the audio frames, not the context).

    >>> config_context({"text_config": {"max_position_embeddings": 131072}})
    (131072, 'text_config.max_position_embeddings')
    >>> config_context({"max_target_positions": 448})
    (448, 'max_target_positions')
    >>> config_context({"model_type": "t5"}) is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

__all__ = ["CONTEXT_FIELD", "config_context"]

#: the field a flat config names its context by
CONTEXT_FIELD = "max_position_embeddings"


def _positive(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def config_context(config: Mapping[str, Any]) -> tuple[int, str] | None:
    """The context ``config`` names and the field that names it (dotted when nested);
    None when it names none (T5's relative positions have no limit)."""
    value = config.get(CONTEXT_FIELD)
    if _positive(value):
        return value, CONTEXT_FIELD
    text = config.get("text_config")
    nested = text.get(CONTEXT_FIELD) if isinstance(text, Mapping) else None
    if _positive(nested):
        return nested, f"text_config.{CONTEXT_FIELD}"
    value = config.get("max_target_positions")
    if _positive(value):
        return value, "max_target_positions"
    return None
