"""Whisper (``shapecalc whisper``, ``shapecalc hf``) against transformers' classes: drawn
tiny configs read through ``shapecalc hf`` (every name, shape, which tensors are trained,
the total, on the meta device), the published whisper-tiny, whisper-base and
whisper-large-v3 configs, every module's FLOPs against FlopCounterMode over a window of
mel frames and a target of its own length, the caches against ``EncoderDecoderCache``
step by step, ``inspect`` of a saved tiny model, and the refusals of bad input in one
line."""

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
from shapecalc.analysis.generation import generation
from shapecalc.core.errors import ShapecalcError, ShapeError
from tests.hf_configs import hf_configs
from tests.test_cli import run
from tests.test_t5 import expanded

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode


def built(config: dict[str, Any], device: str = "meta", **options: Any) -> Any:
    transformers.logging.set_verbosity_error()
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    conf = transformers.WhisperConfig(**fields)
    name = (config.get("architectures") or ["WhisperForConditionalGeneration"])[0]
    cls = getattr(transformers, name)
    if device == "cpu":
        torch.manual_seed(0)
        return cls._from_config(conf, **options)
    with torch.device("meta"):
        return cls(conf)


def check_config(config: dict[str, Any]) -> int:
    """Every name and shape, the buffers, the total and the trained tensors equal the
    class's; the class's total."""
    model = hf_model(config).model()
    theirs = built(config)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert model.named_buffers() == [(n, tuple(b.shape)) for n, b in theirs.named_buffers()]
    total = sum(p.numel() for p in theirs.parameters())
    assert model.total == total
    assert model.trainable == sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    return total


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_drawn_configs_equal_transformers(data: st.DataObject) -> None:
    check_config(data.draw(hf_configs("whisper"), label="config"))


#: openai/whisper-tiny: d_model 384, 4 + 4 layers of 6 heads, ffn 1536, 80 mel bins
WHISPER_TINY = {
    "model_type": "whisper",
    "architectures": ["WhisperForConditionalGeneration"],
    "vocab_size": 51865,
    "num_mel_bins": 80,
    "d_model": 384,
    "encoder_layers": 4,
    "decoder_layers": 4,
    "encoder_attention_heads": 6,
    "decoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_ffn_dim": 1536,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "activation_function": "gelu",
    "scale_embedding": False,
    "pad_token_id": 50257,
    "decoder_start_token_id": 50258,
    "use_weighted_layer_sum": False,
    "classifier_proj_size": 256,
    "apply_spec_augment": False,
    "mask_time_prob": 0.05,
    "median_filter_width": 7,
}
#: openai/whisper-base: d_model 512, 6 + 6 layers of 8 heads, ffn 2048
WHISPER_BASE = {
    **WHISPER_TINY,
    "d_model": 512,
    "encoder_layers": 6,
    "decoder_layers": 6,
    "encoder_attention_heads": 8,
    "decoder_attention_heads": 8,
    "encoder_ffn_dim": 2048,
    "decoder_ffn_dim": 2048,
}
#: openai/whisper-large-v3: d_model 1280, 32 + 32 layers of 20 heads, ffn 5120, 128 mel
#: bins, a vocabulary of 51,866 (its config also says num_hidden_layers)
WHISPER_LARGE_V3 = {
    **WHISPER_TINY,
    "vocab_size": 51866,
    "num_mel_bins": 128,
    "d_model": 1280,
    "encoder_layers": 32,
    "num_hidden_layers": 32,
    "decoder_layers": 32,
    "encoder_attention_heads": 20,
    "decoder_attention_heads": 20,
    "encoder_ffn_dim": 5120,
    "decoder_ffn_dim": 5120,
    "pad_token_id": 50256,
}


@pytest.mark.parametrize(
    "config",
    [
        WHISPER_TINY,
        WHISPER_BASE,
        WHISPER_LARGE_V3,
        {**WHISPER_TINY, "architectures": ["WhisperModel"]},
        {**WHISPER_BASE, "tie_word_embeddings": False},
    ],
)
def test_published_configs(config: dict[str, Any]) -> None:
    total = check_config(config)
    # the command's flags say the same model as the file
    arguments = hf_model(config).architecture.arguments()
    assert hf_model(config).architecture.varied(arguments).model().total == total


