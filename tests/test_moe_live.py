"""The tensors a mixture's experts hold at once inside one forward at inference (what the
activation estimate of ``fit`` and the inference account add for them): every tensor
transformers' default experts forward (grouped_mm) makes is tracked while it lives, and
its fullest moment equals the larger of the layer's stated moments, byte for byte, for
drawn sizes and routings of Mixtral's experts and gpt-oss's."""

from __future__ import annotations

import weakref
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from shapecalc.layers.transformers import Experts, GptOssExperts  # noqa: E402


class Live(TorchDispatchMode):
    """Bytes of the storages made under the mode that are alive, and their most; the
    storages of ``before`` (inputs, parameters, their views) are not counted."""

    def __init__(self, before: list[Any]) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.seen = {t.untyped_storage().data_ptr() for t in before}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if key in self.seen or not size:
                continue
            self.seen.add(key)
            self.live += size
            self.peak = max(self.peak, self.live)

            def gone(size: int = size, key: int = key) -> None:
                self.live -= size
                self.seen.discard(key)

            weakref.finalize(storage, gone)
        return out


def moment_bytes(work: Any) -> int:
    return max(
        sum(int(torch.Size(s.shape).numel()) * (s.itemsize or 4) for s in moment)
        for moment in work.moments
    )


@settings(max_examples=12, deadline=None)
@given(
    hidden=st.integers(1, 6).map(lambda n: 4 * n),  # grouped_mm: rows of 16 bytes
    inner=st.integers(1, 10).map(lambda n: 4 * n),
    experts=st.integers(1, 6),
    data=st.data(),
    tokens=st.integers(1, 12),
    family=st.sampled_from(["mixtral", "gpt_oss"]),
)
def test_the_fullest_moment_inside_the_experts_is_stated(
    hidden: int, inner: int, experts: int, data: Any, tokens: int, family: str
) -> None:
    from transformers import GptOssConfig, MixtralConfig
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssExperts as HFGptOss
    from transformers.models.mixtral.modeling_mixtral import MixtralExperts

    top_k = data.draw(st.integers(1, experts), label="top_k")
    sizes = {
        "hidden_size": hidden,
        "intermediate_size": inner,
        "num_local_experts": experts,
        "num_experts_per_tok": top_k,
    }
    if family == "mixtral":
        config: Any = MixtralConfig(**sizes)
        module: Any = MixtralExperts
        spec: Any = Experts(experts, hidden, inner, top_k)
    else:
        config = GptOssConfig(**sizes)
        module = HFGptOss
        spec = GptOssExperts(experts, hidden, inner, top_k)
    config._experts_implementation = "grouped_mm"  # transformers 5's default
    torch.manual_seed(0)
    layer = module(config)
    x = torch.randn(tokens, hidden)
    chosen = torch.stack([torch.randperm(experts)[:top_k] for _ in range(tokens)])
    weights = torch.rand(tokens, top_k)
    with torch.no_grad(), Live([x, chosen, weights, *layer.parameters()]) as live:
        layer(x, chosen, weights)
    work = spec.work((1, tokens, hidden), (1, tokens, experts))
    assert live.peak == moment_bytes(work)


def test_a_mixture_s_prefill_estimate_holds_its_experts_intermediates() -> None:
    """Mixtral-8x7B's prefill at B=4, T=32,768: the experts' gating per visit (2 of 8
    experts a token) is the largest live set, far above its attention's inputs."""
    from shapecalc.analysis.cost import analyze
    from shapecalc.architectures.llama import LLaMA

    model = LLaMA(
        vocab=32000,
        hidden=4096,
        layers=2,
        heads=32,
        kv_heads=8,
        intermediate=14336,
        experts=8,
        experts_per_token=2,
    ).model()
    cost = analyze(model, batch=4, seq_len=32768, dtype="bf16")
    peak = cost.inference_peak()
    assert peak is not None and "experts" in peak.where
    visits, h, i = 4 * 32768 * 2, 4096, 14336
    gating = 2 * (visits * (h + 1 + 4 * i)) + 8 * 2 * visits + 4 * visits + 4 * 8 * 2
    inputs = 2 * 4 * 32768 * (h + 8)  # the tokens and the router's logits
    residual = 2 * 4 * 32768 * h
    assert peak.bytes == inputs + gating + residual
