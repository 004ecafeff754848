"""An encoder-decoder's decode step in the inference account: the decoder alone on one
token, reading the cross-attention keys and values from the cache, the encoder's output
held (transformers' generate keeps ``encoder_outputs`` for the request; T5Attention,
BartAttention and WhisperAttention skip the cross projections once the cache is filled).
Checked on real tiny T5, BART, mBART and Whisper models on the CPU: every matrix product
a decode step calls, by name and shape, is a row of the account's step and no other is;
and the live tensors the step's line counts are alive at once in the real step (tracked
under a dispatch mode as tests/test_moe_live.py tracks them), while the old account, the
whole forward at T = 1 with the encoder over the source, claimed more than the real step
ever holds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.layers.linear import Linear
from tests.test_moe_live import Live
from tests.test_t5 import expanded

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _config(family: str, hidden: int, inner: int, vocab: int, source: int) -> dict[str, Any]:
    if family == "t5":
        return {
            "model_type": "t5",
            "vocab_size": vocab,
            "d_model": hidden,
            "d_kv": 4,
            "d_ff": inner,
            "num_layers": 2,
            "num_decoder_layers": 3,
            "num_heads": 2,
            "relative_attention_num_buckets": 8,
            "decoder_start_token_id": 0,
        }
    if family == "whisper":
        return {
            "model_type": "whisper",
            "vocab_size": vocab,
            "num_mel_bins": 4,
            "d_model": hidden,
            "encoder_layers": 2,
            "decoder_layers": 3,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "encoder_ffn_dim": inner,
            "decoder_ffn_dim": inner,
            "max_source_positions": source,
            "max_target_positions": 10,
            "pad_token_id": 1,
        }
    return {
        "model_type": family,
        "vocab_size": vocab,
        "d_model": hidden,
        "encoder_layers": 2,
        "decoder_layers": 3,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": inner,
        "decoder_ffn_dim": inner,
        "max_position_embeddings": 64,
    }


def _theirs(config: dict[str, Any]) -> Any:
    fields = {k: v for k, v in config.items() if k != "model_type"}
    conf = transformers.AutoConfig.for_model(config["model_type"], **fields)
    auto = (
        transformers.AutoModelForSpeechSeq2Seq
        if config["model_type"] == "whisper"
        else transformers.AutoModelForSeq2SeqLM
    )
    return auto.from_config(conf, attn_implementation="sdpa").eval()


def _linear_calls(
    module: Any, call: Any
) -> tuple[list[tuple[str, tuple[int, ...], tuple[int, ...]]], Any]:
    """Every nn.Linear call of ``call()`` by name, input shape and output shape."""
    calls: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    handles = [
        sub.register_forward_hook(
            lambda _m, args, out, name=name: calls.append(
                (name, tuple(args[0].shape), tuple(out.shape))
            )
        )
        for name, sub in module.named_modules()
        if isinstance(sub, torch.nn.Linear)
    ]
    try:
        out = call()
    finally:
        for h in handles:
            h.remove()
    return sorted(calls), out


def _tensors(value: Any) -> list[Any]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if hasattr(value, "layers"):  # a cache
        return [t for layer in value.layers for t in (layer.keys, layer.values)]
    for part in ("self_attention_cache", "cross_attention_cache"):
        if hasattr(value, part):
            return _tensors(getattr(value, part))
    return []


@settings(max_examples=8, deadline=None)
@given(
    family=st.sampled_from(["t5", "bart", "mbart", "whisper"]),
    batch=st.integers(1, 2),
    source=st.integers(16, 48),
    prefill=st.integers(1, 3),
    hidden=st.sampled_from([8, 16]),
    inner=st.sampled_from([16, 64]),
    vocab=st.integers(20, 60),
)
def test_a_decode_step_is_the_decoder_on_one_token(
    family: str, batch: int, source: int, prefill: int, hidden: int, inner: int, vocab: int
) -> None:
    config = _config(family, hidden, inner, vocab, source)
    found = hf_model(config)
    arch = (
        found.architecture
        if family == "whisper"
        else found.architecture.varied({"source_len": source})
    )
    model = arch.model()
    cost = analyze(model, batch=batch, seq_len=prefill, training="none")
    step = cost.decode()
    assert step is not None and step.held == (batch, source, hidden)
    mine = sorted(
        (name, row.inputs[0], row.outputs[0])
        for row in step.layers
        if isinstance(row.spec, Linear)
        for name in expanded(row.name)
    )
    theirs = _theirs(config)
    torch.manual_seed(0)
    with torch.no_grad():
        if family == "whisper":  # a window of 2·S mel frames, S positions after the stem
            src = torch.randn(batch, 4, 2 * source)
            given = {"input_features": src}
        else:
            src = torch.randint(2, vocab, (batch, source))
            given = {"input_ids": src}
        tgt = torch.randint(2, vocab, (batch, prefill))
        first_live = Live([*theirs.parameters(), *theirs.buffers(), src, tgt])
        with first_live:  # the prefill: the encoder over the source, the decoder's first tokens
            first = theirs(**given, decoder_input_ids=tgt, use_cache=True)
        encoded = (first.encoder_last_hidden_state,)
        ids = torch.randint(2, vocab, (batch, 1))
        before = [
            *theirs.parameters(),
            *theirs.buffers(),
            *_tensors(first.past_key_values),
            encoded[0],
            ids,
        ]
        live = Live(before)

        def decode() -> Any:
            with live:
                return theirs(
                    encoder_outputs=encoded,
                    decoder_input_ids=ids,
                    cache=first.past_key_values,
                    use_cache=True,
                )

        called, _ = _linear_calls(theirs, decode)
    # the matrix products a step runs: the decoder's on one token and the head; no
    # encoder, no cross keys or values projected
    assert [(n, i, o) for n, i, o in called] == mine
    held = encoded[0].numel() * 4
    measured = live.peak + held  # the new tensors at their fullest, and the encoder's output
    peak = step.inference_peak()
    assert peak is not None
    assert peak.bytes <= measured
    # the prefill's line: the forward over the source and the first target tokens
    first_peak = cost.inference_peak()
    assert first_peak is not None and first_peak.bytes <= first_live.peak
    # the forward at T = 1, encoder and all, counts what no decode step holds
    whole = analyze(model, batch=batch, seq_len=1, training="none").inference_peak()
    assert whole is not None and whole.where.startswith(("encoder", "model.encoder"))
    assert whole.bytes > measured


def test_fit_prices_the_same_decode_step() -> None:
    """``fit``'s decode-step line is the account's: the decoder alone, the encoder's
    output held, not the encoder at one token."""
    from shapecalc.analysis.fit import Fit
    from shapecalc.analysis.hardware import custom

    config = _config("t5", 16, 64, 40, 40)
    model = hf_model(config).architecture.varied({"source_len": 40}).model()
    cost = analyze(model, batch=2, seq_len=3, training="none")
    step = cost.decode()
    assert step is not None
    peak = step.inference_peak()
    assert peak is not None and peak.where == "decoder.block.0.layer.2.DenseReluDense.act"
    # the encoder's output held, the block's input (the residual), the activation's in and out
    assert peak.bytes == 4 * (2 * 40 * 16 + 2 * 16 + 2 * 2 * 64)
    lines = {
        line.label: line
        for line in Fit(model, custom(1.0), dtype="fp32", batch=2, seq_len=3).account().lines
    }
    assert lines["activations, decode step"].bytes == peak.bytes
    assert "the encoder's output (2, 40, 16) held" in lines["activations, decode step"].rule
