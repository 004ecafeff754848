"""T5 and mT5 (``shapecalc t5``, ``shapecalc hf``) against transformers' classes: drawn
tiny configs of both types read through ``shapecalc hf`` (every name, shape and the total,
on the meta device), the published t5-base and flan-t5-xl configs, every module's FLOPs
against FlopCounterMode on a CPU forward over a source and a target of their own lengths,
the decoder's caches against the ``EncoderDecoderCache`` a real forward returns, and the
refusals of bad input in one line."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.core.errors import ShapecalcError
from shapecalc.core.tree import run_indices
from tests.hf_configs import hf_configs
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode

DEFAULT_CLASS = {
    "t5": "T5ForConditionalGeneration",
    "mt5": "MT5ForConditionalGeneration",
    "umt5": "UMT5ForConditionalGeneration",
}


def built(config: dict[str, Any], device: str = "meta", **options: Any) -> Any:
    """transformers' model of a config.json (its class, or the type's first) on the meta
    device, or on the CPU with ``options``."""
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    conf = transformers.AutoConfig.for_model(config["model_type"], **fields)
    cls = getattr(
        transformers, (config.get("architectures") or [DEFAULT_CLASS[config["model_type"]]])[0]
    )
    if device == "cpu":
        return cls._from_config(conf, **options)
    with torch.device("meta"):
        return cls(conf)


def params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


def check_config(config: dict[str, Any]) -> None:
    model = hf_model(config).model()
    theirs = built(config)
    assert model.named_parameters() == params(theirs)
    assert model.total == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize("model_type", ["t5", "mt5", "umt5"])
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_drawn_configs_equal_transformers(model_type: str, data: st.DataObject) -> None:
    check_config(data.draw(hf_configs(model_type), label="config"))


# -- published configs, written from the config classes' docs and defaults ----------------
#: t5-base: T5Config with d_model 768, d_ff 3072, 12 layers and heads (v1.0: relu)
T5_BASE = {
    "model_type": "t5",
    "architectures": ["T5ForConditionalGeneration"],
    "vocab_size": 32128,
    "d_model": 768,
    "d_kv": 64,
    "d_ff": 3072,
    "num_layers": 12,
    "num_heads": 12,
    "relative_attention_num_buckets": 32,
    "feed_forward_proj": "relu",
    "dropout_rate": 0.1,
    "layer_norm_epsilon": 1e-6,
}
#: google/flan-t5-xl: v1.1's gated-gelu, d_model 2048, d_ff 5120, 24 layers of 32 heads,
#: its head stored apart (tie_word_embeddings false; transformers 5 ties it all the same)
FLAN_T5_XL = {
    "model_type": "t5",
    "architectures": ["T5ForConditionalGeneration"],
    "vocab_size": 32128,
    "d_model": 2048,
    "d_kv": 64,
    "d_ff": 5120,
    "num_layers": 24,
    "num_decoder_layers": 24,
    "num_heads": 32,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False,
    "dropout_rate": 0.1,
}


@pytest.mark.parametrize(
    ("config", "total"),
    [
        (T5_BASE, 222_903_552),
        (FLAN_T5_XL, None),
        ({**T5_BASE, "architectures": ["T5EncoderModel"]}, None),
        ({**FLAN_T5_XL, "architectures": ["T5Model"]}, None),
        (
            {**FLAN_T5_XL, "model_type": "mt5", "architectures": ["MT5ForConditionalGeneration"]},
            None,
        ),
    ],
)
def test_published_configs(config: dict[str, Any], total: int | None) -> None:
    check_config(config)
    if total is not None:
        assert hf_model(config).model().total == total


def test_umt5_holds_a_position_bias_in_every_block() -> None:
    model = hf_model({**TINY, "model_type": "umt5"}).model()
    biased = [n for n, _ in model.named_parameters() if "relative_attention_bias" in n]
    assert len(biased) == TINY["num_layers"] + TINY["num_decoder_layers"]
    assert hf_model({**TINY, "model_type": "umt5"}).architecture.position_bias == "every"


def test_the_position_bias_is_the_first_blocks_only_and_the_embeddings_are_one() -> None:
    model = hf_model({**T5_BASE, "num_layers": 3, "num_decoder_layers": 2}).model()
    names = [n for n, _ in model.named_parameters()]
    biased = [n for n in names if "relative_attention_bias" in n]
    assert biased == [
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
        "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
    ]
    assert sum(".EncDecAttention.q." in n for n in names) == 2
    ties = dict(model.ties)
    for name in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"):
        assert ties[name] == "shared.weight"


# -- FLOPs ---------------------------------------------------------------------------------
def expanded(name: str) -> list[str]:
    """``block.{1..2}.x`` as the names of every block of the run."""
    found = re.search(r"\{\d+(?:,\d+)?\.\.\d+\}", name)
    if found is None:
        return [name]
    numbers = run_indices(found.group(0))
    assert numbers is not None, name
    return [
        n for i in numbers for n in expanded(name[: found.start()] + str(i) + name[found.end() :])
    ]


TINY = {
    "model_type": "t5",
    "vocab_size": 40,
    "d_model": 16,
    "d_kv": 6,
    "d_ff": 24,
    "num_layers": 3,
    "num_decoder_layers": 2,
    "num_heads": 3,
    "relative_attention_num_buckets": 8,
}


@pytest.mark.parametrize(
    "config",
    [
        TINY,
        {**TINY, "feed_forward_proj": "gated-gelu", "architectures": ["T5Model"]},
        {**TINY, "model_type": "mt5", "num_decoder_layers": 4},
        {**TINY, "model_type": "umt5", "architectures": ["UMT5ForConditionalGeneration"]},
        {**TINY, "architectures": ["T5EncoderModel"]},
    ],
)
def test_every_module_flops_equal_flop_counter_mode(config: dict[str, Any]) -> None:
    """Each linear layer, each attention's two products, each block and the whole forward,
    the encoder over S source tokens and the decoder over T target tokens."""
    found = hf_model(config)
    encoder_only = found.class_name.endswith("EncoderModel")
    source, target, batch = 7, 5, 2
    arch = found.architecture.varied({} if encoder_only else {"source_len": source})
    model = arch.model()
    theirs = built(config, "cpu", attn_implementation="eager").eval()
    cost = analyze(model, batch=batch, seq_len=target)
    torch.manual_seed(0)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        if encoder_only:
            theirs(input_ids=torch.randint(0, 40, (batch, target)))
        else:
            theirs(
                input_ids=torch.randint(0, 40, (batch, source)),
                decoder_input_ids=torch.randint(0, 40, (batch, target)),
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
    top = type(theirs).__name__
    checked = 0
    for name, flops in counts.items():
        if name == "Global":
            assert flops == 2 * cost.macs
            continue
        inside = name.split(".", 1)[1] if "." in name else None
        if inside is None:
            assert name == top
            continue
        assert mine.get(inside, 0) == flops, inside
        checked += 1
    assert checked >= 8 * config["num_layers"]


# -- the inference state -----------------------------------------------------------------------
@pytest.mark.parametrize("model_type", ["t5", "mt5"])
@settings(max_examples=4, deadline=None)
@given(source=st.integers(1, 9), target=st.integers(1, 6), batch=st.integers(1, 3))
def test_the_caches_are_what_the_encoder_decoder_cache_holds(
    model_type: str, source: int, target: int, batch: int
) -> None:
    """The decoder's self-attention keys and values over the T target tokens, and its
    cross-attention keys and values over the S source tokens, layer by layer, as
    ``EncoderDecoderCache`` holds them after a forward with use_cache=True."""
    config = {**TINY, "model_type": model_type}
    found = hf_model(config)
    model = found.architecture.varied({"source_len": source}).model()
    cost = analyze(model, batch=batch, seq_len=target, training="none")
    theirs = built(config, "cpu", attn_implementation="eager").eval()
    with torch.no_grad():
        out = theirs(
            input_ids=torch.randint(0, 40, (batch, source)),
            decoder_input_ids=torch.randint(0, 40, (batch, target)),
            use_cache=True,
        )
    cache = out.past_key_values
    assert type(cache).__name__ == "EncoderDecoderCache"
    state: dict[tuple[str, int], list[Any]] = {}
    for name, stored in cost.state:
        assert name.startswith("decoder."), name  # the encoder keeps nothing
        run = re.search(r"block\.\{(\d+)\.\.(\d+)\}", name)
        if run:
            layers = list(range(int(run.group(1)), int(run.group(2)) + 1))
        else:
            layers = [int(n) for n in re.findall(r"block\.(\d+)", name)]
        assert stored.copies == 2 * len(layers)  # keys and values, per layer of the row
        for i in layers:
            state.setdefault((stored.kind, i), []).append(stored)
    for kind, held in (
        ("full attention", cache.self_attention_cache),
        ("cross attention", cache.cross_attention_cache),
    ):
        assert len(held.layers) == config["num_decoder_layers"]
        for i, layer in enumerate(held.layers):
            (stored,) = state[(kind, i)]
            assert tuple(layer.keys.shape) == tuple(stored.shape)
            assert tuple(layer.values.shape) == tuple(stored.shape)
    total = sum(
        t.numel() * t.element_size()
        for held in (cache.self_attention_cache, cache.cross_attention_cache)
        for layer in held.layers
        for t in (layer.keys, layer.values)
    )
    assert cost.state_bytes == total
    kinds = {g.kind: g for g in cost.state_groups()}
    assert set(kinds) == {"full attention", "cross attention"}
    assert kinds["full attention"].grows and not kinds["cross attention"].grows


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"feed_forward_proj": "gated-foo"}, "feed_forward_proj"),
        ({"feed_forward_proj": "swiglu"}, "feed_forward_proj"),
        ({"num_heads": 0}, "num_heads"),
        ({"d_kv": -1}, "d_kv"),
        ({"num_decoder_layers": "six"}, "num_decoder_layers"),
        ({"relative_attention_num_buckets": 0}, "relative_attention_num_buckets"),
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
        (["--feed-forward", "geglu"], "--feed-forward"),
        (["--head", "encoder", "--source-len", "9"], "--source-len"),
        (["--head-dim", "0"], "--head-dim"),
    ],
)
def test_bad_flags_are_one_line(arguments: list[str], flag: str) -> None:
    result = run(
        ["t5", "--vocab", "100", "--hidden", "16", "--layers", "2", "--heads", "2", *arguments]
    )
    assert result.exit_code == 2
    assert flag in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_fits(width: int) -> None:
    result = run(
        [
            "t5",
            "--vocab",
            "32128",
            "--hidden",
            "768",
            "--layers",
            "12",
            "--heads",
            "12",
            "--intermediate",
            "3072",
            "--source-len",
            "512",
            "--seq-len",
            "128",
            "--memory",
            "--flops",
        ],
        width,
    )
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= width
    assert "cross attention" in result.output


# -- generation: the encoder once, the decoder per token ------------------------------------
@pytest.mark.parametrize(
    "config",
    [
        TINY,
        {**TINY, "model_type": "mt5", "feed_forward_proj": "gated-silu"},
        {**TINY, "model_type": "umt5"},
    ],
)
def test_generation_flops_equal_flop_counter_mode_step_by_step(config: dict[str, Any]) -> None:
    """The encoder once over S source tokens, then decode steps with the cache: the first
    computes the cross-attention keys and values, every step attends to the t tokens so
    far; each against FlopCounterMode on the real model, and the cache's growth."""
    from shapecalc.analysis.generation import generation

    batch, source, steps = 2, 7, 4
    model = hf_model(config).architecture.varied({"source_len": source}).model()
    theirs = built(config, "cpu", attn_implementation="eager").eval()
    cache_class = transformers.EncoderDecoderCache
    dynamic = transformers.DynamicCache

    def flops(call: Any) -> tuple[int, Any]:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = call()
        return int(counter.get_total_flops()), out

    spent, encoded = flops(lambda: theirs.encoder(input_ids=torch.randint(0, 40, (batch, source))))
    assert spent == generation(model, batch=batch, context=1).encoder_flops
    cache = cache_class(dynamic(), dynamic())
    for t in range(1, steps + 1):
        ids = torch.randint(0, 40, (batch, 1))
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


