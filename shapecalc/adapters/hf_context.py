"""A Hugging Face config's own context: the most positions its language model takes.

A flat config names it at the top (``max_position_embeddings``); a composite one
(Gemma 3, Llama 3.2 Vision, LLaVA: ``text_config`` beside ``vision_config``, as
transformers' ``Gemma3Config``, ``MllamaConfig`` and ``LlavaConfig`` hold their language
model) names it in its language model's config; Whisper's decoder names its positions
``max_target_positions`` (``WhisperConfig``; the encoder's ``max_source_positions`` are
the audio frames, not the context). A composite whose language model leaves it out takes
the default of its language model's config class, as transformers builds it
(``Gemma3TextConfig``'s 131,072; a LLaVA or Mistral 3 language model of type ``llama``,
``LlamaConfig``'s 2,048): the default its declaration holds.

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
    return _text_default(config)


def _text_default(config: Mapping[str, Any]) -> tuple[int, str] | None:
    """A composite's language model's context when its config leaves the field out: the
    default of the language model's config class (None: no composite, or no default)."""
    from shapecalc.adapters.hf_config import _declaration_of
    from shapecalc.core.declare import arguments_of
    from shapecalc.core.errors import InvalidArgumentError

    outer = config.get("model_type")
    text = config.get("text_config")
    if not isinstance(outer, str) or (text is not None and not isinstance(text, Mapping)):
        return None
    if text is not None and CONTEXT_FIELD in text:
        return None  # named, but not a positive integer: the reader refuses it
    try:
        cls, declaration = _declaration_of(outer)
        parts = [p for p in declaration.all_parts if p.key == "text_config"]
        said = (text or {}).get("model_type")
        if parts:  # Gemma 3, Mllama, Mistral 3, Qwen2-VL: a declared part
            part = parts[0]
            said = part.said.get(said, said) if isinstance(said, str) else part.types[0]
            if said not in part.types:
                return None
            family = part.declared or _declaration_of(said)[1]
        else:  # LLaVA: the language model's type is an argument, llama by default
            chosen = {f.name: f.default for f, _ in arguments_of(cls)}.get("text_type")
            said = said if said is not None else chosen
            if not isinstance(said, str) or chosen is None:
                return None
            family = _declaration_of(said)[1]
    except InvalidArgumentError:
        return None
    value = family.defaults.get(CONTEXT_FIELD)
    if _positive(value):
        return value, f"text_config.{CONTEXT_FIELD}, {family.config_class}'s default"
    return None
