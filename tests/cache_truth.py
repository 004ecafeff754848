"""What transformers' cache holds after a real forward, layer by layer: the truth the
inference state is checked against.

A tiny config is built on the CPU, run once with ``use_cache=True`` on ``batch`` ×
``seq_len`` token ids, and every tensor each layer of the returned cache holds is counted
(keys and values; a linear-attention or state-space layer's convolution and recurrent
states), bookkeeping scalars left out (0-dimensional counters).
"""

from __future__ import annotations

from typing import Any


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value] if value.dim() > 0 else []
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def cache_layers(cache: Any) -> list[int]:
    """Bytes every layer of a transformers cache holds (``cache.layers``)."""
    out = []
    for layer in cache.layers:
        seen: set[int] = set()
        total = 0
        for name, value in vars(layer).items():
            if name.startswith("_"):
                continue  # the window as a tensor, and other private bookkeeping
            for t in _tensors(value):
                if id(t) in seen:
                    continue
                seen.add(id(t))
                total += t.numel() * t.element_size()
        out.append(total)
    return out


def real_cache(
    config: Any,
    model_class: Any,
    *,
    batch: int,
    seq_len: int,
    dtype: Any = None,
    seed: int = 0,
) -> list[int]:
    """Bytes per layer of the cache ``model_class(config)`` returns after a forward of
    ``batch`` × ``seq_len`` tokens on the CPU (eager attention, the model in ``dtype``)."""
    import torch

    torch.manual_seed(seed)
    config._attn_implementation = "eager"
    build = getattr(model_class, "from_config", None) if "Auto" in model_class.__name__ else None
    model = (build(config) if build else model_class(config)).eval()
    if dtype is not None:
        model = model.to(dtype)
    vocab = int(getattr(config, "vocab_size", None) or config.get_text_config().vocab_size)
    ids = torch.randint(0, vocab, (batch, seq_len))
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
    cache = getattr(out, "past_key_values", None)
    if cache is None:  # Mamba-2's output names it ``cache``
        cache = out.cache
    return cache_layers(cache)


def ours(
    model: Any, *, batch: int, seq_len: int, dtype: str = "fp32", cache: str = "latent"
) -> dict[int, int]:
    """Bytes of the inference state shapecalc counts per layer number."""
    from shapecalc import analyze

    cost = analyze(model, batch=batch, seq_len=seq_len, dtype=dtype, training="none", cache=cache)
    return {i: int(b) for i, b in cost.state_per_layer().items()}
