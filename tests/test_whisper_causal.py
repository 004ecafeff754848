"""WhisperForCausalLM (``shapecalc whisper --head causal``; ``hf`` of a whisper config whose
architectures names it): the decoder alone in a WhisperDecoderWrapper (``model.decoder``)
and ``proj_out``, tied to its ``embed_tokens``, against transformers' class: names and
shapes of drawn configs on the meta device, the FLOPs of a forward and of each decode step
against FlopCounterMode, the cache a real forward with use_cache=True holds (a
DynamicCache of self-attention keys and values: the class's own forward gives no encoder
output, so its layers' cross-attention is held but not run), ``inspect`` of a saved one,
and the command at 80 and 200 columns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_checkpoint import check_folder
from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.core.errors import ShapeError
from shapecalc.layers.functional import ScaledDotProductAttention
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode

CLASS = "WhisperForCausalLM"


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """A tiny whisper config naming WhisperForCausalLM: the decoder's sizes its own or
    the encoder's (left out), tied or not."""
    heads = draw(st.integers(1, 3))
    decoder_heads = draw(st.integers(1, 3))
    config: dict[str, Any] = {
        "model_type": "whisper",
        "architectures": [CLASS],
        "vocab_size": draw(st.integers(2, 50)),
        "d_model": heads * decoder_heads * 2 * draw(st.integers(1, 2)),
        "encoder_layers": draw(st.integers(1, 3)),
        "encoder_attention_heads": heads,
        "encoder_ffn_dim": draw(st.integers(1, 24)),
        "num_mel_bins": draw(st.integers(1, 8)),
        "max_source_positions": draw(st.integers(1, 8)),
        "max_target_positions": draw(st.integers(8, 16)),
        "pad_token_id": 0,
        "tie_word_embeddings": draw(st.booleans()),
    }
    for key, value in (
        ("decoder_layers", draw(st.integers(1, 3))),
        ("decoder_attention_heads", decoder_heads),
        ("decoder_ffn_dim", draw(st.integers(1, 24))),
    ):
        if draw(st.booleans()) or key == "decoder_attention_heads":
            config[key] = value
    return config


def real(config: dict[str, Any], device: str = "meta") -> Any:
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    conf = transformers.WhisperConfig(**fields)
    if device == "cpu":
        torch.manual_seed(0)
        return transformers.WhisperForCausalLM._from_config(conf, attn_implementation="eager")
    with torch.device("meta"):
        return transformers.WhisperForCausalLM(conf)


def held_bytes(cache: Any) -> int:
    return sum(x.numel() * x.element_size() for c in cache.layers for x in (c.keys, c.values))


@settings(max_examples=12, deadline=None)
@given(config=configs())
def test_drawn_configs_are_the_class(config: dict[str, Any]) -> None:
    found = hf_model(config)
    assert found.class_name == CLASS
    model = found.model()
    theirs = real(config)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert model.total == sum(p.numel() for p in theirs.parameters())
    assert all(n.startswith(("model.decoder.", "proj_out.")) for n, _ in model.named_parameters())
    assert ("proj_out.weight" in model.ties) == config["tie_word_embeddings"]


@settings(max_examples=5, deadline=None)
@given(config=configs(), batch=st.integers(1, 2), prompt=st.integers(1, 4))
def test_forward_decode_steps_and_cache_are_what_transformers_runs(
    config: dict[str, Any], batch: int, prompt: int
) -> None:
    """A prompt of T tokens with use_cache=True, then decode steps: each call's FLOPs
    against FlopCounterMode (the step: the rows of one token, each self-attention over
    the keys held), and the cache after each call, a DynamicCache of self-attention keys
    and values only, against the inference state of a forward over as many tokens."""
    model = hf_model(config).model()
    theirs = real(config, "cpu").eval()
    vocab = config["vocab_size"]
    ids = torch.randint(0, vocab, (batch, prompt))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = theirs(input_ids=ids, use_cache=True)
    cost = analyze(model, batch=batch, seq_len=prompt, training="none")
    assert counter.get_total_flops() == 2 * cost.macs
    cache = out.past_key_values
    assert type(cache) is transformers.DynamicCache
    assert held_bytes(cache) == cost.state_bytes
    assert not any(s.kind == "cross attention" for _, s in cost.state)
    one = analyze(model, batch=batch, seq_len=1, training="none")
    for context in range(prompt + 1, prompt + 4):
        token = torch.randint(0, vocab, (batch, 1))
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = theirs(input_ids=token, cache=cache, use_cache=True)
        step = 0
        for row in one.layers:
            if isinstance(row.spec, ScaledDotProductAttention):  # over the keys held
                q, k, v = row.inputs
                keys, values = (*k[:-2], context, k[-1]), (*v[:-2], context, v[-1])
                step += row.calls * row.spec.work(q, keys, values).macs
            else:
                step += row.macs
        assert counter.get_total_flops() == 2 * step, context
        cache = out.past_key_values
        state = analyze(model, batch=batch, seq_len=context, training="none").state_bytes
        assert held_bytes(cache) == state, context


TINY: dict[str, Any] = {
    "model_type": "whisper",
    "architectures": [CLASS],
    "vocab_size": 40,
    "d_model": 16,
    "encoder_layers": 2,
    "decoder_layers": 3,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 24,
    "decoder_ffn_dim": 20,
    "num_mel_bins": 8,
    "max_source_positions": 6,
    "max_target_positions": 12,
    "pad_token_id": 0,
}


def test_a_forward_beyond_the_positions_is_refused_as_transformers_refuses_it() -> None:
    config = {**TINY, "max_target_positions": 8}
    with pytest.raises(IndexError):
        real(config, "cpu")(input_ids=torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ShapeError, match="position 8 is beyond the 8 positions"):
        analyze(hf_model(config).model(), batch=1, seq_len=9)


def test_inspect_reads_a_saved_one_and_hf_serves_its_config(tmp_path: Path) -> None:
    """save_pretrained writes model.decoder.* and leaves proj_out out (tied); its config
    names the class (and says is_encoder_decoder false)."""
    real(TINY, "cpu").save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [CLASS]
    check = check_folder(str(tmp_path))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape, check.wrong_dtype)
    assert check.stored_total == check.expected_total == hf_model(TINY).model().total
    result = run(["inspect", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "agrees with its config" in result.stdout
    served = run(["hf", str(tmp_path), "--verify"], 200)
    assert served.exit_code == 0, served.output
    assert f"Verified against transformers {transformers.__version__} {CLASS}" in served.stderr
    assert "model.decoder.layers.{0..2}.encoder_attn.k_proj.weight" in served.stdout


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_fits(width: int) -> None:
    args = ["whisper", "--head", "causal", "--vocab", "51865", "--hidden", "384"]
    args += ["--layers", "4", "--heads", "6", "--seq-len", "16", "--flops", "--memory"]
    result = run(args, width)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= width
    text = " ".join(result.stdout.split())
    assert "model.decoder.layers.{0..3}.encoder_attn.q_proj.weight" in text
    assert "model.encoder" not in text and "generating" not in text
    config = {**TINY, "decoder_layers": 4, "vocab_size": 51865, "d_model": 384}
    config.update(decoder_attention_heads=6, decoder_ffn_dim=1536, max_target_positions=448)
    assert f"{hf_model(config).model().total:,}" in result.stdout