def test_the_command_counts_whisper_large_v3() -> None:
    """The same model from flags: shapecalc whisper with large-v3's sizes."""
    total = check_config(WHISPER_LARGE_V3)
    args = "--vocab 51866 --hidden 1280 --layers 32 --heads 20 --mel-bins 128"
    result = run(["whisper", *args.split(), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"] == total


TINY = {
    "model_type": "whisper",
    "vocab_size": 40,
    "num_mel_bins": 4,
    "d_model": 12,
    "encoder_layers": 3,
    "decoder_layers": 2,
    "encoder_attention_heads": 3,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 20,
    "decoder_ffn_dim": 16,
    "max_source_positions": 6,
    "max_target_positions": 10,
    "pad_token_id": 1,
}


def features(batch: int, config: dict[str, Any] = TINY) -> Any:
    """A window of mel frames: 2·P of them, as the encoder takes."""
    return torch.randn(batch, config["num_mel_bins"], 2 * config["max_source_positions"])


@pytest.mark.parametrize(
    "config",
    [
        TINY,
        {**TINY, "tie_word_embeddings": False, "activation_function": "relu"},
        {**TINY, "architectures": ["WhisperModel"]},
    ],
)
def test_every_module_flops_equal_flop_counter_mode(config: dict[str, Any]) -> None:
    model = hf_model(config).model()
    target, batch = 5, 2
    theirs = built(config, "cpu", attn_implementation="eager").eval()
    cost = analyze(model, batch=batch, seq_len=target)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        theirs(
            input_features=features(batch),
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
    assert any(name.endswith("encoder.conv2") for name in counts)  # the stem is counted


@pytest.mark.parametrize("weighted", [False, True])
def test_audio_classification_flops_equal_flop_counter_mode(weighted: bool) -> None:
    """WhisperForAudioClassification: the encoder, projector, the average and classifier;
    layer_weights (L + 1) with use_weighted_layer_sum, its sum elementwise (no FLOPs)."""
    config = {
        **TINY,
        "architectures": ["WhisperForAudioClassification"],
        "num_labels": 5,
        "classifier_proj_size": 7,
        "use_weighted_layer_sum": weighted,
    }
    check_config(config)
    model = hf_model(config).model()
    weights = ("layer_weights", (TINY["encoder_layers"] + 1,))
    assert (weights in model.named_parameters()) == weighted
    theirs = built(config, "cpu", attn_implementation="eager").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        logits = theirs(input_features=features(3)).logits
    assert tuple(logits.shape) == (3, 5)
    cost = analyze(model, batch=3)
    assert counter.get_total_flops() == 2 * cost.macs
    assert cost.layers[-1].outputs == ((3, 5),)


@pytest.mark.parametrize("tie", [True, False])
def test_generation_and_caches_step_by_step(tie: bool) -> None:
    """The encoder once over the window, then decode steps: FLOPs of each against
    FlopCounterMode, the self-attention cache growing by a token's keys and values, the
    cross-attention cache fixed at the encoder's P positions, as EncoderDecoderCache holds
    them after a forward with use_cache=True."""
    config = {**TINY, "tie_word_embeddings": tie}
    batch = 2
    model = hf_model(config).model()
    theirs = built(config, "cpu", attn_implementation="eager").eval()

    def flops(call: Any) -> tuple[int, Any]:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = call()
        return int(counter.get_total_flops()), out

    encoder = theirs.get_encoder()
    spent, encoded = flops(lambda: encoder(input_features=features(batch)))
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
    # one forward with use_cache=True over T target tokens holds what the state says
    with torch.no_grad():
        out = theirs(
            input_features=features(batch),
            decoder_input_ids=torch.randint(2, 40, (batch, 4)),
            use_cache=True,
        )
    cache = out.past_key_values
    assert isinstance(cache, transformers.EncoderDecoderCache)
    kept = sum(
        x.numel() * x.element_size()
        for c in (cache.self_attention_cache, cache.cross_attention_cache)
        for layer in c.layers
        for x in (layer.keys, layer.values)
    )
    assert analyze(model, batch=batch, seq_len=4, training="none").state_bytes == kept


def test_a_saved_tiny_whisper_agrees_with_its_config(tmp_path: Path) -> None:
    """save_pretrained writes the encoder's frozen positions and leaves out proj_out (tied)."""
    built(TINY, "cpu").save_pretrained(tmp_path)
    check = check_folder(str(tmp_path))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape, check.wrong_dtype)
    assert check.stored_total == check.expected_total
    result = run(["inspect", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "agrees with its config" in result.stdout


def test_a_window_of_another_length_is_refused_as_transformers_refuses_it() -> None:
    """The encoder takes exactly 2·P frames: transformers raises, and so does the count."""
    model = hf_model(TINY).model()
    theirs = built(TINY, "cpu").eval()
    for frames in (10, 14):  # 2·P = 12
        shapes = ((2, 4, frames), (2, 5))
        with pytest.raises(ValueError, match="12"), torch.no_grad():
            theirs(
                input_features=torch.randn(*shapes[0]),
                decoder_input_ids=torch.randint(2, 40, (2, 5)),
            )
        with pytest.raises(ShapeError) as err:
            analyze(model, inputs=shapes)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"encoder_attention_heads": 5}, "encoder_attention_heads"),
        ({"decoder_attention_heads": 5}, "decoder_attention_heads"),
        ({"activation_function": "swiglu"}, "activation_function"),
        ({"pad_token_id": 40}, "pad_token_id"),  # beyond the 40 tokens
        ({"max_source_positions": 0}, "max_source_positions"),
        ({"num_mel_bins": 0}, "num_mel_bins"),
        ({"classifier_dropout_rate": 0.1}, "classifier_dropout_rate"),  # no such field
    ],
)
def test_bad_configs_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ShapecalcError) as err:
        hf_model({**TINY, **change})
    assert err.value.field == field
    assert "\n" not in str(err.value)