def test_generation_formulas_are_the_counts() -> None:
    from shapecalc.analysis.generation import generation
    from shapecalc.architectures.t5 import t5

    sizes = {"V": 40, "H": 16, "L": 3, "A": 3, "D": 6, "I": 24, "R": 8, "S": 7, "B": 2, "t": 5}
    letters = t5(
        vocab="V",
        hidden="H",
        layers="L",
        heads="A",
        head_dim="D",
        intermediate="I",
        buckets="R",
        source_len="S",
    )
    numbers = t5(
        vocab=40, hidden=16, layers=3, heads=3, head_dim=6, intermediate=24, buckets=8, source_len=7
    )
    symbolic = generation(letters, batch="B", context="t")
    exact = generation(numbers, batch=2, context=5)
    for field in ("encoder_flops", "cross_flops", "step_flops", "cross_bytes", "token_bytes"):
        assert getattr(symbolic, field).subs(sizes) == getattr(exact, field), field


def test_generation_needs_an_encoder() -> None:
    from shapecalc.analysis.generation import generation
    from shapecalc.architectures.gpt2 import gpt2

    with pytest.raises(ShapecalcError) as err:
        generation(gpt2(vocab=10, hidden=8, layers=1, heads=2))
    assert err.value.field == "model"


def test_the_how_to_says_what_the_engine_says() -> None:
    """docs/howto/encoder-decoders.md: its command's generating lines at 100 columns, and
    its Python block's comments."""
    from pathlib import Path

    page = (
        Path(__file__).resolve().parents[1] / "docs" / "howto" / "encoder-decoders.md"
    ).read_text(encoding="utf-8")
    command = re.search(r"```sh\n(shapecalc t5 .*?)\n```", page, re.S)
    said = re.search(r"```text\n(State    generating.*?)\n```", page, re.S)
    assert command and said
    args = command.group(1).replace("\\\n", " ").split()[1:]
    out = run(args, 100).stdout
    assert said.group(1) in out
    block = re.search(r"```python\n(.*?)```", page, re.S)
    assert block
    lines = block.group(1).splitlines()
    prints = [line for line in lines if line.startswith("print(")]
    namespace: dict[str, Any] = {}
    exec("\n".join(line for line in lines if not line.startswith("print(")), namespace)
    assert len(prints) == 2
    for line in prints:
        code, _, comment = line.partition("  # ")
        value = eval(code.strip()[len("print(") : -1], namespace)
        assert str(value) == comment.split(":")[0], line
