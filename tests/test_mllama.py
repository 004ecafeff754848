"""Mllama, Llama 3.2 Vision (shapecalc/architectures/mllama.py on _composite.py): the
published sizes and drawn configs against transformers' classes on the meta device, the
FLOPs of the vision model and of generating against FlopCounterMode on CPU, what the
cache holds per layer after a real forward, a saved checkpoint, and the refusals.

Llama-3.2-11B-Vision-Instruct's config.json is written from its published values (the
Hub file's text_config and vision_config sizes: tiles of 560 pixels) over the config
classes' defaults (configuration_mllama.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc.adapters.hf_config import from_hf_config, hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.analysis.generation import generation
from shapecalc.core.errors import InvalidArgumentError
from tests.cache_truth import cache_layers, ours
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

TEXT_11B: dict[str, Any] = {
    "model_type": "mllama_text_model",
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 40,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "pad_token_id": 128004,
}
VISION_11B: dict[str, Any] = {
    "model_type": "mllama_vision_model",
    "attention_heads": 16,
    "hidden_act": "gelu",
    "hidden_size": 1280,
    "image_size": 560,
    "intermediate_size": 5120,
    "max_num_tiles": 4,
    "num_channels": 3,
    "num_global_layers": 8,
    "num_hidden_layers": 32,
    "patch_size": 14,
    "norm_eps": 1e-05,
    "intermediate_layers_indices": [3, 7, 15, 23, 30],
    "supported_aspect_ratios": [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
    "vision_output_dim": 7680,
}
LLAMA_32_11B_VISION: dict[str, Any] = {
    "architectures": ["MllamaForConditionalGeneration"],
    "model_type": "mllama",
    "image_token_index": 128256,
    "text_config": TEXT_11B,
    "vision_config": VISION_11B,
}
PARTS = ("vision_model", "language_model", "multi_modal_projector")


def _transformers_config(config: dict[str, Any]) -> Any:
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    return transformers.MllamaConfig(**fields)


def _on_meta(config: dict[str, Any]) -> Any:
    name = (config.get("architectures") or ["MllamaForConditionalGeneration"])[0]
    with torch.device("meta"):
        return getattr(transformers, name)(_transformers_config(config))


def test_the_published_config_is_counted_as_transformers_builds_it() -> None:
    model = from_hf_config(LLAMA_32_11B_VISION)
    module = _on_meta(LLAMA_32_11B_VISION)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in module.named_parameters()]
    total = sum(p.numel() for p in module.parameters())
    assert model.total == total
    for part in PARTS:
        held = sum(p.numel() for p in getattr(module.model, part).parameters())
        assert model.subtotal(f"model.{part}") == held
        assert any(
            line.startswith(f"model.{part} ") and f"{held:,}" in line for line in model.notes
        )


# -- tiny configs --------------------------------------------------------------------------
def tiny(**changes: Any) -> dict[str, Any]:
    """A small Mllama config: text_config and vision_config changed by ``changes``
    (``text_<field>``, ``vision_<field>``, or a top-level field)."""
    text: dict[str, Any] = {
        "model_type": "mllama_text_model",
        "vocab_size": 40,
        "hidden_size": 16,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 24,
        "cross_attention_layers": [1, 3],
        "pad_token_id": 0,
    }
    vision: dict[str, Any] = {
        "model_type": "mllama_vision_model",
        "hidden_size": 8,
        "num_hidden_layers": 3,
        "num_global_layers": 2,
        "attention_heads": 2,
        "intermediate_size": 12,
        "image_size": 6,
        "patch_size": 2,
        "max_num_tiles": 2,
        "vision_output_dim": 24,
        "intermediate_layers_indices": [0, 2],
        "supported_aspect_ratios": [[1, 1], [1, 2]],
    }
    config: dict[str, Any] = {"model_type": "mllama", "text_config": text, "vision_config": vision}
    for key, value in changes.items():
        if key.startswith("text_"):
            text[key.removeprefix("text_")] = value
        elif key.startswith("vision_"):
            vision[key.removeprefix("vision_")] = value
        else:
            config[key] = value
    return config


@st.composite
def drawn(draw: st.DrawFn) -> dict[str, Any]:
    heads = draw(st.integers(1, 4))
    kv = draw(st.sampled_from([k for k in (1, 2, 4) if heads % k == 0]))
    layers = draw(st.integers(2, 6))  # layer 0 is no cross-attention layer (refused)
    cross = draw(st.lists(st.integers(1, layers - 1), min_size=1, max_size=3, unique=True))
    vision_heads = draw(st.integers(1, 3))
    vision_hidden = vision_heads * draw(st.integers(1, 4))
    vision_layers = draw(st.integers(1, 4))
    features = draw(
        st.lists(st.integers(-vision_layers, vision_layers - 1), min_size=1, max_size=3)
    )
    patch = draw(st.integers(1, 3))
    tiles = draw(st.integers(1, 3))
    ratios = draw(st.integers(1, 4))
    return tiny(
        architectures=[draw(st.sampled_from(["MllamaForConditionalGeneration", "MllamaModel"]))],
        text_vocab_size=draw(st.integers(2, 50)),
        text_hidden_size=2 * heads * draw(st.integers(1, 3)),
        text_num_hidden_layers=layers,
        text_num_attention_heads=heads,
        text_num_key_value_heads=kv,
        text_intermediate_size=draw(st.integers(1, 20)),
        text_cross_attention_layers=cross,
        vision_hidden_size=vision_hidden,
        vision_attention_heads=vision_heads,
        vision_num_hidden_layers=vision_layers,
        vision_num_global_layers=draw(st.integers(1, 3)),
        vision_intermediate_size=draw(st.integers(1, 16)),
        vision_num_channels=draw(st.integers(1, 3)),
        vision_patch_size=patch,
        vision_image_size=patch * draw(st.integers(1, 4)) + draw(st.integers(0, patch - 1)),
        vision_max_num_tiles=tiles,
        vision_intermediate_layers_indices=features,
        vision_vision_output_dim=vision_hidden * (len(features) + 1),
        vision_supported_aspect_ratios=[[1, i + 1] for i in range(ratios)],
    )


@settings(max_examples=10, deadline=None)
@given(config=drawn())
def test_drawn_configs_equal_transformers_on_the_meta_device(config: dict[str, Any]) -> None:
    model = hf_model(config).model()
    module = _on_meta(config)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in module.named_parameters()]
    assert model.total == sum(p.numel() for p in module.parameters())


# -- FLOPs and the cache, run on CPU ------------------------------------------------------------
def _built(config: dict[str, Any]) -> Any:
    conf = _transformers_config(config)
    conf._attn_implementation = "eager"
    conf.text_config._attn_implementation = "eager"
    conf.vision_config._attn_implementation = "eager"
    torch.manual_seed(0)
    return transformers.MllamaForConditionalGeneration(conf).eval()


def _image(config: dict[str, Any], batch: int) -> dict[str, Any]:
    vision = config["vision_config"]
    tiles, side = vision["max_num_tiles"], vision["image_size"]
    channels = vision.get("num_channels", 3)
    ratios = len(vision["supported_aspect_ratios"])
    return {
        "pixel_values": torch.randn(batch, 1, tiles, channels, side, side),
        "aspect_ratio_ids": torch.randint(1, ratios + 1, (batch, 1)),
        "aspect_ratio_mask": torch.ones(batch, 1, tiles, dtype=torch.long),
    }


def _counted(call: Any) -> tuple[int, Any]:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), warnings.catch_warnings(), FlopCounterMode(display=False) as counter:
        warnings.simplefilter("ignore")
        out = call()
    return int(counter.get_total_flops()), out


CONFIGS = [
    tiny(),
    tiny(
        text_num_key_value_heads=4,
        text_cross_attention_layers=[2],
        vision_image_size=8,
        vision_max_num_tiles=3,
        vision_intermediate_layers_indices=[-1],
        vision_vision_output_dim=16,
    ),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_the_cost_of_an_image_is_what_flop_counter_mode_counts(config: dict[str, Any]) -> None:
    """The vision model on one image of max_num_tiles tiles and the projector, against
    the counter on transformers' modules: the flow's products, and the aspect-ratio
    mask's outer product (_prepare_aspect_ratio_attention_mask, a matmul)."""
    model = hf_model(config).model()
    mllama = model.config
    module = _built(config)
    image = _image(config, 1)

    def forward() -> Any:
        states = module.model.vision_model(**image).last_hidden_state
        return module.model.multi_modal_projector(states)

    spent, out = _counted(forward)
    assert spent == mllama.image_cost()
    assert out.shape[-2] * out.shape[2] == mllama.vision_tokens()
    assert f"{spent:,} FLOPs" in " ".join(model.notes)


