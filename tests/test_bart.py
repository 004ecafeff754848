"""BART and mBART (``shapecalc bart``, ``shapecalc hf``) against transformers' classes:
drawn tiny configs of both types read through ``shapecalc hf`` (every name, shape, the
buffer and the total, on the meta device), the published bart-large and mbart-large-50
configs, every module's FLOPs against FlopCounterMode over a source and a target of their
own lengths, the caches against ``EncoderDecoderCache``, generation step by step, and the
refusals of bad input in one line."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.analysis.generation import generation
from shapecalc.core.errors import ShapecalcError
from tests.hf_configs import hf_configs
from tests.test_cli import run
from tests.test_t5 import expanded

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode

DEFAULT_CLASS = {"bart": "BartForConditionalGeneration", "mbart": "MBartForConditionalGeneration"}


def built(config: dict[str, Any], device: str = "meta", **options: Any) -> Any:
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    conf = transformers.AutoConfig.for_model(config["model_type"], **fields)
    name = (config.get("architectures") or [DEFAULT_CLASS[config["model_type"]]])[0]
    cls = getattr(transformers, name)
    if device == "cpu":
        return cls._from_config(conf, **options)
    with torch.device("meta"):
        return cls(conf)


def check_config(config: dict[str, Any]) -> None:
    model = hf_model(config).model()
    theirs = built(config)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert model.named_buffers() == [(n, tuple(b.shape)) for n, b in theirs.named_buffers()]
    assert model.total == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize("model_type", ["bart", "mbart"])
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_drawn_configs_equal_transformers(model_type: str, data: st.DataObject) -> None:
    check_config(data.draw(hf_configs(model_type), label="config"))


#: facebook/bart-large: BartConfig's defaults (d_model 1024, 12 + 12 layers of 16 heads,
#: ffn 4096, 1024 positions, vocab 50265)
BART_LARGE = {
    "model_type": "bart",
    "architectures": ["BartForConditionalGeneration"],
    "vocab_size": 50265,
    "d_model": 1024,
    "encoder_layers": 12,
    "decoder_layers": 12,
    "encoder_attention_heads": 16,
    "decoder_attention_heads": 16,
    "encoder_ffn_dim": 4096,
    "decoder_ffn_dim": 4096,
    "max_position_embeddings": 1024,
    "activation_function": "gelu",
    "scale_embedding": False,
    "pad_token_id": 1,
}
#: facebook/mbart-large-50: mBART's layout, a vocabulary of 250,054, embeddings scaled
MBART_LARGE_50 = {
    **BART_LARGE,
    "model_type": "mbart",
    "architectures": ["MBartForConditionalGeneration"],
    "vocab_size": 250054,
    "activation_function": "relu",
    "scale_embedding": True,
    "normalize_before": True,
    "add_final_layer_norm": True,
}


@pytest.mark.parametrize(
    ("config", "total"),
    [
        (BART_LARGE, 406_291_456),
        (MBART_LARGE_50, 610_879_488),
        ({**BART_LARGE, "architectures": ["BartModel"]}, None),
        ({**MBART_LARGE_50, "tie_word_embeddings": False}, None),
    ],
)
def test_published_configs(config: dict[str, Any], total: int | None) -> None:
    check_config(config)
    if total is not None:
        assert hf_model(config).model().total == total


TINY = {
    "model_type": "bart",
    "vocab_size": 40,
    "d_model": 12,
    "encoder_layers": 3,
    "decoder_layers": 2,
    "encoder_attention_heads": 3,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 20,
    "decoder_ffn_dim": 16,
    "max_position_embeddings": 16,
}


@pytest.mark.parametrize(
    "config",
    [
        TINY,
        {**TINY, "model_type": "mbart", "tie_word_embeddings": False},
        {**TINY, "architectures": ["BartModel"]},
    ],
)
def test_every_module_flops_equal_flop_counter_mode(config: dict[str, Any]) -> None:
    found = hf_model(config)
    source, target, batch = 7, 5, 2
    model = found.architecture.varied({"source_len": source}).model()
    theirs = built(config, "cpu", attn_implementation="eager").eval()
    cost = analyze(model, batch=batch, seq_len=target)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        theirs(
            input_ids=torch.randint(2, 40, (batch, source)),
            decoder_input_ids=torch.randint(2, 40, (batch, target)),
            use_cache=False,
        )
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    mine: dict[str, int] = {}
    for layer in cost.layers:
        names = expanded(layer.name.split(" (")[0])
        for name in names:
            parts = name.split(".")
            for k in range(1, len(parts) + 1):
                prefix = ".".join(parts[:k])
                mine[prefix] = mine.get(prefix, 0) + 2 * layer.macs // len(names)
    checked = 0
    for name, flops in counts.items():
        if name == "Global":
            assert flops == 2 * cost.macs
            continue
        inside = name.split(".", 1)[1] if "." in name else None
        if inside is None:
            assert name == type(theirs).__name__
            continue
        assert mine.get(inside, 0) == flops, inside
        checked += 1
    assert checked >= 6 * config["encoder_layers"]


@pytest.mark.parametrize("model_type", ["bart", "mbart"])
def test_generation_and_caches_step_by_step(model_type: str) -> None:
    """The encoder once, then decode steps: FLOPs of each against FlopCounterMode, the
    self-attention cache growing by a token's keys and values, the cross-attention
    cache fixed at the source's, as EncoderDecoderCache holds them."""
    config = {**TINY, "model_type": model_type}
    batch, source = 2, 6
    model = hf_model(config).architecture.varied({"source_len": source}).model()
    theirs = built(config, "cpu", attn_implementation="eager").eval()

    def flops(call: Any) -> tuple[int, Any]:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = call()
        return int(counter.get_total_flops()), out

    encoder = theirs.get_encoder()
    spent, encoded = flops(lambda: encoder(input_ids=torch.randint(2, 40, (batch, source))))
    assert spent == generation(model, batch=batch, context=1).encoder_flops
    dynamic = transformers.DynamicCache
    cache = transformers.EncoderDecoderCache(dynamic(), dynamic())
    for t in range(1, 5):
        ids = torch.randint(2, 40, (batch, 1))
        spent, out = flops(
            lambda ids=ids, cache=cache: theirs(
                encoder_outputs=(encoded.last_hidden_state,),
                decoder_input_ids=ids,
                cache=cache,
                use_cache=True,
            )
        )
        g = generation(model, batch=batch, context=t)
        assert spent == g.step_flops + (g.cross_flops if t == 1 else 0), t
        cache = out.past_key_values
        held = [
            sum(
                x.numel() * x.element_size()
                for layer in c.layers
                for x in (layer.keys, layer.values)
            )
            for c in (cache.self_attention_cache, cache.cross_attention_cache)
        ]
        assert held == [t * g.token_bytes, g.cross_bytes]
    # the forward's state: T target tokens' keys and values, and the source's
    cost = analyze(model, batch=batch, seq_len=4, training="none")
    assert cost.state_bytes == sum(held)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"encoder_attention_heads": 5}, "encoder_attention_heads"),
        ({"decoder_attention_heads": 5}, "decoder_attention_heads"),
        ({"activation_function": "swiglu"}, "activation_function"),
        ({"vocab_size": 1}, "pad_token_id"),  # the padding id (1) must be a token
        ({"max_position_embeddings": 0}, "max_position_embeddings"),
    ],
)
def test_bad_configs_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ShapecalcError) as err:
        hf_model({**TINY, **change})
    assert err.value.field == field
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("arguments", "flag"),
    [
        (["--heads", "5"], "--heads"),
        (["--decoder-heads", "5"], "--decoder-heads"),
        (["--layout", "t5"], "--layout"),
        (["--seq-len", "20", "--flops"], "--seq-len"),
    ],
)
def test_bad_flags_are_one_line(arguments: list[str], flag: str) -> None:
    result = run(
        [
            "bart",
            "--vocab",
            "100",
            "--hidden",
            "16",
            "--layers",
            "2",
            "--heads",
            "2",
            "--context",
            "16",
            *arguments,
        ]
    )
    assert result.exit_code == 2, result.output
    assert flag in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_fits(width: int) -> None:
    args = [
        "bart",
        *[
            "--vocab",
            "50265",
            "--hidden",
            "1024",
            "--layers",
            "12",
            "--heads",
            "16",
            "--intermediate",
            "4096",
        ],
    ]
    result = run(
        [*args, "--layout", "mbart", "--source-len", "512", "--seq-len", "64", "--memory"], width
    )
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= width
    assert "generating" in result.output