def test_pad_token_left_to_the_default_must_be_a_token() -> None:
    """WhisperConfig's pad_token_id, 50256, is no token of a vocabulary of 40: torch's
    nn.Embedding refuses it, and so does the reader, naming the field."""
    config = {k: v for k, v in TINY.items() if k != "pad_token_id"}
    with pytest.raises(AssertionError):
        built(config)
    with pytest.raises(ShapecalcError) as err:
        hf_model(config)
    assert err.value.field == "pad_token_id"


@pytest.mark.parametrize(
    ("arguments", "flag"),
    [
        (["--heads", "5"], "--heads"),
        (["--decoder-heads", "5"], "--decoder-heads"),
        (["--activation", "swiglu"], "--activation"),
        (["--mel-bins", "0"], "--mel-bins"),
        (["--seq-len", "20", "--flops"], "--seq-len"),  # beyond the 16 target positions
        (["--labels", "5"], "--labels"),  # a classification head's
        (["--weighted-layer-sum"], "--weighted-layer-sum"),
    ],
)
def test_bad_flags_are_one_line(arguments: list[str], flag: str) -> None:
    result = run(
        [
            "whisper",
            *("--vocab", "100", "--hidden", "16", "--layers", "2", "--heads", "2"),
            *("--target-positions", "16", "--source-positions", "8"),
            *arguments,
        ]
    )
    assert result.exit_code == 2, result.output
    assert flag in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if "Error" in line]) == 1


def test_a_decoder_beyond_its_positions_is_refused_as_transformers_refuses_it() -> None:
    """More target tokens than max_target_positions: the position table has no row."""
    theirs = built(TINY, "cpu").eval()
    with pytest.raises(IndexError), torch.no_grad():
        theirs(input_features=features(1), decoder_input_ids=torch.randint(2, 40, (1, 11)))
    with pytest.raises(ShapeError) as err:
        analyze(hf_model(TINY).model(), batch=1, seq_len=11)
    assert err.value.field == "seq_len"


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_fits(width: int) -> None:
    args = "--vocab 51866 --hidden 1280 --layers 32 --heads 20 --mel-bins 128"
    result = run(["whisper", *args.split(), "--seq-len", "64", "--memory", "--flops"], width)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= width
    assert "generating" in result.output
    assert "Trainable" in result.output  # the encoder's positions are never trained


def test_generation_formulas_evaluate_to_the_numbers() -> None:
    """With the sizes as letters the stem's 2·P frames come out as P positions, and each
    formula of generation evaluates to the count of the model with numbers."""
    import shapecalc

    letters = {
        "vocab": "V",
        "hidden": "H",
        "layers": "L",
        "heads": "A",
        "mel_bins": "N",
        "source_positions": "P",
        "target_positions": "C",
    }
    g = generation(shapecalc.whisper(**letters), batch="B", context="t")
    assert str(g.cross_bytes) == "8·L·D·B·P·A"
    numbers = {"V": 40, "H": 12, "L": 3, "A": 3, "N": 4, "P": 6, "C": 10}
    model = shapecalc.whisper(**{k: numbers[v] for k, v in letters.items()})
    for t in (1, 4):
        concrete = generation(model, batch=2, context=t)
        values = {**numbers, "D": 4, "B": 2, "t": t}
        for field in ("encoder_flops", "cross_flops", "step_flops", "cross_bytes", "token_bytes"):
            assert getattr(g, field).subs(values) == getattr(concrete, field), field


@pytest.mark.parametrize(
    "architecture",
    ["WhisperForConditionalGeneration", "WhisperModel", "WhisperForAudioClassification"],
)
def test_the_classification_fields_are_read_only_with_that_head(architecture: str) -> None:
    """A config's classifier_proj_size, num_labels and use_weighted_layer_sum size the
    audio classification head alone: transformers builds the other classes whatever they
    say, and so do we."""
    config = {
        "model_type": "whisper",
        "architectures": [architecture],
        "vocab_size": 100,
        "d_model": 16,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 32,
        "decoder_ffn_dim": 32,
        "num_mel_bins": 8,
        "max_source_positions": 10,
        "max_target_positions": 12,
        "pad_token_id": 99,
        "classifier_proj_size": 24,
        "num_labels": 5,
        "use_weighted_layer_sum": True,
    }
    check_config(config)