@pytest.mark.parametrize("config", CONFIGS)
def test_generating_and_the_cache_per_layer(config: dict[str, Any]) -> None:
    """A prompt with an image, then decode steps: the prompt's FLOPs (the vision model,
    the projector, the cross-attention keys and values, the language model on T tokens),
    each step's FLOPs, and what the cache holds per layer after each call (self-attention
    layers growing by a token, cross-attention layers at the image's tokens)."""
    batch, prompt = 2, 5
    model = hf_model(config).model()
    mllama = model.config
    module = _built(config)
    image = _image(config, batch)
    ids = torch.randint(0, config["text_config"]["vocab_size"], (batch, prompt))
    spent, out = _counted(lambda: module(input_ids=ids, use_cache=True, **image))
    cost = analyze(model, batch=batch, seq_len=prompt, training="none")
    assert spent == 2 * cost.macs
    held = cache_layers(out.past_key_values)
    counted = ours(model, batch=batch, seq_len=prompt)
    assert held == [counted[i] for i in range(len(held))]
    cross = set(config["text_config"]["cross_attention_layers"])
    g0 = generation(model, batch=batch, context=1)
    assert sum(held[i] for i in cross) == g0.cross_bytes
    cache = out.past_key_values
    for step in range(1, 4):
        token = torch.randint(0, config["text_config"]["vocab_size"], (batch, 1))
        spent, out = _counted(
            lambda token=token, cache=cache: module(input_ids=token, cache=cache, use_cache=True)
        )
        g = generation(model, batch=batch, context=prompt + step)
        assert spent == g.step_flops, step
        cache = out.past_key_values
        now = cache_layers(cache)
        grown = sum(now[i] - held[i] for i in range(len(now)) if i not in cross)
        assert grown == step * g.token_bytes
        assert [now[i] for i in sorted(cross)] == [held[i] for i in sorted(cross)]
    assert g.encoder_flops == batch * mllama.image_cost()


def test_inspect_reads_a_saved_checkpoint(tmp_path: Path) -> None:
    from shapecalc.adapters.hf_checkpoint import check_folder

    config = tiny()
    module = transformers.MllamaForConditionalGeneration(_transformers_config(config))
    module.save_pretrained(tmp_path)
    model = hf_model(config).model()
    check = check_folder(str(tmp_path))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    assert check.stored_total == model.total
    result = run(["inspect", str(tmp_path)], 80)
    assert result.exit_code == 0, result.output
    assert "agrees with its config" in result.stdout


# -- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        (
            {k: v for k, v in tiny().items() if k != "vision_config"},
            "vision_config",
            "vision_config is missing",
        ),
        (
            {k: v for k, v in tiny().items() if k != "text_config"},
            "text_config",
            "text_config is missing",
        ),
        (
            tiny(text_cross_attention_layers=[1, 4]),
            "text_config.cross_attention_layers",
            "cross_attention_layers are layers of the language model: integers in 0 .. 3",
        ),
        (
            tiny(text_cross_attention_layers=[]),
            "text_config.cross_attention_layers",
            "at least one",
        ),
        (
            tiny(text_cross_attention_layers=[0, 2]),
            "text_config.cross_attention_layers",
            "cross_attention_layers must not hold layer 0: transformers reads the cached "
            "length from layer 0, where it would be the image's, and decoding fails",
        ),
        (
            tiny(vision_vision_output_dim=32),
            "vision_config.vision_output_dim",
            "vision_output_dim must be hidden_size × (1 + len(intermediate_layers_indices))",
        ),
        (
            tiny(vision_intermediate_layers_indices=[3]),
            "vision_config.intermediate_layers_indices",
            "intermediate_layers_indices index the local transformer's layers",
        ),
        (
            tiny(vision_supported_aspect_ratios=None),
            "vision_config.max_num_tiles",
            "max_num_tiles must be 4 for the default supported_aspect_ratios",
        ),
        (
            tiny(text_pad_token_id=48),
            "text_config.pad_token_id",
            "pad_token_id must index the token embedding (vocab_size + 8)",
        ),
        (
            tiny(text_model_type="llama"),
            "text_config.model_type",
            "(it builds mllama_text_model)",
        ),
    ],
)
def test_a_config_that_cannot_be_counted_is_refused_by_name(
    config: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        hf_model(config).model()
    assert err.value.field == field
    assert words in str(err.value)
    assert "\n" not in str(err.value)


SMALL = ["--vocab", "40", "--hidden", "16", "--layers", "4", "--heads", "4", "--intermediate", "24"]


@pytest.mark.parametrize(
    ("arguments", "flag"),
    [
        (["--cross-layers", "1,4"], "--cross-layers"),
        (["--cross-layers", "0,2"], "--cross-layers"),
        (["--heads", "5"], "--heads"),
        (["--patch-size", "900"], "--patch-size"),
    ],
)
def test_bad_flags_are_one_line(arguments: list[str], flag: str) -> None:
    result = run(["mllama", *SMALL, *arguments])
    assert result.exit_code == 2, result.output
    assert flag in result.stderr and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_fits(width: int) -> None:
    cls = shapecalc.mllama
    assert cls is not None
    args = ["mllama", *SMALL, "--cross-layers", "1,3", "--seq-len", "16", "--memory", "--flops"]
    result = run(args, width)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= width
    assert "generating" in result.output and "cross attention" in result.output


@pytest.mark.parametrize("config", CONFIGS)
def test_a_decode_step_is_the_language_model_on_one_token(config: dict[str, Any]) -> None:
    """One decode step after a prompt with an image: the language model on one token,
    its cross-attention layers reading the keys and values cached at the prompt. The
    vision model and the projector do not run again, nor the cross keys' and values'
    projections (MllamaTextCrossAttention reuses the cache when no cross_attention_states
    are given): every matrix product the real step calls, by name and shape, is a row of
    the account's step and no other is."""
    from shapecalc.layers.linear import Linear
    from tests.test_encdec_step import _linear_calls
    from tests.test_t5 import expanded

    batch, prompt = 2, 5
    model = hf_model(config).model()
    step = analyze(model, batch=batch, seq_len=prompt, training="none").decode()
    assert step is not None and step.held is not None
    assert not any(
        r.name.startswith(("model.vision_model", "model.multi_modal")) for r in step.layers
    )
    module = _built(config)
    image = _image(config, batch)
    vocab = config["text_config"]["vocab_size"]
    with torch.no_grad():
        out = module(input_ids=torch.randint(0, vocab, (batch, prompt)), use_cache=True, **image)
        token = torch.randint(0, vocab, (batch, 1))
        called, _ = _linear_calls(
            module, lambda: module(input_ids=token, cache=out.past_key_values, use_cache=True)
        )
    mine = sorted(
        (name, row.inputs[0], row.outputs[0])
        for row in step.layers
        if isinstance(row.spec, Linear)
        for name in expanded(row.name)
    )
    assert called == mine


@pytest.mark.parametrize("cross", [[0], [0, 2]])
def test_a_cross_attention_layer_0_cannot_decode_in_transformers(cross: list[int]) -> None:
    """Why layer 0 is refused: transformers builds the model and runs the prompt, but its
    cache's length is read from layer 0 (MllamaTextModel.forward, cache.get_seq_length()),
    there the image's tokens, so the first decode step's mask does not fit and it fails;
    the same prompt with the cross-attention layers elsewhere decodes as a full forward."""
    config = tiny(text_cross_attention_layers=cross)
    module = _built(config)
    image = _image(config, 1)
    ids = torch.randint(4, 40, (1, 5))
    with torch.no_grad():
        out = module(input_ids=ids, use_cache=True, **image)
        assert out.past_key_values.get_seq_length() != ids.shape[1]
        token = out.logits[:, -1:].argmax(-1)
        with pytest.raises(RuntimeError, match="must match the size"):
            module(input_ids=token, cache=out.past_key_values, use_cache=True)
    fine = tiny(text_cross_attention_layers=[c + 1 for c in cross])
    module = _built(fine)
    with torch.no_grad():
        out = module(input_ids=ids, use_cache=True, **image)
        token = out.logits[:, -1:].argmax(-1)
        step = module(input_ids=token, cache=out.past_key_values, use_cache=True)
        full = module(input_ids=torch.cat([ids, token], 1), **image)
    assert torch.allclose(step.logits[:, -1], full.logits[:, -1], atol=1e-5)
    with pytest.raises(InvalidArgumentError) as err:
        hf_model(config).model()
    assert err.value.field == "text_config.cross_attention_layers" and "\n" not in str(err.value)
